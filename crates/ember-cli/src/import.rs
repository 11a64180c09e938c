//! `ember import`: a Hugging Face GPT-NeoX model as an ember run directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ember_data::{BatchSampler, DataConfig};
use ember_train::checkpoint::{self, TrainingState};
use ember_train::state::load_model;
use ember_train::{RunConfig, TrainConfig, hf, run_dir};

/// Import a Hugging Face GPT-NeoX model (Pythia and the like) as a run directory that `ember
/// eval --text`, `ember sample` and `ember attention` use, and that `train.init_from` can start
/// a fine-tuning run from.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The Hugging Face model directory: config.json, model.safetensors (or its shards and
    /// model.safetensors.index.json), tokenizer.json.
    #[arg(long)]
    from: PathBuf,
    /// The run directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace a run directory that already exists.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: ImportArgs) -> Result<()> {
    // Everything is read and checked before anything is written.
    let m = hf::read_dir(&args.from)?;
    let config = RunConfig {
        model: m.config,
        data: DataConfig {
            path: args.from.clone().into(),
            ..DataConfig::default()
        },
        train: TrainConfig::default(),
    };
    config.validate()?;
    let device = burn::tensor::Device::flex();
    load_model(&config, &m.weights, &args.from, &device)?; // the weights fit the model
    let created = run_dir::missing_ancestors(&args.out);
    run_dir::prepare_new(&args.out, args.overwrite)?;
    let write = || -> Result<PathBuf> {
        let path = run_dir::config_path(&args.out);
        std::fs::write(&path, config.to_toml())?;
        m.tokenizer.save(&args.out.join("tokenizer.json"))?;
        let state = TrainingState {
            step: 0,
            tokens_seen: 0,
            elapsed_s: 0.0,
            val_loss: None,
            best_val_loss: None,
            best_step: None,
            sampler: BatchSampler::new(1, config.model.block_size, 0).state(),
            optimizer_steps: 0,
            tokenizer_fingerprint: m.tokenizer.fingerprint(),
            config: config.clone(),
            loss_scale: None,
        };
        Ok(checkpoint::save(&args.out, &state, &m.weights, &BTreeMap::new())?)
    };
    let dir = write().inspect_err(|_| run_dir::discard_new(&args.out, &created))?;
    let c = &config.model;
    println!(
        "imported {} into {}: {} layers, {} heads, d_model {}, context {}, vocabulary {} ({} parameters); checkpoint {}",
        args.from.display(),
        args.out.display(),
        c.n_layer,
        c.n_head,
        c.d_model,
        c.block_size,
        c.vocab_size,
        ember_model::stats::param_count(c),
        dir.display()
    );
    Ok(())
}
