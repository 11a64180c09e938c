//! Parameter initialisation from a seeded host random-number generator.
//!
//! Weights are drawn on the host from a seeded ChaCha8 stream and then uploaded. The same seed
//! therefore gives bit-identical weights on every backend (CPU or GPU), independent of the
//! backend's own random-number generator.
//!
//! GPT-2 initialisation, which the model crate applies through these helpers: every weight
//! matrix and the embedding N(0, 0.02²); the output projections of the residual branches
//! N(0, (0.02/√(2·n_layer))²), so that the variance added to the residual stream does not grow
//! with depth; biases zero; LayerNorm gains one and shifts zero.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};

use crate::linear::Linear;
use rand_chacha::ChaCha8Rng;

/// The generator every initialiser draws from.
pub type InitRng = ChaCha8Rng;

/// A generator seeded with `seed`.
pub fn seeded(seed: u64) -> InitRng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` samples of N(0, std²), by the Box–Muller transform.
pub fn normal_vec(rng: &mut InitRng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // `1 - u` lies in (0, 1], so the logarithm is finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        out.push((std * radius * angle.cos()) as f32);
        out.push((std * radius * angle.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// A parameter of the given shape drawn from N(0, std²).
pub fn normal<const D: usize>(shape: [usize; D], std: f64, rng: &mut InitRng, device: &Device) -> Param<Tensor<D>> {
    let n = shape.iter().product();
    let data = TensorData::new(normal_vec(rng, n, std), shape);
    Param::from_tensor(Tensor::from_data(data, device))
}

/// A parameter filled with `value`.
pub fn constant<const D: usize>(shape: [usize; D], value: f32, device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::full(shape, value, device))
}

/// A linear layer `y = x W + b` with `W: [d_input, d_output]` drawn from N(0, std²) and `b = 0`.
///
/// The weight is stored `[d_input, d_output]`, the transpose of PyTorch's
/// `[out_features, in_features]`.
pub fn linear(d_input: usize, d_output: usize, std: f64, rng: &mut InitRng, device: &Device) -> Linear {
    Linear {
        weight: normal([d_input, d_output], std, rng, device),
        bias: constant([d_output], 0.0, device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_have_the_requested_moments() {
        let mut rng = seeded(7);
        let xs = normal_vec(&mut rng, 200_000, 0.02);
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 2e-4, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 2e-4, "std {}", var.sqrt());
    }

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let a = normal_vec(&mut seeded(3), 9, 1.0);
        let b = normal_vec(&mut seeded(3), 9, 1.0);
        let c = normal_vec(&mut seeded(4), 9, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 9);
    }
}
