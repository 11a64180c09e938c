//! What a run reports as it goes: each step, each evaluation, each checkpoint, and how it
//! ended. The command line draws its progress bar from an [`Observer`].

use std::path::{Path, PathBuf};

/// What one optimiser step measured.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Steps completed.
    pub step: u64,
    /// The run's last step.
    pub max_steps: u64,
    /// Mean loss of the step's micro-batches.
    pub train_loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Training tokens per second of this step.
    pub tokens_per_s: f64,
}

/// What an evaluation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalReport {
    /// Steps completed.
    pub step: u64,
    /// Loss on `eval_iters` training batches.
    pub train_loss: f64,
    /// Loss on `eval_iters` validation batches.
    pub val_loss: f64,
}

/// Receives progress as training goes (the command line draws a progress bar from it).
pub trait Observer {
    /// Training begins at `step` (non-zero when resuming).
    fn started(&mut self, _step: u64, _max_steps: u64) {}
    /// A step finished.
    fn step(&mut self, _report: &StepReport) {}
    /// An evaluation finished.
    fn evaluated(&mut self, _report: &EvalReport) {}
    /// A checkpoint was written.
    fn checkpointed(&mut self, _step: u64, _dir: &Path) {}
}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `max_steps` reached.
    Finished {
        /// Steps completed.
        step: u64,
        /// The last validation loss.
        val_loss: Option<f64>,
    },
    /// Stopped early on request, after saving a checkpoint.
    Interrupted {
        /// Steps completed.
        step: u64,
        /// The checkpoint written.
        checkpoint: PathBuf,
    },
}
