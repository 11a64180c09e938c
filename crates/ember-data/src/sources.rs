//! Where a corpus's text comes from, read as a stream of documents in pieces of bounded size.
//!
//! ```text
//! data.path ── discover ── [Source] ── read ── Piece, Piece, … (each ≤ ~PIECE_BYTES of text)
//!   a file          sorted, recursive      .txt:   the file is one document
//!   a directory                            .jsonl: every record's text field is one document
//!   a list of both                         .gz / .zst: either, compressed
//! ```
//!
//! Nothing here holds more than one piece (or one JSONL record) of text at a time, so a corpus
//! of any size streams through in bounded memory.
//!
//! Bad input stops the read with an error naming the file (and the line, for JSONL): a binary
//! or non-UTF-8 file, a line that is not JSON or has no string text field, a corrupt
//! compressed stream. ember stops rather than skips, so that a dataset never silently lacks
//! part of its corpus; remove or fix the file and prepare again.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Text per piece, nominally: a piece ends at the first safe cut after this many bytes.
pub const PIECE_BYTES: usize = 256 << 10;
/// A piece is cut wherever it is once it reaches this size without a safe cut.
const MAX_PIECE_BYTES: usize = 4 * PIECE_BYTES;
/// The longest JSONL line read (a record of 256 MiB is a broken file, not a document).
const MAX_LINE_BYTES: usize = 256 << 20;
/// Directories nested deeper than this are refused (a symbolic-link cycle, most likely).
const MAX_DEPTH: usize = 64;

/// How a file's text is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text: the whole file is one document.
    Text,
    /// JSON Lines: one JSON object per line, its text field a document.
    Jsonl,
}

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`.gz`), possibly several members.
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
}

/// One input file.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// Text or JSONL.
    pub format: Format,
    /// Compression.
    pub compression: Compression,
    /// Size on disk.
    pub bytes: u64,
}

/// The files of a corpus, in the order they are read.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The files.
    pub files: Vec<Source>,
    /// Files inside directories skipped for their name (neither `.txt` nor `.jsonl`, optionally
    /// `.gz` or `.zst`).
    pub skipped: usize,
}

impl Sources {
    /// Bytes on disk, all files together.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|s| s.bytes).sum()
    }

    /// Whether the corpus is more than one document: several files, or any JSONL file.
    pub fn many_documents(&self) -> bool {
        self.files.len() > 1 || self.files.iter().any(|s| s.format == Format::Jsonl)
    }
}

/// Finds the files of `paths`: each a file, or a directory searched recursively (entries in
/// name order; files whose names end in `.txt`, `.jsonl`, or either with `.gz`/`.zst`). A file
/// named directly is read whatever its name (as JSONL if it ends in `.jsonl[.gz|.zst]`).
pub fn discover(paths: &[PathBuf]) -> Result<Sources, DataError> {
    let mut sources = Sources {
        files: Vec::new(),
        skipped: 0,
    };
    for path in paths {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DataError::CorpusMissing { path: path.clone() });
            }
            // A symbolic-link loop, a permission problem: the system's words.
            Err(e) => return Err(DataError::io("reading", path)(e)),
        };
        if meta.is_dir() {
            let before = sources.files.len();
            walk(path, 0, &mut sources)?;
            if sources.files.len() == before {
                return Err(DataError::NoTextFiles { path: path.clone() });
            }
        } else if meta.is_file() {
            let (format, compression) = classify(path).unwrap_or((Format::Text, Compression::None));
            sources.files.push(Source {
                path: path.clone(),
                format,
                compression,
                bytes: meta.len(),
            });
        } else {
            return Err(DataError::CorpusNotFile {
                path: path.clone(),
                kind: crate::files::kind(&meta),
            });
        }
    }
    Ok(sources)
}

fn walk(dir: &Path, depth: usize, sources: &mut Sources) -> Result<(), DataError> {
    if depth > MAX_DEPTH {
        return Err(DataError::BadInput {
            path: dir.to_path_buf(),
            line: None,
            reason: format!("directories nest more than {MAX_DEPTH} deep (a symbolic-link cycle?)"),
        });
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(DataError::io("listing", dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(DataError::io("listing", dir))?;
    entries.sort();
    for path in entries {
        let meta = fs::metadata(&path).map_err(DataError::io("reading", &path))?;
        if meta.is_dir() {
            walk(&path, depth + 1, sources)?;
            continue;
        }
        let Some((format, compression)) = classify(&path) else {
            sources.skipped += 1;
            continue;
        };
        if !meta.is_file() {
            return Err(DataError::CorpusNotFile {
                path,
                kind: crate::files::kind(&meta),
            });
        }
        sources.files.push(Source {
            path,
            format,
            compression,
            bytes: meta.len(),
        });
    }
    Ok(())
}

/// The format and compression a file's name announces, if it is one ember reads.
fn classify(path: &Path) -> Option<(Format, Compression)> {
    let name = path.file_name()?.to_str()?;
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (name, Compression::None)
    };
    if stem.ends_with(".txt") {
        Some((Format::Text, compression))
    } else if stem.ends_with(".jsonl") {
        Some((Format::Jsonl, compression))
    } else {
        None
    }
}

/// A stretch of one document's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The text.
    pub text: String,
    /// Whether this is the document's last piece.
    pub ends_document: bool,
}

/// Counts (into a shared counter) the bytes read from a file, and hashes them.
struct Tally<'a, R> {
    inner: R,
    read: &'a AtomicU64,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for Tally<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// What reading a source found.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSummary {
    /// BLAKE3 of the file's bytes on disk.
    pub blake3: String,
    /// Bytes of text (after decompression).
    pub text_bytes: u64,
    /// Documents read (empty documents are not counted: they hold no text).
    pub documents: u64,
}

/// Reads `source`, handing each piece of text to `emit` in order. `read` counts the bytes
/// taken from disk (for a progress bar); `text_field` names the JSONL field that holds a
/// document's text.
pub fn read_source(
    source: &Source,
    text_field: &str,
    read: &AtomicU64,
    emit: &mut dyn FnMut(Piece) -> Result<(), DataError>,
) -> Result<SourceSummary, DataError> {
    let path = &source.path;
    let file = crate::files::open_regular(path).map_err(DataError::io("opening", path))?;
    let mut tally = Tally {
        inner: file,
        read,
        hasher: blake3::Hasher::new(),
    };
    let mut summary = SourceSummary {
        blake3: String::new(),
        text_bytes: 0,
        documents: 0,
    };
    {
        let stream: Box<dyn Read + '_> = match source.compression {
            Compression::None => Box::new(&mut tally),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(&mut tally))),
            Compression::Zstd => Box::new(
                ruzstd::decoding::StreamingDecoder::new(BufReader::new(&mut tally)).map_err(|e| {
                    DataError::BadInput {
                        path: path.clone(),
                        line: None,
                        reason: format!("not a zstd stream ({e})"),
                    }
                })?,
            ),
        };
        let mut reader = BufReader::with_capacity(1 << 20, stream);
        match source.format {
            Format::Text => read_text(path, source.compression, &mut reader, &mut summary, emit)?,
            Format::Jsonl => read_jsonl(path, source.compression, text_field, &mut reader, &mut summary, emit)?,
        }
    }
    // The compressed stream may end before the file does: hash the rest too.
    io::copy(&mut tally, &mut io::sink()).map_err(DataError::io("reading", path))?;
    summary.blake3 = tally.hasher.finalize().to_hex().to_string();
    Ok(summary)
}

/// An error while reading a stream: a decompressor's complaint names the format.
fn read_error(path: &Path, compression: Compression, e: io::Error) -> DataError {
    let what = match compression {
        Compression::None => return DataError::io("reading", path)(e),
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    };
    DataError::BadInput {
        path: path.to_path_buf(),
        line: None,
        reason: format!("corrupt {what} stream ({e})"),
    }
}

fn read_text(
    path: &Path,
    compression: Compression,
    reader: &mut dyn BufRead,
    summary: &mut SourceSummary,
    emit: &mut dyn FnMut(Piece) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_PIECE_BYTES + (1 << 20));
    let mut offset = 0u64; // text bytes handed on so far
    let mut eof = false;
    while !eof || !buf.is_empty() {
        while !eof && buf.len() < MAX_PIECE_BYTES {
            let chunk = reader.fill_buf().map_err(|e| read_error(path, compression, e))?;
            if chunk.is_empty() {
                eof = true;
                break;
            }
            let n = chunk.len().min(MAX_PIECE_BYTES + (1 << 20) - buf.len());
            buf.extend_from_slice(&chunk[..n]);
            reader.consume(n);
        }
        let cut = if eof && buf.len() <= MAX_PIECE_BYTES {
            buf.len()
        } else {
            safe_cut(&buf)
        };
        if let Some(at) = buf[..cut].iter().position(|&b| b == 0) {
            return Err(DataError::CorpusNotText {
                path: path.to_path_buf(),
                reason: format!(
                    "a NUL byte at offset {}: this looks like a binary file",
                    offset + at as u64
                ),
            });
        }
        // Copied out, so that the piece holds only its own bytes and `buf` keeps its capacity.
        let bytes = buf[..cut].to_vec();
        buf.drain(..cut);
        let text = String::from_utf8(bytes).map_err(|e| DataError::CorpusNotText {
            path: path.to_path_buf(),
            reason: format!("invalid UTF-8 at byte {}", offset + e.utf8_error().valid_up_to() as u64),
        })?;
        offset += text.len() as u64;
        let last = eof && buf.is_empty();
        emit(Piece {
            text,
            ends_document: last,
        })?;
    }
    if offset == 0 {
        return Err(DataError::CorpusEmpty {
            path: path.to_path_buf(),
        });
    }
    summary.text_bytes += offset;
    summary.documents += 1;
    Ok(())
}

/// Where to end a piece of `buf` (which holds more than [`PIECE_BYTES`]): just after the first
/// line break past `PIECE_BYTES` that sits between two visible ASCII characters. Byte-level
/// BPE's pre-tokenizer (GPT-2's pattern) always splits there, so encoding the pieces one by
/// one gives the same ids as encoding the whole document. Without such a place within
/// [`MAX_PIECE_BYTES`], the cut falls on a character boundary.
fn safe_cut(buf: &[u8]) -> usize {
    let visible = |b: u8| (0x21..=0x7e).contains(&b);
    let end = buf.len().min(MAX_PIECE_BYTES);
    for i in PIECE_BYTES.min(end.saturating_sub(1)).max(1)..end.saturating_sub(1) {
        if buf[i] == b'\n' && visible(buf[i - 1]) && visible(buf[i + 1]) {
            return i + 1;
        }
    }
    // No safe place: the last character boundary at or before `end`.
    let mut cut = end;
    while cut > 0 && cut < buf.len() && (buf[cut] & 0xc0) == 0x80 {
        cut -= 1;
    }
    cut.max(1)
}

/// Splits one document's `text` into pieces, as [`read_text`] does for a file.
/// Each piece is copied out, so that it holds only its own bytes.
fn emit_document(text: String, emit: &mut dyn FnMut(Piece) -> Result<(), DataError>) -> Result<(), DataError> {
    if text.len() <= MAX_PIECE_BYTES {
        return emit(Piece {
            text,
            ends_document: true,
        });
    }
    let mut start = 0;
    while text.len() - start > MAX_PIECE_BYTES {
        let cut = start + safe_cut(&text.as_bytes()[start..]);
        emit(Piece {
            text: text[start..cut].to_string(),
            ends_document: false,
        })?;
        start = cut;
    }
    emit(Piece {
        text: text[start..].to_string(),
        ends_document: true,
    })
}

fn read_jsonl(
    path: &Path,
    compression: Compression,
    text_field: &str,
    reader: &mut dyn BufRead,
    summary: &mut SourceSummary,
    emit: &mut dyn FnMut(Piece) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        let n = Read::take(&mut *reader, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| read_error(path, compression, e))?;
        if n == 0 {
            break;
        }
        let bad = |reason: String| DataError::BadInput {
            path: path.to_path_buf(),
            line: Some(number),
            reason,
        };
        if line.len() > MAX_LINE_BYTES {
            return Err(bad(format!("the line is longer than {} MiB", MAX_LINE_BYTES >> 20)));
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let record: serde_json::Value = serde_json::from_slice(&line).map_err(|e| {
            bad(if line.contains(&0) {
                "it holds a NUL byte: this looks like a binary file".into()
            } else {
                format!("not JSON ({e})")
            })
        })?;
        let text = match record.get(text_field) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(bad(format!(
                    "field \"{text_field}\" is not a string but {}",
                    json_kind(other)
                )));
            }
            None => {
                return Err(bad(format!(
                    "the record has no \"{text_field}\" field; set data.text_field to the field that holds the text"
                )));
            }
        };
        if text.is_empty() {
            continue;
        }
        summary.text_bytes += text.len() as u64;
        summary.documents += 1;
        let serde_json::Value::Object(mut map) = record else {
            unreachable!("a value with a field is an object")
        };
        let Some(serde_json::Value::String(text)) = map.remove(text_field) else {
            unreachable!("checked above")
        };
        emit_document(text, emit)?;
    }
    Ok(())
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Reads every source in order, handing each piece to `emit` with the source's index.
pub fn read_all(
    sources: &Sources,
    text_field: &str,
    read: &AtomicU64,
    emit: &mut dyn FnMut(usize, Piece) -> Result<(), DataError>,
) -> Result<Vec<SourceSummary>, DataError> {
    let mut summaries = Vec::with_capacity(sources.files.len());
    for (i, source) in sources.files.iter().enumerate() {
        summaries.push(read_source(source, text_field, read, &mut |p| emit(i, p))?);
    }
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(source: &Source) -> Result<Vec<Piece>, DataError> {
        let mut out = Vec::new();
        read_source(source, "text", &AtomicU64::new(0), &mut |p| {
            out.push(p);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn directories_are_searched_recursively_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("b/c")).unwrap();
        for name in [
            "b/c/z.txt",
            "a.jsonl",
            "b/x.txt.gz",
            "b/y.jsonl.zst",
            "notes.md",
            "b/c/w.bin",
        ] {
            fs::write(d.join(name), "x").unwrap();
        }
        let s = discover(&[d.to_path_buf()]).unwrap();
        let names: Vec<String> = s
            .files
            .iter()
            .map(|f| f.path.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.jsonl", "b/c/z.txt", "b/x.txt.gz", "b/y.jsonl.zst"]);
        assert_eq!(s.skipped, 2);
        assert_eq!(
            (s.files[2].format, s.files[2].compression),
            (Format::Text, Compression::Gzip)
        );
        assert_eq!(
            (s.files[3].format, s.files[3].compression),
            (Format::Jsonl, Compression::Zstd)
        );
        assert!(s.many_documents());
        let empty = d.join("empty");
        fs::create_dir(&empty).unwrap();
        fs::write(empty.join("readme.md"), "x").unwrap();
        let msg = discover(&[empty]).unwrap_err().to_string();
        assert!(msg.contains("no .txt or .jsonl files"), "{msg}");
    }

    #[test]
    fn a_long_text_is_cut_only_between_lines_of_visible_characters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.txt");
        // Lines ending in a space or followed by an indented line are no place to cut.
        let text = "word word \n  indented\nplain line\n".repeat(40_000);
        fs::write(&path, &text).unwrap();
        let source = discover(&[path]).unwrap().files.remove(0);
        let got = pieces(&source).unwrap();
        assert!(got.len() > 2, "{} pieces", got.len());
        assert_eq!(got.iter().map(|p| p.text.as_str()).collect::<String>(), text);
        for p in &got[..got.len() - 1] {
            assert!(!p.ends_document);
            assert!(!p.text.ends_with("word \n"), "{:?}", &p.text[p.text.len() - 12..]);
        }
        assert!(got.last().unwrap().ends_document);
    }

    #[test]
    fn jsonl_records_are_documents_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        fs::write(
            &path,
            "{\"text\": \"one\", \"id\": 1}\n\n{\"text\": \"\"}\n{\"text\": \"two\"}\n",
        )
        .unwrap();
        let source = discover(std::slice::from_ref(&path)).unwrap().files.remove(0);
        let got = pieces(&source).unwrap();
        assert_eq!(
            got,
            [
                Piece {
                    text: "one".into(),
                    ends_document: true
                },
                Piece {
                    text: "two".into(),
                    ends_document: true
                }
            ]
        );
        for (content, expected) in [
            ("{\"text\": \"a\"}\n{oops\n", "d.jsonl line 2: not JSON"),
            (
                "{\"text\": \"a\"}\n{\"body\": \"b\"}\n",
                "d.jsonl line 2: the record has no \"text\" field",
            ),
            (
                "{\"text\": 5}\n",
                "d.jsonl line 1: field \"text\" is not a string but a number",
            ),
        ] {
            fs::write(&path, content).unwrap();
            let msg = pieces(&source).unwrap_err().to_string();
            assert!(msg.contains(expected), "{msg}");
        }
    }

    #[test]
    fn compressed_files_read_back_and_a_corrupt_stream_is_named() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let text = "First Citizen:\nSpeak, speak.\n".repeat(100);
        let gz = dir.path().join("a.txt.gz");
        let mut enc = flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
        let zst = dir.path().join("b.jsonl.zst");
        let record = format!("{}\n", serde_json::json!({ "text": text }));
        fs::write(
            &zst,
            ruzstd::encoding::compress_to_vec(record.as_bytes(), ruzstd::encoding::CompressionLevel::Fastest),
        )
        .unwrap();
        let s = discover(&[dir.path().to_path_buf()]).unwrap();
        for source in &s.files {
            let got: String = pieces(source).unwrap().into_iter().map(|p| p.text).collect();
            assert_eq!(got, text, "{}", source.path.display());
        }
        let mut bytes = fs::read(&gz).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        bytes[mid + 1] ^= 0xff;
        fs::write(&gz, &bytes).unwrap();
        let msg = pieces(&s.files[0]).unwrap_err().to_string();
        assert!(msg.contains("a.txt.gz") && msg.contains("corrupt gzip stream"), "{msg}");
        fs::write(&zst, b"not zstd at all").unwrap();
        let msg = pieces(&s.files[1]).unwrap_err().to_string();
        assert!(msg.contains("b.jsonl.zst") && msg.contains("zstd"), "{msg}");
    }

    #[test]
    fn binary_and_non_utf8_text_is_refused_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        let mut bytes = "line\n".repeat(100_000).into_bytes();
        bytes[300_001] = 0;
        fs::write(&path, &bytes).unwrap();
        let source = discover(std::slice::from_ref(&path)).unwrap().files.remove(0);
        let msg = pieces(&source).unwrap_err().to_string();
        assert!(msg.contains("NUL byte at offset 300001"), "{msg}");
        bytes[300_001] = 0xe9;
        fs::write(&path, &bytes).unwrap();
        let msg = pieces(&source).unwrap_err().to_string();
        assert!(msg.contains("invalid UTF-8 at byte 300001"), "{msg}");
        fs::write(&path, "").unwrap();
        assert!(pieces(&source).unwrap_err().to_string().contains("is empty"));
    }
}
