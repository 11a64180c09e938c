//! The shards of one split, written as the encoders hand over ids, and the moves that complete
//! a split afterwards (a tail held out for validation).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::token_file::{HEADER, TokenWriter, ids_from_bytes, read_at};
use crate::tokenizer::Tokenizer;

/// The shards of one split being written.
pub(crate) struct SplitWriter {
    dir: PathBuf,
    prefix: &'static str,
    width: usize,
    shard_tokens: u64,
    current: Option<TokenWriter>,
    closed: Vec<(PathBuf, u64)>,
    tokens: u64,
    pub(crate) documents: u64,
}

impl SplitWriter {
    pub(crate) fn new(dir: &Path, prefix: &'static str, width: usize, shard_tokens: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            prefix,
            width,
            shard_tokens,
            current: None,
            closed: Vec::new(),
            tokens: 0,
            documents: 0,
        }
    }

    pub(crate) fn push(&mut self, mut ids: &[u32]) -> Result<(), DataError> {
        while !ids.is_empty() {
            if self.current.is_none() {
                let path = self.dir.join(self.prefix).join(format!("{:06}.bin", self.closed.len()));
                self.current = Some(TokenWriter::create(&path, self.width)?);
            }
            let w = self.current.as_mut().expect("opened above");
            let room = (self.shard_tokens - w.len()) as usize;
            let (now, later) = ids.split_at(room.min(ids.len()));
            w.push(now)?;
            self.tokens += now.len() as u64;
            ids = later;
            if w.len() == self.shard_tokens {
                self.closed.push(self.current.take().expect("open").close()?);
            }
        }
        Ok(())
    }

    pub(crate) fn close(mut self) -> Result<Vec<(PathBuf, u64)>, DataError> {
        if let Some(w) = self.current.take() {
            self.closed.push(w.close()?);
        }
        Ok(self.closed)
    }
}

/// Moves the last `k` tokens of the (closed, not yet finished) train shards into new val
/// shards, shortening the train shards' recorded lengths; returns the val shards.
pub(crate) fn move_tail(
    train: &mut [(PathBuf, u64)],
    k: u64,
    width: usize,
    dir: &Path,
    shard_tokens: u64,
) -> Result<Vec<(PathBuf, u64)>, DataError> {
    let total: u64 = train.iter().map(|f| f.1).sum();
    let start = total - k.min(total);
    let mut val = SplitWriter::new(dir, "val", width, shard_tokens);
    let mut pos = 0u64;
    for (path, len) in train.iter_mut() {
        let first = pos;
        pos += *len;
        if pos <= start {
            continue;
        }
        let from = start.max(first) - first;
        let file = fs::File::open(&*path).map_err(DataError::io("opening", &*path))?;
        let mut at = from;
        while at < *len {
            let n = (*len - at).min(1 << 20) as usize;
            let mut bytes = vec![0u8; n * width];
            read_at(&file, &mut bytes, HEADER as u64 + at * width as u64).map_err(DataError::io("reading", &*path))?;
            val.push(&ids_from_bytes(&bytes, width))?;
            at += n as u64;
        }
        *len = from;
    }
    val.close()
}

/// Characters the (closed) shards' ids spell, decoded a million ids at a time.
pub(crate) fn count_moved_chars(
    files: &[(PathBuf, u64)],
    width: usize,
    tokenizer: &Tokenizer,
) -> Result<usize, DataError> {
    let mut chars = 0;
    for (path, len) in files {
        let file = fs::File::open(path).map_err(DataError::io("opening", path))?;
        let mut at = 0u64;
        while at < *len {
            let n = (*len - at).min(1 << 20) as usize;
            let mut bytes = vec![0u8; n * width];
            read_at(&file, &mut bytes, HEADER as u64 + at * width as u64).map_err(DataError::io("reading", path))?;
            chars += tokenizer.decode(&ids_from_bytes(&bytes, width)).chars().count();
            at += n as u64;
        }
    }
    Ok(chars)
}
