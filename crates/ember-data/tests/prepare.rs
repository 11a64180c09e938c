//! `ember prepare`'s pipeline on small corpora: shards, end-of-text ids, whole validation
//! documents, ids equal to Hugging Face `tokenizers`' own, and the input it refuses.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ember_data::dataset::{DataConfig, Inputs, TokenizerKind, open_dataset};
use ember_data::prepare::{Options, Quiet, prepare};
use ember_data::tokenizer::{BpeTokenizer, CharTokenizer, Tokenizer};
/// Varied lines: trailing spaces, indentation, blank lines, so that pieces are cut among
/// all the shapes byte-level BPE's pre-tokenizer cares about.
fn text(n: usize, seed: usize) -> String {
    let words = ["the", "king", "speaks", "and", "all", "hear", "him", "now", "é", "☕"];
    let mut out = String::new();
    for i in 0..n {
        let k = (i * 7 + seed * 13) % words.len();
        match i % 5 {
            0 => out.push_str(&format!("{} {} {i}.\n", words[k], words[(k + 3) % 10])),
            1 => out.push_str(&format!("  {} {} \n", words[(k + 1) % 10], words[k])),
            2 => out.push_str("\n"),
            3 => out.push_str(&format!("{}, {}!\n", words[k].to_uppercase(), words[(k + 5) % 10])),
            _ => out.push_str(&format!("\t{}'s {}\n", words[(k + 2) % 10], words[(k + 4) % 10])),
        }
    }
    out
}

fn config(path: impl Into<Inputs>) -> DataConfig {
    DataConfig {
        path: path.into(),
        shard_tokens: 1024,
        ..DataConfig::default()
    }
}

fn options() -> Options<'static> {
    Options {
        tokenizer: None,
        overwrite: false,
        watch: &Quiet,
    }
}

fn all(tokens: &ember_data::Tokens) -> Vec<u32> {
    let mut out = Vec::new();
    tokens.extend_window(0, tokens.len(), &mut out);
    out
}

/// A GPT-2-style tokenizer.json (byte-level BPE with `<|endoftext|>`), as a user brings one.
fn tokenizer_file(dir: &Path) -> PathBuf {
    let bpe = BpeTokenizer::train_on([text(3000, 9).as_str()].into_iter(), 400, Some("<|endoftext|>")).unwrap();
    let path = dir.join("gpt2-like.json");
    fs::write(&path, bpe.to_json()).unwrap();
    path
}

#[test]
fn many_documents_become_shards_with_end_of_text_ids_and_whole_validation_documents() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    fs::create_dir_all(corpus.join("books")).unwrap();
    // Documents in reading order: 11 text files (one longer than a piece), then JSONL
    // records from a gzip and a zstd file.
    let mut docs = Vec::new();
    for i in 0..11 {
        let t = text(if i == 4 { 40_000 } else { 50 + i * 10 }, i);
        fs::write(corpus.join(format!("books/{i:02}.txt")), &t).unwrap();
        docs.push(t);
    }
    let records: Vec<String> = (0..6).map(|i| text(30, 100 + i)).collect();
    let jsonl: String = records[..3]
        .iter()
        .map(|t| format!("{}\n", serde_json::json!({ "text": t, "id": 1 })))
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(jsonl.as_bytes()).unwrap();
    fs::write(corpus.join("c.jsonl.gz"), gz.finish().unwrap()).unwrap();
    let jsonl: String = records[3..]
        .iter()
        .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
        .collect();
    let zst = ruzstd::encoding::compress_to_vec(jsonl.as_bytes(), ruzstd::encoding::CompressionLevel::Fastest);
    fs::write(corpus.join("d.jsonl.zst"), zst).unwrap();
    docs.extend(records);
    fs::write(corpus.join("README.md"), "not part of the corpus").unwrap();

    let tok_path = tokenizer_file(dir.path());
    let cfg = DataConfig {
        tokenizer: TokenizerKind::File(tok_path.clone()),
        ..config(corpus)
    };
    let out = dir.path().join("ds");
    let report = prepare(&cfg, &out, options()).unwrap();
    let meta = &report.meta;
    // What Hugging Face `tokenizers` gives for each whole document, then the EOS id.
    let hf = tokenizers::Tokenizer::from_file(&tok_path).unwrap();
    let eos = hf.token_to_id("<|endoftext|>").unwrap();
    assert_eq!(meta.eos_id, Some(eos));
    let (mut train, mut val, mut val_chars) = (Vec::new(), Vec::new(), 0);
    for (i, doc) in docs.iter().enumerate() {
        let ids = hf.encode(doc.as_str(), false).unwrap().get_ids().to_vec();
        let split = if i == 9 {
            val_chars += doc.chars().count();
            &mut val
        } else {
            &mut train
        };
        split.extend(ids);
        split.push(eos);
    }
    let data = open_dataset(&out, &out.join("tokenizer.json")).unwrap();
    assert_eq!(all(&data.train), train);
    assert_eq!(all(&data.val), val);
    assert_eq!((meta.train.documents, meta.val.documents), (16, 1));
    assert_eq!(meta.val_chars, val_chars);
    assert!(meta.train.shards.len() > 3, "{} shards", meta.train.shards.len());
    assert!(
        meta.train.shards[..meta.train.shards.len() - 1]
            .iter()
            .all(|s| s.tokens == 1024)
    );
    // A window across the first shard boundary reads both sides.
    let mut window = Vec::new();
    data.train.extend_window(1000, 50, &mut window);
    assert_eq!(window, &train[1000..1050]);
    assert_eq!(meta.sources.len(), 13);
    assert_eq!(meta.text_bytes as usize, docs.iter().map(|d| d.len()).sum::<usize>());
    assert!(!dir.path().join("ds.partial").exists());
}

#[test]
fn one_document_keeps_its_tail_for_validation_with_the_ids_of_the_whole_text() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("one.txt");
    let t = text(60_000, 1);
    fs::write(&corpus, &t).unwrap();
    for kind in [TokenizerKind::Char, TokenizerKind::Bpe] {
        let cfg = DataConfig {
            tokenizer: kind.clone(),
            vocab_size: 300,
            ..config(corpus.clone())
        };
        let out = dir.path().join(format!("ds-{kind}"));
        let meta = prepare(&cfg, &out, options()).unwrap().meta;
        let data = open_dataset(&out, &out.join("tokenizer.json")).unwrap();
        let whole = data.tokenizer.encode(&t, "t").unwrap();
        let n_val = (whole.len() as f64 * 0.1).round() as usize;
        let (train, val) = whole.split_at(whole.len() - n_val);
        assert_eq!(all(&data.train), train, "{kind}");
        assert_eq!(all(&data.val), val, "{kind}");
        assert_eq!(meta.eos_id, None);
        assert_eq!(meta.val_chars, data.tokenizer.decode(val).chars().count());
        assert!(meta.val_rule.contains("one document"), "{}", meta.val_rule);
        assert!(meta.val.shards.len() > 1 || kind == TokenizerKind::Bpe);
    }
    // The character tokenizer of the whole text, as training always had it.
    let data = open_dataset(&dir.path().join("ds-char"), &dir.path().join("ds-char/tokenizer.json")).unwrap();
    assert_eq!(
        data.tokenizer.fingerprint(),
        Tokenizer::Char(CharTokenizer::from_text(&t)).fingerprint()
    );
}

#[test]
fn too_few_documents_give_the_last_one_to_validation() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c");
    fs::create_dir(&corpus).unwrap();
    let docs: Vec<String> = (0..3).map(|i| text(200, i)).collect();
    for (i, d) in docs.iter().enumerate() {
        fs::write(corpus.join(format!("{i}.txt")), d).unwrap();
    }
    let out = dir.path().join("ds");
    let meta = prepare(&config(corpus), &out, options()).unwrap().meta;
    let data = open_dataset(&out, &out.join("tokenizer.json")).unwrap();
    let eos = meta.eos_id.expect("several documents");
    assert_eq!(eos as usize, data.tokenizer.vocab_size() - 1);
    let mut val = data.tokenizer.encode(&docs[2], "d").unwrap();
    val.push(eos);
    assert_eq!(all(&data.val), val);
    assert_eq!((meta.train.documents, meta.val.documents), (2, 1));
    assert_eq!(meta.val_chars, docs[2].chars().count());
    assert_eq!(data.tokenizer.decode(&[eos]), "<|endoftext|>");
}

#[test]
fn bad_input_stops_the_prepare_and_leaves_an_existing_dataset_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c");
    fs::create_dir(&corpus).unwrap();
    for i in 0..5 {
        fs::write(corpus.join(format!("{i}.txt")), text(100, i)).unwrap();
    }
    let out = dir.path().join("ds");
    prepare(&config(corpus.clone()), &out, options()).unwrap();
    let before = fs::read(out.join("meta.json")).unwrap();
    let again = || {
        prepare(
            &config(corpus.clone()),
            &out,
            Options {
                overwrite: true,
                ..options()
            },
        )
    };
    fs::write(corpus.join("3.txt"), [b'a', 0, 159, 146, 150]).unwrap();
    let msg = again().unwrap_err().to_string();
    assert!(msg.contains("3.txt") && msg.contains("binary"), "{msg}");
    fs::write(corpus.join("3.txt"), "fine").unwrap();
    fs::write(corpus.join("4.jsonl"), "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n").unwrap();
    let msg = again().unwrap_err().to_string();
    assert!(
        msg.contains("4.jsonl line 2: the record has no \"text\" field"),
        "{msg}"
    );
    fs::write(corpus.join("4.jsonl"), "{\"text\": \"a\"}\nnot json\n").unwrap();
    let msg = again().unwrap_err().to_string();
    assert!(msg.contains("4.jsonl line 2: not JSON"), "{msg}");
    fs::remove_file(corpus.join("4.jsonl")).unwrap();
    fs::write(corpus.join("5.txt.gz"), b"\x1f\x8b\x08\x00garbage").unwrap();
    let msg = again().unwrap_err().to_string();
    assert!(msg.contains("5.txt.gz") && msg.contains("corrupt gzip stream"), "{msg}");
    assert_eq!(
        fs::read(out.join("meta.json")).unwrap(),
        before,
        "the old dataset is untouched"
    );
    assert!(!dir.path().join("ds.partial").exists(), "nothing half-written is left");
    open_dataset(&out, &out.join("tokenizer.json")).unwrap();
    // Fixed, the corpus replaces the old dataset only with --overwrite.
    fs::remove_file(corpus.join("5.txt.gz")).unwrap();
    let msg = prepare(&config(corpus.clone()), &out, options())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("already holds a prepared dataset; pass --overwrite"),
        "{msg}"
    );
    again().unwrap();
    assert_ne!(fs::read(out.join("meta.json")).unwrap(), before);
    assert!(!dir.path().join("ds.old").exists());
    // A directory of other files is never written into.
    let other = dir.path().join("photos");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("cat.jpg"), "x").unwrap();
    let msg = prepare(&config(corpus), &other, options()).unwrap_err().to_string();
    assert!(msg.contains("not an ember dataset"), "{msg}");
}

#[test]
fn an_interrupted_prepare_leaves_nothing_that_opens_as_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    fs::write(&corpus, text(500, 0)).unwrap();
    let out = dir.path().join("ds");
    // What a killed prepare leaves: shards with headers counting 0, no meta.json.
    let partial = dir.path().join("ds.partial");
    fs::create_dir_all(partial.join("train")).unwrap();
    let mut w = ember_data::token_file::TokenWriter::create(&partial.join("train/000000.bin"), 2).unwrap();
    w.push(&[1, 2, 3]).unwrap();
    w.close().unwrap();
    assert!(!ember_data::dataset::is_dataset(&partial));
    let msg = ember_data::TokenFile::open(&partial.join("train/000000.bin"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("the header promises 0 tokens but the file has 30 bytes"),
        "{msg}"
    );
    assert!(!ember_data::dataset::is_dataset(&out));
    prepare(&config(corpus), &out, options()).unwrap();
    assert!(ember_data::dataset::is_dataset(&out));
    assert!(!partial.exists(), "the leftover is removed");
}

#[test]
fn bpe_trains_on_a_bounded_deterministic_sample() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    fs::create_dir(&corpus).unwrap();
    for i in 0..40 {
        fs::write(corpus.join(format!("{i:02}.txt")), text(400, i)).unwrap();
    }
    let cfg = |bytes| DataConfig {
        tokenizer: TokenizerKind::Bpe,
        vocab_size: 300,
        tokenizer_sample_bytes: bytes,
        ..config(corpus.clone())
    };
    let fingerprint = |bytes, name: &str| {
        prepare(&cfg(bytes), &dir.path().join(name), options())
            .unwrap()
            .meta
            .tokenizer_fingerprint
    };
    let a = fingerprint(4096, "a");
    assert_eq!(fingerprint(4096, "b"), a, "the same sample each time");
    assert_ne!(fingerprint(1 << 30, "c"), a, "a larger sample, another tokenizer");
    let data = open_dataset(&dir.path().join("a"), &dir.path().join("a/tokenizer.json")).unwrap();
    assert_eq!(data.tokenizer.token_id("<|endoftext|>"), Some(0));
}

#[test]
fn a_tokenizer_without_the_end_of_text_token_is_refused_for_several_documents() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.jsonl");
    fs::write(&corpus, "{\"text\": \"a b\"}\n{\"text\": \"c d\"}\n").unwrap();
    let tok = dir.path().join("plain.json");
    fs::write(&tok, BpeTokenizer::train(&text(500, 3), 300).unwrap().to_json()).unwrap();
    let cfg = DataConfig {
        tokenizer: TokenizerKind::File(tok),
        ..config(corpus)
    };
    let msg = prepare(&cfg, &dir.path().join("ds"), options())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("data.eos_token = \"<|endoftext|>\": the tokenizer has no such token"),
        "{msg}"
    );
    assert!(!dir.path().join("ds").exists() && !dir.path().join("ds.partial").exists());
}
