//! Scaled dot-product attention: `softmax(Q Kᵀ / √d_head + bias) V`.
//!
//! The composition below materialises the `[seq, keys]` score matrix of every head. On the
//! flex CPU backend a fused kernel computes the same numbers head by head, and on GPU backends
//! Burn's fused attention serves evaluation and generation (`fused.rs`); tests compare them
//! with the composition, values and gradients.

use burn::nn::Dropout;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

/// Attends each query to the keys its bias allows.
///
/// `bias` holds `0` where attention is allowed and `−∞` where it is not (see
/// [`AttentionMask`](super::AttentionMask)), plus any score penalties (ALiBi), either shared by
/// the heads (`[1, seq, keys]`) or per head. `dropout` acts on the attention weights, after the
/// softmax, and only while training.
///
/// # Shapes
/// - q: `[batch, n_heads, seq, d_head]`
/// - k, v: `[batch, n_heads, keys, d_head]`
/// - bias: `[1 | n_heads, seq, keys]`
/// - returns `[batch, n_heads, seq, d_head]`
pub fn scaled_dot_product_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<3>,
    dropout: &Dropout,
) -> Tensor<4> {
    match super::fused::attention(&q, &k, &v, &bias, dropout) {
        Some(y) => y, // the composition below, as one CPU kernel
        None => composition(q, k, v, bias, dropout),
    }
}

/// [`scaled_dot_product_attention`] as Burn operations, on every backend.
///
/// # Shapes
/// - as [`scaled_dot_product_attention`]
pub fn composition(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<3>, dropout: &Dropout) -> Tensor<4> {
    let (scores, scale) = (q.clone().matmul(k.swap_dims(2, 3)), scale(&q)); // [batch, n_heads, seq, keys]
    let weights = softmax_weights(scores, scale, bias);
    let weights = dropout.forward(weights);
    weights.matmul(v) // [batch, n_heads, seq, d_head]
}

/// `1 / √d_head`.
pub(crate) fn scale(q: &Tensor<4>) -> f64 {
    1.0 / (q.dims()[3] as f64).sqrt()
}

/// `softmax(scores · scale + bias)` over the keys.
///
/// # Shapes
/// - scores: `[batch, n_heads, seq, keys]`, bias: `[1 | n_heads, seq, keys]` → as scores
pub(crate) fn softmax_weights(scores: Tensor<4>, scale: f64, bias: Tensor<3>) -> Tensor<4> {
    let scores = scores.mul_scalar(scale);
    let scores = scores.clone() + bias.cast(scores.dtype()).unsqueeze::<4>(); // masked entries become −∞
    softmax(scores, 3) // each row sums to 1 over the allowed keys
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

    fn no_dropout() -> Dropout {
        DropoutConfig::new(0.0).init()
    }

    #[test]
    fn matches_hand_computed_weights() {
        // One head, d_head = 1, two positions. q = [1, 2], k = [1, 1], v = [10, 20].
        // Position 0 sees only key 0 → 10. Position 1 sees both keys with equal scores
        // (2·1 = 2 each) → mean of the values = 15.
        let q = t4(vec![1.0, 2.0], [1, 1, 2, 1]);
        let k = t4(vec![1.0, 1.0], [1, 1, 2, 1]);
        let v = t4(vec![10.0, 20.0], [1, 1, 2, 1]);
        let bias = AttentionMask::Causal.bias_table(2, &device()).unsqueeze::<3>();
        let out = scaled_dot_product_attention(q, k, v, bias, &no_dropout());
        assert_close(&values(&out), &[10.0, 15.0], 1e-5);
    }

    #[test]
    fn weights_follow_the_softmax_of_scaled_scores() {
        // d_head = 4, scale 1/2. One query against two keys with dot products 2 and 0:
        // weights softmax([1, 0]) = [e/(e+1), 1/(e+1)].
        let q = t4(vec![1.0, 1.0, 0.0, 0.0], [1, 1, 1, 4]);
        let k = t4(vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0], [1, 1, 2, 4]);
        let v = t4(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], [1, 1, 2, 4]);
        let bias = Tensor::<3>::zeros([1, 1, 2], &device());
        let e = std::f32::consts::E;
        let expected = [e / (e + 1.0), 1.0 / (e + 1.0)];
        let out = scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), bias.clone(), &no_dropout());
        assert_close(&values(&out), &[expected[0], expected[1], 0.0, 0.0], 1e-6);
        let (_, weights) = crate::inspect::sdpa_with_weights(q, k, v, bias);
        assert_close(&values(&weights), &expected, 1e-6);
    }

    #[test]
    fn a_per_head_bias_penalises_each_head_alone() {
        // Two heads with the same q, k, v; head 1's second key is penalised by ln 3:
        // weights [1/2, 1/2] in head 0, [3/4, 1/4] in head 1.
        let q = t4(vec![0.0; 2], [1, 2, 1, 1]);
        let k = t4(vec![0.0; 4], [1, 2, 2, 1]);
        let v = t4(vec![1.0, 0.0, 1.0, 0.0], [1, 2, 2, 1]);
        let bias = Tensor::<3>::from_data(TensorData::new(vec![0.0, 0.0, 0.0, -(3f32.ln())], [2, 1, 2]), &device());
        let out = scaled_dot_product_attention(q, k, v, bias, &no_dropout());
        assert_close(&values(&out), &[0.5, 0.75], 1e-6);
    }
}
