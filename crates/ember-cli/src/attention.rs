//! `ember attention`: what a trained model attends to on a prompt, at every kept checkpoint.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use ember_train::inference::{LoadedRun, load_checkpoint, load_run};
use ember_train::inspect::{self, AttentionSnapshot, LayerKind};
use ember_train::{Selector, checkpoint};
use ember_viz::attention::{AttentionPage, CheckpointAttention, Layer};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::device;

/// Show a trained model's attention on a prompt.
///
/// Writes one self-contained HTML page (`--out`) holding the attention of every layer and
/// head at every kept checkpoint of the run, a PNG of every head at the chosen checkpoint
/// (`--png`), or JSON (`--json`). Without any of them, the page goes to RUN/attention.html.
#[derive(Args, Debug)]
pub struct AttentionArgs {
    /// Run directory.
    #[arg(long)]
    run: PathBuf,
    /// Which checkpoint the PNG and the JSON show, and the page opens at: latest, best, or a
    /// step.
    #[arg(long, default_value = "latest")]
    checkpoint: Selector,
    /// The text to look at (its first `block_size` tokens). Default: the opening of the run's
    /// validation text.
    #[arg(long)]
    prompt: Option<String>,
    /// Write the explorer page here (one HTML file; opens from disk in any browser).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draw every layer and head of the chosen checkpoint into this PNG.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Print one JSON object: tokens, ids, every weight `[layer][head][query][key]`, the head
    /// summaries, the likeliest next tokens and every next-token logit.
    #[arg(long)]
    json: bool,
    /// Where to run: cpu, flex, ndarray, wgpu, cuda[:N] or ws://HOST:PORT (an `ember serve`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Next-token candidates kept in the page beyond this vocabulary size (the likeliest ones).
const MAX_CANDIDATES: usize = 2048;

pub fn run(args: AttentionArgs) -> Result<()> {
    if !args.run.is_dir() {
        bail!(
            "run directory {} does not exist; pass the directory `ember train` wrote (e.g. runs/shakespeare-char)",
            args.run.display()
        );
    }
    let device = device::parse(&args.device)?;
    let out = match (&args.out, &args.png, args.json) {
        (None, None, false) => Some(args.run.join("attention.html")),
        _ => args.out.clone(),
    };
    // Fail before any work if an output cannot be written.
    for path in out.iter().chain(args.png.iter()) {
        ember_viz::check_writable(path)?;
    }
    let chosen = load_run(&args.run, args.checkpoint, &device)?;
    let (ids, note) = prompt_ids(&args, &chosen)?;
    let tok = &chosen.tokenizer;
    let tokens: Vec<String> = ids.iter().map(|&id| tok.decode(&[id])).collect();

    // The chosen checkpoint, and for the page every other kept one.
    let mut shots: Vec<(u64, Option<f64>, AttentionSnapshot)> = Vec::new();
    if out.is_some() {
        let kept = checkpoint::list(&args.run);
        let progress = progress_bar(kept.len() as u64);
        for (step, dir) in &kept {
            progress.set_message(format!("step {step}"));
            let snapshot = if *dir == chosen.checkpoint {
                Some((chosen.val_loss, inspect::snapshot(&chosen.model, &ids, &device)))
            } else {
                match load_checkpoint(&args.run, dir, &device) {
                    Ok(loaded) => Some((loaded.val_loss, inspect::snapshot(&loaded.model, &ids, &device))),
                    Err(e) => {
                        progress.suspend(|| eprintln!("note: leaving out {}: {e}", dir.display()));
                        None
                    }
                }
            };
            if let Some((val, s)) = snapshot {
                shots.push((*step, val, s));
            }
            progress.inc(1);
        }
        progress.finish_and_clear();
    } else {
        shots.push((
            chosen.step,
            chosen.val_loss,
            inspect::snapshot(&chosen.model, &ids, &device),
        ));
    }
    let selected = shots
        .iter()
        .position(|(step, _, _)| *step == chosen.step)
        .context("the chosen checkpoint is among those read")?;

    if args.json {
        println!(
            "{}",
            json_of(&args.run, &chosen, &tokens, &ids, &shots[selected].2, tok)
        );
    }
    let page = page_of(&args.run, note.clone(), tokens, ids, &shots, selected, tok);
    if let Some(path) = &args.png {
        page.write_png(selected, path)?;
        eprintln!("wrote {} (step {})", path.display(), chosen.step);
    }
    if let Some(path) = &out {
        page.write_html(path)?;
        eprintln!(
            "wrote {} ({} checkpoints, {} prompt tokens); open it in a browser",
            path.display(),
            page.checkpoints.len(),
            page.seq()
        );
    }
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    Ok(())
}

/// The prompt's token ids (at most the context's worth) and a note if it was cut.
fn prompt_ids(args: &AttentionArgs, run: &LoadedRun) -> Result<(Vec<u32>, Option<String>)> {
    let block = run.model.block_size;
    let (mut ids, what) = match &args.prompt {
        Some(text) => {
            if text.is_empty() {
                bail!(
                    "--prompt is empty; give the text whose attention to show (or leave --prompt out for the opening of the validation text)"
                );
            }
            (run.tokenizer.encode(text, "the prompt")?, "the prompt")
        }
        None => {
            let data = ember_data::run::open_prepared(&args.run)?;
            let mut ids = Vec::new();
            data.val.extend_window(0, block.min(data.val.len()), &mut ids);
            (ids, "the validation text's opening")
        }
    };
    if ids.is_empty() {
        bail!("{what} has no tokens");
    }
    let note = (ids.len() > block).then(|| {
        format!(
            "{what} has {} tokens; the first {block} (the model's context) are shown",
            ids.len()
        )
    });
    ids.truncate(block);
    Ok((ids, note))
}

fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("reading checkpoints {bar:30} {pos}/{len} {msg}").expect("valid template"),
    );
    bar
}

fn layer(kind: LayerKind) -> Layer {
    match kind {
        LayerKind::Causal => Layer::Causal,
        LayerKind::SlidingWindow { window } => Layer::SlidingWindow { window },
        LayerKind::Linear => Layer::Linear,
    }
}

fn page_of(
    run: &Path,
    note: Option<String>,
    tokens: Vec<String>,
    ids: Vec<u32>,
    shots: &[(u64, Option<f64>, AttentionSnapshot)],
    selected: usize,
    tok: &ember_data::Tokenizer,
) -> AttentionPage {
    let first = &shots[selected].2;
    let mut vocab_text = BTreeMap::new();
    let checkpoints = shots
        .iter()
        .map(|(step, val_loss, s)| {
            let next_ids = candidates(&s.logits);
            for &id in &next_ids {
                vocab_text.entry(id).or_insert_with(|| tok.decode(&[id]));
            }
            CheckpointAttention {
                step: *step,
                val_loss: *val_loss,
                next_logits: next_ids.iter().map(|&i| s.logits[i as usize]).collect(),
                next_ids,
                weights: s.weights.clone(),
                rollout: s.rollout.clone(),
                stats: s
                    .stats
                    .iter()
                    .map(|l| {
                        l.iter()
                            .map(|h| [h.entropy, h.distance, h.previous, h.first, h.itself])
                            .collect()
                    })
                    .collect(),
            }
        })
        .collect();
    AttentionPage {
        run: run.display().to_string(),
        note,
        tokens,
        ids,
        vocab_text,
        n_head: first.n_head,
        n_kv_head: first.n_kv_head,
        layers: first.layers.iter().map(|&k| layer(k)).collect(),
        checkpoints,
        selected,
    }
}

/// Every token id for a small vocabulary; the likeliest [`MAX_CANDIDATES`] for a large one.
fn candidates(logits: &[f32]) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    if ids.len() > MAX_CANDIDATES {
        ids.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        ids.truncate(MAX_CANDIDATES);
    }
    ids
}

fn json_of(
    run: &Path,
    loaded: &LoadedRun,
    tokens: &[String],
    ids: &[u32],
    s: &AttentionSnapshot,
    tok: &ember_data::Tokenizer,
) -> serde_json::Value {
    let seq = s.seq;
    let attention: Vec<Vec<Vec<&[f32]>>> = s
        .weights
        .iter()
        .map(|layer| layer.iter().map(|w| w.chunks(seq).collect()).collect())
        .collect();
    // The next-token distribution at temperature 1.
    let max = s.logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = s.logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    let z: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..exp.len()).collect();
    order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]));
    let next: Vec<serde_json::Value> = order
        .iter()
        .take(10)
        .map(|&i| json!({ "id": i, "text": tok.decode(&[i as u32]), "prob": exp[i] / z }))
        .collect();
    json!({
        "run": run,
        "checkpoint": loaded.checkpoint,
        "step": loaded.step,
        "tokens": tokens,
        "ids": ids,
        "n_layer": s.n_layer,
        "n_head": s.n_head,
        "n_kv_head": s.n_kv_head,
        "layers": s.layers,
        "attention": attention,
        "head_stats": s.stats,
        "next_tokens": next,
        "next_logits": s.logits,
    })
}
