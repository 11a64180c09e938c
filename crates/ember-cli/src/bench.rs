//! `ember bench`: training and generation throughput, model FLOPs utilisation, peak memory.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use ember_train::RunConfig;
use ember_train::attention_cost::{self, CostShape, CostVariant, MemoryProbe};
use ember_train::bench::{self, BenchBudget};
use ember_viz::cost::{CostFigure, CostSeries};

use crate::device;

/// Measure throughput on random tokens with a config's model and batch, or (--attention) what
/// attention costs against the context length.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Config file (its [model] and [train] batch settings are used; no data is read).
    #[arg(long, required_unless_present = "attention")]
    config: Option<PathBuf>,
    /// Override a config value, e.g. --set train.batch_size=8 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Vocabulary size of the random tokens.
    #[arg(long, default_value_t = 65, allow_negative_numbers = true)]
    vocab: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    warmup: usize,
    /// Timed steps, at least.
    #[arg(long, default_value_t = 20, allow_negative_numbers = true)]
    steps: usize,
    /// Keep timing until this many seconds have passed.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    min_seconds: f64,
    /// Stop timing after this many seconds (once two steps are done).
    #[arg(long, default_value_t = 30.0, allow_negative_numbers = true)]
    max_seconds: f64,
    /// The fp32 matrix-multiply peak for MFU, in GFLOP/s (default: measured on the device: with
    /// CPU shards, every shard's thread multiplying its own 1024×1024 matrices at once, as
    /// training uses the cores; otherwise one 2048×2048 product).
    #[arg(long, allow_negative_numbers = true)]
    peak_gflops: Option<f64>,
    /// Benchmark generation instead: tokens/s with and without the KV cache.
    #[arg(long)]
    generate: bool,
    /// With --generate: tokens to generate.
    #[arg(long, default_value_t = 256, allow_negative_numbers = true)]
    new_tokens: usize,
    /// With --generate: rounds, each generating once with the cache and once without; the
    /// medians are reported.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    rounds: usize,
    /// Benchmark attention instead: forward + backward time and peak memory of each variant's
    /// attention (full, sliding window, linear; composition and fused kernel) against the
    /// context length, with the fitted growth exponents. Needs no config.
    #[arg(long)]
    attention: bool,
    /// With --attention: the context lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,128,256,512,1024,2048,4096")]
    contexts: Vec<usize>,
    /// With --attention: which variants (full, full-kernel, window, window-kernel, linear;
    /// default: all that run on the device).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// With --attention: the sliding window's positions.
    #[arg(long, default_value_t = 128, allow_negative_numbers = true)]
    window: usize,
    /// With --attention: heads.
    #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
    heads: usize,
    /// With --attention: width of a head.
    #[arg(long, default_value_t = 32, allow_negative_numbers = true)]
    d_head: usize,
    /// With --attention: sequences per pass.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    batch: usize,
    /// With --attention: seconds of repeats per measurement (3 repeats at least; the median
    /// is reported).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    seconds_per_point: f64,
    /// With --attention: also draw the time and memory curves into this PNG.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// On a CPU device, split every batch into this many groups of sequences, each on its own
    /// thread (default: as `ember train` chooses; 1: off).
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    cpu_shards: Option<usize>,
    /// Where to run: cpu, flex, ndarray, wgpu, cuda[:N] or ws://HOST:PORT (an `ember serve`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.vocab == 0 || args.steps == 0 || args.new_tokens == 0 || args.rounds == 0 {
        bail!("--vocab, --steps, --new-tokens and --rounds must be at least 1");
    }
    let device = device::parse(&args.device)?;
    if args.attention {
        return attention_cost(&args, &device);
    }
    let config_path = args
        .config
        .as_ref()
        .expect("clap requires --config without --attention");
    let config = RunConfig::load(config_path, &args.overrides)?;
    let m = &config.model;
    let t = &config.train;
    if args.generate {
        let g = bench::bench_generation(m, args.vocab, args.new_tokens, args.rounds, t.seed, &device)?;
        let (cached, recompute) = (g.cached_median(), g.recompute_median());
        let speedup = cached / recompute;
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "what": "generate", "device": args.device, "n_layer": m.n_layer, "n_head": m.n_head,
                    "d_model": m.d_model, "block": m.block_size, "vocab": args.vocab, "new_tokens": g.new_tokens,
                    "rounds": args.rounds, "cached_tokens_per_s": cached, "recompute_tokens_per_s": recompute,
                    "cached_rounds": g.cached_tokens_per_s, "recompute_rounds": g.recompute_tokens_per_s,
                    "speedup": speedup, "identical": g.identical, "peak_rss_mb": peak_rss_mb(),
                })
            );
        } else {
            let list = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", ");
            println!(
                "generation of {} tokens after a 1-token prompt (greedy), {} rounds, medians",
                g.new_tokens, args.rounds
            );
            println!(
                "with KV cache     {cached:.1} tokens/s ({})",
                list(&g.cached_tokens_per_s)
            );
            println!(
                "recomputing       {recompute:.1} tokens/s ({})",
                list(&g.recompute_tokens_per_s)
            );
            println!("speed-up          {speedup:.1}×; identical tokens: {}", g.identical);
        }
        if !g.identical {
            bail!("cached and recomputed generation disagree");
        }
        return Ok(());
    }
    let budget = BenchBudget {
        warmup_steps: args.warmup,
        min_steps: args.steps,
        min_seconds: args.min_seconds,
        max_seconds: args.max_seconds,
    };
    let sized = ember_model::GptConfig {
        vocab_size: args.vocab,
        ..m.clone()
    };
    let shards = device::cpu_shards(&args.device, args.cpu_shards, &sized, t.batch_size)?;
    let b = bench::bench_training(m, t, args.vocab, budget, shards.as_ref(), &device)?;
    let peak = match args.peak_gflops {
        Some(p) => p,
        None => match &shards {
            Some(shards) => bench::sharded_matmul_peak_gflops(shards, &device, 1024, 5),
            None => bench::matmul_peak_gflops(&device, 2048, 5),
        },
    };
    let mfu = b.achieved_gflops / peak;
    let rss = peak_rss_mb();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "framework": "ember", "device": args.device, "cpu_shards": shards.as_ref().map_or(1, |s| s.len()), "n_layer": m.n_layer, "n_head": m.n_head,
                "d_model": m.d_model, "block": m.block_size, "batch": t.batch_size, "grad_accum": t.grad_accum,
                "vocab": args.vocab, "gelu": m.gelu, "warmup_steps": args.warmup, "timed_steps": b.steps,
                "timed_s": b.seconds, "step_ms": b.step_ms, "tokens_per_s": b.tokens_per_s,
                "flops_per_token": b.flops_per_token, "achieved_gflops": b.achieved_gflops,
                "peak_gflops": peak, "mfu": mfu, "peak_rss_mb": rss,
                "first_loss": b.first_loss, "last_loss": b.last_loss,
            })
        );
    } else {
        println!(
            "model {}L/{}H/{}d, context {}, batch {}×{}, vocab {}, on {}{}",
            m.n_layer,
            m.n_head,
            m.d_model,
            m.block_size,
            t.batch_size,
            t.grad_accum,
            args.vocab,
            args.device,
            shards
                .as_ref()
                .map_or(String::new(), |s| format!(" in {} shards", s.len()))
        );
        println!(
            "tokens/s     {:.1} ({} timed steps in {:.2} s, {:.1} ms/step)",
            b.tokens_per_s, b.steps, b.seconds, b.step_ms
        );
        println!("FLOPs/token  {} → {:.1} GFLOP/s", b.flops_per_token, b.achieved_gflops);
        println!("MFU          {:.1}% of {peak:.1} GFLOP/s", 100.0 * mfu);
        println!("peak RSS     {rss:.1} MiB");
        println!("loss         {:.4} → {:.4}", b.first_loss, b.last_loss);
    }
    Ok(())
}

/// `ember bench --attention`.
fn attention_cost(args: &BenchArgs, device: &burn::tensor::Device) -> Result<()> {
    if args.contexts.is_empty() || args.contexts.contains(&0) {
        bail!("--contexts: give positive context lengths, e.g. --contexts 64,256,1024");
    }
    if args.window == 0 || args.heads == 0 || args.d_head == 0 || args.batch == 0 {
        bail!("--window, --heads, --d-head and --batch must be at least 1");
    }
    if let Some(png) = &args.png {
        ember_viz::check_writable(png)?;
    }
    let shape = CostShape {
        batch: args.batch,
        heads: args.heads,
        d_head: args.d_head,
        window: args.window,
    };
    // Host memory is what the counting allocator sees: on a CPU device, the tensors.
    let cpu = matches!(args.device.as_str(), "cpu" | "flex" | "ndarray");
    let probe = Probe;
    let memory: Option<&dyn MemoryProbe> = cpu.then_some(&probe as &dyn MemoryProbe);
    let mut contexts = args.contexts.clone();
    contexts.sort_unstable();
    contexts.dedup();
    let known: Vec<&str> = CostVariant::ALL.iter().map(|v| v.key()).collect();
    if let Some(bad) = args.variants.iter().find(|v| !known.contains(&v.as_str())) {
        bail!("--variants: no variant \"{bad}\"; choose from {}", known.join(", "));
    }
    let variants: Vec<CostVariant> = CostVariant::ALL
        .into_iter()
        .filter(|v| v.runs_on(device) && (args.variants.is_empty() || args.variants.iter().any(|k| k == v.key())))
        .collect();
    let progress = indicatif::ProgressBar::new((variants.len() * contexts.len()) as u64);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json {
        progress.set_style(
            indicatif::ProgressStyle::with_template("measuring {bar:30} {pos}/{len} {msg}").expect("template"),
        );
    } else {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut series = Vec::new();
    for v in &variants {
        let mut points = Vec::new();
        for &c in &contexts {
            progress.set_message(format!("{} at {c}", v.name()));
            points.push(attention_cost::measure(
                *v,
                shape,
                c,
                args.seconds_per_point,
                memory,
                device,
            ));
            progress.inc(1);
        }
        // The growth at long contexts: over the three longest.
        let tail = &points[points.len().saturating_sub(3)..];
        let time_exp = attention_cost::exponent(&tail.iter().map(|p| (p.context as f64, p.ms)).collect::<Vec<_>>());
        let mem_exp = memory.map(|_| {
            attention_cost::exponent(
                &tail
                    .iter()
                    .map(|p| (p.context as f64, p.bytes.unwrap_or(0) as f64))
                    .collect::<Vec<_>>(),
            )
        });
        series.push((*v, points, time_exp, mem_exp));
    }
    progress.finish_and_clear();
    let what = format!(
        "attention only (queries, keys, values → outputs), forward + backward, batch {} × {} heads of {}, sliding window {}, on {}",
        args.batch, args.heads, args.d_head, args.window, args.device
    );
    if args.json {
        let rows: Vec<serde_json::Value> = series
            .iter()
            .map(|(v, points, t, m)| {
                serde_json::json!({ "variant": v, "name": v.name(), "points": points, "time_exponent": t, "memory_exponent": m })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "what": "attention", "shape": shape, "device": args.device, "exponents_over": "the three longest contexts", "variants": rows })
        );
    } else {
        println!("{what}");
        let head: String = contexts.iter().map(|c| format!("{c:>10}")).collect();
        println!("\ntime (ms)                          {head}   exponent");
        for (v, points, t, _) in &series {
            let row: String = points.iter().map(|p| format!("{:>10.2}", p.ms)).collect();
            println!("{:<35}{row}   {t:>8.2}", v.name());
        }
        if memory.is_some() {
            println!("\npeak memory (MiB)                  {head}   exponent");
            for (v, points, _, m) in &series {
                let row: String = points
                    .iter()
                    .map(|p| format!("{:>10.2}", p.bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0)))
                    .collect();
                println!("{:<35}{row}   {:>8.2}", v.name(), m.unwrap_or(f64::NAN));
            }
        }
        println!("\nexponents: the slope of log(cost) against log(context) over the three longest contexts");
    }
    if let Some(png) = &args.png {
        let figure = CostFigure {
            title: what,
            series: series
                .iter()
                .map(|(v, points, t, m)| CostSeries {
                    name: v.name().to_string(),
                    points: points.iter().map(|p| (p.context, p.ms, p.bytes)).collect(),
                    time_exponent: *t,
                    memory_exponent: *m,
                })
                .collect(),
        };
        figure.write_png(png)?;
        eprintln!("wrote {}", png.display());
    }
    Ok(())
}

/// The binary's counting allocator as ember-train's memory probe.
struct Probe;

impl MemoryProbe for Probe {
    fn start(&self) {
        crate::alloc::start();
    }
    fn peak(&self) -> u64 {
        crate::alloc::peak()
    }
}

/// The process's peak resident set size in MiB (Linux: VmHWM), or 0 where unknown.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
