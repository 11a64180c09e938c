//! Scaled dot-product attention: `softmax(Q Kᵀ / √d_head + bias) V`.
//!
//! The code below is the reference formulation: it materialises the `[seq, past + seq]` score
//! matrix of every head. On the flex CPU backend, without attention dropout, a fused kernel
//! (`ember_kernels::attention`) computes the same numbers head by head and skips the key
//! columns the mask hides from a whole block of queries; `ember-kernels`' tests compare it
//! with this composition, values and gradients.

use burn::nn::Dropout;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use crate::linear::matmul;

/// Attends each query to the keys its mask bias allows.
///
/// `bias` holds `0` where attention is allowed and `−∞` where it is not (see
/// [`AttentionMask`](super::AttentionMask)). `dropout` acts on the attention weights, after the
/// softmax, and only while training.
///
/// # Shapes
/// - q: `[batch, n_heads, seq, d_head]`
/// - k, v: `[batch, n_heads, past + seq, d_head]`
/// - bias: `[seq, past + seq]`
/// - returns `[batch, n_heads, seq, d_head]`
pub fn scaled_dot_product_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<2>,
    dropout: &Dropout,
) -> Tensor<4> {
    let [_, _, _, d_head] = q.dims();
    let scale = 1.0 / (d_head as f64).sqrt();
    if ember_kernels::fused(&q) && !dropout_active(dropout, &q) {
        return ember_kernels::attention(q, k, v, bias, scale); // all of the below, fused
    }
    let scores = matmul(q, k.swap_dims(2, 3)); // [batch, n_heads, seq, past + seq]
    let weights = if ember_kernels::fused(&scores) {
        ember_kernels::softmax(scores, bias, scale) // the three lines below, in one pass
    } else {
        let scores = scores.mul_scalar(scale);
        let scores = scores.clone() + bias.cast(scores.dtype()).unsqueeze::<4>(); // masked entries become −∞
        softmax(scores, 3) // each row sums to 1 over the allowed keys
    };
    let weights = dropout.forward(weights);
    matmul(weights, v) // [batch, n_heads, seq, d_head]
}

/// Whether `dropout` would change its input here (training, on an autodiff device, p > 0).
pub(crate) fn dropout_active<const D: usize>(dropout: &Dropout, x: &Tensor<D>) -> bool {
    dropout.prob > 0.0 && dropout.training.is_enabled() && x.device().is_autodiff()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::AttentionMask;
    use crate::test_util::{assert_close, device, values};
    use burn::nn::DropoutConfig;
    use burn::tensor::TensorData;

    fn t4(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, shape), &device())
    }

    #[test]
    fn matches_hand_computed_weights() {
        // One head, d_head = 1, two positions. q = [1, 2], k = [1, 1], v = [10, 20].
        // Position 0 sees only key 0 → 10. Position 1 sees both keys with equal scores
        // (2·1 = 2 each) → mean of the values = 15.
        let q = t4(vec![1.0, 2.0], [1, 1, 2, 1]);
        let k = t4(vec![1.0, 1.0], [1, 1, 2, 1]);
        let v = t4(vec![10.0, 20.0], [1, 1, 2, 1]);
        let bias = AttentionMask::Causal.bias_table(2, &device());
        let out = scaled_dot_product_attention(q, k, v, bias, &DropoutConfig::new(0.0).init());
        assert_close(&values(&out), &[10.0, 15.0], 1e-5);
    }

    #[test]
    fn weights_follow_the_softmax_of_scaled_scores() {
        // d_head = 4, scale 1/2. One query against two keys with dot products 2 and 0:
        // weights softmax([1, 0]) = [e/(e+1), 1/(e+1)].
        let q = t4(vec![1.0, 1.0, 0.0, 0.0], [1, 1, 1, 4]);
        let k = t4(vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0], [1, 1, 2, 4]);
        let v = t4(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], [1, 1, 2, 4]);
        let bias = Tensor::<2>::zeros([1, 2], &device());
        let out = scaled_dot_product_attention(q, k, v, bias, &DropoutConfig::new(0.0).init());
        let e = std::f32::consts::E;
        assert_close(&values(&out), &[e / (e + 1.0), 1.0 / (e + 1.0), 0.0, 0.0], 1e-6);
    }
}
