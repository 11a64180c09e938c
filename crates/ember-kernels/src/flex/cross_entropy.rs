//! Mean cross-entropy of logits against integer targets, with the softmax kept for the
//! backward pass:
//!
//! ```text
//! loss = −(1/n) Σ_rows log softmax(z)[target]
//! ∂z = (softmax(z) − onehot(target)) · ∂loss / n
//! ```

use burn_flex::FlexTensor;
use burn_std::Shape;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::math::exp;
use super::{Fresh, contiguous_values, from_vec, written};

const ROWS: usize = 64;

/// Returns `(loss [1], softmax [n, v])`.
pub fn forward(logits: FlexTensor, targets: &[i64]) -> (FlexTensor, FlexTensor) {
    let shape = logits.layout().shape().clone();
    let v = shape[shape.num_dims() - 1];
    let z = contiguous_values(&logits);
    let n = z.len() / v;
    assert_eq!(targets.len(), n, "one target per row");
    let mut probs = Fresh::new(z.len());
    // Per-chunk sums added in order: the same loss whichever thread took which chunk.
    let sums: Vec<f64> = probs
        .slots()
        .par_chunks_mut(v * ROWS)
        .zip(z.par_chunks(v * ROWS))
        .zip(targets.par_chunks(ROWS))
        .map(|((p, z), t)| rows(p, z, t))
        .collect();
    let nll: f64 = sums.iter().sum();
    let loss = from_vec(vec![(nll / n as f64) as f32], Shape::from(vec![1]));
    // SAFETY: the chunks cover probs, whole rows each, and `rows` writes every row.
    (loss, from_vec(unsafe { probs.assume_init() }, shape))
}

/// Softmax of each row into `p`; returns Σ −log p[target].
fn rows(p: &mut [MaybeUninit<f32>], z: &[f32], targets: &[i64]) -> f64 {
    let v = z.len() / targets.len();
    let mut nll = 0.0f64;
    for ((p, z), &t) in p.chunks_mut(v).zip(z.chunks(v)).zip(targets) {
        let (p, z) = (&mut p[..v], &z[..v]); // exact lengths: no bounds checks in the loops
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for i in 0..v {
            let e = exp::<false>(z[i] - max); // not in a `vectorized!` body: no FMA
            p[i].write(e);
            sum += e;
        }
        // SAFETY: the loop above wrote all v values.
        let p = unsafe { written(p) };
        let inv = 1.0 / sum;
        for x in p.iter_mut() {
            *x *= inv;
        }
        let t = usize::try_from(t)
            .ok()
            .filter(|&t| t < v)
            .unwrap_or_else(|| panic!("target {t} outside the {v} classes"));
        // log p[t] = z[t] − max − ln Σ
        nll -= (z[t] - max - sum.ln()) as f64;
    }
    nll
}

/// `∂z` from the kept softmax, the targets and `∂loss` (a scalar).
pub fn backward(probs: FlexTensor, targets: &[i64], grad: f32) -> FlexTensor {
    let shape = probs.layout().shape().clone();
    let v = shape[shape.num_dims() - 1];
    let p = contiguous_values(&probs);
    let n = p.len() / v;
    let scale = grad / n as f32;
    assert_eq!(targets.len(), n, "one target per row");
    let mut dz = Fresh::new(p.len());
    dz.slots()
        .par_chunks_mut(v * ROWS)
        .zip(p.par_chunks(v * ROWS))
        .zip(targets.par_chunks(ROWS))
        .for_each(|((dz, p), t)| {
            for ((dz, p), &t) in dz.chunks_mut(v).zip(p.chunks(v)).zip(t) {
                let (dz, p) = (&mut dz[..v], &p[..v]);
                for i in 0..v {
                    dz[i].write(p[i] * scale);
                }
                // SAFETY: the loop above wrote all v values.
                let dz = unsafe { written(dz) };
                dz[t as usize] -= scale;
            }
        });
    // SAFETY: the chunks cover dz, whole rows each, and every row is written above.
    from_vec(unsafe { dz.assume_init() }, shape)
}
