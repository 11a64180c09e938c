//! `ember`: train, resume, evaluate and sample small GPT models.
//!
//! Each subcommand lives in its own module; this file parses the command line, sets up
//! logging, and turns errors into one `error: …` line and a non-zero exit code.

mod alloc;
mod attention;
mod bench;
mod device;
mod eval;
mod export;
mod import;
mod info;
mod prepare;
mod report;
mod sample;
mod serve;
mod synth;
mod train;

use std::process::ExitCode;

/// The system allocator, able to count peak memory for `ember bench --attention`.
#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

use clap::{Parser, Subcommand};

/// ember: a decoder-only transformer training framework.
#[derive(Parser, Debug)]
#[command(name = "ember", version, about, propagate_version = true)]
struct Cli {
    /// More log output (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Turn a corpus (text, JSONL, compressed, many files) into a token dataset to train on.
    Prepare(prepare::PrepareArgs),
    /// Train a model from a config file, or resume a run.
    Train(train::TrainArgs),
    /// Report loss, perplexity and bits per token/character of a checkpoint.
    Eval(eval::EvalArgs),
    /// Generate text from a checkpoint.
    Sample(sample::SampleArgs),
    /// Print parameter count, training FLOPs per token and a memory estimate.
    Info(info::InfoArgs),
    /// Measure training (or generation) throughput, MFU and peak memory.
    Bench(bench::BenchArgs),
    /// Show a trained model's attention on a prompt: an explorer page, a PNG, or JSON.
    Attention(attention::AttentionArgs),
    /// Make a training report of one or more runs: curves, config, best checkpoint, a sample.
    Report(report::ReportArgs),
    /// Export a checkpoint as a Hugging Face model directory (GPT-NeoX).
    Export(export::ExportArgs),
    /// Import a Hugging Face GPT-NeoX model as a run directory.
    Import(import::ImportArgs),
    /// Write a synthetic corpus of known entropy rate (copy, recall, Markov) and its floor.
    Synth(synth::SynthArgs),
    /// Lend this machine's device to a trainer elsewhere (multi-node; needs --features remote).
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    // Writing past a file-size limit (ulimit -f) then fails with an error that ember reports,
    // like a full disk, instead of killing the process mid-write.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    // Training reuses the same buffers every step and gains from keeping them; preparing data
    // streams through batches of every size and should give memory back.
    if !matches!(cli.command, Command::Prepare(_)) {
        keep_freed_memory();
    }
    init_logging(cli.verbose, cli.quiet);
    if let Err(message) = ember_kernels::check_environment() {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    // The command runs on a thread of the compute pool (the kernels' and Burn's): a parallel
    // operation then starts on the thread that asks for it, with the other threads joining,
    // instead of waking a pool thread while the asking one sleeps. Worth about 10% of a small
    // model's training step (README, Performance).
    let quiet = cli.quiet;
    let result = rayon::scope(move |_| match cli.command {
        Command::Prepare(args) => prepare::run(args, quiet),
        Command::Train(args) => train::run(args, quiet),
        Command::Eval(args) => eval::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Info(args) => info::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Attention(args) => attention::run(args),
        Command::Report(args) => report::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Export(args) => export::run(args),
        Command::Import(args) => import::run(args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: ember's errors already name their
/// source in their own message, which the chain would repeat.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

/// Training frees and re-allocates tensors of the same sizes at every step. By default glibc
/// serves large allocations with fresh `mmap`s and returns freed memory to the system, so every
/// step pays for page faults and zeroing; keeping freed memory in the heap instead is worth
/// about 10% of a training step (see README's Performance section). The same as
/// `GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=…`.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
