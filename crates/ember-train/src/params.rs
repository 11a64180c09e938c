//! Naming a model's parameters, and reading or replacing them by name.
//!
//! Every float parameter is addressed by its path in the module tree, joined with dots:
//! `wte.weight`, `blocks.0.attn.qkv.weight`, `ln_f.bias`. These are the reference
//! implementation's names, and the keys of checkpoints and of the optimiser's state.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

/// A parameter's values, flattened, with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedData {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub values: Vec<f32>,
}

/// Tracks the current path while walking a module tree (a visitor's or mapper's
/// `enter_module` calls [`enter`](Self::enter), `exit_module` [`exit`](Self::exit)).
#[derive(Default)]
pub(crate) struct Path(Vec<String>);

impl Path {
    pub(crate) fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    pub(crate) fn exit(&mut self) {
        self.0.pop();
    }
    /// The current parameter's name.
    pub(crate) fn name(&self) -> String {
        self.0.join(".")
    }
}

/// Names and shapes of every float parameter, in module order.
pub fn param_shapes<M: Module>(module: &M) -> Vec<(String, Vec<usize>)> {
    struct V(Path, Vec<(String, Vec<usize>)>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1.push((self.0.name(), param.dims().to_vec()));
        }
    }
    let mut v = V(Path::default(), Vec::new());
    module.visit(&mut v);
    v.1
}

/// Every float parameter's values, by name.
pub fn read_params<M: Module>(module: &M) -> BTreeMap<String, NamedData> {
    struct V(Path, BTreeMap<String, NamedData>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let data = param.val().into_data();
            let shape = data.shape().to_vec();
            let values = data.convert::<f32>().try_into_vec::<f32>().expect("f32 values");
            self.1.insert(self.0.name(), NamedData { shape, values });
        }
    }
    let mut v = V(Path::default(), BTreeMap::new());
    module.visit(&mut v);
    v.1
}

/// A difference between the parameters a module has and those offered to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamMismatch {
    /// The module has it; the source does not.
    Missing(String),
    /// The source has it; the module does not.
    Unexpected(String),
    /// Both have it, with different shapes.
    Shape {
        /// Parameter name.
        name: String,
        /// The module's shape.
        expected: Vec<usize>,
        /// The source's shape.
        found: Vec<usize>,
    },
}

impl std::fmt::Display for ParamMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamMismatch::Missing(n) => write!(f, "{n} is missing"),
            ParamMismatch::Unexpected(n) => write!(f, "{n} is not a parameter of this model"),
            ParamMismatch::Shape { name, expected, found } => {
                write!(f, "{name} has shape {found:?}, the model expects {expected:?}")
            }
        }
    }
}

/// Every way `source` does not fit `module` (empty when it fits exactly).
pub fn mismatches<M: Module>(module: &M, source: &BTreeMap<String, NamedData>) -> Vec<ParamMismatch> {
    let shapes = param_shapes(module);
    let mut out = Vec::new();
    for (name, expected) in &shapes {
        match source.get(name) {
            None => out.push(ParamMismatch::Missing(name.clone())),
            Some(d) if &d.shape != expected => out.push(ParamMismatch::Shape {
                name: name.clone(),
                expected: expected.clone(),
                found: d.shape.clone(),
            }),
            Some(_) => {}
        }
    }
    for name in source.keys() {
        if !shapes.iter().any(|(n, _)| n == name) {
            out.push(ParamMismatch::Unexpected(name.clone()));
        }
    }
    out
}

/// Replaces every float parameter by the values named in `source`, keeping each parameter's
/// identity, device and gradient tracking. Call [`mismatches`] first: this panics on a
/// missing name or a wrong shape.
pub fn load_params<M: Module>(module: M, source: &BTreeMap<String, NamedData>) -> M {
    struct Loader<'a>(Path, &'a BTreeMap<String, NamedData>);
    impl ModuleMapper for Loader<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.exit();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let name = self.0.name();
            let src = self.1.get(&name).unwrap_or_else(|| panic!("no values for {name}"));
            let (id, old, mapper) = param.consume();
            assert_eq!(src.shape, old.dims().to_vec(), "shape of {name}");
            let data = TensorData::new(src.values.clone(), src.shape.clone());
            let mut tensor = Tensor::<D>::from_data(data, &old.device());
            if old.is_require_grad() {
                tensor = tensor.require_grad();
            }
            Param::from_mapped_value(id, tensor, mapper)
        }
    }
    module.map(&mut Loader(Path::default(), source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use ember_model::GptConfig;

    fn model() -> ember_model::Gpt {
        GptConfig {
            vocab_size: 11,
            n_layer: 2,
            d_model: 8,
            block_size: 6,
            ..GptConfig::nano()
        }
        .init(0, &Device::flex())
        .unwrap()
    }

    #[test]
    fn names_mirror_the_reference_implementation() {
        let names: Vec<String> = param_shapes(&model()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 27);
        for expected in [
            "wte.weight",
            "blocks.0.ln1.weight",
            "blocks.0.attn.qkv.weight",
            "blocks.1.mlp.proj.bias",
            "ln_f.bias",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} not in {names:?}");
        }
    }

    #[test]
    fn loading_what_was_read_gives_the_same_model() {
        let a = model();
        let b = GptConfig {
            vocab_size: 11,
            n_layer: 2,
            d_model: 8,
            block_size: 6,
            ..GptConfig::nano()
        }
        .init(9, &Device::flex())
        .unwrap();
        let values = read_params(&a);
        assert!(mismatches(&b, &values).is_empty());
        let b = load_params(b, &values);
        assert_eq!(read_params(&b), values);
    }

    #[test]
    fn mismatches_list_missing_unexpected_and_reshaped_parameters() {
        let m = model();
        let mut values = read_params(&m);
        values.remove("ln_f.bias");
        values.insert(
            "extra.weight".into(),
            NamedData {
                shape: vec![1],
                values: vec![0.0],
            },
        );
        values.get_mut("wte.weight").unwrap().shape = vec![8, 11];
        let found: Vec<String> = mismatches(&m, &values).iter().map(|m| m.to_string()).collect();
        assert_eq!(
            found,
            vec![
                "wte.weight has shape [8, 11], the model expects [11, 8]".to_string(),
                "ln_f.bias is missing".to_string(),
                "extra.weight is not a parameter of this model".to_string(),
            ]
        );
    }
}
