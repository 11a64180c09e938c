//! The `[data]` config section, prepared token datasets, and a run's data.
//!
//! A prepared dataset (`ember prepare`, see [`crate::prepare`]) is a directory:
//!
//! ```text
//! <dataset>/meta.json        token counts, shards and their checksums, the sources with their
//!                            sizes and checksums, the tokenizer's fingerprint, the split rule
//! <dataset>/tokenizer.json
//! <dataset>/train/000000.bin token shards (see `token_file`), read as one sequence
//! <dataset>/val/000000.bin
//! ```
//!
//! A run's use of a dataset is [`crate::run`]'s.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::files::{limit, read_regular_text};
use crate::token_file::TokenFile;
use crate::tokenizer::Tokenizer;
use crate::tokens::Tokens;

/// Which tokenizer a dataset uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TokenizerKind {
    /// One token per character of the corpus.
    Char,
    /// Byte-level BPE with `data.vocab_size` tokens, trained on a sample of the corpus.
    Bpe,
    /// A Hugging Face `tokenizer.json` (GPT-2's, say), used as it is.
    File(PathBuf),
}

impl TryFrom<String> for TokenizerKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "char" => Ok(Self::Char),
            "bpe" => Ok(Self::Bpe),
            _ if s.ends_with(".json") => Ok(Self::File(PathBuf::from(s))),
            _ => Err(format!(
                "data.tokenizer = \"{s}\": expected \"char\", \"bpe\", or the path of a tokenizer.json"
            )),
        }
    }
}

impl From<TokenizerKind> for String {
    fn from(k: TokenizerKind) -> String {
        match k {
            TokenizerKind::Char => "char".into(),
            TokenizerKind::Bpe => "bpe".into(),
            TokenizerKind::File(p) => p.display().to_string(),
        }
    }
}

impl fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from(self.clone()))
    }
}

/// The corpus: one path (a file, a directory, or a prepared dataset) or a list of paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs(pub Vec<PathBuf>);

impl Inputs {
    /// The one path, when there is exactly one.
    pub fn single(&self) -> Option<&Path> {
        match self.0.as_slice() {
            [p] => Some(p),
            _ => None,
        }
    }
}

impl From<&str> for Inputs {
    fn from(s: &str) -> Self {
        Self(vec![PathBuf::from(s)])
    }
}

impl From<PathBuf> for Inputs {
    fn from(p: PathBuf) -> Self {
        Self(vec![p])
    }
}

impl fmt::Display for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(|p| p.display().to_string()).collect();
        f.write_str(&names.join(", "))
    }
}

impl Serialize for Inputs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.single() {
            Some(p) => p.serialize(s),
            None => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Inputs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(PathBuf),
            Many(Vec<PathBuf>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(p) => Self(vec![p]),
            OneOrMany::Many(v) => Self(v),
        })
    }
}

/// The `[data]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The corpus: a text or JSONL file (optionally .gz/.zst), a directory of them (searched
    /// recursively), a list of such paths, or a dataset `ember prepare` wrote. Relative paths
    /// are relative to the working directory.
    pub path: Inputs,
    /// "char", "bpe", or the path of a Hugging Face `tokenizer.json`.
    pub tokenizer: TokenizerKind,
    /// Vocabulary size of a BPE tokenizer (at least 256); unused otherwise.
    pub vocab_size: usize,
    /// Fraction held out for validation: whole documents, or the tail of a single one.
    pub val_fraction: f64,
    /// The JSONL field that holds a document's text.
    pub text_field: String,
    /// At most this many bytes of text, sampled evenly from the corpus, train a BPE tokenizer.
    pub tokenizer_sample_bytes: u64,
    /// Tokens per shard file.
    pub shard_tokens: u64,
    /// The end-of-text token written after every document of a corpus of several documents.
    pub eos_token: String,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            path: Inputs::from("data/tinyshakespeare.txt"),
            tokenizer: TokenizerKind::Char,
            vocab_size: 512,
            val_fraction: 0.1,
            text_field: "text".into(),
            tokenizer_sample_bytes: 128 << 20,
            shard_tokens: 100_000_000,
            eos_token: "<|endoftext|>".into(),
        }
    }
}

impl DataConfig {
    /// Checks the values that do not need the corpus.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad =
            |key: &'static str, value: String, problem: String| Err(DataError::InvalidConfig { key, value, problem });
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return bad(
                "val_fraction",
                self.val_fraction.to_string(),
                "must be between 0 and 1 (exclusive), e.g. 0.1".into(),
            );
        }
        if self.tokenizer == TokenizerKind::Bpe && self.vocab_size < crate::tokenizer::bpe::MIN_VOCAB {
            return bad(
                "vocab_size",
                self.vocab_size.to_string(),
                format!(
                    "byte-level BPE needs at least {} tokens; try 512 or more",
                    crate::tokenizer::bpe::MIN_VOCAB
                ),
            );
        }
        if self.path.0.is_empty() || self.path.0.iter().any(|p| p.as_os_str().is_empty()) {
            return bad(
                "path",
                format!("{:?}", self.path.to_string()),
                "name a text or JSONL file, a directory of them, or a prepared dataset".into(),
            );
        }
        if self.text_field.is_empty() {
            return bad(
                "text_field",
                "\"\"".into(),
                "name the JSONL field that holds the text".into(),
            );
        }
        if self.tokenizer_sample_bytes < 1 << 10 {
            return bad(
                "tokenizer_sample_bytes",
                self.tokenizer_sample_bytes.to_string(),
                "must be at least 1024 (a BPE tokenizer learns nothing from less)".into(),
            );
        }
        if self.shard_tokens < 1024 {
            return bad(
                "shard_tokens",
                self.shard_tokens.to_string(),
                "must be at least 1024, e.g. 100000000".into(),
            );
        }
        if self.eos_token.is_empty() {
            return bad(
                "eos_token",
                "\"\"".into(),
                "name the end-of-text token, e.g. \"<|endoftext|>\"".into(),
            );
        }
        Ok(())
    }

    /// The prepared dataset `path` names, if it names one.
    pub fn dataset_dir(&self) -> Option<&Path> {
        self.path.single().filter(|p| is_dataset(p))
    }
}

/// The `format` value of a dataset's `meta.json`.
pub const FORMAT: &str = "ember-dataset";

/// Whether `dir` holds a dataset `ember prepare` completed (its `meta.json` is written last).
pub fn is_dataset(dir: &Path) -> bool {
    read_regular_text(&dir.join("meta.json"), limit::CONFIG)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["format"] == FORMAT)
}

/// One input file of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceMeta {
    /// The path as found.
    pub path: PathBuf,
    /// Size on disk.
    pub bytes: u64,
    /// BLAKE3 of its bytes on disk.
    pub blake3: String,
    /// Documents read from it.
    pub documents: u64,
    /// Bytes of text (after decompression).
    pub text_bytes: u64,
}

/// One token file of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// The file, relative to the dataset directory.
    pub file: PathBuf,
    /// Tokens in it.
    pub tokens: u64,
    /// BLAKE3 of the file (absent in runs prepared before checksums existed).
    pub blake3: Option<String>,
}

/// The token files of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMeta {
    /// Tokens, all shards together.
    pub tokens: u64,
    /// Whole documents in the split.
    pub documents: u64,
    /// The shards, in order.
    pub shards: Vec<ShardMeta>,
}

/// A dataset's `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// [`FORMAT`].
    pub format: String,
    /// Layout version, 1.
    pub version: u32,
    /// SHA-256 of the `tokenizer.json` text.
    pub tokenizer_fingerprint: String,
    /// Ids the tokenizer can produce (the largest plus one).
    pub vocab_size: usize,
    /// The end-of-text id written after every document, when the corpus has several.
    pub eos_id: Option<u32>,
    /// The training split.
    pub train: SplitMeta,
    /// The validation split.
    pub val: SplitMeta,
    /// Characters of text in the validation split (for bits per character).
    pub val_chars: usize,
    /// How the validation split was chosen.
    pub val_rule: String,
    /// Bytes of text read, all sources together.
    pub text_bytes: u64,
    /// The input files.
    pub sources: Vec<SourceMeta>,
    /// The `[data]` section the dataset was prepared with.
    pub prepared_with: DataConfig,
    /// The entropy floor of a synthetic corpus (recorded beside it by `ember synth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy_floor: Option<crate::synth::EntropyFloor>,
}

/// `tokens/meta.json` as runs prepared by earlier ember versions wrote it: one `train.bin`
/// and one `val.bin`.
#[derive(Debug, Clone, Deserialize)]
struct LegacyMeta {
    corpus: PathBuf,
    tokenizer_fingerprint: String,
    vocab_size: usize,
    train_tokens: u64,
    val_tokens: u64,
    val_chars: usize,
    #[serde(default)]
    train_blake3: Option<String>,
    #[serde(default)]
    val_blake3: Option<String>,
    #[serde(default)]
    entropy_floor: Option<crate::synth::EntropyFloor>,
}

impl From<LegacyMeta> for DatasetMeta {
    fn from(m: LegacyMeta) -> Self {
        let split = |file: &str, tokens, blake3| SplitMeta {
            tokens,
            documents: 0,
            shards: vec![ShardMeta {
                file: file.into(),
                tokens,
                blake3,
            }],
        };
        DatasetMeta {
            format: FORMAT.into(),
            version: 0,
            tokenizer_fingerprint: m.tokenizer_fingerprint,
            vocab_size: m.vocab_size,
            eos_id: None,
            train: split("train.bin", m.train_tokens, m.train_blake3),
            val: split("val.bin", m.val_tokens, m.val_blake3),
            val_chars: m.val_chars,
            val_rule: "the tail of the corpus".into(),
            text_bytes: 0,
            sources: Vec::new(),
            prepared_with: DataConfig {
                path: m.corpus.into(),
                ..DataConfig::default()
            },
            entropy_floor: m.entropy_floor,
        }
    }
}

/// A dataset opened for reading: tokenizer, both splits, and its `meta.json`.
#[derive(Debug)]
pub struct PreparedData {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Training tokens.
    pub train: Tokens,
    /// Validation tokens.
    pub val: Tokens,
    /// Sizes and fingerprints.
    pub meta: DatasetMeta,
    /// The dataset directory.
    pub dir: PathBuf,
}

/// Reads `meta.json` of the dataset in `dir` (either layout).
pub fn read_meta(dir: &Path) -> Result<DatasetMeta, DataError> {
    let path = dir.join("meta.json");
    let text = read_regular_text(&path, limit::STATE).map_err(|e| DataError::BadDataset {
        path: dir.to_path_buf(),
        reason: format!("its meta.json cannot be read ({e})"),
    })?;
    let bad = |e: serde_json::Error| DataError::BadTokenFile {
        path: path.clone(),
        reason: e.to_string(),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
    if value.get("format").is_none() {
        return Ok(serde_json::from_value::<LegacyMeta>(value).map_err(bad)?.into());
    }
    if value["format"] != FORMAT || value["version"] != 1 {
        return Err(DataError::BadDataset {
            path: dir.to_path_buf(),
            reason: format!(
                "its meta.json is format {} version {}, where ember reads {FORMAT} version 1",
                value["format"], value["version"]
            ),
        });
    }
    serde_json::from_value(value).map_err(bad)
}

/// Opens the dataset in `dir`: its tokenizer (from `tokenizer`, or `dir/tokenizer.json`), and
/// its shards, each checked against its size, checksum, and the vocabulary.
pub fn open_dataset(dir: &Path, tokenizer: &Path) -> Result<PreparedData, DataError> {
    let meta = read_meta(dir)?;
    let tokenizer = Tokenizer::load(tokenizer)?;
    if meta.tokenizer_fingerprint != tokenizer.fingerprint() {
        return Err(DataError::BadTokenFile {
            path: dir.join("meta.json"),
            reason: "it was made with another tokenizer than the run's tokenizer.json".into(),
        });
    }
    let bound = tokenizer.id_bound().max(tokenizer.vocab_size());
    let open = |split: &SplitMeta| -> Result<Tokens, DataError> {
        let mut files = Vec::with_capacity(split.shards.len());
        for shard in &split.shards {
            if shard.file.is_absolute() || shard.file.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(DataError::BadDataset {
                    path: dir.to_path_buf(),
                    reason: format!("its meta.json names a shard outside it: {}", shard.file.display()),
                });
            }
            let file = TokenFile::open(&dir.join(&shard.file))?;
            if file.len() as u64 != shard.tokens {
                return Err(DataError::BadTokenFile {
                    path: file.path().to_path_buf(),
                    reason: format!(
                        "it holds {} tokens where meta.json records {}",
                        file.len(),
                        shard.tokens
                    ),
                });
            }
            if shard.blake3.is_none() {
                tracing::warn!(
                    "{} has no checksum in meta.json (prepared by an older ember); checking its ids only",
                    file.path().display()
                );
            }
            file.verify(shard.blake3.as_deref(), bound)?;
            files.push(file);
        }
        let tokens = Tokens::new(files);
        if tokens.len() as u64 != split.tokens {
            return Err(DataError::BadTokenFile {
                path: dir.join("meta.json"),
                reason: format!(
                    "its shards hold {} tokens where it records {}",
                    tokens.len(),
                    split.tokens
                ),
            });
        }
        Ok(tokens)
    };
    let train = open(&meta.train)?;
    let val = open(&meta.val)?;
    Ok(PreparedData {
        tokenizer,
        train,
        val,
        meta,
        dir: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_validation() {
        let cfg: DataConfig = toml::from_str("tokenizer = \"bpe\"\nvocab_size = 1024").unwrap();
        assert_eq!(cfg.val_fraction, 0.1);
        assert_eq!(cfg.path, Inputs::from("data/tinyshakespeare.txt"));
        let err = toml::from_str::<DataConfig>("tokenizer = \"words\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected \"char\", \"bpe\", or the path of a tokenizer.json"),
            "{err}"
        );
        let cfg: DataConfig =
            toml::from_str("tokenizer = \"gpt2/tokenizer.json\"\npath = [\"a\", \"b.jsonl\"]").unwrap();
        assert_eq!(cfg.tokenizer, TokenizerKind::File("gpt2/tokenizer.json".into()));
        assert_eq!(cfg.path.0, [PathBuf::from("a"), PathBuf::from("b.jsonl")]);
        let back: DataConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
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
