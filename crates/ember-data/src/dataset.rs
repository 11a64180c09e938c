//! The `[data]` section of a run config, and the preparation of a run's token files.
//!
//! A run directory holds everything the data side needs, so that resuming or evaluating never
//! depends on the corpus still being where it was:
//!
//! ```text
//! <run>/tokenizer.json
//! <run>/tokens/train.bin    the first (1 − val_fraction) of the corpus's tokens
//! <run>/tokens/val.bin      the last val_fraction
//! <run>/tokens/meta.json    sizes, the corpus's SHA-256 and the tokenizer's fingerprint
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::corpus::read_corpus;
use crate::error::DataError;
use crate::token_file::TokenFile;
use crate::tokenizer::{BpeTokenizer, CharTokenizer, Tokenizer, hex_sha256};

/// Which tokenizer to train on the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    /// One token per character of the corpus.
    Char,
    /// Byte-level BPE with `data.vocab_size` tokens.
    Bpe,
}

/// The `[data]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The corpus: a UTF-8 text file or a directory of `.txt` files (relative paths are
    /// relative to the working directory).
    pub path: PathBuf,
    /// "char" or "bpe".
    pub tokenizer: TokenizerKind,
    /// Vocabulary size of a BPE tokenizer (at least 256); unused for "char".
    pub vocab_size: usize,
    /// Fraction of the corpus, taken from its end, held out for validation.
    pub val_fraction: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/tinyshakespeare.txt"),
            tokenizer: TokenizerKind::Char,
            vocab_size: 512,
            val_fraction: 0.1,
        }
    }
}

impl DataConfig {
    /// Checks the values that do not need the corpus.
    pub fn validate(&self) -> Result<(), DataError> {
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return Err(DataError::InvalidConfig {
                key: "val_fraction",
                value: self.val_fraction.to_string(),
                problem: "must be between 0 and 1 (exclusive), e.g. 0.1".into(),
            });
        }
        if self.tokenizer == TokenizerKind::Bpe && self.vocab_size < crate::tokenizer::bpe::MIN_VOCAB {
            return Err(DataError::InvalidConfig {
                key: "vocab_size",
                value: self.vocab_size.to_string(),
                problem: format!(
                    "byte-level BPE needs at least {} tokens; try 512 or more",
                    crate::tokenizer::bpe::MIN_VOCAB
                ),
            });
        }
        if self.path.as_os_str().is_empty() {
            return Err(DataError::InvalidConfig {
                key: "path",
                value: "\"\"".into(),
                problem: "name a text file or a directory of .txt files".into(),
            });
        }
        Ok(())
    }
}

/// Sizes recorded beside the token files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMeta {
    /// The corpus path as configured.
    pub corpus: PathBuf,
    /// SHA-256 of the corpus text.
    pub corpus_sha256: String,
    /// Fingerprint of the tokenizer that produced the ids.
    pub tokenizer_fingerprint: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Tokens in the train split.
    pub train_tokens: usize,
    /// Tokens in the validation split.
    pub val_tokens: usize,
    /// Characters of text in the validation split (for bits per character).
    pub val_chars: usize,
    /// BLAKE3 checksum of `train.bin` (absent in runs prepared before checksums existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_blake3: Option<String>,
    /// BLAKE3 checksum of `val.bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_blake3: Option<String>,
    /// The entropy floor of a synthetic corpus (recorded beside it by `ember synth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy_floor: Option<crate::synth::EntropyFloor>,
}

/// A run's tokenizer and memory-mapped splits.
#[derive(Debug)]
pub struct PreparedData {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Training tokens.
    pub train: TokenFile,
    /// Validation tokens.
    pub val: TokenFile,
    /// Sizes and fingerprints.
    pub meta: TokenMeta,
}

/// Paths of the data files inside a run directory.
pub struct RunDataPaths {
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `tokens/`.
    pub dir: PathBuf,
    /// `tokens/train.bin`.
    pub train: PathBuf,
    /// `tokens/val.bin`.
    pub val: PathBuf,
    /// `tokens/meta.json`.
    pub meta: PathBuf,
}

impl RunDataPaths {
    /// The paths under `run_dir`.
    pub fn new(run_dir: &Path) -> Self {
        let dir = run_dir.join("tokens");
        Self {
            tokenizer: run_dir.join("tokenizer.json"),
            train: dir.join("train.bin"),
            val: dir.join("val.bin"),
            meta: dir.join("meta.json"),
            dir,
        }
    }
}

/// Reads the corpus, trains the tokenizer, and writes the tokenizer and both splits into
/// `run_dir`.
pub fn prepare(config: &DataConfig, run_dir: &Path) -> Result<PreparedData, DataError> {
    prepare_with(config, run_dir, None)
}

/// [`prepare`], with `tokenizer` (a model's own, when fine-tuning) instead of one trained on
/// the corpus.
pub fn prepare_with(
    config: &DataConfig,
    run_dir: &Path,
    tokenizer: Option<Tokenizer>,
) -> Result<PreparedData, DataError> {
    config.validate()?;
    let text = read_corpus(&config.path)?;
    let tokenizer = match (tokenizer, config.tokenizer) {
        (Some(t), _) => t,
        (None, TokenizerKind::Char) => Tokenizer::Char(CharTokenizer::from_text(&text)),
        (None, TokenizerKind::Bpe) => {
            info!(vocab_size = config.vocab_size, "training byte-level BPE");
            Tokenizer::Bpe(BpeTokenizer::train(&text, config.vocab_size)?)
        }
    };
    let ids = tokenizer.encode(&text, &format!("corpus {}", config.path.display()))?;
    let n_val = ((ids.len() as f64) * config.val_fraction).round() as usize;
    let (train_ids, val_ids) = ids.split_at(ids.len() - n_val);
    let paths = RunDataPaths::new(run_dir);
    fs::create_dir_all(&paths.dir).map_err(DataError::io("creating", &paths.dir))?;
    let train_blake3 = TokenFile::write(&paths.train, train_ids, tokenizer.vocab_size())?;
    let val_blake3 = TokenFile::write(&paths.val, val_ids, tokenizer.vocab_size())?;
    let meta = TokenMeta {
        corpus: config.path.clone(),
        corpus_sha256: hex_sha256(text.as_bytes()),
        tokenizer_fingerprint: tokenizer.fingerprint(),
        vocab_size: tokenizer.vocab_size(),
        train_tokens: train_ids.len(),
        val_tokens: val_ids.len(),
        val_chars: tokenizer.decode(val_ids).chars().count(),
        train_blake3: Some(train_blake3),
        val_blake3: Some(val_blake3),
        entropy_floor: config
            .path
            .is_file()
            .then(|| crate::synth::read_floor(&config.path, &text))
            .flatten(),
    };
    let meta_json = serde_json::to_string_pretty(&meta).expect("serialisable");
    fs::write(&paths.meta, meta_json).map_err(DataError::io("writing", &paths.meta))?;
    tokenizer.save(&paths.tokenizer)?;
    info!(
        vocab = meta.vocab_size,
        train = meta.train_tokens,
        val = meta.val_tokens,
        "prepared token files"
    );
    open_prepared(run_dir)
}

/// Opens the tokenizer and token files an earlier [`prepare`] wrote into `run_dir`, verifying
/// each token file against its checksum and its ids against the vocabulary.
pub fn open_prepared(run_dir: &Path) -> Result<PreparedData, DataError> {
    let paths = RunDataPaths::new(run_dir);
    let tokenizer = Tokenizer::load(&paths.tokenizer)?;
    let meta_text = crate::files::read_regular_text(&paths.meta, crate::files::limit::CONFIG)
        .map_err(DataError::io("reading", &paths.meta))?;
    let meta: TokenMeta = serde_json::from_str(&meta_text).map_err(|e| DataError::BadTokenFile {
        path: paths.meta.clone(),
        reason: e.to_string(),
    })?;
    if meta.tokenizer_fingerprint != tokenizer.fingerprint() {
        return Err(DataError::BadTokenFile {
            path: paths.meta.clone(),
            reason: format!("it was made with another tokenizer than {}", paths.tokenizer.display()),
        });
    }
    let train = TokenFile::open(&paths.train)?;
    let val = TokenFile::open(&paths.val)?;
    let splits = [
        (&train, meta.train_tokens, &meta.train_blake3),
        (&val, meta.val_tokens, &meta.val_blake3),
    ];
    for (file, expected, checksum) in splits {
        if file.len() != expected {
            return Err(DataError::BadTokenFile {
                path: file.path().to_path_buf(),
                reason: format!("it holds {} tokens where meta.json records {expected}", file.len()),
            });
        }
        if checksum.is_none() {
            tracing::warn!(
                "{} has no checksum in meta.json (prepared by an older ember); checking its ids only",
                file.path().display()
            );
        }
        file.verify(checksum.as_deref(), tokenizer.vocab_size())?;
    }
    Ok(PreparedData {
        tokenizer,
        train,
        val,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_splits_the_tail_for_validation_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("c.txt");
        fs::write(&corpus, "abcdefghij".repeat(10)).unwrap();
        let cfg = DataConfig {
            path: corpus,
            ..DataConfig::default()
        };
        let run = dir.path().join("run");
        let data = prepare(&cfg, &run).unwrap();
        assert_eq!((data.train.len(), data.val.len()), (90, 10));
        assert_eq!(data.tokenizer.vocab_size(), 10);
        assert_eq!(data.meta.val_chars, 10);
        let mut val = Vec::new();
        data.val.extend_window(0, 10, &mut val);
        assert_eq!(data.tokenizer.decode(&val), "abcdefghij");
        let again = open_prepared(&run).unwrap();
        assert_eq!(again.meta, data.meta);
    }

    #[test]
    fn config_defaults_and_validation() {
        let cfg: DataConfig = toml::from_str("tokenizer = \"bpe\"\nvocab_size = 1024").unwrap();
        assert_eq!(cfg.val_fraction, 0.1);
        assert_eq!(cfg.path, PathBuf::from("data/tinyshakespeare.txt"));
        assert!(toml::from_str::<DataConfig>("tokenizer = \"words\"").is_err());
        let bad = DataConfig {
            val_fraction: 0.0,
            ..DataConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("data.val_fraction = 0")
        );
        let bad = DataConfig {
            tokenizer: TokenizerKind::Bpe,
            vocab_size: 100,
            ..DataConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("data.vocab_size = 100")
        );
    }
}
