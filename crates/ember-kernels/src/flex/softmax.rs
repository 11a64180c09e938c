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
use super::{contiguous_values, from_vec};

/// Rows per parallel task.
const ROWS: usize = 128;

pub fn forward(scores: FlexTensor, bias: FlexTensor, scale: f32) -> FlexTensor {
    let shape = scores.layout().shape().clone();
    let rank = shape.num_dims();
    let (q, k) = (shape[rank - 2], shape[rank - 1]);
    let (s, b) = (contiguous_values(&scores), contiguous_values(&bias));
    assert_eq!(b.len(), q * k, "the mask bias must be [q, k]");
    let mut p = s.into_owned(); // the rows are normalised in place
    // Rows `first_row..` of the flattened scores; row r uses bias row r mod q.
    let rows = |p: &mut [f32], first_row: usize| {
        for (r, p) in p.chunks_mut(k).enumerate() {
            softmax_rows(p, &b[((first_row + r) % q) * k..][..k], k, &[k], k, scale);
        }
    };
    if p.len() <= k * ROWS {
        rows(&mut p, 0); // too little work to share
    } else {
        p.par_chunks_mut(k * ROWS)
            .enumerate()
            .for_each(|(chunk, p)| rows(p, chunk * ROWS));
    }
    from_vec(p, shape)
}

vectorized! {
    /// Softmax of `s · scale + bias` over the first `extents[r]` columns of each row `r` (row
    /// stride `stride`), in place; columns `extents[r]..n` (keys the mask hides from this row
    /// but not from its whole block) are set to 0, and columns `n..stride` left as they are.
    /// The loops run to the extent rounded up to a multiple of 8 (within `n`): the columns past
    /// the extent are masked (bias −∞, weight exactly 0), and whole 8-wide chunks keep short
    /// causal rows in vector code instead of a scalar tail with its own exponentials.
    pub(super) fn softmax_rows(
        s: &mut [f32],
        bias: &[f32],
        stride: usize,
        extents: &[usize],
        n: usize,
        scale: f32
    ) {
        for ((row, b), &m) in s.chunks_mut(stride).zip(bias.chunks(stride)).zip(extents) {
            let row = &mut row[..n];
            let m = m.next_multiple_of(8).min(n);
            let (p, hidden) = row.split_at_mut(m);
            let b = &b[..m];
            // Eight lanes through fixed-size chunks, so that both loops run as vector code.
            let mut maxes = [f32::NEG_INFINITY; 8];
            let mut chunks = p.chunks_exact_mut(8);
            let mut bias = b.chunks_exact(8);
            for (c, bc) in (&mut chunks).zip(&mut bias) {
                for j in 0..8 {
                    let z = c[j] * scale + bc[j];
                    c[j] = z;
                    maxes[j] = if z > maxes[j] { z } else { maxes[j] };
                }
            }
            for (x, &bx) in chunks.into_remainder().iter_mut().zip(bias.remainder()) {
                let z = *x * scale + bx;
                *x = z;
                maxes[0] = if z > maxes[0] { z } else { maxes[0] };
            }
            let max = maxes.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
            // Masked entries (−∞) get exactly zero weight.
            // (exp first, then a select: a branch around exp would keep the loop scalar)
            let weight = |z: f32| {
                let e = exp::<FMA>(z - max);
                if z == f32::NEG_INFINITY { 0.0 } else { e }
            };
            let mut lanes = [0.0f32; 8];
            let mut chunks = p.chunks_exact_mut(8);
            for c in &mut chunks {
                for j in 0..8 {
                    let e = weight(c[j]);
                    c[j] = e;
                    lanes[j] += e;
                }
            }
            for x in chunks.into_remainder() {
                let e = weight(*x);
                *x = e;
                lanes[0] += e;
            }
            let inv = 1.0 / lanes.iter().sum::<f32>();
            for x in p.iter_mut() {
                *x *= inv;
            }
            hidden.fill(0.0);
        }
    }
}

/// `∂S` from the softmax output `P` and `∂P`.
pub fn backward(probs: FlexTensor, grad: FlexTensor, scale: f32) -> FlexTensor {
    let shape = probs.layout().shape().clone();
    let k = shape[shape.num_dims() - 1];
    let (p, g) = (contiguous_values(&probs), contiguous_values(&grad));
    let mut ds = g.into_owned(); // ∂P becomes ∂S in place
    let full = vec![k; ROWS];
    if p.len() <= k * ROWS {
        softmax_backward_rows(&mut ds, &p, k, k, &full, scale);
    } else {
        ds.par_chunks_mut(k * ROWS)
            .zip(p.par_chunks(k * ROWS))
            .for_each(|(ds, p)| softmax_backward_rows(ds, p, k, k, &full, scale));
    }
    from_vec(ds, shape)
}

vectorized! {
    /// `∂S = scale · P ⊙ (∂P − Σ_row ∂P ⊙ P)` in place over `∂P` (row stride `n`), with `P`'s
    /// rows `p_stride` apart. Row `r`'s probabilities are zero from column `extents[r]` on (the
    /// keys its mask hides), so its `∂S` is too: computed up to the extent rounded up to a
    /// multiple of 8 (within `n`), set to zero after.
    pub(super) fn softmax_backward_rows(ds: &mut [f32], p: &[f32], n: usize, p_stride: usize, extents: &[usize], scale: f32) {
        for ((g, p), &m) in ds.chunks_mut(n).zip(p.chunks(p_stride)).zip(extents) {
            let m = m.next_multiple_of(8).min(n);
            let (g, zero) = g[..n].split_at_mut(m);
            let p = &p[..m]; // exact lengths: no bounds checks in the loops
            let mut lanes = [0.0f32; 8];
            let mut gc = g.chunks_exact(8);
            let mut pc = p.chunks_exact(8);
            for (g8, p8) in (&mut gc).zip(&mut pc) {
                for j in 0..8 {
                    lanes[j] += p8[j] * g8[j];
                }
            }
            for (&gx, &px) in gc.remainder().iter().zip(pc.remainder()) {
                lanes[0] += px * gx;
            }
            let dot: f32 = lanes.iter().sum();
            for (gx, &px) in g.iter_mut().zip(p) {
                *gx = scale * px * (*gx - dot);
            }
            zero.fill(0.0);
        }
    }
}
