//! One AdamW update of one parameter in a single pass (PyTorch's formulation):
//!
//! ```text
//! θ ← θ·(1 − lr·λ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
//! θ ← θ − (lr/(1−β₁ᵗ)) · m / (√v/√(1−β₂ᵗ) + ε)
//! ```

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{contiguous_values, from_vec, uninit};

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
}

/// Returns the updated `(θ, m, v)`.
pub fn step(
    theta: FlexTensor,
    grad: FlexTensor,
    m: FlexTensor,
    v: FlexTensor,
    s: AdamWStep,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = theta.layout().shape().clone();
    let (t, g, m, v) = (
        contiguous_values(&theta),
        contiguous_values(&grad),
        contiguous_values(&m),
        contiguous_values(&v),
    );
    let n = t.len();
    let (mut t2, mut m2, mut v2) = (uninit(n), uninit(n), uninit(n));
    if n <= CHUNK {
        update(&mut t2, &mut m2, &mut v2, &t, &g, &m, &v, s); // too little work to share
        let flat = burn_std::Shape::from(vec![n]);
        return (from_vec(t2, shape), from_vec(m2, flat.clone()), from_vec(v2, flat));
    }
    t2.par_chunks_mut(CHUNK)
        .zip(m2.par_chunks_mut(CHUNK))
        .zip(v2.par_chunks_mut(CHUNK))
        .zip(t.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
        .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
        .for_each(|((((t2, m2), v2), (t, g)), (m, v))| update(t2, m2, v2, t, g, m, v, s));
    let flat = burn_std::Shape::from(vec![n]);
    (from_vec(t2, shape), from_vec(m2, flat.clone()), from_vec(v2, flat))
}

vectorized! {
    #[allow(clippy::too_many_arguments)]
    fn update(t2: &mut [f32], m2: &mut [f32], v2: &mut [f32], t: &[f32], g: &[f32], m: &[f32], v: &[f32], s: AdamWStep) {
        let step = s.lr / s.bias1;
        // Every slice exactly n long, so that the loop needs no bounds checks and vectorises.
        let n = t.len();
        let (t2, m2, v2, g, m, v) = (&mut t2[..n], &mut m2[..n], &mut v2[..n], &g[..n], &m[..n], &v[..n]);
        for i in 0..n {
            let mi = s.beta1 * m[i] + (1.0 - s.beta1) * g[i];
            let vi = s.beta2 * v[i] + (1.0 - s.beta2) * g[i] * g[i];
            m2[i] = mi;
            v2[i] = vi;
            t2[i] = t[i] * s.decay - step * mi / (vi.sqrt() / s.sqrt_bias2 + s.eps);
        }
    }
}
