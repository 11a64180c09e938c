//! The attention variants and model options through the real binary: each trains, evaluates,
//! samples and resumes bit-identically; invalid combinations are one clear error naming the
//! keys; a synthetic corpus's floor reaches `ember eval`.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

/// `--set` overrides of each variant, on the nano config.
const VARIANTS: [&[&str]; 7] = [
    &["model.attention=sliding_window", "model.window=8", "model.dropout=0.1"],
    &[
        "model.attention=sliding_window",
        "model.window=4",
        "model.window_pattern=SL",
    ],
    &["model.attention=linear"],
    &["model.n_kv_head=1"],
    &["model.position=alibi"],
    &["model.position=none"],
    &[
        "model.rotary_pct=0.5",
        "model.parallel_residual=true",
        "model.tie_embeddings=false",
        "model.d_ff=48",
    ],
];

fn with_sets<'a>(args: &[&'a str], sets: &[&'a str]) -> Vec<&'a str> {
    let mut out = args.to_vec();
    for s in sets {
        out.extend(["--set", s]);
    }
    out
}

#[test]
fn every_variant_trains_evaluates_samples_and_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    for (i, variant) in VARIANTS.iter().enumerate() {
        let (straight, resumed) = (format!("straight{i}"), format!("resumed{i}"));
        let mut sets = vec![
            "train.max_steps=30",
            "train.checkpoint_interval=10",
            "train.eval_interval=10",
        ];
        sets.extend(variant.iter());
        ok(
            dir,
            &with_sets(&["-q", "train", "--config", "nano.toml", "--out", &straight], &sets),
        );
        ok(
            dir,
            &with_sets(
                &[
                    "-q",
                    "train",
                    "--config",
                    "nano.toml",
                    "--out",
                    &resumed,
                    "--until-step",
                    "15",
                ],
                &sets,
            ),
        );
        ok(dir, &["-q", "train", "--resume", &resumed]);
        for f in ["model.safetensors", "optimizer.safetensors"] {
            let p = |run: &str| dir.join(run).join("checkpoints/step-00000030").join(f);
            assert!(
                bytes(&p(&straight)) == bytes(&p(&resumed)),
                "{variant:?}: {f} differs after resuming"
            );
        }
        let losses = metrics(&dir.join(&straight));
        let (first, last) = (
            losses[0]["train_loss"].as_f64().unwrap(),
            losses[29]["train_loss"].as_f64().unwrap(),
        );
        assert!(last < first, "{variant:?} learns: {first} → {last}");
        let e: Value = serde_json::from_str(&stdout(&ok(dir, &["eval", "--run", &straight, "--json"]))).unwrap();
        assert!(e["loss"].as_f64().unwrap() < first, "{variant:?}: eval {}", e["loss"]);
        // Sampling with the variant's cache and without it gives the same greedy text.
        let sample = |extra: &[&str]| {
            let mut args = vec![
                "sample",
                "--run",
                straight.as_str(),
                "--temperature",
                "0",
                "--max-new-tokens",
                "60",
            ];
            args.extend(extra);
            stdout(&ok(dir, &args))
        };
        assert_eq!(
            sample(&[]),
            sample(&["--no-cache"]),
            "{variant:?}: cached and recomputed samples"
        );
    }
}

#[test]
fn invalid_combinations_are_one_clear_error_naming_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let train = |sets: &[&str]| {
        fails(
            dir,
            &with_sets(&["train", "--config", "nano.toml", "--out", "run"], sets),
        )
    };
    let err = train(&["model.window=8"]);
    assert!(
        err.contains("model.window = 8: is used only with model.attention = \"sliding_window\""),
        "{err}"
    );
    let err = train(&["model.attention=sliding_window"]);
    assert!(err.contains("needs model.window"), "{err}");
    let err = train(&["model.attention=sliding_window", "model.window=0"]);
    assert!(err.contains("model.window = 0: must be at least 1"), "{err}");
    let err = train(&["model.n_kv_head=3"]);
    assert!(err.contains("model.n_kv_head = 3: must divide n_head = 2"), "{err}");
    let err = train(&["model.attention=linear", "model.position=alibi"]);
    assert!(err.contains("model.position = \"alibi\""), "{err}");
    let err = train(&["model.attention=sliding"]);
    assert!(err.contains("sliding") && err.contains("sliding_window"), "{err}");
    assert!(!dir.join("run").exists(), "nothing is written");
}

#[test]
fn a_synthetic_corpus_records_its_floor_and_eval_reports_the_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = ok(
        dir,
        &[
            "synth",
            "--task",
            "copy",
            "--out",
            "copy.txt",
            "--chars",
            "20000",
            "--length",
            "6",
            "--alphabet",
            "4",
        ],
    );
    assert!(stdout(&o).contains("entropy floor 0.5941 nats/char"), "{}", stdout(&o)); // 6 ln 4 / 14
    let floor: Value = serde_json::from_str(&fs::read_to_string(dir.join("copy.txt.floor.json")).unwrap()).unwrap();
    assert_eq!(floor["task"]["task"], "copy");
    fs::write(
        dir.join("synth.toml"),
        "[model]\nblock_size = 32\n[data]\npath = \"copy.txt\"\n[train]\nmax_steps = 20\neval_interval = 10\ncheckpoint_interval = 10\n",
    )
    .unwrap();
    ok(dir, &["-q", "train", "--config", "synth.toml", "--out", "run"]);
    let e: Value =
        serde_json::from_str(&stdout(&ok(dir, &["eval", "--run", "run", "--json", "--stride", "16"]))).unwrap();
    let (loss, floor, gap) = (
        e["loss"].as_f64().unwrap(),
        e["entropy_floor"].as_f64().unwrap(),
        e["gap_to_floor"].as_f64().unwrap(),
    );
    assert!((floor - 6.0 * 4f64.ln() / 14.0).abs() < 1e-9);
    assert!(
        (gap - (loss - floor)).abs() < 1e-9,
        "char-level: the gap per character is per token"
    );
    assert_eq!(e["stride"], 16);
    let text = stdout(&ok(dir, &["eval", "--run", "run"]));
    assert!(
        text.contains("floor       0.5941 nats/char") && text.contains("gap "),
        "{text}"
    );
    // Bad parameters are named.
    let err = fails(dir, &["synth", "--task", "copy", "--out", "x.txt", "--alphabet", "40"]);
    assert!(err.contains("--alphabet 40"), "{err}");
    let err = fails(dir, &["eval", "--run", "run", "--stride", "0"]);
    assert!(err.contains("--stride 0"), "{err}");
}
