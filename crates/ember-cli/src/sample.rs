//! `ember sample`: generate text from a checkpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use ember_model::{GenerateOptions, Generator, Sampler};
use ember_train::Selector;
use ember_train::inference::load_run;

use crate::device;

/// Generate text.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Run directory.
    #[arg(long)]
    run: PathBuf,
    /// Which checkpoint: latest, best, or a step.
    #[arg(long, default_value = "latest")]
    checkpoint: Selector,
    /// Text to continue (default: a newline).
    #[arg(long, default_value = "\n")]
    prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 500, allow_negative_numbers = true)]
    max_new_tokens: usize,
    /// Softmax temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    temperature: f64,
    /// Keep only the K most likely tokens.
    #[arg(long, allow_negative_numbers = true)]
    top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches P (nucleus sampling).
    #[arg(long, allow_negative_numbers = true)]
    top_p: Option<f64>,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 1337, allow_negative_numbers = true)]
    seed: u64,
    /// Recompute the whole context at every step instead of using the KV cache.
    #[arg(long)]
    no_cache: bool,
    /// Where to run: cpu, flex, ndarray, wgpu, cuda[:N] or ws://HOST:PORT (an `ember serve`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: SampleArgs) -> Result<()> {
    let mut sampler = Sampler::new(args.temperature, args.top_k, args.top_p, args.seed)?;
    if args.prompt.is_empty() {
        bail!("--prompt is empty; give at least one character (the default is a newline)");
    }
    let device = device::parse(&args.device)?;
    let loaded = load_run(&args.run, args.checkpoint, &device)?;
    let tok = &loaded.tokenizer;
    let mut prompt = tok.encode(&args.prompt, "the prompt")?;
    let block = loaded.model.block_size;
    if prompt.len() > block {
        eprintln!(
            "note: the prompt has {} tokens; only its last {block} fit the model's context and are used",
            prompt.len()
        );
        prompt.drain(..prompt.len() - block);
    }
    let mut out = std::io::stdout().lock();
    write!(out, "{}", args.prompt)?;
    // Decode the whole continuation each time and print what is new, so that multi-byte
    // characters split across BPE tokens come out whole.
    let mut generated: Vec<u32> = Vec::new();
    let mut printed = 0;
    let generator = Generator::new(&loaded.model, device);
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        use_cache: !args.no_cache,
    };
    generator.generate(&prompt, options, &mut sampler, |id| {
        generated.push(id);
        let text = tok.decode(&generated);
        if text.len() > printed && !text.ends_with('\u{FFFD}') {
            let _ = write!(out, "{}", &text[printed..]);
            let _ = out.flush();
            printed = text.len();
        }
    })?;
    let text = tok.decode(&generated);
    if text.len() > printed {
        write!(out, "{}", &text[printed..])?;
    }
    writeln!(out)?;
    Ok(())
}
