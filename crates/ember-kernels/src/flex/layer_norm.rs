//! LayerNorm over the last axis, forward and backward, one row at a time:
//!
//! ```text
//! μ = mean(x), σ⁻¹ = 1/√(var(x) + ε), x̂ = (x − μ)σ⁻¹, y = x̂ ⊙ w + b
//! ∂x = σ⁻¹ (g − mean(g) − x̂ · mean(g ⊙ x̂)),  g = ∂y ⊙ w
//! ∂w = Σ_rows ∂y ⊙ x̂,  ∂b = Σ_rows ∂y
//! ```

use burn_flex::FlexTensor;
use burn_std::Shape;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{Fresh, contiguous_values, from_vec};

/// Rows per parallel task.
const ROWS: usize = 64;

/// Σ f(a[i], b[i]) over two equally long rows, in eight interleaved partial sums over
/// fixed-size chunks, so that the loop runs as vector code.
#[inline(always)]
fn sum_by(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b[..a.len()].as_chunks::<8>();
    let mut lanes = [0.0f32; 8];
    for (x, y) in a8.iter().zip(b8) {
        for j in 0..8 {
            lanes[j] += f(x[j], y[j]);
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(&x, &y)| f(x, y)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Mean and 1/√(biased variance + eps) of a row.
#[inline(always)]
fn stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum_by(row, row, |v, _| v) / n;
    let var = sum_by(row, row, |v, _| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

pub fn forward(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, eps: f64) -> FlexTensor {
    let shape = x.layout().shape().clone();
    let d = shape[shape.num_dims() - 1];
    let (x, w, b) = (
        contiguous_values(&x),
        contiguous_values(&weight),
        contiguous_values(&bias),
    );
    let eps = eps as f32;
    assert!(w.len() == d && b.len() == d, "one weight and one bias per feature");
    let mut y = Fresh::new(x.len());
    if x.len() <= d * ROWS {
        forward_rows(y.slots(), &x, &w, &b, eps); // too little work to share
    } else {
        y.slots()
            .par_chunks_mut(d * ROWS)
            .zip(x.par_chunks(d * ROWS))
            .for_each(|(y, x)| forward_rows(y, x, &w, &b, eps));
    }
    // SAFETY: the chunks cover y, whole rows each, and forward_rows writes every row.
    from_vec(unsafe { y.assume_init() }, shape)
}

vectorized! {
    fn forward_rows(y: &mut [MaybeUninit<f32>], x: &[f32], w: &[f32], b: &[f32], eps: f32) {
        let d = w.len();
        let (w, b) = (&w[..d], &b[..d]);
        for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
            let (y, x) = (&mut y[..d], &x[..d]);
            let (mean, rstd) = stats(x, eps);
            for i in 0..d {
                y[i].write((x[i] - mean) * rstd * w[i] + b[i]);
            }
        }
    }
}

vectorized! {
    /// ∂x of the rows in `x`, and their contributions added to ∂w and ∂b.
    fn backward_rows(
        dx: &mut [MaybeUninit<f32>],
        x: &[f32],
        g: &[f32],
        w: &[f32],
        eps: f32,
        dw: &mut [f32],
        db: &mut [f32]
    ) {
        let d = w.len();
        let (mut xhat, mut gw) = (vec![0.0f32; d], vec![0.0f32; d]);
        let (w, dw, db) = (&w[..d], &mut dw[..d], &mut db[..d]);
        let (xhat, gw) = (&mut xhat[..d], &mut gw[..d]);
        for ((dx, x), dy) in dx.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
            // Every slice exactly d long, so that the loops below need no bounds checks.
            let (dx, x, dy) = (&mut dx[..d], &x[..d], &dy[..d]);
            let (mean, rstd) = stats(x, eps);
            for i in 0..d {
                xhat[i] = (x[i] - mean) * rstd;
                dw[i] += dy[i] * xhat[i];
                db[i] += dy[i];
            }
            let mean_g = sum_by(dy, w, |g, w| g * w) / d as f32;
            for i in 0..d {
                gw[i] = dy[i] * w[i]; // g = ∂y ⊙ w
            }
            let mean_gx = sum_by(gw, xhat, |g, xh| g * xh) / d as f32;
            for i in 0..d {
                dx[i].write(rstd * (gw[i] - mean_g - xhat[i] * mean_gx));
            }
        }
    }
}

/// Returns `(∂x, ∂w, ∂b)`.
pub fn backward(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, eps: f64) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = x.layout().shape().clone();
    let d = shape[shape.num_dims() - 1];
    let (x, w, g) = (
        contiguous_values(&x),
        contiguous_values(&weight),
        contiguous_values(&grad),
    );
    let eps = eps as f32;
    assert!(
        w.len() == d && g.len() == x.len(),
        "one weight per feature, one gradient per input"
    );
    let mut dx = Fresh::new(x.len());
    // Each task also sums its rows' contributions to ∂w and ∂b; the partial sums are added after.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .slots()
        .par_chunks_mut(d * ROWS)
        .zip(x.par_chunks(d * ROWS).zip(g.par_chunks(d * ROWS)))
        .map(|(dx, (x, g))| {
            let (mut dw, mut db) = (vec![0.0f32; d], vec![0.0f32; d]);
            backward_rows(dx, x, g, &w, eps, &mut dw, &mut db);
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![0.0f32; d], vec![0.0f32; d]);
    for (pw, pb) in partials {
        for i in 0..d {
            dw[i] += pw[i];
            db[i] += pb[i];
        }
    }
    (
        // SAFETY: the chunks cover dx, whole rows each, and backward_rows writes every row.
        from_vec(unsafe { dx.assume_init() }, shape),
        from_vec(dw, Shape::from(vec![d])),
        from_vec(db, Shape::from(vec![d])),
    )
}
