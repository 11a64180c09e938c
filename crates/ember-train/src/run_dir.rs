//! The run directory: what a run writes, and the rules for reusing a directory.
//!
//! ```text
//! <run>/config.toml       the resolved config (vocabulary size filled in)
//! <run>/tokenizer.json    the tokenizer
//! <run>/tokens/           the run's dataset (meta.json, train/ and val/ shards), when it
//!                         prepared its corpus itself
//! <run>/dataset.json      the prepared dataset it reads instead, when data.path names one
//! <run>/metrics.jsonl     one JSON object per logged step
//! <run>/checkpoints/      step-XXXXXXXX/ directories (see `checkpoint`)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::TrainError;

/// `config.toml`.
pub fn config_path(run_dir: &Path) -> PathBuf {
    run_dir.join("config.toml")
}

/// `metrics.jsonl`.
pub fn metrics_path(run_dir: &Path) -> PathBuf {
    run_dir.join("metrics.jsonl")
}

/// Whether `dir` holds a run (a config or a checkpoint).
pub fn holds_run(dir: &Path) -> bool {
    config_path(dir).exists() || !checkpoint::list(dir).is_empty()
}

/// Makes `dir` ready for a new run. A directory that already holds a run is refused unless
/// `overwrite`, in which case the run's own files (and nothing else) are removed.
pub fn prepare_new(dir: &Path, overwrite: bool) -> Result<(), TrainError> {
    if let Ok(meta) = fs::metadata(dir)
        && !meta.is_dir()
    {
        return Err(TrainError::RunDir {
            path: dir.to_path_buf(),
            message: format!(
                "is {}, not a directory; choose another --out (a run directory to create)",
                ember_data::files::kind(&meta)
            ),
        });
    }
    if holds_run(dir) {
        if !overwrite {
            let n = checkpoint::list(dir).len();
            return Err(TrainError::RunDir {
                path: dir.to_path_buf(),
                message: format!(
                    "already holds a run ({n} checkpoint(s)); continue it with `ember train --resume {}`, choose another --out, or pass --overwrite to replace it",
                    dir.display()
                ),
            });
        }
        for name in ["config.toml", "tokenizer.json", "metrics.jsonl", "dataset.json"] {
            let p = dir.join(name);
            if p.exists() {
                fs::remove_file(&p).map_err(TrainError::io("removing", &p))?;
            }
        }
        // Checkpoints first: a removal cut short never leaves a checkpoint without its data.
        for name in ["checkpoints", "tokens", "tokens.partial"] {
            let p = dir.join(name);
            if p.exists() {
                fs::remove_dir_all(&p).map_err(TrainError::io("removing", &p))?;
            }
        }
    }
    fs::create_dir_all(dir).map_err(TrainError::io("creating", dir))
}

/// `dir` and those of its ancestors that do not exist yet, deepest first.
pub fn missing_ancestors(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// Removes what a failed start wrote into `dir`, then the directories in `created` (from
/// [`missing_ancestors`], taken before the start) that are now empty. Best effort: the error
/// being reported matters more than a failed clean-up.
pub fn discard_new(dir: &Path, created: &[PathBuf]) {
    for name in ["config.toml", "tokenizer.json", "metrics.jsonl", "dataset.json"] {
        let _ = fs::remove_file(dir.join(name));
    }
    for name in ["checkpoints", "tokens", "tokens.partial"] {
        let _ = fs::remove_dir_all(dir.join(name));
    }
    for d in created {
        let _ = fs::remove_dir(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_run_is_refused_unless_overwritten_and_other_files_survive() {
        let dir = tempfile::tempdir().unwrap();
        prepare_new(dir.path(), false).unwrap();
        fs::write(config_path(dir.path()), "").unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let msg = prepare_new(dir.path(), false).unwrap_err().to_string();
        assert!(
            msg.contains("already holds a run") && msg.contains("--resume") && msg.contains("--overwrite"),
            "{msg}"
        );
        assert!(config_path(dir.path()).exists());
        prepare_new(dir.path(), true).unwrap();
        assert!(!config_path(dir.path()).exists());
        assert_eq!(fs::read_to_string(dir.path().join("notes.txt")).unwrap(), "mine");
    }
}
