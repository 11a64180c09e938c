//! Mean cross-entropy of next-token predictions.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// `−mean log p(target)` over every position of every sequence, in nats.
///
/// # Shapes
/// - logits: `[batch, seq, vocab]`
/// - targets: `[batch, seq]`
/// - returns `[1]`
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [batch, seq, vocab] = logits.dims();
    let n = batch * seq;
    if ember_kernels::fused(&logits) {
        // The same loss in one pass, keeping the softmax for the backward pass.
        return ember_kernels::cross_entropy(logits.reshape([n, vocab]), targets.reshape([n]));
    }
    let log_probs = log_softmax(logits.reshape([n, vocab]), 1); // [n, vocab]
    let picked = log_probs.gather(1, targets.reshape([n, 1])); // [n, 1]
    picked.mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn matches_a_hand_computed_value() {
        let device = Device::flex();
        // Two positions over a vocabulary of 3.
        // logits [0, 0, 0] → −log(1/3); logits [2, 0, 0] with target 0 → −log(e²/(e²+2)).
        let logits = Tensor::<3>::from_data([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]], &device);
        let targets = Tensor::<2, Int>::from_data(TensorData::from([[1, 0]]), &device);
        let e2 = 2f64.exp();
        let expected = (3f64.ln() - (e2 / (e2 + 2.0)).ln()) / 2.0;
        let got = cross_entropy(logits, targets).into_scalar::<f32>() as f64;
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    }

    #[test]
    fn uniform_logits_give_log_vocab() {
        let device = Device::flex();
        let logits = Tensor::<3>::zeros([2, 5, 65], &device);
        let targets = Tensor::<2, Int>::zeros([2, 5], &device);
        let got = cross_entropy(logits, targets).into_scalar::<f32>() as f64;
        assert!((got - 65f64.ln()).abs() < 1e-5);
    }
}
