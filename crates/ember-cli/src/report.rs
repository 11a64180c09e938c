//! `ember report`: one page with the curves of one or more runs, while they train or after.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::Args;
use ember_model::{GenerateOptions, Generator, Sampler, config::Attention, stats};
use ember_train::inference::load_run;
use ember_train::metrics::read_records;
use ember_train::{RunConfig, Selector, checkpoint, run_dir};
use ember_viz::report::{Best, Point, ReportPage, RunView, Sample};

use crate::device;

/// Make a training report: loss, learning rate, gradient norm, throughput and perplexity
/// curves, the config, the best checkpoint and a sample, for one run or several overlaid.
///
/// It reads a run while it trains (its metrics.jsonl and checkpoints): run it again, or pass
/// --watch, and reload the page.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directory; repeat to overlay several runs (ablations).
    #[arg(long = "run", required = true)]
    runs: Vec<PathBuf>,
    /// Write the page here (default: report.html in the first run's directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also draw the loss, learning-rate, gradient-norm and throughput curves into this PNG.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Tokens of the sample from each run's latest checkpoint (0: no sample).
    #[arg(long, default_value_t = 300, allow_negative_numbers = true)]
    sample_tokens: usize,
    /// Text the samples continue.
    #[arg(long, default_value = "\n")]
    prompt: String,
    /// Write the page again every SECONDS until interrupted; the page reloads itself as often.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    watch: Option<u64>,
    /// Where to run the sample: cpu, flex, ndarray, wgpu, cuda[:N] or ws://HOST:PORT.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: ReportArgs) -> Result<()> {
    if args.watch == Some(0) {
        bail!("--watch 0: give the seconds between two updates, e.g. --watch 30");
    }
    if args.prompt.is_empty() && args.sample_tokens > 0 {
        bail!("--prompt is empty; give at least one character (the default is a newline), or --sample-tokens 0");
    }
    for run in &args.runs {
        if !run.is_dir() {
            bail!(
                "run directory {} does not exist; pass the directory `ember train` wrote (e.g. runs/shakespeare-char)",
                run.display()
            );
        }
    }
    let out = args.out.clone().unwrap_or_else(|| args.runs[0].join("report.html"));
    ember_viz::check_writable(&out)?;
    if let Some(png) = &args.png {
        ember_viz::check_writable(png)?;
    }
    let device = device::parse(&args.device)?;
    loop {
        let runs = args
            .runs
            .iter()
            .map(|r| run_view(r, &args, &device))
            .collect::<Result<Vec<_>>>()?;
        let page = ReportPage {
            runs,
            made: now_utc(),
            refresh: args.watch,
        };
        page.write_html(&out)?;
        if let Some(png) = &args.png {
            page.write_png(png)?;
        }
        eprintln!(
            "wrote {}{}",
            out.display(),
            args.png
                .as_ref()
                .map_or(String::new(), |p| format!(" and {}", p.display()))
        );
        // Ctrl-C ends the loop; the page on disk is always a whole one (atomic writes).
        let Some(every) = args.watch else { return Ok(()) };
        std::thread::sleep(Duration::from_secs(every));
    }
}

fn run_view(dir: &Path, args: &ReportArgs, device: &burn::tensor::Device) -> Result<RunView> {
    let config_path = run_dir::config_path(dir);
    let config_text =
        ember_data::files::read_regular_text(&config_path, ember_data::files::limit::CONFIG).map_err(|e| {
            anyhow::anyhow!(
                "reading {}: {e}; is {} a run directory?",
                config_path.display(),
                dir.display()
            )
        })?;
    let config = RunConfig::parse(&config_text, &[], &config_path.display().to_string())?;
    let metrics_path = run_dir::metrics_path(dir);
    let records = if metrics_path.exists() {
        read_records(&metrics_path)?
    } else {
        Vec::new()
    };
    let metrics: Vec<Point> = records
        .iter()
        .map(|r| Point {
            step: r.step,
            tokens_seen: r.tokens_seen,
            elapsed_s: r.elapsed_s,
            train_loss: r.train_loss,
            lr: r.lr,
            grad_norm: r.grad_norm,
            tokens_per_s: r.tokens_per_s,
            val_loss: r.val_loss,
            val_ppl: r.val_ppl,
        })
        .collect();
    let best = metrics
        .iter()
        .filter_map(|p| p.val_loss.map(|v| (p.step, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(step, val_loss)| Best { step, val_loss });
    let max_steps = config.train.max_steps;
    let last = metrics.last().map_or(0, |p| p.step);
    let status = if last >= max_steps {
        format!("finished: {last} steps")
    } else {
        let age = std::fs::metadata(&metrics_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map_or(String::new(), |d| {
                format!("; metrics.jsonl last written {} ago", human(d))
            });
        format!("step {last} of {max_steps}{age}")
    };
    let (sample, sample_note) = if args.sample_tokens == 0 {
        (None, Some("no sample (--sample-tokens 0)".to_string()))
    } else if checkpoint::list(dir).is_empty() {
        (None, Some("no checkpoint yet".to_string()))
    } else {
        match sample_of(dir, args, device) {
            Ok(s) => (Some(s), None),
            // A checkpoint may be pruned between listing and reading while the run trains.
            Err(e) => (None, Some(format!("no sample: {e:#}"))),
        }
    };
    let m = &config.model;
    let attention = match m.attention {
        Attention::SlidingWindow => format!(
            ", sliding window {}{}",
            m.window.unwrap_or(0),
            m.window_pattern.as_ref().map_or(String::new(), |p| format!(" ({p})"))
        ),
        Attention::Linear => ", linear attention".into(),
        Attention::Causal => String::new(),
    };
    Ok(RunView {
        name: dir.display().to_string(),
        model: format!(
            "{} layers, {} heads, d_model {}, context {}, {:.2}M parameters{attention}",
            m.n_layer,
            m.n_head,
            m.d_model,
            m.block_size,
            stats::param_count(m) as f64 / 1e6
        ),
        data: format!(
            "data {} ({} tokenizer, vocabulary {}); batch {} × {} × {} tokens per step, lr {}",
            config.data.path,
            config.data.tokenizer,
            m.vocab_size,
            config.train.batch_size,
            config.train.grad_accum,
            m.block_size,
            config.train.lr
        ),
        status,
        config: config_text,
        metrics,
        best,
        sample,
        sample_note,
    })
}

fn sample_of(dir: &Path, args: &ReportArgs, device: &burn::tensor::Device) -> Result<Sample> {
    let loaded = load_run(dir, Selector::Latest, device)?;
    let tok = &loaded.tokenizer;
    let mut prompt = tok.encode(&args.prompt, "the prompt")?;
    let block = loaded.model.block_size;
    if prompt.len() > block {
        prompt.drain(..prompt.len() - block);
    }
    let (temperature, seed) = (0.8, 1337);
    let mut sampler = Sampler::new(temperature, None, None, seed)?;
    let options = GenerateOptions {
        max_new_tokens: args.sample_tokens,
        use_cache: true,
    };
    let ids = Generator::new(&loaded.model, device.clone()).generate(&prompt, options, &mut sampler, |_| {})?;
    Ok(Sample {
        step: loaded.step,
        how: format!(
            "{} tokens after the prompt {:?}, temperature {temperature}, seed {seed}",
            args.sample_tokens, args.prompt
        ),
        text: format!("{}{}", args.prompt, tok.decode(&ids)),
    })
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn now_utc() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}
