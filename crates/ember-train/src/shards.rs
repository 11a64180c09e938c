//! Batch sharding across CPU threads: a CPU's way of using its cores for a small model.
//!
//! The CPU kernels split each operation (a matrix product, a GELU) across the cores. For a
//! small model every such operation is short, so the cores spend a good part of each step
//! waking each other up and waiting at the end of every operation. Sharding splits each
//! micro-batch into `k` groups of whole sequences instead; each group runs forward and backward
//! on its own thread pool (one core each, by default), with no synchronisation until its
//! gradients are done, and the gradients are summed, each weighted by its share of the
//! sequences. That is the gradient of the whole micro-batch: only the order of the floating
//! point additions differs from the unsharded step (the tests bound the difference). For a
//! given `k` the result does not depend on thread timing: each shard runs on its own pool,
//! and the gradients are added in shard order.
//!
//! Each shard's model is a [`fork`](burn::module::Module::fork) of the step's model: it shares
//! the weights' storage (nothing is copied) but has its own autodiff leaves, so the shards'
//! graphs stay apart and their backward passes run at the same time.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ember_data::Batch;
use ember_model::Gpt;

use crate::error::TrainError;
use crate::gradients::{MicroBatch, micro_batch_gradients};
use crate::optim::GradBuffer;

/// `k` thread pools, one per shard.
pub struct Shards {
    pools: Vec<rayon::ThreadPool>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards").field("shards", &self.pools.len()).finish()
    }
}

impl Shards {
    /// `k` shards sharing `threads` threads (each pool gets `threads / k`, at least one).
    pub fn new(k: usize, threads: usize) -> Result<Self, TrainError> {
        if k == 0 {
            return Err(TrainError::InvalidConfig {
                key: "--cpu-shards".into(),
                value: "0".into(),
                problem: "must be at least 1 (1: no sharding)".into(),
            });
        }
        let per_pool = (threads / k).max(1);
        let pools = (0..k)
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(per_pool)
                    .thread_name(move |t| format!("ember-shard-{i}.{t}"))
                    .build()
                    .map_err(|e| TrainError::Threads(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { pools })
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.pools.len()
    }

    /// Never true: there is at least one shard.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// The summed gradients of `batch`'s shards and its loss `[1]`: what
    /// [`micro_batch_gradients`] computes for the whole batch with `m`, each shard's mean loss
    /// weighted by its share of the sequences. Batches with fewer sequences than shards use as
    /// many shards as sequences. Not for dropout (`m.dropout_seed`), whose masks would come
    /// from the device's one generator in whatever order the shards ran.
    pub(crate) fn gradients(
        &self,
        model: &Gpt,
        batch: &Batch,
        m: MicroBatch,
        device: &Device,
    ) -> (GradBuffer, Tensor<1>) {
        assert!(m.dropout_seed.is_none(), "sharded steps have no dropout");
        let parts = split_rows(batch, self.pools.len());
        let rows = batch.batch as f64;
        let jobs = parts.iter().map(|part| {
            let shard = MicroBatch {
                divisor: m.divisor * rows / part.batch as f64,
                ..m
            };
            move || {
                let replica = model.clone().fork(device);
                micro_batch_gradients(&replica, part, shard, device)
            }
        });
        let results = run_in_pools(&self.pools, jobs);
        let mut grads = GradBuffer::new();
        let mut losses = Vec::with_capacity(results.len());
        for (g, loss) in results {
            grads.add(g);
            losses.push(loss);
        }
        (grads, Tensor::cat(losses, 0).sum())
    }
}

impl Shards {
    /// Runs `job(i)` on the i-th pool for every pool, all at once, and returns the results in
    /// pool order.
    pub fn run_each<R: Send>(&self, job: impl Fn(usize) -> R + Sync) -> Vec<R> {
        let job = &job;
        run_in_pools(&self.pools, (0..self.pools.len()).map(|i| move || job(i)))
    }
}

/// Runs the i-th job on the i-th pool, all at once, and returns their results in order. The
/// calling thread only hands the jobs out and waits (no thread is started).
fn run_in_pools<R: Send, J: FnOnce() -> R + Send>(
    pools: &[rayon::ThreadPool],
    jobs: impl Iterator<Item = J>,
) -> Vec<R> {
    let mut slots: Vec<Option<R>> = Vec::new();
    let jobs: Vec<J> = jobs.collect();
    slots.resize_with(jobs.len(), || None);
    spawn_each(pools, jobs.into_iter(), &mut slots);
    slots.into_iter().map(|r| r.expect("every job ran")).collect()
}

/// Queues the first job on the first pool, recurses for the rest, then waits for its own
/// (a pool's `in_place_scope` returns once its spawned work is done; a panic is re-raised).
fn spawn_each<R: Send, J: FnOnce() -> R + Send>(
    pools: &[rayon::ThreadPool],
    mut jobs: impl Iterator<Item = J>,
    slots: &mut [Option<R>],
) {
    let (Some((pool, pools)), Some((slot, slots)), Some(job)) =
        (pools.split_first(), slots.split_first_mut(), jobs.next())
    else {
        return;
    };
    pool.in_place_scope(|scope| {
        scope.spawn(move |_| *slot = Some(job()));
        spawn_each(pools, jobs, slots);
    });
}

/// Splits a batch into at most `k` groups of consecutive sequences whose sizes differ by at
/// most one (the first groups take the extra sequences); fewer groups when the batch has fewer
/// than `k` sequences. Disjoint, in order, and together the whole batch.
pub fn split_rows(batch: &Batch, k: usize) -> Vec<Batch> {
    let k = k.clamp(1, batch.batch.max(1));
    let (base, extra) = (batch.batch / k, batch.batch % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let rows = base + usize::from(i < extra);
            let range = start * batch.block..(start + rows) * batch.block;
            start += rows;
            Batch {
                batch: rows,
                block: batch.block,
                inputs: batch.inputs[range.clone()].to_vec(),
                targets: batch.targets[range].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::AdamW;
    use crate::params::read_params;
    use crate::step::{StepSettings, optimizer_step};
    use ember_model::{GptConfig, Precision};

    fn batch(rows: usize, block: usize, salt: usize) -> Batch {
        let ids: Vec<u32> = (0..rows * (block + 1))
            .map(|i| ((i * 7 + i / 3 + salt) % 11) as u32)
            .collect();
        Batch::from_windows(&ids, block)
    }

    #[test]
    fn run_each_runs_job_i_on_pool_i_at_the_same_time() {
        let shards = Shards::new(3, 3).unwrap();
        let barrier = std::sync::Barrier::new(3);
        let names = shards.run_each(|i| {
            barrier.wait(); // every job waits for the others: they run at once, or this hangs
            (i, std::thread::current().name().unwrap_or("").to_string())
        });
        let expected: Vec<(usize, String)> = (0..3).map(|i| (i, format!("ember-shard-{i}.0"))).collect();
        assert_eq!(names, expected);
        let peak = crate::bench::sharded_matmul_peak_gflops(&shards, &Device::flex(), 32, 2);
        assert!(peak.is_finite() && peak > 0.0, "{peak}");
    }

    #[test]
    fn uneven_splits_cover_the_batch_in_order() {
        let b = batch(7, 4, 0);
        let parts = split_rows(&b, 3);
        assert_eq!(parts.iter().map(|p| p.batch).collect::<Vec<_>>(), [3, 2, 2]);
        let joined: Vec<u32> = parts.iter().flat_map(|p| p.inputs.clone()).collect();
        assert_eq!(joined, b.inputs);
        let joined: Vec<u32> = parts.iter().flat_map(|p| p.targets.clone()).collect();
        assert_eq!(joined, b.targets);
        assert_eq!(split_rows(&b, 10).len(), 7, "never an empty shard");
        assert_eq!(split_rows(&b, 1)[0].inputs, b.inputs);
    }

    /// Trains `steps` steps with `shards` shards (None: unsharded) and returns the losses and
    /// the final parameters.
    fn train(shards: Option<usize>, steps: usize) -> (Vec<f64>, std::collections::BTreeMap<String, Vec<f32>>) {
        let device = Device::flex().autodiff();
        let config = GptConfig {
            vocab_size: 11,
            block_size: 8,
            ..GptConfig::nano()
        };
        let mut model = config.init(5, &device).unwrap();
        let mut optim = AdamW::new(crate::TrainConfig::default().adamw());
        let shards = shards.map(|k| Shards::new(k, 2).unwrap());
        let mut losses = Vec::new();
        for step in 0..steps {
            // Two micro-batches of 5 sequences: shards of 3 and 2 with k = 2.
            let micro = [batch(5, 8, step), batch(5, 8, step + 100)];
            let settings = StepSettings {
                lr: 1e-2,
                grad_clip: 1.0,
                precision: Precision::F32,
                dropout_seeds: &[],
                shards: shards.as_ref(),
                step: step as u64 + 1,
            };
            let stats = optimizer_step(&mut model, &mut optim, &micro, settings, None, &device).unwrap();
            losses.push(stats.loss);
        }
        let params = read_params(&model).into_iter().map(|(k, v)| (k, v.values)).collect();
        (losses, params)
    }

    #[test]
    fn sharded_steps_match_unsharded_ones() {
        let (plain_losses, plain) = train(None, 4);
        for k in [2, 3] {
            let (losses, sharded) = train(Some(k), 4);
            for (a, b) in plain_losses.iter().zip(&losses) {
                assert!((a - b).abs() < 1e-5, "{k} shards: loss {b} vs unsharded {a}");
            }
            for (name, a) in &plain {
                let worst = a
                    .iter()
                    .zip(&sharded[name])
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                // Only the order of additions differs; Adam's division by √v magnifies it for
                // near-zero gradients, so allow 1% of one step's size (lr).
                assert!(worst < 1e-4, "{k} shards: {name} differs by {worst}");
            }
        }
    }

    #[test]
    fn sharded_steps_are_reproducible_bit_for_bit() {
        let (la, a) = train(Some(2), 3);
        let (lb, b) = train(Some(2), 3);
        assert_eq!(la, lb);
        assert_eq!(
            a, b,
            "the same shards give the same weights, whatever the thread timing"
        );
    }
}
