//! One optimiser step: forward and backward over the micro-batches, the finiteness check,
//! global-norm clipping and the AdamW update. Shared by the trainer and the benchmark.

use burn::tensor::{Device, Tensor};
use ember_data::Batch;
use ember_model::{Gpt, Precision};

use crate::error::TrainError;
use crate::gradients::{MicroBatch, micro_batch_gradients};
use crate::optim::loss_scale::{LossScale, MIN_SCALE};
use crate::optim::{AdamW, GradBuffer, clip_factor};
use crate::shards::Shards;

/// The settings of one step.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings<'a> {
    /// Learning rate.
    pub lr: f64,
    /// Global gradient-norm limit; 0 disables clipping.
    pub grad_clip: f64,
    /// Compute precision of forward and backward.
    pub precision: Precision,
    /// When not empty, seeds the device's random generator before each micro-batch (dropout).
    pub dropout_seeds: &'a [u64],
    /// Split each micro-batch across these CPU thread pools (see [`crate::shards`]); `None`
    /// runs it whole. Ignored with dropout, whose masks come from the device's one generator.
    pub shards: Option<&'a Shards>,
    /// The step's number (1-based), for error messages.
    pub step: u64,
}

/// What a step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean loss over the micro-batches.
    pub loss: f64,
    /// Global gradient norm before clipping (after unscaling).
    pub grad_norm: f64,
    /// False when an f16 step overflowed and was skipped (the scale was halved).
    pub applied: bool,
}

/// Runs one step on `device` (an autodiff device). `micro_batches` are summed into one update,
/// each loss scaled by `1 / micro_batches.len()`. With f16, `loss_scale` must be given and is
/// updated. The model is updated in place (or left unchanged after a skipped f16 step); an
/// error, with the model unchanged, if the loss or the gradient norm is not finite and no
/// loss scaling can explain it.
pub fn optimizer_step(
    model: &mut Gpt,
    optim: &mut AdamW,
    micro_batches: &[Batch],
    settings: StepSettings,
    loss_scale: Option<&mut LossScale>,
    device: &Device,
) -> Result<StepStats, TrainError> {
    let n = micro_batches.len();
    let scale = loss_scale.as_ref().map_or(1.0, |s| s.scale);
    let mut grads = GradBuffer::new();
    let mut losses = Vec::with_capacity(n);
    let divisor = n as f64;
    let shards = settings
        .shards
        .filter(|s| s.len() > 1 && settings.dropout_seeds.is_empty());
    for (micro, batch) in micro_batches.iter().enumerate() {
        let m = MicroBatch {
            divisor,
            precision: settings.precision,
            loss_scale: scale,
            dropout_seed: settings.dropout_seeds.get(micro).copied(),
        };
        let (g, loss) = match shards {
            Some(shards) => shards.gradients(model, batch, m, device),
            None => micro_batch_gradients(model, batch, m, device),
        };
        grads.add(g);
        losses.push(loss);
    }
    if scale != 1.0 {
        grads.scale(1.0 / scale);
    }
    // The loss and the norm come back from the device together, the step's one wait: the
    // finiteness check below needs both before the update.
    let (loss, grad_norm) = grads.read_with_norm(Tensor::cat(losses, 0).sum());
    let finite = loss.is_finite() && grad_norm.is_finite();
    if let Some(s) = loss_scale {
        s.update(!finite);
        if !finite && s.scale >= MIN_SCALE {
            return Ok(StepStats {
                loss,
                grad_norm,
                applied: false,
            });
        }
    }
    let step = settings.step;
    if !loss.is_finite() {
        return Err(TrainError::NonFinite {
            step,
            what: "loss",
            value: loss,
        });
    }
    if !grad_norm.is_finite() {
        return Err(TrainError::NonFinite {
            step,
            what: "gradient norm",
            value: grad_norm,
        });
    }
    let factor = clip_factor(grad_norm, settings.grad_clip);
    *model = optim.step(model.clone(), &grads, settings.lr, factor);
    Ok(StepStats {
        loss,
        grad_norm,
        applied: true,
    })
}

/// Checks that `device` can compute in `precision` (bf16 has no arithmetic on wgpu, for one).
pub fn check_precision(precision: Precision, device: &Device) -> Result<(), TrainError> {
    if precision == Precision::F32 || device.supports_dtype(precision.dtype()) {
        return Ok(());
    }
    let name = serde_json::to_value(precision).expect("serialisable");
    Err(TrainError::InvalidConfig {
        key: "train.precision".into(),
        value: name.as_str().unwrap_or("?").to_string(),
        problem: match precision {
            Precision::Bf16 => {
                "this device cannot compute in bf16; use \"f32\", \"f16\" where the device has it, or --device flex (bf16 runs on flex and CUDA; not on wgpu or ndarray)"
            }
            _ => "this device cannot compute in f16; use \"f32\", or --device flex (f16 runs on flex and on wgpu adapters with shader-f16; not on ndarray)",
        }
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::GptConfig;

    fn batch() -> Batch {
        let ids: Vec<u32> = (0..4 * 9).map(|i| ((i * 5 + i / 4) % 13) as u32).collect();
        Batch::from_windows(&ids, 8)
    }

    fn loss(precision: Precision) -> f64 {
        let device = Device::flex().autodiff();
        let config = GptConfig {
            vocab_size: 13,
            block_size: 8,
            ..GptConfig::nano()
        };
        let mut model = config.init(1, &device).unwrap();
        let mut opt = AdamW::new(crate::TrainConfig::default().adamw());
        let mut scale = (precision == Precision::F16).then(LossScale::default);
        let settings = StepSettings {
            lr: 1e-2,
            grad_clip: 1.0,
            precision,
            dropout_seeds: &[],
            shards: None,
            step: 1,
        };
        let mut applied = 0;
        let mut last = f64::NAN;
        while applied < 3 {
            let s = optimizer_step(&mut model, &mut opt, &[batch()], settings, scale.as_mut(), &device).unwrap();
            applied += usize::from(s.applied);
            last = s.loss;
        }
        last
    }

    #[test]
    fn half_precision_steps_track_f32_on_the_cpu() {
        let f32_loss = loss(Precision::F32);
        for p in [Precision::F16, Precision::Bf16] {
            let l = loss(p);
            assert!((l - f32_loss).abs() < 0.05, "{p:?}: {l} vs f32 {f32_loss}");
        }
    }
}
