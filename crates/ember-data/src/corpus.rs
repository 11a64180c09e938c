//! Reading a corpus: one UTF-8 text file, or a directory of `.txt` files.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::DataError;

/// Reads and validates the text at `path`.
///
/// A directory contributes its `.txt` files (not recursively) in name order, separated by a
/// newline where a file does not end with one. Missing, empty, binary (NUL bytes) and
/// non-UTF-8 input is rejected with an error naming the file.
pub fn read_corpus(path: &Path) -> Result<String, DataError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::CorpusMissing {
                path: path.to_path_buf(),
            });
        }
        // A symbolic-link loop, a permission problem: the system's words.
        Err(e) => return Err(DataError::io("reading", path)(e)),
    };
    if meta.is_dir() {
        let mut files: Vec<PathBuf> = fs::read_dir(path)
            .map_err(DataError::io("listing", path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(DataError::NoTextFiles {
                path: path.to_path_buf(),
            });
        }
        let mut text = String::new();
        for file in &files {
            let part = read_text_file(file)?;
            text.push_str(&part);
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        return Ok(text);
    }
    read_text_file(path)
}

/// Reads one file that must hold non-empty UTF-8 text. Anything but a regular file (a FIFO,
/// which could block forever; a device such as /dev/zero, which never ends) is refused before
/// it is read.
pub fn read_text_file(path: &Path) -> Result<String, DataError> {
    let meta = fs::metadata(path).map_err(DataError::io("reading", path))?;
    if !meta.is_file() {
        return Err(DataError::CorpusNotFile {
            path: path.to_path_buf(),
            kind: crate::files::kind(&meta),
        });
    }
    let bytes = fs::read(path).map_err(DataError::io("reading", path))?;
    if bytes.is_empty() {
        return Err(DataError::CorpusEmpty {
            path: path.to_path_buf(),
        });
    }
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(DataError::CorpusNotText {
            path: path.to_path_buf(),
            reason: format!("a NUL byte at offset {offset}: this looks like a binary file"),
        });
    }
    String::from_utf8(bytes).map_err(|e| DataError::CorpusNotText {
        path: path.to_path_buf(),
        reason: format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_and_a_directory_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b.txt"), "second").unwrap();
        fs::write(dir.path().join("a.txt"), "first\n").unwrap();
        fs::write(dir.path().join("skip.md"), "not text").unwrap();
        assert_eq!(read_corpus(dir.path()).unwrap(), "first\nsecond\n");
        assert_eq!(read_corpus(&dir.path().join("b.txt")).unwrap(), "second");
    }

    #[test]
    fn rejects_missing_empty_binary_and_non_utf8_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_corpus(&dir.path().join("nope.txt")).unwrap_err().to_string();
        assert!(
            missing.contains("does not exist") && missing.contains("get-data.sh"),
            "{missing}"
        );
        fs::write(dir.path().join("empty.txt"), "").unwrap();
        assert!(
            read_corpus(&dir.path().join("empty.txt"))
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
        fs::write(dir.path().join("bin.txt"), [b'a', 0, 1, 2]).unwrap();
        assert!(
            read_corpus(&dir.path().join("bin.txt"))
                .unwrap_err()
                .to_string()
                .contains("NUL byte at offset 1")
        );
        fs::write(dir.path().join("latin1.txt"), [b'c', b'a', b'f', 0xe9]).unwrap();
        assert!(
            read_corpus(&dir.path().join("latin1.txt"))
                .unwrap_err()
                .to_string()
                .contains("invalid UTF-8 at byte 3")
        );
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        assert!(read_corpus(&sub).unwrap_err().to_string().contains("no .txt files"));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_devices_fifos_and_symlink_loops_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let msg = read_corpus(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(msg.contains("is a character device, not a regular file"), "{msg}");
        let fifo = dir.path().join("pipe.txt");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let msg = read_corpus(&fifo).unwrap_err().to_string();
        assert!(msg.contains("is a FIFO"), "{msg}");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let msg = read_corpus(&a).unwrap_err().to_string();
        assert!(msg.contains("symbolic links"), "{msg}");
        assert!(!msg.contains("does not exist"), "a loop is not a missing file: {msg}");
    }
}
