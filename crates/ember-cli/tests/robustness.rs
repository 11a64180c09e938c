//! A run survives interruptions, kills, damaged files, divergence and a full disk; and every
//! kind of bad input gets one clear error line, a non-zero exit code, and changes nothing.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn sigint_finishes_the_step_writes_a_checkpoint_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let child = spawn(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "r",
            "--set",
            "train.max_steps=1000000",
            "--set",
            "train.warmup_steps=1",
        ],
    );
    wait_for_steps(&dir.join("r"), 5);
    signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {err}", out.status);
    let step: u64 = err
        .split("interrupted after step ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_else(|| panic!("no interruption line in {err}"))
        .parse()
        .unwrap();
    assert!(err.contains("resume with: ember train --resume r"), "{err}");
    assert!(dir.join(format!("r/checkpoints/step-{step:08}/manifest.json")).exists());
    assert_eq!(metrics(&dir.join("r")).last().unwrap()["step"].as_u64().unwrap(), step);
    let target = format!("train.max_steps={}", step + 3);
    ok(dir, &["train", "--resume", "r", "--set", &target]);
    assert_eq!(
        metrics(&dir.join("r")).last().unwrap()["step"].as_u64().unwrap(),
        step + 3
    );
}

#[test]
fn a_second_signal_aborts_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Steps long enough (a wide model) that both signals arrive within one.
    nano_config(dir, "");
    let mut child = spawn(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "r",
            "--set",
            "model.d_model=256",
            "--set",
            "model.block_size=128",
        ],
    );
    wait_for_steps(&dir.join("r"), 1);
    signal(child.id(), "INT");
    std::thread::sleep(Duration::from_millis(20));
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "the second signal exits with 130 at once");
}

/// Kills training with SIGKILL at random moments, resumes each time, and checks that the
/// finished run is bit-identical to an uninterrupted one.
#[test]
fn ten_kills_and_resumes_end_exactly_where_an_uninterrupted_run_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let settings = [
        "--set",
        "model.d_model=64",
        "--set",
        "model.block_size=64",
        "--set",
        "train.batch_size=16",
        "--set",
        "train.max_steps=150",
        "--set",
        "train.checkpoint_interval=5",
        "--set",
        "train.eval_interval=25",
        "--set",
        "train.log_interval=1",
    ];
    let start = |out: &'static str| {
        let mut a = vec!["train", "--config", "nano.toml", "--out", out];
        a.extend(settings);
        a
    };
    ok(dir, &start("straight"));

    // A small deterministic generator for the kill delays.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next_delay = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Duration::from_millis(40 + x % 700)
    };
    let (mut kills, mut attempts) = (0, 0);
    let mut first = true;
    while kills < 10 {
        attempts += 1;
        assert!(attempts < 60, "could not land 10 kills in 60 attempts");
        let has_checkpoint = !first && ember_train_checkpoints(&dir.join("killed"));
        let args: Vec<&str> = if has_checkpoint {
            vec!["train", "--resume", "killed"]
        } else {
            let mut a = start("killed");
            a.push("--overwrite");
            a
        };
        first = false;
        let mut child = spawn(dir, &args);
        std::thread::sleep(next_delay());
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
        } else {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            if metrics(&dir.join("killed")).last().is_some_and(|m| m["step"] == 150) {
                // Finished before the kill: start over to land the remaining kills.
                first = true;
            }
        }
    }
    // The last kill may have landed on a new start before its first checkpoint.
    let finish: Vec<&str> = if ember_train_checkpoints(&dir.join("killed")) {
        vec!["train", "--resume", "killed"]
    } else {
        let mut a = start("killed");
        a.push("--overwrite");
        a
    };
    ok(dir, &finish);

    for f in ["model.safetensors", "optimizer.safetensors"] {
        let p = |run: &str| dir.join(run).join("checkpoints/step-00000150").join(f);
        assert!(
            bytes(&p("straight")) == bytes(&p("killed")),
            "{f} differs after {kills} kills"
        );
    }
    let (a, b) = (metrics(&dir.join("straight")), metrics(&dir.join("killed")));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for key in ["step", "train_loss", "grad_norm", "val_loss"] {
            assert_eq!(x.get(key), y.get(key), "{key} at step {}", x["step"]);
        }
    }
    let leftovers: Vec<_> = fs::read_dir(dir.join("killed/checkpoints"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary checkpoint directories left: {leftovers:?}"
    );
}

fn ember_train_checkpoints(run: &Path) -> bool {
    fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("step-"))
        })
        .unwrap_or(false)
}

#[test]
fn a_damaged_checkpoint_is_named_with_the_previous_good_one() {
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
            "train.max_steps=20",
            "--set",
            "train.checkpoint_interval=10",
        ],
    );
    let model = dir.join("r/checkpoints/step-00000020/model.safetensors");
    let mut b = bytes(&model);
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    fs::write(&model, &b).unwrap();
    for args in [
        vec!["train", "--resume", "r"],
        vec!["eval", "--run", "r"],
        vec!["sample", "--run", "r"],
    ] {
        let line = fails(dir, &args);
        assert!(
            line.contains("model.safetensors is damaged: its SHA-256"),
            "{args:?}: {line}"
        );
        assert!(
            line.contains("the newest good checkpoint is step 10: pass --checkpoint 10"),
            "{args:?}: {line}"
        );
    }
    assert_eq!(bytes(&model), b, "the damaged file is left for inspection");
    ok(dir, &["eval", "--run", "r", "--checkpoint", "10"]);
    fs::write(&model, &b[..100]).unwrap();
    let line = fails(dir, &["eval", "--run", "r"]);
    assert!(line.contains("100 bytes where the manifest records"), "{line}");
}

#[test]
fn a_checkpoint_is_never_used_with_another_tokenizer() {
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
    fs::write(
        dir.join("r/tokenizer.json"),
        r#"{"ember_char_tokenizer":1,"vocab":"abc"}"#,
    )
    .unwrap();
    for args in [vec!["eval", "--run", "r"], vec!["train", "--resume", "r"]] {
        let line = fails(dir, &args);
        assert!(line.contains("another tokenizer"), "{args:?}: {line}");
    }
}

#[test]
fn divergence_stops_at_its_step_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let o = ember(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "r",
            "--set",
            "train.lr=1e30",
            "--set",
            "train.min_lr=0",
            "--set",
            "train.grad_clip=0",
            "--set",
            "train.warmup_steps=0",
            "--set",
            "train.checkpoint_interval=1",
        ],
    );
    let err = stderr(&o);
    assert!(!o.status.success());
    let line = err.lines().rev().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        line.contains("training diverged at step") && (line.contains("is NaN") || line.contains("is inf")),
        "{line}"
    );
    let step: u64 = line
        .split("at step ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Every checkpoint left is from before the divergence and loads.
    let last = fs::read_dir(dir.join("r/checkpoints"))
        .unwrap()
        .filter_map(|e| e.ok())
        .count();
    assert!(last >= 1);
    assert!(!dir.join(format!("r/checkpoints/step-{step:08}")).exists());
    ok(dir, &["eval", "--run", "r", "--checkpoint", &(step - 1).to_string()]);
}

#[test]
fn a_full_disk_while_saving_leaves_the_old_checkpoints_intact() {
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
            "train.max_steps=10",
            "--set",
            "train.checkpoint_interval=5",
        ],
    );
    let before = bytes(&dir.join("r/checkpoints/step-00000010/optimizer.safetensors"));
    // A 150 KiB file-size limit: the optimiser state (≈ 220 KB) cannot be written.
    let o = Command::new("bash")
        .args([
            "-c",
            &format!(
                "ulimit -f 150; exec {} train --resume r --set train.max_steps=20",
                env!("CARGO_BIN_EXE_ember")
            ),
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success());
    let line = err
        .lines()
        .rev() // the last: graphics drivers may print their own "error: …" lines first
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("optimizer.safetensors") && line.contains("too large"),
        "{line}"
    );
    assert_eq!(
        bytes(&dir.join("r/checkpoints/step-00000010/optimizer.safetensors")),
        before
    );
    let names: Vec<String> = fs::read_dir(dir.join("r/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".tmp")),
        "partial checkpoint left: {names:?}"
    );
    ok(dir, &["train", "--resume", "r", "--set", "train.max_steps=20"]);
}

#[test]
fn bad_data_files_are_named_and_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    fs::write(dir.join("empty.txt"), "").unwrap();
    fs::write(dir.join("binary.txt"), [0x7f, b'E', b'L', b'F', 0, 1]).unwrap();
    fs::write(dir.join("latin1.txt"), b"caf\xe9\n").unwrap();
    fs::write(dir.join("short.txt"), "To be, or not to be, that is the question.\n").unwrap();
    fs::create_dir(dir.join("nothing")).unwrap();
    for (file, expected) in [
        ("empty.txt", "data file empty.txt is empty"),
        ("binary.txt", "a NUL byte at offset 4"),
        ("latin1.txt", "is not UTF-8 text (invalid UTF-8 at byte 3)"),
        (
            "short.txt",
            "the val split has 4 tokens, but one window of block_size + 1 = 33",
        ),
        ("nothing", "directory nothing holds no .txt or .jsonl files"),
    ] {
        let line = fails(
            dir,
            &["train", "--config", "nano.toml", "--set", &format!("data.path={file}")],
        );
        assert!(line.contains(expected), "{file}: {line}");
    }
    assert!(!dir.join("runs").exists(), "a failed start leaves no run behind");
}

#[test]
fn a_directory_of_text_files_and_a_bpe_tokenizer_train() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let text = fs::read_to_string(corpus()).unwrap();
    fs::create_dir(dir.join("plays")).unwrap();
    let (a, b) = text.split_at(text.len() / 2);
    fs::write(dir.join("plays/a.txt"), a).unwrap();
    fs::write(dir.join("plays/b.txt"), b).unwrap();
    let set = |kv: &'static str| ["--set", kv];
    let mut args = vec!["train", "--config", "nano.toml", "--out", "bpe"];
    for kv in [
        "data.path=plays",
        "data.tokenizer=bpe",
        "data.vocab_size=400",
        "train.max_steps=20",
    ] {
        args.extend(set(kv));
    }
    ok(dir, &args);
    let e: serde_json::Value =
        serde_json::from_str(stdout(&ok(dir, &["eval", "--run", "bpe", "--json"])).trim()).unwrap();
    let (bpt, bpc) = (
        e["bits_per_token"].as_f64().unwrap(),
        e["bits_per_char"].as_f64().unwrap(),
    );
    assert!(
        bpc < bpt * 0.7,
        "BPE tokens span several characters: {bpt} bits/token, {bpc} bits/char"
    );
    let s = stdout(&ok(
        dir,
        &["sample", "--run", "bpe", "--max-new-tokens", "20", "--prompt", "KING:"],
    ));
    assert!(s.starts_with("KING:"));
}

#[test]
fn prompts_and_sampling_options_are_checked() {
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
    let long = "So shaken as we are, so wan with care, find we a time for frighted peace to pant.";
    let o = ok(
        dir,
        &["sample", "--run", "r", "--prompt", long, "--max-new-tokens", "5"],
    );
    assert!(
        stderr(&o).contains("only its last 32 fit the model's context"),
        "{}",
        stderr(&o)
    );
    for (args, expected) in [
        (
            vec!["sample", "--run", "r", "--top-p", "2"],
            "top-p = 2: must be in (0, 1]",
        ),
        (vec!["sample", "--run", "r", "--top-k", "0"], "top-k = 0"),
        (vec!["sample", "--run", "r", "--prompt", ""], "--prompt is empty"),
        (
            vec!["sample", "--run", "r", "--prompt", "Ωmega"],
            "the prompt contains 1 character(s) outside",
        ),
        (vec!["eval", "--run", "r", "--batch-size", "0"], "--batch-size 0"),
        (
            vec!["eval", "--run", "r", "--checkpoint", "soon"],
            "\"soon\" is not latest, best or a step number",
        ),
        (
            vec!["eval", "--run", "r", "--checkpoint", "7"],
            "has no checkpoint at step 7; available: 0, 2",
        ),
        (vec!["eval", "--run", "r", "--text", "absent.txt"], "absent.txt"),
    ] {
        let line = fails(dir, &args);
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}
