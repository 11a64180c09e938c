//! Text in, batches of token ids out.
//!
//! ```text
//! corpus (file or dir of .txt) ─ tokenizer ─ token ids ─ split ─ train.bin / val.bin (mmap)
//!                                                                  └─ BatchSampler → Batch
//! ```
//!
//! - [`corpus`]: reads and validates the text.
//! - [`tokenizer`]: character-level or byte-level BPE, saved as `tokenizer.json`.
//! - [`token_file`]: token ids on disk (u16 when the vocabulary fits, else u32), memory-mapped.
//! - [`dataset`]: the `[data]` config section and the preparation of a run's token files.
//! - [`sampler`]: random contiguous windows from a seeded, resumable generator.
//! - [`synth`]: synthetic corpora of known entropy rate (copy, recall, Markov).
//! - [`files`]: small files read as hostile input (regular files only, size-limited).
//!
//! This crate knows nothing of tensors, models or training: a [`Batch`] is plain token ids.

pub mod corpus;
pub mod dataset;
pub mod error;
pub mod files;
pub mod sampler;
pub mod synth;
pub mod token_file;
pub mod tokenizer;

pub use dataset::{DataConfig, PreparedData, TokenizerKind};
pub use error::DataError;
pub use sampler::{Batch, BatchSampler, SamplerState};
pub use token_file::TokenFile;
pub use tokenizer::Tokenizer;
