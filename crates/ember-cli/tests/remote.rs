//! Multi-node training through Burn's remote backend, with the "nodes" on this machine: two
//! `ember serve` processes lend a CPU device each over WebSocket, and one `ember train
//! --devices ws://…,ws://…` trains data-parallel on them. The losses must be those of the same
//! data parallelism on two local CPU devices (and so of gradient accumulation; cli.rs).
#![cfg(feature = "remote")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

mod common;

use common::*;

/// An `ember serve` on a free port, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path, token: Option<&str>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
        cmd.args(["serve", "--device", "cpu", "--port", "0"])
            .current_dir(dir)
            .env_remove("EMBER_REMOTE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        let mut child = cmd.spawn().expect("ember serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "ember serve: cpu on ws://127.0.0.1:PORT (…; unencrypted WebSocket: …)"
        assert!(line.contains("unencrypted"), "{line}");
        let port = line
            .split("ws://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Server {
            child,
            url: format!("ws://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const STEPS: [&str; 10] = [
    "--set",
    "train.max_steps=6",
    "--set",
    "train.warmup_steps=2",
    "--set",
    "train.eval_interval=6",
    "--set",
    "train.eval_iters=2",
    "--set",
    "train.checkpoint_interval=6",
];

fn train_on(dir: &Path, out: &str, devices: &str, token: Option<&str>) -> std::process::Output {
    let mut args = vec![
        "train",
        "--config",
        "nano.toml",
        "--out",
        out,
        "--devices",
        devices,
        "--set",
        "train.batch_size=8",
    ];
    args.extend(STEPS);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
    cmd.args(&args).current_dir(dir).env_remove("EMBER_REMOTE_TOKEN");
    if let Some(t) = token {
        cmd.env("EMBER_REMOTE_TOKEN", t);
    }
    cmd.output().expect("ember runs")
}

#[test]
fn training_on_two_remote_servers_equals_training_on_two_local_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let (a, b) = (Server::start(dir, Some("s3cret")), Server::start(dir, Some("s3cret")));
    let remote = train_on(dir, "remote", &format!("{},{}", a.url, b.url), Some("s3cret"));
    assert!(remote.status.success(), "{}", stderr(&remote));
    assert!(
        stderr(&remote).contains("data-parallel over 2 devices"),
        "{}",
        stderr(&remote)
    );
    let local = train_on(dir, "local", "cpu,cpu", None);
    assert!(local.status.success(), "{}", stderr(&local));
    let (r, l) = (metrics(&dir.join("remote")), metrics(&dir.join("local")));
    assert_eq!(r.len(), 6);
    assert_eq!(r.len(), l.len());
    for (x, y) in r.iter().zip(&l) {
        let (lx, ly) = (x["train_loss"].as_f64().unwrap(), y["train_loss"].as_f64().unwrap());
        assert!((lx - ly).abs() < 1e-4, "step {}: remote {lx} vs local {ly}", x["step"]);
    }
    let (vx, vy) = (r[5]["val_loss"].as_f64().unwrap(), l[5]["val_loss"].as_f64().unwrap());
    assert!((vx - vy).abs() < 1e-4, "val loss: remote {vx} vs local {vy}");
    // The run's checkpoint was read back from the servers and evaluates locally.
    ok(dir, &["eval", "--run", "remote", "--json"]);

    // A client without the servers' token is refused, with a message that says what to check.
    let refused = train_on(dir, "refused", &format!("{},{}", a.url, b.url), Some("wrong"));
    assert!(!refused.status.success());
    let line = stderr(&refused);
    assert!(
        line.contains("cannot connect to ws://127.0.0.1:") && line.contains("EMBER_REMOTE_TOKEN"),
        "{line}"
    );
}

#[test]
fn a_server_that_is_not_running_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    // Ports nobody listens on: bind two, read their numbers, and close them.
    let free = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (port, other) = (free(), free());
    let devices = format!("ws://127.0.0.1:{port},ws://127.0.0.1:{other}");
    let o = train_on(dir, "none", &devices, None);
    assert!(!o.status.success());
    let line = stderr(&o);
    assert!(
        line.contains(&format!("cannot connect to ws://127.0.0.1:{port}")) && line.contains("ember serve"),
        "{line}"
    );
    assert!(
        !dir.join("none/checkpoints").exists(),
        "nothing trained, nothing written"
    );
}

#[test]
fn a_server_listens_on_this_machine_only_unless_told_and_then_needs_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let serve = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
        cmd.args(["serve", "--device", "cpu", "--port", "0"])
            .args(args)
            .current_dir(dir)
            .env_remove("EMBER_REMOTE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    // The default: loopback, said so, with the warning about encryption.
    let server = Server::start(dir, None);
    assert!(server.url.starts_with("ws://127.0.0.1:"));
    drop(server);
    // Every interface without a token: refused, before anything listens.
    for open in ["0.0.0.0", "::"] {
        let o = serve(&["--bind", open]).output().unwrap();
        assert!(!o.status.success());
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&format!("--bind {open}")) && err.contains("--token"),
            "{err}"
        );
    }
    let o = serve(&["--bind", "example.org"]).output().unwrap();
    assert!(stderr(&o).contains("not an IP address"), "{}", stderr(&o));
    // With a token it listens on every interface and says a token is required.
    let mut child = serve(&["--bind", "0.0.0.0", "--token", "t0ken"]).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains("ws://0.0.0.0:") && line.contains("token required") && line.contains("unencrypted"),
        "{line}"
    );
}
