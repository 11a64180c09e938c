//! AdamW (Loshchilov & Hutter), written out as PyTorch computes it:
//!
//! ```text
//! θ ← θ · (1 − lr·λ)                                  decoupled weight decay (2-D weights only)
//! m ← β₁ m + (1 − β₁) g
//! v ← β₂ v + (1 − β₂) g²
//! θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//!
//! The moments are kept per parameter name, flattened, on the backend without autodiff.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId, ParamMapper};
use burn::tensor::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::grads::GradBuffer;
use crate::params::Path;

/// AdamW's hyper-parameters (the learning rate comes from the schedule at each step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Decay rate of the first moment.
    pub beta1: f64,
    /// Decay rate of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay λ, applied to parameters of rank ≥ 2 only.
    pub weight_decay: f64,
}

/// First and second moments of one parameter, `[numel]` each.
#[derive(Debug, Clone)]
pub struct Moments {
    /// Running mean of the gradient.
    pub m: Tensor<1>,
    /// Running mean of the squared gradient.
    pub v: Tensor<1>,
}

/// The optimiser and its state.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    /// Updates applied so far (`t` in the bias corrections).
    steps: u64,
    moments: BTreeMap<String, Moments>,
}

impl AdamW {
    /// A fresh optimiser.
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            steps: 0,
            moments: BTreeMap::new(),
        }
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The per-parameter moments, by name.
    pub fn moments(&self) -> &BTreeMap<String, Moments> {
        &self.moments
    }

    /// Restores a saved state.
    pub fn restore(&mut self, steps: u64, moments: BTreeMap<String, Moments>) {
        self.steps = steps;
        self.moments = moments;
    }

    /// A copy whose state lives on `device`.
    pub fn to_device(&self, device: &burn::tensor::Device) -> Self {
        let moments = self
            .moments
            .iter()
            .map(|(n, m)| {
                (
                    n.clone(),
                    Moments {
                        m: m.m.clone().to_device(device),
                        v: m.v.clone().to_device(device),
                    },
                )
            })
            .collect();
        Self {
            config: self.config,
            steps: self.steps,
            moments,
        }
    }

    /// Applies one update with learning rate `lr` to every parameter that has a gradient in
    /// `grads`, each gradient multiplied by `grad_factor` first (the clipping factor, 1 for
    /// none), and returns the updated module.
    ///
    /// Where the fused kernels serve the parameters (flex, f32), the updates are computed first,
    /// in parallel across parameters and with the moments updated in place, and then put into
    /// the module; elsewhere each parameter is updated in turn with plain tensor operations.
    pub fn step<M: Module>(&mut self, module: M, grads: &GradBuffer, lr: f64, grad_factor: f64) -> M {
        self.steps += 1;
        let ready = self.fused_updates(&module, grads, lr, grad_factor);
        let mut mapper = Update {
            path: Path::default(),
            optim: self,
            grads,
            lr,
            grad_factor,
            ready,
        };
        let module = module.map(&mut mapper);
        debug_assert!(mapper.ready.is_empty(), "updates computed for parameters not found");
        module
    }

    /// The new values of the parameters the fused kernel serves, by name, flattened; their
    /// moments are updated.
    fn fused_updates<M: Module>(
        &mut self,
        module: &M,
        grads: &GradBuffer,
        lr: f64,
        grad_factor: f64,
    ) -> BTreeMap<String, Tensor<1>> {
        struct Collect<'a> {
            path: Path,
            grads: &'a GradBuffer,
            found: Vec<(String, bool, Tensor<1>)>,
        }
        impl ModuleVisitor for Collect<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.enter(name);
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.exit();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let name = self.path.name();
                let theta = param.val().inner();
                if self.grads.get(&name).is_some() && ember_kernels::fused(&theta) {
                    let n = theta.shape().num_elements();
                    self.found.push((name, D >= 2, theta.reshape([n])));
                }
            }
        }
        let mut collect = Collect {
            path: Path::default(),
            grads,
            found: Vec::new(),
        };
        module.visit(&mut collect);

        let c = self.config;
        let t = self.steps as i32;
        let jobs: Vec<_> = collect
            .found
            .into_iter()
            .map(|(name, decayed, theta)| {
                let moments = self.moments.remove(&name);
                (name, decayed, theta, moments)
            })
            .collect();
        let updated: Vec<(String, Tensor<1>, Moments)> = jobs
            .into_par_iter()
            .map(|(name, decayed, theta, moments)| {
                let decay = if decayed { 1.0 - lr * c.weight_decay } else { 1.0 };
                let Moments { m, v } = moments.unwrap_or_else(|| Moments {
                    m: theta.zeros_like(),
                    v: theta.zeros_like(),
                });
                let constants = [
                    lr as f32,
                    c.beta1 as f32,
                    c.beta2 as f32,
                    c.eps as f32,
                    decay as f32,
                    (1.0 - c.beta1.powi(t)) as f32,
                    (1.0 - c.beta2.powi(t)).sqrt() as f32,
                    grad_factor as f32,
                ];
                let grad = grads.get(&name).expect("collected with a gradient").clone();
                let (theta, m, v) = ember_kernels::adamw(theta, grad, m, v, constants);
                (name, theta, Moments { m, v })
            })
            .collect();
        updated
            .into_iter()
            .map(|(name, theta, moments)| {
                self.moments.insert(name.clone(), moments);
                (name, theta)
            })
            .collect()
    }
}

struct Update<'a> {
    path: Path,
    optim: &'a mut AdamW,
    grads: &'a GradBuffer,
    lr: f64,
    grad_factor: f64,
    /// Values computed by the fused kernel, flattened, by name.
    ready: BTreeMap<String, Tensor<1>>,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.name();
        let Some(grad) = self.grads.get(&name) else {
            return param;
        };
        let (id, value, mapper) = param.consume();
        let (tracked, require_grad) = (value.is_autodiff(), value.is_require_grad());
        let shape = value.dims();
        if let Some(theta) = self.ready.remove(&name) {
            return restore(theta.reshape(shape), id, mapper, tracked, require_grad);
        }

        // The reference: the same update with plain tensor operations.
        let c = self.optim.config;
        let t = self.optim.steps as i32;
        let theta = value.inner().reshape([shape.iter().product::<usize>()]); // [numel]
        let theta = if D >= 2 && c.weight_decay > 0.0 {
            theta.mul_scalar(1.0 - self.lr * c.weight_decay)
        } else {
            theta
        };
        let g = if self.grad_factor != 1.0 {
            grad.clone().mul_scalar(self.grad_factor)
        } else {
            grad.clone()
        };
        let moments = match self.optim.moments.remove(&name) {
            Some(Moments { m, v }) => Moments {
                m: m.mul_scalar(c.beta1) + g.clone().mul_scalar(1.0 - c.beta1),
                v: v.mul_scalar(c.beta2) + g.square().mul_scalar(1.0 - c.beta2),
            },
            None => Moments {
                m: g.clone().mul_scalar(1.0 - c.beta1),
                v: g.square().mul_scalar(1.0 - c.beta2),
            },
        };
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        let denom = moments.v.clone().sqrt().div_scalar(bias2.sqrt()).add_scalar(c.eps);
        let theta = theta - moments.m.clone().div(denom).mul_scalar(self.lr / bias1);
        self.optim.moments.insert(name, moments);

        restore(theta.reshape(shape), id, mapper, tracked, require_grad)
    }
}

/// Puts an updated value back into a parameter, re-entering autodiff if it was tracked.
fn restore<const D: usize>(
    value: Tensor<D>,
    id: ParamId,
    mapper: ParamMapper<Tensor<D>>,
    tracked: bool,
    require_grad: bool,
) -> Param<Tensor<D>> {
    let mut value = if tracked { Tensor::from_inner(value) } else { value };
    if require_grad {
        value = value.require_grad();
    }
    Param::from_mapped_value(id, value, mapper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Two {
        bias: Param<Tensor<1>>,
        weight: Param<Tensor<2>>,
    }

    fn values<const D: usize>(p: &Param<Tensor<D>>) -> Vec<f32> {
        p.val().into_data().try_to_vec().unwrap()
    }

    #[test]
    fn first_steps_match_hand_computed_updates() {
        let device = Device::flex().autodiff();
        let model = Two {
            bias: Param::from_tensor(Tensor::from_data([1.0], &device)),
            weight: Param::from_tensor(Tensor::from_data([[1.0]], &device)),
        };
        let config = AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(config);
        // loss = 2·bias + 2·weight: every gradient is 2.
        let loss = model.bias.val().mul_scalar(2.0).sum() + model.weight.val().mul_scalar(2.0).sum();
        let mut grads = GradBuffer::new();
        grads.accumulate(&model, &mut loss.backward());
        let model = opt.step(model, &grads, 0.1, 1.0);
        // Step 1: m̂ = 2, v̂ = 4, so the Adam step is lr·2/(2 + 1e-8) ≈ 0.1.
        // bias:   1 − 0.1 = 0.9 (no decay on 1-D parameters)
        // weight: 1·(1 − 0.1·0.1) − 0.1 = 0.89
        let adam = 0.1 * 2.0 / (2.0 + 1e-8);
        assert!((values(&model.bias)[0] as f64 - (1.0 - adam)).abs() < 1e-6);
        assert!((values(&model.weight)[0] as f64 - (0.99 - adam)).abs() < 1e-6);
        assert_eq!(opt.steps(), 1);
        assert!(model.weight.val().is_require_grad(), "parameters stay trainable");

        // Step 2 with gradient 0: m = 0.18, v = 0.19; bias corrections 0.19 and 0.0975.
        let loss = model.bias.val().mul_scalar(0.0).sum() + model.weight.val().mul_scalar(0.0).sum();
        let mut grads = GradBuffer::new();
        grads.accumulate(&model, &mut loss.backward());
        let before = values(&model.bias)[0] as f64;
        let model = opt.step(model, &grads, 0.1, 1.0);
        let step = (0.1 / 0.19) * 0.18 / ((0.19f64).sqrt() / (0.0975f64).sqrt() + 1e-8);
        assert!((values(&model.bias)[0] as f64 - (before - step)).abs() < 1e-6);
    }
}
