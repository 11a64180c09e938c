//! Helpers shared by the integration tests: run the real `ember` binary in a temporary
//! directory and inspect what it wrote.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The tiny-shakespeare corpus: `EMBER_TEST_CORPUS`, else `data/tinyshakespeare.txt` in the
/// workspace. `scripts/test.sh` fetches it first.
pub fn corpus() -> PathBuf {
    if let Ok(p) = std::env::var("EMBER_TEST_CORPUS") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/tinyshakespeare.txt");
    assert!(
        p.exists(),
        "these tests train on tiny-shakespeare: run scripts/get-data.sh first (or the suite through scripts/test.sh)"
    );
    p
}

pub fn ember(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("ember runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs ember and asserts success.
pub fn ok(dir: &Path, args: &[&str]) -> Output {
    let o = ember(dir, args);
    assert!(o.status.success(), "ember {args:?} failed:\n{}", stderr(&o));
    o
}

/// Runs ember and asserts a one-line `error: …` and a non-zero exit code, with no panic.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let o = ember(dir, args);
    let err = stderr(&o);
    assert!(!o.status.success(), "ember {args:?} should fail");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "ember {args:?} panicked:\n{err}"
    );
    let line = err
        .lines()
        .rev() // the last: graphics drivers may print their own "error: …" lines first
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{err}"));
    line.to_string()
}

/// A nano config reading the test corpus.
pub fn nano_config(dir: &Path, extra: &str) -> PathBuf {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/nano.toml")).unwrap();
    let text = text.replace(
        "path = \"data/tinyshakespeare.txt\"",
        &format!("path = {:?}", corpus().display().to_string()),
    );
    let path = dir.join("nano.toml");
    fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

pub fn metrics(run: &Path) -> Vec<Value> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn bytes(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()
}

/// Starts ember in the background.
pub fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ember starts")
}

/// Sends a signal (by name, e.g. "INT") to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits until `run`'s metrics.jsonl has at least `n` lines.
pub fn wait_for_steps(run: &Path, n: usize) {
    for _ in 0..3000 {
        if let Ok(text) = fs::read_to_string(run.join("metrics.jsonl"))
            && text.lines().count() >= n
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} never reached {n} logged steps", run.display());
}
