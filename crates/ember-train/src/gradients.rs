//! The gradients of one micro-batch: forward, loss, backward, gradients by parameter name. The
//! one function every way of training shares: a single device, the CPU shards (each on its
//! part of the micro-batch) and the data-parallel replicas (each on its shard of the batch).

use std::sync::Mutex;

use burn::tensor::{Device, FloatDType, Tensor};
use ember_data::Batch;
use ember_model::precision::cast_params;
use ember_model::{Gpt, Precision, cross_entropy};

use crate::eval::batch_tensors;
use crate::optim::GradBuffer;

/// How one micro-batch's loss enters the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MicroBatch {
    /// The loss is divided by this (the number of micro-batches, weighted by a shard's share).
    pub divisor: f64,
    /// Compute precision of forward and backward.
    pub precision: Precision,
    /// The loss is multiplied by this before the backward pass (f16 loss scaling; 1 otherwise).
    pub loss_scale: f64,
    /// Seeds the device's random generator first: dropout's masks (none without dropout).
    pub dropout_seed: Option<u64>,
}

impl MicroBatch {
    /// A whole batch in f32, unscaled, without dropout.
    pub fn plain() -> Self {
        Self {
            divisor: 1.0,
            precision: Precision::F32,
            loss_scale: 1.0,
            dropout_seed: None,
        }
    }
}

/// The gradients of `batch`'s mean loss divided by `m.divisor` (and times `m.loss_scale`) with
/// respect to `model`'s parameters, and that divided loss `[1]` (unscaled, without autodiff).
pub fn micro_batch_gradients(model: &Gpt, batch: &Batch, m: MicroBatch, device: &Device) -> (GradBuffer, Tensor<1>) {
    let (x, y) = batch_tensors(batch, device);
    let forward = || match m.precision {
        Precision::F32 => model.forward(x),
        low => cast_params(model, low).forward(x).cast(FloatDType::F32),
    };
    // Dropout draws its masks in the forward pass, so the forward runs under the seed.
    let logits = match m.dropout_seed {
        Some(seed) => seeded(device, seed, forward),
        None => forward(),
    };
    let loss = cross_entropy(logits, y);
    let loss = if m.divisor != 1.0 {
        loss.div_scalar(m.divisor)
    } else {
        loss
    };
    let value = loss.clone().inner();
    let loss = if m.loss_scale != 1.0 {
        loss.mul_scalar(m.loss_scale)
    } else {
        loss
    };
    let mut grads = GradBuffer::new();
    grads.accumulate(model, &mut loss.backward());
    (grads, value)
}

/// Burn's backends keep one random generator per process, not per device or thread; whoever
/// seeds it and then draws holds this lock across both, so that no other thread's draws fall in
/// between and change what the seed promises.
static DEVICE_RNG: Mutex<()> = Mutex::new(());

/// `draw()` with the device's random generator seeded with `seed` and no other thread drawing.
pub(crate) fn seeded<R>(device: &Device, seed: u64, draw: impl FnOnce() -> R) -> R {
    let _only_us = DEVICE_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    draw()
}
