//! A split's tokens: one or more token files (shards) read as one sequence.
//!
//! ```text
//! shard 0: ids 0 .. n0 │ shard 1: ids n0 .. n0+n1 │ …
//!                  └── a window may start in one shard and end in the next ──┘
//! ```

use crate::error::DataError;
use crate::token_file::TokenFile;

/// The shards of one split, in order.
#[derive(Debug)]
pub struct Tokens {
    shards: Vec<TokenFile>,
    /// `starts[i]`: the position of shard `i`'s first id in the whole sequence.
    starts: Vec<usize>,
    len: usize,
}

impl Tokens {
    /// The sequence of `shards`, in this order.
    pub fn new(shards: Vec<TokenFile>) -> Self {
        let mut starts = Vec::with_capacity(shards.len());
        let mut len = 0;
        for shard in &shards {
            starts.push(len);
            len += shard.len();
        }
        Self { shards, starts, len }
    }

    /// Number of tokens, all shards together.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shards.
    pub fn shards(&self) -> &[TokenFile] {
        &self.shards
    }

    /// Appends tokens `start..start + n` of the whole sequence to `out`, reading across shard
    /// boundaries.
    pub fn extend_window(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        assert!(
            start + n <= self.len,
            "window {start}..{} beyond {} tokens",
            start + n,
            self.len
        );
        // The shard holding `start`: the last one that starts at or before it.
        let mut shard = self.starts.partition_point(|&s| s <= start) - 1;
        let (mut at, mut left) = (start - self.starts[shard], n);
        while left > 0 {
            let file = &self.shards[shard];
            let take = left.min(file.len() - at);
            file.extend_window(at, take, out);
            left -= take;
            shard += 1;
            at = 0;
        }
    }

    /// Checks every shard against its checksum (as [`TokenFile::verify`]).
    pub fn verify(&self, checksums: &[Option<String>], vocab_size: usize) -> Result<(), DataError> {
        for (shard, checksum) in self.shards.iter().zip(checksums) {
            shard.verify(checksum.as_deref(), vocab_size)?;
        }
        Ok(())
    }
}

impl From<TokenFile> for Tokens {
    fn from(file: TokenFile) -> Self {
        Self::new(vec![file])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_across_shard_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<u32> = (0..100).collect();
        let mut shards = Vec::new();
        for (i, part) in [&ids[..30], &ids[30..31], &ids[31..]].into_iter().enumerate() {
            let path = dir.path().join(format!("{i}.bin"));
            TokenFile::write(&path, part, 1000).unwrap();
            shards.push(TokenFile::open(&path).unwrap());
        }
        let tokens = Tokens::new(shards);
        assert_eq!(tokens.len(), 100);
        for (start, n) in [(0, 100), (25, 10), (29, 3), (30, 1), (31, 69), (99, 1), (5, 0)] {
            let mut out = Vec::new();
            tokens.extend_window(start, n, &mut out);
            assert_eq!(out, &ids[start..start + n], "window {start}+{n}");
        }
    }
}
