//! Training a GPT: configuration, optimisation, the loop, evaluation and checkpoints.
//!
//! - [`config`]: the run config (`[model]`, `[data]`, `[train]`), strict parsing, `--set`.
//! - [`optim`]: gradients by name, global-norm clipping, AdamW, warm-up + cosine schedule.
//! - [`trainer`]: the loop: start, resume, step, evaluate, checkpoint.
//! - [`observer`]: what the loop reports as it goes ([`Observer`]) and how it ended.
//! - [`step`]: one optimiser step: micro-batches, finiteness check, clipping, AdamW.
//! - [`gradients`]: one micro-batch's gradients, shared by every way of training.
//! - [`parallel`]: data parallelism, one replica per device.
//! - [`seeds`]: the evaluation and dropout seeds, derived from `train.seed`.
//! - [`state`]: a run's live state to and from checkpoints (weights, AdamW moments).
//! - [`eval`]: loss estimates during training, full-text evaluation for `ember eval`.
//! - [`attention_cost`]: attention's time and memory against the context length, per variant.
//! - [`finetune`]: starting a run from another model's weights (`train.init_from`).
//! - [`hf`]: Hugging Face GPT-NeoX export and import.
//! - [`inspect`]: attention weights, head summaries and rollout of a trained model.
//! - [`checkpoint`]: the versioned, checksummed, atomically written checkpoint format.
//! - [`metrics`]: `metrics.jsonl`.
//! - [`memory`]: refusing a model that cannot fit, before it is built.
//! - [`params`]: parameters by name (checkpoint keys, optimiser state keys).
//! - [`run_dir`]: the layout of a run directory.
//! - [`shards`]: a micro-batch split across CPU threads, one shard per core.
//!
//! Nothing here names a backend: the caller passes a `Device`.

pub mod attention_cost;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod eval;
pub mod finetune;
pub mod gradients;
pub mod hf;
pub mod inference;
pub mod inspect;
pub mod memory;
pub mod metrics;
pub mod observer;
pub mod optim;
pub mod parallel;
pub mod params;
pub mod run_dir;
pub mod seeds;
pub mod shards;
pub mod state;
pub mod step;
pub mod trainer;

pub use checkpoint::Selector;
pub use config::{RunConfig, TrainConfig};
pub use error::TrainError;
pub use observer::{Observer, Outcome};
pub use trainer::Trainer;
