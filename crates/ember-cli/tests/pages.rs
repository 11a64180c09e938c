//! The pages `ember attention` and `ember report` write, opened in headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) and driven through its DevTools protocol as a user
//! would: each page loads without a console error, its screenshot is not blank, and clicking,
//! choosing and hovering change what it shows. Without Chromium these tests fail; they never
//! skip. `EMBER_CHROMIUM` names another browser binary.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A headless Chromium with one page, spoken to over the DevTools protocol.
struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    session: Option<String>,
    /// Every event received, in order.
    events: Vec<Value>,
}

fn chromium() -> PathBuf {
    if let Ok(p) = std::env::var("EMBER_CHROMIUM") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from("/usr/bin/chromium");
    assert!(
        p.exists(),
        "these tests render the pages in Chromium: apt-get install chromium (as .ci/run does), or set EMBER_CHROMIUM"
    );
    p
}

impl Browser {
    fn launch(profile: &Path) -> Self {
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1400,1000",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // Chromium prints the browser's DevTools address on stderr.
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("chromium printed its DevTools address")
                .expect("stderr line");
            if let Some(at) = line.find("ws://") {
                break line[at..].trim().to_string();
            }
        };
        // Keep draining stderr so that Chromium never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let (ws, _) = tungstenite::connect(url.as_str()).expect("DevTools connection");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        Self {
            child,
            ws,
            next_id: 0,
            session: None,
            events: Vec::new(),
        }
    }

    /// Sends a command (to the page, once one is open) and waits for its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).expect("send");
        loop {
            let reply = self.read();
            if reply["id"] == json!(id) {
                assert!(reply.get("error").is_none(), "{method}: {}", reply["error"]);
                return reply["result"].clone();
            }
            self.events.push(reply);
        }
    }

    fn read(&mut self) -> Value {
        match self.ws.read().expect("a DevTools message") {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON"),
            other => panic!("unexpected DevTools message {other:?}"),
        }
    }

    /// Opens `path` in a new page and waits until it has loaded.
    fn open(&mut self, path: &Path) {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        self.session = Some(attached["sessionId"].as_str().expect("session").to_string());
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(domain, json!({}));
        }
        self.events.clear();
        self.call("Page.navigate", json!({ "url": format!("file://{}", path.display()) }));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.events.iter().any(|e| e["method"] == "Page.loadEventFired") {
            assert!(Instant::now() < deadline, "the page did not load");
            let e = self.read();
            self.events.push(e);
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expression}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// The centre of the element `selector` selects, in page coordinates (scrolled into view).
    fn centre(&mut self, selector: &str) -> (f64, f64) {
        let r = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); e.scrollIntoView({{block: 'center'}}); \
             const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        (r[0].as_f64().unwrap(), r[1].as_f64().unwrap())
    }

    /// A real mouse click (move, press, release) at page coordinates.
    fn click(&mut self, (x, y): (f64, f64)) {
        for (kind, count) in [("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 1)] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": count }),
            );
        }
    }

    fn hover(&mut self, (x, y): (f64, f64)) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": "mouseMoved", "x": x, "y": y }),
        );
    }

    /// A screenshot of the viewport, decoded: (width, height, RGBA).
    fn screenshot(&mut self) -> (u32, u32, Vec<u8>) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("data"))
            .expect("base64");
        decode_png(&png)
    }

    /// Console errors and uncaught exceptions so far.
    fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| {
                e["method"] == "Runtime.exceptionThrown"
                    || (e["method"] == "Runtime.consoleAPICalled" && e["params"]["type"] == "error")
                    || (e["method"] == "Log.entryAdded" && e["params"]["entry"]["level"] == "error")
            })
            .map(|e| e["params"].to_string())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    let rgba = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| [p[0], p[1 % channels], p[2 % channels], 255])
        .collect();
    (info.width, info.height, rgba)
}

/// Asserts an image is a real picture: many colours, and a share of non-white pixels (line
/// charts ink less than heatmaps).
fn assert_not_blank(what: &str, (w, h, rgba): &(u32, u32, Vec<u8>), min_share: f64) {
    let pixels: Vec<&[u8]> = rgba.chunks(4).collect();
    let inked = pixels.iter().filter(|p| p[0] < 235 || p[1] < 235 || p[2] < 235).count();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    let share = inked as f64 / pixels.len() as f64;
    assert!(
        share > min_share && colours.len() > 100,
        "{what} ({w}×{h}) looks blank: {share:.3} inked, {} colours",
        colours.len()
    );
}

/// A nano run with a sliding window on layer 0, grouped-query attention (one key/value head
/// for two query heads), and four kept checkpoints.
fn trained_run(dir: &Path) -> PathBuf {
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
            "model.attention=sliding_window",
            "--set",
            "model.window=8",
            "--set",
            "model.window_pattern=SL",
            "--set",
            "model.n_kv_head=1",
            "--set",
            "train.max_steps=60",
            "--set",
            "train.checkpoint_interval=20",
            "--set",
            "train.eval_interval=20",
            "--set",
            "train.keep_last=5",
        ],
    );
    run
}

#[test]
fn the_attention_explorer_renders_and_responds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = trained_run(dir);
    let page = dir.join("attention.html");
    let picture = dir.join("attention.png");
    ok(
        dir,
        &[
            "attention",
            "--run",
            run.to_str().unwrap(),
            "--prompt",
            "First Citizen:\nBefore we proceed any further",
            "--out",
            page.to_str().unwrap(),
            "--png",
            picture.to_str().unwrap(),
        ],
    );
    assert_not_blank("the attention PNG", &decode_png(&bytes(&picture)), 0.2);

    let mut b = Browser::launch(&dir.join("profile"));
    b.open(&page);
    assert_not_blank("the explorer's screenshot", &b.screenshot(), 0.1);
    assert_eq!(b.eval("document.getElementById('ckpt-out').textContent"), "step 60");
    assert_eq!(
        b.eval("document.querySelectorAll('#grid canvas').length"),
        4,
        "2 layers × 2 heads"
    );
    assert_eq!(
        b.eval("document.getElementById('focus-title').textContent"),
        "Layer 0, head 0"
    );
    let note = b.eval("document.getElementById('focus-note').textContent").to_string();
    assert!(
        note.contains("Sliding window") && note.contains("key/value head 0"),
        "{note}"
    );
    // Layer 0 has a window of 8: query 20 cannot see key 2, drawn in the masked grey; it sees 15.
    let pixel = |b: &mut Browser, i: u32, j: u32| {
        b.eval(&format!(
            "(() => {{ const c = document.getElementById('big'), s = c.width / DATA.seq; \
             return Array.from(c.getContext('2d').getImageData(Math.floor(({j} + 0.5) * s), Math.floor(({i} + 0.5) * s), 1, 1).data); }})()"
        ))
    };
    assert_eq!(
        pixel(&mut b, 20, 2),
        json!([233, 236, 241, 255]),
        "outside the window: masked"
    );
    assert_ne!(
        pixel(&mut b, 20, 15),
        json!([233, 236, 241, 255]),
        "inside the window: a weight"
    );
    let before = b.eval("document.getElementById('big').toDataURL()");

    // Click layer 1, head 1 in the grid: the large view shows it.
    let cell = b.centre("#grid .cell[data-layer='1'][data-head='1'] canvas");
    b.click(cell);
    assert_eq!(
        b.eval("document.getElementById('focus-title').textContent"),
        "Layer 1, head 1"
    );
    assert_ne!(
        b.eval("document.getElementById('big').toDataURL()"),
        before,
        "the view changed"
    );
    assert_ne!(
        pixel(&mut b, 20, 2),
        json!([233, 236, 241, 255]),
        "layer 1 attends over everything: no mask"
    );

    // Another checkpoint, through the slider: the heads of step 0 are another picture.
    let after_click = b.eval("document.getElementById('big').toDataURL()");
    b.eval(
        "(() => { const s = document.getElementById('ckpt'); s.value = 0; s.dispatchEvent(new Event('input')); })()",
    );
    assert_eq!(b.eval("document.getElementById('ckpt-out').textContent"), "step 0");
    assert_ne!(b.eval("document.getElementById('big').toDataURL()"), after_click);

    // Hovering a token shows where it looks; the temperature reshapes the next-token bars.
    let token = b.centre("#text .tok:nth-of-type(10)");
    b.hover(token);
    let top = b.eval("document.getElementById('topkeys').textContent").to_string();
    assert!(top.contains("query 9"), "{top}");
    let greedy = b.eval("(() => { const t = document.getElementById('temp'); t.value = 0; t.dispatchEvent(new Event('input')); return document.querySelector('#bars .row > span:last-child').textContent; })()");
    assert_eq!(greedy, "100.0%");
    let errors = b.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[test]
fn the_report_renders_and_responds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = trained_run(dir);
    let page = dir.join("report.html");
    let picture = dir.join("report.png");
    ok(
        dir,
        &[
            "report",
            "--run",
            run.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
            "--out",
            page.to_str().unwrap(),
            "--png",
            picture.to_str().unwrap(),
            "--sample-tokens",
            "40",
        ],
    );
    assert_not_blank("the report PNG", &decode_png(&bytes(&picture)), 0.02);

    let mut b = Browser::launch(&dir.join("profile"));
    b.open(&page);
    assert_not_blank("the report's screenshot", &b.screenshot(), 0.02);
    assert_eq!(b.eval("document.querySelectorAll('#charts svg').length"), 5);
    assert!(
        b.eval("document.getElementById('details').textContent")
            .to_string()
            .contains("step 60")
    );
    let axis = "Array.from(document.querySelectorAll('#charts svg .axis text')).map(t => t.textContent).join('|')";
    assert!(b.eval(axis).to_string().contains("|step"));
    // Choose another x axis: the charts are drawn again against tokens.
    b.eval("(() => { const s = document.getElementById('xaxis'); s.value = 'tokens'; s.dispatchEvent(new Event('input')); })()");
    assert!(b.eval(axis).to_string().contains("tokens seen"));
    // Hovering a chart reads out every run's value there.
    let chart = b.centre("#charts .chart svg");
    b.hover(chart);
    let readout = b
        .eval("document.querySelector('#charts .chart .readout').textContent")
        .to_string();
    assert!(readout.contains("train"), "{readout}");
    let errors = b.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
