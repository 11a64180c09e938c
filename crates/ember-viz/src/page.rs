//! Filling a page template, and writing files safely.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::VizError;

/// The stylesheet both pages share.
pub(crate) const CSS: &str = include_str!("../assets/page.css");

/// `template` with each `{{KEY}}` replaced by its value. Only the template is searched, never
/// a value put in, so data that happens to contain `{{…}}` stays as it is.
pub(crate) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").map(|end| (&after[..end], end)) {
            Some((key, end)) if values.iter().any(|(k, _)| *k == key) => {
                out.push_str(values.iter().find(|(k, _)| *k == key).expect("found").1);
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// JSON for an inline `<script>`: `<` is escaped, so no string in the data can end the script
/// (`</script>`) or open a comment.
pub(crate) fn script_json(value: &serde_json::Value) -> String {
    serde_json::to_string(value)
        .expect("serialisable")
        .replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// HTML-escapes text for an element's content.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Checks, before any work is done, that `path` can be written: it is not a directory, its
/// directory exists, and a new file can be created there.
pub fn check_writable(path: &Path) -> Result<(), VizError> {
    let (dir, name) = target(path)?;
    let probe = dir.join(format!(".{}.probe-{}", name, std::process::id()));
    fs::File::create(&probe).map_err(|e| VizError::Write {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// The directory a file will be written in, and its name; errors for a directory or a
/// missing parent.
fn target(path: &Path) -> Result<(&Path, String), VizError> {
    let fail = |problem: String| VizError::Write {
        path: path.to_path_buf(),
        problem,
    };
    if path.is_dir() {
        return Err(fail(
            "it is a directory; give a file name, such as page.html inside it".into(),
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(fail(format!(
            "the directory {} does not exist; create it first",
            dir.display()
        )));
    }
    let name = path.file_name().ok_or_else(|| fail("the path names no file".into()))?;
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// Writes `bytes` to `path` through a temporary file beside it, renamed into place once it is
/// complete and synced: an existing file is replaced only by a whole new one, and a failure
/// leaves it untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VizError> {
    let (dir, name) = target(path)?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        VizError::Write {
            path: path.to_path_buf(),
            problem: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_keys_of_the_template_only() {
        let out = fill("a {{X}} b {{Y}} {{Z}} {{", &[("X", "{{Y}}"), ("Y", "2")]);
        assert_eq!(out, "a {{Y}} b 2 {{Z}} {{");
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        let v = serde_json::json!({"t": "</script><!--"});
        let s = script_json(&v);
        assert!(!s.contains('<'), "{s}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).unwrap(), v);
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_refuse_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("page.html");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let err = write_atomic(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = write_atomic(&dir.path().join("missing/page.html"), b"x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }
}
