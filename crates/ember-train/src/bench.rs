//! Throughput benchmarks: training steps on random tokens, generation with and without the
//! KV cache, and the device's matrix-multiply peak.
//!
//! Training is timed exactly as the trainer runs it (the same [`optimizer_step`]), on batches
//! of uniformly random tokens, after untimed warm-up steps: the protocol of the PyTorch
//! reference benchmark, so that the two compare.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use ember_data::Batch;
use ember_model::{GenerateOptions, Generator, GptConfig, Sampler, stats};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::optim::AdamW;
use crate::optim::loss_scale::LossScale;
use crate::shards::Shards;
use crate::step::{StepSettings, check_precision, optimizer_step};

/// How long to time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchBudget {
    /// Untimed steps first.
    pub warmup_steps: usize,
    /// Timed steps at least…
    pub min_steps: usize,
    /// …and for at least this long…
    pub min_seconds: f64,
    /// …but stop once this much is timed (after at least two steps).
    pub max_seconds: f64,
}

impl Default for BenchBudget {
    fn default() -> Self {
        Self {
            warmup_steps: 3,
            min_steps: 20,
            min_seconds: 10.0,
            max_seconds: 30.0,
        }
    }
}

/// Training throughput.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBench {
    /// Timed steps.
    pub steps: usize,
    /// Seconds they took.
    pub seconds: f64,
    /// Tokens per second (batch · block · grad_accum · steps / seconds).
    pub tokens_per_s: f64,
    /// Milliseconds per step.
    pub step_ms: f64,
    /// Training FLOPs per token (6·N + 12·L·d·T).
    pub flops_per_token: u64,
    /// Model FLOPs per second achieved, in GFLOP/s.
    pub achieved_gflops: f64,
    /// Loss of the first warm-up step.
    pub first_loss: f64,
    /// Loss of the last timed step.
    pub last_loss: f64,
}

/// Trains `model` (with vocabulary `vocab`) for the budget on random tokens, each micro-batch
/// split across `shards` when given (CPU devices; see [`crate::shards`]).
pub fn bench_training(
    model: &GptConfig,
    train: &TrainConfig,
    vocab: usize,
    budget: BenchBudget,
    shards: Option<&Shards>,
    device: &Device,
) -> Result<TrainBench, TrainError> {
    check_precision(train.precision, device)?;
    let config = GptConfig {
        vocab_size: vocab,
        dropout: 0.0,
        ..model.clone()
    };
    let ad = device.clone().autodiff();
    let mut gpt = config.init(train.seed, &ad)?;
    let mut optim = AdamW::new(train.adamw());
    let mut rng = ChaCha8Rng::seed_from_u64(train.seed);
    let (batch, block) = (train.batch_size, config.block_size);
    let mut random_batches = || -> Vec<Batch> {
        (0..train.grad_accum)
            .map(|_| {
                let windows: Vec<u32> = (0..batch * (block + 1))
                    .map(|_| rng.random_range(0..vocab as u32))
                    .collect();
                Batch::from_windows(&windows, block)
            })
            .collect()
    };
    let mut loss_scale = (train.precision == ember_model::Precision::F16).then(LossScale::default);
    let mut step = |gpt: ember_model::Gpt, n: u64| -> Result<(ember_model::Gpt, f64), TrainError> {
        let settings = StepSettings {
            lr: train.lr,
            grad_clip: train.grad_clip,
            precision: train.precision,
            dropout_seeds: &[],
            shards,
            step: n,
        };
        let (gpt, s) = optimizer_step(gpt, &mut optim, &random_batches(), settings, loss_scale.as_mut(), &ad)?;
        Ok((gpt, s.loss))
    };
    let mut first_loss = f64::NAN;
    for i in 0..budget.warmup_steps {
        let (g, loss) = step(gpt, i as u64 + 1)?;
        gpt = g;
        if i == 0 {
            first_loss = loss;
        }
    }
    let start = Instant::now();
    let mut steps = 0usize;
    let mut last_loss;
    loop {
        let (g, loss) = step(gpt, steps as u64 + 1)?;
        gpt = g;
        last_loss = loss;
        steps += 1;
        let t = start.elapsed().as_secs_f64();
        if (steps >= budget.min_steps && t >= budget.min_seconds) || (t >= budget.max_seconds && steps >= 2) {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let tokens = (batch * block * train.grad_accum * steps) as f64;
    let flops_per_token = stats::training_flops_per_token(&config);
    let tokens_per_s = tokens / seconds;
    Ok(TrainBench {
        steps,
        seconds,
        tokens_per_s,
        step_ms: 1000.0 * seconds / steps as f64,
        flops_per_token,
        achieved_gflops: tokens_per_s * flops_per_token as f64 / 1e9,
        first_loss: if first_loss.is_nan() { last_loss } else { first_loss },
        last_loss,
    })
}

/// Generation throughput, with and without the KV cache.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateBench {
    /// Tokens generated by each method in each round.
    pub new_tokens: usize,
    /// Tokens per second with the KV cache, one value per round.
    pub cached_tokens_per_s: Vec<f64>,
    /// Tokens per second recomputing the window at each step, one value per round.
    pub recompute_tokens_per_s: Vec<f64>,
    /// Whether both produced the same (greedy) tokens in every round.
    pub identical: bool,
}

impl GenerateBench {
    /// The median over the rounds of tokens per second with the KV cache.
    pub fn cached_median(&self) -> f64 {
        median(&self.cached_tokens_per_s)
    }

    /// The median over the rounds of tokens per second recomputing the window.
    pub fn recompute_median(&self) -> f64 {
        median(&self.recompute_tokens_per_s)
    }
}

/// The median of a non-empty list (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Greedily generates `new_tokens` after a one-token prompt with a randomly initialised
/// model, with the KV cache and without, in `rounds` rounds that alternate the two (after one
/// untimed cached run), so that a slow moment of the machine does not fall on one method only.
pub fn bench_generation(
    model: &GptConfig,
    vocab: usize,
    new_tokens: usize,
    rounds: usize,
    seed: u64,
    device: &Device,
) -> Result<GenerateBench, TrainError> {
    assert!(rounds > 0, "at least one round");
    let config = GptConfig {
        vocab_size: vocab,
        ..model.clone()
    };
    let gpt = config.init(seed, device)?;
    let generator = Generator::new(&gpt, device.clone());
    let run = |use_cache| -> Result<(Vec<u32>, f64), TrainError> {
        let start = Instant::now();
        let options = GenerateOptions {
            max_new_tokens: new_tokens,
            use_cache,
        };
        let tokens = generator.generate(&[0], options, &mut Sampler::greedy(), |_| {})?;
        Ok((tokens, new_tokens as f64 / start.elapsed().as_secs_f64()))
    };
    let (first, _) = run(true)?; // warm-up
    let mut bench = GenerateBench {
        new_tokens,
        cached_tokens_per_s: Vec::new(),
        recompute_tokens_per_s: Vec::new(),
        identical: true,
    };
    for _ in 0..rounds {
        let (cached, cached_rate) = run(true)?;
        let (recomputed, recompute_rate) = run(false)?;
        bench.identical &= cached == first && recomputed == first;
        bench.cached_tokens_per_s.push(cached_rate);
        bench.recompute_tokens_per_s.push(recompute_rate);
    }
    Ok(bench)
}

/// The best f32 matrix-multiply rate of `n × n` by `n × n` over `reps` runs, in GFLOP/s.
pub fn matmul_peak_gflops(device: &Device, n: usize, reps: usize) -> f64 {
    let product = square_product(n, device);
    2.0 * (n as f64).powi(3) / best_seconds(reps, || product()) / 1e9
}

/// The f32 matrix-multiply rate of the CPU's cores as sharded training uses them: each shard's
/// pool multiplies its own `n × n` by `n × n` at the same moment; the best total over `reps`
/// runs, in GFLOP/s. One product split across all cores (as [`matmul_peak_gflops`] measures)
/// spends part of its time synchronising the threads and so understates what the cores can do.
pub fn sharded_matmul_peak_gflops(shards: &Shards, device: &Device, n: usize, reps: usize) -> f64 {
    let product = square_product(n, device);
    let seconds = best_seconds(reps, || {
        shards.run_each(|_| product());
    });
    shards.len() as f64 * 2.0 * (n as f64).powi(3) / seconds / 1e9
}

/// A function that multiplies two random `n × n` matrices and waits for the result.
fn square_product(n: usize, device: &Device) -> impl Fn() + Sync {
    let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    move || {
        let _ = a.clone().matmul(b.clone()).sum().into_scalar::<f32>();
    }
}

/// The shortest time of `reps` runs of `run`, in seconds, after one untimed warm-up run.
fn best_seconds(reps: usize, mut run: impl FnMut()) -> f64 {
    run();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        run();
        best = best.min(start.elapsed().as_secs_f64());
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_training_benchmark_reports_consistent_figures() {
        let budget = BenchBudget {
            warmup_steps: 1,
            min_steps: 3,
            min_seconds: 0.0,
            max_seconds: 10.0,
        };
        let train = TrainConfig {
            batch_size: 2,
            ..TrainConfig::default()
        };
        let b = bench_training(&GptConfig::nano(), &train, 65, budget, None, &Device::flex()).unwrap();
        assert_eq!(b.steps, 3);
        assert!((b.tokens_per_s - 2.0 * 32.0 * 3.0 / b.seconds).abs() < 1e-6);
        assert!((b.first_loss - 65f64.ln()).abs() < 0.3);
    }

    #[test]
    fn cached_and_recomputed_generation_agree() {
        let g = bench_generation(&GptConfig::nano(), 65, 40, 2, 1, &Device::flex()).unwrap();
        assert!(g.identical);
        assert_eq!(g.new_tokens, 40);
        assert_eq!((g.cached_tokens_per_s.len(), g.recompute_tokens_per_s.len()), (2, 2));
    }

    #[test]
    fn medians_take_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }
}
