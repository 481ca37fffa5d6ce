//! Single-file checkpoints (the `.safetensors` files of model sites) served under diffusers key
//! names, mapped while loading.
//!
//! A single-file Stable Diffusion checkpoint holds the whole pipeline with the original LDM / sgm
//! names: `model.diffusion_model.*` (UNet), `first_stage_model.*` (VAE),
//! `cond_stage_model.transformer.*` (SD 1.x, OpenAI CLIP), `cond_stage_model.model.*`
//! (SD 2.x, OpenCLIP) or `conditioner.embedders.{0,1}.*` (SDXL, both). [`open_single_file`]
//! reads the header, detects the [`Kind`] and builds, per [`Part`], a table from diffusers
//! names to stored tensors; [`SingleFile::var_builder`] serves the tensors under diffusers
//! names (splitting OpenCLIP's fused q/k/v, transposing its text projection and turning the
//! VAE attention's 1×1 convolutions into linear weights as they are read). [`infer_configs`]
//! reads the config values that the tensor shapes determine.

mod clip;
pub(crate) mod header;
mod infer;
pub(crate) mod keymap;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

pub use infer::{infer_configs, ClipShape, InferredConfigs, UnetShape, VaeShape};

use crate::{Error, Result};

/// Which family a single-file checkpoint belongs to (from its key names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// SD 1.x: OpenAI CLIP under `cond_stage_model.transformer`.
    Sd1,
    /// SD 2.x: OpenCLIP under `cond_stage_model.model`.
    Sd2,
    /// SDXL: `conditioner.embedders.0` (CLIP) and `.1` (OpenCLIP), UNet with `label_emb`
    /// (the refiner: OpenCLIP only, as `conditioner.embedders.0.model`, served as
    /// [`Part::TextEncoder2`]).
    Sdxl,
}

/// A model of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// `UNet2DConditionModel` (`unet/`).
    Unet,
    /// `AutoencoderKL` (`vae/`).
    Vae,
    /// The first text encoder (`text_encoder/`).
    TextEncoder,
    /// SDXL's second text encoder (`text_encoder_2/`, with projection).
    TextEncoder2,
}

impl From<crate::lora::Component> for Part {
    fn from(c: crate::lora::Component) -> Self {
        match c {
            crate::lora::Component::Unet => Part::Unet,
            crate::lora::Component::TextEncoder => Part::TextEncoder,
            crate::lora::Component::TextEncoder2 => Part::TextEncoder2,
        }
    }
}

/// How a diffusers tensor is made from the stored ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The stored tensor.
    Same(String),
    /// The stored tensor reshaped (conv 1×1 → linear).
    Reshape(String),
    /// The stored matrix transposed.
    Transpose(String),
    /// Part `i` of `n` equal slices along the first dimension.
    Chunk(String, usize, usize),
}

impl Source {
    fn stored(&self) -> &str {
        match self {
            Source::Same(k) | Source::Reshape(k) | Source::Transpose(k) | Source::Chunk(k, ..) => k,
        }
    }
}

/// diffusers name → (source, diffusers shape).
pub(crate) type PartMap = BTreeMap<String, (Source, Vec<usize>)>;

/// An opened single-file checkpoint.
pub struct SingleFile {
    path: PathBuf,
    kind: Kind,
    tensors: Arc<MmapedSafetensors>,
    parts: BTreeMap<Part, PartMap>,
    unmapped: Vec<String>,
}

impl std::fmt::Debug for SingleFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFile")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("parts", &self.parts.keys().collect::<Vec<_>>())
            .finish()
    }
}

const UNET: &str = "model.diffusion_model.";
const VAE: &str = "first_stage_model.";
const SD1_CLIP: &str = "cond_stage_model.transformer.";
const SD2_CLIP: &str = "cond_stage_model.model.";
const SDXL_CLIP: &str = "conditioner.embedders.0.transformer.";
const SDXL_OPEN_CLIP: &str = "conditioner.embedders.1.model.";
/// The SDXL refiner has only the OpenCLIP encoder, as its first embedder.
const REFINER_OPEN_CLIP: &str = "conditioner.embedders.0.model.";

/// Opens a single-file checkpoint and maps its keys (the tensors are memory-mapped, read when a
/// model asks for them).
pub fn open_single_file(path: impl AsRef<Path>) -> Result<SingleFile> {
    let path = path.as_ref();
    let header = header::read_header(path)?;
    let has = |p: &str| header.keys().any(|k| k.starts_with(p));
    if !has(UNET) {
        let some: Vec<_> = header.keys().take(5).cloned().collect();
        return Err(Error::Checkpoint(format!(
            "{}: not a Stable Diffusion single-file checkpoint (no `{UNET}*` tensors; first keys: {})",
            path.display(),
            some.join(", ")
        )));
    }
    let kind = if has("conditioner.embedders.") || has(&format!("{UNET}label_emb.")) {
        Kind::Sdxl
    } else if has(SD2_CLIP) {
        Kind::Sd2
    } else {
        Kind::Sd1
    };
    let mut parts = BTreeMap::new();
    parts.insert(Part::Unet, unet_part(path, &header)?);
    if has(VAE) {
        parts.insert(Part::Vae, vae_part(path, &header)?);
    }
    let clips = [
        (Part::TextEncoder, SD1_CLIP, false),
        (Part::TextEncoder, SD2_CLIP, true),
        (Part::TextEncoder, SDXL_CLIP, false),
        (Part::TextEncoder2, SDXL_OPEN_CLIP, true),
        (Part::TextEncoder2, REFINER_OPEN_CLIP, true),
    ];
    for (part, prefix, open) in clips {
        if has(prefix) {
            let map = if open {
                clip::open_clip(prefix, &header)
            } else {
                clip::openai(prefix, &header)
            };
            parts.insert(part, map);
        }
    }
    let used: BTreeSet<&str> = parts
        .values()
        .flat_map(|m| m.values().map(|(s, _)| s.stored()))
        .collect();
    let unmapped = header
        .keys()
        .filter(|k| !used.contains(k.as_str()))
        .cloned()
        .collect();
    let tensors = Arc::new(header::mmap(&[path])?);
    Ok(SingleFile {
        path: path.to_path_buf(),
        kind,
        tensors,
        parts,
        unmapped,
    })
}

fn strip<'a>(header: &'a BTreeMap<String, header::TensorInfo>, prefix: &str) -> BTreeSet<&'a str> {
    header
        .keys()
        .filter_map(|k| k.strip_prefix(prefix))
        .collect()
}

fn unet_part(path: &Path, header: &BTreeMap<String, header::TensorInfo>) -> Result<PartMap> {
    let keys = strip(header, UNET);
    let layout = keymap::UnetLayout::from_ldm(&keys).ok_or_else(|| {
        Error::Checkpoint(format!(
            "{}: the UNet's `input_blocks` do not form a diffusers UNet2DConditionModel",
            path.display()
        ))
    })?;
    let map = layout.key_map();
    Ok(keys
        .iter()
        .filter_map(|k| {
            let stored = format!("{UNET}{k}");
            let shape = header[&stored].shape.clone();
            Some((map.to_diffusers(k)?, (Source::Same(stored), shape)))
        })
        .collect())
}

fn vae_part(path: &Path, header: &BTreeMap<String, header::TensorInfo>) -> Result<PartMap> {
    let keys = strip(header, VAE);
    let (blocks, layers) = keymap::vae_layout_from_ldm(&keys).ok_or_else(|| {
        Error::Checkpoint(format!(
            "{}: `{VAE}*` has no encoder.down blocks",
            path.display()
        ))
    })?;
    let map = keymap::vae_key_map(blocks, layers);
    Ok(keys
        .iter()
        .filter_map(|k| {
            let stored = format!("{VAE}{k}");
            let shape = header[&stored].shape.clone();
            let name = map.to_diffusers(k)?;
            if map.is_vae_attention(&name) && shape.len() > 2 {
                let linear = shape[..2].to_vec();
                return Some((name, (Source::Reshape(stored), linear)));
            }
            Some((name, (Source::Same(stored), shape)))
        })
        .collect())
}

impl SingleFile {
    /// The checkpoint's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SD 1.x, SD 2.x or SDXL.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether the checkpoint holds `part`.
    pub fn has(&self, part: Part) -> bool {
        self.parts.contains_key(&part)
    }

    /// The diffusers names and shapes of `part`'s tensors (empty if it has none).
    pub fn keys(&self, part: Part) -> Vec<(String, Vec<usize>)> {
        self.parts
            .get(&part)
            .map(|m| m.iter().map(|(k, (_, s))| (k.clone(), s.clone())).collect())
            .unwrap_or_default()
    }

    /// Stored tensors no part uses (EMA weights, `position_ids`, unknown extras).
    pub fn unmapped_keys(&self) -> &[String] {
        &self.unmapped
    }

    /// A backend that serves `part` under diffusers names.
    pub fn backend(&self, part: Part) -> Result<MappedBackend> {
        let map = self.parts.get(&part).ok_or_else(|| {
            Error::Checkpoint(format!(
                "{}: the checkpoint has no {part:?} tensors",
                self.path.display()
            ))
        })?;
        Ok(MappedBackend {
            tensors: self.tensors.clone(),
            map: Arc::new(map.clone()),
        })
    }

    /// A `VarBuilder` over `part` with diffusers names.
    pub fn var_builder(
        &self,
        part: Part,
        dtype: DType,
        device: &Device,
    ) -> Result<VarBuilder<'static>> {
        let backend: Box<dyn SimpleBackend> = Box::new(self.backend(part)?);
        Ok(VarBuilder::from_backend(backend, dtype, device.clone()))
    }
}

/// Serves a part of a single-file checkpoint under diffusers names (see [`SingleFile::backend`]).
#[derive(Clone)]
pub struct MappedBackend {
    tensors: Arc<MmapedSafetensors>,
    map: Arc<PartMap>,
}

impl MappedBackend {
    /// The tensor `name` (diffusers name) in its stored dtype, on `dev`.
    fn read(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        let (source, shape) = self
            .map
            .get(name)
            .or_else(|| self.map.get(&format!("text_model.{name}")))
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            })?;
        let t = self.tensors.load(source.stored(), dev)?;
        match source {
            Source::Same(_) => Ok(t),
            Source::Reshape(_) => t.reshape(shape.as_slice()),
            Source::Transpose(_) => t.t()?.contiguous(),
            Source::Chunk(_, i, n) => {
                let rows = t.dim(0)? / n;
                t.narrow(0, i * rows, rows)?.contiguous()
            }
        }
    }
}

/// `t`, or candle's shape-mismatch error naming the tensor: the check every `SimpleBackend::get`
/// makes before handing a tensor to a layer.
pub(crate) fn expect_shape(t: Tensor, expected: Shape, name: &str) -> candle_core::Result<Tensor> {
    if t.shape() != &expected {
        Err(candle_core::Error::UnexpectedShape {
            msg: format!("shape mismatch for {name}"),
            expected,
            got: t.shape().clone(),
        }
        .bt())?
    }
    Ok(t)
}

impl SimpleBackend for MappedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        expect_shape(self.get_unchecked(name, dtype, dev)?, s, name)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.read(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}
