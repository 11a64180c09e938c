//! A fully connected layer: `y = x W + b`.

use burn::module::{Module, Param};
use burn::tensor::Tensor;

/// `y = x W + b`.
///
/// The weight is stored `[d_input, d_output]` (Burn's convention, the transpose of PyTorch's
/// `[out_features, in_features]`), so that `x W` needs no transpose.
#[derive(Module, Debug)]
pub struct Linear {
    /// Shape `[d_input, d_output]`.
    pub weight: Param<Tensor<2>>,
    /// Shape `[d_output]`.
    pub bias: Param<Tensor<1>>,
}

impl Linear {
    /// # Shapes
    /// - x: `[..., d_input]` → `[..., d_output]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let d_input = dims[D - 1];
        let rows = dims[..D - 1].iter().product();
        let [_, d_output] = self.weight.dims();
        let x = x.reshape([rows, d_input]); // [rows, d_input]
        let y = if ember_kernels::fused(&x) {
            ember_kernels::linear(x, self.weight.val(), self.bias.val()) // the line below, fused
        } else {
            matmul(x, self.weight.val()) + self.bias.val().unsqueeze() // [rows, d_output]
        };
        let mut out = dims;
        out[D - 1] = d_output;
        y.reshape(out)
    }
}

/// `lhs · rhs` over the last two axes: a fused CPU kernel where one serves (see
/// `ember-kernels`), Burn's `matmul` elsewhere. The two compute the same product.
pub fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    ember_kernels::matmul(lhs, rhs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, device, values};

    #[test]
    fn computes_x_w_plus_b_on_any_leading_shape() {
        let device = device();
        let layer = Linear {
            weight: Param::from_tensor(Tensor::from_data([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], &device)),
            bias: Param::from_tensor(Tensor::from_data([0.5, 0.0, -1.0], &device)),
        };
        // [1, 2]·W = [1, 0, 6]; [0, 1]·W = [0, -1, 3]
        let x = Tensor::<3>::from_data([[[1.0, 2.0], [0.0, 1.0]]], &device);
        let y = layer.forward(x);
        assert_eq!(y.dims(), [1, 2, 3]);
        assert_close(&values(&y), &[1.5, 0.0, 5.0, 0.5, -1.0, 2.0], 1e-6);
    }
}
