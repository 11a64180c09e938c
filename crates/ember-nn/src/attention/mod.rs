//! Causal multi-head self-attention.
//!
//! ```text
//! q, k, v = split(x Wqkv + bqkv)                 one fused projection, [q | k | v]
//! q, k    = rope(q, pos), rope(k, pos)           per head
//! y_h     = softmax(q_h k_hᵀ / √d_head + mask) v_h
//! out     = concat_h(y_h) Wo + bo
//! ```
//!
//! `forward` below is this composition; the masks are in [`mask`], the softmax in [`sdpa`],
//! the shared RoPE and mask tables in [`tables`]. The variants (sliding windows, linear
//! attention, grouped-query heads, ALiBi, KV-cached generation) and where a layer picks among
//! them are in [`variants`]; the fused CPU kernel that computes the whole layer in one
//! operation sits behind one call at the top of `forward`, in `fused.rs`.

pub mod cache;
pub(crate) mod fused;
pub mod gqa;
pub mod kv_cache;
pub mod linear;
pub mod mask;
pub mod sdpa;
pub mod tables;
pub mod variants;
pub mod window;

pub use cache::AttentionCache;
pub use kv_cache::KvCache;
pub use linear::LinearState;
pub use mask::AttentionMask;
pub use tables::{AttentionTables, AttentionTablesConfig};
pub use variants::AttentionKind;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};

use crate::init::{self, InitRng};
use crate::linear::Linear;

/// Configuration of a [`CausalSelfAttention`] layer.
#[derive(Config, Debug)]
pub struct CausalSelfAttentionConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Query heads; must divide `d_model`.
    pub n_heads: usize,
    /// Key/value heads; must divide `n_heads`. 0 means `n_heads` (one per query head).
    #[config(default = 0)]
    pub n_kv_heads: usize,
    /// Softmax attention with a mask, or linear attention.
    #[config(default = "AttentionKind::Softmax(AttentionMask::Causal)")]
    pub kind: AttentionKind,
    /// Dropout probability on the attention weights (training only; softmax attention).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Init std of the q/k/v projection.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Init std of the output projection (GPT-2 scales it by 1/√(2·n_layer)).
    #[config(default = 0.02)]
    pub proj_init_std: f64,
}

/// Causal multi-head self-attention.
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// Fused query/key/value projection, weight `[d_model, (n_heads + 2·n_kv_heads)·d_head]`,
    /// bias likewise. Output columns are `[q | k | v]`; within each, head `h` owns columns
    /// `h·d_head..(h+1)·d_head`.
    pub qkv: Linear,
    /// Output projection, weight `[d_model, d_model]`, bias `[d_model]`.
    pub proj: Linear,
    /// Dropout on the attention weights.
    pub attn_dropout: Dropout,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Softmax with a mask, or linear.
    #[module(skip)]
    pub kind: AttentionKind,
}

impl CausalSelfAttentionConfig {
    /// Creates the layer. Panics on inconsistent sizes; the model config reports those to
    /// users first.
    pub fn init(&self, rng: &mut InitRng, device: &Device) -> CausalSelfAttention {
        let (d_model, n_heads) = (self.d_model, self.n_heads);
        let n_kv_heads = if self.n_kv_heads == 0 { n_heads } else { self.n_kv_heads };
        assert!(
            n_heads > 0 && d_model % n_heads == 0 && n_heads % n_kv_heads == 0,
            "n_heads ({n_heads}) must divide d_model ({d_model}) and be divisible by n_kv_heads ({n_kv_heads})"
        );
        let d_head = d_model / n_heads;
        CausalSelfAttention {
            qkv: init::linear(d_model, (n_heads + 2 * n_kv_heads) * d_head, self.init_std, rng, device),
            proj: init::linear(d_model, d_model, self.proj_init_std, rng, device),
            attn_dropout: DropoutConfig::new(self.dropout).init(),
            n_heads,
            n_kv_heads,
            kind: self.kind,
        }
    }
}

impl CausalSelfAttention {
    /// Attends every position to the positions its mask allows.
    ///
    /// With a `cache`, `x` holds only the new positions; the cache supplies the earlier ones
    /// and learns the new ones.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, tables: &AttentionTables, mut cache: Option<&mut AttentionCache>) -> Tensor<3> {
        if let Some(y) = fused::self_attention(self, &x, tables, cache.as_deref_mut()) {
            return y; // everything below, as one CPU kernel
        }
        let [batch, seq, d_model] = x.dims();
        let past = cache.as_ref().map_or(0, |c| c.len());

        let (q, k, v) = self.split_heads(self.qkv.forward(x)); // [batch, heads, seq, d_head]
        let (q, k) = tables.rotate(q, k, past);
        let y = match (self.kind, cache) {
            (AttentionKind::Softmax(AttentionMask::Causal), None) if self.n_kv_heads == self.n_heads => {
                let bias = tables.bias(AttentionMask::Causal, 0, seq, 0); // [1 | n_heads, seq, seq]
                sdpa::scaled_dot_product_attention(q, k, v, bias, &self.attn_dropout)
            }
            (_, cache) => self.variant(q, k, v, tables, cache, past), // see variants.rs
        }; // [batch, n_heads, seq, d_head]
        let y = y.swap_dims(1, 2).reshape([batch, seq, d_model]); // heads side by side
        self.proj.forward(y)
    }

    /// Width of one head.
    pub fn d_head(&self) -> usize {
        self.proj.weight.dims()[0] / self.n_heads
    }

    /// The fused projection's output as heads.
    ///
    /// # Shapes
    /// - qkv: `[batch, seq, (n_heads + 2·n_kv_heads)·d_head]`
    /// - returns q `[batch, n_heads, seq, d_head]`, k and v `[batch, n_kv_heads, seq, d_head]`
    pub(crate) fn split_heads(&self, qkv: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [batch, seq, _] = qkv.dims();
        let (h, kv, d) = (self.n_heads, self.n_kv_heads, self.d_head());
        let heads = |from: usize, n: usize| {
            qkv.clone()
                .narrow(2, from * d, n * d)
                .reshape([batch, seq, n, d])
                .swap_dims(1, 2)
        };
        (heads(0, h), heads(h, kv), heads(h + kv, kv))
    }
}

#[cfg(test)]
mod tests;
