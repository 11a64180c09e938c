//! Mixed precision: the weights stay f32 ("master weights"), and each forward pass runs on a
//! copy cast to f16 or bf16. The casts are part of the autodiff graph, so gradients arrive at
//! the f32 weights, where the optimiser updates them.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The floating-point type of the forward and backward computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// IEEE half precision (5-bit exponent): needs loss scaling to keep small gradients.
    F16,
    /// bfloat16 (f32's 8-bit exponent, 8-bit mantissa): no loss scaling needed.
    Bf16,
}

impl Precision {
    /// The Burn float type.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }
}

/// A copy of `module` whose float parameters are cast to `precision`. Under autodiff the
/// gradients of the copy flow back to the original's f32 parameters.
pub fn cast_params<M: Module>(module: &M, precision: Precision) -> M {
    struct Cast(FloatDType);
    impl ModuleMapper for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = param.consume();
            Param::from_mapped_value(id, value.cast(self.0), mapper)
        }
    }
    if precision == Precision::F32 {
        return module.clone();
    }
    module.clone().map(&mut Cast(precision.dtype()))
}
