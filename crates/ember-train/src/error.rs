//! Errors of the training crate.

use std::path::PathBuf;

use ember_data::DataError;
use ember_model::ModelError;
use thiserror::Error;

/// What can go wrong configuring, running, checkpointing or evaluating a run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The config file (or a `--set` override) cannot be used.
    #[error("reading config {origin}: {message}")]
    Config {
        /// The file name or the override.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A `[train]` value is out of range.
    #[error("{key} = {value}: {problem}")]
    InvalidConfig {
        /// `train.<key>`.
        key: String,
        /// The value as given.
        value: String,
        /// What is expected.
        problem: String,
    },
    /// A model problem.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A data problem.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint cannot be used.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A run directory cannot be used as asked.
    #[error("run directory {path}: {message}")]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A Hugging Face model directory cannot be read or written.
    #[error("Hugging Face model {path}: {message}")]
    Hf {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
    /// The loss or the gradients stopped being finite.
    #[error(
        "training diverged at step {step}: the {what} is {value}; the last good checkpoint is kept. Lower train.lr, raise train.warmup_steps or set train.grad_clip"
    )]
    NonFinite {
        /// The step whose update was refused.
        step: u64,
        /// "loss" or "gradient norm".
        what: &'static str,
        /// The value (NaN or ±inf).
        value: f64,
    },
    /// The model cannot fit in the memory available.
    #[error(
        "the model needs about {needed} GiB for {what} ({parts}) but this machine has {available} GiB available; {advice}"
    )]
    TooLarge {
        /// "training" or "evaluation or sampling".
        what: &'static str,
        /// The estimate, in GiB.
        needed: String,
        /// What the machine has, in GiB.
        available: String,
        /// The estimate's parts.
        parts: String,
        /// The keys to change.
        advice: &'static str,
    },
    /// The threads of batch sharding could not be started.
    #[error("starting the shard threads: {0}; run with --cpu-shards 1")]
    Threads(String),
    /// An operating-system error on a file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl TrainError {
    /// Wraps an I/O error with what was being done and to which file.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { action, path, source }
    }
}
