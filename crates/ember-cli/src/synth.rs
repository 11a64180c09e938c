//! `ember synth`: a synthetic corpus of known entropy rate, to train on and measure against.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use ember_data::synth::{self, Task};

/// The tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TaskName {
    /// Lines of random letters, `|`, the same letters again: attention over a known distance.
    Copy,
    /// Key–value pairs, `?`, a key and its value: associative recall (induction).
    Recall,
    /// A random Markov chain of a given order.
    Markov,
}

/// Write a synthetic corpus whose entropy floor (the lowest loss any model can reach) is known,
/// and record the floor beside it (FILE.floor.json): a run trained on the file reports its gap
/// to the floor in `ember eval`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// The task.
    #[arg(long, value_enum)]
    task: TaskName,
    /// The corpus file to write (e.g. data/copy.txt).
    #[arg(long)]
    out: PathBuf,
    /// Characters to write, about (whole lines).
    #[arg(long, default_value_t = 1_000_000, allow_negative_numbers = true)]
    chars: usize,
    /// Seed of the draws.
    #[arg(long, default_value_t = 1337, allow_negative_numbers = true)]
    seed: u64,
    /// copy: letters per half line (the copy distance is LENGTH + 1).
    #[arg(long, default_value_t = 24, allow_negative_numbers = true)]
    length: usize,
    /// copy, markov: letters to draw from.
    #[arg(long, allow_negative_numbers = true)]
    alphabet: Option<usize>,
    /// recall: key–value pairs per line.
    #[arg(long, default_value_t = 8, allow_negative_numbers = true)]
    pairs: usize,
    /// recall: letters the keys are drawn from.
    #[arg(long, default_value_t = 16, allow_negative_numbers = true)]
    keys: usize,
    /// recall: digits the values are drawn from.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    values: usize,
    /// markov: symbols of context the next one depends on.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    order: usize,
    /// markov: Dirichlet concentration of the transition probabilities (small: nearly
    /// deterministic; large: nearly uniform).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    alpha: f64,
}

pub fn run(args: SynthArgs) -> Result<()> {
    let task = match args.task {
        TaskName::Copy => Task::Copy {
            length: args.length,
            alphabet: args.alphabet.unwrap_or(8),
        },
        TaskName::Recall => Task::Recall {
            pairs: args.pairs,
            keys: args.keys,
            values: args.values,
        },
        TaskName::Markov => Task::Markov {
            order: args.order,
            alphabet: args.alphabet.unwrap_or(4),
            alpha: args.alpha,
        },
    };
    if let Err(problem) = task.validate() {
        bail!("{problem}");
    }
    if args.chars < 1000 {
        bail!(
            "--chars {}: write at least 1000 characters, so that both splits hold whole lines",
            args.chars
        );
    }
    let floor_path = synth::floor_path(&args.out);
    for path in [&args.out, &floor_path] {
        ember_viz::check_writable(path)?;
    }
    let (text, floor) = synth::generate(task, args.chars, args.seed);
    ember_viz::write_atomic(&args.out, text.as_bytes())?;
    let json = serde_json::to_string_pretty(&floor).expect("serialisable");
    ember_viz::write_atomic(&floor_path, json.as_bytes())?;
    println!(
        "wrote {} ({} characters) and {}",
        args.out.display(),
        text.len(),
        floor_path.display()
    );
    println!(
        "entropy floor {:.4} nats/char ({:.4} bits/char): {}",
        floor.nats_per_char, floor.bits_per_char, floor.definition
    );
    Ok(())
}
