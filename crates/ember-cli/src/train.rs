//! `ember train`: start a run from a config file, or resume one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use ember_train::observer::{EvalReport, StepReport};
use ember_train::{Observer, Outcome, RunConfig, Selector, Trainer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::device;

/// Train a model.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Config file to start a new run from (e.g. configs/shakespeare-char.toml).
    #[arg(long, conflicts_with = "resume", required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Run directory to continue from its latest checkpoint.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// With --resume: the checkpoint to continue from (latest, best, or a step).
    #[arg(long, requires = "resume", default_value = "latest")]
    checkpoint: Selector,
    /// Run directory for a new run (default: runs/<config name>).
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Replace the run already in --out.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Override a config value, e.g. --set train.max_steps=50 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Where to train: cpu, flex, ndarray, wgpu, cuda[:N] or ws://HOST:PORT (default: the config's train.device).
    #[arg(long)]
    device: Option<String>,
    /// Train data-parallel on several devices, e.g. cuda:0,cuda:1 (needs --features cuda);
    /// each takes train.batch_size / N sequences of every batch.
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    devices: Vec<String>,
    /// On a CPU device, split every batch into this many groups of sequences, each trained on
    /// its own thread (default: one per thread, $RAYON_NUM_THREADS or the core count, for
    /// models large enough to gain from it; 1: off).
    #[arg(long, value_name = "K", conflicts_with = "devices", allow_negative_numbers = true)]
    cpu_shards: Option<usize>,
    /// Stop after this step with a checkpoint, as an interruption would; the learning-rate
    /// schedule still spans train.max_steps. For jobs with a time slot.
    #[arg(long, value_name = "STEP", allow_negative_numbers = true)]
    until_step: Option<u64>,
}

pub fn run(args: TrainArgs, quiet: bool) -> Result<()> {
    let stop = install_signal_handlers()?;
    let (mut trainer, run_dir, shards) = match (&args.config, &args.resume) {
        (Some(config_path), None) => {
            let config = RunConfig::load(config_path, &args.overrides)?;
            let device = first_device(&args, &config)?;
            let shards = cpu_shards(&args, &config)?;
            let run_dir = match &args.out {
                Some(dir) => dir.clone(),
                None => default_run_dir(config_path)?,
            };
            (
                Trainer::start(config, &run_dir, device, args.overwrite)?,
                run_dir,
                shards,
            )
        }
        (None, Some(run_dir)) => {
            let saved = RunConfig::parse(
                &ember_data::files::read_regular_text(&run_dir.join("config.toml"), ember_data::files::limit::CONFIG)
                    .unwrap_or_default(),
                &[],
                "config.toml",
            )
            .unwrap_or_default();
            let device = first_device(&args, &saved)?;
            let shards = cpu_shards(&args, &saved)?;
            (
                Trainer::resume(run_dir, args.checkpoint, &args.overrides, device)?,
                run_dir.clone(),
                shards,
            )
        }
        _ => bail!("give either --config FILE (a new run) or --resume DIR (continue a run)"),
    };

    if let Some(shards) = shards {
        trainer = trainer.with_shards(shards);
    }
    if !args.devices.is_empty() {
        let (devices, reduce) = device::parse_list(&args.devices)?;
        trainer = trainer.with_data_parallel(devices, reduce)?;
        eprintln!(
            "data-parallel over {} devices: {}",
            args.devices.len(),
            args.devices.join(", ")
        );
    }
    let c = trainer.config().clone();
    // Progress and summaries go to stderr unless -q; errors and the interruption notice always do.
    let say = |line: String| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    say(format!(
        "ember: {} layers, {} heads, d_model {}, context {}, vocab {} ({:.2}M parameters); batch {}×{}, {} steps → {}",
        c.model.n_layer,
        c.model.n_head,
        c.model.d_model,
        c.model.block_size,
        c.model.vocab_size,
        ember_model::stats::param_count(&c.model) as f64 / 1e6,
        c.train.batch_size,
        c.train.grad_accum,
        c.train.max_steps,
        run_dir.display()
    ));
    let mut bar = Bar::new(c.train.max_steps, quiet);
    match trainer.run(&mut bar, &stop, args.until_step)? {
        Outcome::Finished { step, val_loss } => {
            bar.finish();
            let val = val_loss
                .map(|v| format!(", val loss {v:.4} (perplexity {:.2})", v.exp()))
                .unwrap_or_default();
            say(format!(
                "finished {step} steps{val}; run directory {}",
                run_dir.display()
            ));
            say(format!(
                "next: ember eval --run {0}   |   ember sample --run {0}",
                run_dir.display()
            ));
        }
        Outcome::Interrupted { step, checkpoint } => {
            bar.finish();
            eprintln!(
                "interrupted after step {step}; checkpoint written to {}",
                checkpoint.display()
            );
            eprintln!("resume with: ember train --resume {}", run_dir.display());
        }
    }
    Ok(())
}

/// The device the run's model lives on: `--device`, the first of `--devices`, or the config's.
fn first_device(args: &TrainArgs, config: &RunConfig) -> Result<burn::tensor::Device> {
    match args.devices.first() {
        Some(_) => Ok(device::parse_list(&args.devices)?.0.remove(0)),
        None => device::parse(args.device.as_deref().unwrap_or(&config.train.device)),
    }
}

/// The batch shards of a run on one CPU device (none with `--devices`).
fn cpu_shards(args: &TrainArgs, config: &RunConfig) -> Result<Option<ember_train::shards::Shards>> {
    if !args.devices.is_empty() {
        return Ok(None);
    }
    device::cpu_shards(
        args.device.as_deref().unwrap_or(&config.train.device),
        args.cpu_shards,
        &config.model,
        config.train.batch_size,
    )
}

/// `runs/<config file name without extension>`.
fn default_run_dir(config: &Path) -> Result<PathBuf> {
    let stem = config.file_stem().context("the config path has no file name")?;
    Ok(Path::new("runs").join(stem))
}

/// First SIGINT/SIGTERM: set the flag (the trainer finishes its step, checkpoints, exits 0).
/// Second: exit at once.
fn install_signal_handlers() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .context("installing a signal handler")?;
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing a signal handler")?;
    }
    Ok(stop)
}

/// The progress bar: loss, tokens/s and ETA; evaluation lines printed above it.
struct Bar {
    bar: ProgressBar,
    smoothed: Option<f64>,
    /// `-q`: no bar and no progress lines.
    quiet: bool,
}

impl Bar {
    fn new(max_steps: u64, quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr_with_hz(4)
        };
        let bar = ProgressBar::with_draw_target(Some(max_steps), target);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]")
                .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(500));
        Self {
            bar,
            smoothed: None,
            quiet,
        }
    }

    fn println(&self, line: String) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Bar {
    fn started(&mut self, step: u64, max_steps: u64) {
        self.bar.set_position(step);
        self.bar.reset_eta();
        if step > 0 {
            self.println(format!("resuming at step {step} of {max_steps}"));
        }
    }

    fn step(&mut self, r: &StepReport) {
        let s = match self.smoothed {
            Some(s) => 0.9 * s + 0.1 * r.train_loss,
            None => r.train_loss,
        };
        self.smoothed = Some(s);
        self.bar.set_position(r.step);
        self.bar
            .set_message(format!("loss {s:.4} | lr {:.2e} | {:.0} tok/s", r.lr, r.tokens_per_s));
        if self.bar.is_hidden() && !self.quiet && (r.step % 100 == 0 || r.step == 1) {
            eprintln!(
                "step {}: train loss {:.4}, lr {:.2e}, {:.0} tok/s",
                r.step, r.train_loss, r.lr, r.tokens_per_s
            );
        }
    }

    fn evaluated(&mut self, r: &EvalReport) {
        self.println(format!(
            "step {}: train loss {:.4}, val loss {:.4}, val perplexity {:.2}",
            r.step,
            r.train_loss,
            r.val_loss,
            r.val_loss.exp()
        ));
    }

    fn checkpointed(&mut self, step: u64, dir: &Path) {
        tracing::info!(step, "checkpoint {}", dir.display());
    }
}
