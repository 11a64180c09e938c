//! The attention softmax with its scale and additive mask fused in:
//!
//! ```text
//! P = softmax(S · scale + bias)          row-wise over the last axis
//! ∂S = scale · P ⊙ (∂P − Σ_row ∂P ⊙ P)
//! ```
//!
//! `bias` (`[q, k]`, 0 or −∞) is shared by every batch and head.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::math::exp;
use super::{contiguous_values, from_vec, uninit};

/// Rows per parallel task.
const ROWS: usize = 128;

pub fn forward(scores: FlexTensor, bias: FlexTensor, scale: f32) -> FlexTensor {
    let shape = scores.layout().shape().clone();
    let rank = shape.num_dims();
    let (q, k) = (shape[rank - 2], shape[rank - 1]);
    let (s, b) = (contiguous_values(&scores), contiguous_values(&bias));
    assert_eq!(b.len(), q * k, "the mask bias must be [q, k]");
    let mut p = uninit(s.len());
    if s.len() <= k * ROWS {
        forward_rows(&mut p, &s, &b, 0, q, scale); // too little work to share
    } else {
        p.par_chunks_mut(k * ROWS)
            .zip(s.par_chunks(k * ROWS))
            .enumerate()
            .for_each(|(chunk, (p, s))| {
                forward_rows(p, s, &b, chunk * ROWS, q, scale);
            });
    }
    from_vec(p, shape)
}

vectorized! {
    /// Rows `first_row..` of the flattened scores (row r uses bias row r mod q).
    fn forward_rows(p: &mut [f32], s: &[f32], bias: &[f32], first_row: usize, q: usize, scale: f32) {
        let k = bias.len() / q;
        for (r, (p, s)) in p.chunks_mut(k).zip(s.chunks(k)).enumerate() {
            let b = &bias[((first_row + r) % q) * k..][..k];
            let (p, s) = (&mut p[..k], &s[..k]); // exact lengths: no bounds checks in the loops
            // Eight running maxima (a plain `max` fold would not vectorise).
            let mut maxes = [f32::NEG_INFINITY; 8];
            for i in 0..k {
                let z = s[i] * scale + b[i];
                p[i] = z;
                let lane = &mut maxes[i % 8];
                *lane = if z > *lane { z } else { *lane };
            }
            let max = maxes.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
            let mut lanes = [0.0f32; 8];
            for i in 0..k {
                // Masked entries (−∞) get exactly zero weight.
                let e = if p[i] == f32::NEG_INFINITY { 0.0 } else { exp(p[i] - max) };
                p[i] = e;
                lanes[i % 8] += e;
            }
            let inv = 1.0 / lanes.iter().sum::<f32>();
            for v in p.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// `∂S` from the softmax output `P` and `∂P`.
pub fn backward(probs: FlexTensor, grad: FlexTensor, scale: f32) -> FlexTensor {
    let shape = probs.layout().shape().clone();
    let k = shape[shape.num_dims() - 1];
    let (p, g) = (contiguous_values(&probs), contiguous_values(&grad));
    let mut ds = uninit(p.len());
    if p.len() <= k * ROWS {
        backward_rows(&mut ds, &p, &g, k, scale);
    } else {
        ds.par_chunks_mut(k * ROWS)
            .zip(p.par_chunks(k * ROWS).zip(g.par_chunks(k * ROWS)))
            .for_each(|(ds, (p, g))| backward_rows(ds, p, g, k, scale));
    }
    from_vec(ds, shape)
}

vectorized! {
    fn backward_rows(ds: &mut [f32], p: &[f32], g: &[f32], k: usize, scale: f32) {
        for ((ds, p), g) in ds.chunks_mut(k).zip(p.chunks(k)).zip(g.chunks(k)) {
            let (ds, p, g) = (&mut ds[..k], &p[..k], &g[..k]);
            let mut lanes = [0.0f32; 8];
            for i in 0..k {
                lanes[i % 8] += p[i] * g[i];
            }
            let dot: f32 = lanes.iter().sum();
            for i in 0..k {
                ds[i] = scale * p[i] * (g[i] - dot);
            }
        }
    }
}
