//! `ember export --format hf`, `ember import` and `train.init_from` through the real binary.
//! (The comparison with `transformers` itself is in ember-train's tests/hf.rs, on models
//! `transformers` saved; python/hf_check.py runs it live.)

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ember-train/tests/data/hf")
        .join(name)
}

fn train(dir: &Path, out: &str, sets: &[&str]) {
    nano_config(dir, "");
    let mut args = vec!["-q", "train", "--config", "nano.toml", "--out", out];
    for s in sets {
        args.extend(["--set", s]);
    }
    ok(dir, &args);
}

#[test]
fn export_then_import_gives_the_same_weights_and_the_same_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir, "run", &["train.max_steps=20", "train.checkpoint_interval=10"]);
    let o = ok(dir, &["export", "--run", "run", "--format", "hf", "--out", "hf"]);
    assert!(stdout(&o).contains("wrote hf (step 20 of run)"), "{}", stdout(&o));
    let config: Value = serde_json::from_str(&fs::read_to_string(dir.join("hf/config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "GPTNeoXForCausalLM");
    assert_eq!(
        (config["rotary_pct"].as_f64(), config["use_parallel_residual"].as_bool()),
        (Some(1.0), Some(false))
    );
    let tokenizer: Value = serde_json::from_str(&fs::read_to_string(dir.join("hf/tokenizer.json")).unwrap()).unwrap();
    assert_eq!(
        tokenizer["model"]["type"], "BPE",
        "the character tokenizer in the tokenizers format"
    );
    ok(dir, &["import", "--from", "hf", "--out", "back"]);
    let weights =
        |run: &str, step: &str| bytes(&dir.join(run).join("checkpoints").join(step).join("model.safetensors"));
    assert!(
        weights("run", "step-00000020") == weights("back", "step-00000000"),
        "the weights round-trip bit for bit"
    );
    let sample = |run: &str| {
        stdout(&ok(
            dir,
            &["sample", "--run", run, "--temperature", "0", "--max-new-tokens", "40"],
        ))
    };
    assert_eq!(sample("run"), sample("back"));
    // An imported run has no validation split; a text evaluates.
    let err = fails(dir, &["eval", "--run", "back"]);
    assert!(
        err.contains("holds no validation split") && err.contains("--text FILE"),
        "{err}"
    );
    fs::write(
        dir.join("text.txt"),
        "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    )
    .unwrap();
    let eval = |run: &str| {
        serde_json::from_str::<Value>(&stdout(&ok(
            dir,
            &["eval", "--run", run, "--text", "text.txt", "--json"],
        )))
        .unwrap()["loss"]
            .clone()
    };
    assert_eq!(eval("run"), eval("back"));
}

#[test]
fn a_pythia_style_model_imports_and_generates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let from = fixture("pythia-like");
    let o = ok(dir, &["import", "--from", from.to_str().unwrap(), "--out", "pythia"]);
    assert!(
        stdout(&o).contains("2 layers, 4 heads, d_model 32, context 32, vocabulary 300"),
        "{}",
        stdout(&o)
    );
    let config = fs::read_to_string(dir.join("pythia/config.toml")).unwrap();
    for key in [
        "rotary_pct = 0.25",
        "parallel_residual = true",
        "tie_embeddings = false",
    ] {
        assert!(config.contains(key), "{key} in\n{config}");
    }
    let text = stdout(&ok(
        dir,
        &[
            "sample",
            "--run",
            "pythia",
            "--prompt",
            "First",
            "--temperature",
            "0",
            "--max-new-tokens",
            "10",
        ],
    ));
    assert!(text.starts_with("First") && text.len() > 5, "{text}");
    // Pythia's choices have no ember model to export them from, and back: they export too.
    ok(dir, &["export", "--run", "pythia", "--format", "hf", "--out", "again"]);
    let again: Value = serde_json::from_str(&fs::read_to_string(dir.join("again/config.json")).unwrap()).unwrap();
    assert_eq!(
        (again["rotary_pct"].as_f64(), again["tie_word_embeddings"].as_bool()),
        (Some(0.25), Some(false))
    );
}

#[test]
fn what_cannot_be_exported_or_imported_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(
        dir,
        "linear",
        &["train.max_steps=2", "train.warmup_steps=1", "model.attention=linear"],
    );
    let err = fails(dir, &["export", "--run", "linear", "--format", "hf", "--out", "hf"]);
    assert!(
        err.contains("model.attention = \"linear\" has no GPT-NeoX equivalent"),
        "{err}"
    );
    assert!(!dir.join("hf").exists());
    fs::create_dir(dir.join("taken")).unwrap();
    train(dir, "plain", &["train.max_steps=2", "train.warmup_steps=1"]);
    let err = fails(dir, &["export", "--run", "plain", "--format", "hf", "--out", "taken"]);
    assert!(err.contains("exists already"), "{err}");
    // Import: no config.json, another architecture.
    fs::create_dir(dir.join("empty")).unwrap();
    let err = fails(dir, &["import", "--from", "empty", "--out", "imported"]);
    assert!(err.contains("has no readable config.json"), "{err}");
    let llama = dir.join("llama");
    fs::create_dir(&llama).unwrap();
    fs::write(
        llama.join("config.json"),
        r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}"#,
    )
    .unwrap();
    let err = fails(dir, &["import", "--from", "llama", "--out", "imported"]);
    assert!(err.contains("the architecture is LlamaForCausalLM"), "{err}");
    assert!(!dir.join("imported").exists(), "nothing was written");
}

#[test]
fn init_from_fine_tunes_from_an_export_or_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir, "source", &["train.max_steps=60", "train.checkpoint_interval=30"]);
    ok(
        dir,
        &["export", "--run", "source", "--format", "hf", "--out", "source-hf"],
    );
    let first_loss = |run: &str| metrics(&dir.join(run))[0]["train_loss"].as_f64().unwrap();
    for from in ["source-hf", "source"] {
        let out = format!("tuned-from-{from}");
        let init = format!("train.init_from={from}");
        train(
            dir,
            &out,
            &[
                "train.max_steps=10",
                &init,
                "train.lr=1e-4",
                "train.min_lr=1e-5",
                "train.warmup_steps=2",
            ],
        );
        let config = fs::read_to_string(dir.join(&out).join("config.toml")).unwrap();
        assert!(config.contains(&format!("init_from = \"{from}\"")), "{config}");
        // It starts where the source ended, far below a fresh model's first loss.
        let last_of_source = metrics(&dir.join("source")).last().unwrap()["train_loss"]
            .as_f64()
            .unwrap();
        assert!(
            (first_loss(&out) - last_of_source).abs() < 0.3,
            "{from}: {} vs {last_of_source}",
            first_loss(&out)
        );
        assert!(first_loss(&out) < first_loss("source") - 0.5);
    }
    // The architecture comes from the source: a conflicting [model] key is named.
    let err = fails(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "bad",
            "--set",
            "train.init_from=source",
            "--set",
            "model.n_layer=3",
        ],
    );
    assert!(err.contains("model.n_layer = 3 (the source has 2)"), "{err}");
    let err = fails(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "bad",
            "--set",
            "train.init_from=nowhere",
        ],
    );
    assert!(err.contains("train.init_from") && err.contains("nowhere"), "{err}");
    assert!(!dir.join("bad").exists());
}
