//! Refusing a model that cannot fit, before any of it is allocated: the estimate of
//! [`ember_model::stats`] against the memory this machine has available. A configuration far
//! too large would otherwise allocate until the operating system kills the process.

use burn::tensor::Device;
use ember_model::GptConfig;
use ember_model::stats::{self, MemoryEstimate};

use crate::error::TrainError;

/// What the model is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Training on micro-batches of this many sequences.
    Train { batch: usize },
    /// Evaluation or sampling, this many sequences at a time.
    Infer { batch: usize },
}

impl Use {
    /// Training on an autodiff device, evaluation or sampling otherwise, `train.batch_size`
    /// sequences at a time.
    pub fn of(config: &crate::config::RunConfig, device: &Device) -> Self {
        let batch = config.train.batch_size;
        if device.is_autodiff() {
            Use::Train { batch }
        } else {
            Use::Infer { batch }
        }
    }
}

/// Checks that `model` fits in the memory available to `device`. Only host devices (the CPU
/// backends) are checked: the memory of a GPU or of a remote server is not known here.
pub fn check_fits(model: &GptConfig, purpose: Use, device: &Device) -> Result<(), TrainError> {
    if !on_host(device) {
        return Ok(());
    }
    let Some(available) = available_bytes() else {
        return Ok(()); // not Linux: nothing to compare with
    };
    check_against(model, purpose, available)
}

/// [`check_fits`] against `available` bytes.
pub fn check_against(model: &GptConfig, purpose: Use, available: u64) -> Result<(), TrainError> {
    let estimate = match purpose {
        Use::Train { batch } => stats::training_memory(model, batch),
        Use::Infer { batch } => stats::inference_memory(model, batch),
    };
    if estimate.total() <= available {
        return Ok(());
    }
    Err(TrainError::TooLarge {
        what: match purpose {
            Use::Train { .. } => "training",
            Use::Infer { .. } => "evaluation or sampling",
        },
        needed: gib(estimate.total()),
        available: gib(available),
        parts: parts(&estimate, purpose),
        advice: advice(&estimate, purpose),
    })
}

fn gib(bytes: u64) -> String {
    let g = bytes as f64 / (1u64 << 30) as f64;
    if g >= 1e4 {
        format!("{g:.2e}")
    } else {
        format!("{g:.1}")
    }
}

fn parts(e: &MemoryEstimate, purpose: Use) -> String {
    format!(
        "{} {} GiB, activations {} GiB, mask and RoPE tables {} GiB",
        match purpose {
            Use::Train { .. } => "weights, gradients and AdamW moments",
            Use::Infer { .. } => "weights",
        },
        gib(e.params_grads_optimizer),
        gib(e.activations),
        gib(e.tables)
    )
}

/// The keys that shrink the largest part.
fn advice(e: &MemoryEstimate, purpose: Use) -> &'static str {
    let largest = e.params_grads_optimizer.max(e.activations).max(e.tables);
    if largest == e.tables {
        "lower model.block_size"
    } else if largest == e.activations {
        match purpose {
            Use::Train { .. } => {
                "lower train.batch_size (with train.grad_accum to keep the tokens per step) or model.block_size"
            }
            Use::Infer { .. } => "lower model.block_size, or evaluate with a smaller --batch-size",
        }
    } else {
        "lower model.n_layer or model.d_model (or the vocabulary)"
    }
}

/// Whether tensors on `device` live in this process's memory.
fn on_host(device: &Device) -> bool {
    use burn::backend::DispatchDevice;
    // Matched by name: which backends' variants exist depends on the features compiled in.
    let name = match device.as_dispatch() {
        DispatchDevice::Autodiff(inner) => format!("{:?}", &**inner),
        other => format!("{other:?}"),
    };
    name.starts_with("Flex") || name.starts_with("NdArray")
}

/// `MemAvailable` of `/proc/meminfo`: what the kernel can give without swapping.
fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_model_fits_and_a_huge_one_is_refused_naming_the_keys() {
        let small = GptConfig {
            vocab_size: 65,
            ..GptConfig::nano()
        };
        check_against(&small, Use::Train { batch: 8 }, 1 << 30).unwrap();
        let long = GptConfig {
            block_size: 1 << 20,
            ..small.clone()
        };
        let e = check_against(&long, Use::Infer { batch: 1 }, 24 << 30)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.block_size") && e.contains("24.0 GiB available"),
            "{e}"
        );
        let wide = GptConfig {
            n_layer: 96,
            d_model: 12288,
            n_head: 96,
            ..small.clone()
        };
        let e = check_against(&wide, Use::Train { batch: 1 }, 24 << 30)
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.n_layer or model.d_model"), "{e}");
        let e = check_against(&small, Use::Train { batch: 1 << 20 }, 1 << 30)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.batch_size"), "{e}");
    }

    #[test]
    fn the_host_devices_are_recognised() {
        assert!(on_host(&Device::flex()));
        assert!(on_host(&Device::flex().autodiff()));
        assert!(available_bytes().is_some_and(|b| b > 0), "Linux reports MemAvailable");
    }
}
