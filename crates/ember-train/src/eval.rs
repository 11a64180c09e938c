//! Measuring a model's loss: a quick estimate during training, and the full pass of
//! `ember eval`.

use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_data::{Batch, BatchSampler, Tokens};
use ember_model::{Gpt, cross_entropy};

/// Input and target tensors of a batch.
///
/// # Shapes
/// - returns two `[batch, block]`
pub fn batch_tensors(batch: &Batch, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let shape = [batch.batch, batch.block];
    let ids = |v: &[u32]| TensorData::new(v.iter().map(|&t| t as i64).collect::<Vec<i64>>(), shape);
    (
        Tensor::from_data(ids(&batch.inputs), device),
        Tensor::from_data(ids(&batch.targets), device),
    )
}

/// Mean loss over `iters` batches drawn with a sampler seeded by `seed`. The same seed gives
/// the same batches, so successive estimates during a run compare like with like. `model`
/// must be in evaluation mode (no autodiff, no dropout).
pub fn estimate_loss(model: &Gpt, tokens: &Tokens, batch: usize, iters: usize, seed: u64, device: &Device) -> f64 {
    let mut sampler = BatchSampler::new(batch, model.block_size, seed);
    let mut total = 0.0;
    for _ in 0..iters {
        let b = sampler.next_batch(tokens);
        let (x, y) = batch_tensors(&b, device);
        total += cross_entropy(model.forward(x), y).into_scalar::<f32>() as f64;
    }
    total / iters as f64
}

/// The summed loss of a text's tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    /// Σ −ln p(token | earlier tokens), in nats.
    pub nll_sum: f64,
    /// Tokens predicted.
    pub tokens: usize,
}

impl EvalResult {
    /// Mean loss per token, in nats.
    pub fn loss(&self) -> f64 {
        self.nll_sum / self.tokens as f64
    }

    /// `exp(loss)`.
    pub fn perplexity(&self) -> f64 {
        self.loss().exp()
    }

    /// Mean loss per token, in bits.
    pub fn bits_per_token(&self) -> f64 {
        self.loss() / std::f64::consts::LN_2
    }

    /// Total bits divided by the characters of the text the predicted tokens spell.
    pub fn bits_per_char(&self, chars: usize) -> f64 {
        self.nll_sum / std::f64::consts::LN_2 / chars as f64
    }
}

/// Predicts every token of `ids` but the first from the tokens before it, `batch` windows of
/// up to `block_size` tokens at a time; `model` must be in evaluation mode.
///
/// With `stride = block_size` the windows are consecutive and do not overlap: each starts a
/// fresh context, so a token early in a window sees few tokens before it. With a smaller
/// stride, each window after the first moves on by `stride` tokens and scores only its last
/// `stride` predictions: every token is still predicted once, now with at least
/// `block_size − stride` tokens of context (the first window's excepted), for `block_size /
/// stride` times the work.
pub fn evaluate_sequence(model: &Gpt, ids: &[u32], batch: usize, stride: usize, device: &Device) -> EvalResult {
    let block = model.block_size;
    if stride < block {
        return evaluate_strided(model, ids, batch, stride.max(1), device);
    }
    let predicted = ids.len().saturating_sub(1);
    let mut nll_sum = 0.0;
    let mut starts: Vec<usize> = (0..predicted).step_by(block).collect();
    // The last window may be shorter; evaluate it alone.
    let tail = starts.pop_if(|s| predicted - *s < block);
    for group in starts.chunks(batch) {
        nll_sum += window_loss(model, ids, group, block, device);
    }
    if let Some(start) = tail {
        nll_sum += window_loss(model, ids, &[start], predicted - start, device);
    }
    EvalResult {
        nll_sum,
        tokens: predicted,
    }
}

/// [`evaluate_sequence`] with overlapping windows.
fn evaluate_strided(model: &Gpt, ids: &[u32], batch: usize, stride: usize, device: &Device) -> EvalResult {
    let block = model.block_size;
    let predicted = ids.len().saturating_sub(1);
    // (start, predictions in the window, how many of the last ones it scores)
    let mut windows = Vec::new();
    let mut end = block.min(predicted);
    windows.push((0, end, end));
    while end < predicted {
        let next = (end + stride).min(predicted);
        let start = next.saturating_sub(block);
        windows.push((start, next - start, next - end));
        end = next;
    }
    let mut nll_sum = 0.0;
    // Windows of the same length and score count run together.
    for same in windows.chunk_by(|a, b| (a.1, a.2) == (b.1, b.2)) {
        for group in same.chunks(batch) {
            let starts: Vec<usize> = group.iter().map(|w| w.0).collect();
            nll_sum += window_tail_loss(model, ids, &starts, group[0].1, group[0].2, device);
        }
    }
    EvalResult {
        nll_sum,
        tokens: predicted,
    }
}

/// Summed loss of the last `scored` of the `len` predictions of the windows at `starts`.
fn window_tail_loss(model: &Gpt, ids: &[u32], starts: &[usize], len: usize, scored: usize, device: &Device) -> f64 {
    if scored == 0 {
        return 0.0;
    }
    let windows: Vec<u32> = starts
        .iter()
        .flat_map(|&s| ids[s..s + len + 1].iter().copied())
        .collect();
    let b = Batch::from_windows(&windows, len);
    let (x, y) = batch_tensors(&b, device);
    let logp = burn::tensor::activation::log_softmax(model.forward(x), 2); // [windows, len, vocab]
    let picked = logp.gather(2, y.unsqueeze_dim::<3>(2)); // [windows, len, 1]
    let nll = -picked.narrow(1, len - scored, scored).sum().into_scalar::<f32>() as f64;
    nll
}

/// Summed loss of windows of `len` predictions starting at each of `starts`.
fn window_loss(model: &Gpt, ids: &[u32], starts: &[usize], len: usize, device: &Device) -> f64 {
    let windows: Vec<u32> = starts
        .iter()
        .flat_map(|&s| ids[s..s + len + 1].iter().copied())
        .collect();
    let b = Batch::from_windows(&windows, len);
    let (x, y) = batch_tensors(&b, device);
    let mean = cross_entropy(model.forward(x), y).into_scalar::<f32>() as f64;
    mean * (starts.len() * len) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::GptConfig;

    /// A nano model of 7 tokens and context 4, and 23 ids of text for it.
    fn seven_token_model_and_text() -> (Device, ember_model::Gpt, Vec<u32>) {
        let device = Device::flex();
        let model = GptConfig {
            vocab_size: 7,
            block_size: 4,
            ..GptConfig::nano()
        }
        .init(3, &device)
        .unwrap();
        let ids = (0..23).map(|i| (i * 5 % 7) as u32).collect();
        (device, model, ids)
    }

    #[test]
    fn windows_cover_every_prediction_once_whatever_the_batching() {
        let (device, model, ids) = seven_token_model_and_text();
        let a = evaluate_sequence(&model, &ids, 1, 4, &device);
        let b = evaluate_sequence(&model, &ids, 3, 4, &device);
        assert_eq!(a.tokens, 22);
        assert!((a.nll_sum - b.nll_sum).abs() < 1e-4, "{} vs {}", a.nll_sum, b.nll_sum);
        // an untrained model predicts close to uniformly: loss ≈ ln 7
        assert!((a.loss() - 7f64.ln()).abs() < 0.1, "{}", a.loss());
    }

    #[test]
    fn a_stride_scores_every_prediction_once_with_the_context_before_it() {
        let (device, model, ids) = seven_token_model_and_text();
        // By hand: prediction t (of ids[t + 1]) from the 4-token window ending at t, or the
        // first window for t < 4.
        let mut by_hand = 0.0;
        for t in 0..22usize {
            let start = t.saturating_sub(3);
            let r = evaluate_sequence(&model, &ids[start..=t + 1], 1, 4, &device);
            let earlier = evaluate_sequence(&model, &ids[start..=t], 1, 4, &device);
            by_hand += r.nll_sum - if t > start { earlier.nll_sum } else { 0.0 };
        }
        for batch in [1, 5] {
            let r = evaluate_sequence(&model, &ids, batch, 1, &device);
            assert_eq!(r.tokens, 22);
            assert!((r.nll_sum - by_hand).abs() < 1e-3, "{} vs {by_hand}", r.nll_sum);
        }
        // A stride of 2 scores them all too.
        assert_eq!(evaluate_sequence(&model, &ids, 2, 2, &device).tokens, 22);
    }

    #[test]
    fn derived_measures_follow_from_the_sum() {
        let r = EvalResult {
            nll_sum: 20.0 * std::f64::consts::LN_2,
            tokens: 10,
        };
        assert!((r.bits_per_token() - 2.0).abs() < 1e-12);
        assert!((r.bits_per_char(40) - 0.5).abs() < 1e-12);
        assert!((r.perplexity() - 4.0).abs() < 1e-12);
    }
}
