//! Loading a trained model for evaluation and generation.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ember_data::Tokenizer;
use ember_model::Gpt;

use crate::checkpoint::{self, Selector};
use crate::config::RunConfig;
use crate::error::TrainError;
use crate::state::load_model;

/// A checkpoint's model with its tokenizer, ready for inference.
pub struct LoadedRun {
    /// The model, in evaluation mode on the requested device.
    pub model: Gpt,
    /// The run's tokenizer.
    pub tokenizer: Tokenizer,
    /// The run's resolved config.
    pub config: RunConfig,
    /// The checkpoint directory loaded.
    pub checkpoint: PathBuf,
    /// Its step.
    pub step: u64,
    /// The validation loss measured when it was written, if it was an evaluation step.
    pub val_loss: Option<f64>,
}

/// Loads the selected checkpoint of `run_dir` onto `device` (no autodiff), checking that the
/// run's `tokenizer.json` is the one the checkpoint was trained with.
pub fn load_run(run_dir: &Path, selector: Selector, device: &Device) -> Result<LoadedRun, TrainError> {
    if !run_dir.is_dir() {
        return Err(TrainError::RunDir {
            path: run_dir.to_path_buf(),
            message: "does not exist; pass the directory `ember train` wrote (e.g. runs/shakespeare-char)".into(),
        });
    }
    let dir = checkpoint::select(run_dir, selector)?;
    load_checkpoint(run_dir, &dir, device)
}

/// Loads checkpoint directory `dir` of the run in `run_dir` onto `device`, as
/// [`load_run`] does for the checkpoint it selects.
pub fn load_checkpoint(run_dir: &Path, dir: &Path, device: &Device) -> Result<LoadedRun, TrainError> {
    let dir = dir.to_path_buf();
    let ck = checkpoint::load(&dir)?;
    let tokenizer = Tokenizer::load(&run_dir.join("tokenizer.json"))?;
    if tokenizer.fingerprint() != ck.state.tokenizer_fingerprint {
        return Err(TrainError::Checkpoint {
            path: dir,
            message: format!(
                "it was trained with another tokenizer than {}/tokenizer.json (vocabulary {} there)",
                run_dir.display(),
                tokenizer.vocab_size()
            ),
        });
    }
    let config = ck.state.config.clone();
    let model = load_model(&config, &ck.model, &dir, device)?;
    Ok(LoadedRun {
        model,
        tokenizer,
        config,
        checkpoint: dir,
        step: ck.state.step,
        val_loss: ck.state.val_loss,
    })
}
