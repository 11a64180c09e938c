//! Text in, batches of token ids out.
//!
//! ```text
//! corpus files ─ sources ─ pieces ─ tokenizer (every core) ─ shards ─ dataset directory
//!   .txt .jsonl  (.gz .zst)                                             └─ Tokens → BatchSampler → Batch
//! ```
//!
//! - [`sources`]: finds a corpus's files and reads them as documents, in pieces, streaming.
//! - [`corpus`]: reads one small text whole (`ember eval --text`, prompts).
//! - [`tokenizer`]: character-level, byte-level BPE, or any Hugging Face `tokenizer.json`.
//! - [`prepare`]: a corpus of any size into a dataset (`ember prepare`), in bounded memory.
//! - [`token_file`]: token ids on disk (u16 when the vocabulary fits, else u32).
//! - [`tokens`]: a split's shards read as one sequence.
//! - [`dataset`]: the `[data]` config section, datasets' `meta.json`, opening a dataset.
//! - [`run`]: a run's data: prepared into the run, or a link to a prepared dataset.
//! - [`sampler`]: random contiguous windows from a seeded, resumable generator.
//! - [`synth`]: synthetic corpora of known entropy rate (copy, recall, Markov).
//! - [`files`]: small files read as hostile input (regular files only, size-limited).
//!
//! This crate knows nothing of tensors, models or training: a [`Batch`] is plain token ids.

pub mod corpus;
pub mod dataset;
pub mod error;
pub mod files;
pub mod prepare;
pub mod run;
pub mod sampler;
pub mod sources;
mod split_writer;
pub mod synth;
pub mod token_file;
pub mod tokenizer;
pub mod tokens;

pub use dataset::{DataConfig, Inputs, PreparedData, TokenizerKind};
pub use error::DataError;
pub use sampler::{Batch, BatchSampler, SamplerState};
pub use token_file::TokenFile;
pub use tokenizer::Tokenizer;
pub use tokens::Tokens;
