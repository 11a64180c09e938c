//! Errors of the data crate. Each message names the file or key and says how to fix it.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong reading, tokenizing or sampling data.
#[derive(Debug, Error)]
pub enum DataError {
    /// The corpus path does not exist.
    #[error(
        "data file {path} does not exist; run scripts/get-data.sh to fetch tiny-shakespeare, or set data.path to a text or JSONL file, a directory of them, or a prepared dataset"
    )]
    CorpusMissing {
        /// The path given.
        path: PathBuf,
    },
    /// The corpus holds no text.
    #[error("data file {path} is empty; point data.path at a file with text in it")]
    CorpusEmpty {
        /// The file.
        path: PathBuf,
    },
    /// The corpus is not UTF-8 text.
    #[error(
        "data file {path} is not UTF-8 text ({reason}); convert it to UTF-8 (e.g. `iconv -t UTF-8`) or choose another file"
    )]
    CorpusNotText {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The corpus path is neither a regular file nor a directory.
    #[error(
        "data file {path} is {kind}, not a regular file; point data.path at a text or JSONL file or a directory of them"
    )]
    CorpusNotFile {
        /// The path given.
        path: PathBuf,
        /// What it is ("a FIFO", "a character device", …).
        kind: &'static str,
    },
    /// A directory was given that holds no `.txt` file.
    #[error(
        "directory {path} holds no .txt or .jsonl files (searched recursively; .gz and .zst compressed ones count too); put the corpus in files with those names"
    )]
    NoTextFiles {
        /// The directory.
        path: PathBuf,
    },
    /// An operating-system error on a file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Text contains characters a character-level vocabulary does not know.
    #[error(
        "{what} contains {count} character(s) outside the tokenizer's vocabulary: {chars}; a character-level model can only read characters it was trained on"
    )]
    UnknownCharacters {
        /// Which text ("the prompt", "eval file x.txt", …).
        what: String,
        /// How many distinct unknown characters.
        count: usize,
        /// The first few of them, quoted.
        chars: String,
    },
    /// A `tokenizer.json` that cannot be read.
    #[error("tokenizer file {path}: {reason}")]
    BadTokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Training a BPE tokenizer failed.
    #[error("training the BPE tokenizer failed: {0}")]
    BpeTraining(String),
    /// A split holds too few tokens for one training window.
    #[error(
        "the {split} split has {tokens} tokens, but one window of block_size + 1 = {needed} tokens is needed; use a longer corpus, a smaller model.block_size, or a different data.val_fraction"
    )]
    CorpusTooShort {
        /// "train" or "val".
        split: &'static str,
        /// Tokens in it.
        tokens: usize,
        /// Tokens needed.
        needed: usize,
    },
    /// A `[data]` value is out of range.
    #[error("data.{key} = {value}: {problem}")]
    InvalidConfig {
        /// The key without the `data.` prefix.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What is expected.
        problem: String,
    },
    /// A corpus file that cannot be read as what its name says.
    #[error(
        "data file {path}{}: {reason}; fix or remove the file and prepare again (ember stops rather than leave part of a corpus out)",
        line.map(|n| format!(" line {n}")).unwrap_or_default()
    )]
    BadInput {
        /// The file.
        path: PathBuf,
        /// The line (JSONL).
        line: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// A prepared dataset that cannot be used.
    #[error("dataset {path}: {reason}")]
    BadDataset {
        /// The dataset directory.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The output path of `ember prepare` is taken.
    #[error("{path} {problem}")]
    DatasetExists {
        /// The output path.
        path: PathBuf,
        /// What is there and what to do.
        problem: String,
    },
    /// The corpus reader stopped because encoding had failed.
    #[error("reading the corpus stopped")]
    Stopped,
    /// A token file is damaged or was written by something else.
    #[error(
        "token file {path} is damaged ({reason}); a run cannot continue on it: restore the file from a copy, or start a new run from the corpus"
    )]
    BadTokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl DataError {
    /// Wraps an I/O error with what was being done and to which file.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { action, path, source }
    }
}
