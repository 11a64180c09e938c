//! The fused kernels behind the attention composition, where they serve.
//!
//! - [`self_attention`]: the whole layer as one CPU kernel (`ember_kernels::self_attention`:
//!   the head split, RoPE, attention and the head merge in one operation with one backward
//!   pass), for f32 on flex, softmax attention with a mask shared by the heads, RoPE over whole
//!   heads, one key/value head per query head, no dropout on the weights, and with a cache only
//!   outside autodiff;
//! - [`attention`]: the core `softmax(q kᵀ/√d + mask) v` of `sdpa.rs`, as ember's CPU kernel
//!   (f32 on flex) or Burn's fused attention (GPU backends outside autodiff), for a mask shared
//!   by the heads.
//!
//! `ember-kernels`' tests and this crate's compare each with the composition it replaces.

use burn::nn::Dropout;
use burn::tensor::Tensor;

use super::{AttentionCache, AttentionKind, AttentionMask, AttentionTables, CausalSelfAttention};
use crate::rope::RotaryEncoding;

/// The mask and RoPE tables, where the whole-layer kernel serves `layer` on `x`.
fn serves<'a>(
    layer: &CausalSelfAttention,
    x: &Tensor<3>,
    tables: &'a AttentionTables,
    cached: bool,
) -> Option<(AttentionMask, &'a RotaryEncoding)> {
    let AttentionKind::Softmax(mask) = layer.kind else {
        return None;
    };
    let rope = tables.rope.as_ref().filter(|rope| rope.cos.dims()[1] == rope.d_head)?; // every coordinate rotates
    let serves = ember_kernels::fused(x)
        && layer.n_kv_heads == layer.n_heads
        && !dropout_active(&layer.attn_dropout, x)
        && !(cached && x.device().is_autodiff());
    serves.then_some((mask, rope))
}

/// [`CausalSelfAttention::forward`] as one kernel, where it serves.
pub(crate) fn self_attention(
    layer: &CausalSelfAttention,
    x: &Tensor<3>,
    tables: &AttentionTables,
    cache: Option<&mut AttentionCache>,
) -> Option<Tensor<3>> {
    let (mask, rope) = serves(layer, x, tables, cache.is_some())?;
    let [batch, seq, _] = x.dims();
    let (heads, d_head) = (layer.n_heads, layer.d_head());
    let scale = 1.0 / (d_head as f64).sqrt();
    let qkv = layer.qkv.forward(x.clone()); // [batch, seq, 3·d_model]
    let y = match cache {
        None => {
            let (cos, sin) = rope.tables(0, seq); // [seq, d_head] each
            let bias = tables.bias(mask, 0, seq, 0).squeeze_dim::<2>(0); // [seq, seq]
            ember_kernels::self_attention(qkv, cos, sin, bias, heads, scale)
        }
        Some(cache) => {
            // The kernel writes this step's keys and values into the cache's buffers.
            let past = cache.kv.len();
            let room = cache
                .kv
                .take_room([batch, heads, seq, d_head], qkv.dtype(), &qkv.device());
            let first = cache.kv.first();
            let (cos, sin) = rope.tables(past, seq);
            let bias = tables.bias(mask, past, seq, first).squeeze_dim::<2>(0); // [seq, past + seq − first]
            let (y, keys, values) =
                ember_kernels::cached_self_attention(qkv, cos, sin, room, bias, past - first, heads, scale);
            cache.kv.put_back(keys, values, seq);
            y
        }
    }; // [batch, seq, d_model]
    Some(layer.proj.forward(y))
}

/// [`CausalSelfAttention::forward_with_weights`] as one kernel, where it serves.
pub(crate) fn self_attention_with_weights(
    layer: &CausalSelfAttention,
    x: &Tensor<3>,
    tables: &AttentionTables,
) -> Option<(Tensor<3>, Tensor<4>)> {
    let (mask, rope) = serves(layer, x, tables, false)?;
    let seq = x.dims()[1];
    let scale = 1.0 / (layer.d_head() as f64).sqrt();
    let (cos, sin) = rope.tables(0, seq);
    let bias = tables.bias(mask, 0, seq, 0).squeeze_dim::<2>(0);
    let qkv = layer.qkv.forward(x.clone());
    let (y, weights) = ember_kernels::self_attention_with_weights(qkv, cos, sin, bias, layer.n_heads, scale);
    Some((layer.proj.forward(y), weights))
}

/// The mask bias as `[seq, keys]`, where a kernel serves these operands.
fn shared_bias(q: &Tensor<4>, bias: &Tensor<3>) -> Option<Tensor<2>> {
    (ember_kernels::fused(q) && bias.dims()[0] == 1).then(|| bias.clone().squeeze_dim::<2>(0))
}

/// [`scaled_dot_product_attention`](super::sdpa::scaled_dot_product_attention) as a kernel, where one
/// serves: Burn's fused attention on a GPU outside autodiff, else ember's CPU kernel.
pub(crate) fn attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    bias: &Tensor<3>,
    dropout: &Dropout,
) -> Option<Tensor<4>> {
    if bias.dims()[0] == 1 && !dropout_active(dropout, q) {
        let shared = bias.clone().squeeze_dim::<2>(0);
        if let Some(y) = ember_kernels::flash_attention(q, k, v, &shared) {
            return Some(y);
        }
    }
    let shared = shared_bias(q, bias)?;
    let scale = scale(q);
    let (q, k, v) = (q.clone(), k.clone(), v.clone());
    if !dropout_active(dropout, &q) {
        return Some(ember_kernels::attention(q, k, v, shared, scale)); // all of it, fused
    }
    // With dropout on the weights: the products and the softmax as kernels, dropout between.
    let scores = ember_kernels::matmul(q, k.swap_dims(2, 3));
    let weights = dropout.forward(ember_kernels::softmax(scores, shared, scale));
    Some(ember_kernels::matmul(weights, v))
}

/// [`sdpa_with_weights`](crate::inspect::sdpa_with_weights) as ember's CPU kernel, where it serves.
pub(crate) fn attention_with_weights(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    bias: &Tensor<3>,
) -> Option<(Tensor<4>, Tensor<4>)> {
    let shared = shared_bias(q, bias)?;
    Some(ember_kernels::attention_with_weights(
        q.clone(),
        k.clone(),
        v.clone(),
        shared,
        scale(q),
    ))
}

/// `1 / √d_head`, the scores' scale.
fn scale(q: &Tensor<4>) -> f64 {
    1.0 / (q.dims()[3] as f64).sqrt()
}

/// Whether `dropout` would change its input here (training, on an autodiff device, p > 0).
fn dropout_active<const D: usize>(dropout: &Dropout, x: &Tensor<D>) -> bool {
    dropout.prob > 0.0 && dropout.training.is_enabled() && x.device().is_autodiff()
}
