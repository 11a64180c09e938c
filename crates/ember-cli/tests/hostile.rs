//! Hostile and damaged input through the real binary: every case ends in one `error:` line
//! that names the problem, a non-zero exit code, no panic, no hang, and nothing changed on disk.
//! (The loaders' own tests and the fuzzing harness, crates/ember-train/tests/fuzz.rs, go
//! further inside each format.)

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `fails`, but the command must also end within `limit` (a FIFO must never block ember).
fn fails_within(dir: &Path, args: &[&str], limit: Duration) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("ember {args:?} still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    fails(dir, args)
}

/// A nano run of four steps in `dir/run`, with its config in `dir/nano.toml`.
fn four_step_run(dir: &Path) {
    nano_config(dir, "");
    let set = ["--set", "train.max_steps=4", "--set", "train.warmup_steps=2"];
    let mut args = vec!["-q", "train", "--config", "nano.toml", "--out", "run"];
    args.extend(set);
    ok(dir, &args);
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_flipped_byte_in_a_runs_token_file_stops_the_resume_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    four_step_run(dir);
    let bin = dir.join("run/tokens/train/000000.bin");
    let mut bytes = fs::read(&bin).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::write(&bin, &bytes).unwrap();
    let checkpoints_before = fs::read_dir(dir.join("run/checkpoints")).unwrap().count();
    let line = fails(dir, &["train", "--resume", "run", "--set", "train.max_steps=8"]);
    assert!(line.contains("train/000000.bin") && line.contains("checksum"), "{line}");
    assert!(line.contains("restore the file"), "the line says what to do: {line}");
    assert_eq!(
        fs::read_dir(dir.join("run/checkpoints")).unwrap().count(),
        checkpoints_before
    );
    assert_eq!(fs::read(&bin).unwrap(), bytes, "ember never rewrites the damaged file");
}

#[test]
fn a_run_whose_files_are_replaced_by_fifos_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    four_step_run(dir);
    let limit = Duration::from_secs(60);
    for (file, args, expected) in [
        (
            "metrics.jsonl",
            vec!["report", "--run", "run"],
            "metrics.jsonl: it is a FIFO (named pipe), not a regular file",
        ),
        (
            "tokens/val/000000.bin",
            vec!["train", "--resume", "run", "--set", "train.max_steps=8"],
            "000000.bin is damaged (it is a FIFO (named pipe), not a regular file)",
        ),
        (
            "tokenizer.json",
            vec!["sample", "--run", "run", "--max-new-tokens", "4"],
            "it is a FIFO (named pipe), not a regular file",
        ),
    ] {
        let path = dir.join("run").join(file);
        let kept = dir.join("kept");
        fs::rename(&path, &kept).unwrap();
        mkfifo(&path);
        let line = fails_within(dir, &args, limit);
        assert!(line.contains(expected), "{file}: expected {expected:?} in {line:?}");
        fs::remove_file(&path).unwrap();
        fs::rename(&kept, &path).unwrap();
    }
}

#[test]
fn devices_fifos_symlink_loops_and_directories_are_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    mkfifo(&dir.join("fifo.txt"));
    mkfifo(&dir.join("fifo.toml"));
    std::os::unix::fs::symlink("loop-b.txt", dir.join("loop-a.txt")).unwrap();
    std::os::unix::fs::symlink("loop-a.txt", dir.join("loop-b.txt")).unwrap();
    fs::create_dir(dir.join("config-dir.toml")).unwrap();
    fs::write(dir.join("taken"), "a file of the user's").unwrap();
    let limit = Duration::from_secs(60);
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--config", "nano.toml"];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (train(&["--set", "data.path=/dev/zero"]), "a character device"),
        (train(&["--set", "data.path=fifo.txt"]), "a FIFO (named pipe)"),
        (train(&["--set", "data.path=loop-a.txt"]), "loop-a.txt"),
        (
            ["train", "--config", "fifo.toml"].map(String::from).to_vec(),
            "a FIFO (named pipe), not a regular file",
        ),
        (
            ["train", "--config", "config-dir.toml"].map(String::from).to_vec(),
            "a directory, not a regular file",
        ),
        (train(&["--out", "taken"]), "taken"),
    ];
    for (args, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = fails_within(dir, &args, limit);
        assert!(
            line.contains(expected),
            "ember {args:?}: expected {expected:?} in {line:?}"
        );
    }
    assert_eq!(fs::read_to_string(dir.join("taken")).unwrap(), "a file of the user's");
    assert!(!dir.join("runs").exists(), "failed starts leave no run behind");
}

#[test]
fn a_model_too_large_for_the_machine_is_refused_before_it_is_allocated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    // About 200 billion parameters: far beyond any machine that runs this test.
    let line = fails_within(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--set",
            "model.d_model=16384",
            "--set",
            "model.n_layer=64",
            "--set",
            "model.n_head=128",
            "--out",
            "huge",
        ],
        Duration::from_secs(60),
    );
    assert!(
        line.contains("GiB available") && line.contains("model.d_model"),
        "{line}"
    );
    assert!(!dir.join("huge").exists(), "nothing is left behind");
    // A context beyond the model's bounds is refused by the config check itself.
    let line = fails(
        dir,
        &["train", "--config", "nano.toml", "--set", "model.block_size=100000000"],
    );
    assert!(line.contains("model.block_size"), "{line}");
}

#[test]
fn a_negative_number_reaches_embers_own_check_and_a_bad_simd_cap_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let line = fails(dir, &["sample", "--run", "no-such-run", "--temperature", "-1"]);
    assert!(line.contains("temperature = -1"), "{line}");
    let o = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["info", "--config", "nowhere.toml"])
        .env("EMBER_SIMD", "sse9")
        .current_dir(dir)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert_eq!(
        err.trim(),
        "error: EMBER_SIMD=\"sse9\" is not an instruction set: set it to avx512, avx2 or baseline, or unset it"
    );
}
