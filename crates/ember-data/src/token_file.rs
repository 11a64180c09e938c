//! Token ids on disk, memory-mapped for training.
//!
//! Layout (little-endian):
//!
//! ```text
//! bytes 0..8    magic "EMBERTOK"
//! bytes 8..12   bytes per token: 2 (u16) or 4 (u32)
//! bytes 12..16  reserved, 0
//! bytes 16..24  number of tokens, u64
//! bytes 24..    the ids
//! ```
//!
//! u16 is used when every id fits (vocabularies up to 65,536), halving the file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::DataError;

const MAGIC: &[u8; 8] = b"EMBERTOK";
const HEADER: usize = 24;

/// A read-only, memory-mapped token file.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    map: Mmap,
    width: usize,
    len: usize,
}

impl TokenFile {
    /// Writes `ids` to `path` (through a temporary file and a rename), as u16 when
    /// `vocab_size ≤ 65,536`, else u32.
    pub fn write(path: &Path, ids: &[u32], vocab_size: usize) -> Result<(), DataError> {
        let width = if vocab_size <= 1 << 16 { 2 } else { 4 };
        let mut bytes = Vec::with_capacity(HEADER + ids.len() * width);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(width as u32).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&(ids.len() as u64).to_le_bytes());
        for &id in ids {
            if width == 2 {
                bytes.extend_from_slice(&(id as u16).to_le_bytes());
            } else {
                bytes.extend_from_slice(&id.to_le_bytes());
            }
        }
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(DataError::io("creating", &tmp))?;
        file.write_all(&bytes).map_err(DataError::io("writing", &tmp))?;
        file.sync_all().map_err(DataError::io("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(DataError::io("renaming into place", path))
    }

    /// Maps an existing token file and checks its header and size.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let file = File::open(path).map_err(DataError::io("opening", path))?;
        // SAFETY: the file is only read, and ember never writes a token file in place (new
        // ones are renamed over old ones, which leaves existing maps intact).
        let map = unsafe { Mmap::map(&file) }.map_err(DataError::io("memory-mapping", path))?;
        let bad = |reason: String| DataError::BadTokenFile {
            path: path.to_path_buf(),
            reason,
        };
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err(bad("it does not start with the EMBERTOK header".into()));
        }
        let width = u32::from_le_bytes(map[8..12].try_into().expect("4 bytes")) as usize;
        if width != 2 && width != 4 {
            return Err(bad(format!("token width {width} is neither 2 nor 4")));
        }
        let len = u64::from_le_bytes(map[16..24].try_into().expect("8 bytes")) as usize;
        if map.len() != HEADER + len * width {
            return Err(bad(format!(
                "the header promises {len} tokens but the file has {} bytes",
                map.len()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            width,
            len,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Token `i`.
    pub fn get(&self, i: usize) -> u32 {
        let at = HEADER + i * self.width;
        if self.width == 2 {
            u16::from_le_bytes([self.map[at], self.map[at + 1]]) as u32
        } else {
            u32::from_le_bytes(self.map[at..at + 4].try_into().expect("4 bytes"))
        }
    }

    /// Appends tokens `start..start + n` to `out`.
    pub fn extend_window(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        assert!(
            start + n <= self.len,
            "window {start}..{} beyond {} tokens",
            start + n,
            self.len
        );
        out.extend((start..start + n).map(|i| self.get(i)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_u16_and_u32_files() {
        let dir = tempfile::tempdir().unwrap();
        for (vocab, width) in [(65usize, 2u64), (70_000, 4)] {
            let path = dir.path().join(format!("t{vocab}.bin"));
            let ids: Vec<u32> = (0..100).map(|i| (i * 677) % vocab as u32).collect();
            TokenFile::write(&path, &ids, vocab).unwrap();
            assert_eq!(fs::metadata(&path).unwrap().len(), 24 + 100 * width);
            let file = TokenFile::open(&path).unwrap();
            assert_eq!(file.len(), 100);
            let mut back = Vec::new();
            file.extend_window(0, 100, &mut back);
            assert_eq!(back, ids);
        }
    }

    #[test]
    fn a_truncated_file_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        TokenFile::write(&path, &[1, 2, 3], 10).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let msg = TokenFile::open(&path).unwrap_err().to_string();
        assert!(msg.contains("promises 3 tokens") && msg.contains("rebuilt"), "{msg}");
        fs::write(&path, b"garbage garbage garbage!").unwrap();
        assert!(TokenFile::open(&path).unwrap_err().to_string().contains("EMBERTOK"));
    }
}
