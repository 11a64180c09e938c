//! End-to-end tests of the `ember` binary: each runs the real program in a temporary
//! directory and checks its exit code, output and files.

use std::fs;
use std::path::Path;

use serde_json::Value;

mod common;

use common::*;

#[test]
fn train_eval_sample_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let o = ok(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--set",
            "train.max_steps=60",
            "--set",
            "train.eval_interval=30",
        ],
    );
    let err = stderr(&o);
    assert!(err.contains("step 30: train loss") && err.contains("val loss"), "{err}");
    let run = dir.join("runs/nano");
    for f in [
        "config.toml",
        "tokenizer.json",
        "tokens/meta.json",
        "tokens/train/000000.bin",
        "tokens/val/000000.bin",
        "metrics.jsonl",
        "checkpoints/step-00000060/manifest.json",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    // The resolved config records the vocabulary: tiny-shakespeare has 65 characters.
    assert!(
        fs::read_to_string(run.join("config.toml"))
            .unwrap()
            .contains("vocab_size = 65")
    );
    let m = metrics(&run);
    assert_eq!(m.len(), 60);
    for key in ["step", "train_loss", "lr", "tokens_per_s", "elapsed_s"] {
        assert!(m[0].get(key).is_some(), "{key} missing from {}", m[0]);
    }
    assert!(m[0].get("val_loss").is_none());
    assert!(m[29]["val_loss"].as_f64().is_some() && m[29]["val_ppl"].as_f64().is_some());
    let first = m[0]["train_loss"].as_f64().unwrap();
    let last = m[59]["val_loss"].as_f64().unwrap();
    assert!(
        (first - 65f64.ln()).abs() < 0.3,
        "an untrained model is near ln 65: {first}"
    );
    assert!(
        last < first - 1.0,
        "60 steps should cut the loss by more than a nat: {first} → {last}"
    );

    let o = ok(dir, &["eval", "--run", "runs/nano", "--json"]);
    let e: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    for key in ["loss", "perplexity", "tokens", "bits_per_token", "bits_per_char"] {
        assert!(e.get(key).is_some(), "{key} missing from {e}");
    }
    let loss = e["loss"].as_f64().unwrap();
    assert!((e["perplexity"].as_f64().unwrap() - loss.exp()).abs() < 1e-6);
    // char-level: one token per character
    assert!((e["bits_per_char"].as_f64().unwrap() - e["bits_per_token"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(e["tokens"].as_u64().unwrap(), 111_538); // the last 10% of 1,115,394 characters, minus the first

    let text = stdout(&ok(dir, &["eval", "--run", "runs/nano"]));
    assert!(text.contains("perplexity") && text.contains("bits/char"), "{text}");

    let a = stdout(&ok(
        dir,
        &[
            "sample",
            "--run",
            "runs/nano",
            "--temperature",
            "0",
            "--max-new-tokens",
            "40",
            "--prompt",
            "ROMEO:",
        ],
    ));
    let b = stdout(&ok(
        dir,
        &[
            "sample",
            "--run",
            "runs/nano",
            "--temperature",
            "0",
            "--max-new-tokens",
            "40",
            "--prompt",
            "ROMEO:",
            "--no-cache",
        ],
    ));
    assert_eq!(a, b, "greedy output with and without the KV cache");
    assert!(a.starts_with("ROMEO:") && a.len() > 40, "{a}");
    let s1 = stdout(&ok(
        dir,
        &["sample", "--run", "runs/nano", "--seed", "5", "--max-new-tokens", "30"],
    ));
    let s2 = stdout(&ok(
        dir,
        &["sample", "--run", "runs/nano", "--seed", "5", "--max-new-tokens", "30"],
    ));
    assert_eq!(s1, s2, "the same seed samples the same text");
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one_bit_for_bit() {
    resumed_equals_straight(&[], &[]);
}

#[test]
fn a_resumed_sharded_run_equals_an_uninterrupted_one_bit_for_bit() {
    // batch 8 in 3 shards of 3, 3 and 2 sequences, each on its own thread
    resumed_equals_straight(&["--cpu-shards", "3"], &["--cpu-shards", "3"]);
}

#[test]
fn a_resumed_data_parallel_run_with_dropout_equals_an_uninterrupted_one_bit_for_bit() {
    let devices = ["--devices", "cpu,cpu"];
    let mut run = devices.to_vec();
    run.extend(["--set", "model.dropout=0.2", "--set", "train.batch_size=8"]);
    resumed_equals_straight(&run, &devices);
}

/// Trains 40 steps straight, and 20 + a resume to 40; `run` is given to both first runs,
/// `resume` to the resume.
fn resumed_equals_straight(run: &[&str], resume_with: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let mut common = vec![
        "--set",
        "train.max_steps=40",
        "--set",
        "train.checkpoint_interval=10",
        "--set",
        "train.eval_interval=10",
    ];
    common.extend(run);
    let mut straight = vec!["train", "--config", "nano.toml", "--out", "straight"];
    straight.extend(&common);
    ok(dir, &straight);
    let mut part = vec![
        "train",
        "--config",
        "nano.toml",
        "--out",
        "resumed",
        "--until-step",
        "20",
    ];
    part.extend(&common);
    let o = ok(dir, &part);
    assert!(
        stderr(&o).contains("resume with: ember train --resume resumed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(metrics(&dir.join("resumed")).len(), 20);
    let mut resume = vec!["train", "--resume", "resumed"];
    resume.extend(resume_with);
    ok(dir, &resume);

    let (a, b) = (metrics(&dir.join("straight")), metrics(&dir.join("resumed")));
    assert_eq!(a.len(), 40);
    assert_eq!(b.len(), 40);
    for (x, y) in a.iter().zip(&b) {
        for key in ["step", "train_loss", "lr", "grad_norm", "tokens_seen", "val_loss"] {
            assert_eq!(x.get(key), y.get(key), "{key} differs at step {}", x["step"]);
        }
    }
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let p = |run: &str| dir.join(run).join("checkpoints/step-00000040").join(f);
        assert!(
            bytes(&p("straight")) == bytes(&p("resumed")),
            "{f} differs after resuming"
        );
    }
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["train", "--config", "missing.toml"],
            "missing.toml: cannot read it",
        ),
        (
            vec!["train", "--config", "nano.toml", "--set", "train.lrr=1"],
            "unknown key \"lrr\" in [train]; did you mean \"lr\"?",
        ),
        (
            vec!["train", "--config", "nano.toml", "--set", "model.n_head=3"],
            "model.n_head = 3: must divide d_model = 32",
        ),
        (
            vec!["train", "--config", "nano.toml", "--set", "model.block_size=0"],
            "model.block_size = 0",
        ),
        (
            vec!["train", "--config", "nano.toml", "--set", "train.warmup_steps=1000"],
            "train.warmup_steps = 1000: exceeds train.max_steps",
        ),
        (
            vec!["train", "--config", "nano.toml", "--set", "data.path=nowhere.txt"],
            "data file nowhere.txt does not exist; run scripts/get-data.sh",
        ),
        (
            vec!["train", "--config", "nano.toml", "--device", "tpu"],
            "--device tpu: unknown device",
        ),
        (vec!["eval", "--run", "no-such-run"], "no-such-run: does not exist"),
        (
            vec!["sample", "--run", "no-such-run", "--temperature=-1"],
            "temperature = -1",
        ),
    ];
    for (args, expected) in cases {
        let line = fails(dir, &args);
        assert!(
            line.contains(expected),
            "ember {args:?}: expected {expected:?} in {line:?}"
        );
    }
    assert!(!dir.join("runs").exists(), "failed commands must not create a run");
}

#[test]
fn an_existing_run_is_never_overwritten_by_accident() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    ok(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "r",
            "--set",
            "train.max_steps=3",
            "--set",
            "train.warmup_steps=1",
        ],
    );
    let before = bytes(&dir.join("r/checkpoints/step-00000003/model.safetensors"));
    let line = fails(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "r",
            "--set",
            "train.max_steps=3",
            "--set",
            "train.warmup_steps=1",
        ],
    );
    assert!(
        line.contains("already holds a run") && line.contains("--resume r"),
        "{line}"
    );
    assert_eq!(
        bytes(&dir.join("r/checkpoints/step-00000003/model.safetensors")),
        before
    );
    ok(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "r",
            "--set",
            "train.max_steps=2",
            "--set",
            "train.warmup_steps=1",
            "--overwrite",
        ],
    );
    assert!(!dir.join("r/checkpoints/step-00000003").exists());
}

#[test]
fn eval_text_outside_the_vocabulary_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    ok(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "r",
            "--set",
            "train.max_steps=2",
            "--set",
            "train.warmup_steps=1",
        ],
    );
    fs::write(dir.join("odd.txt"), "Hello — naïve ☃\n").unwrap();
    let line = fails(dir, &["eval", "--run", "r", "--text", "odd.txt"]);
    assert!(
        line.contains("eval file odd.txt contains 3 character(s) outside the tokenizer's vocabulary"),
        "{line}"
    );
    let text = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
    fs::write(dir.join("ok.txt"), text).unwrap();
    let o = ok(dir, &["eval", "--run", "r", "--text", "ok.txt", "--json"]);
    let e: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(e["tokens"].as_u64().unwrap() as usize, text.chars().count() - 1);
}

#[test]
fn info_reports_size_and_cost() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/shakespeare-char.toml");
    let corpus = corpus();
    let o = ok(
        dir,
        &[
            "info",
            "--config",
            cfg.to_str().unwrap(),
            "--set",
            &format!("data.path={}", corpus.display()),
        ],
    );
    let out = stdout(&o);
    // 65·128 + 4·(12·128² + 13·128) + 2·128 = 801,664; FLOPs/token 5,153,280.
    assert!(out.contains("parameters  801664"), "{out}");
    assert!(out.contains("FLOPs/token 5153280"), "{out}");
    assert!(out.contains("vocabulary  65 (characters of the corpus)"), "{out}");
}

#[test]
fn data_parallel_over_two_devices_equals_two_accumulated_micro_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let steps = [
        "--set",
        "train.max_steps=15",
        "--set",
        "train.eval_interval=15",
        "--set",
        "train.checkpoint_interval=15",
    ];
    let mut dp = vec![
        "train",
        "--config",
        "nano.toml",
        "--out",
        "dp",
        "--devices",
        "cpu,cpu",
        "--set",
        "train.batch_size=8",
    ];
    dp.extend(steps);
    let o = ok(dir, &dp);
    assert!(stderr(&o).contains("data-parallel over 2 devices"), "{}", stderr(&o));
    let mut acc = vec![
        "train",
        "--config",
        "nano.toml",
        "--out",
        "acc",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.grad_accum=2",
    ];
    acc.extend(steps);
    ok(dir, &acc);
    let (a, b) = (metrics(&dir.join("dp")), metrics(&dir.join("acc")));
    for (x, y) in a.iter().zip(&b) {
        let (lx, ly) = (x["train_loss"].as_f64().unwrap(), y["train_loss"].as_f64().unwrap());
        assert!((lx - ly).abs() < 1e-4, "step {}: {lx} vs {ly}", x["step"]);
    }
    // With dropout, replica r draws the masks of micro-batch r: the same two runs again.
    let dropout = ["--set", "model.dropout=0.2"];
    let mut dp_dropout = dp.clone();
    dp_dropout.extend(dropout);
    dp_dropout[4] = "dp-dropout";
    ok(dir, &dp_dropout);
    let mut acc_dropout = acc.clone();
    acc_dropout.extend(dropout);
    acc_dropout[4] = "acc-dropout";
    ok(dir, &acc_dropout);
    let (a, b) = (metrics(&dir.join("dp-dropout")), metrics(&dir.join("acc-dropout")));
    assert_eq!(a.len(), 15);
    for ((x, y), plain) in a.iter().zip(&b).zip(&metrics(&dir.join("dp"))) {
        let (lx, ly) = (x["train_loss"].as_f64().unwrap(), y["train_loss"].as_f64().unwrap());
        assert!((lx - ly).abs() < 1e-4, "dropout, step {}: {lx} vs {ly}", x["step"]);
        let lp = plain["train_loss"].as_f64().unwrap();
        // More than the tolerance of the equality above, at every step.
        assert!(
            (lx - lp).abs() > 2e-4,
            "dropout changed too little at step {}: {lx} vs {lp}",
            x["step"]
        );
    }
    let line = fails(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "odd",
            "--devices",
            "cpu,cpu,cpu",
        ],
    );
    assert!(
        line.contains("train.batch_size = 8: must be divisible by the 3 devices"),
        "{line}"
    );
    let line = fails(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "gpu",
            "--devices",
            "cuda:0,cuda:1",
        ],
    );
    assert!(line.contains("cuda"), "{line}");
    let line = fails(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "twice",
            "--devices",
            "cuda:0,cuda:0",
        ],
    );
    assert!(line.contains("--devices lists cuda:0 twice"), "{line}");
}

#[test]
fn half_precision_on_a_cpu_backend_without_it_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    for (precision, type_name) in [("f16", "f16"), ("bf16", "bf16")] {
        let set = format!("train.precision={precision}");
        let line = fails(
            dir,
            &[
                "train",
                "--config",
                "nano.toml",
                "--out",
                "h",
                "--device",
                "ndarray",
                "--set",
                &set,
            ],
        );
        assert!(
            line.contains(&format!(
                "train.precision = {precision}: this device cannot compute in {type_name}"
            )) && line.contains("--device flex"),
            "{line}"
        );
        assert!(!dir.join("h").exists());
    }
}

#[test]
fn cpu_shards_train_the_same_model_and_bad_counts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let run = |out: &str, shards: &str| {
        ok(
            dir,
            &[
                "train",
                "--config",
                "nano.toml",
                "--out",
                out,
                "--cpu-shards",
                shards,
                "--set",
                "train.max_steps=15",
                "--set",
                "train.eval_interval=15",
                "--set",
                "train.checkpoint_interval=15",
            ],
        );
        metrics(&dir.join(out))
    };
    // batch 8 in 3 shards: 3 + 3 + 2 sequences, weighted by their share.
    let (whole, sharded) = (run("whole", "1"), run("sharded", "3"));
    assert_eq!(whole.len(), sharded.len());
    for (x, y) in whole.iter().zip(&sharded) {
        for key in ["train_loss", "val_loss"] {
            if let (Some(a), Some(b)) = (x[key].as_f64(), y[key].as_f64()) {
                assert!((a - b).abs() < 1e-4, "step {} {key}: {a} vs {b}", x["step"]);
            }
        }
    }
    let line = fails(
        dir,
        &["train", "--config", "nano.toml", "--out", "zero", "--cpu-shards", "0"],
    );
    assert!(line.contains("--cpu-shards 0: give at least 1"), "{line}");
    assert!(!dir.join("zero").join("config.toml").exists(), "nothing written");
    let line = fails(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "nd",
            "--device",
            "ndarray",
            "--cpu-shards",
            "2",
        ],
    );
    assert!(
        line.contains("--cpu-shards applies to the CPU devices cpu and flex"),
        "{line}"
    );
}

#[test]
fn bench_reports_training_and_generation_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let train_args = [
        "bench",
        "--config",
        "nano.toml",
        "--steps",
        "3",
        "--min-seconds",
        "0",
        "--peak-gflops",
        "100",
        "--json",
    ];
    let b: Value = serde_json::from_str(stdout(&ok(dir, &train_args)).trim()).unwrap();
    for key in ["tokens_per_s", "step_ms", "mfu", "peak_rss_mb"] {
        assert!(b[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {b}");
    }
    let gen_args = [
        "bench",
        "--config",
        "nano.toml",
        "--generate",
        "--new-tokens",
        "20",
        "--rounds",
        "3",
        "--json",
    ];
    let g: Value = serde_json::from_str(stdout(&ok(dir, &gen_args)).trim()).unwrap();
    assert_eq!(g["identical"], true, "{g}");
    let rounds = g["cached_rounds"].as_array().unwrap();
    assert_eq!((rounds.len(), g["recompute_rounds"].as_array().unwrap().len()), (3, 3));
    // The reported rate is the median of the rounds.
    let mut sorted: Vec<f64> = rounds.iter().map(|v| v.as_f64().unwrap()).collect();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(g["cached_tokens_per_s"].as_f64(), Some(sorted[1]));
    let err = fails(dir, &["bench", "--config", "nano.toml", "--generate", "--rounds", "0"]);
    assert!(err.contains("--rounds"), "{err}");
}
