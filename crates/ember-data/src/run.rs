//! A run's data: its own dataset, or a link to a prepared one.
//!
//! A run keeps its own `tokenizer.json`, and either prepares its text path into
//! `<run>/tokens/` (a dataset of the layout [`crate::dataset`] describes), or, when
//! `data.path` is a prepared dataset, records it in `<run>/dataset.json` (its path and the
//! checksum of its `meta.json`) and reads its shards where they are. Resuming or evaluating a
//! run checks that the dataset is still the one it began with.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{DataConfig, PreparedData, TokenizerKind, is_dataset, open_dataset};
use crate::error::DataError;
use crate::files::{limit, read_regular_text};
use crate::tokenizer::Tokenizer;

/// Paths of the data files inside a run directory.
pub struct RunDataPaths {
    /// `tokenizer.json`: the run's tokenizer.
    pub tokenizer: PathBuf,
    /// `tokens/`: the run's own dataset, when it prepared its text itself.
    pub dir: PathBuf,
    /// `dataset.json`: the prepared dataset the run reads, when `data.path` named one.
    pub dataset: PathBuf,
}

impl RunDataPaths {
    /// The paths under `run_dir`.
    pub fn new(run_dir: &Path) -> Self {
        Self {
            tokenizer: run_dir.join("tokenizer.json"),
            dir: run_dir.join("tokens"),
            dataset: run_dir.join("dataset.json"),
        }
    }
}

/// `<run>/dataset.json`: which prepared dataset a run reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DatasetLink {
    /// The dataset directory (absolute).
    path: PathBuf,
    /// BLAKE3 of its `meta.json` when the run started.
    meta_blake3: String,
}

fn meta_checksum(dir: &Path) -> Result<String, DataError> {
    let path = dir.join("meta.json");
    let bytes = crate::files::read_regular(&path, limit::STATE).map_err(DataError::io("reading", &path))?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// A new run's data: prepares the corpus into `run_dir/tokens/` (or links the prepared dataset
/// `data.path` names), and writes the run's `tokenizer.json`. `tokenizer` is a model's own
/// (when fine-tuning), used instead of one trained on the corpus; a prepared dataset must
/// have been made with it.
pub fn prepare_with(
    config: &DataConfig,
    run_dir: &Path,
    tokenizer: Option<Tokenizer>,
) -> Result<PreparedData, DataError> {
    config.validate()?;
    let paths = RunDataPaths::new(run_dir);
    if let Some(dir) = config.dataset_dir() {
        let data = open_dataset(dir, &dir.join("tokenizer.json"))?;
        let wanted = match (&tokenizer, &config.tokenizer) {
            (Some(t), _) => Some((t.fingerprint(), "the model being fine-tuned".to_string())),
            (None, TokenizerKind::File(p)) => Some((
                Tokenizer::load(p)?.fingerprint(),
                format!("data.tokenizer ({})", p.display()),
            )),
            (None, _) => None,
        };
        if let Some((fingerprint, whose)) = wanted
            && fingerprint != data.tokenizer.fingerprint()
        {
            return Err(DataError::BadDataset {
                path: dir.to_path_buf(),
                reason: format!(
                    "it was prepared with another tokenizer than {whose}; prepare the corpus again with that tokenizer (data.tokenizer = \"path/to/tokenizer.json\")"
                ),
            });
        }
        let absolute = fs::canonicalize(dir).map_err(DataError::io("resolving", dir))?;
        let link = DatasetLink {
            path: absolute,
            meta_blake3: meta_checksum(dir)?,
        };
        crate::files::write_atomic(
            &paths.dataset,
            serde_json::to_string_pretty(&link).expect("serialisable").as_bytes(),
        )?;
        data.tokenizer.save(&paths.tokenizer)?;
        return Ok(data);
    }
    crate::prepare::prepare(
        config,
        &paths.dir,
        crate::prepare::Options {
            tokenizer,
            overwrite: false,
            watch: &crate::prepare::Quiet,
        },
    )?;
    fs::copy(paths.dir.join("tokenizer.json"), &paths.tokenizer).map_err(DataError::io("writing", &paths.tokenizer))?;
    open_prepared(run_dir)
}

/// [`prepare_with`] without a model's tokenizer.
pub fn prepare(config: &DataConfig, run_dir: &Path) -> Result<PreparedData, DataError> {
    prepare_with(config, run_dir, None)
}

/// Opens the data of the run in `run_dir` (its own `tokens/`, or the dataset it links),
/// verifying every token file against its checksum and its ids against the vocabulary.
pub fn open_prepared(run_dir: &Path) -> Result<PreparedData, DataError> {
    let paths = RunDataPaths::new(run_dir);
    if !paths.dataset.exists() {
        return open_dataset(&paths.dir, &paths.tokenizer);
    }
    let text = read_regular_text(&paths.dataset, limit::CONFIG).map_err(DataError::io("reading", &paths.dataset))?;
    let link: DatasetLink = serde_json::from_str(&text).map_err(|e| DataError::BadDataset {
        path: paths.dataset.clone(),
        reason: e.to_string(),
    })?;
    let changed = |reason: String| DataError::BadDataset {
        path: link.path.clone(),
        reason,
    };
    if !is_dataset(&link.path) {
        return Err(changed(format!(
            "this run reads it ({}), but it is no longer a prepared dataset; restore it, or start a new run",
            paths.dataset.display()
        )));
    }
    if meta_checksum(&link.path)? != link.meta_blake3 {
        return Err(changed(format!(
            "it was prepared again since this run started ({} records another meta.json); restore the dataset the run began with, or start a new run",
            paths.dataset.display()
        )));
    }
    open_dataset(&link.path, &paths.tokenizer)
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
            path: corpus.into(),
            ..DataConfig::default()
        };
        let run = dir.path().join("run");
        fs::create_dir(&run).unwrap();
        let data = prepare(&cfg, &run).unwrap();
        assert_eq!((data.train.len(), data.val.len()), (90, 10));
        assert_eq!(data.tokenizer.vocab_size(), 10);
        assert_eq!(data.meta.val_chars, 10);
        assert_eq!(data.meta.eos_id, None, "one document: no end-of-text token");
        let mut val = Vec::new();
        data.val.extend_window(0, 10, &mut val);
        assert_eq!(data.tokenizer.decode(&val), "abcdefghij");
        let again = open_prepared(&run).unwrap();
        assert_eq!(again.meta, data.meta);
    }

    #[test]
    fn a_run_prepared_before_datasets_existed_still_opens() {
        // tokens/train.bin, tokens/val.bin and the flat meta.json earlier versions wrote.
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let tokenizer = Tokenizer::Char(crate::tokenizer::CharTokenizer::from_text("abcdef"));
        tokenizer.save(&run.join("tokenizer.json")).unwrap();
        fs::create_dir(run.join("tokens")).unwrap();
        let train = crate::TokenFile::write(&run.join("tokens/train.bin"), &[0, 1, 2, 3, 4, 5, 0, 1], 6).unwrap();
        let val = crate::TokenFile::write(&run.join("tokens/val.bin"), &[2, 3], 6).unwrap();
        let meta = serde_json::json!({
            "corpus": "c.txt", "corpus_sha256": "00", "tokenizer_fingerprint": tokenizer.fingerprint(),
            "vocab_size": 6, "train_tokens": 8, "val_tokens": 2, "val_chars": 2,
            "train_blake3": train, "val_blake3": val,
        });
        fs::write(run.join("tokens/meta.json"), meta.to_string()).unwrap();
        let data = open_prepared(run).unwrap();
        assert_eq!((data.train.len(), data.val.len(), data.meta.val_chars), (8, 2, 2));
        let mut ids = Vec::new();
        data.train.extend_window(4, 4, &mut ids);
        assert_eq!(ids, [4, 5, 0, 1]);
    }
}
