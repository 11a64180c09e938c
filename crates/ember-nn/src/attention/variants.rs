//! The attention variants, and where a layer picks among them.
//!
//! Each variant is in its own file:
//! - which keys a query sees, all earlier ones or only the last `window` ([`mask`]); a sliding
//!   window computed in time and memory proportional to `seq · window` ([`window`]);
//! - the attention itself: the softmax ([`sdpa`]), or linear attention, `φ(q)·φ(k)` in place
//!   of `exp(q·k)`, computed as running sums in O(seq) ([`linear`]);
//! - grouped-query attention: fewer key/value heads than query heads ([`gqa`]);
//! - positions: RoPE, ALiBi or none ([`crate::position`]), their tables shared by every layer
//!   ([`tables`]).
//!
//! For generation, [`kv_cache`] keeps each layer's past keys and values (bounded by the window
//! for a sliding window), and linear attention keeps its running sums instead ([`cache`]).
//!
//! [`mask`]: super::mask
//! [`gqa`]: super::gqa
//! [`tables`]: super::tables
//! [`kv_cache`]: super::kv_cache
//! [`cache`]: super::cache

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{AttentionCache, AttentionMask, AttentionTables, CausalSelfAttention, linear, sdpa, window};

/// How a layer turns scores into weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttentionKind {
    /// `softmax(q kᵀ / √d_head + mask)` over the keys the mask allows.
    Softmax(AttentionMask),
    /// Linear attention (see [`linear`]): always causal, over every earlier position.
    Linear,
}

impl CausalSelfAttention {
    /// The attention of [`forward`](CausalSelfAttention::forward) for every layer its plain
    /// causal softmax does not serve: with a cache (the first row at position `past`), a
    /// sliding window, grouped-query heads or linear attention.
    ///
    /// # Shapes
    /// - q: `[batch, n_heads, seq, d_head]`, k, v: `[batch, n_kv_heads, seq, d_head]`
    /// - returns `[batch, n_heads, seq, d_head]`
    pub(crate) fn variant(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        tables: &AttentionTables,
        cache: Option<&mut AttentionCache>,
        past: usize,
    ) -> Tensor<4> {
        let seq = q.dims()[2];
        match self.kind {
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
        }
    }
}
