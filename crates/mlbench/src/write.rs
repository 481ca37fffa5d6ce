//! Writing results: stdout, or a file replaced atomically (temp file + rename), so a failed run
//! never leaves a partial output file.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `text` to `path` atomically, or to stdout when `path` is `None` or `-`.
pub fn output(path: Option<&Path>, text: &str) -> Result<()> {
    match path {
        None => print_stdout(text),
        Some(p) if p == Path::new("-") => print_stdout(text),
        Some(p) => {
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("{}: cannot create output file", p.display()))?;
            tmp.write_all(text.as_bytes())
                .with_context(|| format!("{}: write failed", p.display()))?;
            tmp.persist(p)
                .map_err(|e| e.error)
                .with_context(|| format!("{}: cannot write output file", p.display()))?;
            Ok(())
        }
    }
}

fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .context("writing to stdout")?;
    out.flush().context("writing to stdout")
}
