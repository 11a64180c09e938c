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
use ember_model::{Gpt, cross_entropy};

use crate::error::TrainError;
use crate::eval::batch_tensors;
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
    /// gradient norm before clipping. `step` numbers the step in error messages.
    pub fn step(&mut self, batch: &Batch, lr: f64, grad_clip: f64, step: u64) -> Result<(f64, f64), TrainError> {
        let k = self.replicas.len();
        if batch.batch % k != 0 {
            return Err(TrainError::InvalidConfig {
                key: "train.batch_size".into(),
                value: batch.batch.to_string(),
                problem: format!("must be divisible by the {k} devices"),
            });
        }
        let shards = shard(batch, k);
        let (loss, norm) = match self.reduce {
            Reduce::Collective => self.step_collective(&shards, lr, grad_clip)?,
            Reduce::OnHost => self.step_on_host(&shards, lr, grad_clip)?,
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

    /// Each replica on its own thread computes its shard's gradients, averages them with the
    /// other replicas through Burn's all-reduce (every thread issues the same collectives in
    /// the same order, as NCCL requires), then updates its own weights.
    fn step_collective(&mut self, shards: &[Batch], lr: f64, grad_clip: f64) -> Result<(f64, f64), TrainError> {
        let devices = self.devices.clone();
        let results: Vec<(f64, f64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .replicas
                .iter_mut()
                .zip(&self.devices)
                .zip(shards)
                .map(|(((model, optim), device), shard)| {
                    let devices = devices.clone();
                    scope.spawn(move || {
                        let (grads, loss) = shard_gradients(model, shard, device);
                        let names: Vec<String> = grads.names().cloned().collect();
                        let reduced = names
                            .into_iter()
                            .map(|name| {
                                let g = grads.get(&name).expect("listed").clone();
                                (name, all_reduce(g, ReduceOperation::Mean, devices.clone()).resolve())
                            })
                            .collect();
                        let mut grads = GradBuffer::from_map(reduced);
                        let loss = all_reduce(
                            Tensor::<1>::from_data([loss as f32], device),
                            ReduceOperation::Mean,
                            devices,
                        )
                        .resolve()
                        .into_scalar::<f32>() as f64;
                        let norm = apply(model, optim, &mut grads, lr, grad_clip);
                        (loss, norm)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("replica thread")).collect()
        });
        Ok(results[0])
    }

    /// The same step with the averaging done on the first device (CPU replicas, tests).
    fn step_on_host(&mut self, shards: &[Batch], lr: f64, grad_clip: f64) -> Result<(f64, f64), TrainError> {
        let k = self.replicas.len();
        let results: Vec<(GradBuffer, f64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .replicas
                .iter()
                .zip(&self.devices)
                .zip(shards)
                .map(|(((model, _), device), shard)| scope.spawn(move || shard_gradients(model, shard, device)))
                .collect();
            handles.into_iter().map(|h| h.join().expect("replica thread")).collect()
        });
        let loss = results.iter().map(|(_, l)| l).sum::<f64>() / k as f64;
        let per_replica: Vec<GradBuffer> = results.into_iter().map(|(g, _)| g).collect();
        let names: Vec<String> = per_replica[0].names().cloned().collect();
        let first = &self.devices[0];
        let mut mean = BTreeMap::new();
        for name in names {
            let sum = per_replica
                .iter()
                .map(|g| g.get(&name).expect("same parameters").clone().to_device(first))
                .reduce(|a, b| a + b)
                .expect("k ≥ 1");
            mean.insert(name, sum.div_scalar(k as f64));
        }
        let mut norm = 0.0;
        for ((model, optim), device) in self.replicas.iter_mut().zip(&self.devices) {
            let mut grads = GradBuffer::from_map(
                mean.iter()
                    .map(|(n, g)| (n.clone(), g.clone().to_device(device)))
                    .collect(),
            );
            norm = apply(model, optim, &mut grads, lr, grad_clip);
        }
        Ok((loss, norm))
    }
}

/// Loss and gradients of one shard on `device`.
fn shard_gradients(model: &Gpt, shard: &Batch, device: &Device) -> (GradBuffer, f64) {
    let ad = device.clone().autodiff();
    let (x, y) = batch_tensors(shard, &ad);
    let loss = cross_entropy(model.forward(x), y);
    let value = loss.clone().into_scalar::<f32>() as f64;
    let mut grads = GradBuffer::new();
    grads.accumulate(model, &mut loss.backward());
    (grads, value)
}

/// Clips and applies averaged gradients to one replica; returns the norm before clipping.
/// A non-finite norm leaves the replica unchanged (the caller reports it).
fn apply(model: &mut Gpt, optim: &mut AdamW, grads: &mut GradBuffer, lr: f64, grad_clip: f64) -> f64 {
    let norm = grads.global_norm();
    if !norm.is_finite() {
        return norm;
    }
    *model = optim.step(model.clone(), grads, lr, clip_factor(norm, grad_clip));
    norm
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

    #[test]
    fn k_way_data_parallelism_equals_accumulation_over_k_micro_batches() {
        let device = Device::flex();
        let config = GptConfig {
            vocab_size: 11,
            block_size: 8,
            ..GptConfig::nano()
        };
        let model = config.init(3, &device.clone().autodiff()).unwrap();
        let opt = AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let b = batch(6, 8);

        let mut accum_opt = AdamW::new(opt);
        let mut dp = DataParallel::new(&model, &accum_opt, vec![device.clone(); 3], Reduce::OnHost);
        let mut accum = model;
        for _ in 0..3 {
            dp.step(&b, 1e-2, 1.0, 1).unwrap();
            let settings = StepSettings {
                lr: 1e-2,
                grad_clip: 1.0,
                precision: Precision::F32,
                dropout_seeds: &[],
                shards: None,
                step: 1,
            };
            accum = optimizer_step(
                accum,
                &mut accum_opt,
                &shard(&b, 3),
                settings,
                None,
                &device.clone().autodiff(),
            )
            .unwrap()
            .0;
        }
        let (p, q) = (read_params(dp.model()), read_params(&accum));
        for (name, a) in &p {
            let worst = a
                .values
                .iter()
                .zip(&q[name].values)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            // Only rounding separates (a + b + c)/3 from a/3 + b/3 + c/3; Adam's division by
            // √v magnifies it for near-zero gradients, so allow 1% of one step's size (lr).
            assert!(worst < 1e-4, "{name} differs by {worst}");
        }
    }
}
