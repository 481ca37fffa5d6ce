//! Reading safetensors headers (names, shapes, dtypes) with errors that name the file, and
//! memory-mapping files whose headers were checked.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;

use crate::{Error, Result};

/// Largest header we accept (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor of a safetensors header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TensorInfo {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Element type as spelled in the header (`F32`, `F16`, `BF16`, …).
    pub dtype: String,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Checkpoint(format!(
        "{}: not a readable safetensors file ({why})",
        path.display()
    ))
}

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "U8" | "I8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return None,
    })
}

/// The tensors listed in `path`'s header, checked against the file's length (a truncated
/// download is reported here, before any tensor is read).
pub(crate) fn read_header(path: &Path) -> Result<BTreeMap<String, TensorInfo>> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::Checkpoint(format!("{}: {e}", path.display())))?;
    let len = file.metadata().map_err(|e| bad(path, e))?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|_| bad(path, format!("only {len} bytes: truncated?")))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n + 8 > len {
        return Err(bad(
            path,
            format!("header length {n} does not fit in a file of {len} bytes: truncated?"),
        ));
    }
    let mut json = vec![0u8; n as usize];
    file.read_exact(&mut json).map_err(|e| bad(path, e))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|e| bad(path, format!("header: {e}")))?;
    let data_len = len - 8 - n;
    let mut out = BTreeMap::new();
    for (name, v) in header {
        if name == "__metadata__" {
            continue;
        }
        let info = parse_entry(&v).ok_or_else(|| bad(path, format!("bad header entry {name}")))?;
        let (dtype, shape, begin, end) = info;
        let numel: u64 = shape.iter().map(|&d| d as u64).product();
        let size = dtype_size(&dtype).map(|s| s * numel);
        if end > data_len || begin > end || size.is_some_and(|s| s != end - begin) {
            return Err(bad(
                path,
                format!(
                    "tensor {name} needs bytes {begin}..{end} of {data_len}: the file is truncated or damaged"
                ),
            ));
        }
        out.insert(name, TensorInfo { shape, dtype });
    }
    Ok(out)
}

fn parse_entry(v: &serde_json::Value) -> Option<(String, Vec<usize>, u64, u64)> {
    let dtype = v.get("dtype")?.as_str()?.to_string();
    let shape = v
        .get("shape")?
        .as_array()?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<Vec<_>>>()?;
    let offsets = v.get("data_offsets")?.as_array()?;
    let (begin, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
    Some((dtype, shape, begin, end))
}

/// Headers of all `paths` merged (name → info), each file checked.
pub(crate) fn read_headers(paths: &[impl AsRef<Path>]) -> Result<BTreeMap<String, TensorInfo>> {
    let mut out = BTreeMap::new();
    for p in paths {
        out.extend(read_header(p.as_ref())?);
    }
    Ok(out)
}

/// Memory-maps `paths` after checking their headers.
pub(crate) fn mmap(paths: &[impl AsRef<Path>]) -> Result<MmapedSafetensors> {
    read_headers(paths)?;
    // SAFETY: the files are mapped read-only; like every safetensors loader we rely on them not
    // being modified while the model is loaded.
    unsafe { MmapedSafetensors::multi(paths) }.map_err(|e| {
        let names: Vec<_> = paths
            .iter()
            .map(|p| p.as_ref().display().to_string())
            .collect();
        Error::Checkpoint(format!("{}: {e}", names.join(", ")))
    })
}
