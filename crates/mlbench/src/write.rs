//! Writing results: stdout, or a file replaced atomically (temp file + rename), so a failed run
//! never leaves a partial output file.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `text` to `path` atomically, or to stdout when `path` is `None` or `-`.
pub fn output(path: Option<&Path>, text: &str) -> Result<()> {
    bytes(path, text.as_bytes())
}

/// Writes `data` to `path` atomically, or to stdout when `path` is `None` or `-`.
pub fn bytes(path: Option<&Path>, data: &[u8]) -> Result<()> {
    match path {
        None => to_stdout(data),
        Some(p) if p == Path::new("-") => to_stdout(data),
        Some(p) => atomic(p, data),
    }
}

/// Writes `data` to a temporary file beside `path`, then renames it over `path`.
pub fn atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = temp_file_in(dir)
        .with_context(|| format!("{}: cannot create output file", path.display()))?;
    tmp.write_all(data)
        .with_context(|| format!("{}: write failed", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("{}: cannot write output file", path.display()))?;
    Ok(())
}

/// A temporary file created as an ordinary output file would be: tempfile's default mode is
/// 0600, which the rename would keep; 0666 lets the user's umask decide, as `File::create` does.
fn temp_file_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".mlbench-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

fn to_stdout(data: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(data).context("writing to stdout")?;
    out.flush().context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_file_with_umask_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "old").unwrap();
        atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        // Nothing else is left in the folder (no temporary file).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let fresh = dir.path().join("fresh.txt");
            std::fs::File::create(&fresh).unwrap();
            let expected = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, expected);
        }
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let e = atomic(Path::new("/nonexistent-dir/out.png"), b"x").unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent-dir/out.png"));
    }
}
