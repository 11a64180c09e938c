//! Exact GELU, `x · Φ(x)` with `Φ(x) = ½(1 + erf(x/√2))`, and its derivative
//! `Φ(x) + x · φ(x)`, `φ(x) = e^{−x²/2}/√(2π)`, each in one pass.

use burn_flex::FlexTensor;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::math::{erf, erf_given_gaussian, exp, madd};
use super::{Fresh, contiguous_values, from_vec};

const CHUNK: usize = 1 << 14;
const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

pub fn forward(x: FlexTensor) -> FlexTensor {
    let shape = x.layout().shape().clone();
    let x = contiguous_values(&x);
    let mut y = Fresh::new(x.len());
    if x.len() <= CHUNK {
        forward_chunk(y.slots(), &x); // too little work to share
    } else {
        y.slots()
            .par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| forward_chunk(y, x));
    }
    // SAFETY: the chunks cover y, and forward_chunk writes every value of its chunk.
    from_vec(unsafe { y.assume_init() }, shape)
}

vectorized! {
    fn forward_chunk(y: &mut [MaybeUninit<f32>], x: &[f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            y.write(x * madd::<FMA>(0.5, erf::<FMA>(x * INV_SQRT2), 0.5));
        }
    }
}

pub fn backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
    let shape = x.layout().shape().clone();
    let (x, g) = (contiguous_values(&x), contiguous_values(&grad));
    assert_eq!(g.len(), x.len(), "one gradient per input");
    let mut dx = Fresh::new(x.len());
    if x.len() <= CHUNK {
        backward_chunk(dx.slots(), &x, &g);
    } else {
        dx.slots()
            .par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(dx, (x, g))| backward_chunk(dx, x, g));
    }
    // SAFETY: the chunks cover dx, and backward_chunk writes every value of its chunk.
    from_vec(unsafe { dx.assume_init() }, shape)
}

vectorized! {
    fn backward_chunk(dx: &mut [MaybeUninit<f32>], x: &[f32], g: &[f32]) {
        for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
            // e^{−x²/2} serves both: φ(x), and erf(x/√2), whose polynomial needs e^{−(x/√2)²}.
            let gaussian = exp::<FMA>(-0.5 * x * x);
            let cdf = madd::<FMA>(0.5, erf_given_gaussian::<FMA>(x * INV_SQRT2, gaussian), 0.5);
            let pdf = INV_SQRT_2PI * gaussian;
            dx.write(g * madd::<FMA>(x, pdf, cdf));
        }
    }
}
