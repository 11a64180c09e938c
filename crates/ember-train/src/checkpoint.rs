//! Crash-safe checkpoints.
//!
//! # Format (version 1)
//!
//! ```text
//! <run>/checkpoints/step-00000500/
//!     model.safetensors       every parameter, f32, by name (Burn layout: Linear weights are
//!                             [d_input, d_output], the transpose of PyTorch's)
//!     optimizer.safetensors   AdamW moments "m.<name>" and "v.<name>", flattened
//!     state.json              step, tokens seen, elapsed time, validation losses, the batch
//!                             sampler's RNG state, the optimiser's step count, the seed, the
//!                             tokenizer's fingerprint and the whole resolved config
//!     manifest.json           {"format":"ember-checkpoint","format_version":1,"step":500,
//!                              "files":{"model.safetensors":{"bytes":…,"sha256":"…"},…}}
//! ```
//!
//! # Writing
//!
//! Files go to `checkpoints/.tmp-step-00000500/`; each is fsynced; the manifest, with every
//! file's size and SHA-256, is written last and fsynced; the directory is fsynced and renamed
//! to `step-00000500`, and `checkpoints/` is fsynced. A crash at any moment leaves either no
//! `step-…` directory or a complete one. Older checkpoints are pruned only after that.
//!
//! # Reading
//!
//! A checkpoint is used only after its manifest's version is checked and every file's size
//! and checksum verified. A damaged one is reported with the file at fault and the newest
//! good checkpoint to use instead.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use ember_data::SamplerState;
use ember_data::files::{limit, read_regular};
use ember_data::tokenizer::hex_sha256;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::TrainError;
use crate::optim::loss_scale::LossScale;
use crate::params::NamedData;

/// The format written by this version of ember.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "ember-checkpoint";
/// Weights file.
pub const MODEL_FILE: &str = "model.safetensors";
/// Optimiser state file.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Training state file.
pub const STATE_FILE: &str = "state.json";
/// Manifest file, written last.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Everything besides tensors that the next step depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Optimiser steps completed.
    pub step: u64,
    /// Training tokens consumed.
    pub tokens_seen: u64,
    /// Wall time of the run so far.
    pub elapsed_s: f64,
    /// Validation loss measured at this step, if it was an evaluation step.
    pub val_loss: Option<f64>,
    /// Lowest validation loss so far.
    pub best_val_loss: Option<f64>,
    /// Step of the lowest validation loss.
    pub best_step: Option<u64>,
    /// The training batch sampler.
    pub sampler: SamplerState,
    /// AdamW's update count (its bias-correction `t`).
    pub optimizer_steps: u64,
    /// Fingerprint of the run's tokenizer.
    pub tokenizer_fingerprint: String,
    /// The resolved config, vocabulary size included.
    pub config: RunConfig,
    /// The dynamic loss scale of f16 training.
    #[serde(default)]
    pub loss_scale: Option<LossScale>,
}

/// One file's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always "ember-checkpoint".
    pub format: String,
    /// Format version; see [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Step of the checkpoint.
    pub step: u64,
    /// Every other file of the checkpoint.
    pub files: BTreeMap<String, FileEntry>,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// Its directory.
    pub dir: PathBuf,
    /// Training state.
    pub state: TrainingState,
    /// Parameters by name.
    pub model: BTreeMap<String, NamedData>,
    /// Optimiser tensors by name (`m.<param>`, `v.<param>`).
    pub optimizer: BTreeMap<String, NamedData>,
}

/// Which checkpoint to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// The highest step.
    Latest,
    /// The lowest validation loss.
    Best,
    /// A given step.
    Step(u64),
}

impl std::str::FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "latest" => Ok(Selector::Latest),
            "best" => Ok(Selector::Best),
            _ => s
                .parse()
                .map(Selector::Step)
                .map_err(|_| format!("\"{s}\" is not latest, best or a step number")),
        }
    }
}

/// `<run>/checkpoints`.
pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

fn step_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Writes a checkpoint atomically and returns its directory. Nothing existing is modified
/// until the new checkpoint is complete on disk; on error the partial files are removed.
pub fn save(
    run_dir: &Path,
    state: &TrainingState,
    model: &BTreeMap<String, NamedData>,
    optimizer: &BTreeMap<String, NamedData>,
) -> Result<PathBuf, TrainError> {
    let root = checkpoints_dir(run_dir);
    fs::create_dir_all(&root).map_err(TrainError::io("creating", &root))?;
    let name = step_name(state.step);
    let tmp = root.join(format!(".tmp-{name}"));
    let last = root.join(&name);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(TrainError::io("removing a stale", &tmp))?;
    }
    let result = write_files(&tmp, state, model, optimizer).and_then(|()| {
        if last.exists() {
            // Same step saved before (an interrupted resume): keep the verified old one.
            fs::remove_dir_all(&tmp).map_err(TrainError::io("removing", &tmp))?;
            return Ok(());
        }
        fs::rename(&tmp, &last).map_err(TrainError::io("renaming into place", &last))?;
        sync_dir(&root)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| last)
}

fn write_files(
    dir: &Path,
    state: &TrainingState,
    model: &BTreeMap<String, NamedData>,
    optimizer: &BTreeMap<String, NamedData>,
) -> Result<(), TrainError> {
    fs::create_dir_all(dir).map_err(TrainError::io("creating", dir))?;
    let files = [
        (MODEL_FILE, safetensors_bytes(model)),
        (OPTIMIZER_FILE, safetensors_bytes(optimizer)),
        (STATE_FILE, serde_json::to_vec_pretty(state).expect("serialisable")),
    ];
    let mut entries = BTreeMap::new();
    for (name, bytes) in &files {
        write_synced(&dir.join(name), bytes)?;
        entries.insert(
            name.to_string(),
            FileEntry {
                bytes: bytes.len() as u64,
                sha256: hex_sha256(bytes),
            },
        );
    }
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        step: state.step,
        files: entries,
    };
    write_synced(
        &dir.join(MANIFEST_FILE),
        &serde_json::to_vec_pretty(&manifest).expect("serialisable"),
    )?;
    sync_dir(dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut f = File::create(path).map_err(TrainError::io("creating", path))?;
    f.write_all(bytes).map_err(TrainError::io("writing", path))?;
    f.sync_all().map_err(TrainError::io("syncing", path))
}

fn sync_dir(path: &Path) -> Result<(), TrainError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(TrainError::io("syncing directory", path))
}

/// The safetensors file of `tensors` (f32).
pub(crate) fn safetensors_bytes(tensors: &BTreeMap<String, NamedData>) -> Vec<u8> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, d)| {
            (
                name.clone(),
                d.shape.clone(),
                d.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = raw.iter().map(|(name, shape, bytes)| {
        (
            name.as_str(),
            TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes agree"),
        )
    });
    safetensors::serialize(views, None).expect("serialisable")
}

fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, NamedData>, TrainError> {
    let bad = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor {name} is {:?}; ember checkpoints hold F32",
                view.dtype()
            )));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        out.insert(
            name,
            NamedData {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(out)
}

/// Checks the manifest's format and version and every file's size and checksum.
pub fn verify(dir: &Path) -> Result<Manifest, TrainError> {
    let bad = |message: String| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message,
    };
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = read_regular(&manifest_path, limit::STATE).map_err(|e| {
        bad(format!(
            "{MANIFEST_FILE} cannot be read ({e}); the checkpoint is incomplete"
        ))
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| bad(format!("{MANIFEST_FILE} is damaged ({e})")))?;
    if manifest.format != FORMAT_NAME {
        return Err(bad(format!(
            "{MANIFEST_FILE} describes a \"{}\", not an ember checkpoint",
            manifest.format
        )));
    }
    if manifest.format_version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {} is not supported by this ember (it reads version {FORMAT_VERSION}); use the ember release that wrote it",
            manifest.format_version
        )));
    }
    for required in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
        if !manifest.files.contains_key(required) {
            return Err(bad(format!("{MANIFEST_FILE} does not list {required}")));
        }
    }
    if let Some(name) = manifest
        .files
        .keys()
        .find(|n| ![MODEL_FILE, OPTIMIZER_FILE, STATE_FILE].contains(&n.as_str()))
    {
        // A name such as "../../x" would read outside the checkpoint.
        return Err(bad(format!(
            "{MANIFEST_FILE} lists {name:?}, which is not a checkpoint file; the manifest was not written by ember"
        )));
    }
    for (name, entry) in &manifest.files {
        let path = dir.join(name);
        let size = fs::metadata(&path).map_err(|e| bad(format!("{name} cannot be read ({e})")))?;
        if !size.is_file() || size.len() != entry.bytes {
            return Err(bad(format!(
                "{name} is damaged: {} bytes where the manifest records {} (truncated?)",
                size.len(),
                entry.bytes
            )));
        }
        // Streamed: verifying allocates nothing in proportion to the file.
        let (sum, read) = sha256_of_file(&path).map_err(|e| bad(format!("{name} cannot be read ({e})")))?;
        if read != entry.bytes {
            return Err(bad(format!(
                "{name} is damaged: {read} bytes where the manifest records {} (truncated?)",
                entry.bytes
            )));
        }
        if sum != entry.sha256 {
            return Err(bad(format!(
                "{name} is damaged: its SHA-256 is {}… where the manifest records {}…",
                &sum[..12],
                entry.sha256.chars().take(12).collect::<String>()
            )));
        }
    }
    Ok(manifest)
}

/// Every `step-…` directory under the run's checkpoints, by step (verified or not).
pub fn list(run_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = fs::read_dir(checkpoints_dir(run_dir))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("step-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Picks a verified checkpoint. A damaged pick is an error naming the damage and the newest
/// good checkpoint before it.
pub fn select(run_dir: &Path, selector: Selector) -> Result<PathBuf, TrainError> {
    let all = list(run_dir);
    if all.is_empty() {
        return Err(TrainError::RunDir {
            path: run_dir.to_path_buf(),
            message: "holds no checkpoint; train first (ember train --config …), or check the path".into(),
        });
    }
    let dir = match selector {
        Selector::Latest => all.last().expect("non-empty").1.clone(),
        Selector::Step(step) => match all.iter().find(|(s, _)| *s == step) {
            Some((_, d)) => d.clone(),
            None => {
                let steps: Vec<String> = all.iter().map(|(s, _)| s.to_string()).collect();
                return Err(TrainError::RunDir {
                    path: run_dir.to_path_buf(),
                    message: format!("has no checkpoint at step {step}; available: {}", steps.join(", ")),
                });
            }
        },
        Selector::Best => {
            let mut best: Option<(f64, PathBuf)> = None;
            for (_, dir) in &all {
                if verify(dir).is_err() {
                    continue;
                }
                if let Ok(state) = read_state(dir)
                    && let Some(v) = state.val_loss
                    && best.as_ref().is_none_or(|(b, _)| v < *b)
                {
                    best = Some((v, dir.clone()));
                }
            }
            return best.map(|(_, d)| d).ok_or_else(|| TrainError::RunDir {
                path: run_dir.to_path_buf(),
                message: "has no checkpoint with a validation loss; use --checkpoint latest".into(),
            });
        }
    };
    if let Err(e) = verify(&dir) {
        let previous = all
            .iter()
            .rev()
            .filter(|(_, d)| *d != dir)
            .find(|(_, d)| verify(d).is_ok());
        let hint = match previous {
            Some((step, _)) => format!(
                "; the newest good checkpoint is step {step}: pass --checkpoint {step}, or delete {}",
                dir.display()
            ),
            None => "; no other good checkpoint exists".to_string(),
        };
        return Err(match e {
            TrainError::Checkpoint { path, message } => TrainError::Checkpoint {
                path,
                message: message + &hint,
            },
            other => other,
        });
    }
    Ok(dir)
}

/// The SHA-256 (hex) of a file and its length, read in blocks.
fn sha256_of_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let digest = hasher.finalize();
    Ok((digest.iter().map(|b| format!("{b:02x}")).collect(), total))
}

fn read_state(dir: &Path) -> Result<TrainingState, TrainError> {
    let path = dir.join(STATE_FILE);
    let bytes = read_regular(&path, limit::STATE).map_err(TrainError::io("reading", &path))?;
    serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message: format!("{STATE_FILE} is damaged ({e})"),
    })
}

/// Verifies and reads a checkpoint.
pub fn load(dir: &Path) -> Result<Checkpoint, TrainError> {
    verify(dir)?;
    let state = read_state(dir)?;
    let read = |name: &str| -> Result<BTreeMap<String, NamedData>, TrainError> {
        let path = dir.join(name);
        let bytes = read_regular(&path, limit::WEIGHTS).map_err(TrainError::io("reading", &path))?;
        read_safetensors(&path, &bytes)
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        state,
        model: read(MODEL_FILE)?,
        optimizer: read(OPTIMIZER_FILE)?,
    })
}

/// Deletes checkpoints beyond the newest `keep_last`, except the one with the lowest
/// validation loss. Damaged checkpoints are left alone for the user to inspect.
///
/// A checkpoint is first renamed to `.trash-step-…` (atomic), then deleted, so a crash
/// half-way through a deletion never leaves a damaged `step-…` directory behind; leftovers of
/// such a crash are deleted on the next call.
pub fn prune(run_dir: &Path, keep_last: usize) -> Result<(), TrainError> {
    let root = checkpoints_dir(run_dir);
    for entry in fs::read_dir(&root).into_iter().flatten().filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".trash-") || name.starts_with(".tmp-") {
            fs::remove_dir_all(entry.path()).map_err(TrainError::io("removing leftover", entry.path()))?;
        }
    }
    let all = list(run_dir);
    if all.len() <= keep_last {
        return Ok(());
    }
    let best = select(run_dir, Selector::Best).ok();
    for (step, dir) in &all[..all.len() - keep_last] {
        if Some(dir) == best.as_ref() || verify(dir).is_err() {
            continue;
        }
        let trash = root.join(format!(".trash-{}", step_name(*step)));
        fs::rename(dir, &trash).map_err(TrainError::io("renaming old checkpoint", dir))?;
        fs::remove_dir_all(&trash).map_err(TrainError::io("removing old checkpoint", &trash))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: u64, val_loss: Option<f64>) -> TrainingState {
        TrainingState {
            step,
            tokens_seen: step * 100,
            elapsed_s: 1.5,
            val_loss,
            best_val_loss: val_loss,
            best_step: val_loss.map(|_| step),
            sampler: ember_data::BatchSampler::new(1, 1, 0).state(),
            optimizer_steps: step,
            tokenizer_fingerprint: "abc".into(),
            config: RunConfig::default(),
            loss_scale: None,
        }
    }

    fn tensors(x: f32) -> BTreeMap<String, NamedData> {
        BTreeMap::from([(
            "w".to_string(),
            NamedData {
                shape: vec![2, 2],
                values: vec![x, 1.0, -2.5, 3.25],
            },
        )])
    }

    #[test]
    fn round_trips_every_part() {
        let run = tempfile::tempdir().unwrap();
        let dir = save(run.path(), &state(5, Some(1.5)), &tensors(0.5), &tensors(7.0)).unwrap();
        assert!(dir.ends_with("checkpoints/step-00000005"));
        let ck = load(&dir).unwrap();
        assert_eq!(ck.state, state(5, Some(1.5)));
        assert_eq!(ck.model, tensors(0.5));
        assert_eq!(ck.optimizer, tensors(7.0));
        assert!(!checkpoints_dir(run.path()).join(".tmp-step-00000005").exists());
    }

    #[test]
    fn flipped_bytes_and_truncation_are_detected_and_the_previous_good_one_named() {
        let run = tempfile::tempdir().unwrap();
        save(run.path(), &state(1, None), &tensors(1.0), &tensors(1.0)).unwrap();
        let dir = save(run.path(), &state(2, None), &tensors(2.0), &tensors(2.0)).unwrap();
        let model = dir.join(MODEL_FILE);
        let mut bytes = fs::read(&model).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&model, &bytes).unwrap();
        let msg = select(run.path(), Selector::Latest).unwrap_err().to_string();
        assert!(msg.contains("model.safetensors is damaged: its SHA-256"), "{msg}");
        assert!(
            msg.contains("the newest good checkpoint is step 1: pass --checkpoint 1"),
            "{msg}"
        );
        fs::write(&model, &bytes[..10]).unwrap();
        let msg = load(&dir).unwrap_err().to_string();
        assert!(msg.contains("10 bytes where the manifest records"), "{msg}");
        assert_eq!(
            select(run.path(), Selector::Step(1)).unwrap(),
            checkpoints_dir(run.path()).join("step-00000001")
        );
    }

    #[test]
    fn a_checkpoint_without_manifest_or_of_another_version_is_refused() {
        let run = tempfile::tempdir().unwrap();
        let dir = save(run.path(), &state(3, None), &tensors(1.0), &tensors(1.0)).unwrap();
        let manifest = dir.join(MANIFEST_FILE);
        let text = fs::read_to_string(&manifest)
            .unwrap()
            .replace("\"format_version\": 1", "\"format_version\": 99");
        fs::write(&manifest, text).unwrap();
        assert!(
            verify(&dir)
                .unwrap_err()
                .to_string()
                .contains("format version 99 is not supported")
        );
        fs::remove_file(&manifest).unwrap();
        assert!(verify(&dir).unwrap_err().to_string().contains("incomplete"));
    }

    #[test]
    fn pruning_keeps_the_newest_and_the_best() {
        let run = tempfile::tempdir().unwrap();
        for (step, val) in [
            (1, Some(3.0)),
            (2, Some(1.0)),
            (3, Some(2.0)),
            (4, None),
            (5, Some(2.5)),
        ] {
            save(run.path(), &state(step, val), &tensors(0.0), &tensors(0.0)).unwrap();
            prune(run.path(), 2).unwrap();
        }
        let steps: Vec<u64> = list(run.path()).into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![2, 4, 5]);
        assert_eq!(
            select(run.path(), Selector::Best).unwrap(),
            checkpoints_dir(run.path()).join("step-00000002")
        );
    }

    #[test]
    fn selectors_parse() {
        assert_eq!("latest".parse::<Selector>(), Ok(Selector::Latest));
        assert_eq!("best".parse::<Selector>(), Ok(Selector::Best));
        assert_eq!("1500".parse::<Selector>(), Ok(Selector::Step(1500)));
        assert!("soon".parse::<Selector>().is_err());
    }
}
