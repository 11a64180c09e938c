//! Sizes and costs of a model, from its configuration alone.

use ember_nn::{AttentionKind, AttentionMask, Position};

use crate::config::GptConfig;

/// Number of learned parameters, each counted once:
///
/// ```text
/// vocab·d                          token embedding (also the LM head when tied)
/// + n_layer · per block            qkv d·q + q (q = (n_head + 2·n_kv_head)·d_head), proj d² + d,
///                                  fc d·f + f, proj f·d + d (f = d_ff), 2 LayerNorms 4d
/// + 2·d                            final LayerNorm
/// + vocab·d                        the LM head, when untied
/// ```
///
/// With the defaults (`n_kv_head = n_head`, `d_ff = 4d`) a block has `12·d² + 13·d`.
pub fn param_count(c: &GptConfig) -> usize {
    let d = c.d_model;
    c.vocab_size * d + c.n_layer * block_params(c) + 2 * d + head_params(c)
}

/// Parameters of one block.
fn block_params(c: &GptConfig) -> usize {
    let (d, f) = (c.d_model, c.ff_width());
    let q = (c.n_head + 2 * c.kv_heads()) * c.d_head();
    d * q + q + d * d + d + 2 * d * f + f + d + 4 * d
}

/// Parameters of an untied LM head (0 when tied).
fn head_params(c: &GptConfig) -> usize {
    if c.tie_embeddings { 0 } else { c.vocab_size * c.d_model }
}

/// Parameters outside the token embedding and the LM head.
pub fn non_embedding_param_count(c: &GptConfig) -> usize {
    param_count(c) - c.vocab_size * c.d_model - head_params(c)
}

/// Training FLOPs per token: `6·N_non-embedding + 12·n_layer·d_model·T`.
///
/// Forward plus backward is 6 FLOPs per parameter per token for the matrix products, and the
/// attention scores and their weighted sum add `12·n_layer·d_model·T`, with `T` the keys a
/// query attends over: the context for full attention (the formula of the PyTorch reference
/// benchmark and nanoGPT's MFU, so utilisation figures compare), the window for a sliding
/// window, the chunk for linear attention (see [`GptConfig::keys_per_query`]).
pub fn training_flops_per_token(c: &GptConfig) -> u64 {
    let attention = 12.0 * (c.n_layer * c.d_model) as f64 * c.keys_per_query();
    6 * non_embedding_param_count(c) as u64 + attention.round() as u64
}

/// A rough estimate of memory in bytes for f32, computed in floating point (so that no
/// configuration, however large, overflows it) and saturated to `u64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEstimate {
    /// The weights; for training also their gradients and the two AdamW moments (16 bytes per
    /// parameter, 4 otherwise).
    pub params_grads_optimizer: u64,
    /// Activations: those kept for the backward pass of one micro-batch, or one forward pass's.
    pub activations: u64,
    /// The tables the model builds once (mask biases `[block, block]`, RoPE's cos and sin).
    pub tables: u64,
}

impl MemoryEstimate {
    /// Sum of the parts.
    pub fn total(&self) -> u64 {
        self.params_grads_optimizer
            .saturating_add(self.activations)
            .saturating_add(self.tables)
    }
}

/// Estimates training memory for micro-batches of `batch` sequences.
///
/// Activations follow Korthikanti et al. (2022), `s·b·h·(34 + 5·a·s/h)` bytes per layer at 16
/// bits, doubled for f32, plus the logits and their gradient (`3·b·s·vocab` floats).
pub fn training_memory(c: &GptConfig, batch: usize) -> MemoryEstimate {
    let (s, b, h, a) = (c.block_size as f64, batch as f64, c.d_model as f64, c.n_head as f64);
    let keys = c.keys_per_query();
    let per_layer_16bit = s * b * h * 34.0 + 5.0 * a * s * keys * b;
    let activations = 2.0 * per_layer_16bit * c.n_layer as f64 + 3.0 * b * s * c.vocab_size as f64 * 4.0;
    MemoryEstimate {
        params_grads_optimizer: (16.0 * param_count_f64(c)) as u64,
        activations: activations as u64,
        tables: tables_bytes(c) as u64,
    }
}

/// Estimates the memory of evaluating or sampling `batch` sequences: the weights, and one
/// layer's activations at a time (about `16·d_model` floats per position and the scores
/// `n_head · keys`), plus the logits.
pub fn inference_memory(c: &GptConfig, batch: usize) -> MemoryEstimate {
    let (s, b, h, a) = (c.block_size as f64, batch as f64, c.d_model as f64, c.n_head as f64);
    let per_layer = b * s * (16.0 * h + a * c.keys_per_query()) * 4.0;
    MemoryEstimate {
        params_grads_optimizer: (4.0 * param_count_f64(c)) as u64,
        activations: (per_layer + 2.0 * b * s * c.vocab_size as f64 * 4.0) as u64,
        tables: tables_bytes(c) as u64,
    }
}

/// [`param_count`] in floating point.
fn param_count_f64(c: &GptConfig) -> f64 {
    let (d, f, v) = (c.d_model as f64, c.ff_width() as f64, c.vocab_size as f64);
    let q = (c.n_head + 2 * c.kv_heads()) as f64 * c.d_head() as f64;
    let block = d * q + q + d * d + d + 2.0 * d * f + f + d + 4.0 * d;
    let head = if c.tie_embeddings { 0.0 } else { v * d };
    v * d + c.n_layer as f64 * block + 2.0 * d + head
}

/// Bytes of the tables built once per model: a `[block, block]` f32 bias per kind of mask the
/// layers use, and RoPE's two `[block, rot_dims]` tables.
fn tables_bytes(c: &GptConfig) -> f64 {
    let s = c.block_size as f64;
    let masks = (0..c.n_layer)
        .map(|l| match c.layer_attention(l) {
            AttentionKind::Softmax(AttentionMask::Causal) => 1,
            AttentionKind::Softmax(AttentionMask::SlidingWindow { .. }) => 2,
            AttentionKind::Linear => 0,
        })
        .fold(0u8, |seen, kind| seen | kind)
        .count_ones() as f64;
    let rope = if c.position == Position::Rope {
        2.0 * s * c.rot_dims() as f64
    } else {
        0.0
    };
    (masks * s * s + rope) * 4.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GptConfig;
    use burn::module::Module;
    use burn::tensor::Device;

    #[test]
    fn param_count_matches_the_built_model() {
        let variants = [
            GptConfig::nano(),
            GptConfig::cpu_baby(),
            GptConfig {
                n_head: 4,
                n_kv_head: Some(2),
                d_ff: Some(40),
                tie_embeddings: false,
                ..GptConfig::nano()
            },
        ];
        for c in variants {
            let c = GptConfig { vocab_size: 65, ..c };
            let model = c.init(0, &Device::flex()).unwrap();
            assert_eq!(model.num_params(), param_count(&c));
        }
    }

    #[test]
    fn flops_match_the_reference_formula_for_cpu_baby() {
        // 4 layers of 12·128² + 13·128 = 198,272 plus the final LayerNorm's 256 → 793,344
        // non-embedding parameters; 6·793,344 + 12·4·128·64 = 4,760,064 + 393,216.
        let c = GptConfig {
            vocab_size: 65,
            ..GptConfig::cpu_baby()
        };
        assert_eq!(non_embedding_param_count(&c), 793_344);
        assert_eq!(training_flops_per_token(&c), 5_153_280);
    }
}
