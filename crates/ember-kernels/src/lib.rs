//! Fused CPU kernels for Burn's `flex` backend, through Burn's backend-extension mechanism.
//!
//! Each public function here computes exactly what a short composition of Burn tensor ops
//! computes, and is a drop-in replacement for it:
//!
//! - on a `flex` device (with or without autodiff) it runs a hand-written kernel, with a
//!   hand-written backward pass under autodiff;
//! - on every other device it runs the plain composition of Burn ops (the reference).
//!
//! The tests compare the two, values and gradients. The model code calls these functions and
//! never needs to know which path ran.
//!
//! Why: Burn's generic CPU path allocates each result as a zeroed byte vector and then copies
//! it into an aligned buffer, and spends one pass over memory per elementary op. A kernel that
//! writes its result once into a fresh buffer, and fuses the element-wise work around a matrix
//! product, does a fraction of the memory traffic.

mod autodiff;
mod flex;
mod ops;
mod route;

pub use ops::KernelOps;

use burn::backend::Dispatch;
use burn::tensor::{Int, Tensor};

/// Checks the environment variables the kernels read (`EMBER_SIMD`), so that a bad value is one
/// clear error before any work starts rather than a silent fallback.
///
/// # Errors
/// A message naming the variable, its value and the values it takes.
pub fn check_environment() -> Result<(), String> {
    flex::simd_cap().map(|_| ())
}

/// Whether the fused kernels serve tensors like `t` (f32 on the flex backend). Where they do
/// not, callers use their reference composition of Burn ops.
pub fn fused<const D: usize>(t: &Tensor<D>) -> bool {
    route::is_flex(t)
}

fn run<const D: usize>(op: impl FnOnce() -> burn::tensor::DispatchTensor) -> Tensor<D> {
    Tensor::from_dispatch(op())
}

/// Exact GELU `x · Φ(x)`. Call only when [`fused`] holds.
///
/// # Shapes
/// - x: any → same
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    run(|| <Dispatch as KernelOps>::ember_gelu(x.into_dispatch()))
}

/// LayerNorm over the last axis: `(x − mean)/√(var + eps) · weight + bias`, with the biased
/// variance. Call only when [`fused`] holds.
///
/// # Shapes
/// - x: `[..., d]`, weight and bias: `[d]` → `[..., d]`
pub fn layer_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, bias: Tensor<1>, eps: f64) -> Tensor<D> {
    run(|| {
        <Dispatch as KernelOps>::ember_layer_norm(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch(), eps)
    })
}

/// `softmax(scores · scale + bias)` over the last axis, the mask bias `[q, k]` (0 or −∞)
/// shared by all leading axes; the gradient flows to `scores` only. Call only when [`fused`]
/// holds.
///
/// # Shapes
/// - scores: `[..., q, k]`, bias: `[q, k]` → `[..., q, k]`
pub fn softmax<const D: usize>(scores: Tensor<D>, bias: Tensor<2>, scale: f64) -> Tensor<D> {
    run(|| <Dispatch as KernelOps>::ember_softmax(scores.into_dispatch(), bias.into_dispatch(), scale as f32))
}

/// Scaled dot-product attention `softmax(q kᵀ · scale + bias) v` for every batch and head,
/// the mask bias `[q, k]` (0 or −∞, every row allowing at least one key) shared by all; the
/// gradient flows to `q`, `k` and `v`. No dropout on the weights: callers that need it use
/// the unfused composition. Call only when [`fused`] holds.
///
/// # Shapes
/// - q: `[batch, heads, q, d_head]`, k and v: `[batch, heads, k, d_head]`, bias: `[q, k]`
/// - returns `[batch, heads, q, d_head]`
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<2>, scale: f64) -> Tensor<4> {
    run(|| {
        <Dispatch as KernelOps>::ember_attention(
            q.into_dispatch(),
            k.into_dispatch(),
            v.into_dispatch(),
            bias.into_dispatch(),
            scale as f32,
        )
    })
}

/// [`attention`] and its attention weights, the softmax rows `softmax(q kᵀ · scale + bias)`.
/// Call only when [`fused`] holds.
///
/// # Shapes
/// - as [`attention`]; weights `[batch, heads, q, k]`
pub fn attention_with_weights(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<2>,
    scale: f64,
) -> (Tensor<4>, Tensor<4>) {
    let (out, probs) = <Dispatch as KernelOps>::ember_attention_probs(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        bias.into_dispatch(),
        scale as f32,
    );
    (Tensor::from_dispatch(out), Tensor::from_dispatch(probs))
}

/// Burn's fused attention (`burn::tensor::module::attention`, which CubeCL runs as flash
/// attention), where it serves: on a CubeCL device (wgpu, CUDA) outside autodiff, that is for
/// evaluation and generation, with a mask shared by every batch and head (`bias`: 0 where a
/// key is seen, −∞ where it is hidden). `None` elsewhere: under autodiff Burn falls back to the
/// full score matrix anyway, and on the CPU the kernels of this crate serve.
///
/// # Shapes
/// - q: `[batch, heads, q, d_head]`, k and v: `[batch, heads, k, d_head]`, bias: `[q, k]`
/// - returns `[batch, heads, q, d_head]`
pub fn flash_attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, bias: &Tensor<2>) -> Option<Tensor<4>> {
    if !route::is_cubecl(q) {
        return None;
    }
    let [batch, heads, queries, _] = q.dims();
    let keys = k.dims()[2];
    // Burn's mask is true where a key is hidden.
    let hidden = bias
        .clone()
        .equal_elem(f32::NEG_INFINITY)
        .unsqueeze::<4>()
        .expand([batch, heads, queries, keys]);
    let options = burn::tensor::ops::AttentionModuleOptions {
        scale: None, // 1/√d_head, as ember's
        softcap: None,
        is_causal: false,
    };
    Some(burn::tensor::module::attention(
        q.clone(),
        k.clone(),
        v.clone(),
        Some(hidden),
        None,
        options,
    ))
}

/// Multi-head self-attention from the fused projection `qkv = [q | k | v]`: splits the heads,
/// applies RoPE (rotate-half; tables `cos`, `sin` for the sequence's positions) to queries and
/// keys, runs [`attention`] per head and puts the heads side by side again, in one operation
/// with one backward pass. `bias` as for [`attention`]. Call only when [`fused`] holds.
///
/// # Shapes
/// - qkv: `[batch, seq, 3·d_model]`, cos and sin: `[seq, d_model / heads]`, bias: `[seq, seq]`
/// - returns `[batch, seq, d_model]`
pub fn self_attention(
    qkv: Tensor<3>,
    cos: Tensor<2>,
    sin: Tensor<2>,
    bias: Tensor<2>,
    heads: usize,
    scale: f64,
) -> Tensor<3> {
    run(|| {
        <Dispatch as KernelOps>::ember_self_attention(
            qkv.into_dispatch(),
            cos.into_dispatch(),
            sin.into_dispatch(),
            bias.into_dispatch(),
            heads,
            scale as f32,
        )
    })
}

/// [`self_attention`] and its attention weights `[batch, heads, seq, seq]`. Call only when
/// [`fused`] holds.
pub fn self_attention_with_weights(
    qkv: Tensor<3>,
    cos: Tensor<2>,
    sin: Tensor<2>,
    bias: Tensor<2>,
    heads: usize,
    scale: f64,
) -> (Tensor<3>, Tensor<4>) {
    let (out, probs) = <Dispatch as KernelOps>::ember_self_attention_probs(
        qkv.into_dispatch(),
        cos.into_dispatch(),
        sin.into_dispatch(),
        bias.into_dispatch(),
        heads,
        scale as f32,
    );
    (Tensor::from_dispatch(out), Tensor::from_dispatch(probs))
}

/// [`self_attention`] for `seq` new positions after `past` cached ones, for generation (no
/// gradients flow through it): the new positions' keys (with RoPE) and values are written into
/// the cache buffers `keys` and `values` at positions `past..past + seq` (in place when nothing
/// else holds the buffers), and each new query attends to positions `0..past + seq` of them.
/// `cos` and `sin` are the tables of positions `past..past + seq`. Returns the output and the
/// two buffers. Call only when [`fused`] holds.
///
/// # Shapes
/// - qkv: `[batch, seq, 3·d_model]`, cos and sin: `[seq, d_model / heads]`,
///   bias: `[seq, past + seq]`
/// - keys, values: `[batch, heads, capacity, d_model / heads]`, capacity ≥ `past + seq`
/// - returns `([batch, seq, d_model], keys, values)`
#[allow(clippy::too_many_arguments)]
pub fn cached_self_attention(
    qkv: Tensor<3>,
    cos: Tensor<2>,
    sin: Tensor<2>,
    (keys, values): (Tensor<4>, Tensor<4>),
    bias: Tensor<2>,
    past: usize,
    heads: usize,
    scale: f64,
) -> (Tensor<3>, Tensor<4>, Tensor<4>) {
    let (out, keys, values) = <Dispatch as KernelOps>::ember_cached_self_attention(
        qkv.into_dispatch(),
        cos.into_dispatch(),
        sin.into_dispatch(),
        keys.into_dispatch(),
        values.into_dispatch(),
        bias.into_dispatch(),
        past,
        heads,
        scale as f32,
    );
    (
        Tensor::from_dispatch(out),
        Tensor::from_dispatch(keys),
        Tensor::from_dispatch(values),
    )
}

/// Mean cross-entropy (nats) of logits against target ids. Call only when [`fused`] holds.
///
/// # Shapes
/// - logits: `[n, vocab]`, targets: `[n]` → `[1]`
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    run(|| <Dispatch as KernelOps>::ember_cross_entropy(logits.into_dispatch(), targets.into_dispatch()))
}

/// One AdamW update of a flattened parameter `θ` with gradient `c·g` and moments `m`, `v`
/// (outside any autodiff graph): returns the new `(θ, m, v)`, the moments updated in place
/// when nothing else holds them. `constants` are `[lr, β₁, β₂, ε, 1 − lr·λ, 1 − β₁ᵗ,
/// √(1 − β₂ᵗ), c]`. Call only when [`fused`] holds.
pub fn adamw(
    theta: Tensor<1>,
    grad: Tensor<1>,
    m: Tensor<1>,
    v: Tensor<1>,
    constants: [f32; 8],
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let (t, m, v) = <Dispatch as KernelOps>::ember_adamw(
        theta.into_dispatch(),
        grad.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        constants,
    );
    (
        Tensor::from_dispatch(t),
        Tensor::from_dispatch(m),
        Tensor::from_dispatch(v),
    )
}

/// `Σ x²` over every element of `x` (summed in f64, returned as f32), outside any autodiff
/// graph; `x.square().sum()` where [`fused`] does not hold.
///
/// # Shapes
/// - x: any → `[1]`
pub fn sum_squares<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    if !route::is_flex(&x) {
        return x.square().sum();
    }
    run(|| <Dispatch as KernelOps>::ember_sum_squares(x.into_dispatch()))
}

/// `(a + b, Σ (a + b)²)` outside any autodiff graph, in one pass where [`fused`] holds (the
/// sum written over `a`'s buffer when nothing else holds it); `a + b` and
/// [`sum_squares`] of it elsewhere. The square sum is the one [`sum_squares`] gives.
///
/// # Shapes
/// - a, b: `[n]` → `([n], [1])`
pub fn add_sum_squares(a: Tensor<1>, b: Tensor<1>) -> (Tensor<1>, Tensor<1>) {
    assert_eq!(a.dims(), b.dims(), "add_sum_squares adds tensors of equal length");
    if !route::is_flex(&a) {
        let sum = a + b;
        return (sum.clone(), sum.square().sum());
    }
    let (sum, squares) = <Dispatch as KernelOps>::ember_add_sum_squares(a.into_dispatch(), b.into_dispatch());
    (Tensor::from_dispatch(sum), Tensor::from_dispatch(squares))
}

/// `x · w + b`, the bias added to every row. Call only when [`fused`] holds.
///
/// # Shapes
/// - x: `[rows, k]`, w: `[k, n]`, b: `[n]` → `[rows, n]`
pub fn linear(x: Tensor<2>, w: Tensor<2>, b: Tensor<1>) -> Tensor<2> {
    run(|| <Dispatch as KernelOps>::ember_linear(x.into_dispatch(), w.into_dispatch(), b.into_dispatch()))
}

/// `lhs · rhs` over the last two axes (batch axes must be equal, not broadcast).
///
/// # Shapes
/// - lhs: `[..., m, k]`, rhs: `[..., k, n]` → `[..., m, n]`
pub fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    let fused = route::is_flex(&lhs) && lhs.dims()[..D - 2] == rhs.dims()[..D - 2];
    if !fused {
        return lhs.matmul(rhs);
    }
    run(|| <Dispatch as KernelOps>::ember_matmul(lhs.into_dispatch(), rhs.into_dispatch()))
}
