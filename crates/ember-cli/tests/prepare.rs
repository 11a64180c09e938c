//! `ember prepare` end to end: a corpus of many files in every format into a sharded dataset,
//! training and resuming on it, and the input it refuses.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::Value;

mod common;

use common::*;

/// tiny-shakespeare as a corpus of four formats: two plain-text "books", one gzip-compressed,
/// and speeches as JSONL records, plain and zstd-compressed.
fn many_formats(dir: &Path) -> Vec<String> {
    let text = fs::read_to_string(corpus()).unwrap();
    let n = text.len();
    let cut = |f: f64| {
        let mut i = (n as f64 * f) as usize;
        while !text.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    let (a, b, c) = (cut(0.3), cut(0.6), cut(0.8));
    let root = dir.join("corpus");
    fs::create_dir_all(root.join("books")).unwrap();
    fs::create_dir_all(root.join("web")).unwrap();
    fs::write(root.join("books/1.txt"), &text[..a]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text[a..b].as_bytes()).unwrap();
    fs::write(root.join("books/2.txt.gz"), gz.finish().unwrap()).unwrap();
    let records = |s: &str| -> String {
        s.split("\n\n")
            .filter(|t| !t.is_empty())
            .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
            .collect()
    };
    fs::write(root.join("web/3.jsonl"), records(&text[b..c])).unwrap();
    let zst = ruzstd::encoding::compress_to_vec(
        records(&text[c..]).as_bytes(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    fs::write(root.join("web/4.jsonl.zst"), zst).unwrap();
    let mut docs = vec![text[..a].to_string(), text[a..b].to_string()];
    docs.extend(
        text[b..c]
            .split("\n\n")
            .chain(text[c..].split("\n\n"))
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    );
    docs
}

fn meta(dataset: &Path) -> Value {
    serde_json::from_slice(&fs::read(dataset.join("meta.json")).unwrap()).unwrap()
}

#[test]
fn a_prepared_dataset_of_many_formats_trains_resumes_bit_for_bit_and_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let docs = many_formats(dir);
    let prep = ok(
        dir,
        &[
            "prepare",
            "--config",
            "nano.toml",
            "--set",
            "data.path=corpus",
            "--set",
            "data.shard_tokens=1024",
            "--out",
            "ds",
        ],
    );
    let out = stdout(&prep);
    assert!(
        out.contains(&format!("4 files, 1.1 MB of text, {} documents", docs.len())),
        "{out}"
    );
    assert!(out.contains("end-of-text id 65 after every document"), "{out}");
    let m = meta(&dir.join("ds"));
    assert!(m["train"]["shards"].as_array().unwrap().len() >= 9, "{}", m["train"]);
    // Every tenth document is validation; both splits end each document with the EOS id.
    let val_docs = (0..docs.len()).filter(|i| (i + 1) / 10 > i / 10).count() as u64;
    assert_eq!(m["val"]["documents"].as_u64().unwrap(), val_docs);
    let chars: usize = docs.iter().map(|d| d.chars().count()).sum();
    let (train, val) = (
        m["train"]["tokens"].as_u64().unwrap(),
        m["val"]["tokens"].as_u64().unwrap(),
    );
    assert_eq!((train + val) as usize, chars + docs.len());
    let info = stdout(&ok(dir, &["info", "--config", "nano.toml", "--set", "data.path=ds"]));
    assert!(
        info.contains(&format!("dataset     ds: {train} train + {val} val tokens")),
        "{info}"
    );
    assert!(
        info.contains("vocabulary  66 (the prepared dataset's tokenizer)"),
        "{info}"
    );

    // Straight to step 30, and to 15 then resumed: the same model to the bit, the batches
    // drawn across shard boundaries alike.
    let common = [
        "--set",
        "data.path=ds",
        "--set",
        "train.max_steps=30",
        "--set",
        "train.checkpoint_interval=15",
        "--set",
        "train.eval_interval=15",
    ];
    let mut straight = vec!["train", "--config", "nano.toml", "--out", "straight"];
    straight.extend(common);
    ok(dir, &straight);
    let mut part = vec![
        "train",
        "--config",
        "nano.toml",
        "--out",
        "resumed",
        "--until-step",
        "15",
    ];
    part.extend(common);
    ok(dir, &part);
    ok(dir, &["train", "--resume", "resumed"]);
    let ck = |run: &str| dir.join(run).join("checkpoints/step-00000030/model.safetensors");
    assert!(
        bytes(&ck("straight")) == bytes(&ck("resumed")),
        "the resumed model differs"
    );
    assert!(dir.join("straight/dataset.json").is_file() && !dir.join("straight/tokens").exists());
    let e: Value = serde_json::from_str(stdout(&ok(dir, &["eval", "--run", "straight", "--json"])).trim()).unwrap();
    assert_eq!(e["tokens"].as_u64().unwrap(), val - 1);

    // The dataset prepared again (another tokenizer) is refused by the run that began on it.
    ok(
        dir,
        &[
            "prepare",
            "--config",
            "nano.toml",
            "--set",
            "data.path=corpus",
            "--set",
            "data.tokenizer=bpe",
            "--set",
            "data.vocab_size=300",
            "--out",
            "ds",
            "--overwrite",
        ],
    );
    let before = fs::read_dir(dir.join("straight/checkpoints")).unwrap().count();
    let line = fails(dir, &["train", "--resume", "straight", "--set", "train.max_steps=40"]);
    assert!(
        line.contains("ds") && line.contains("prepared again since this run started"),
        "{line}"
    );
    assert_eq!(fs::read_dir(dir.join("straight/checkpoints")).unwrap().count(), before);
}

#[test]
fn bad_corpus_files_and_output_paths_get_one_line_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    many_formats(dir);
    let prepare = |extra: &[&str]| {
        let mut args = vec!["prepare", "--config", "nano.toml", "--set", "data.path=corpus"];
        args.extend(extra);
        if !extra.contains(&"--out") {
            args.extend(["--out", "ds"]);
        }
        fails(dir, &args)
    };
    let gz = dir.join("corpus/books/2.txt.gz");
    let good = fs::read(&gz).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid..mid + 8].fill(0xff);
    fs::write(&gz, &bad).unwrap();
    let line = prepare(&[]);
    assert!(
        line.contains("2.txt.gz") && line.contains("corrupt gzip stream"),
        "{line}"
    );
    assert!(!dir.join("ds").exists() && !dir.join("ds.partial").exists());
    fs::write(&gz, &good).unwrap();
    fs::write(
        dir.join("corpus/web/5.jsonl"),
        "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n",
    )
    .unwrap();
    let line = prepare(&[]);
    assert!(
        line.contains("5.jsonl line 2: the record has no \"text\" field"),
        "{line}"
    );
    let line = prepare(&["--set", "data.text_field=body"]);
    assert!(
        line.contains("3.jsonl line 1: the record has no \"body\" field"),
        "{line}"
    );
    fs::remove_file(dir.join("corpus/web/5.jsonl")).unwrap();
    fs::write(dir.join("corpus/books/0.txt"), [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
    let line = prepare(&[]);
    assert!(
        line.contains("0.txt") && line.contains("looks like a binary file"),
        "{line}"
    );
    fs::remove_file(dir.join("corpus/books/0.txt")).unwrap();
    // Output paths: a file, a directory of other things, a dataset without --overwrite.
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let line = prepare(&["--out", "notes.txt"]);
    assert!(line.contains("notes.txt is not a directory"), "{line}");
    assert_eq!(fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    let line = prepare(&["--out", "corpus"]);
    assert!(line.contains("not an ember dataset"), "{line}");
    ok(
        dir,
        &[
            "prepare",
            "--config",
            "nano.toml",
            "--set",
            "data.path=corpus",
            "--out",
            "ds",
        ],
    );
    let line = prepare(&[]);
    assert!(
        line.contains("already holds a prepared dataset; pass --overwrite"),
        "{line}"
    );
    let line = fails(dir, &["prepare", "--config", "nano.toml", "--set", "data.path=ds"]);
    assert!(
        line.contains("is already a prepared dataset; train on it directly"),
        "{line}"
    );
    // Without --out, the dataset goes beside the corpus.
    ok(
        dir,
        &[
            "prepare",
            "--config",
            "nano.toml",
            "--set",
            "data.path=corpus/books/1.txt",
        ],
    );
    assert!(dir.join("corpus/books/1.tokens/meta.json").is_file());
}
