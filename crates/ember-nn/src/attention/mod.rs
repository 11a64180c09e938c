//! Causal multi-head self-attention.
//!
//! ```text
//! q, k, v = split(x Wqkv + bqkv)                 one fused projection, [q | k | v]
//! q, k    = rope(q, pos), rope(k, pos)           per head (ALiBi and "none" leave them as they are)
//! y_h     = softmax(q_h k_hᵀ / √d_head + mask) v_h
//! out     = concat_h(y_h) Wo + bo
//! ```
//!
//! The variants, each in its own file:
//! - which keys a query sees, all earlier ones or only the last `window` ([`mask`]); a sliding
//!   window computed in time and memory proportional to `seq · window` ([`window`]);
//! - the attention itself: the softmax above ([`sdpa`]), or linear attention, `φ(q)·φ(k)` in
//!   place of `exp(q·k)`, computed as running sums in O(seq) ([`linear`]);
//! - grouped-query attention: fewer key/value heads than query heads ([`gqa`]);
//! - positions: RoPE, ALiBi or none, with what every layer shares ([`tables`]).
//!
//! For generation, [`kv_cache`] keeps each layer's past keys and values (bounded by the window
//! for a sliding window), and linear attention keeps its running sums instead ([`cache`]).
//! The fused CPU kernel that computes the whole layer in one operation sits behind one call at
//! the top of `forward`, in `fused.rs`.

pub mod cache;
pub(crate) mod fused;
pub mod gqa;
pub mod kv_cache;
pub mod linear;
pub mod mask;
pub mod sdpa;
pub mod tables;
pub mod window;

pub use cache::AttentionCache;
pub use kv_cache::KvCache;
pub use linear::LinearState;
pub use mask::AttentionMask;
pub use tables::{AttentionTables, AttentionTablesConfig, Position};

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::init::{self, InitRng};
use crate::linear::Linear;

/// How a layer turns scores into weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttentionKind {
    /// `softmax(q kᵀ / √d_head + mask)` over the keys the mask allows.
    Softmax(AttentionMask),
    /// Linear attention (see [`linear`]): always causal, over every earlier position.
    Linear,
}

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
        let y = match self.kind {
            AttentionKind::Softmax(mask) => {
                // With a cache: the keys and values of positions first..past + seq.
                let (k, v, first) = match cache {
                    Some(cache) => cache.kv.append(k, v), // [batch, n_kv_heads, past + seq − first, d_head]
                    None => (k, v, 0),
                };
                let (k, v) = (self.share(k), self.share(v)); // [batch, n_heads, keys, d_head]
                match mask {
                    AttentionMask::SlidingWindow { window } if past == 0 && seq > window => {
                        let band = tables.band.as_ref().expect("a window's band table");
                        window::attention(q, k, v, band, tables.alibi.as_ref(), &self.attn_dropout)
                    }
                    _ => {
                        let bias = tables.bias(mask, past, seq, first); // [1 | n_heads, seq, keys]
                        sdpa::scaled_dot_product_attention(q, k, v, bias, &self.attn_dropout)
                    }
                }
            }
            AttentionKind::Linear => linear::attention(q, self.share(k), self.share(v), cache.map(|c| &mut c.state)),
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
