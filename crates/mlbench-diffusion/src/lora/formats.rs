//! LoRA file formats → one list of (target module, down, up, alpha).
//!
//! Detected per key from its suffix (see diffusers' `lora_conversion_utils.py` and
//! `_convert_non_diffusers_lora_to_diffusers`, 0.42.1, for the same forms):
//! - kohya / sd-scripts: `lora_unet_<flat>.lora_down.weight`, `.lora_up.weight`, `.alpha`
//!   (`lora_te_`, `lora_te1_` first text encoder, `lora_te2_` second), where `<flat>` is a
//!   diffusers or LDM module path with `.` → `_`; LyCORIS LoCon's Tucker core `.lora_mid.weight`
//!   too;
//! - diffusers / PEFT: `unet.<path>.lora_A.weight`, `.lora_B.weight` (`text_encoder.`,
//!   `text_encoder_2.`; no prefix means the UNet, as diffusers reads it);
//! - old diffusers: `<path>.lora.down.weight` / `.lora.up.weight`,
//!   `<path>.lora_linear_layer.down.weight`, and the attention-processor form
//!   `….attn1.processor.to_q_lora.down.weight` (text encoder: `self_attn.to_q_lora…` = `q_proj`).
//!
//! A kohya name is matched by flattening the model's own module paths, never by guessing dots
//! back into it (`to_q`, `proj_in`, `transformer_blocks` hold underscores).

use std::collections::{BTreeSet, HashMap};

use candle_core::Tensor;

use super::Component;

/// (down suffix, up suffix, format name), longest match first.
const SUFFIXES: [(&str, &str, &str); 5] = [
    (".lora_down.weight", ".lora_up.weight", "kohya"),
    (".lora_A.weight", ".lora_B.weight", "peft"),
    (
        ".lora_linear_layer.down.weight",
        ".lora_linear_layer.up.weight",
        "diffusers-old",
    ),
    (".lora.down.weight", ".lora.up.weight", "diffusers-old"),
    ("_lora.down.weight", "_lora.up.weight", "diffusers-old"),
];

/// Where a LoRA pair goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A kohya name: component and the flattened module path.
    Kohya(Component, String),
    /// A dotted module path; `None`: no component prefix (the UNet).
    Path(Option<Component>, String),
    /// `…to_q_lora` form: the module path up to the attention, and `q`, `k`, `v` or `out`.
    AttnProcessor(Option<Component>, String, String),
}

impl Target {
    /// Whether the pair is meant for `c`.
    pub(crate) fn is_for(&self, c: Component) -> bool {
        match self {
            Target::Kohya(t, _) => *t == c,
            Target::Path(t, _) | Target::AttnProcessor(t, ..) => t.unwrap_or(Component::Unet) == c,
        }
    }
}

/// One LoRA pair.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The key stem as written in the file (for the report).
    pub name: String,
    /// Where it goes.
    pub target: Target,
    /// `[rank, in(, kh, kw)]`.
    pub down: Tensor,
    /// `[out, rank(, 1, 1)]`.
    pub up: Tensor,
    /// `.alpha`, if the file has one.
    pub alpha: Option<f32>,
    /// LyCORIS Tucker core `lora_mid` (`[rank, rank, kh, kw]`; down and up are then 1×1).
    pub mid: Option<Tensor>,
}

/// A LoRA file's pairs and the keys that are not part of one.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub entries: Vec<Entry>,
    pub unknown: Vec<String>,
    pub formats: BTreeSet<&'static str>,
}

fn component_prefix(stem: &str) -> (Option<Component>, &str) {
    for (p, c) in [
        ("unet.", Component::Unet),
        ("text_encoder_2.", Component::TextEncoder2),
        ("text_encoder.", Component::TextEncoder),
    ] {
        if let Some(rest) = stem.strip_prefix(p) {
            return (Some(c), rest);
        }
    }
    (None, stem)
}

fn target(stem: &str, suffix: &str) -> Target {
    for (p, c) in [
        ("lora_unet_", Component::Unet),
        ("lora_te1_", Component::TextEncoder),
        ("lora_te2_", Component::TextEncoder2),
        ("lora_te_", Component::TextEncoder),
    ] {
        if let Some(flat) = stem.strip_prefix(p) {
            return Target::Kohya(c, flat.to_string());
        }
    }
    let (c, path) = component_prefix(stem);
    let path = path.replace(".processor.", ".");
    if suffix.starts_with("_lora") {
        if let Some((module, proj)) = path.rsplit_once('.') {
            if let Some(p) = proj.strip_prefix("to_") {
                return Target::AttnProcessor(c, module.to_string(), p.to_string());
            }
        }
    }
    Target::Path(c, path)
}

fn scalar(t: &Tensor) -> Option<f32> {
    t.flatten_all()
        .ok()?
        .to_dtype(candle_core::DType::F32)
        .ok()?
        .to_vec1::<f32>()
        .ok()?
        .first()
        .copied()
}

/// Groups a LoRA file's tensors into pairs.
pub(crate) fn parse(tensors: &HashMap<String, Tensor>) -> Parsed {
    let mut out = Parsed::default();
    let mut used = BTreeSet::new();
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    for key in keys {
        let Some((down_sfx, up_sfx, format)) = SUFFIXES.iter().find(|(d, _, _)| key.ends_with(d))
        else {
            continue;
        };
        let stem = &key[..key.len() - down_sfx.len()];
        let up_key = format!("{stem}{up_sfx}");
        let Some(up) = tensors.get(&up_key) else {
            continue;
        };
        let alpha_key = [format!("{stem}.alpha"), format!("{key}.alpha")]
            .into_iter()
            .find(|k| tensors.contains_key(k));
        let alpha = alpha_key.as_ref().and_then(|k| scalar(&tensors[k]));
        let mid_key = format!("{stem}.lora_mid.weight");
        let mid = tensors.get(&mid_key).cloned();
        used.insert(key.clone());
        used.insert(up_key);
        used.extend(alpha_key);
        if mid.is_some() {
            used.insert(mid_key);
        }
        out.formats.insert(format);
        out.entries.push(Entry {
            name: stem.to_string(),
            target: target(stem, down_sfx),
            down: tensors[key].clone(),
            up: up.clone(),
            alpha,
            mid,
        });
    }
    let mut unknown: Vec<String> = tensors
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    unknown.sort();
    out.unknown = unknown;
    out
}
