//! Which path a tensor takes: the fused kernel on `flex`, the reference elsewhere.

use burn::backend::DispatchDevice;
use burn::tensor::Tensor;

/// Whether `t` lives on Burn's flex CPU backend (directly or under autodiff) and holds f32,
/// and the kernels are not switched off with `EMBER_KERNELS=off` (for comparisons).
pub fn is_flex<const D: usize>(t: &Tensor<D>) -> bool {
    if t.dtype() != burn::tensor::DType::F32 || !enabled() {
        return false;
    }
    let device = t.device();
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(&**inner, DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Whether `t` lives on a CubeCL device (wgpu, CUDA, …) outside autodiff.
pub fn is_cubecl<const D: usize>(t: &Tensor<D>) -> bool {
    let device = t.device();
    // Burn names the CubeCL backend's device variant only when a CubeCL feature is compiled
    // in; its `Debug` form names it always (Burn is pinned exactly).
    !device.is_autodiff() && format!("{:?}", device.as_dispatch()).starts_with("Cube")
}

/// False when the environment sets `EMBER_KERNELS=off`.
fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("EMBER_KERNELS").map_or(true, |v| v != "off"))
}
