//! One AdamW update of one parameter in a single pass (PyTorch's formulation), the gradient
//! first multiplied by a factor `c` (gradient clipping folded in):
//!
//! ```text
//! g ← c·g
//! θ ← θ·(1 − lr·λ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
//! θ ← θ − (lr/(1−β₁ᵗ)) · m / (√v/√(1−β₂ᵗ) + ε)
//! ```
//!
//! The moments are updated in place when nothing else holds them (the optimiser owns them, so
//! in training they almost always are; a copy of the optimiser shares them until one step); θ is written to a fresh buffer, since the model's parameter
//! still holds the old one.

use std::mem::MaybeUninit;

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{Fresh, contiguous_values, from_vec};

const CHUNK: usize = 1 << 15;

/// The optimiser's constants for one update.
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// `1 − lr·λ` (1 for parameters without decay).
    pub decay: f32,
    /// `1 − β₁ᵗ`.
    pub bias1: f32,
    /// `√(1 − β₂ᵗ)`.
    pub sqrt_bias2: f32,
    /// Multiplies the gradient before use (the clipping factor; 1 for none).
    pub grad_factor: f32,
}

/// Returns the updated `(θ, m, v)`.
pub fn step(
    theta: FlexTensor,
    grad: FlexTensor,
    mut m: FlexTensor,
    mut v: FlexTensor,
    s: AdamWStep,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = theta.layout().shape().clone();
    let (t, g) = (contiguous_values(&theta), contiguous_values(&grad));
    let n = t.len();
    assert_eq!(g.len(), n, "the gradient must have one value per parameter value");
    let mut t2 = Fresh::new(n);
    let flat = burn_std::Shape::from(vec![n]);
    // The moments in place when they are ours alone and contiguous, else copies.
    let owned = |x: &FlexTensor| x.is_contiguous() && x.layout().start_offset() == 0 && x.is_unique();
    if !owned(&m) {
        m = from_vec(contiguous_values(&m).into_owned(), flat.clone());
    }
    if !owned(&v) {
        v = from_vec(contiguous_values(&v).into_owned(), flat.clone());
    }
    {
        let m2 = m.try_storage_mut::<f32>().expect("unique moment");
        let v2 = v.try_storage_mut::<f32>().expect("unique moment");
        assert!(m2.len() >= n && v2.len() >= n, "moments shorter than the parameter");
        if n <= CHUNK {
            update(t2.slots(), m2, v2, &t, &g, s); // too little work to share
        } else {
            t2.slots()
                .par_chunks_mut(CHUNK)
                .zip(m2.par_chunks_mut(CHUNK))
                .zip(v2.par_chunks_mut(CHUNK))
                .zip(t.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
                .for_each(|(((t2, m2), v2), (t, g))| update(t2, m2, v2, t, g, s));
        }
    }
    // SAFETY: the chunks cover t2, and `update` writes every value of its chunk.
    (from_vec(unsafe { t2.assume_init() }, shape), m, v)
}

vectorized! {
    fn update(t2: &mut [MaybeUninit<f32>], m: &mut [f32], v: &mut [f32], t: &[f32], g: &[f32], s: AdamWStep) {
        let step = s.lr / s.bias1;
        // Every slice exactly n long, so that the loop needs no bounds checks and vectorises.
        let n = t.len();
        let (t2, m, v, g) = (&mut t2[..n], &mut m[..n], &mut v[..n], &g[..n]);
        for i in 0..n {
            let gi = g[i] * s.grad_factor;
            let mi = s.beta1 * m[i] + (1.0 - s.beta1) * gi;
            let vi = s.beta2 * v[i] + (1.0 - s.beta2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            t2[i].write(t[i] * s.decay - step * mi / (vi.sqrt() / s.sqrt_bias2 + s.eps));
        }
    }
}

/// `Σ x²` over all of `x`, accumulated in f64 per chunk, returned as a `[1]` f32 tensor.
pub fn sum_squares(x: FlexTensor) -> FlexTensor {
    let values = contiguous_values(&x);
    let total: f64 = if values.len() <= CHUNK {
        squares(&values)
    } else {
        // Per-chunk totals added in order: the same sum whichever thread took which chunk.
        let totals: Vec<f64> = values.par_chunks(CHUNK).map(squares).collect();
        totals.iter().sum()
    };
    from_vec(vec![total as f32], burn_std::Shape::from(vec![1]))
}

/// `(a + b, Σ (a + b)²)` in one pass: the sum over `a`'s buffer when `a` is ours alone, else
/// into a new one. The square sum is computed over the same blocks and chunks as
/// [`sum_squares`], so the two agree to the bit.
pub fn add_sum_squares(mut a: FlexTensor, b: FlexTensor) -> (FlexTensor, FlexTensor) {
    let shape = a.layout().shape().clone();
    let values = contiguous_values(&b);
    let n = values.len();
    assert_eq!(shape.num_elements(), n, "the two tensors must have equal lengths");
    let in_place = a.is_contiguous() && a.layout().start_offset() == 0 && a.is_unique();
    if !in_place {
        a = from_vec(contiguous_values(&a).into_owned(), shape.clone());
    }
    let sum = &mut a.try_storage_mut::<f32>().expect("a unique buffer")[..n];
    let total: f64 = if n <= CHUNK {
        add_squares(sum, &values)
    } else {
        let totals: Vec<f64> = sum
            .par_chunks_mut(CHUNK)
            .zip(values.par_chunks(CHUNK))
            .map(|(s, b)| add_squares(s, b))
            .collect();
        totals.iter().sum()
    };
    (a, from_vec(vec![total as f32], burn_std::Shape::from(vec![1])))
}

/// `a += b` over one chunk and `Σ a²` of the result, block by block as [`squares`].
fn add_squares(a: &mut [f32], b: &[f32]) -> f64 {
    let mut total = 0.0f64;
    add_squares_into(a, b, &mut total);
    total
}

vectorized! {
    fn add_squares_into(a: &mut [f32], b: &[f32], total: &mut f64) {
        for (a, b) in a.chunks_mut(64).zip(b.chunks(64)) {
            for (a, &b) in a.iter_mut().zip(b) {
                *a += b;
            }
            *total += block_squares(a) as f64;
        }
    }
}

/// `Σ x²` of one chunk: eight f32 partial sums per 64 values (vectorised), summed in f64.
fn squares(x: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for block in x.chunks(64) {
        total += block_squares(block) as f64;
    }
    total
}

#[inline(always)]
fn block_squares(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v * v;
        }
    }
    let rest: f32 = it.remainder().iter().map(|v| v * v).sum();
    lanes.iter().sum::<f32>() + rest
}
