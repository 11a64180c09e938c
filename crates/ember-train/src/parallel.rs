//! Data parallelism: one model replica per device, each computing the gradients of its own
//! shard of the batch, averaged across devices by an all-reduce before every replica applies
//! the same AdamW update (so the replicas stay identical).
//!
//! The average of the shard gradients is the gradient of the whole batch, so a k-way parallel
//! step equals one step of gradient accumulation over the k shards; the tests check that on
//! the CPU. On GPUs the average is Burn's collective
//! [`all_reduce`](burn::tensor::distributed::all_reduce) (NCCL on CUDA), started by a
//! [`DistributedContext`](burn::tensor::distributed::DistributedContext) over the devices.
//! Burn's CPU backends implement no collectives, so [`Reduce::OnHost`] averages on the first
//! device instead; it exists for tests and for CPU replicas.

use std::collections::BTreeMap;

use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation, all_reduce};
use burn::tensor::{Device, Tensor};
use ember_data::Batch;
use ember_model::Gpt;

use crate::error::TrainError;
use crate::gradients::{MicroBatch, micro_batch_gradients};
use crate::optim::{AdamW, GradBuffer, clip_factor};

/// Splits a batch into `k` shards of consecutive sequences: disjoint, and together the whole
/// batch. `batch.batch` must be divisible by `k`.
pub fn shard(batch: &Batch, k: usize) -> Vec<Batch> {
    assert!(
        k > 0 && batch.batch % k == 0,
        "a batch of {} cannot be split {k} ways",
        batch.batch
    );
    crate::shards::split_rows(batch, k)
}

/// How replicas average their gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Burn's collective all-reduce across the devices (GPU backends).
    Collective,
    /// Gradients are moved to the first device and averaged there (CPU replicas, tests).
    OnHost,
}

/// k replicas of a model and its optimiser, one per device.
pub struct DataParallel {
    devices: Vec<Device>,
    replicas: Vec<(Gpt, AdamW)>,
    reduce: Reduce,
    _context: Option<DistributedContext>,
}

impl DataParallel {
    /// Copies `model` and `optim` (with its state) onto each device. `devices` are plain
    /// devices; each replica trains on `device.autodiff()`.
    pub fn new(model: &Gpt, optim: &AdamW, devices: Vec<Device>, reduce: Reduce) -> Self {
        use burn::module::Module;
        assert!(!devices.is_empty(), "data parallelism needs at least one device");
        let context = (reduce == Reduce::Collective).then(|| {
            DistributedContext::init(
                devices.clone(),
                DistributedConfig {
                    all_reduce_op: ReduceOperation::Mean,
                },
            )
        });
        let replicas = devices
            .iter()
            .map(|d| (model.clone().fork(&d.clone().autodiff()), optim.to_device(d)))
            .collect();
        Self {
            devices,
            replicas,
            reduce,
            _context: context,
        }
    }

    /// Number of replicas.
    pub fn replicas(&self) -> usize {
        self.replicas.len()
    }

    /// The first replica's model (all replicas are identical).
    pub fn model(&self) -> &Gpt {
        &self.replicas[0].0
    }

    /// The first replica's optimiser.
    pub fn optimizer(&self) -> &AdamW {
        &self.replicas[0].1
    }

    /// One step over `batch`, split across the replicas. Returns the mean loss and the
    /// gradient norm before clipping; an error, with every replica unchanged, if either is not
    /// finite. `step` numbers the step in error messages. `dropout_seeds` is empty without
    /// dropout, or holds one seed per replica: replica `r` draws its masks as micro-batch `r`
    /// of a step accumulated over the shards on one device would.
    pub fn step(
        &mut self,
        batch: &Batch,
        lr: f64,
        grad_clip: f64,
        step: u64,
        dropout_seeds: &[u64],
    ) -> Result<(f64, f64), TrainError> {
        let k = self.replicas.len();
        if batch.batch % k != 0 {
            return Err(TrainError::InvalidConfig {
                key: "train.batch_size".into(),
                value: batch.batch.to_string(),
                problem: format!("must be divisible by the {k} devices"),
            });
        }
        assert!(
            dropout_seeds.is_empty() || dropout_seeds.len() == k,
            "one dropout seed per replica"
        );
        let shards = shard(batch, k);
        let gradients = self.shard_gradients(&shards, dropout_seeds);
        let (loss, norm) = match self.reduce {
            Reduce::Collective => self.apply_collective(gradients, lr, grad_clip),
            Reduce::OnHost => self.apply_on_host(gradients, lr, grad_clip),
        };
        if !loss.is_finite() || !norm.is_finite() {
            let (what, value) = if loss.is_finite() {
                ("gradient norm", norm)
            } else {
                ("loss", loss)
            };
            return Err(TrainError::NonFinite { step, what, value });
        }
        Ok((loss, norm))
    }

    /// Each replica's gradients of its shard and its loss `[1]`, on its own device. Without
    /// dropout the replicas run on their own threads. With dropout they run one after the
    /// other: Burn's backends keep one random generator per process, not per device, so each
    /// replica seeds it and draws its masks before the next one starts.
    fn shard_gradients(&self, shards: &[Batch], dropout_seeds: &[u64]) -> Vec<(GradBuffer, Tensor<1>)> {
        let run = |r: usize| {
            let m = MicroBatch {
                dropout_seed: dropout_seeds.get(r).copied(),
                ..MicroBatch::plain()
            };
            micro_batch_gradients(&self.replicas[r].0, &shards[r], m, &self.devices[r].clone().autodiff())
        };
        if !dropout_seeds.is_empty() {
            return (0..self.replicas.len()).map(run).collect();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.replicas.len()).map(|r| scope.spawn(move || run(r))).collect();
            handles.into_iter().map(|h| h.join().expect("replica thread")).collect()
        })
    }

    /// Averages the gradients and losses through Burn's all-reduce, each replica on its own
    /// thread (every thread issues the same collectives in the same order, as NCCL requires),
    /// then each replica updates its own weights if the loss and the norm are finite.
    fn apply_collective(&mut self, gradients: Vec<(GradBuffer, Tensor<1>)>, lr: f64, grad_clip: f64) -> (f64, f64) {
        let devices = self.devices.clone();
        let results: Vec<(f64, f64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .replicas
                .iter_mut()
                .zip(gradients)
                .map(|((model, optim), (grads, loss))| {
                    let devices = devices.clone();
                    scope.spawn(move || {
                        let names: Vec<String> = grads.names().cloned().collect();
                        let reduced = names
                            .into_iter()
                            .map(|name| {
                                let g = grads.get(&name).expect("listed").clone();
                                (name, all_reduce(g, ReduceOperation::Mean, devices.clone()).resolve())
                            })
                            .collect();
                        let grads = GradBuffer::from_map(reduced);
                        let loss = all_reduce(loss, ReduceOperation::Mean, devices).resolve();
                        let (loss, norm) = grads.read_with_norm(loss); // the replica's one wait
                        apply(model, optim, &grads, loss, norm, lr, grad_clip);
                        (loss, norm)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("replica thread")).collect()
        });
        results[0]
    }

    /// The same with the averaging done on the first device (CPU replicas, tests).
    fn apply_on_host(&mut self, gradients: Vec<(GradBuffer, Tensor<1>)>, lr: f64, grad_clip: f64) -> (f64, f64) {
        let k = self.replicas.len();
        let first = &self.devices[0];
        let loss = gradients
            .iter()
            .map(|(_, l)| l.clone().into_scalar::<f32>() as f64)
            .sum::<f64>()
            / k as f64;
        let names: Vec<String> = gradients[0].0.names().cloned().collect();
        let mut mean = BTreeMap::new();
        for name in names {
            let sum = gradients
                .iter()
                .map(|(g, _)| g.get(&name).expect("same parameters").clone().to_device(first))
                .reduce(|a, b| a + b)
                .expect("k ≥ 1");
            mean.insert(name, sum.div_scalar(k as f64));
        }
        let mut norm = 0.0;
        for ((model, optim), device) in self.replicas.iter_mut().zip(&self.devices) {
            let grads = GradBuffer::from_map(
                mean.iter()
                    .map(|(n, g)| (n.clone(), g.clone().to_device(device)))
                    .collect(),
            );
            norm = grads.global_norm();
            apply(model, optim, &grads, loss, norm, lr, grad_clip);
        }
        (loss, norm)
    }
}

/// Clips and applies averaged gradients, of global norm `norm`, to one replica. A non-finite
/// loss or norm leaves the replica unchanged (the caller reports it).
fn apply(model: &mut Gpt, optim: &mut AdamW, grads: &GradBuffer, loss: f64, norm: f64, lr: f64, grad_clip: f64) {
    if loss.is_finite() && norm.is_finite() {
        *model = optim.step(model.clone(), grads, lr, clip_factor(norm, grad_clip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::AdamWConfig;
    use crate::params::read_params;
    use crate::step::{StepSettings, optimizer_step};
    use ember_model::{GptConfig, Precision};

    fn batch(rows: usize, block: usize) -> Batch {
        let ids: Vec<u32> = (0..rows * (block + 1)).map(|i| ((i * 7 + i / 3) % 11) as u32).collect();
        Batch::from_windows(&ids, block)
    }

    #[test]
    fn shards_are_disjoint_and_cover_the_batch() {
        let b = batch(6, 4);
        let shards = shard(&b, 3);
        assert_eq!(shards.len(), 3);
        assert!(shards.iter().all(|s| s.batch == 2 && s.inputs.len() == 8));
        let joined: Vec<u32> = shards.iter().flat_map(|s| s.inputs.clone()).collect();
        assert_eq!(joined, b.inputs, "in order, no overlap, nothing missing");
        let joined: Vec<u32> = shards.iter().flat_map(|s| s.targets.clone()).collect();
        assert_eq!(joined, b.targets);
    }

    fn tiny(dropout: f64) -> (Gpt, AdamWConfig, Device) {
        let device = Device::flex();
        let config = GptConfig {
            vocab_size: 11,
            block_size: 8,
            dropout,
            ..GptConfig::nano()
        };
        let model = config.init(3, &device.clone().autodiff()).unwrap();
        let opt = AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        (model, opt, device)
    }

    /// Three steps 3-way data-parallel against three steps accumulated over the same three
    /// shards on one device; the largest difference of any weight.
    fn parallel_against_accumulation(dropout: f64) -> f32 {
        let (model, opt, device) = tiny(dropout);
        let b = batch(6, 8);
        let mut accum_opt = AdamW::new(opt);
        let mut dp = DataParallel::new(&model, &accum_opt, vec![device.clone(); 3], Reduce::OnHost);
        let mut accum = model;
        for step in 1..=3u64 {
            let seeds: Vec<u64> = if dropout > 0.0 {
                (0..3).map(|r| 1000 * step + r).collect()
            } else {
                Vec::new()
            };
            dp.step(&b, 1e-2, 1.0, step, &seeds).unwrap();
            let settings = StepSettings {
                lr: 1e-2,
                grad_clip: 1.0,
                precision: Precision::F32,
                dropout_seeds: &seeds,
                shards: None,
                step,
            };
            optimizer_step(
                &mut accum,
                &mut accum_opt,
                &shard(&b, 3),
                settings,
                None,
                &device.clone().autodiff(),
            )
            .unwrap();
        }
        let (p, q) = (read_params(dp.model()), read_params(&accum));
        let mut worst = 0.0f32;
        for (name, a) in &p {
            for (x, y) in a.values.iter().zip(&q[name].values) {
                worst = worst.max((x - y).abs());
            }
        }
        worst
    }

    #[test]
    fn k_way_data_parallelism_equals_accumulation_over_k_micro_batches() {
        // Only rounding separates (a + b + c)/3 from a/3 + b/3 + c/3; Adam's division by
        // √v magnifies it for near-zero gradients, so allow 1% of one step's size (lr).
        let worst = parallel_against_accumulation(0.0);
        assert!(worst < 1e-4, "differs by {worst}");
    }

    #[test]
    fn with_dropout_each_replica_draws_the_masks_of_its_micro_batch() {
        let worst = parallel_against_accumulation(0.2);
        assert!(worst < 1e-4, "differs by {worst}");
        // The seeds matter: other masks move the weights by far more than rounding does.
        let (model, opt, device) = tiny(0.2);
        let b = batch(6, 8);
        let optim = AdamW::new(opt);
        let mut one = DataParallel::new(&model, &optim, vec![device.clone(); 3], Reduce::OnHost);
        let mut other = DataParallel::new(&model, &optim, vec![device; 3], Reduce::OnHost);
        one.step(&b, 1e-2, 1.0, 1, &[1, 2, 3]).unwrap();
        other.step(&b, 1e-2, 1.0, 1, &[4, 5, 6]).unwrap();
        let (p, q) = (read_params(one.model()), read_params(other.model()));
        let moved = p
            .iter()
            .flat_map(|(name, a)| a.values.iter().zip(&q[name].values).map(|(x, y)| (x - y).abs()))
            .fold(0.0f32, f32::max);
        assert!(moved > 1e-3, "other seeds moved the weights by only {moved}");
    }

    #[test]
    fn a_non_finite_loss_updates_no_replica() {
        let (model, opt, device) = tiny(0.0);
        let mut optim = AdamW::new(opt);
        let before = read_params(&model);
        let grads = GradBuffer::from_map(
            crate::params::param_shapes(&model)
                .into_iter()
                .map(|(name, shape)| {
                    let n: usize = shape.iter().product();
                    (name, Tensor::<1>::ones([n], &device))
                })
                .collect(),
        );
        let mut m = model;
        let norm = grads.global_norm();
        apply(&mut m, &mut optim, &grads, f64::NAN, norm, 1e-2, 1.0);
        assert!(norm.is_finite() && norm > 0.0, "the gradients are finite");
        assert_eq!(
            read_params(&m),
            before,
            "a NaN loss with finite gradients changed the weights"
        );
        assert_eq!(optim.steps(), 0, "nor did it advance the optimiser");
        apply(&mut m, &mut optim, &grads, 1.0, norm, 1e-2, 1.0);
        assert_ne!(read_params(&m), before, "a finite step does update");
    }
}
