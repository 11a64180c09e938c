//! Gradients collected by parameter name, summed over micro-batches, and clipped by their
//! global norm.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Gradients, Tensor};

/// Flattened gradients (`[numel]` each, on the backend without autodiff), by parameter name.
#[derive(Debug, Default)]
pub struct GradBuffer {
    grads: BTreeMap<String, Tensor<1>>,
}

impl GradBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves every parameter's gradient out of `grads` (the result of `loss.backward()`) and
    /// adds it to the buffer.
    pub fn accumulate<M: Module>(&mut self, module: &M, grads: &mut Gradients) {
        struct Collect<'a> {
            path: Vec<String>,
            grads: &'a mut Gradients,
            into: &'a mut BTreeMap<String, Tensor<1>>,
        }
        impl ModuleVisitor for Collect<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if !param.is_require_grad() {
                    return;
                }
                let Some(grad) = param.val().grad_remove(self.grads) else {
                    return;
                };
                let n = grad.shape().num_elements();
                let grad = grad.reshape([n]);
                add_one(self.into, self.path.join("."), grad);
            }
        }
        module.visit(&mut Collect {
            path: Vec::new(),
            grads,
            into: &mut self.grads,
        });
    }

    /// Adds another buffer's gradients.
    pub fn add(&mut self, other: GradBuffer) {
        for (name, g) in other.grads {
            add_one(&mut self.grads, name, g);
        }
    }

    /// A buffer holding the given flattened gradients.
    pub fn from_map(grads: BTreeMap<String, Tensor<1>>) -> Self {
        Self { grads }
    }

    /// The gradient of one parameter, flattened.
    pub fn get(&self, name: &str) -> Option<&Tensor<1>> {
        self.grads.get(name)
    }

    /// Names of the parameters that have a gradient.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.grads.keys()
    }

    /// `√(Σ g²)` over every element of every gradient. Reads one number back from the device.
    pub fn global_norm(&self) -> f64 {
        let squares: Vec<Tensor<1>> = self.grads.values().map(|g| g.clone().square().sum()).collect();
        if squares.is_empty() {
            return 0.0;
        }
        let total = Tensor::cat(squares, 0).sum().into_scalar::<f32>() as f64;
        total.sqrt()
    }

    /// Multiplies every gradient by `factor`.
    pub fn scale(&mut self, factor: f64) {
        for g in self.grads.values_mut() {
            *g = g.clone().mul_scalar(factor);
        }
    }

    /// Clips to a global norm of at most `max_norm` (PyTorch's `clip_grad_norm_`: the factor
    /// is `max_norm / (norm + 1e-6)` when below one). `norm` is [`global_norm`](Self::global_norm)'s
    /// result. Returns the factor applied.
    pub fn clip_to_norm(&mut self, norm: f64, max_norm: f64) -> f64 {
        let factor = max_norm / (norm + 1e-6);
        if factor < 1.0 {
            self.scale(factor);
            factor
        } else {
            1.0
        }
    }
}

/// `grads[name] += grad` (or `= grad` when absent).
fn add_one(grads: &mut BTreeMap<String, Tensor<1>>, name: String, grad: Tensor<1>) {
    let summed = match grads.remove(&name) {
        Some(previous) => previous + grad,
        None => grad,
    };
    grads.insert(name, summed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    fn two(device: &Device) -> Two {
        Two {
            a: Param::from_tensor(Tensor::from_data([1.0, 2.0], device)),
            b: Param::from_tensor(Tensor::from_data([[3.0], [4.0]], device)),
        }
    }

    #[test]
    fn accumulates_and_clips_by_the_global_norm() {
        let device = Device::flex().autodiff();
        let m = two(&device);
        let mut buf = GradBuffer::new();
        // loss = Σa + 2Σb twice → grads a: [2, 2], b: [[4], [4]]
        for _ in 0..2 {
            let loss = m.a.val().sum() + m.b.val().sum().mul_scalar(2.0);
            buf.accumulate(&m, &mut loss.backward());
        }
        let names: Vec<&String> = buf.names().collect();
        assert_eq!(names, ["a", "b"]);
        let norm = buf.global_norm(); // √(4 + 4 + 16 + 16) = √40
        assert!((norm - 40f64.sqrt()).abs() < 1e-6);
        let f = buf.clip_to_norm(norm, 1.0);
        assert!((f - 1.0 / (40f64.sqrt() + 1e-6)).abs() < 1e-9);
        assert!((buf.global_norm() - 1.0).abs() < 1e-5);
        assert_eq!(buf.clip_to_norm(1.0, 5.0), 1.0);
    }
}
