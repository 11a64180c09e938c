//! The run configuration: one TOML file with `[model]`, `[data]` and `[train]` sections.
//!
//! Loading is strict: an unknown section or key is an error that names it and suggests the
//! nearest known key; a wrong type names the key and the expected type; every value is then
//! range-checked. `--set section.key=value` overrides are applied to the TOML before any of
//! this, so they are checked the same way.

use std::path::Path;

use ember_data::DataConfig;
use ember_model::{GptConfig, Precision};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::optim::{AdamWConfig, LrSchedule};

/// The `[train]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed into one optimiser step.
    pub grad_accum: usize,
    /// Optimiser steps of the whole run.
    pub max_steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// Clip gradients to this global norm; 0 disables clipping.
    pub grad_clip: f64,
    /// AdamW decoupled weight decay (2-D weights only).
    pub weight_decay: f64,
    /// AdamW β₁.
    pub beta1: f64,
    /// AdamW β₂.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Evaluate every this many steps (and at the last step).
    pub eval_interval: u64,
    /// Batches per split in each evaluation.
    pub eval_iters: usize,
    /// Write metrics every this many steps.
    pub log_interval: u64,
    /// Checkpoint every this many steps (and at the last step).
    pub checkpoint_interval: u64,
    /// Checkpoints kept besides the best one.
    pub keep_last: usize,
    /// Seed of the model initialisation, the batch sampler and dropout.
    pub seed: u64,
    /// Compute precision: "f32", or "f16"/"bf16" on f32 master weights (f16 with dynamic
    /// loss scaling).
    pub precision: Precision,
    /// Where to train when `--device` is not given: "cpu" (the fastest CPU backend),
    /// "flex", "ndarray", "wgpu", "cuda" or "cuda:N". Read by the command line only.
    pub device: String,
    /// Start from the weights of a Hugging Face GPT-NeoX directory or an ember run directory
    /// (its latest checkpoint), with a fresh optimiser: fine-tuning. The model and the
    /// tokenizer are the source's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<std::path::PathBuf>,
}

impl TrainConfig {
    /// The keys that are absent by default.
    pub const OPTIONAL_KEYS: [&str; 1] = ["init_from"];
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            grad_accum: 1,
            max_steps: 100,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 10,
            grad_clip: 1.0,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            eval_interval: 50,
            eval_iters: 10,
            log_interval: 1,
            checkpoint_interval: 50,
            keep_last: 2,
            seed: 1337,
            precision: Precision::F32,
            device: "cpu".into(),
            init_from: None,
        }
    }
}

impl TrainConfig {
    /// The learning-rate schedule (decaying over the whole run).
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            lr: self.lr,
            min_lr: self.min_lr,
            warmup_steps: self.warmup_steps,
            decay_steps: self.max_steps,
        }
    }

    /// The optimiser's hyper-parameters.
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }

    /// Range checks; the error names the key, the value and what is expected.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |key: &'static str, value: &dyn ToString, problem: &str| {
            Err(TrainError::InvalidConfig {
                key: format!("train.{key}"),
                value: value.to_string(),
                problem: problem.to_string(),
            })
        };
        let positive = |x: f64| x > 0.0 && x.is_finite();
        if self.batch_size == 0 {
            return bad("batch_size", &self.batch_size, "must be at least 1");
        }
        if self.grad_accum == 0 {
            return bad(
                "grad_accum",
                &self.grad_accum,
                "must be at least 1 (1 = no accumulation)",
            );
        }
        if self.max_steps == 0 {
            return bad("max_steps", &self.max_steps, "must be at least 1");
        }
        if !positive(self.lr) {
            return bad("lr", &self.lr, "must be a positive number such as 1e-3");
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return bad("min_lr", &self.min_lr, "must be between 0 and train.lr");
        }
        if self.warmup_steps > self.max_steps {
            return bad(
                "warmup_steps",
                &self.warmup_steps,
                &format!("exceeds train.max_steps = {}", self.max_steps),
            );
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return bad(
                "grad_clip",
                &self.grad_clip,
                "must be 0 (off) or a positive norm such as 1.0",
            );
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", &self.weight_decay, "must be 0 or positive");
        }
        for (key, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return bad(key, &beta, "must be in [0, 1)");
            }
        }
        if !positive(self.eps) {
            return bad("eps", &self.eps, "must be a small positive number such as 1e-8");
        }
        if self.eval_interval == 0 {
            return bad("eval_interval", &self.eval_interval, "must be at least 1");
        }
        if self.eval_iters == 0 {
            return bad("eval_iters", &self.eval_iters, "must be at least 1");
        }
        if self.log_interval == 0 {
            return bad("log_interval", &self.log_interval, "must be at least 1");
        }
        if self.checkpoint_interval == 0 {
            return bad("checkpoint_interval", &self.checkpoint_interval, "must be at least 1");
        }
        if self.keep_last == 0 {
            return bad("keep_last", &self.keep_last, "must keep at least the latest checkpoint");
        }
        Ok(())
    }
}

/// A whole run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The model.
    pub model: GptConfig,
    /// The data.
    pub data: DataConfig,
    /// Training.
    pub train: TrainConfig,
}

impl RunConfig {
    /// Reads `path`, applies `overrides` (`section.key=value`), and validates.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, TrainError> {
        let text = ember_data::files::read_regular_text(path, ember_data::files::limit::CONFIG).map_err(|e| {
            TrainError::Config {
                origin: path.display().to_string(),
                message: format!("cannot read it: {e}"),
            }
        })?;
        Self::parse(&text, overrides, &path.display().to_string())
    }

    /// Parses TOML text (`source` names it in errors), applies `overrides`, validates.
    pub fn parse(text: &str, overrides: &[String], source: &str) -> Result<Self, TrainError> {
        let err = |message: String| TrainError::Config {
            origin: source.to_string(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(e.message().to_string() + &line_hint(text, &e)))?;
        check_keys(&table).map_err(err)?;
        for o in overrides {
            apply_override(&mut table, o).map_err(|message| TrainError::Config {
                origin: format!("--set {o}"),
                message,
            })?;
        }
        let config: RunConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| err(e.to_string().trim().replace('\n', " ")))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.model.validate()?;
        self.data.validate()?;
        self.train.validate()
    }

    /// The TOML text of this config (what a run directory's `config.toml` holds).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config serialises")
    }
}

/// " (line N)" for a parse error with a position.
fn line_hint(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => format!(" (line {})", text[..span.start.min(text.len())].lines().count().max(1)),
        None => String::new(),
    }
}

/// The known sections and keys, read off the defaults.
fn schema() -> toml::Table {
    let mut schema = toml::Table::try_from(RunConfig::default()).expect("defaults serialise");
    // Keys whose default is "absent" do not serialise; they are known all the same.
    let model = schema.get_mut("model").and_then(|m| m.as_table_mut()).expect("[model]");
    for key in GptConfig::OPTIONAL_KEYS {
        model.insert(key.to_string(), toml::Value::Boolean(true));
    }
    let train = schema.get_mut("train").and_then(|m| m.as_table_mut()).expect("[train]");
    for key in TrainConfig::OPTIONAL_KEYS {
        train.insert(key.to_string(), toml::Value::Boolean(true));
    }
    schema
}

/// Rejects unknown sections and keys, suggesting the nearest known one.
fn check_keys(table: &toml::Table) -> Result<(), String> {
    let schema = schema();
    for (section, value) in table {
        let Some(known) = schema.get(section).and_then(|v| v.as_table()) else {
            let sections: Vec<&String> = schema.keys().collect();
            return Err(unknown(
                "section",
                &format!("[{section}]"),
                section,
                &sections.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ));
        };
        let Some(keys) = value.as_table() else {
            return Err(format!(
                "\"{section}\" must be a [{section}] section, not a single value"
            ));
        };
        for key in keys.keys() {
            if !known.contains_key(key) {
                return Err(unknown(
                    "key",
                    &format!("\"{key}\" in [{section}]"),
                    key,
                    &known.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
                ));
            }
        }
    }
    Ok(())
}

fn unknown(what: &str, shown: &str, given: &str, candidates: &[&str]) -> String {
    let nearest = candidates.iter().min_by_key(|c| edit_distance(given, c));
    match nearest {
        Some(n) if edit_distance(given, n) <= (given.len() / 3).max(2) => {
            format!("unknown {what} {shown}; did you mean \"{n}\"?")
        }
        _ => format!("unknown {what} {shown}; known: {}", candidates.join(", ")),
    }
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Applies one `section.key=value` override. The value is read as TOML (`50`, `1e-3`,
/// `true`, `"text"`); anything that is not valid TOML is taken as a string, so
/// `data.path=corpus.txt` needs no quotes.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), String> {
    let Some((key, raw)) = spec.split_once('=') else {
        return Err("expected section.key=value, e.g. train.max_steps=50".into());
    };
    let Some((section, name)) = key.trim().split_once('.') else {
        return Err(format!("\"{key}\" names no section; write e.g. train.{key}=..."));
    };
    let raw = raw.trim();
    let value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("parsed"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut patch = toml::Table::new();
    patch.insert(
        section.to_string(),
        toml::Value::Table(toml::Table::from_iter([(name.to_string(), value.clone())])),
    );
    check_keys(&patch)?;
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    entry
        .as_table_mut()
        .expect("checked above")
        .insert(name.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = RunConfig::parse("[train]\nmax_steps = 70\n", &[], "t.toml").unwrap();
        assert_eq!(c.train.max_steps, 70);
        assert_eq!(c.train.beta2, 0.95);
        assert_eq!(c.model, GptConfig::nano());
    }

    #[test]
    fn round_trips_through_toml() {
        let c = RunConfig::parse("[model]\nn_layer = 3\n[data]\ntokenizer = \"bpe\"\n", &[], "t").unwrap();
        assert_eq!(RunConfig::parse(&c.to_toml(), &[], "t").unwrap(), c);
    }

    #[test]
    fn unknown_keys_and_sections_are_named_with_a_suggestion() {
        let e = RunConfig::parse("[train]\nlrr = 1e-3\n", &[], "x.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "reading config x.toml: unknown key \"lrr\" in [train]; did you mean \"lr\"?"
        );
        let e = RunConfig::parse("[trian]\nlr = 1e-3\n", &[], "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown section [trian]; did you mean \"train\"?"), "{e}");
        let e = RunConfig::parse("[model]\nzzzzzzzz = 1\n", &[], "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("known: "), "{e}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = RunConfig::parse("[train]\nmax_steps = \"many\"\n", &[], "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_steps"), "{e}");
        let e = RunConfig::parse("[train\nlr = 1", &[], "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("(line 1)"), "{e}");
    }

    #[test]
    fn overrides_are_typed_and_checked() {
        let c = RunConfig::parse(
            "",
            &[
                "train.max_steps=50".into(),
                "data.path=some file.txt".into(),
                "model.gelu=\"tanh\"".into(),
            ],
            "t",
        )
        .unwrap();
        assert_eq!(c.train.max_steps, 50);
        assert_eq!(c.data.path, ember_data::Inputs::from("some file.txt"));
        assert_eq!(c.model.gelu, ember_nn::Gelu::Tanh);
        let e = RunConfig::parse("", &["train.max_step=5".into()], "t")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "reading config --set train.max_step=5: unknown key \"max_step\" in [train]; did you mean \"max_steps\"?"
        );
        assert!(
            RunConfig::parse("", &["max_steps=5".into()], "t")
                .unwrap_err()
                .to_string()
                .contains("names no section")
        );
    }

    #[test]
    fn impossible_values_are_rejected() {
        for (o, start) in [
            ("train.batch_size=0", "train.batch_size = 0"),
            ("train.lr=0", "train.lr = 0"),
            ("train.lr=-1", "train.lr = -1"),
            (
                "train.warmup_steps=500",
                "train.warmup_steps = 500: exceeds train.max_steps = 100",
            ),
            ("train.eval_iters=0", "train.eval_iters = 0"),
            ("model.block_size=0", "model.block_size = 0"),
            ("model.n_head=3", "model.n_head = 3"),
        ] {
            let e = RunConfig::parse("", &[o.into()], "t").unwrap_err().to_string();
            assert!(e.starts_with(start), "{o}: {e}");
        }
    }
}
