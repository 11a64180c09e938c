//! `ember attention` and `ember report` through the real binary: what they print and write, and
//! every kind of bad input (one clear error line, exit ≠ 0, nothing existing changed).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A nano run of 30 steps with checkpoints at 0, 15 and 30.
fn run(dir: &Path) -> PathBuf {
    let config = nano_config(dir, "");
    let run = dir.join("run");
    ok(
        dir,
        &[
            "-q",
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--set",
            "train.max_steps=30",
            "--set",
            "train.checkpoint_interval=15",
            "--set",
            "train.keep_last=5",
        ],
    );
    run
}

#[test]
fn attention_json_holds_every_head_s_causal_rows_and_the_next_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = run(dir);
    let o = ok(
        dir,
        &[
            "attention",
            "--run",
            run.to_str().unwrap(),
            "--prompt",
            "ROMEO:\nBut",
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    assert_eq!(v["step"], 30);
    assert_eq!(v["tokens"].as_array().unwrap().len(), 10);
    assert_eq!(v["tokens"][6], "\n");
    assert_eq!((v["n_layer"].as_u64(), v["n_head"].as_u64()), (Some(2), Some(2)));
    let attention = v["attention"].as_array().unwrap();
    for layer in attention {
        for head in layer.as_array().unwrap() {
            for (i, row) in head.as_array().unwrap().iter().enumerate() {
                let row: Vec<f64> = serde_json::from_value(row.clone()).unwrap();
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);
                assert!(row[i + 1..].iter().all(|&w| w == 0.0), "row {i} attends to the future");
            }
        }
    }
    let next = v["next_tokens"].as_array().unwrap();
    assert_eq!(next.len(), 10);
    assert!(next[0]["prob"].as_f64().unwrap() >= next[1]["prob"].as_f64().unwrap());
    // Another checkpoint is another model.
    let first = ok(
        dir,
        &[
            "attention",
            "--run",
            run.to_str().unwrap(),
            "--prompt",
            "ROMEO:\nBut",
            "--json",
            "--checkpoint",
            "0",
        ],
    );
    let v0: Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(v0["step"], 0);
    assert_ne!(v0["attention"], v["attention"]);
}

#[test]
fn the_explorer_page_holds_every_kept_checkpoint_and_goes_to_the_run_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = run(dir);
    let o = ok(dir, &["attention", "--run", run.to_str().unwrap()]);
    let page = run.join("attention.html");
    assert!(
        stderr(&o).contains(&format!("wrote {} (3 checkpoints, 32 prompt tokens)", page.display())),
        "{}",
        stderr(&o)
    );
    let html = fs::read_to_string(&page).unwrap();
    for step in [0, 15, 30] {
        assert!(html.contains(&format!("\"step\":{step},")), "step {step} in the page");
    }
    assert!(
        !html.contains("https://") && !html.contains(" src="),
        "the page fetches nothing"
    );
}

#[test]
fn a_prompt_longer_than_the_context_is_cropped_and_said_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = run(dir);
    let long = "To be, or not to be, that is the question: whether 'tis nobler in the mind";
    let o = ok(
        dir,
        &["attention", "--run", run.to_str().unwrap(), "--prompt", long, "--json"],
    );
    assert!(
        stderr(&o).contains(&format!(
            "note: the prompt has {} tokens; the first 32 (the model's context) are shown",
            long.len()
        )),
        "{}",
        stderr(&o)
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["tokens"].as_array().unwrap().len(), 32);
}

#[test]
fn bad_input_is_one_clear_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = run(dir);
    let r = run.to_str().unwrap();
    let existing = dir.join("old.html");
    fs::write(&existing, "old page").unwrap();

    let err = fails(dir, &["attention", "--run", r, "--prompt", "café ☕", "--json"]);
    assert!(
        err.contains("the prompt") && err.contains("'é'") && err.contains("'☕'"),
        "{err}"
    );
    let err = fails(dir, &["attention", "--run", r, "--prompt", ""]);
    assert!(err.contains("--prompt is empty"), "{err}");
    // An output that cannot be written fails before any work, and the page beside it stays.
    let err = fails(
        dir,
        &[
            "attention",
            "--run",
            r,
            "--out",
            existing.to_str().unwrap(),
            "--png",
            dir.to_str().unwrap(),
        ],
    );
    assert!(err.contains("is a directory"), "{err}");
    let err = fails(
        dir,
        &[
            "attention",
            "--run",
            r,
            "--out",
            dir.join("no/such/dir/a.html").to_str().unwrap(),
        ],
    );
    assert!(err.contains("does not exist; create it first"), "{err}");
    assert_eq!(fs::read_to_string(&existing).unwrap(), "old page");
    // A run without checkpoints, and no run at all.
    let empty = dir.join("empty");
    fs::create_dir_all(empty.join("checkpoints")).unwrap();
    let err = fails(dir, &["attention", "--run", empty.to_str().unwrap(), "--prompt", "a"]);
    assert!(err.contains("holds no checkpoint; train first"), "{err}");
    let err = fails(dir, &["attention", "--run", "nowhere", "--prompt", "a"]);
    assert!(err.contains("nowhere") && err.contains("does not exist"), "{err}");
    let err = fails(dir, &["report", "--run", "nowhere"]);
    assert!(err.contains("nowhere") && err.contains("does not exist"), "{err}");
    let err = fails(dir, &["report", "--run", r, "--out", dir.to_str().unwrap()]);
    assert!(err.contains("is a directory"), "{err}");
    let err = fails(dir, &["report", "--run", r, "--watch", "0"]);
    assert!(err.contains("--watch 0"), "{err}");
    assert!(
        !run.join("report.html").exists(),
        "no report was written by the failures"
    );
}

#[test]
fn a_report_of_a_run_still_training_shows_how_far_it_has_come() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = nano_config(dir, "");
    let run = dir.join("run");
    ok(
        dir,
        &[
            "-q",
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--set",
            "train.max_steps=100",
            "--until-step",
            "20",
        ],
    );
    let o = ok(
        dir,
        &["report", "--run", run.to_str().unwrap(), "--sample-tokens", "20"],
    );
    assert!(stderr(&o).contains("report.html"), "{}", stderr(&o));
    let html = fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("step 20 of 100"), "status of an unfinished run");
    assert!(
        html.contains("\"sample\":{\"how\""),
        "a sample from the latest checkpoint"
    );
}
