//! Choosing where tensors live. This is the only place in ember that names a backend.

use anyhow::{Result, bail};
use burn::tensor::Device;
use ember_train::parallel::Reduce;

/// The backends `--device` accepts.
pub const CHOICES: &str = "cpu, flex, ndarray, wgpu";

/// Resolves a `--device` (or `train.device`) name.
///
/// - `cpu`: the fastest CPU backend (flex, measured; see README's Performance section)
/// - `flex`: Burn's pure-Rust CPU backend
/// - `ndarray`: Burn's older CPU backend (deprecated upstream)
/// - `wgpu`: the default GPU adapter through wgpu (Vulkan, Metal, DX12; on a machine without a
///   GPU, Mesa's lavapipe runs Vulkan on the CPU), when built with `--features wgpu`
pub fn parse(name: &str) -> Result<Device> {
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        "wgpu" => wgpu(),
        other => bail!("--device {other}: unknown device; choose one of {CHOICES}"),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu() -> Result<Device> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<Device> {
    bail!(
        "--device wgpu: this ember was built without GPU support; rebuild with `cargo build --release --features wgpu`"
    )
}

/// Resolves a `--devices` list for data-parallel training: CUDA GPUs (`cuda:0,cuda:1`,
/// averaged with Burn's collective all-reduce) or CPU replicas (`cpu,cpu`, averaged on the
/// host; as fast as one CPU device at best, and useful to check a configuration).
pub fn parse_list(names: &[String]) -> Result<(Vec<Device>, Reduce)> {
    if names.len() < 2 {
        bail!("--devices needs at least two devices, e.g. cuda:0,cuda:1; use --device for one");
    }
    if names.iter().all(|n| matches!(n.as_str(), "cpu" | "flex" | "ndarray")) {
        let devices = names.iter().map(|n| parse(n)).collect::<Result<_>>()?;
        return Ok((devices, Reduce::OnHost));
    }
    let mut devices = Vec::new();
    for name in names {
        let Some(index) = name.strip_prefix("cuda:").and_then(|i| i.parse::<usize>().ok()) else {
            bail!("--devices {name}: expected cuda:N (all devices GPUs) or cpu (all devices CPUs)");
        };
        devices.push(cuda(index)?);
    }
    Ok((devices, Reduce::Collective))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(index: usize) -> Result<Device> {
    bail!(
        "--devices cuda:{index}: this ember was built without CUDA; rebuild with `cargo build --release --features cuda`"
    )
}
