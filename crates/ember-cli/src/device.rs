//! Choosing where tensors live. This is the only place in ember that names a backend.

use anyhow::{Result, bail};
use burn::tensor::Device;

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
