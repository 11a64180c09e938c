//! `metrics.jsonl`: one JSON object per logged step, appended as training goes.
//!
//! ```json
//! {"step":250,"train_loss":1.8123,"lr":0.00098,"grad_norm":0.41,"tokens_per_s":6210.5,
//!  "elapsed_s":61.2,"tokens_seen":192000,"val_loss":1.954,"val_ppl":7.06,"eval_train_loss":1.79}
//! ```
//!
//! The `val_*` and `eval_train_loss` fields appear on evaluation steps only. When a run resumes
//! from a checkpoint, records after the checkpoint's step are dropped first, so the file shows
//! the curve an uninterrupted run would have drawn.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use ember_data::files::{limit, open_regular, read_regular_text};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Optimiser steps completed.
    pub step: u64,
    /// Mean training loss of this step's micro-batches (nats per token).
    pub train_loss: f64,
    /// Learning rate used by this step.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Training tokens per second since the previous record (evaluation time excluded).
    pub tokens_per_s: f64,
    /// Wall time of the run so far, across resumes.
    pub elapsed_s: f64,
    /// Training tokens consumed so far.
    pub tokens_seen: u64,
    /// Validation loss (evaluation steps only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    /// `exp(val_loss)`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_ppl: Option<f64>,
    /// Loss on `eval_iters` training batches with the model in evaluation mode.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_train_loss: Option<f64>,
    /// The f16 loss scale in use (f16 runs only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss_scale: Option<f64>,
}

/// Appends records to a run's `metrics.jsonl`.
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `path` for appending, after dropping every record with a step above
    /// `keep_through` (records a resumed run will write again).
    pub fn open(path: &Path, keep_through: u64) -> Result<Self, TrainError> {
        if path.exists() {
            // Kept lines are copied as they are: re-serialising would risk changing digits.
            let text = read_regular_text(path, limit::METRICS).map_err(TrainError::io("reading", path))?;
            let kept: Vec<&str> = text
                .lines()
                .filter(|line| serde_json::from_str::<MetricsRecord>(line).is_ok_and(|r| r.step <= keep_through))
                .collect();
            let tmp = path.with_extension("jsonl.tmp");
            let mut out = File::create(&tmp).map_err(TrainError::io("creating", &tmp))?;
            for line in kept {
                writeln!(out, "{line}").map_err(TrainError::io("writing", &tmp))?;
            }
            out.sync_all().map_err(TrainError::io("syncing", &tmp))?;
            fs::rename(&tmp, path).map_err(TrainError::io("renaming into place", path))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(TrainError::io("opening", path))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &MetricsRecord) -> Result<(), TrainError> {
        let line = serde_json::to_string(record).expect("serialisable");
        writeln!(self.file, "{line}").map_err(TrainError::io("writing", &self.path))
    }
}

/// Every record of a `metrics.jsonl` (a torn last line, from a crash mid-write, is skipped).
pub fn read_records(path: &Path) -> Result<Vec<MetricsRecord>, TrainError> {
    let file = open_regular(path).map_err(TrainError::io("opening", path))?;
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(TrainError::io("reading", path))?;
        if let Ok(r) = serde_json::from_str::<MetricsRecord>(&line) {
            out.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64) -> MetricsRecord {
        MetricsRecord {
            step,
            train_loss: 2.0,
            lr: 1e-3,
            grad_norm: 0.5,
            tokens_per_s: 100.0,
            elapsed_s: 1.0,
            tokens_seen: step * 10,
            val_loss: None,
            val_ppl: None,
            eval_train_loss: None,
            loss_scale: None,
        }
    }

    #[test]
    fn reopening_drops_records_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut w = MetricsWriter::open(&path, 0).unwrap();
        for s in 1..=5 {
            w.write(&record(s)).unwrap();
        }
        drop(w);
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"step\":6,\"trai")
            .unwrap();
        let mut w = MetricsWriter::open(&path, 3).unwrap();
        w.write(&record(4)).unwrap();
        let steps: Vec<u64> = read_records(&path).unwrap().iter().map(|r| r.step).collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
    }

    #[test]
    fn kept_lines_survive_reopening_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut w = MetricsWriter::open(&path, 0).unwrap();
        for s in 1..=3 {
            // f32 losses widened to f64 have long decimal forms: the case that once changed.
            w.write(&MetricsRecord {
                train_loss: 3.892_572_9_f32 as f64 + s as f64,
                ..record(s)
            })
            .unwrap();
        }
        drop(w);
        let before = fs::read_to_string(&path).unwrap();
        drop(MetricsWriter::open(&path, 2).unwrap());
        let after = fs::read_to_string(&path).unwrap();
        let first_two: Vec<&str> = before.lines().take(2).collect();
        assert_eq!(after.lines().collect::<Vec<_>>(), first_two);
    }

    #[test]
    fn validation_fields_appear_only_when_set() {
        let line = serde_json::to_string(&record(1)).unwrap();
        assert!(!line.contains("val_loss"));
        let mut r = record(2);
        r.val_loss = Some(1.5);
        r.val_ppl = Some(1.5f64.exp());
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.contains("\"val_loss\":1.5") && line.contains("\"train_loss\":2.0"),
            "{line}"
        );
    }
}
