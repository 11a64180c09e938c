//! The position-wise feed-forward network: `proj(gelu(fc(x)))`, widening to `4·d_model` and back.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::gelu::Gelu;
use crate::init::{self, InitRng};
use crate::linear::Linear;

/// Configuration of an [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Width of the hidden layer (`4·d_model` in GPT models).
    pub d_ff: usize,
    /// The activation between the two layers.
    #[config(default = "Gelu::Erf")]
    pub gelu: Gelu,
    /// Init std of the widening layer.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Init std of the output projection (GPT-2 scales it by 1/√(2·n_layer)).
    #[config(default = 0.02)]
    pub proj_init_std: f64,
}

/// Two linear layers with a GELU between them.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Widening layer, weight `[d_model, d_ff]`, bias `[d_ff]`.
    pub fc: Linear,
    /// Output projection, weight `[d_ff, d_model]`, bias `[d_model]`.
    pub proj: Linear,
    /// The activation.
    #[module(skip)]
    pub gelu: Gelu,
}

impl MlpConfig {
    /// Creates the layers.
    pub fn init(&self, rng: &mut InitRng, device: &Device) -> Mlp {
        Mlp {
            fc: init::linear(self.d_model, self.d_ff, self.init_std, rng, device),
            proj: init::linear(self.d_ff, self.d_model, self.proj_init_std, rng, device),
            gelu: self.gelu,
        }
    }
}

impl Mlp {
    /// # Shapes
    /// - x: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.fc.forward(x); // [batch, seq, d_ff]
        let h = self.gelu.forward(h);
        self.proj.forward(h) // [batch, seq, d_model]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, device, values};
    use burn::module::Param;

    #[test]
    fn computes_proj_of_gelu_of_fc_by_hand() {
        let device = device();
        // d_model = 1, d_ff = 2: fc = [1, -1], bias [0, 1]; proj = [2, 3]ᵀ, bias [0.5].
        let mut mlp = MlpConfig::new(1, 2).init(&mut init::seeded(0), &device);
        mlp.fc.weight = Param::from_tensor(Tensor::from_data([[1.0, -1.0]], &device));
        mlp.fc.bias = Param::from_tensor(Tensor::from_data([0.0, 1.0], &device));
        mlp.proj.weight = Param::from_tensor(Tensor::from_data([[2.0], [3.0]], &device));
        mlp.proj.bias = Param::from_tensor(Tensor::from_data([0.5], &device));
        // x = 1: hidden = [1, 0] → gelu = [0.8413447, 0] → 2·0.8413447 + 0.5
        let out = mlp.forward(Tensor::from_data([[[1.0]]], &device));
        assert_close(&values(&out), &[2.0 * 0.8413447 + 0.5], 1e-6);
    }

    #[test]
    fn init_gives_zero_biases_and_the_configured_shapes() {
        let mlp = MlpConfig::new(4, 16).init(&mut init::seeded(0), &device());
        assert_eq!(mlp.fc.weight.dims(), [4, 16]);
        assert_eq!(mlp.proj.weight.dims(), [16, 4]);
        assert!(values(&mlp.fc.bias.val()).iter().all(|&b| b == 0.0));
    }
}
