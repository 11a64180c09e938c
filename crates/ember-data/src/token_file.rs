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
//!
//! A file is treated as hostile when opened: the header's count is checked against the file's
//! size with checked arithmetic, and [`TokenFile::verify`] checks the whole file against the
//! BLAKE3 checksum recorded when it was written and every id against the vocabulary, so a
//! damaged file is one error naming it, never a wrong batch or a panic at the first batch that
//! draws a bad id.

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
    /// `vocab_size ≤ 65,536`, else u32. Returns the file's BLAKE3 checksum (hex), for
    /// [`verify`](Self::verify).
    pub fn write(path: &Path, ids: &[u32], vocab_size: usize) -> Result<String, DataError> {
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
        fs::rename(&tmp, path).map_err(DataError::io("renaming into place", path))?;
        Ok(blake3::hash(&bytes).to_hex().to_string())
    }

    /// Maps an existing token file and checks its header and size.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        // Checked before opening: opening a FIFO would wait for a writer.
        let meta = fs::metadata(path).map_err(DataError::io("reading the metadata of", path))?;
        if !meta.is_file() {
            return Err(DataError::BadTokenFile {
                path: path.to_path_buf(),
                reason: format!("it is {}, not a regular file", crate::files::kind(&meta)),
            });
        }
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
        if map[12..16] != [0; 4] {
            return Err(bad("its reserved header bytes are not zero".into()));
        }
        let len = u64::from_le_bytes(map[16..24].try_into().expect("8 bytes"));
        let expected = usize::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(width))
            .and_then(|b| b.checked_add(HEADER));
        if expected != Some(map.len()) {
            return Err(bad(format!(
                "the header promises {len} tokens but the file has {} bytes",
                map.len()
            )));
        }
        let len = len as usize; // fits: len · width ≤ the file's size
        Ok(Self {
            path: path.to_path_buf(),
            map,
            width,
            len,
        })
    }

    /// Checks the whole file against `checksum` (BLAKE3, hex, as [`write`](Self::write)
    /// returned it; `None` for files prepared before checksums were recorded) and every id
    /// against `vocab_size`.
    pub fn verify(&self, checksum: Option<&str>, vocab_size: usize) -> Result<(), DataError> {
        let bad = |reason: String| DataError::BadTokenFile {
            path: self.path.clone(),
            reason,
        };
        if let Some(expected) = checksum {
            let actual = blake3::hash(&self.map).to_hex();
            if actual.as_str() != expected {
                return Err(bad(format!(
                    "its BLAKE3 checksum is {}… where meta.json records {}…",
                    &actual.as_str()[..12],
                    expected.chars().take(12).collect::<String>()
                )));
            }
        }
        let ids = &self.map[HEADER..];
        let outside = match self.width {
            2 => ids
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32)
                .position(|id| id as usize >= vocab_size),
            _ => ids
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .position(|id| id as usize >= vocab_size),
        };
        match outside {
            Some(i) => Err(bad(format!(
                "token {i} is id {}, outside the tokenizer's {vocab_size} ids",
                self.get(i)
            ))),
            None => Ok(()),
        }
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
        assert!(
            msg.contains("promises 3 tokens") && msg.contains("restore the file"),
            "{msg}"
        );
        fs::write(&path, b"garbage garbage garbage!").unwrap();
        assert!(TokenFile::open(&path).unwrap_err().to_string().contains("EMBERTOK"));
    }

    #[test]
    fn a_header_whose_size_overflows_is_refused_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        TokenFile::write(&path, &[1, 2, 3], 10).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        // 2⁶³ + 3 tokens of 2 bytes: HEADER + len·2 wraps around to HEADER + 6, the real size.
        bytes[16..24].copy_from_slice(&((1u64 << 63) + 3).to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        let msg = TokenFile::open(&path).unwrap_err().to_string();
        assert!(msg.contains("promises 9223372036854775811 tokens"), "{msg}");
        bytes[16..24].copy_from_slice(&3u64.to_le_bytes());
        bytes[12] = 1;
        fs::write(&path, &bytes).unwrap();
        assert!(TokenFile::open(&path).unwrap_err().to_string().contains("reserved"));
        let msg = TokenFile::open(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("it is a directory, not a regular file"), "{msg}");
        // A FIFO is refused without being opened (opening it would wait for a writer).
        let fifo = dir.path().join("fifo.bin");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let msg = TokenFile::open(&fifo).unwrap_err().to_string();
        assert!(msg.contains("it is a FIFO (named pipe), not a regular file"), "{msg}");
    }

    #[test]
    fn verify_finds_a_flipped_byte_and_an_id_outside_the_vocabulary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        let sum = TokenFile::write(&path, &[1, 2, 3, 4], 10).unwrap();
        TokenFile::open(&path).unwrap().verify(Some(&sum), 10).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER + 2] ^= 0x40; // token 1: 2 → 66
        fs::write(&path, &bytes).unwrap();
        let file = TokenFile::open(&path).unwrap();
        let msg = file.verify(Some(&sum), 10).unwrap_err().to_string();
        assert!(msg.contains("BLAKE3") && msg.contains("t.bin"), "{msg}");
        // Without a checksum (or with one that matches the damage) the range check finds it.
        let msg = file.verify(None, 10).unwrap_err().to_string();
        assert!(
            msg.contains("token 1 is id 66, outside the tokenizer's 10 ids"),
            "{msg}"
        );
        let resigned = blake3::hash(&bytes).to_hex().to_string();
        assert!(
            file.verify(Some(&resigned), 10)
                .unwrap_err()
                .to_string()
                .contains("id 66")
        );
        file.verify(Some(&resigned), 67).unwrap();
    }
}
