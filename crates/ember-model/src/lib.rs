//! The GPT model assembled from `ember-nn`'s blocks.
//!
//! - [`config`]: [`GptConfig`] with its validation and named presets.
//! - [`gpt`]: the [`Gpt`] module and its forward pass (with or without a KV cache).
//! - [`inspect`]: the forward pass that also returns the attention weights.
//! - [`loss`]: mean cross-entropy of next-token predictions.
//! - [`precision`]: f16/bf16 compute on f32 master weights.
//! - [`stats`]: parameter count, training FLOPs per token, memory estimate.
//! - [`generate`] and [`sampling`]: autoregressive generation with temperature, top-k, top-p.
//!
//! This crate knows nothing of tokenizers, files, training or the command line.

pub mod config;
pub mod error;
pub mod generate;
pub mod gpt;
pub mod inspect;
pub mod loss;
pub mod precision;
pub mod sampling;
pub mod stats;

pub use config::GptConfig;
pub use error::ModelError;
pub use generate::{GenerateOptions, Generator};
pub use gpt::Gpt;
pub use loss::cross_entropy;
pub use precision::Precision;
pub use sampling::Sampler;
