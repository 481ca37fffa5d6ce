//! LoRA files merged into the base weights while they are loaded.
//!
//! [`LoraSet::load`] reads each `--lora FILE[:SCALE]` ([`LoraSpec`]) and groups its tensors
//! into LoRA pairs, whatever the format (`formats.rs`: kohya / sd-scripts, diffusers / PEFT, old
//! diffusers). [`LoraSet::var_builder`] matches the pairs to a model's tensor names (read from
//! its safetensors headers) and returns a `VarBuilder` that adds
//! `scale · alpha/rank · up·down` to each matched weight as it is read (`merge.rs`); a pair that
//! matches nothing is listed in [`LoraSet::report`], a file of which nothing matches a model it
//! targets is an error.
//!
//! ```
//! use mlbench_diffusion::lora::LoraSpec;
//! let spec = LoraSpec::parse("style.safetensors:0.7").unwrap();
//! assert_eq!((spec.path.to_str(), spec.scale), (Some("style.safetensors"), 0.7));
//! assert_eq!(LoraSpec::parse(r"C:\loras\a.safetensors").unwrap().scale, 1.0);
//! ```

mod formats;
mod merge;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::single_file::header::{self, TensorInfo};
use crate::single_file::keymap;
use crate::{Error, Result};
use formats::{Entry, Target};
use merge::{Delta, PatchedBackend};

/// One `--lora FILE[:SCALE]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// The LoRA safetensors file.
    pub path: PathBuf,
    /// Multiplier of the LoRA's delta (1.0: as trained; 0: no effect).
    pub scale: f32,
}

impl LoraSpec {
    /// `FILE` or `FILE:SCALE`; only a trailing `:<number>` is a scale, so `C:\x.safetensors`
    /// stays a path.
    pub fn parse(s: &str) -> Result<Self> {
        let scaled = s
            .rsplit_once(':')
            .and_then(|(p, sc)| Some((p, sc.trim().parse::<f32>().ok()?)));
        let (path, scale) = scaled.unwrap_or((s, 1.0));
        if path.is_empty() {
            return Err(Error::Invalid(format!("--lora {s:?}: no file name")));
        }
        if !scale.is_finite() {
            return Err(Error::Invalid(format!(
                "--lora {s:?}: the scale must be a finite number"
            )));
        }
        Ok(Self {
            path: PathBuf::from(path),
            scale,
        })
    }
}

impl std::str::FromStr for LoraSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// A model a LoRA can patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// The UNet (`lora_unet_`, `unet.`).
    Unet,
    /// The first text encoder (`lora_te_`, `lora_te1_`, `text_encoder.`).
    TextEncoder,
    /// SDXL's second text encoder (`lora_te2_`, `text_encoder_2.`).
    TextEncoder2,
}

impl Component {
    /// The diffusers folder name.
    pub fn name(self) -> &'static str {
        match self {
            Component::Unet => "unet",
            Component::TextEncoder => "text_encoder",
            Component::TextEncoder2 => "text_encoder_2",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

struct LoraFile {
    spec: LoraSpec,
    entries: Vec<Entry>,
    unknown: Vec<String>,
    formats: Vec<String>,
}

/// The LoRA files of a run (possibly none).
pub struct LoraSet {
    files: Vec<LoraFile>,
    /// Per file: entry index → (component, matched base module).
    matched: Mutex<Vec<BTreeMap<usize, (Component, String)>>>,
}

impl fmt::Debug for LoraSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.files.iter().map(|l| &l.spec))
            .finish()
    }
}

fn read_lora(spec: &LoraSpec) -> Result<LoraFile> {
    let path = &spec.path;
    header::read_header(path).map_err(|e| Error::Lora(format!("LoRA {e}")))?;
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::Lora(format!("LoRA {}: {e}", path.display())))?;
    let parsed = formats::parse(&tensors);
    if parsed.entries.is_empty() {
        let mut keys: Vec<_> = tensors.keys().cloned().collect();
        keys.sort();
        return Err(Error::Lora(format!(
            "LoRA {}: no LoRA weights found (expected kohya `….lora_down.weight`/`lora_up.weight` \
             or PEFT `….lora_A.weight`/`lora_B.weight` pairs); its keys: {}",
            path.display(),
            few(&keys)
        )));
    }
    let entries = parsed
        .entries
        .into_iter()
        .map(|e| {
            Ok(Entry {
                down: e.down.to_dtype(DType::F32)?,
                up: e.up.to_dtype(DType::F32)?,
                mid: e.mid.map(|m| m.to_dtype(DType::F32)).transpose()?,
                ..e
            })
        })
        .collect::<Result<_>>()?;
    Ok(LoraFile {
        spec: spec.clone(),
        entries,
        unknown: parsed.unknown,
        formats: parsed.formats.into_iter().map(String::from).collect(),
    })
}

fn few(keys: &[String]) -> String {
    let mut s = keys.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
    if keys.len() > 4 {
        s.push_str(&format!(", … ({} in all)", keys.len()));
    }
    s
}

/// A model's weight names in the forms LoRA files use.
struct Index {
    /// Canonical dotted module path → stored tensor name.
    by_path: HashMap<String, String>,
    /// Flattened (kohya) module path, diffusers and LDM → stored tensor name.
    by_flat: HashMap<String, String>,
    shapes: HashMap<String, Vec<usize>>,
}

impl Index {
    fn new(component: Component, header: &BTreeMap<String, Vec<usize>>) -> Self {
        let mut by_path = HashMap::new();
        let mut by_flat = HashMap::new();
        let text = component != Component::Unet;
        for (key, shape) in header {
            let Some(module) = key.strip_suffix(".weight") else {
                continue;
            };
            if shape.len() < 2 {
                continue;
            }
            let module =
                if text && !module.starts_with("text_model.") && module != "text_projection" {
                    format!("text_model.{module}")
                } else {
                    module.to_string()
                };
            by_flat
                .entry(module.replace('.', "_"))
                .or_insert(key.clone());
            by_path.entry(module).or_insert(key.clone());
        }
        if !text {
            let keys: BTreeSet<&str> = header.keys().map(String::as_str).collect();
            for (key, ldm) in keymap::unet_ldm_names(&keys) {
                if let Some(m) = ldm.strip_suffix(".weight") {
                    by_flat.entry(m.replace('.', "_")).or_insert(key);
                }
            }
        }
        Self {
            by_path,
            by_flat,
            shapes: header.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    fn path(&self, component: Component, path: &str) -> Option<&String> {
        let canon = if component != Component::Unet
            && !path.starts_with("text_model.")
            && path != "text_projection"
        {
            format!("text_model.{path}")
        } else {
            path.to_string()
        };
        self.by_path.get(&canon)
    }

    /// The stored tensor a LoRA pair patches.
    fn resolve(&self, component: Component, target: &Target) -> Option<&String> {
        match target {
            Target::Kohya(_, flat) => self.by_flat.get(flat),
            Target::Path(_, path) => self.path(component, path),
            Target::AttnProcessor(_, module, proj) => {
                let name = match (component, proj.as_str()) {
                    (Component::Unet, "out") => "to_out.0".to_string(),
                    (Component::Unet, p) => format!("to_{p}"),
                    (_, p) => format!("{p}_proj"),
                };
                self.path(component, &format!("{module}.{name}"))
            }
        }
    }
}

/// Checks that `up·down` fits `base` and returns the rank.
fn check_shapes(file: &Path, e: &Entry, key: &str, base: &[usize]) -> Result<usize> {
    let (mut d, u) = (e.down.dims().to_vec(), e.up.dims());
    if let Some(mid) = &e.mid {
        // Tucker: down [rank, in, 1, 1] · mid [rank, rank, kh, kw] acts as [rank, in, kh, kw]
        let m = mid.dims();
        let core_fits = m.len() == 4 && d.len() == 4 && m[0] == d[0] && m[1] == d[0];
        if !core_fits || d[2..] != [1, 1] {
            return Err(Error::Lora(format!(
                "LoRA {}: {}: lora_mid {m:?} does not fit lora_down {d:?}",
                file.display(),
                e.name
            )));
        }
        d = vec![d[0], d[1], m[2], m[3]];
    }
    let d = d.as_slice();
    let rank = d.first().copied().unwrap_or(0);
    let per_out: usize = d.iter().skip(1).product();
    let base_per_out: usize = base.iter().skip(1).product();
    let fits = d.len() >= 2
        && u.len() >= 2
        && u[1] == rank
        && u.iter().skip(2).all(|&k| k == 1)
        && rank > 0
        && u[0] == base[0]
        && per_out == base_per_out
        && (d.len() != 4 || base.len() != 4 || d[1..] == base[1..]);
    if fits {
        return Ok(rank);
    }
    let mut delta = vec![u.first().copied().unwrap_or(0)];
    delta.extend(d.iter().skip(1));
    Err(Error::Lora(format!(
        "LoRA {}: {} does not fit the model: up {u:?} · down {d:?} gives {delta:?} \
         but the model's {key} has shape {base:?}",
        file.display(),
        e.name,
    )))
}

impl LoraSet {
    /// Reads the LoRA files (the tensors are kept, small; the base model is not touched).
    pub fn load(specs: &[LoraSpec]) -> Result<Self> {
        let files = specs.iter().map(read_lora).collect::<Result<Vec<_>>>()?;
        let matched = Mutex::new(vec![BTreeMap::new(); files.len()]);
        Ok(Self { files, matched })
    }

    /// No LoRA files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A `VarBuilder` over `component`'s base safetensors files (diffusers names) whose tensors
    /// get the LoRA deltas added as they are read.
    pub fn var_builder(
        &self,
        component: Component,
        base_files: &[PathBuf],
        dtype: DType,
        device: &Device,
    ) -> Result<VarBuilder<'static>> {
        let header = header::read_headers(base_files)?;
        let shapes = header
            .into_iter()
            .map(|(k, TensorInfo { shape, .. })| (k, shape))
            .collect();
        let inner: Box<dyn SimpleBackend> = Box::new(header::mmap(base_files)?);
        self.patch(component, inner, &shapes, dtype, device)
    }

    /// Like [`LoraSet::var_builder`] over any backend that serves `component` under diffusers
    /// names, e.g. a single-file checkpoint's
    /// ([`crate::single_file::SingleFile::backend`]); `shapes` lists its tensors.
    pub fn patch(
        &self,
        component: Component,
        inner: Box<dyn SimpleBackend>,
        shapes: &BTreeMap<String, Vec<usize>>,
        dtype: DType,
        device: &Device,
    ) -> Result<VarBuilder<'static>> {
        let index = Index::new(component, shapes);
        let mut deltas: HashMap<String, Vec<Delta>> = HashMap::new();
        let mut matched = self.matched.lock().unwrap_or_else(|e| e.into_inner());
        for (fi, file) in self.files.iter().enumerate() {
            let mut tried = Vec::new();
            let mut hits = 0;
            for (ei, e) in file.entries.iter().enumerate() {
                if !e.target.is_for(component) {
                    continue;
                }
                tried.push(e.name.clone());
                let Some(key) = index.resolve(component, &e.target) else {
                    continue;
                };
                let rank = check_shapes(&file.spec.path, e, key, &index.shapes[key])?;
                let alpha = e.alpha.map_or(rank as f64, f64::from);
                deltas.entry(key.clone()).or_default().push(Delta {
                    up: e.up.clone(),
                    down: e.down.clone(),
                    mid: e.mid.clone(),
                    factor: f64::from(file.spec.scale) * alpha / rank as f64,
                });
                let module = key.strip_suffix(".weight").unwrap_or(key).to_string();
                matched[fi].insert(ei, (component, module));
                hits += 1;
            }
            if !tried.is_empty() && hits == 0 {
                return Err(Error::Lora(format!(
                    "LoRA {}: none of its {} {component} weights matches this model (is it for \
                     another architecture?); its keys: {}",
                    file.spec.path.display(),
                    tried.len(),
                    few(&tried)
                )));
            }
        }
        let backend: Box<dyn SimpleBackend> = Box::new(PatchedBackend { inner, deltas });
        Ok(VarBuilder::from_backend(backend, dtype, device.clone()))
    }

    /// [`LoraSet::patch`] over a single-file checkpoint's `component`.
    pub fn single_file_var_builder(
        &self,
        component: Component,
        file: &crate::single_file::SingleFile,
        dtype: DType,
        device: &Device,
    ) -> Result<VarBuilder<'static>> {
        let part = component.into();
        let shapes = file.keys(part).into_iter().collect();
        self.patch(
            component,
            Box::new(file.backend(part)?),
            &shapes,
            dtype,
            device,
        )
    }

    /// What was applied so far: per file, the matched modules per component and the LoRA keys
    /// that matched nothing (including those for components not loaded).
    pub fn report(&self) -> LoraReport {
        let matched = self.matched.lock().unwrap_or_else(|e| e.into_inner());
        let files = self
            .files
            .iter()
            .zip(matched.iter())
            .map(|(f, m)| {
                let mut per: BTreeMap<Component, Vec<String>> = BTreeMap::new();
                for (c, module) in m.values() {
                    per.entry(*c).or_default().push(module.clone());
                }
                for v in per.values_mut() {
                    v.sort();
                }
                let mut unmatched: Vec<String> = f
                    .entries
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !m.contains_key(i))
                    .map(|(_, e)| e.name.clone())
                    .chain(f.unknown.iter().cloned())
                    .collect();
                unmatched.sort();
                LoraFileReport {
                    path: f.spec.path.clone(),
                    scale: f.spec.scale,
                    formats: f.formats.clone(),
                    pairs: f.entries.len(),
                    matched: per,
                    unmatched,
                }
            })
            .collect();
        LoraReport { files }
    }
}

/// What [`LoraSet::report`] returns (`--lora-report`, and in `--json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoraReport {
    /// One entry per `--lora`, in order.
    pub files: Vec<LoraFileReport>,
}

/// One LoRA file's part of a [`LoraReport`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoraFileReport {
    /// The file.
    pub path: PathBuf,
    /// Its scale.
    pub scale: f32,
    /// Key formats found (`kohya`, `peft`, `diffusers-old`).
    pub formats: Vec<String>,
    /// LoRA (down, up) pairs in the file.
    pub pairs: usize,
    /// Patched modules (model names), per component.
    pub matched: BTreeMap<Component, Vec<String>>,
    /// LoRA keys applied nowhere.
    pub unmatched: Vec<String>,
}

impl fmt::Display for LoraReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in &self.files {
            writeln!(
                f,
                "{} (scale {}, {}): {} pairs",
                file.path.display(),
                file.scale,
                file.formats.join("+"),
                file.pairs
            )?;
            for (c, modules) in &file.matched {
                writeln!(f, "  {c}: {} modules patched", modules.len())?;
                for m in modules {
                    writeln!(f, "    {m}")?;
                }
            }
            if !file.unmatched.is_empty() {
                writeln!(f, "  matched nothing ({}):", file.unmatched.len())?;
                for k in &file.unmatched {
                    writeln!(f, "    {k}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kohya names made from the LDM and from the diffusers module paths of the real SD 1.5 and
    /// SDXL UNets (tests/data/single-file/layouts.json) resolve to the right tensors.
    #[test]
    fn kohya_names_resolve_on_real_unet_layouts() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/single-file/layouts.json"
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for name in ["sd15_unet", "sdxl_unet"] {
            let pairs: Vec<(String, String)> = serde_json::from_value(v[name].clone()).unwrap();
            let header = pairs
                .iter()
                .map(|(d, _)| (format!("{d}.weight"), vec![2, 2]))
                .collect();
            let index = Index::new(Component::Unet, &header);
            for (d, l) in &pairs {
                let want = format!("{d}.weight");
                for module in [d, l] {
                    let flat = Target::Kohya(Component::Unet, module.replace('.', "_"));
                    assert_eq!(
                        index.resolve(Component::Unet, &flat),
                        Some(&want),
                        "{name}: {module}"
                    );
                }
                let path = Target::Path(Some(Component::Unet), d.clone());
                assert_eq!(index.resolve(Component::Unet, &path), Some(&want));
            }
        }
    }
}
