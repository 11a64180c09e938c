//! Gradients collected by parameter name, summed over micro-batches, their global norm, and
//! the factor that clips them to a maximum norm.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Gradients, Tensor};
use rayon::prelude::*;

use crate::params::Path;

/// Flattened gradients (`[numel]` each, on the backend without autodiff), by parameter name.
#[derive(Debug, Default)]
pub struct GradBuffer {
    grads: BTreeMap<String, Tensor<1>>,
    /// `Σ g²` `[1]` of gradients that [`add`](Self::add) summed with the fused CPU kernel, by
    /// name, for as long as they stay unchanged: the kernel computes the sum and its squares in
    /// one pass, and [`global_norm`](Self::global_norm) reuses them.
    squares: BTreeMap<String, Tensor<1>>,
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
            path: Path,
            grads: &'a mut Gradients,
            into: &'a mut GradBuffer,
        }
        impl ModuleVisitor for Collect<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.enter(name);
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.exit();
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
                let name = self.path.name();
                self.into.squares.remove(&name);
                add_one(&mut self.into.grads, name, grad);
            }
        }
        module.visit(&mut Collect {
            path: Path::default(),
            grads,
            into: self,
        });
    }

    /// Adds another buffer's gradients (in place where the buffer's tensors allow it; on the
    /// CPU, in parallel across parameters, with the square sums the global norm needs taken
    /// in the same pass).
    pub fn add(&mut self, other: GradBuffer) {
        let parallel = self.on_cpu_kernels();
        let GradBuffer { grads, mut squares } = other;
        let pairs: Vec<_> = grads
            .into_iter()
            .map(|(name, g)| {
                let previous = self.grads.remove(&name);
                self.squares.remove(&name);
                let known = squares.remove(&name);
                (name, previous, g, known)
            })
            .collect();
        let summed = map_params(pairs, parallel, |(name, previous, g, known)| match previous {
            Some(previous) if ember_kernels::fused(&previous) => {
                let (sum, squares) = ember_kernels::add_sum_squares(previous, g);
                (name, sum, Some(squares))
            }
            Some(previous) => (name, previous + g, None),
            None => (name, g, known),
        });
        for (name, g, squares) in summed {
            if let Some(squares) = squares {
                self.squares.insert(name.clone(), squares);
            }
            self.grads.insert(name, g);
        }
    }

    /// A buffer holding the given flattened gradients.
    pub fn from_map(grads: BTreeMap<String, Tensor<1>>) -> Self {
        Self {
            grads,
            squares: BTreeMap::new(),
        }
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
        self.squared_norm()
            .map_or(0.0, |total| (total.into_scalar::<f32>() as f64).sqrt())
    }

    /// `value` (one number on the device) and the global norm, read back from the device
    /// together: one wait instead of two.
    pub fn read_with_norm(&self, value: Tensor<1>) -> (f64, f64) {
        let Some(squares) = self.squared_norm() else {
            return (value.into_scalar::<f32>() as f64, 0.0);
        };
        let both = Tensor::cat(vec![value.cast(DType::F32), squares.cast(DType::F32)], 0);
        let both = both
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("two f32 numbers");
        (both[0] as f64, (both[1] as f64).sqrt())
    }

    /// `Σ g²` over every element of every gradient, `[1]`, left on the device (`None` without
    /// gradients).
    fn squared_norm(&self) -> Option<Tensor<1>> {
        let all: Vec<(Option<Tensor<1>>, Tensor<1>)> = self
            .grads
            .iter()
            .map(|(name, g)| (self.squares.get(name).cloned(), g.clone()))
            .collect();
        let squares = map_params(all, self.on_cpu_kernels(), |(known, g)| {
            known.unwrap_or_else(|| ember_kernels::sum_squares(g))
        });
        (!squares.is_empty()).then(|| Tensor::cat(squares, 0).sum())
    }

    /// Multiplies every gradient by `factor`.
    pub fn scale(&mut self, factor: f64) {
        self.squares.clear();
        for g in self.grads.values_mut() {
            *g = g.clone().mul_scalar(factor);
        }
    }

    /// Whether the gradients live where the fused CPU kernels serve them (flex, f32): there
    /// the per-parameter work is spread over the CPU's threads.
    fn on_cpu_kernels(&self) -> bool {
        self.grads.values().next().is_some_and(ember_kernels::fused)
    }
}

/// The factor that clips gradients of global norm `norm` to at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: `max_norm / (norm + 1e-6)` when below one, else 1). `max_norm` 0 or
/// less: no clipping.
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if max_norm <= 0.0 {
        return 1.0;
    }
    (max_norm / (norm + 1e-6)).min(1.0)
}

/// `f` over every item, in parallel across the CPU's threads when `parallel`, in order.
fn map_params<T: Send, R: Send>(items: Vec<T>, parallel: bool, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    if parallel {
        items.into_par_iter().map(f).collect()
    } else {
        items.into_iter().map(f).collect()
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
        let loss = Tensor::<1>::from_data([1.25], &device);
        assert_eq!(
            buf.read_with_norm(loss.clone()),
            (1.25, norm),
            "read together, the same figures"
        );
        assert_eq!(GradBuffer::new().read_with_norm(loss), (1.25, 0.0));
        let f = clip_factor(norm, 1.0);
        assert!((f - 1.0 / (40f64.sqrt() + 1e-6)).abs() < 1e-9);
        buf.scale(f);
        assert!((buf.global_norm() - 1.0).abs() < 1e-5);
        assert_eq!(clip_factor(1.0, 5.0), 1.0);
        assert_eq!(clip_factor(100.0, 0.0), 1.0, "0 turns clipping off");

        // Adding a buffer sums per name and keeps names only one side has.
        let mut other = GradBuffer::new();
        let loss = m.a.val().sum().mul_scalar(3.0);
        other.accumulate(&m, &mut loss.backward());
        buf.add(other);
        let a: Vec<f32> = buf.get("a").unwrap().to_data().try_to_vec::<f32>().unwrap();
        let expected = 2.0 * f as f32 + 3.0;
        assert!(a.iter().all(|v| (v - expected).abs() < 1e-6), "{a:?}");
        assert_eq!(buf.names().count(), 2);
    }

    /// The norm from square sums kept by `add` is the one computed afresh, to the bit, and
    /// changing the gradients afterwards (`scale`, `accumulate`) does not reuse stale sums.
    #[test]
    fn the_norm_of_summed_buffers_is_the_norm_computed_afresh() {
        let device = Device::flex().autodiff();
        let m = two(&device);
        let grads_of = |k: f32| {
            let mut buf = GradBuffer::new();
            let loss = m.a.val().sum().mul_scalar(k) + m.b.val().powf_scalar(2.0).sum();
            buf.accumulate(&m, &mut loss.backward());
            buf
        };
        let afresh = |buf: &GradBuffer| GradBuffer::from_map(buf.grads.clone()).global_norm();
        // ∂a = k per element, ∂b = 2b = [[6], [8]] per buffer.
        let mut buf = grads_of(1.0);
        buf.add(grads_of(0.5));
        assert_eq!(buf.squares.len(), 2, "the fused add keeps each sum's squares");
        let norm = buf.global_norm();
        assert_eq!(norm, afresh(&buf));
        // a = [1.5, 1.5], b = [[12], [16]]: √(2·2.25 + 144 + 256)
        assert!((norm - (4.5f64 + 400.0).sqrt()).abs() < 1e-5, "{norm}");

        buf.scale(0.5);
        assert!(
            (buf.global_norm() - norm / 2.0).abs() < 1e-5,
            "scaling drops the kept sums"
        );

        let loss = m.a.val().sum().mul_scalar(10.0);
        buf.accumulate(&m, &mut loss.backward()); // a = [10.75, 10.75]
        assert_eq!(buf.global_norm(), afresh(&buf), "accumulating drops a's kept sum");
        assert!((buf.global_norm() - (2.0 * 10.75f64 * 10.75 + 100.0).sqrt()).abs() < 1e-4);
    }
}
