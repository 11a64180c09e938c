//! The extension trait: one method per fused operation. `#[backend_extension]` generates its
//! implementation for Burn's `Dispatch` backend, routing flex tensors to [`crate::flex`] and
//! autodiff tensors to [`crate::autodiff`], which records the backward pass and calls the
//! inner (flex) implementation.

use burn::backend::{
    Backend, backend_extension,
    tensor::{FloatTensor, IntTensor},
};

#[allow(unused_imports)] // the generated routing names it
use burn::backend::Autodiff;

/// Fused operations.
#[backend_extension(Flex, Autodiff)]
pub trait KernelOps: Backend {
    /// Batched matrix product with equal batch axes; inputs may be strided views.
    fn ember_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `x · w + b` for a `[rows, k]` input, `[k, n]` weight and `[n]` bias.
    fn ember_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The sum of a matrix's rows, `[rows, n] → [n]`.
    fn ember_sum_rows(g: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Exact (erf) GELU.
    fn ember_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `∂L/∂x` of [`ember_gelu`](Self::ember_gelu), given `∂L/∂y`.
    fn ember_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// LayerNorm over the last axis with gain and shift.
    fn ember_layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self>;

    /// `(∂L/∂x, ∂L/∂weight, ∂L/∂bias)` of [`ember_layer_norm`](Self::ember_layer_norm).
    fn ember_layer_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `softmax(scores · scale + bias)` over the last axis; `bias` is `[q, k]`.
    fn ember_softmax(scores: FloatTensor<Self>, bias: FloatTensor<Self>, scale: f32) -> FloatTensor<Self>;

    /// `∂L/∂scores` of [`ember_softmax`](Self::ember_softmax) from its output and `∂L/∂output`.
    fn ember_softmax_backward(probs: FloatTensor<Self>, grad: FloatTensor<Self>, scale: f32) -> FloatTensor<Self>;

    /// `softmax(q kᵀ · scale + bias) v` per batch and head; `bias` is `[q, k]`.
    fn ember_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;

    /// [`ember_attention`](Self::ember_attention) and its probabilities `[batch, heads, q, k]`.
    fn ember_attention_probs(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `(∂L/∂q, ∂L/∂k, ∂L/∂v)` of [`ember_attention`](Self::ember_attention) from its inputs,
    /// its probabilities and `∂L/∂output`.
    #[allow(clippy::too_many_arguments)]
    fn ember_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Self-attention from the fused projection `qkv` `[batch, seq, 3·d_model]`: RoPE
    /// (tables `cos`, `sin` `[seq, d_head]`) on queries and keys, then
    /// [`ember_attention`](Self::ember_attention) per head; `[batch, seq, d_model]`.
    fn ember_self_attention(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        heads: usize,
        scale: f32,
    ) -> FloatTensor<Self>;

    /// [`ember_self_attention`](Self::ember_self_attention) and its probabilities.
    fn ember_self_attention_probs(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        heads: usize,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `∂L/∂qkv` of [`ember_self_attention`](Self::ember_self_attention).
    #[allow(clippy::too_many_arguments)]
    fn ember_self_attention_backward(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        heads: usize,
        scale: f32,
    ) -> FloatTensor<Self>;

    /// [`ember_self_attention`](Self::ember_self_attention) for new positions after `past`
    /// cached ones, outside any autodiff graph (generation): writes the new keys and values
    /// into the cache buffers and returns `(out, keys, values)`.
    #[allow(clippy::too_many_arguments)]
    fn ember_cached_self_attention(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        past: usize,
        heads: usize,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Mean cross-entropy of `[n, v]` logits against `[n]` targets, as a `[1]` tensor.
    fn ember_cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self>;

    /// The mean cross-entropy and the softmax of the logits.
    fn ember_cross_entropy_probs(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `∂L/∂logits` from the softmax, the targets and `∂L/∂loss` (a `[1]` tensor).
    fn ember_cross_entropy_backward(
        probs: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// One AdamW update of a flattened parameter: returns `(θ, m, v)`. `constants` are
    /// `[lr, β₁, β₂, ε, 1 − lr·λ, 1 − β₁ᵗ, √(1 − β₂ᵗ), c]`, the gradient used as `c·grad`.
    fn ember_adamw(
        theta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        constants: [f32; 8],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `Σ x²` over every element, `[1]`.
    fn ember_sum_squares(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `(a + b, Σ (a + b)²)` for two flat tensors of equal length: the sum and its
    /// [`ember_sum_squares`](Self::ember_sum_squares), in one pass.
    fn ember_add_sum_squares(a: FloatTensor<Self>, b: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>);
}
