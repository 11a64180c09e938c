//! Reading one small text whole: a file to evaluate (`ember eval --text`). Corpora for
//! training stream through [`crate::sources`] instead.

use std::fs;
use std::path::Path;

use crate::error::DataError;

/// Reads one file that must hold non-empty UTF-8 text. Anything but a regular file (a FIFO,
/// which could block forever; a device such as /dev/zero, which never ends) is refused before
/// it is read.
pub fn read_text_file(path: &Path) -> Result<String, DataError> {
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
    fn rejects_missing_empty_binary_and_non_utf8_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_text_file(&dir.path().join("nope.txt")).unwrap_err().to_string();
        assert!(
            missing.contains("does not exist") && missing.contains("get-data.sh"),
            "{missing}"
        );
        fs::write(dir.path().join("empty.txt"), "").unwrap();
        assert!(
            read_text_file(&dir.path().join("empty.txt"))
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
        fs::write(dir.path().join("bin.txt"), [b'a', 0, 1, 2]).unwrap();
        assert!(
            read_text_file(&dir.path().join("bin.txt"))
                .unwrap_err()
                .to_string()
                .contains("NUL byte at offset 1")
        );
        fs::write(dir.path().join("latin1.txt"), [b'c', b'a', b'f', 0xe9]).unwrap();
        assert!(
            read_text_file(&dir.path().join("latin1.txt"))
                .unwrap_err()
                .to_string()
                .contains("invalid UTF-8 at byte 3")
        );
        fs::write(dir.path().join("ok.txt"), "second").unwrap();
        assert_eq!(read_text_file(&dir.path().join("ok.txt")).unwrap(), "second");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_devices_fifos_and_symlink_loops_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let check = |path: &Path, expected: &str| {
            for msg in [
                read_text_file(path).unwrap_err().to_string(),
                crate::sources::discover(&[path.to_path_buf()]).unwrap_err().to_string(),
            ] {
                assert!(msg.contains(expected), "{msg}");
                assert!(!msg.contains("does not exist"), "not a missing file: {msg}");
            }
        };
        check(Path::new("/dev/zero"), "is a character device, not a regular file");
        let fifo = dir.path().join("pipe.txt");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        check(&fifo, "is a FIFO");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        check(&a, "symbolic links");
        // Inside a directory, a FIFO named like a corpus file is refused too, never opened.
        let msg = crate::sources::discover(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("symbolic links") || msg.contains("is a FIFO"), "{msg}");
    }
}
