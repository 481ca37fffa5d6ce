//! Module paths of the original LDM / sgm checkpoints ↔ diffusers, for the UNet and the VAE.
//!
//! Port of diffusers' `convert_ldm_unet_checkpoint` / `convert_ldm_vae_checkpoint`
//! (`loaders/single_file_utils.py`, diffusers 0.42.1) as a table of module prefixes that works
//! in both directions: LDM → diffusers for single-file checkpoints, diffusers → LDM for kohya
//! LoRA files written with LDM module names (`lora_unet_input_blocks_1_1_proj_in`).

use std::collections::{BTreeMap, BTreeSet};

/// What the inside of a prefix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    /// Same names on both sides (attention blocks of the UNet, convolutions).
    Same,
    /// UNet ResNet block (`in_layers.0` ↔ `norm1`, …).
    UnetResnet,
    /// VAE ResNet block (`nin_shortcut` ↔ `conv_shortcut`).
    VaeResnet,
    /// VAE mid-block attention (`q` ↔ `to_q`, `proj_out` ↔ `to_out.0`, `norm` ↔ `group_norm`).
    VaeAttention,
}

/// (diffusers, LDM) names inside a block.
fn inner_names(inner: Inner) -> &'static [(&'static str, &'static str)] {
    match inner {
        Inner::Same => &[],
        Inner::UnetResnet => &[
            ("norm1", "in_layers.0"),
            ("conv1", "in_layers.2"),
            ("time_emb_proj", "emb_layers.1"),
            ("norm2", "out_layers.0"),
            ("conv2", "out_layers.3"),
            ("conv_shortcut", "skip_connection"),
        ],
        Inner::VaeResnet => &[("conv_shortcut", "nin_shortcut")],
        Inner::VaeAttention => &[
            ("group_norm", "norm"),
            ("to_q", "q"),
            ("to_k", "k"),
            ("to_v", "v"),
            ("to_out.0", "proj_out"),
        ],
    }
}

/// A two-way table of module prefixes.
#[derive(Debug, Clone)]
pub(crate) struct KeyMap {
    /// (inner kind, diffusers prefix, LDM prefix).
    entries: Vec<(Inner, String, String)>,
}

impl KeyMap {
    /// The LDM name of a diffusers tensor or module name (`None`: outside the table).
    pub(crate) fn to_ldm(&self, key: &str) -> Option<String> {
        self.map(key, false)
    }

    /// The diffusers name of an LDM tensor or module name (`None`: outside the table).
    pub(crate) fn to_diffusers(&self, key: &str) -> Option<String> {
        self.map(key, true)
    }

    fn map(&self, key: &str, from_ldm: bool) -> Option<String> {
        for (inner, d, l) in &self.entries {
            let (from, to) = if from_ldm { (l, d) } else { (d, l) };
            let Some(rest) = key.strip_prefix(from.as_str()) else {
                continue;
            };
            let Some(rest) = rest.strip_prefix('.') else {
                if rest.is_empty() {
                    return Some(to.clone());
                }
                continue;
            };
            let mut rest = rest.to_string();
            for (a, b) in inner_names(*inner) {
                let (a, b) = if from_ldm { (b, a) } else { (a, b) };
                if rest == *a || rest.starts_with(&format!("{a}.")) {
                    rest = format!("{b}{}", &rest[a.len()..]);
                    break;
                }
            }
            return Some(format!("{to}.{rest}"));
        }
        None
    }

    /// Whether a diffusers VAE key is a mid-block attention weight (a linear layer in diffusers,
    /// a 1×1 convolution in LDM checkpoints).
    pub(crate) fn is_vae_attention(&self, diffusers_key: &str) -> bool {
        self.entries.iter().any(|(inner, d, _)| {
            *inner == Inner::VaeAttention && diffusers_key.starts_with(&format!("{d}."))
        })
    }
}

/// Distinct values of the `i`th dot-separated field of the keys that start with `prefix`.
fn indices<'a>(keys: impl IntoIterator<Item = &'a str>, prefix: &str) -> BTreeSet<usize> {
    keys.into_iter()
        .filter_map(|k| k.strip_prefix(prefix))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect()
}

/// The block structure of a `UNet2DConditionModel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnetLayout {
    /// Number of down (and up) blocks.
    pub blocks: usize,
    /// ResNets per down block (`layers_per_block`; up blocks have one more).
    pub layers: usize,
    /// Whether each up block (diffusers order) has attentions.
    pub up_attention: Vec<bool>,
}

impl UnetLayout {
    /// From diffusers key names.
    pub(crate) fn from_diffusers(keys: &BTreeSet<&str>) -> Option<Self> {
        let blocks = indices(keys.iter().copied(), "down_blocks.").len();
        let layers = indices(keys.iter().copied(), "down_blocks.0.resnets.").len();
        if blocks == 0 || layers == 0 {
            return None;
        }
        let up_attention = (0..blocks)
            .map(|i| {
                let p = format!("up_blocks.{i}.attentions.");
                keys.iter().any(|k| k.starts_with(&p))
            })
            .collect();
        Some(Self {
            blocks,
            layers,
            up_attention,
        })
    }

    /// From LDM key names (without the `model.diffusion_model.` prefix).
    pub(crate) fn from_ldm(keys: &BTreeSet<&str>) -> Option<Self> {
        let inputs = indices(keys.iter().copied(), "input_blocks.");
        let count = inputs.iter().max()? + 1;
        let first_op = inputs
            .iter()
            .copied()
            .find(|i| keys.contains(format!("input_blocks.{i}.0.op.weight").as_str()));
        let layers = match first_op {
            Some(i) => i.checked_sub(1)?,
            None => count.checked_sub(1)?,
        };
        if layers == 0 || !count.is_multiple_of(layers + 1) {
            return None;
        }
        let blocks = count / (layers + 1);
        let up_attention = (0..blocks)
            .map(|i| {
                let p = format!("output_blocks.{}.1.", i * (layers + 1));
                keys.iter().any(|k| k.starts_with(&p))
            })
            .collect();
        Some(Self {
            blocks,
            layers,
            up_attention,
        })
    }

    /// The prefix table for this layout.
    pub(crate) fn key_map(&self) -> KeyMap {
        let (n, l) = (self.blocks, self.layers);
        let mut e: Vec<(Inner, String, String)> = [
            (Inner::Same, "time_embedding.linear_1", "time_embed.0"),
            (Inner::Same, "time_embedding.linear_2", "time_embed.2"),
            (Inner::Same, "add_embedding.linear_1", "label_emb.0.0"),
            (Inner::Same, "add_embedding.linear_2", "label_emb.0.2"),
            (Inner::Same, "conv_in", "input_blocks.0.0"),
            (Inner::Same, "conv_norm_out", "out.0"),
            (Inner::Same, "conv_out", "out.2"),
            (Inner::UnetResnet, "mid_block.resnets.0", "middle_block.0"),
            (Inner::Same, "mid_block.attentions.0", "middle_block.1"),
            (Inner::UnetResnet, "mid_block.resnets.1", "middle_block.2"),
        ]
        .into_iter()
        .map(|(i, d, l)| (i, d.to_string(), l.to_string()))
        .collect();
        for i in 0..n {
            for j in 0..l {
                let k = i * (l + 1) + j + 1;
                e.push((
                    Inner::UnetResnet,
                    format!("down_blocks.{i}.resnets.{j}"),
                    format!("input_blocks.{k}.0"),
                ));
                e.push((
                    Inner::Same,
                    format!("down_blocks.{i}.attentions.{j}"),
                    format!("input_blocks.{k}.1"),
                ));
            }
            if i + 1 < n {
                e.push((
                    Inner::Same,
                    format!("down_blocks.{i}.downsamplers.0.conv"),
                    format!("input_blocks.{}.0.op", (i + 1) * (l + 1)),
                ));
            }
        }
        for i in 0..n {
            for j in 0..=l {
                let k = i * (l + 1) + j;
                e.push((
                    Inner::UnetResnet,
                    format!("up_blocks.{i}.resnets.{j}"),
                    format!("output_blocks.{k}.0"),
                ));
                if self.up_attention[i] {
                    // without attentions, `.1` is the upsampler
                    e.push((
                        Inner::Same,
                        format!("up_blocks.{i}.attentions.{j}"),
                        format!("output_blocks.{k}.1"),
                    ));
                }
            }
            if i + 1 < n {
                // the upsampler comes after the attention when the block has one
                let at = if self.up_attention[i] { 2 } else { 1 };
                e.push((
                    Inner::Same,
                    format!("up_blocks.{i}.upsamplers.0.conv"),
                    format!("output_blocks.{}.{at}.conv", i * (l + 1) + l),
                ));
            }
        }
        KeyMap { entries: e }
    }
}

/// The prefix table of an `AutoencoderKL` with `blocks` blocks of `layers` ResNets (decoder
/// blocks have one more; LDM numbers decoder blocks from the bottom, diffusers from the top).
pub(crate) fn vae_key_map(blocks: usize, layers: usize) -> KeyMap {
    let mut e: Vec<(Inner, String, String)> = Vec::new();
    let mut push = |i: Inner, d: String, l: String| e.push((i, d, l));
    for side in ["encoder", "decoder"] {
        push(
            Inner::Same,
            format!("{side}.conv_norm_out"),
            format!("{side}.norm_out"),
        );
        for (d, l) in [("resnets.0", "block_1"), ("resnets.1", "block_2")] {
            push(
                Inner::VaeResnet,
                format!("{side}.mid_block.{d}"),
                format!("{side}.mid.{l}"),
            );
        }
        push(
            Inner::VaeAttention,
            format!("{side}.mid_block.attentions.0"),
            format!("{side}.mid.attn_1"),
        );
    }
    for i in 0..blocks {
        for j in 0..layers {
            push(
                Inner::VaeResnet,
                format!("encoder.down_blocks.{i}.resnets.{j}"),
                format!("encoder.down.{i}.block.{j}"),
            );
        }
        let up = blocks - 1 - i;
        for j in 0..=layers {
            push(
                Inner::VaeResnet,
                format!("decoder.up_blocks.{i}.resnets.{j}"),
                format!("decoder.up.{up}.block.{j}"),
            );
        }
        if i + 1 < blocks {
            push(
                Inner::Same,
                format!("encoder.down_blocks.{i}.downsamplers.0.conv"),
                format!("encoder.down.{i}.downsample.conv"),
            );
            push(
                Inner::Same,
                format!("decoder.up_blocks.{i}.upsamplers.0.conv"),
                format!("decoder.up.{up}.upsample.conv"),
            );
        }
    }
    // conv_in, conv_out, quant_conv, post_quant_conv: same names
    for same in [
        "encoder.conv_in",
        "encoder.conv_out",
        "decoder.conv_in",
        "decoder.conv_out",
        "quant_conv",
        "post_quant_conv",
    ] {
        push(Inner::Same, same.to_string(), same.to_string());
    }
    KeyMap { entries: e }
}

/// VAE block counts from LDM key names (without the `first_stage_model.` prefix).
pub(crate) fn vae_layout_from_ldm(keys: &BTreeSet<&str>) -> Option<(usize, usize)> {
    let blocks = indices(keys.iter().copied(), "encoder.down.").len();
    let layers = indices(keys.iter().copied(), "encoder.down.0.block.").len();
    (blocks > 0 && layers > 0).then_some((blocks, layers))
}

/// diffusers name → LDM name of every UNet tensor in `keys` (diffusers names) that the table
/// covers.
pub(crate) fn unet_ldm_names(keys: &BTreeSet<&str>) -> BTreeMap<String, String> {
    let Some(layout) = UnetLayout::from_diffusers(keys) else {
        return BTreeMap::new();
    };
    let map = layout.key_map();
    keys.iter()
        .filter_map(|k| Some((k.to_string(), map.to_ldm(k)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (diffusers, LDM) module names of the real SD 1.5 / SDXL UNet and SD VAE layouts, written
    /// by scripts/reference/lora_goldens.py and checked there with diffusers' converter.
    fn real_pairs(name: &str) -> Vec<(String, String)> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/single-file/layouts.json"
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        serde_json::from_value(v[name].clone()).unwrap()
    }

    fn weights<'a>(names: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
        names.map(|n| format!("{n}.weight")).collect()
    }

    fn refs(s: &BTreeSet<String>) -> BTreeSet<&str> {
        s.iter().map(String::as_str).collect()
    }

    #[test]
    fn real_unet_layouts_map_both_ways() {
        for name in ["sd15_unet", "sdxl_unet"] {
            let pairs = real_pairs(name);
            assert!(pairs.len() > 100, "{name}");
            let ldm = weights(pairs.iter().map(|(_, l)| l));
            let diffusers = weights(pairs.iter().map(|(d, _)| d));
            let layout = UnetLayout::from_ldm(&refs(&ldm)).unwrap();
            assert_eq!(
                UnetLayout::from_diffusers(&refs(&diffusers)),
                Some(layout.clone())
            );
            let map = layout.key_map();
            for (d, l) in &pairs {
                assert_eq!(
                    map.to_diffusers(l).as_deref(),
                    Some(d.as_str()),
                    "{name}: {l}"
                );
                assert_eq!(map.to_ldm(d).as_deref(), Some(l.as_str()), "{name}: {d}");
            }
        }
    }

    #[test]
    fn real_vae_layout_maps_both_ways() {
        let pairs = real_pairs("sd_vae");
        let ldm = weights(pairs.iter().map(|(_, l)| l));
        let (blocks, layers) = vae_layout_from_ldm(&refs(&ldm)).unwrap();
        assert_eq!((blocks, layers), (4, 2));
        let map = vae_key_map(blocks, layers);
        for (d, l) in &pairs {
            assert_eq!(map.to_diffusers(l).as_deref(), Some(d.as_str()), "{l}");
            assert_eq!(map.to_ldm(d).as_deref(), Some(l.as_str()), "{d}");
        }
    }
}
