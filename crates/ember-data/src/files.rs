//! Reading the small files a run keeps (configs, `tokenizer.json`, manifests, state) as hostile
//! input: only regular files, and only up to a size limit checked before anything is read, so
//! a FIFO never blocks, a device never streams forever, and a huge file is never allocated.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

/// Limits for the kinds of small files ember reads.
pub mod limit {
    /// A TOML config or a JSON metadata file.
    pub const CONFIG: u64 = 1 << 20;
    /// A checkpoint's manifest or state.
    pub const STATE: u64 = 16 << 20;
    /// A `tokenizer.json` (a 1M-token BPE vocabulary with merges is about 60 MB).
    pub const TOKENIZER: u64 = 512 << 20;
    /// A weights file (safetensors): bounded by the disk rather than by a format, but still
    /// only a regular file, read no further than its size.
    pub const WEIGHTS: u64 = 1 << 40;
    /// A run's `metrics.jsonl` (a million logged steps is about 200 MB).
    pub const METRICS: u64 = 4 << 30;
}

/// Opens `path` for reading if it is a regular file. Checked before opening: opening a FIFO
/// would wait for a writer, and a device would never end.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", kind(&meta)),
        ));
    }
    File::open(path)
}

/// Writes `bytes` to `path` through a temporary file beside it, synced and then renamed over
/// `path`: a crash leaves the old file or the new one, never half of either.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), crate::DataError> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(crate::DataError::io("creating", &tmp))?;
    file.write_all(bytes).map_err(crate::DataError::io("writing", &tmp))?;
    file.sync_all().map_err(crate::DataError::io("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(crate::DataError::io("renaming into place", path))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Syncs a directory's entries (a rename in it) to disk, where the platform allows.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) {
        let _ = d.sync_all();
    }
}

/// The bytes of `path`, which must be a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_large(size, limit));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // `take`: a file that grows while it is read still stops at the limit.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, limit)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (invalid at byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn too_large(bytes: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("it holds {bytes} bytes, more than the {limit} such a file may hold"),
    )
}

/// What a path is, in words: "a directory", "a FIFO (named pipe)", "a character device", ….
pub fn kind(meta: &fs::Metadata) -> &'static str {
    if meta.is_dir() {
        return "a directory";
    }
    if meta.is_file() {
        return "a regular file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_limit_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        fs::write(&path, "x = 1\n").unwrap();
        assert_eq!(read_regular_text(&path, 6).unwrap(), "x = 1\n");
        let e = read_regular(&path, 5).unwrap_err().to_string();
        assert!(e.contains("6 bytes, more than the 5"), "{e}");
        let e = read_regular(dir.path(), 100).unwrap_err().to_string();
        assert!(e.contains("a directory, not a regular file"), "{e}");
        #[cfg(unix)]
        {
            let e = read_regular(Path::new("/dev/zero"), 100).unwrap_err().to_string();
            assert!(e.contains("a character device"), "{e}");
        }
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(
            read_regular_text(&path, 10)
                .unwrap_err()
                .to_string()
                .contains("not UTF-8")
        );
    }
}
