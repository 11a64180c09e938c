//! The kernels on Burn's flex backend.

/// Defines `$name(args)`, which runs `$body` compiled for the widest of three instruction sets
/// that the CPU has (checked once, at run time; see [`simd`]): AVX-512 (with FMA), AVX2 + FMA,
/// or the x86-64 baseline. The body is plain scalar Rust that LLVM vectorises; each step
/// doubles the vector width. Inside the body the constant `FMA` says whether fused multiply-adds
/// exist, for the math functions that take it ([`math::madd`]): fused where the instruction
/// exists, a multiply and an add where it would be a library call. The AVX-512 and AVX2 paths
/// compute the same operations in the same order, so they give the same results to the bit;
/// the baseline path, without fused multiply-adds, rounds differently.
macro_rules! vectorized {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(unused)]
            fn body<const FMA: bool>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    body::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body::<true>($($arg),*)
                }
                match $crate::flex::simd() {
                    // SAFETY: `simd` reports only instruction sets the CPU has.
                    $crate::flex::Simd::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::flex::Simd::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::flex::Simd::Baseline => {}
                }
            }
            body::<false>($($arg),*)
        }
    };
}

/// The instruction sets the kernels are compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Simd {
    /// x86-64's baseline (SSE2), or any other architecture.
    Baseline,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512 (F and VL) with FMA.
    Avx512,
}

/// The widest instruction set this CPU has, capped by the environment variable `EMBER_SIMD`
/// (`avx512`, `avx2` or `baseline`), which lets the tests run the narrower paths on a CPU that
/// has the wider ones. Decided once per process.
///
/// # Panics
/// If `EMBER_SIMD` is set to anything else.
pub(crate) fn simd() -> Simd {
    static LEVEL: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("EMBER_SIMD").as_deref() {
            Err(_) | Ok("avx512") => Simd::Avx512,
            Ok("avx2") => Simd::Avx2,
            Ok("baseline") => Simd::Baseline,
            Ok(other) => panic!("EMBER_SIMD={other:?} is not an instruction set; use avx512, avx2 or baseline"),
        };
        detected().min(cap)
    })
}

/// The widest instruction set this CPU has.
fn detected() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("fma") && has!("avx512f") && has!("avx512vl") {
            return Simd::Avx512;
        }
        if has!("fma") && has!("avx2") {
            return Simd::Avx2;
        }
    }
    Simd::Baseline
}

mod adamw;
mod attention;
mod cross_entropy;
mod gelu;
mod gemv;
mod layer_norm;
mod math;
mod matmul;
mod self_attention;
mod softmax;
mod tiles;

use std::borrow::Cow;

use burn_flex::{Flex, FlexTensor, Layout};
use burn_std::{Bytes, Shape};

use crate::ops::KernelOps;

impl KernelOps for Flex {
    fn ember_matmul(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
        matmul::matmul(lhs, rhs)
    }

    fn ember_linear(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        matmul::linear(x, w, b)
    }

    fn ember_sum_rows(g: FlexTensor) -> FlexTensor {
        matmul::sum_rows(g)
    }

    fn ember_gelu(x: FlexTensor) -> FlexTensor {
        gelu::forward(x)
    }

    fn ember_gelu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        gelu::backward(x, grad)
    }

    fn ember_layer_norm(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, eps: f64) -> FlexTensor {
        layer_norm::forward(x, weight, bias, eps)
    }

    fn ember_layer_norm_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        eps: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        layer_norm::backward(x, weight, grad, eps)
    }

    fn ember_softmax(scores: FlexTensor, bias: FlexTensor, scale: f32) -> FlexTensor {
        softmax::forward(scores, bias, scale)
    }

    fn ember_softmax_backward(probs: FlexTensor, grad: FlexTensor, scale: f32) -> FlexTensor {
        softmax::backward(probs, grad, scale)
    }

    fn ember_attention(q: FlexTensor, k: FlexTensor, v: FlexTensor, bias: FlexTensor, scale: f32) -> FlexTensor {
        attention::forward(q, k, v, bias, scale, false).0
    }

    fn ember_attention_probs(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        bias: FlexTensor,
        scale: f32,
    ) -> (FlexTensor, FlexTensor) {
        let (out, probs) = attention::forward(q, k, v, bias, scale, true);
        (out, probs.expect("probabilities kept"))
    }

    fn ember_attention_backward(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        bias: FlexTensor,
        probs: FlexTensor,
        grad: FlexTensor,
        scale: f32,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        attention::backward(q, k, v, bias, probs, grad, scale)
    }

    fn ember_self_attention(
        qkv: FlexTensor,
        cos: FlexTensor,
        sin: FlexTensor,
        bias: FlexTensor,
        heads: usize,
        scale: f32,
    ) -> FlexTensor {
        self_attention::self_forward(qkv, cos, sin, bias, heads, scale, false).0
    }

    fn ember_self_attention_probs(
        qkv: FlexTensor,
        cos: FlexTensor,
        sin: FlexTensor,
        bias: FlexTensor,
        heads: usize,
        scale: f32,
    ) -> (FlexTensor, FlexTensor) {
        let (out, probs) = self_attention::self_forward(qkv, cos, sin, bias, heads, scale, true);
        (out, probs.expect("probabilities kept"))
    }

    fn ember_self_attention_backward(
        qkv: FlexTensor,
        cos: FlexTensor,
        sin: FlexTensor,
        bias: FlexTensor,
        probs: FlexTensor,
        grad: FlexTensor,
        heads: usize,
        scale: f32,
    ) -> FlexTensor {
        self_attention::self_backward(qkv, cos, sin, bias, probs, grad, heads, scale)
    }

    fn ember_cached_self_attention(
        qkv: FlexTensor,
        cos: FlexTensor,
        sin: FlexTensor,
        keys: FlexTensor,
        values: FlexTensor,
        bias: FlexTensor,
        past: usize,
        heads: usize,
        scale: f32,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        self_attention::cached_forward(qkv, cos, sin, (keys, values), bias, past, heads, scale)
    }

    fn ember_cross_entropy(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
        cross_entropy::forward(logits, &int_values(targets)).0
    }

    fn ember_cross_entropy_probs(logits: FlexTensor, targets: FlexTensor) -> (FlexTensor, FlexTensor) {
        cross_entropy::forward(logits, &int_values(targets))
    }

    fn ember_cross_entropy_backward(probs: FlexTensor, targets: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let grad = contiguous_values(&grad)[0];
        cross_entropy::backward(probs, &int_values(targets), grad)
    }

    fn ember_adamw(
        theta: FlexTensor,
        grad: FlexTensor,
        m: FlexTensor,
        v: FlexTensor,
        c: [f32; 8],
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let [lr, beta1, beta2, eps, decay, bias1, sqrt_bias2, grad_factor] = c;
        adamw::step(
            theta,
            grad,
            m,
            v,
            adamw::AdamWStep {
                lr,
                beta1,
                beta2,
                eps,
                decay,
                bias1,
                sqrt_bias2,
                grad_factor,
            },
        )
    }

    fn ember_sum_squares(x: FlexTensor) -> FlexTensor {
        adamw::sum_squares(x)
    }

    fn ember_add_sum_squares(a: FlexTensor, b: FlexTensor) -> (FlexTensor, FlexTensor) {
        adamw::add_sum_squares(a, b)
    }
}

/// The values of an integer tensor as i64.
fn int_values(t: FlexTensor) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("integer values")
}

/// The values of `t` in row-major order: borrowed when `t` is contiguous, copied otherwise.
pub(crate) fn contiguous_values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("contiguous f32").to_vec()),
    }
}

/// A contiguous f32 tensor owning `values` (no copy, unlike `FlexTensor::empty`, which zeroes
/// a byte vector and then copies it into an aligned one).
pub(crate) fn from_vec(values: Vec<f32>, shape: Shape) -> FlexTensor {
    debug_assert_eq!(values.len(), shape.num_elements());
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        burn::tensor::DType::F32,
    )
}

/// An uninitialised f32 buffer of `n` values, for kernels that write every element (zeroing
/// it first would be one more pass over memory per result).
#[allow(clippy::uninit_vec)]
pub(crate) fn uninit(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: f32 has no invalid bit patterns, and every caller writes all `n` values before
    // reading any.
    unsafe { v.set_len(n) };
    v
}
