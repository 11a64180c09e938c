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
                /// # Safety
                /// The CPU must have AVX-512 (F, VL), AVX2 and FMA.
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    body::<true>($($arg),*)
                }
                /// # Safety
                /// The CPU must have AVX2 and FMA.
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
/// has the wider ones. Decided once per process. A value that names no instruction set caps
/// nothing here: [`simd_cap`] reports it, and the command line checks it before any kernel runs.
pub(crate) fn simd() -> Simd {
    static LEVEL: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| detected().min(simd_cap().unwrap_or(Simd::Avx512)))
}

/// The cap `EMBER_SIMD` sets: the widest set when unset, an error naming the value otherwise.
pub(crate) fn simd_cap() -> Result<Simd, String> {
    match std::env::var("EMBER_SIMD") {
        Err(std::env::VarError::NotPresent) => Ok(Simd::Avx512),
        Ok(value) => match value.as_str() {
            "avx512" => Ok(Simd::Avx512),
            "avx2" => Ok(Simd::Avx2),
            "baseline" => Ok(Simd::Baseline),
            other => Err(format!(
                "EMBER_SIMD={other:?} is not an instruction set: set it to avx512, avx2 or baseline, or unset it"
            )),
        },
        Err(std::env::VarError::NotUnicode(_)) => {
            Err("EMBER_SIMD is not valid text: set it to avx512, avx2 or baseline, or unset it".into())
        }
    }
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
mod mat;
mod math;
mod matmul;
mod self_attention;
mod softmax;
mod tiles;

use std::borrow::Cow;
use std::mem::MaybeUninit;

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

/// `n` f32 values a kernel is about to write: the spare capacity of an empty `Vec`, so that
/// no pass zeroes memory every value of which is overwritten. The kernel writes through
/// [`slots`](Self::slots) or [`as_mut_ptr`](Self::as_mut_ptr); the values become the `Vec`'s
/// only through [`assume_init`](Self::assume_init), once every one is written.
pub(crate) struct Fresh {
    values: Vec<f32>,
    n: usize,
}

impl Fresh {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            values: Vec::with_capacity(n),
            n,
        }
    }

    /// The `n` values, none of them written yet.
    pub(crate) fn slots(&mut self) -> &mut [MaybeUninit<f32>] {
        &mut self.values.spare_capacity_mut()[..self.n]
    }

    /// The first value, for kernels that write through pointers.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut f32 {
        self.values.as_mut_ptr()
    }

    /// The written values.
    ///
    /// # Safety
    /// Every one of the `n` values must have been written.
    pub(crate) unsafe fn assume_init(mut self) -> Vec<f32> {
        // SAFETY: the capacity is at least n, and the caller wrote all n values.
        unsafe { self.values.set_len(self.n) };
        self.values
    }
}

/// `slots` as the values they hold.
///
/// # Safety
/// Every value of `slots` must have been written.
pub(crate) unsafe fn written(slots: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: MaybeUninit<f32> has f32's layout, and the caller wrote every value.
    unsafe { &mut *(slots as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Writes `values` into `slots` (of the same length).
pub(crate) fn write_all(slots: &mut [MaybeUninit<f32>], values: &[f32]) {
    assert_eq!(slots.len(), values.len(), "one value per slot");
    for (slot, &v) in slots.iter_mut().zip(values) {
        slot.write(v);
    }
}
