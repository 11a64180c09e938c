//! The extension trait: one method per fused operation. `#[backend_extension]` generates its
//! implementation for Burn's `Dispatch` backend, routing flex tensors to [`crate::flex`] and
//! autodiff tensors to [`crate::autodiff`], which records the backward pass and calls the
//! inner (flex) implementation.

use burn::backend::{Backend, backend_extension, tensor::FloatTensor};

#[allow(unused_imports)] // the generated routing names it
use burn::backend::Autodiff;

/// Fused operations.
#[backend_extension(Flex, Autodiff)]
pub trait KernelOps: Backend {
    /// Batched matrix product with equal batch axes; inputs may be strided views.
    fn ember_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Exact (erf) GELU.
    fn ember_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `∂L/∂x` of [`ember_gelu`](Self::ember_gelu), given `∂L/∂y`.
    fn ember_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// LayerNorm over the last axis with gain and shift.
    fn ember_layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self>;

    /// `(∂L/∂x, ∂L/∂weight, ∂L/∂bias)` of [`ember_layer_norm`](Self::ember_layer_norm).
    fn ember_layer_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}
