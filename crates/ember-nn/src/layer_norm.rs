//! Layer normalisation over the last axis: `(x − mean) / √(var + eps) · weight + bias`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::init;

/// Configuration of a [`LayerNorm`].
#[derive(Config, Debug)]
pub struct LayerNormConfig {
    /// Width of the normalised axis.
    pub d_model: usize,
    /// Added to the variance before the square root.
    #[config(default = 1e-5)]
    pub eps: f64,
}

/// LayerNorm with a learned gain and shift.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Gain, `[d_model]`, initialised to ones.
    pub weight: Param<Tensor<1>>,
    /// Shift, `[d_model]`, initialised to zeros.
    pub bias: Param<Tensor<1>>,
    /// Added to the variance.
    pub eps: f64,
}

impl LayerNormConfig {
    /// Creates the layer with unit gain and zero shift.
    pub fn init(&self, device: &Device) -> LayerNorm {
        LayerNorm {
            weight: init::constant([self.d_model], 1.0, device),
            bias: init::constant([self.d_model], 0.0, device),
            eps: self.eps,
        }
    }
}

impl LayerNorm {
    /// Normalises each vector along the last axis, with the biased variance (as PyTorch).
    ///
    /// # Shapes
    /// - x: `[..., d_model]` → `[..., d_model]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if ember_kernels::fused(&x) {
            // The same computation, in one pass over the rows (and one back).
            return ember_kernels::layer_norm(x, self.weight.val(), self.bias.val(), self.eps);
        }
        let (var, mean) = x.clone().var_mean_bias(D - 1); // [..., 1] each
        let normed = (x - mean).div(var.add_scalar(self.eps).sqrt());
        normed * self.weight.val().unsqueeze() + self.bias.val().unsqueeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, device, values};

    #[test]
    fn normalises_to_zero_mean_unit_variance() {
        // [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
        let ln = LayerNormConfig::new(4).init(&device());
        let out = ln.forward(Tensor::<2>::from_data([[1.0, 2.0, 3.0, 4.0]], &device()));
        let s = (1.25f32 + 1e-5).sqrt();
        assert_close(&values(&out), &[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 1e-6);
    }

    #[test]
    fn applies_gain_and_shift() {
        let device = device();
        let mut ln = LayerNormConfig::new(2).init(&device);
        ln.weight = Param::from_tensor(Tensor::from_data([2.0, 3.0], &device));
        ln.bias = Param::from_tensor(Tensor::from_data([0.5, -0.5], &device));
        // [0, 2] normalises to ±1/√(1 + 1e-5).
        let out = ln.forward(Tensor::<2>::from_data([[0.0, 2.0]], &device));
        let n = 1.0 / (1.0f32 + 1e-5).sqrt();
        assert_close(&values(&out), &[-2.0 * n + 0.5, 3.0 * n - 0.5], 1e-6);
    }
}
