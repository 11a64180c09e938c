//! Fuzzing the loaders: seeded mutations of valid files of every kind ember reads, fed to the
//! real loaders. Any outcome but a panic is fine (an error is the expected answer to a damaged
//! file); a panic is a finding: its input is saved and the test fails.
//!
//! - `EMBER_FUZZ_SECONDS` (default 30): the time shared by all targets.
//! - `EMBER_FUZZ_SEED` (default 1): the mutation stream; `scripts/fuzz.sh` picks a new one.
//! - Inputs under `tests/data/fuzz/<target>/` are replayed first (past findings, kept fixed).
//!
//! Each target writes the input it is running to `<work>/<target>/current.bin` first, so an
//! abort (a stack overflow, an allocation failure) still leaves the input behind.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_data::Tokenizer;
use ember_data::dataset::DataConfig;
use ember_data::tokenizer::{BpeTokenizer, CharTokenizer, hex_sha256};
use ember_train::checkpoint::{self, Manifest};
use ember_train::config::RunConfig;
use ember_train::{Observer, Selector, TrainConfig, Trainer, hf, inference, state};

/// xorshift64*: small, seeded, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'}', b'[', b',', b'9', b'-', b'.', b'e', b'\\', b'\n',
];
const WORDS: &[u64] = &[
    0,
    1,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];
#[rustfmt::skip]
const NUMBERS: &[&str] = &[
    "0", "1", "-1", "2", "3", "255", "256", "65535", "65536", "4294967295", "4294967296",
    "9223372036854775807", "18446744073709551615", "18446744073709551616",
    "99999999999999999999999", "1e308", "-0", "0.5", "1e-320", "NaN", "inf", "-inf",
];
#[rustfmt::skip]
const STRINGS: &[&str] = &[
    "", "x", "é", "☃☃", "\\u0000", "../../x", "/etc/passwd", "model.safetensors", "manifest.json",
    "F64", "I64", "BPE", "WordPiece", "char", "bpe", "flex", "cuda", "rope", "alibi", "none",
    "ééééééééééééé", "0123456789a☃b☃c",
];
/// Characters of one to four bytes in UTF-8 (NUL and a byte-order mark among them): text stays
/// valid where a byte flip would make it invalid, and code that slices strings by bytes meets
/// a character boundary.
const CHARS: &[char] = &['é', '☃', '😀', '\u{0}', '\u{FEFF}'];

/// One to eight stacked mutations of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let n = b.len();
        match rng.below(11) {
            0 if n > 0 => {
                let i = rng.below(n);
                b[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                b[i] = *rng.pick(BYTES);
            }
            2 if n >= 8 => {
                let i = rng.below(n - 7);
                let w = rng.pick(WORDS).to_le_bytes();
                let width = if rng.below(2) == 0 { 4 } else { 8 };
                b[i..i + width].copy_from_slice(&w[..width]);
            }
            3 => b.truncate(rng.below(n + 1)),
            4 if n > 0 => {
                let (i, len) = range(rng, n);
                b.drain(i..i + len);
            }
            5 if n > 0 => {
                let (i, len) = range(rng, n);
                let copy = b[i..i + len].to_vec();
                let at = rng.below(n + 1);
                b.splice(at..at, copy);
            }
            6 => {
                let at = rng.below(n + 1);
                let extra: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                b.splice(at..at, extra);
            }
            7 => replace_run(rng, &mut b, |c| c.is_ascii_digit(), NUMBERS),
            8 => replace_quoted(rng, &mut b),
            9 => {
                let at = rng.below(n + 1);
                let mut buf = [0; 4];
                let c = rng.pick(CHARS).encode_utf8(&mut buf).as_bytes().to_vec();
                b.splice(at..at, c);
            }
            _ if n > 0 => {
                // A run of one byte value, as a zeroed or 0xff-filled sector would leave.
                let (i, len) = range(rng, n);
                let v = if rng.below(2) == 0 { 0 } else { 0xff };
                b[i..i + len].fill(v);
            }
            _ => {}
        }
    }
    b
}

fn range(rng: &mut Rng, n: usize) -> (usize, usize) {
    let i = rng.below(n);
    let len = 1 + rng.below((n - i).min(64));
    (i, len)
}

/// Replaces a maximal run of bytes matching `is` (found from a random start) by one of `with`.
fn replace_run(rng: &mut Rng, b: &mut Vec<u8>, is: impl Fn(u8) -> bool, with: &[&str]) {
    let start = rng.below(b.len() + 1);
    let Some(i) = b[start..].iter().position(|&c| is(c)).map(|p| p + start) else {
        return;
    };
    let end = b[i..].iter().position(|&c| !is(c)).map_or(b.len(), |p| p + i);
    let text = *rng.pick(with);
    b.splice(i..end, text.bytes());
}

/// Replaces the text of a JSON/TOML string (between two quotes) by an interesting one.
fn replace_quoted(rng: &mut Rng, b: &mut Vec<u8>) {
    let start = rng.below(b.len() + 1);
    let Some(open) = b[start..].iter().position(|&c| c == b'"').map(|p| p + start) else {
        return;
    };
    let Some(close) = b[open + 1..].iter().position(|&c| c == b'"').map(|p| p + open + 1) else {
        return;
    };
    let text = if rng.below(8) == 0 {
        "a".repeat(10_000)
    } else {
        rng.pick(STRINGS).to_string()
    };
    b.splice(open + 1..close, text.into_bytes());
}

/// A fuzz target: seed inputs and the loader run on each (mutated) input.
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    run: Box<dyn Fn(&[u8], &Path)>,
}

/// What one target did.
#[derive(Default)]
struct Tally {
    executions: u64,
    /// Inputs a loader accepted and that were then used (a forward pass, an encoding, a read).
    used: u64,
    findings: Vec<(PathBuf, String)>,
}

static PANIC: Mutex<Option<String>> = Mutex::new(None);
static USED: AtomicU64 = AtomicU64::new(0);

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

#[test]
fn mutated_files_of_every_kind_end_in_an_error_or_a_value_never_in_a_panic() {
    let seconds = env_u64("EMBER_FUZZ_SECONDS", 30);
    let seed = env_u64("EMBER_FUZZ_SEED", 1).max(1);
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
    let _ = fs::remove_dir_all(root.join("work"));
    let findings_dir = root.join("findings");
    fs::create_dir_all(&findings_dir).unwrap();
    let fixtures = root.join("fixtures");
    let targets = targets(&fixtures);

    panic::set_hook(Box::new(|info| {
        *PANIC.lock().unwrap() = Some(info.to_string());
    }));
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let share = Duration::from_secs_f64(seconds as f64 / targets.len() as f64);
    let mut tallies = Vec::new();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for target in &targets {
        let work = root.join("work").join(target.name);
        fs::create_dir_all(&work).unwrap();
        let mut tally = Tally::default();
        let mut replay: Vec<Vec<u8>> = fs::read_dir(regressions.join(target.name))
            .into_iter()
            .flatten()
            .filter_map(|e| fs::read(e.ok()?.path()).ok())
            .collect();
        replay.extend(target.seeds.iter().cloned());
        let started = Instant::now();
        let mut next = 0;
        while tally.findings.is_empty() && (next < replay.len() || started.elapsed() < share) {
            let input = match replay.get(next) {
                Some(input) => input.clone(),
                None => {
                    let seed = rng_seed(&mut rng, &target.seeds);
                    mutate(&mut rng, seed)
                }
            };
            next += 1;
            fs::write(work.join("current.bin"), &input).unwrap();
            let used_before = USED.load(Ordering::Relaxed);
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input, &work)));
            tally.executions += 1;
            match outcome {
                Ok(()) => tally.used += u64::from(USED.load(Ordering::Relaxed) > used_before),
                Err(_) => {
                    let message = PANIC.lock().unwrap().take().unwrap_or_default();
                    let path = findings_dir.join(format!("{}-{}.bin", target.name, &hex_sha256(&input)[..16]));
                    fs::write(&path, &input).unwrap();
                    tally.findings.push((path, message));
                }
            }
        }
        tallies.push((target.name, tally));
    }
    let _ = panic::take_hook();

    println!("fuzz: seed {seed}, {seconds} s; target: executions, accepted and used, findings");
    let mut failed = Vec::new();
    for (name, tally) in &tallies {
        println!(
            "  {name:<22} {:>7} {:>7} {:>3}",
            tally.executions,
            tally.used,
            tally.findings.len()
        );
        for (path, message) in &tally.findings {
            failed.push(format!("{name}: {message} (input saved as {})", path.display()));
        }
    }
    let total: u64 = tallies.iter().map(|(_, t)| t.executions).sum();
    let used: u64 = tallies.iter().map(|(_, t)| t.used).sum();
    println!("  {:<22} {total:>7} {used:>7} {:>3}", "all", failed.len());
    assert!(
        failed.is_empty(),
        "the loaders panicked on mutated input:\n{}",
        failed.join("\n")
    );
}

fn rng_seed<'a>(rng: &mut Rng, seeds: &'a [Vec<u8>]) -> &'a [u8] {
    rng.pick(seeds).as_slice()
}

// ---------------------------------------------------------------------------------------------
// The targets.

/// Text of a few kinds of line, enough for a character vocabulary and BPE merges.
fn corpus() -> String {
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!(
            "Line {i}: the quick brown fox jumps over the lazy dog; O Romeo, wherefore art thou?\n"
        ));
    }
    text
}

fn run_config(data: &Path) -> RunConfig {
    let toml = format!(
        r#"
[model]
n_layer = 2
n_head = 2
d_model = 16
block_size = 16

[data]
path = "{}"
tokenizer = "char"

[train]
batch_size = 2
max_steps = 2
warmup_steps = 1
eval_interval = 2
eval_iters = 1
checkpoint_interval = 2
log_interval = 1
"#,
        data.display()
    );
    RunConfig::parse(&toml, &[], "fuzz run").expect("the fuzz run's config is valid")
}

struct Quiet;
impl Observer for Quiet {}

/// A finished two-step run: its files are the seeds of the run targets.
fn base_run(fixtures: &Path) -> PathBuf {
    let _ = fs::remove_dir_all(fixtures);
    fs::create_dir_all(fixtures).unwrap();
    let data = fixtures.join("corpus.txt");
    fs::write(&data, corpus()).unwrap();
    let run = fixtures.join("run");
    let mut trainer = Trainer::start(run_config(&data), &run, Device::flex(), false).unwrap();
    trainer.run(&mut Quiet, &AtomicBool::new(false), None).unwrap();
    run
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Uses whatever a loader accepted, as its callers would: a model runs a forward pass, a
/// tokenizer encodes and decodes, a token file is read at both ends.
fn exercise_model(model: &ember_model::Gpt, vocab: usize, block: usize) {
    let n = block.clamp(1, 8);
    let ids: Vec<i64> = (0..n).map(|i| (i % vocab.max(1)) as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), &Device::flex());
    let _ = model.forward(tokens).into_data();
    USED.fetch_add(1, Ordering::Relaxed);
}

fn exercise_tokenizer(t: &Tokenizer) {
    let _ = (t.vocab_size(), t.id_bound(), t.fingerprint(), t.to_hf_json());
    let _ = t.encode("the quick brown fox\n", "fuzz text");
    let bound = u32::try_from(t.id_bound()).unwrap_or(u32::MAX);
    let _ = t.decode(&[0, 1, bound.saturating_sub(1), bound, u32::MAX]);
    USED.fetch_add(1, Ordering::Relaxed);
}

fn exercise_data(run: &Path) {
    if let Ok(d) = ember_data::run::open_prepared(run) {
        for file in [&d.train, &d.val] {
            if !file.is_empty() {
                let mut window = Vec::new();
                file.extend_window(0, file.len().min(8), &mut window);
                file.extend_window(file.len() - 1, 1, &mut window);
            }
        }
        USED.fetch_add(1, Ordering::Relaxed);
        exercise_tokenizer(&d.tokenizer);
    }
}

/// Loads a run as `ember eval`/`ember sample` do, then resumes it and trains one step as
/// `ember train --resume` does.
fn exercise_run(run: &Path) {
    if let Ok(loaded) = inference::load_run(run, Selector::Latest, &Device::flex()) {
        exercise_model(
            &loaded.model,
            loaded.config.model.vocab_size,
            loaded.config.model.block_size,
        );
        exercise_tokenizer(&loaded.tokenizer);
    }
    if let Ok(mut trainer) = Trainer::resume(run, Selector::Latest, &["train.max_steps=3".into()], Device::flex())
        && small(trainer.config())
        && trainer.run(&mut Quiet, &AtomicBool::new(false), None).is_ok()
    {
        USED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether a resumed run's next step is cheap enough to take: a mutated state may ask for
/// valid but endless work (`eval_iters = 2⁶³`), which is the config's meaning, not a fault.
fn small(config: &RunConfig) -> bool {
    let t = &config.train;
    t.eval_iters <= 4 && t.batch_size.saturating_mul(t.grad_accum) <= 16 && config.model.block_size <= 64
}

/// The newest checkpoint directory of `run`.
fn checkpoint_dir(run: &Path) -> PathBuf {
    checkpoint::list(run).pop().expect("the base run has a checkpoint").1
}

/// Rewrites `manifest.json` so that it matches the files again: a mutation then reaches the
/// loader of the file itself instead of stopping at the checksum.
fn resign_manifest(dir: &Path) {
    let path = dir.join(checkpoint::MANIFEST_FILE);
    let mut manifest: Manifest = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for (name, entry) in manifest.files.iter_mut() {
        let bytes = fs::read(dir.join(name)).unwrap();
        entry.bytes = bytes.len() as u64;
        entry.sha256 = hex_sha256(&bytes);
    }
    fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

/// A target that writes its input over `file` of a fresh copy of `base` (a run or a model
/// directory), optionally repairs the checksums, and runs `load` on the copy.
fn file_target(name: &'static str, base: &Path, file: &Path, fix: fn(&Path), load: fn(&Path)) -> Target {
    let base = base.to_path_buf();
    let file = file.to_path_buf();
    Target {
        name,
        seeds: vec![fs::read(base.join(&file)).unwrap()],
        run: Box::new(move |input, work| {
            let dir = work.join("dir");
            copy_tree(&base, &dir);
            fs::write(dir.join(&file), input).unwrap();
            fix(&dir);
            load(&dir);
        }),
    }
}

/// The first train shard of a run's own dataset, relative to `tokens/`.
const TRAIN_SHARD: &str = "train/000000.bin";

fn targets(fixtures: &Path) -> Vec<Target> {
    let run = base_run(fixtures);
    let ck = checkpoint_dir(&run);
    let ck_rel = ck.strip_prefix(&run).unwrap().to_path_buf();
    let hf_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf/neox-tied");
    let text = corpus();
    let char_tok = Tokenizer::Char(CharTokenizer::from_text(&text));
    let bpe_tok = Tokenizer::Bpe(BpeTokenizer::train(&text, 300).unwrap());
    let configs: Vec<Vec<u8>> = fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs"))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "toml").then(|| fs::read(p).unwrap())
        })
        .collect();
    assert!(configs.len() >= 3, "the configs directory holds the seed configs");

    let no_fix: fn(&Path) = |_| {};
    let resign_ck: fn(&Path) = |run| resign_manifest(&checkpoint_dir(run));
    let resign_data: fn(&Path) = |run| {
        // The token file's checksum and length in meta.json, made to match its new bytes.
        let dir = ember_data::run::RunDataPaths::new(run).dir;
        let mut meta: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("meta.json")).unwrap()).unwrap();
        let bytes = fs::read(dir.join(TRAIN_SHARD)).unwrap();
        let tokens = bytes.len().saturating_sub(24) / 2;
        meta["train"]["shards"][0]["blake3"] = blake3::hash(&bytes).to_hex().to_string().into();
        meta["train"]["shards"][0]["tokens"] = tokens.into();
        meta["train"]["tokens"] = tokens.into();
        fs::write(dir.join("meta.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    };
    let tokens = ember_data::run::RunDataPaths::new(Path::new("")).dir;
    let (train_shard, meta_json) = (tokens.join(TRAIN_SHARD), tokens.join("meta.json"));
    let load_hf: fn(&Path) = |dir| {
        if let Ok(m) = hf::read_dir(dir) {
            let config = RunConfig {
                model: m.config,
                data: DataConfig::default(),
                train: TrainConfig::default(),
            };
            if config.validate().is_ok()
                && let Ok(model) = state::load_model(&config, &m.weights, dir, &Device::flex())
            {
                exercise_model(&model, config.model.vocab_size, config.model.block_size);
                exercise_tokenizer(&m.tokenizer);
            }
        }
    };

    vec![
        Target {
            name: "tokenizer.json",
            seeds: vec![
                char_tok.to_json().into_bytes(),
                char_tok.to_hf_json().into_bytes(),
                bpe_tok.to_json().into_bytes(),
            ],
            run: Box::new(|input, _| {
                let text = String::from_utf8_lossy(input);
                for parsed in [Tokenizer::from_json(&text), Tokenizer::from_hf_json(&text)] {
                    if let Ok(t) = parsed {
                        exercise_tokenizer(&t);
                    }
                }
            }),
        },
        Target {
            name: "config.toml",
            seeds: configs,
            run: Box::new(|input, _| {
                let text = String::from_utf8_lossy(input);
                if let Ok(config) = RunConfig::parse(&text, &[], "fuzz.toml") {
                    USED.fetch_add(1, Ordering::Relaxed);
                    // What is accepted is written back as it would be into a run directory,
                    // and reads back the same.
                    let again = RunConfig::parse(&config.to_toml(), &[], "fuzz.toml (written back)")
                        .expect("an accepted config reads back");
                    assert_eq!(again, config, "an accepted config reads back unchanged");
                }
            }),
        },
        file_target("train.bin", &run, &train_shard, no_fix, exercise_data),
        file_target("train.bin-resigned", &run, &train_shard, resign_data, exercise_data),
        file_target("meta.json", &run, &meta_json, no_fix, exercise_data),
        file_target(
            "manifest.json",
            &run,
            &ck_rel.join(checkpoint::MANIFEST_FILE),
            no_fix,
            exercise_run,
        ),
        file_target(
            "state.json",
            &run,
            &ck_rel.join(checkpoint::STATE_FILE),
            resign_ck,
            exercise_run,
        ),
        file_target(
            "model.safetensors",
            &run,
            &ck_rel.join(checkpoint::MODEL_FILE),
            resign_ck,
            exercise_run,
        ),
        file_target(
            "optimizer.safetensors",
            &run,
            &ck_rel.join(checkpoint::OPTIMIZER_FILE),
            resign_ck,
            exercise_run,
        ),
        file_target("hf-config.json", &hf_dir, Path::new("config.json"), no_fix, load_hf),
        file_target(
            "hf-model.safetensors",
            &hf_dir,
            Path::new("model.safetensors"),
            no_fix,
            load_hf,
        ),
        file_target(
            "hf-tokenizer.json",
            &hf_dir,
            Path::new("tokenizer.json"),
            no_fix,
            load_hf,
        ),
    ]
}
