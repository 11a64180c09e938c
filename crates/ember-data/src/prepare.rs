//! `ember prepare`: a corpus of any size into a token dataset, streaming and on every core.
//!
//! ```text
//! 1. tokenizer   char: one pass collects the alphabet; bpe: one pass takes an even sample of
//!                at most data.tokenizer_sample_bytes and trains on it; a tokenizer.json: as is
//! 2. encode      reader thread ── batches of pieces ──► every core encodes ──► shard writers
//!                (documents 9, 19, 29, … go to val; an end-of-text id after every document)
//! 3. finish      val empty? move the tail (one document) or the last document into it;
//!                write the shards' headers and checksums, tokenizer.json, meta.json (last)
//! 4. publish     <out>.partial/ is renamed to <out>/; an old dataset there (--overwrite) is
//!                removed only after the new one is in place
//! ```
//!
//! Memory holds a few batches of text and their ids (tens of MiB), whatever the corpus size.
//! An interrupted prepare leaves `<out>.partial/`, which nothing mistakes for a dataset (it
//! has no `meta.json` until the very end, and is not at `<out>`); the next prepare removes it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rayon::prelude::*;
use tracing::info;

use crate::dataset::{DataConfig, DatasetMeta, FORMAT, ShardMeta, SourceMeta, SplitMeta, TokenizerKind};
use crate::error::DataError;
use crate::sources::{self, Piece, Sources};
use crate::split_writer::{SplitWriter, count_moved_chars, move_tail};
use crate::token_file::{finish_file, width_for};
use crate::tokenizer::{BpeTokenizer, CharTokenizer, Tokenizer};

/// Text per batch handed to the encoders.
const BATCH_BYTES: usize = 16 << 20;

/// Told how the work goes (a progress bar, in the CLI).
pub trait Watch: Sync {
    /// A pass over `total` bytes of input begins.
    fn begin(&self, _what: &str, _total: u64) {}
    /// `done` bytes of the current pass are read.
    fn update(&self, _done: u64) {}
    /// The current pass is over.
    fn end(&self) {}
}

/// Reports nothing.
pub struct Quiet;
impl Watch for Quiet {}

/// How to prepare.
pub struct Options<'a> {
    /// Use this tokenizer (a model's own) instead of `data.tokenizer`.
    pub tokenizer: Option<Tokenizer>,
    /// Replace a dataset already at the output path.
    pub overwrite: bool,
    /// Progress.
    pub watch: &'a dyn Watch,
}

/// Where `ember prepare` writes the dataset of `config` when no `--out` is given: beside the
/// corpus, its name without extensions plus `.tokens`.
pub fn default_out(config: &DataConfig) -> Result<PathBuf, DataError> {
    let path = config.path.single().ok_or_else(|| DataError::InvalidConfig {
        key: "path",
        value: config.path.to_string(),
        problem: "several inputs make one dataset: name it with --out".into(),
    })?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("corpus");
    let mut stem = name.trim_end_matches(".gz").trim_end_matches(".zst");
    stem = stem.trim_end_matches(".txt").trim_end_matches(".jsonl");
    Ok(path.with_file_name(format!("{stem}.tokens")))
}

/// What became of the corpus.
#[derive(Debug, Clone)]
pub struct Report {
    /// The dataset's `meta.json`.
    pub meta: DatasetMeta,
    /// Where it is.
    pub dir: PathBuf,
    /// Seconds spent encoding (pass 2).
    pub encode_s: f64,
    /// Seconds in all.
    pub total_s: f64,
}

/// Prepares `config`'s corpus into the dataset directory `out`.
pub fn prepare(config: &DataConfig, out: &Path, options: Options<'_>) -> Result<Report, DataError> {
    let started = std::time::Instant::now();
    config.validate()?;
    if config.dataset_dir().is_some() {
        return Err(DataError::InvalidConfig {
            key: "path",
            value: config.path.to_string(),
            problem: "is already a prepared dataset; train on it directly".into(),
        });
    }
    check_out(out, options.overwrite)?;
    let sources = sources::discover(&config.path.0)?;
    if sources.skipped > 0 {
        info!(
            skipped = sources.skipped,
            "files in the corpus directories that are neither .txt nor .jsonl (optionally .gz/.zst) were left out"
        );
    }
    let partial = sibling(out, "partial");
    if partial.exists() {
        info!("removing {} left by an interrupted prepare", partial.display());
        fs::remove_dir_all(&partial).map_err(DataError::io("removing", &partial))?;
    }
    fs::create_dir_all(partial.join("train")).map_err(DataError::io("creating", &partial))?;
    fs::create_dir_all(partial.join("val")).map_err(DataError::io("creating", &partial))?;
    let result = (|| {
        let tokenizer = match options.tokenizer {
            Some(t) => t,
            None => make_tokenizer(config, &sources, options.watch)?,
        };
        let eos = if sources.many_documents() {
            Some(eos_id(&tokenizer, &config.eos_token)?)
        } else {
            None
        };
        let encode_start = std::time::Instant::now();
        let meta = encode(config, &sources, &tokenizer, eos, &partial, options.watch)?;
        let encode_s = encode_start.elapsed().as_secs_f64();
        tokenizer.save(&partial.join("tokenizer.json"))?;
        crate::files::write_atomic(
            &partial.join("meta.json"),
            serde_json::to_string_pretty(&meta).expect("serialisable").as_bytes(),
        )?;
        Ok((meta, encode_s))
    })();
    let (meta, encode_s) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    publish(&partial, out)?;
    info!(
        train = meta.train.tokens,
        val = meta.val.tokens,
        "prepared dataset {}",
        out.display()
    );
    Ok(Report {
        meta,
        dir: out.to_path_buf(),
        encode_s,
        total_s: started.elapsed().as_secs_f64(),
    })
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!("{name}.{suffix}"))
}

/// Refuses an output path holding anything but an old dataset (and that, unless `overwrite`).
fn check_out(out: &Path, overwrite: bool) -> Result<(), DataError> {
    let Ok(meta) = fs::symlink_metadata(out) else {
        return Ok(());
    };
    let exists = |problem: &str| DataError::DatasetExists {
        path: out.to_path_buf(),
        problem: problem.to_string(),
    };
    if !meta.is_dir() {
        return Err(exists("is not a directory; choose another --out"));
    }
    let empty = fs::read_dir(out)
        .map_err(DataError::io("listing", out))?
        .next()
        .is_none();
    if empty {
        return Ok(());
    }
    if !crate::dataset::is_dataset(out) {
        return Err(exists(
            "holds files that are not an ember dataset; choose another --out (nothing was changed)",
        ));
    }
    if !overwrite {
        return Err(exists(
            "already holds a prepared dataset; pass --overwrite to replace it, or choose another --out",
        ));
    }
    Ok(())
}

/// Puts `partial` at `out`; an old dataset there is moved aside first and removed last.
fn publish(partial: &Path, out: &Path) -> Result<(), DataError> {
    let old = sibling(out, "old");
    let had_old = fs::symlink_metadata(out).is_ok();
    if had_old {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(DataError::io("removing", &old))?;
        }
        fs::rename(out, &old).map_err(DataError::io("moving aside", out))?;
    }
    if let Err(e) = fs::rename(partial, out) {
        if had_old {
            let _ = fs::rename(&old, out);
        }
        return Err(DataError::io("renaming into place", out)(e));
    }
    if let Some(parent) = out.parent() {
        crate::files::sync_dir(parent);
    }
    if had_old {
        fs::remove_dir_all(&old).map_err(DataError::io("removing", &old))?;
    }
    Ok(())
}

/// The id of `token`, which must be one of the tokenizer's.
fn eos_id(tokenizer: &Tokenizer, token: &str) -> Result<u32, DataError> {
    tokenizer.token_id(token).ok_or_else(|| DataError::InvalidConfig {
        key: "eos_token",
        value: format!("{token:?}"),
        problem: "the tokenizer has no such token, and a corpus of several documents needs one between them; set data.eos_token to one of the tokenizer's special tokens".into(),
    })
}

/// Whether piece number `i` belongs to a sample taking the fraction `p` of all pieces: a fixed
/// hash of `i` against `p`, so the same corpus always gives the same sample.
fn sampled(i: u64, p: f64) -> bool {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z as f64) < p * u64::MAX as f64
}

/// The character tokenizer of a corpus: one pass collects its distinct characters (and the
/// end-of-text token joins them when the corpus has several documents).
pub fn alphabet(config: &DataConfig, sources: &Sources, watch: &dyn Watch) -> Result<CharTokenizer, DataError> {
    let read = AtomicU64::new(0);
    watch.begin("collecting the alphabet", sources.bytes());
    let mut chars = BTreeSet::new();
    let mut ascii = [false; 128];
    sources::read_all(sources, &config.text_field, &read, &mut |_, piece| {
        for c in piece.text.chars() {
            if c.is_ascii() {
                ascii[c as usize] = true;
            } else {
                chars.insert(c);
            }
        }
        watch.update(read.load(Ordering::Relaxed));
        Ok(())
    })?;
    watch.end();
    chars.extend((0..128u8).filter(|&b| ascii[b as usize]).map(char::from));
    let eos = sources.many_documents().then_some(config.eos_token.as_str());
    Ok(CharTokenizer::from_alphabet(chars, eos))
}

/// Pass 1: the tokenizer `data.tokenizer` asks for.
fn make_tokenizer(config: &DataConfig, sources: &Sources, watch: &dyn Watch) -> Result<Tokenizer, DataError> {
    let eos = sources.many_documents().then_some(config.eos_token.as_str());
    match &config.tokenizer {
        TokenizerKind::File(path) => Tokenizer::load(path),
        TokenizerKind::Char => Ok(Tokenizer::Char(alphabet(config, sources, watch)?)),
        TokenizerKind::Bpe => {
            // Compressed files hold about 4× their size in text.
            let estimate: u64 = sources
                .files
                .iter()
                .map(|s| match s.compression {
                    sources::Compression::None => s.bytes,
                    _ => s.bytes * 4,
                })
                .sum();
            let p = config.tokenizer_sample_bytes as f64 / estimate.max(1) as f64;
            let read = AtomicU64::new(0);
            watch.begin("sampling text for the tokenizer", sources.bytes());
            let (mut sample, mut bytes, mut index) = (Vec::new(), 0u64, 0u64);
            sources::read_all(sources, &config.text_field, &read, &mut |_, piece| {
                if bytes < config.tokenizer_sample_bytes && sampled(index, p) {
                    bytes += piece.text.len() as u64;
                    sample.push(piece.text);
                }
                index += 1;
                watch.update(read.load(Ordering::Relaxed));
                Ok(())
            })?;
            watch.end();
            info!(
                vocab_size = config.vocab_size,
                sample_bytes = bytes,
                "training byte-level BPE"
            );
            Ok(Tokenizer::Bpe(BpeTokenizer::train_on(
                sample.iter().map(String::as_str),
                config.vocab_size,
                eos,
            )?))
        }
    }
}

/// A piece on its way to the encoders, with where its ids go.
struct Job {
    text: String,
    val: bool,
    ends_document: bool,
}

/// Pass 2 and 3: every piece encoded into the shards, the splits completed.
fn encode(
    config: &DataConfig,
    sources: &Sources,
    tokenizer: &Tokenizer,
    eos: Option<u32>,
    dir: &Path,
    watch: &dyn Watch,
) -> Result<DatasetMeta, DataError> {
    let bound = tokenizer.id_bound().max(tokenizer.vocab_size());
    let width = width_for(bound);
    let mut train = SplitWriter::new(dir, "train", width, config.shard_tokens);
    let mut val = SplitWriter::new(dir, "val", width, config.shard_tokens);
    let f = config.val_fraction;
    let is_val = |doc: u64| ((doc + 1) as f64 * f).floor() > (doc as f64 * f).floor();
    let mut val_chars = 0usize;
    // The train document being written, and the last one completed: (tokens, characters).
    let (mut doc, mut last_doc) = ((0u64, 0usize), (0u64, 0usize));
    let read = AtomicU64::new(0);
    watch.begin("encoding", sources.bytes());
    let summaries = std::thread::scope(|scope| -> Result<Vec<sources::SourceSummary>, DataError> {
        let (tx, rx) = mpsc::sync_channel::<Vec<Job>>(2);
        let read = &read;
        let reader = scope.spawn(move || {
            let (mut batch, mut bytes, mut index) = (Vec::new(), 0usize, 0u64);
            let summaries = sources::read_all(sources, &config.text_field, read, &mut |_, p: Piece| {
                bytes += p.text.len();
                batch.push(Job {
                    text: p.text,
                    val: is_val(index),
                    ends_document: p.ends_document,
                });
                index += u64::from(p.ends_document);
                if bytes >= BATCH_BYTES {
                    bytes = 0;
                    tx.send(std::mem::take(&mut batch)).map_err(|_| DataError::Stopped)?;
                }
                Ok(())
            })?;
            if !batch.is_empty() {
                tx.send(batch).map_err(|_| DataError::Stopped)?;
            }
            Ok(summaries)
        });
        let write = || -> Result<(), DataError> {
            for batch in rx {
                let ids: Vec<Vec<u32>> = batch
                    .par_iter()
                    .map(|job| tokenizer.encode_piece(&job.text))
                    .collect::<Result<_, _>>()?;
                for (job, ids) in batch.iter().zip(&ids) {
                    let split = if job.val { &mut val } else { &mut train };
                    split.push(ids)?;
                    let chars = count_chars(&job.text);
                    if job.val {
                        val_chars += chars;
                    } else {
                        doc = (doc.0 + ids.len() as u64, doc.1 + chars);
                    }
                    if job.ends_document {
                        split.documents += 1;
                        if let Some(eos) = eos {
                            split.push(&[eos])?;
                        }
                        if !job.val {
                            last_doc = (doc.0 + u64::from(eos.is_some()), doc.1);
                            doc = (0, 0);
                        }
                    }
                }
                watch.update(read.load(Ordering::Relaxed));
            }
            Ok(())
        };
        let written = write();
        // `write` consumed the receiver: a reader still sending stops.
        let read_result = reader.join().expect("the reader thread does not panic");
        written?;
        read_result
    })?;
    watch.end();
    let (mut train_docs, mut val_docs) = (train.documents, val.documents);
    let mut train_files = train.close()?;
    let mut val_files = val.close()?;
    let total_docs = train_docs + val_docs;
    let val_rule = if val_docs > 0 {
        format!(
            "documents i (from 0, in corpus order) with floor((i+1)*{f}) > floor(i*{f}): one in every {}",
            (1.0 / f).round()
        )
    } else if total_docs <= 1 {
        let n: u64 = train_files.iter().map(|f| f.1).sum();
        let k = ((n as f64) * f).round() as u64;
        val_files = move_tail(&mut train_files, k, width, dir, config.shard_tokens)?;
        val_chars = count_moved_chars(&val_files, width, tokenizer)?;
        format!("the last {k} tokens (val_fraction {f}) of the corpus's one document")
    } else {
        val_files = move_tail(&mut train_files, last_doc.0, width, dir, config.shard_tokens)?;
        val_chars = last_doc.1;
        (train_docs, val_docs) = (train_docs - 1, 1);
        format!(
            "the last document: too few documents ({total_docs}) for one in every {}",
            (1.0 / f).round()
        )
    };
    let finish = |files: Vec<(PathBuf, u64)>, documents: u64| -> Result<SplitMeta, DataError> {
        let mut shards = Vec::new();
        for (path, tokens) in files {
            if tokens == 0 {
                fs::remove_file(&path).map_err(DataError::io("removing", &path))?;
                continue;
            }
            let blake3 = finish_file(&path, width, tokens)?;
            shards.push(ShardMeta {
                file: path.strip_prefix(dir).expect("inside the dataset").to_path_buf(),
                tokens,
                blake3: Some(blake3),
            });
        }
        Ok(SplitMeta {
            tokens: shards.iter().map(|s| s.tokens).sum(),
            documents,
            shards,
        })
    };
    let train_meta = finish(train_files, train_docs)?;
    let val_meta = finish(val_files, val_docs)?;
    let text_bytes = summaries.iter().map(|s| s.text_bytes).sum();
    let single_text = sources.files.len() == 1 && sources.files[0].compression == sources::Compression::None;
    let entropy_floor = if single_text {
        crate::synth::read_floor(&sources.files[0].path)
    } else {
        None
    };
    Ok(DatasetMeta {
        format: FORMAT.into(),
        version: 1,
        tokenizer_fingerprint: tokenizer.fingerprint(),
        vocab_size: bound,
        eos_id: eos,
        train: train_meta,
        val: val_meta,
        val_chars,
        val_rule,
        text_bytes,
        sources: sources
            .files
            .iter()
            .zip(&summaries)
            .map(|(s, sum)| SourceMeta {
                path: s.path.clone(),
                bytes: s.bytes,
                blake3: sum.blake3.clone(),
                documents: sum.documents,
                text_bytes: sum.text_bytes,
            })
            .collect(),
        prepared_with: config.clone(),
        entropy_floor,
    })
}

fn count_chars(text: &str) -> usize {
    text.chars().count()
}
