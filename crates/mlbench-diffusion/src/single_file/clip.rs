//! Text-encoder keys of single-file checkpoints → transformers `CLIPTextModel` names.
//!
//! OpenAI CLIP (SD 1.x `cond_stage_model.transformer.*`, SDXL `conditioner.embedders.0.transformer.*`)
//! is stored in the transformers layout already; OpenCLIP (SD 2.x `cond_stage_model.model.*`,
//! SDXL `conditioner.embedders.1.model.*`) is renamed and its fused `in_proj` split into q/k/v,
//! as diffusers' `convert_open_clip_checkpoint` does.

use std::collections::BTreeMap;

use super::header::TensorInfo;
use super::Source;

/// `text_model.…` names for the keys under `prefix` (OpenAI CLIP in transformers layout; old
/// checkpoints omit `text_model.`).
pub(crate) fn openai(
    prefix: &str,
    header: &BTreeMap<String, TensorInfo>,
) -> BTreeMap<String, (Source, Vec<usize>)> {
    let mut out = BTreeMap::new();
    for (key, info) in header {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        if rest.ends_with("position_ids") {
            continue;
        }
        let name = if rest.starts_with("text_model.") || rest.starts_with("text_projection") {
            rest.to_string()
        } else {
            format!("text_model.{rest}")
        };
        out.insert(name, (Source::Same(key.clone()), info.shape.clone()));
    }
    out
}

/// OpenCLIP names inside a residual block → transformers names inside an encoder layer.
const BLOCK: [(&str, &str); 5] = [
    ("ln_1", "layer_norm1"),
    ("ln_2", "layer_norm2"),
    ("mlp.c_fc", "mlp.fc1"),
    ("mlp.c_proj", "mlp.fc2"),
    ("attn.out_proj", "self_attn.out_proj"),
];

/// transformers names for the OpenCLIP keys under `prefix`.
pub(crate) fn open_clip(
    prefix: &str,
    header: &BTreeMap<String, TensorInfo>,
) -> BTreeMap<String, (Source, Vec<usize>)> {
    let mut out = BTreeMap::new();
    for (key, info) in header {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let shape = info.shape.clone();
        let same = |name: &str| (name.to_string(), (Source::Same(key.clone()), shape.clone()));
        let (name, src) = match rest {
            "token_embedding.weight" => same("text_model.embeddings.token_embedding.weight"),
            "positional_embedding" => same("text_model.embeddings.position_embedding.weight"),
            "ln_final.weight" => same("text_model.final_layer_norm.weight"),
            "ln_final.bias" => same("text_model.final_layer_norm.bias"),
            "text_projection" if shape.len() == 2 => (
                "text_projection.weight".to_string(),
                (Source::Transpose(key.clone()), vec![shape[1], shape[0]]),
            ),
            _ => {
                let Some(block) = rest.strip_prefix("transformer.resblocks.") else {
                    continue;
                };
                let Some((layer, inner)) = block.split_once('.') else {
                    continue;
                };
                let base = format!("text_model.encoder.layers.{layer}");
                if let Some(p) = inner.strip_prefix("attn.in_proj_") {
                    // fused [3·d, …] q/k/v
                    let Some(&rows) = shape.first() else { continue };
                    let mut part = shape.clone();
                    part[0] = rows / 3;
                    for (i, q) in ["q", "k", "v"].iter().enumerate() {
                        out.insert(
                            format!("{base}.self_attn.{q}_proj.{p}"),
                            (Source::Chunk(key.clone(), i, 3), part.clone()),
                        );
                    }
                    continue;
                }
                let Some((o, d)) = BLOCK
                    .iter()
                    .find(|(o, _)| inner.starts_with(&format!("{o}.")))
                else {
                    continue;
                };
                same(&format!("{base}.{d}{}", &inner[o.len()..]))
            }
        };
        out.insert(name, src);
    }
    out
}
