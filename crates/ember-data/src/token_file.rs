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
//! Windows are read with positional reads (`pread`), not through a memory map: the pages a
//! run touches then belong to the kernel's page cache, not to the process, whose memory stays
//! the same whatever the size of the corpus.
//!
//! A file is treated as hostile when opened: the header's count is checked against the file's
//! size with checked arithmetic, and [`TokenFile::verify`] checks the whole file against the
//! BLAKE3 checksum recorded when it was written and every id against the vocabulary, so a
//! damaged file is one error naming it, never a wrong batch or a panic at the first batch that
//! draws a bad id.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::DataError;

const MAGIC: &[u8; 8] = b"EMBERTOK";
/// Bytes before the first id.
pub const HEADER: usize = 24;

/// Bytes per id for a vocabulary of `vocab_size` ids.
pub fn width_for(vocab_size: usize) -> usize {
    if vocab_size <= 1 << 16 { 2 } else { 4 }
}

fn header(width: usize, len: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&(width as u32).to_le_bytes());
    h[16..24].copy_from_slice(&len.to_le_bytes());
    h
}

/// A read-only token file.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    file: File,
    width: usize,
    len: usize,
}

impl TokenFile {
    /// Writes `ids` to `path` (through a temporary file and a rename), as u16 when
    /// `vocab_size ≤ 65,536`, else u32. Returns the file's BLAKE3 checksum (hex), for
    /// [`verify`](Self::verify).
    pub fn write(path: &Path, ids: &[u32], vocab_size: usize) -> Result<String, DataError> {
        let tmp = path.with_extension("tmp");
        let mut writer = TokenWriter::create(&tmp, width_for(vocab_size))?;
        writer.push(ids)?;
        let checksum = writer.finish()?;
        fs::rename(&tmp, path).map_err(DataError::io("renaming into place", path))?;
        Ok(checksum)
    }

    /// Opens an existing token file and checks its header and size.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        // Checked before opening: opening a FIFO would wait for a writer.
        let meta = fs::metadata(path).map_err(DataError::io("reading the metadata of", path))?;
        if !meta.is_file() {
            return Err(DataError::BadTokenFile {
                path: path.to_path_buf(),
                reason: format!("it is {}, not a regular file", crate::files::kind(&meta)),
            });
        }
        let mut file = File::open(path).map_err(DataError::io("opening", path))?;
        let size = file
            .metadata()
            .map_err(DataError::io("reading the metadata of", path))?
            .len();
        let bad = |reason: String| DataError::BadTokenFile {
            path: path.to_path_buf(),
            reason,
        };
        let mut head = [0u8; HEADER];
        if size < HEADER as u64 || file.read_exact(&mut head).is_err() || &head[..8] != MAGIC {
            return Err(bad("it does not start with the EMBERTOK header".into()));
        }
        let width = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
        if width != 2 && width != 4 {
            return Err(bad(format!("token width {width} is neither 2 nor 4")));
        }
        if head[12..16] != [0; 4] {
            return Err(bad("its reserved header bytes are not zero".into()));
        }
        let len = u64::from_le_bytes(head[16..24].try_into().expect("8 bytes"));
        let expected = usize::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(width))
            .and_then(|b| b.checked_add(HEADER));
        if expected.map(|e| e as u64) != Some(size) {
            return Err(bad(format!(
                "the header promises {len} tokens but the file has {size} bytes"
            )));
        }
        let len = len as usize; // fits: len · width ≤ the file's size
        Ok(Self {
            path: path.to_path_buf(),
            file,
            width,
            len,
        })
    }

    /// Checks the whole file against `checksum` (BLAKE3, hex, as [`write`](Self::write)
    /// returned it; `None` for files prepared before checksums were recorded) and every id
    /// against `vocab_size`. Reads the file in 1 MiB blocks.
    pub fn verify(&self, checksum: Option<&str>, vocab_size: usize) -> Result<(), DataError> {
        let bad = |reason: String| DataError::BadTokenFile {
            path: self.path.clone(),
            reason,
        };
        let mut hasher = blake3::Hasher::new();
        let mut block = vec![0u8; 1 << 20];
        let mut at = 0u64;
        let size = (HEADER + self.len * self.width) as u64;
        let mut index = 0usize; // ids checked so far
        let mut first_outside = None;
        while at < size {
            let n = (size - at).min(block.len() as u64) as usize;
            read_at(&self.file, &mut block[..n], at).map_err(DataError::io("reading", &self.path))?;
            hasher.update(&block[..n]);
            // Whole ids only: blocks are a multiple of 4 bytes past the 24-byte header.
            let ids = if at == 0 { &block[HEADER..n] } else { &block[..n] };
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
            if first_outside.is_none() {
                first_outside = outside.map(|i| index + i);
            }
            index += ids.len() / self.width;
            at += n as u64;
        }
        if let Some(expected) = checksum {
            let actual = hasher.finalize().to_hex();
            if actual.as_str() != expected {
                return Err(bad(format!(
                    "its BLAKE3 checksum is {}… where meta.json records {}…",
                    &actual.as_str()[..12],
                    expected.chars().take(12).collect::<String>()
                )));
            }
        }
        match first_outside {
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

    /// Bytes per id.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Token `i`.
    pub fn get(&self, i: usize) -> u32 {
        let mut out = Vec::with_capacity(1);
        self.extend_window(i, 1, &mut out);
        out[0]
    }

    /// Appends tokens `start..start + n` to `out`.
    ///
    /// # Panics
    /// If the window reaches past the end, or the file cannot be read (it was checked when
    /// opened; a disk that fails afterwards is not a recoverable input error).
    pub fn extend_window(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        assert!(
            start + n <= self.len,
            "window {start}..{} beyond {} tokens",
            start + n,
            self.len
        );
        let mut bytes = vec![0u8; n * self.width];
        read_at(&self.file, &mut bytes, (HEADER + start * self.width) as u64)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.path.display()));
        out.extend(ids_from_bytes(&bytes, self.width));
    }
}

/// The ids in `bytes` (little-endian, `width` bytes each).
pub(crate) fn ids_from_bytes(bytes: &[u8], width: usize) -> Vec<u32> {
    if width == 2 {
        bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32)
            .collect()
    } else {
        bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

/// Fills `buf` from `file` at `offset`, leaving the file's cursor alone.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut buf, mut offset) = (buf, offset);
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// Writes a token file as a stream: ids are appended as they come, and [`finish`](Self::finish)
/// writes the count into the header, syncs the file and returns its checksum. Until then the
/// header counts 0 tokens, so a file left by an interrupted writer never opens as complete.
pub struct TokenWriter {
    path: PathBuf,
    out: BufWriter<File>,
    width: usize,
    len: u64,
}

impl TokenWriter {
    /// Creates (or truncates) `path` for ids of `width` bytes.
    pub fn create(path: &Path, width: usize) -> Result<Self, DataError> {
        let file = File::create(path).map_err(DataError::io("creating", path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header(width, 0))
            .map_err(DataError::io("writing", path))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            width,
            len: 0,
        })
    }

    /// Appends `ids`.
    pub fn push(&mut self, ids: &[u32]) -> Result<(), DataError> {
        let mut bytes = Vec::with_capacity(ids.len() * self.width);
        for &id in ids {
            if self.width == 2 {
                bytes.extend_from_slice(&(id as u16).to_le_bytes());
            } else {
                bytes.extend_from_slice(&id.to_le_bytes());
            }
        }
        self.out
            .write_all(&bytes)
            .map_err(DataError::io("writing", &self.path))?;
        self.len += ids.len() as u64;
        Ok(())
    }

    /// Ids written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no id was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and closes the file, leaving its header at 0 tokens: [`finish_file`] completes
    /// it later (after the file may have been shortened).
    pub fn close(mut self) -> Result<(PathBuf, u64), DataError> {
        self.out.flush().map_err(DataError::io("writing", &self.path))?;
        Ok((self.path, self.len))
    }

    /// Writes the header's count, syncs, and returns the BLAKE3 checksum.
    pub fn finish(self) -> Result<String, DataError> {
        let width = self.width;
        let (path, len) = self.close()?;
        finish_file(&path, width, len)
    }
}

/// Completes a token file a [`TokenWriter`] closed: shortens it to `len` ids, writes `len`
/// into its header, syncs it, and returns its BLAKE3 checksum.
pub fn finish_file(path: &Path, width: usize, len: u64) -> Result<String, DataError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(DataError::io("opening", path))?;
    file.set_len(HEADER as u64 + len * width as u64)
        .map_err(DataError::io("truncating", path))?;
    file.seek(SeekFrom::Start(0)).map_err(DataError::io("writing", path))?;
    file.write_all(&header(width, len))
        .map_err(DataError::io("writing", path))?;
    file.sync_all().map_err(DataError::io("syncing", path))?;
    file.seek(SeekFrom::Start(0)).map_err(DataError::io("reading", path))?;
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut std::io::BufReader::with_capacity(1 << 20, file), &mut hasher)
        .map_err(DataError::io("reading", path))?;
    Ok(hasher.finalize().to_hex().to_string())
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
