//! `ember export`: a checkpoint as a Hugging Face model directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use ember_train::Selector;
use ember_train::hf::{self, Card};
use ember_train::inference::load_run;
use ember_train::params::read_params;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A `GPTNeoXForCausalLM` directory that `transformers` loads without custom code.
    Hf,
}

/// Export a checkpoint as a Hugging Face model (config.json, model.safetensors, tokenizer.json,
/// tokenizer_config.json, generation_config.json, README.md).
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run directory.
    #[arg(long)]
    run: PathBuf,
    /// Which checkpoint: latest, best, or a step.
    #[arg(long, default_value = "latest")]
    checkpoint: Selector,
    /// The format.
    #[arg(long, value_enum, default_value = "hf")]
    format: Format,
    /// The directory to write (it must not exist).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let Format::Hf = args.format;
    let loaded = load_run(&args.run, args.checkpoint, &burn::tensor::Device::flex())?;
    let card = Card {
        run: args.run.display().to_string(),
        step: loaded.step,
        val_loss: loaded.val_loss,
        data: loaded.config.data.path.to_string(),
    };
    let weights = read_params(&loaded.model);
    hf::write_dir(&args.out, &loaded.config.model, &weights, &loaded.tokenizer, &card)?;
    println!(
        "wrote {} (step {} of {}): load it with transformers' AutoModelForCausalLM.from_pretrained and AutoTokenizer.from_pretrained",
        args.out.display(),
        loaded.step,
        args.run.display()
    );
    Ok(())
}
