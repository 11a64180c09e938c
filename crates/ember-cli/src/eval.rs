//! `ember eval`: loss, perplexity and bits per token/character of a checkpoint.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use ember_data::{corpus, synth};
use ember_train::Selector;
use ember_train::eval::evaluate_sequence;
use ember_train::inference::load_run;

use crate::device;

/// Evaluate a checkpoint on the run's validation split or on a text file.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directory.
    #[arg(long)]
    run: PathBuf,
    /// Which checkpoint: latest, best, or a step.
    #[arg(long, default_value = "latest")]
    checkpoint: Selector,
    /// A UTF-8 text file to evaluate instead of the validation split.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Windows evaluated together.
    #[arg(long, default_value_t = 16, allow_negative_numbers = true)]
    batch_size: usize,
    /// Positions each window moves on by (default: the context length, windows that do not
    /// overlap). Smaller: overlapping windows, each scoring its last STRIDE tokens, so that
    /// every token is predicted with at least (context − STRIDE) tokens before it.
    #[arg(long, allow_negative_numbers = true)]
    stride: Option<usize>,
    /// Where to run: cpu, flex, ndarray, wgpu, cuda[:N] or ws://HOST:PORT (an `ember serve`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: EvalArgs) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size 0: evaluate at least one window at a time");
    }
    if args.stride == Some(0) {
        bail!("--stride 0: windows must move on by at least one token");
    }
    let device = device::parse(&args.device)?;
    let loaded = load_run(&args.run, args.checkpoint, &device)?;
    let block = loaded.model.block_size;
    let stride = args.stride.unwrap_or(block).min(block);
    let (source, ids, chars, floor) = match &args.text {
        Some(path) => {
            let text = corpus::read_text_file(path)?;
            let ids = loaded
                .tokenizer
                .encode(&text, &format!("eval file {}", path.display()))?;
            let floor = synth::read_floor(path);
            (path.display().to_string(), ids, text.chars().count(), floor)
        }
        None => {
            if !args.run.join("tokens").is_dir() && !args.run.join("dataset.json").is_file() {
                bail!(
                    "run directory {} holds no validation split (an imported model has none); evaluate a text with --text FILE",
                    args.run.display()
                );
            }
            let data = ember_data::run::open_prepared(&args.run)?;
            let mut ids = Vec::with_capacity(data.val.len());
            data.val.extend_window(0, data.val.len(), &mut ids);
            (
                "validation split".to_string(),
                ids,
                data.meta.val_chars,
                data.meta.entropy_floor,
            )
        }
    };
    if ids.len() < 2 {
        bail!(
            "{source} holds {} token(s); at least 2 are needed to predict one",
            ids.len()
        );
    }
    let r = evaluate_sequence(&loaded.model, &ids, args.batch_size, stride, &device);
    // Characters spelled by the predicted tokens: all but the first token's.
    let first_chars = loaded.tokenizer.decode(&ids[..1]).chars().count();
    let chars = chars.saturating_sub(first_chars).max(1);
    // Nats per character above the synthetic corpus's entropy floor.
    let nats_per_char = r.nll_sum / chars as f64;
    let gap = floor.as_ref().map(|f| (f, nats_per_char - f.nats_per_char));
    if args.json {
        let out = serde_json::json!({
            "checkpoint": loaded.checkpoint,
            "step": loaded.step,
            "source": source,
            "tokens": r.tokens,
            "characters": chars,
            "loss": r.loss(),
            "perplexity": r.perplexity(),
            "bits_per_token": r.bits_per_token(),
            "bits_per_char": r.bits_per_char(chars),
            "stride": stride,
            "entropy_floor": floor.as_ref().map(|f| f.nats_per_char),
            "gap_to_floor": gap.map(|(_, g)| g),
            "gap_to_floor_percent": gap.map(|(f, g)| 100.0 * g / f.nats_per_char),
        });
        println!("{out}");
    } else {
        println!("checkpoint {} (step {})", loaded.checkpoint.display(), loaded.step);
        println!("{source}: {} tokens, {chars} characters", r.tokens);
        println!("loss        {:.4} nats/token", r.loss());
        println!("perplexity  {:.3}", r.perplexity());
        println!("bits/token  {:.4}", r.bits_per_token());
        println!("bits/char   {:.4}", r.bits_per_char(chars));
        if let Some((f, g)) = gap {
            println!(
                "floor       {:.4} nats/char, the entropy of this {} corpus ({})",
                f.nats_per_char,
                f.task.name(),
                f.definition
            );
            println!(
                "gap         {g:.4} nats/char above the floor ({:.1}%)",
                100.0 * g / f.nats_per_char
            );
            if stride == block {
                println!(
                    "            (each window starts a fresh context: tokens near its start cannot see what they depend on; --stride {} scores each token with at least {} before it)",
                    block / 2,
                    block - block / 2
                );
            }
        }
    }
    Ok(())
}
