//! Starting a run from another model's weights (`train.init_from`): a Hugging Face GPT-NeoX
//! directory, or an ember run directory (its latest checkpoint). The new run takes the
//! source's architecture and tokenizer, and a fresh optimiser.

use std::collections::BTreeMap;
use std::path::Path;

use ember_data::Tokenizer;
use ember_model::GptConfig;

use crate::checkpoint::{self, Selector};
use crate::error::TrainError;
use crate::hf;
use crate::params::NamedData;
use crate::run_dir;

/// The model a run starts from.
pub struct Source {
    /// Its architecture.
    pub config: GptConfig,
    /// Its parameters by ember's names.
    pub weights: BTreeMap<String, NamedData>,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
}

/// Reads the model at `path`: a Hugging Face directory (it holds `config.json`) or an ember run
/// directory (it holds `config.toml` and checkpoints).
pub fn load_source(path: &Path) -> Result<Source, TrainError> {
    let origin = |message: String| TrainError::InvalidConfig {
        key: "train.init_from".into(),
        value: format!("{:?}", path.display().to_string()),
        problem: message,
    };
    if path.join("config.json").is_file() {
        let m = hf::read_dir(path)?;
        return Ok(Source {
            config: m.config,
            weights: m.weights,
            tokenizer: m.tokenizer,
        });
    }
    if run_dir::config_path(path).is_file() {
        let ck = checkpoint::load(&checkpoint::select(path, Selector::Latest)?)?;
        let tokenizer = Tokenizer::load(&path.join("tokenizer.json"))?;
        if tokenizer.fingerprint() != ck.state.tokenizer_fingerprint {
            return Err(origin(format!(
                "its latest checkpoint was trained with another tokenizer than {}/tokenizer.json",
                path.display()
            )));
        }
        return Ok(Source {
            config: ck.state.config.model,
            weights: ck.model,
            tokenizer,
        });
    }
    Err(origin(
        "is neither a Hugging Face model directory (config.json) nor an ember run directory (config.toml)".into(),
    ))
}

/// The model of a run that starts from `source`: the source's architecture, with the run's
/// dropout. A `[model]` key the run's config sets to something other than both the default
/// and the source's value is an error naming it (the architecture cannot change).
pub fn model_config(run: &GptConfig, source: &GptConfig) -> Result<GptConfig, TrainError> {
    let table = |c: &GptConfig| toml::Table::try_from(c).expect("serialises");
    let (run_t, source_t, default_t) = (table(run), table(source), table(&GptConfig::default()));
    let mut conflicts = Vec::new();
    for (key, value) in &run_t {
        if key == "dropout" || key == "vocab_size" {
            continue;
        }
        if default_t.get(key) != Some(value) && source_t.get(key) != Some(value) {
            let theirs = source_t.get(key).map_or("absent".into(), |v| v.to_string());
            conflicts.push(format!("model.{key} = {value} (the source has {theirs})"));
        }
    }
    if !conflicts.is_empty() {
        return Err(TrainError::InvalidConfig {
            key: "train.init_from".into(),
            value: "…".into(),
            problem: format!(
                "the model's architecture comes from the source, and the config sets {}; remove those keys from [model]",
                conflicts.join(", ")
            ),
        });
    }
    Ok(GptConfig {
        dropout: run.dropout,
        ..source.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_s_architecture_wins_and_conflicts_are_named() {
        let source = GptConfig {
            n_layer: 4,
            d_model: 64,
            vocab_size: 50,
            ..GptConfig::nano()
        };
        let run = GptConfig {
            dropout: 0.1,
            ..GptConfig::nano()
        };
        let c = model_config(&run, &source).unwrap();
        assert_eq!((c.n_layer, c.d_model, c.vocab_size, c.dropout), (4, 64, 50, 0.1));
        let same = GptConfig {
            n_layer: 4,
            ..GptConfig::nano()
        };
        assert!(
            model_config(&same, &source).is_ok(),
            "a key equal to the source's is fine"
        );
        let other = GptConfig {
            n_layer: 6,
            ..GptConfig::nano()
        };
        let msg = model_config(&other, &source).unwrap_err().to_string();
        assert!(msg.contains("model.n_layer = 6 (the source has 4)"), "{msg}");
    }
}
