//! Single-file checkpoints (tests/data/single-file/*.safetensors, made by
//! scripts/reference/lora_goldens.py from diffusers models and checked there with diffusers' own
//! LDM → diffusers conversion) served under diffusers names, against the diffusers models.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mlbench_diffusion::lora::{Component, LoraSet, LoraSpec};
use mlbench_diffusion::single_file::{infer_configs, open_single_file, Kind, Part, SingleFile};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data(p: &str) -> PathBuf {
    root().join("tests/data").join(p)
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn config(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
}

fn model_file(dir: &Path) -> PathBuf {
    ["diffusion_pytorch_model.safetensors", "model.safetensors"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .unwrap()
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Every diffusers tensor of `dir` is served, with the same shape and values; returns the served
/// names that the diffusers model does not have.
fn check_part(sf: &SingleFile, part: Part, dir: &Path) -> Vec<String> {
    let want = load(&model_file(dir));
    let vb = sf.var_builder(part, DType::F32, &Device::Cpu).unwrap();
    let served: BTreeMap<String, Vec<usize>> = sf.keys(part).into_iter().collect();
    for (k, w) in &want {
        assert!(served.contains_key(k), "{part:?}: {k} not served");
        let got = vb.get(w.dims(), k).unwrap();
        assert_eq!(to_vec(&got), to_vec(w), "{part:?}: {k} differs");
    }
    served
        .into_keys()
        .filter(|k| !want.contains_key(k))
        .collect()
}

fn dims(v: &serde_json::Value) -> Vec<usize> {
    match v {
        serde_json::Value::Array(a) => a.iter().map(|x| x.as_u64().unwrap() as usize).collect(),
        x => vec![x.as_u64().unwrap() as usize],
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sd1_unet_vae_and_clip_equal_the_diffusers_models() {
    let sf = open_single_file(data("single-file/sd1.safetensors")).unwrap();
    assert_eq!(sf.kind(), Kind::Sd1);
    assert!(!sf.has(Part::TextEncoder2));
    for (part, dir) in [
        (Part::Unet, "unet"),
        (Part::Vae, "vae"),
        (Part::TextEncoder, "text_encoder"),
    ] {
        let extra = check_part(&sf, part, &data("lora-base").join(dir));
        assert!(extra.is_empty(), "{part:?} serves extra {extra:?}");
    }
    assert!(sf.unmapped_keys().is_empty(), "{:?}", sf.unmapped_keys());

    let cfg = infer_configs(&sf).unwrap();
    let unet = config(&data("lora-base/unet"));
    assert_eq!(cfg.unet.in_channels, dims(&unet["in_channels"])[0]);
    assert_eq!(cfg.unet.out_channels, dims(&unet["out_channels"])[0]);
    assert_eq!(
        cfg.unet.block_out_channels,
        dims(&unet["block_out_channels"])
    );
    assert_eq!(
        cfg.unet.layers_per_block,
        dims(&unet["layers_per_block"])[0]
    );
    assert_eq!(
        cfg.unet.cross_attention_dim,
        dims(&unet["cross_attention_dim"])[0]
    );
    assert_eq!(
        cfg.unet.down_block_types,
        strings(&unet["down_block_types"])
    );
    assert_eq!(cfg.unet.up_block_types, strings(&unet["up_block_types"]));
    assert_eq!(
        cfg.unet.use_linear_projection,
        unet["use_linear_projection"].as_bool().unwrap()
    );
    assert_eq!(cfg.unet.addition_embed_type, None);
    let vae = config(&data("lora-base/vae"));
    let v = cfg.vae.unwrap();
    assert_eq!(v.block_out_channels, dims(&vae["block_out_channels"]));
    assert_eq!(v.layers_per_block, dims(&vae["layers_per_block"])[0]);
    assert_eq!(v.latent_channels, dims(&vae["latent_channels"])[0]);
    assert_eq!((v.in_channels, v.out_channels), (3, 3));
    check_clip(
        cfg.text_encoder.as_ref().unwrap(),
        &data("lora-base/text_encoder"),
    );
}

fn check_clip(c: &mlbench_diffusion::single_file::ClipShape, dir: &Path) {
    let cfg = config(dir);
    for (got, key) in [
        (c.vocab_size, "vocab_size"),
        (c.hidden_size, "hidden_size"),
        (c.intermediate_size, "intermediate_size"),
        (c.num_hidden_layers, "num_hidden_layers"),
        (c.max_position_embeddings, "max_position_embeddings"),
    ] {
        assert_eq!(got, dims(&cfg[key])[0], "{key}");
    }
    assert_eq!(c.hidden_act, cfg["hidden_act"].as_str().unwrap());
}

#[test]
fn sd2_open_clip_is_split_into_q_k_v() {
    let sf = open_single_file(data("single-file/sd2.safetensors")).unwrap();
    assert_eq!(sf.kind(), Kind::Sd2);
    assert!(!sf.has(Part::Vae));
    check_part(&sf, Part::Unet, &data("lora-base/unet"));
    // the file has one layer more than diffusers' SD 2 text encoder keeps
    let extra = check_part(
        &sf,
        Part::TextEncoder,
        &data("single-file/sd2/text_encoder"),
    );
    assert!(!extra.is_empty());
    assert!(
        extra
            .iter()
            .all(|k| k.starts_with("text_model.encoder.layers.2.")),
        "{extra:?}"
    );
    let cfg = infer_configs(&sf).unwrap();
    let te = cfg.text_encoder.unwrap();
    check_clip(&te, &data("single-file/sd2/text_encoder"));
    assert_eq!(te.layers_in_file, te.num_hidden_layers + 1);
    assert_eq!(cfg.unet.sample_size, 96);
}

#[test]
fn sdxl_unet_and_both_text_encoders_equal_the_diffusers_models() {
    let sf = open_single_file(data("single-file/sdxl.safetensors")).unwrap();
    assert_eq!(sf.kind(), Kind::Sdxl);
    for (part, dir) in [
        (Part::Unet, "unet"),
        (Part::TextEncoder, "text_encoder"),
        (Part::TextEncoder2, "text_encoder_2"),
    ] {
        let extra = check_part(&sf, part, &data("single-file/sdxl").join(dir));
        assert!(extra.is_empty(), "{part:?} serves extra {extra:?}");
    }
    assert!(sf.unmapped_keys().is_empty(), "{:?}", sf.unmapped_keys());
    let cfg = infer_configs(&sf).unwrap();
    let unet = config(&data("single-file/sdxl/unet"));
    assert_eq!(
        cfg.unet.block_out_channels,
        dims(&unet["block_out_channels"])
    );
    assert_eq!(
        cfg.unet.transformer_layers_per_block,
        dims(&unet["transformer_layers_per_block"])
    );
    assert_eq!(
        cfg.unet.down_block_types,
        strings(&unet["down_block_types"])
    );
    assert_eq!(cfg.unet.up_block_types, strings(&unet["up_block_types"]));
    assert_eq!(
        cfg.unet.cross_attention_dim,
        dims(&unet["cross_attention_dim"])[0]
    );
    assert!(cfg.unet.use_linear_projection);
    assert_eq!(cfg.unet.addition_embed_type.as_deref(), Some("text_time"));
    assert_eq!(
        cfg.unet.projection_class_embeddings_input_dim,
        Some(dims(&unet["projection_class_embeddings_input_dim"])[0])
    );
    check_clip(
        cfg.text_encoder.as_ref().unwrap(),
        &data("single-file/sdxl/text_encoder"),
    );
    let te2 = cfg.text_encoder_2.unwrap();
    check_clip(&te2, &data("single-file/sdxl/text_encoder_2"));
    let te2_cfg = config(&data("single-file/sdxl/text_encoder_2"));
    assert_eq!(
        te2.projection_dim,
        Some(dims(&te2_cfg["projection_dim"])[0])
    );
}

#[test]
fn lora_on_a_single_file_checkpoint_matches_the_golden() {
    let sf = open_single_file(data("single-file/sd1.safetensors")).unwrap();
    let golden = load(&root().join("tests/golden/lora-fused.safetensors"));
    let set = LoraSet::load(&[LoraSpec {
        path: data("lora-files/kohya-ldm.safetensors"),
        scale: 0.8,
    }])
    .unwrap();
    let shapes: BTreeMap<String, Vec<usize>> = sf.keys(Part::Unet).into_iter().collect();
    let vb = set
        .single_file_var_builder(Component::Unet, &sf, DType::F32, &Device::Cpu)
        .unwrap();
    let mut n = 0;
    for (k, shape) in &shapes {
        if let Some(want) = golden.get(&format!("kohya_ldm.unet.{k}")) {
            let got = vb.get(shape.as_slice(), k).unwrap();
            let d = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap();
            assert!(d.to_scalar::<f32>().unwrap() <= 1e-5, "{k}");
            n += 1;
        }
    }
    assert!(n > 0);
    assert_eq!(
        n,
        golden
            .keys()
            .filter(|k| k.starts_with("kohya_ldm.unet."))
            .count()
    );
}

#[test]
fn not_a_checkpoint_and_truncated_files_are_clear_errors() {
    let lora = data("lora-files/kohya.safetensors");
    let err = open_single_file(&lora).unwrap_err().to_string();
    assert!(
        err.contains("not a Stable Diffusion single-file checkpoint"),
        "{err}"
    );
    assert!(err.contains(&lora.display().to_string()), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(data("single-file/sd1.safetensors")).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let err = open_single_file(&cut).unwrap_err().to_string();
    assert!(
        err.contains("truncated") && err.contains("cut.safetensors"),
        "{err}"
    );
}
