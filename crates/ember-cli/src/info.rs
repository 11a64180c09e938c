//! `ember info`: model size and cost, from a config alone.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ember_data::{Tokenizer, TokenizerKind, dataset, prepare, sources};
use ember_model::stats;
use ember_train::RunConfig;

/// Print parameter count, training FLOPs per token and a memory estimate.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Config file.
    #[arg(long)]
    config: PathBuf,
    /// Override a config value, e.g. --set model.n_layer=6 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let mut config = RunConfig::load(&args.config, &args.overrides)?;
    let dataset = match config.data.dataset_dir() {
        Some(dir) => Some((dir.to_path_buf(), dataset::read_meta(dir)?)),
        None => None,
    };
    let vocab_note = if config.model.vocab_size != 0 {
        "from [model]"
    } else if let Some((_, meta)) = &dataset {
        config.model.vocab_size = meta.vocab_size;
        "the prepared dataset's tokenizer"
    } else {
        match &config.data.tokenizer {
            TokenizerKind::Bpe => {
                config.model.vocab_size = config.data.vocab_size;
                "data.vocab_size (BPE)"
            }
            TokenizerKind::File(path) => {
                config.model.vocab_size = Tokenizer::load(path)?.vocab_size();
                "data.tokenizer"
            }
            TokenizerKind::Char => {
                // The vocabulary is the corpus's characters: read it.
                let sources = sources::discover(&config.data.path.0)?;
                config.model.vocab_size = prepare::alphabet(&config.data, &sources, &prepare::Quiet)?.vocab_size();
                "characters of the corpus"
            }
        }
    };
    if let Some((dir, meta)) = &dataset {
        let shards: Vec<_> = meta.train.shards.iter().chain(&meta.val.shards).collect();
        let disk: u64 = shards
            .iter()
            .filter_map(|s| std::fs::metadata(dir.join(&s.file)).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "dataset     {}: {} train + {} val tokens in {} shards ({:.1} MB on disk); {} + {} documents from {} files, {:.1} MB of text",
            dir.display(),
            meta.train.tokens,
            meta.val.tokens,
            shards.len(),
            disk as f64 / 1e6,
            meta.train.documents,
            meta.val.documents,
            meta.sources.len(),
            meta.text_bytes as f64 / 1e6
        );
    }
    let m = &config.model;
    let t = &config.train;
    let params = stats::param_count(m);
    let flops = stats::training_flops_per_token(m);
    let tokens_per_step = t.batch_size * t.grad_accum * m.block_size;
    let mem = stats::training_memory(m, t.batch_size);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "model       {} layers, {} heads of {}, d_model {}, context {}",
        m.n_layer,
        m.n_head,
        m.d_head(),
        m.d_model,
        m.block_size
    );
    println!("vocabulary  {} ({vocab_note})", m.vocab_size);
    println!(
        "parameters  {params} ({:.3}M; {} outside the embedding)",
        params as f64 / 1e6,
        stats::non_embedding_param_count(m)
    );
    println!(
        "FLOPs/token {flops} for training ({:.2} MFLOP; 6·N + 12·L·d·T)",
        flops as f64 / 1e6
    );
    println!(
        "step        {tokens_per_step} tokens = {:.2} GFLOP",
        (flops * tokens_per_step as u64) as f64 / 1e9
    );
    println!(
        "run         {} steps = {:.2} PFLOP",
        t.max_steps,
        (flops as f64 * tokens_per_step as f64 * t.max_steps as f64) / 1e15
    );
    println!(
        "memory      ≈ {:.1} MiB (weights, gradients, AdamW moments {:.1} MiB + activations {:.1} MiB at batch {} + mask and RoPE tables {:.1} MiB)",
        mib(mem.total()),
        mib(mem.params_grads_optimizer),
        mib(mem.activations),
        t.batch_size,
        mib(mem.tables)
    );
    Ok(())
}
