//! Conversions between a run's live state and its checkpoints: weights into a model, AdamW's
//! moments to and from the named flat arrays a checkpoint stores.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use ember_model::Gpt;

use crate::config::RunConfig;
use crate::error::TrainError;
use crate::optim::AdamW;
use crate::optim::adamw::Moments;
use crate::params::{self, NamedData};

/// Builds the model of `config` on `device` and loads `weights` into it, listing every
/// mismatch if they do not fit. A configuration that cannot hold the weights, or that cannot
/// fit in memory, is refused before anything is allocated.
pub fn load_model(
    config: &RunConfig,
    weights: &BTreeMap<String, NamedData>,
    source: &Path,
    device: &Device,
) -> Result<Gpt, TrainError> {
    config.model.validate_complete()?;
    let stored = weights.values().fold(0usize, |n, d| n.saturating_add(d.values.len()));
    let expected = ember_model::stats::param_count(&config.model);
    if expected > stored {
        return Err(TrainError::Checkpoint {
            path: source.to_path_buf(),
            message: format!(
                "its weights hold {stored} values but the configured model has {expected} parameters; the weights and the [model] settings do not belong together"
            ),
        });
    }
    crate::memory::check_fits(&config.model, crate::memory::Use::of(config, device), device)?;
    let model = config.model.init(config.train.seed, device)?;
    let problems = params::mismatches(&model, weights);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().take(8).map(|p| p.to_string()).collect();
        return Err(TrainError::Checkpoint {
            path: source.to_path_buf(),
            message: format!(
                "its weights do not fit the configured model ({} problem(s): {})",
                problems.len(),
                list.join("; ")
            ),
        });
    }
    Ok(params::load_params(model, weights))
}

pub(crate) fn moments_to(optim: &AdamW) -> BTreeMap<String, NamedData> {
    let mut out = BTreeMap::new();
    for (name, m) in optim.moments() {
        for (prefix, t) in [("m", &m.m), ("v", &m.v)] {
            let values = t.to_data().convert::<f32>().try_into_vec::<f32>().expect("f32");
            out.insert(
                format!("{prefix}.{name}"),
                NamedData {
                    shape: vec![values.len()],
                    values,
                },
            );
        }
    }
    out
}

pub(crate) fn moments_from(
    saved: &BTreeMap<String, NamedData>,
    model: &Gpt,
    source: &Path,
    device: &Device,
) -> Result<BTreeMap<String, Moments>, TrainError> {
    let mut out = BTreeMap::new();
    for (name, shape) in params::param_shapes(model) {
        let numel: usize = shape.iter().product();
        let get = |prefix: &str| -> Result<Tensor<1>, TrainError> {
            let key = format!("{prefix}.{name}");
            match saved.get(&key) {
                Some(d) if d.values.len() == numel => {
                    Ok(Tensor::from_data(TensorData::new(d.values.clone(), [numel]), device))
                }
                _ => Err(TrainError::Checkpoint {
                    path: source.to_path_buf(),
                    message: format!("the optimiser state lacks {key} of {numel} values"),
                }),
            }
        };
        if saved.contains_key(&format!("m.{name}")) {
            out.insert(
                name.clone(),
                Moments {
                    m: get("m")?,
                    v: get("v")?,
                },
            );
        }
    }
    Ok(out)
}
