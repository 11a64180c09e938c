//! `ember prepare`: a corpus into a reusable token dataset (see `ember_data::prepare`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use ember_data::prepare::{self, Options, Watch};
use ember_train::RunConfig;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Turn a config's `data.path` into a token dataset directory that `ember train` reads.
#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// Config file (its `[data]` section).
    #[arg(long)]
    config: PathBuf,
    /// Override a config value, e.g. --set data.tokenizer=bpe (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// The dataset directory to write [default: beside the corpus, named <corpus>.tokens].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace a dataset already at --out (only once the new one is complete).
    #[arg(long)]
    overwrite: bool,
}

/// A progress bar in bytes of input, with MB/s and ETA.
struct Bar {
    bar: ProgressBar,
}

impl Watch for Bar {
    fn begin(&self, what: &str, total: u64) {
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message(what.to_string());
    }
    fn update(&self, done: u64) {
        self.bar.set_position(done);
    }
    fn end(&self) {
        let what = self.bar.message();
        let (bytes, secs) = (self.bar.position(), self.bar.elapsed().as_secs_f64());
        self.bar.println(format!(
            "{what}: {:.1} MB in {secs:.1} s ({:.1} MB/s)",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / secs.max(1e-9)
        ));
    }
}

pub fn run(args: PrepareArgs, quiet: bool) -> Result<()> {
    let config = RunConfig::load(&args.config, &args.overrides)?;
    let out = match args.out {
        Some(out) => out,
        None => prepare::default_out(&config.data)?,
    };
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr_with_hz(4)
    };
    let bar = ProgressBar::with_draw_target(Some(0), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>24} {bar:30} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} [{elapsed_precise}<{eta_precise}]",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    let watch = Bar { bar };
    let report = prepare::prepare(
        &config.data,
        &out,
        Options {
            tokenizer: None,
            overwrite: args.overwrite,
            watch: &watch,
        },
    )?;
    watch.bar.finish_and_clear();
    let m = &report.meta;
    let shards = m.train.shards.len() + m.val.shards.len();
    println!("dataset     {}", report.dir.display());
    println!(
        "sources     {} files, {:.1} MB of text, {} documents",
        m.sources.len(),
        m.text_bytes as f64 / 1e6,
        m.train.documents + m.val.documents
    );
    println!(
        "tokenizer   {} ids{}",
        m.vocab_size,
        match m.eos_id {
            Some(id) => format!(", end-of-text id {id} after every document"),
            None => String::new(),
        }
    );
    println!(
        "tokens      {} train + {} val in {shards} shards; val: {}",
        m.train.tokens, m.val.tokens, m.val_rule
    );
    println!(
        "time        {:.1} s ({:.1} s encoding: {:.1} MB/s of text)",
        report.total_s,
        report.encode_s,
        m.text_bytes as f64 / 1e6 / report.encode_s.max(1e-9)
    );
    println!("train on it with --set data.path={}", report.dir.display());
    Ok(())
}
