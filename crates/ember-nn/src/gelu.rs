//! GELU, the Gaussian error linear unit: `gelu(x) = x · Φ(x)`, with `Φ` the standard normal CDF.

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// Which formula computes GELU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gelu {
    /// Exact: `x · ½ · (1 + erf(x / √2))`. The reference architecture's choice.
    #[default]
    Erf,
    /// The tanh approximation, `x · ½ · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`, written as
    /// `x · σ(2√(2/π) · (x + 0.044715 x³))`. Within 1e-3 of the exact form, and cheaper on CPU.
    Tanh,
}

impl Gelu {
    /// Applies the activation element-wise.
    ///
    /// # Shapes
    /// - x: any → same
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Gelu::Erf => {
                if ember_kernels::fused(&x) {
                    return ember_kernels::gelu(x); // the same function, in one pass (and one back)
                }
                let cdf = x
                    .clone()
                    .div_scalar(std::f64::consts::SQRT_2)
                    .erf()
                    .add_scalar(1.0)
                    .mul_scalar(0.5);
                x * cdf
            }
            Gelu::Tanh => {
                let k = 2.0 * (2.0 / std::f64::consts::PI).sqrt();
                let inner = x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044715);
                x * sigmoid(inner.mul_scalar(k))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, device, values};

    fn xs() -> Tensor<1> {
        Tensor::from_data([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0], &device())
    }

    #[test]
    fn exact_gelu_matches_known_values() {
        // x·Φ(x) with Φ(-3)=0.0013499, Φ(-1)=0.1586553, Φ(0.5)=0.6914625, Φ(1)=0.8413447,
        // Φ(2)=0.9772499 (standard normal table).
        let expected = [-0.0040497, -0.1586553, 0.0, 0.3457312, 0.8413447, 1.9544997];
        assert_close(&values(&Gelu::Erf.forward(xs())), &expected, 1e-6);
    }

    #[test]
    fn tanh_approximation_stays_close_to_exact() {
        let exact = values(&Gelu::Erf.forward(xs()));
        let approx = values(&Gelu::Tanh.forward(xs()));
        assert_close(&approx, &exact, 1e-3);
        // and is a different function: at x = 1 it gives 0.8411920.
        assert!((approx[4] - 0.841192).abs() < 1e-5);
    }
}
