//! The training loop.
//!
//! ```text
//! for step in start..max_steps:
//!     for each of grad_accum micro-batches:
//!         loss = cross_entropy(model(x), y) / grad_accum;  grads += ∂loss/∂θ
//!     refuse the update if the loss or the gradient norm is not finite
//!     clip factor from grad_clip (global norm);  θ = AdamW(θ, factor·grads, lr(step))
//!     log; every eval_interval: estimate train/val loss; every checkpoint_interval: save
//! ```
//!
//! Everything a step depends on is either in a checkpoint (weights, AdamW moments and count,
//! the batch sampler's RNG state, step) or a pure function of the step (learning rate, dropout
//! seed, evaluation batches), which is what makes a resumed run continue exactly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use ember_data::{Batch, BatchSampler, PreparedData};
use ember_model::{Gpt, Precision};
use tracing::info;

use crate::checkpoint::{self, Selector, TrainingState};
use crate::config::RunConfig;
use crate::error::TrainError;
use crate::eval::estimate_loss;
use crate::finetune;
use crate::metrics::{MetricsRecord, MetricsWriter};
use crate::observer::{EvalReport, Observer, Outcome, StepReport};
use crate::optim::AdamW;
use crate::optim::loss_scale::LossScale;
use crate::parallel::{DataParallel, Reduce};
use crate::params;
use crate::run_dir;
use crate::seeds::{EVAL_TRAIN_SALT, EVAL_VAL_SALT, dropout_seeds};
use crate::shards::Shards;
use crate::state::{load_model, moments_from, moments_to};
use crate::step::{StepSettings, check_precision, optimizer_step};

/// Counters that checkpoints carry across resumes.
#[derive(Debug, Clone, PartialEq)]
struct Progress {
    step: u64,
    tokens_seen: u64,
    elapsed_s: f64,
    /// The step and validation loss of the latest evaluation.
    last_eval: Option<(u64, f64)>,
    best_val_loss: Option<f64>,
    best_step: Option<u64>,
    /// Dynamic loss scale (f16 only).
    loss_scale: Option<LossScale>,
}

/// What trains: one model and its optimiser on one device, or replicas on several.
enum Replicas {
    One(Gpt, AdamW),
    Parallel(DataParallel),
}

impl Replicas {
    /// The model (the first replica's: all replicas are identical).
    fn model(&self) -> &Gpt {
        match self {
            Replicas::One(model, _) => model,
            Replicas::Parallel(dp) => dp.model(),
        }
    }

    /// The optimiser (the first replica's).
    fn optimizer(&self) -> &AdamW {
        match self {
            Replicas::One(_, optim) => optim,
            Replicas::Parallel(dp) => dp.optimizer(),
        }
    }
}

/// A run in progress.
pub struct Trainer {
    config: RunConfig,
    run_dir: PathBuf,
    device: Device,
    data: PreparedData,
    replicas: Replicas,
    /// Each micro-batch split across CPU threads (see [`crate::shards`]).
    shards: Option<Shards>,
    sampler: BatchSampler,
    progress: Progress,
}

impl Trainer {
    /// Starts a new run in `run_dir`: prepares the data, writes the resolved config, and
    /// initialises the model on `device` (training uses `device.autodiff()`).
    /// If anything fails, the files this call created are removed again.
    pub fn start(config: RunConfig, run_dir: &Path, device: Device, overwrite: bool) -> Result<Self, TrainError> {
        config.validate()?;
        check_precision(config.train.precision, &device)?;
        let created = run_dir::missing_ancestors(run_dir);
        run_dir::prepare_new(run_dir, overwrite)?;
        Self::start_in(config, run_dir, device).inspect_err(|_| run_dir::discard_new(run_dir, &created))
    }

    fn start_in(mut config: RunConfig, run_dir: &Path, device: Device) -> Result<Self, TrainError> {
        // Fine-tuning: the architecture, tokenizer and weights come from the source.
        let source = config
            .train
            .init_from
            .as_deref()
            .map(finetune::load_source)
            .transpose()?;
        if let Some(source) = &source {
            config.model = finetune::model_config(&config.model, &source.config)?;
        }
        let data = ember_data::run::prepare_with(&config.data, run_dir, source.as_ref().map(|s| s.tokenizer.clone()))?;
        let vocab = match &source {
            // A model may have more embedding rows than its tokenizer has tokens (padding).
            Some(s) => s.config.vocab_size,
            None => data.tokenizer.vocab_size(),
        };
        if source.is_none() && config.model.vocab_size != 0 && config.model.vocab_size != vocab {
            return Err(TrainError::InvalidConfig {
                key: "model.vocab_size".into(),
                value: config.model.vocab_size.to_string(),
                problem: format!("the tokenizer has {vocab} tokens; remove the key to take the tokenizer's size"),
            });
        }
        config.model.vocab_size = vocab;
        let path = run_dir::config_path(run_dir);
        std::fs::write(&path, config.to_toml()).map_err(TrainError::io("writing", &path))?;
        let model = match &source {
            Some(s) => load_model(
                &config,
                &s.weights,
                config.train.init_from.as_deref().expect("a source"),
                &device.clone().autodiff(),
            )?,
            None => {
                let device = device.clone().autodiff();
                crate::memory::check_fits(&config.model, crate::memory::Use::of(&config, &device), &device)?;
                config.model.init(config.train.seed, &device)?
            }
        };
        let sampler = BatchSampler::new(config.train.batch_size, config.model.block_size, config.train.seed);
        let progress = Progress {
            step: 0,
            tokens_seen: 0,
            elapsed_s: 0.0,
            last_eval: None,
            best_val_loss: None,
            best_step: None,
            loss_scale: (config.train.precision == Precision::F16).then(LossScale::default),
        };
        let mut trainer = Self {
            replicas: Replicas::One(model, AdamW::new(config.train.adamw())),
            config,
            run_dir: run_dir.to_path_buf(),
            device,
            data,
            shards: None,
            sampler,
            progress,
        };
        trainer.check_splits()?;
        // A step-0 checkpoint makes the run resumable from its first moment.
        trainer.save_checkpoint()?;
        info!(
            params = trainer.model().num_params(),
            vocab,
            "new run in {}",
            run_dir.display()
        );
        Ok(trainer)
    }

    /// Continues the run in `run_dir` from a checkpoint. `overrides` may change `[train]`
    /// values (such as `train.max_steps`); `[model]` and `[data]` are fixed by the checkpoint.
    pub fn resume(
        run_dir: &Path,
        selector: Selector,
        overrides: &[String],
        device: Device,
    ) -> Result<Self, TrainError> {
        let ck = checkpoint::load(&checkpoint::select(run_dir, selector)?)?;
        let saved = ck.state.config.clone();
        let config = RunConfig::parse(
            &saved.to_toml(),
            overrides,
            &ck.dir.join(checkpoint::STATE_FILE).display().to_string(),
        )?;
        if config.model != saved.model || config.data != saved.data {
            return Err(TrainError::Config {
                origin: format!("--set {}", overrides.join(" --set ")),
                message: "[model] and [data] are fixed by the checkpoint and cannot change on resume; start a new run instead".into(),
            });
        }
        check_precision(config.train.precision, &device)?;
        let data = ember_data::run::open_prepared(run_dir)?;
        if data.tokenizer.fingerprint() != ck.state.tokenizer_fingerprint {
            return Err(TrainError::Checkpoint {
                path: ck.dir.clone(),
                message: format!(
                    "it was trained with another tokenizer than {}/tokenizer.json",
                    run_dir.display()
                ),
            });
        }
        let model = load_model(&config, &ck.model, &ck.dir, &device.clone().autodiff())?;
        let mut optim = AdamW::new(config.train.adamw());
        optim.restore(
            ck.state.optimizer_steps,
            moments_from(&ck.optimizer, &model, &ck.dir, &device)?,
        );
        let mut sampler = BatchSampler::new(config.train.batch_size, config.model.block_size, config.train.seed);
        sampler.restore(ck.state.sampler.clone());
        let s = &ck.state;
        let progress = Progress {
            step: s.step,
            tokens_seen: s.tokens_seen,
            elapsed_s: s.elapsed_s,
            last_eval: s.val_loss.map(|v| (s.step, v)),
            best_val_loss: s.best_val_loss,
            best_step: s.best_step,
            loss_scale: s.loss_scale,
        };
        if config != saved {
            let path = run_dir::config_path(run_dir);
            std::fs::write(&path, config.to_toml()).map_err(TrainError::io("writing", &path))?;
        }
        info!(step = s.step, "resuming from {}", ck.dir.display());
        let trainer = Self {
            config,
            run_dir: run_dir.to_path_buf(),
            device,
            data,
            replicas: Replicas::One(model, optim),
            shards: None,
            sampler,
            progress,
        };
        trainer.check_splits()?;
        Ok(trainer)
    }

    fn check_splits(&self) -> Result<(), TrainError> {
        self.sampler.check_fits(&self.data.train, "train")?;
        self.sampler.check_fits(&self.data.val, "val")?;
        Ok(())
    }

    /// The resolved config.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.progress.step
    }

    /// The model (in training mode).
    pub fn model(&self) -> &Gpt {
        self.replicas.model()
    }

    /// Splits every micro-batch across `shards` (a CPU device's cores; see
    /// [`crate::shards`]). Steps with dropout run unsharded.
    pub fn with_shards(mut self, shards: Shards) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Trains data-parallel from now on: one replica per device, each computing the gradients
    /// of `batch_size / devices` sequences of every batch (see [`crate::parallel`]). Supports
    /// f32 without gradient accumulation.
    pub fn with_data_parallel(mut self, devices: Vec<Device>, reduce: Reduce) -> Result<Self, TrainError> {
        let t = &self.config.train;
        let k = devices.len();
        let bad = |key: &str, value: String, problem: String| {
            Err(TrainError::InvalidConfig {
                key: format!("train.{key}"),
                value,
                problem,
            })
        };
        if t.grad_accum != 1 {
            return bad(
                "grad_accum",
                t.grad_accum.to_string(),
                "must be 1 when training on several devices".into(),
            );
        }
        if t.precision != Precision::F32 {
            return bad(
                "precision",
                format!("{:?}", t.precision).to_lowercase(),
                "must be f32 when training on several devices".into(),
            );
        }
        if t.batch_size % k != 0 {
            return bad(
                "batch_size",
                t.batch_size.to_string(),
                format!("must be divisible by the {k} devices"),
            );
        }
        if let Replicas::One(model, optim) = &self.replicas {
            self.replicas = Replicas::Parallel(DataParallel::new(model, optim, devices, reduce));
        }
        Ok(self)
    }

    /// The prepared data.
    pub fn data(&self) -> &PreparedData {
        &self.data
    }

    /// Trains until `max_steps`. Stops early, writing a checkpoint and returning
    /// [`Outcome::Interrupted`], once `stop` becomes true (the current step is finished first)
    /// or once step `until` is reached.
    pub fn run(
        &mut self,
        observer: &mut dyn Observer,
        stop: &AtomicBool,
        until: Option<u64>,
    ) -> Result<Outcome, TrainError> {
        let mut metrics = MetricsWriter::open(&run_dir::metrics_path(&self.run_dir), self.progress.step)?;
        let t = self.config.train.clone();
        let tokens_per_step = (t.batch_size * t.grad_accum * self.config.model.block_size) as u64;
        let started = Instant::now();
        let elapsed_before = self.progress.elapsed_s;
        let (mut log_tokens, mut log_seconds) = (0u64, 0.0f64);
        observer.started(self.progress.step, t.max_steps);

        while self.progress.step < t.max_steps {
            if stop.load(Ordering::SeqCst) || until.is_some_and(|u| self.progress.step >= u) {
                let dir = self.save_checkpoint()?;
                observer.checkpointed(self.progress.step, &dir);
                return Ok(Outcome::Interrupted {
                    step: self.progress.step,
                    checkpoint: dir,
                });
            }
            let step_start = Instant::now();
            let lr = t.schedule().at(self.progress.step);
            let (train_loss, grad_norm) = self.train_step(lr)?;
            let seconds = step_start.elapsed().as_secs_f64();
            self.progress.step += 1;
            self.progress.tokens_seen += tokens_per_step;
            self.progress.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
            log_tokens += tokens_per_step;
            log_seconds += seconds;
            let step = self.progress.step;
            let last = step == t.max_steps;
            observer.step(&StepReport {
                step,
                max_steps: t.max_steps,
                train_loss,
                lr,
                grad_norm,
                tokens_per_s: tokens_per_step as f64 / seconds,
            });

            let eval = if step % t.eval_interval == 0 || last {
                let report = self.evaluate();
                observer.evaluated(&report);
                Some(report)
            } else {
                None
            };
            if step % t.log_interval == 0 || eval.is_some() || last {
                metrics.write(&MetricsRecord {
                    step,
                    train_loss,
                    lr,
                    grad_norm,
                    tokens_per_s: log_tokens as f64 / log_seconds,
                    elapsed_s: self.progress.elapsed_s,
                    tokens_seen: self.progress.tokens_seen,
                    val_loss: eval.map(|e| e.val_loss),
                    val_ppl: eval.map(|e| e.val_loss.exp()),
                    eval_train_loss: eval.map(|e| e.train_loss),
                    loss_scale: self.progress.loss_scale.map(|s| s.scale),
                })?;
                (log_tokens, log_seconds) = (0, 0.0);
            }
            if step % t.checkpoint_interval == 0 || last {
                let dir = self.save_checkpoint()?;
                observer.checkpointed(step, &dir);
            }
        }
        Ok(Outcome::Finished {
            step: self.progress.step,
            val_loss: self.progress.last_eval.map(|(_, v)| v),
        })
    }

    /// One optimiser step at learning rate `lr`. Returns the mean loss and the gradient norm
    /// before clipping. The model is left untouched if either is not finite.
    fn train_step(&mut self, lr: f64) -> Result<(f64, f64), TrainError> {
        let t = &self.config.train;
        let step = self.progress.step;
        let batches: Vec<Batch> = (0..t.grad_accum)
            .map(|_| self.sampler.next_batch(&self.data.train))
            .collect();
        let dropout = self.config.model.dropout > 0.0;
        match &mut self.replicas {
            Replicas::Parallel(dp) => {
                let seeds = if dropout {
                    dropout_seeds(t.seed, step, dp.replicas())
                } else {
                    Vec::new()
                };
                dp.step(&batches[0], lr, t.grad_clip, step + 1, &seeds)
            }
            Replicas::One(model, optim) => {
                let seeds = if dropout {
                    dropout_seeds(t.seed, step, t.grad_accum)
                } else {
                    Vec::new()
                };
                let settings = StepSettings {
                    lr,
                    grad_clip: t.grad_clip,
                    precision: t.precision,
                    dropout_seeds: &seeds,
                    shards: self.shards.as_ref(),
                    step: step + 1,
                };
                let device = self.device.clone().autodiff();
                let loss_scale = self.progress.loss_scale.as_mut();
                let stats = optimizer_step(model, optim, &batches, settings, loss_scale, &device)?;
                Ok((stats.loss, stats.grad_norm))
            }
        }
    }

    /// Estimates the loss on `eval_iters` batches of each split (the same batches every time).
    fn evaluate(&mut self) -> EvalReport {
        let t = &self.config.train;
        let model = self.model().valid();
        let train_loss = estimate_loss(
            &model,
            &self.data.train,
            t.batch_size,
            t.eval_iters,
            t.seed ^ EVAL_TRAIN_SALT,
            &self.device,
        );
        let val_loss = estimate_loss(
            &model,
            &self.data.val,
            t.batch_size,
            t.eval_iters,
            t.seed ^ EVAL_VAL_SALT,
            &self.device,
        );
        let p = &mut self.progress;
        p.last_eval = Some((p.step, val_loss));
        if p.best_val_loss.is_none_or(|b| val_loss < b) {
            p.best_val_loss = Some(val_loss);
            p.best_step = Some(p.step);
        }
        info!(step = p.step, train_loss, val_loss, "evaluated");
        EvalReport {
            step: p.step,
            train_loss,
            val_loss,
        }
    }

    /// Writes a checkpoint of the current state and prunes old ones.
    pub fn save_checkpoint(&mut self) -> Result<PathBuf, TrainError> {
        let p = &self.progress;
        let state = TrainingState {
            step: p.step,
            tokens_seen: p.tokens_seen,
            elapsed_s: p.elapsed_s,
            val_loss: p.last_eval.filter(|(s, _)| *s == p.step).map(|(_, v)| v),
            best_val_loss: p.best_val_loss,
            best_step: p.best_step,
            loss_scale: p.loss_scale,
            sampler: self.sampler.state(),
            optimizer_steps: self.replicas.optimizer().steps(),
            tokenizer_fingerprint: self.data.tokenizer.fingerprint(),
            config: self.config.clone(),
        };
        let model = params::read_params(self.model());
        let moments = moments_to(self.replicas.optimizer());
        let dir = checkpoint::save(&self.run_dir, &state, &model, &moments)?;
        checkpoint::prune(&self.run_dir, self.config.train.keep_last)?;
        Ok(dir)
    }
}
