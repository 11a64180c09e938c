//! Helpers shared by this crate's tests.

use burn::tensor::{Device, Tensor};

/// The CPU device the unit tests run on.
pub fn device() -> Device {
    Device::flex()
}

/// The tensor's values, flattened in row-major order.
pub fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().try_to_vec::<f32>().expect("f32 tensor")
}

/// Asserts that two slices agree element-wise within `tol` (absolute).
pub fn assert_close(actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len(), "length differs");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= tol, "element {i}: {a} vs expected {e} (tol {tol})");
    }
}
