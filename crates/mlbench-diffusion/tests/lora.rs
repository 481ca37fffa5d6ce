//! LoRA merging against tests/golden/lora-fused.safetensors (scripts/reference/lora_goldens.py):
//! kohya (diffusers and LDM module names, alphas, mixed ranks, 1×1 and 3×3 LoCon), PEFT and old
//! diffusers files on a tiny SD-1.5-shaped UNet and CLIP text encoder (tests/data/lora-base).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mlbench_diffusion::lora::{Component, LoraSet, LoraSpec};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lora(name: &str) -> PathBuf {
    root().join("tests/data/lora-files").join(name)
}

fn base_file(c: Component) -> PathBuf {
    let base = root().join("tests/data/lora-base");
    match c {
        Component::Unet => base.join("unet/diffusion_pytorch_model.safetensors"),
        _ => base.join("text_encoder/model.safetensors"),
    }
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn metadata(path: &Path, key: &str) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    serde_json::from_str(header["__metadata__"][key].as_str().unwrap()).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn bitwise_equal(a: &Tensor, b: &Tensor) -> bool {
    a.dims() == b.dims()
        && a.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            == b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Every tensor of `component` read through the LoRA VarBuilder.
fn patched(set: &LoraSet, c: Component) -> BTreeMap<String, Tensor> {
    let file = base_file(c);
    let vb = set
        .var_builder(c, std::slice::from_ref(&file), DType::F32, &Device::Cpu)
        .unwrap();
    load(&file)
        .into_iter()
        .map(|(k, t)| (k.clone(), vb.get(t.dims(), &k).unwrap()))
        .collect()
}

fn specs(list: &serde_json::Value) -> Vec<LoraSpec> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| LoraSpec {
            path: lora(x[0].as_str().unwrap()),
            scale: x[1].as_f64().unwrap() as f32,
        })
        .collect()
}

#[test]
fn every_case_matches_the_fused_golden_and_leaves_the_rest_unchanged() {
    let golden_path = root().join("tests/golden/lora-fused.safetensors");
    let golden = load(&golden_path);
    let cases = metadata(&golden_path, "cases");
    let cases = cases.as_object().unwrap();
    assert!(cases.len() >= 6);
    for (case, list) in cases {
        let set = LoraSet::load(&specs(list)).unwrap();
        let mut checked = 0;
        for c in [Component::Unet, Component::TextEncoder] {
            let base = load(&base_file(c));
            for (key, got) in patched(&set, c) {
                match golden.get(&format!("{case}.{c}.{key}")) {
                    Some(want) => {
                        let d = max_abs_diff(&got, want);
                        assert!(d <= 1e-5, "{case} {c} {key}: max abs diff {d}");
                        assert!(!bitwise_equal(want, &base[&key]), "{case} {key}");
                        checked += 1;
                    }
                    None => assert!(
                        bitwise_equal(&got, &base[&key]),
                        "{case} {c} {key} changed but the golden leaves it"
                    ),
                }
            }
        }
        let in_golden = golden
            .keys()
            .filter(|k| k.starts_with(&format!("{case}.")))
            .count();
        assert_eq!(checked, in_golden, "{case}: golden tensors not served");
    }
}

#[test]
fn scale_zero_gives_the_base_weights() {
    for file in [
        "kohya.safetensors",
        "peft.safetensors",
        "kohya-ldm.safetensors",
    ] {
        let set = LoraSet::load(&[LoraSpec {
            path: lora(file),
            scale: 0.0,
        }])
        .unwrap();
        for c in [Component::Unet, Component::TextEncoder] {
            let base = load(&base_file(c));
            let got = patched(&set, c);
            assert_eq!(got.len(), base.len());
            for (k, t) in got {
                assert!(bitwise_equal(&t, &base[&k]), "{file} {k}");
            }
        }
        let report = set.report();
        assert!(
            !report.files[0].matched.is_empty(),
            "{file}: nothing matched"
        );
    }
}

#[test]
fn report_lists_matched_modules_per_component_and_unmatched_keys() {
    let golden_path = root().join("tests/golden/lora-fused.safetensors");
    let golden = load(&golden_path);
    let set =
        LoraSet::load(&[
            LoraSpec::parse(&format!("{}:0.5", lora("kohya.safetensors").display())).unwrap(),
        ])
        .unwrap();
    // before any component is built, every pair is unmatched
    let pairs = set.report().files[0].pairs;
    assert_eq!(set.report().files[0].unmatched.len(), pairs);
    set.var_builder(
        Component::Unet,
        &[base_file(Component::Unet)],
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let r = set.report();
    let f = &r.files[0];
    assert_eq!(f.scale, 0.5);
    assert_eq!(f.formats, ["kohya"]);
    let want_unet: Vec<String> = golden
        .keys()
        .filter_map(|k| k.strip_prefix("kohya_05.unet."))
        .map(|k| k.strip_suffix(".weight").unwrap().to_string())
        .collect();
    let mut want_unet = want_unet;
    want_unet.sort();
    assert_eq!(f.matched[&Component::Unet], want_unet);
    // the text-encoder pairs were not applied yet: listed as unmatched
    assert!(f.unmatched.iter().all(|k| k.starts_with("lora_te_")));
    assert_eq!(f.unmatched.len(), pairs - want_unet.len());
    set.var_builder(
        Component::TextEncoder,
        &[base_file(Component::TextEncoder)],
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let r = set.report();
    assert!(
        r.files[0].unmatched.is_empty(),
        "{:?}",
        r.files[0].unmatched
    );
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["files"][0]["matched"]["text_encoder"].is_array());
    assert!(r
        .to_string()
        .contains("text_model.encoder.layers.1.mlp.fc1"));
}

#[test]
fn a_lora_for_another_architecture_is_an_error_naming_file_and_keys() {
    let path = lora("other-arch.safetensors");
    let set = LoraSet::load(&[LoraSpec {
        path: path.clone(),
        scale: 1.0,
    }])
    .unwrap();
    let err = set
        .var_builder(
            Component::Unet,
            &[base_file(Component::Unet)],
            DType::F32,
            &Device::Cpu,
        )
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("lora_unet_blocks_0_attn_qkv"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn a_shape_mismatch_names_the_key_and_both_shapes() {
    let set = LoraSet::load(&[LoraSpec {
        path: lora("wrong-shape.safetensors"),
        scale: 1.0,
    }])
    .unwrap();
    let err = set
        .var_builder(
            Component::Unet,
            &[base_file(Component::Unet)],
            DType::F32,
            &Device::Cpu,
        )
        .err()
        .unwrap()
        .to_string();
    let key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight";
    let base = load(&base_file(Component::Unet));
    let lora_up = load(&lora("wrong-shape.safetensors"));
    let up = lora_up
        .iter()
        .find(|(k, _)| k.ends_with("lora_up.weight"))
        .unwrap()
        .1;
    assert!(err.contains(key), "{err}");
    assert!(err.contains(&format!("{:?}", base[key].dims())), "{err}");
    assert!(err.contains(&format!("{:?}", up.dims())), "{err}");
}

#[test]
fn truncated_and_non_safetensors_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(lora("kohya.safetensors")).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for at in [4, 100, bytes.len() - 1] {
        let cut_at = dir.path().join(format!("cut{at}.safetensors"));
        std::fs::write(&cut_at, &bytes[..at]).unwrap();
        let spec = LoraSpec {
            path: cut_at.clone(),
            scale: 1.0,
        };
        let err = LoraSet::load(&[spec]).unwrap_err().to_string();
        assert!(
            err.contains(&cut_at.display().to_string()) && err.contains("truncated"),
            "{err}"
        );
    }
    let text = dir.path().join("notes.safetensors");
    std::fs::write(&text, "this is not a safetensors file at all").unwrap();
    let missing = dir.path().join("missing.safetensors");
    for (path, what) in [
        (&cut, "truncated"),
        (&text, "not a readable safetensors"),
        (&missing, "missing"),
    ] {
        let err = LoraSet::load(&[LoraSpec {
            path: path.clone(),
            scale: 1.0,
        }])
        .unwrap_err()
        .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        if what != "missing" {
            assert!(err.contains(what), "{err}");
        }
    }
    // a safetensors file without LoRA pairs (a base model) is refused too
    let err = LoraSet::load(&[LoraSpec {
        path: base_file(Component::Unet),
        scale: 1.0,
    }])
    .unwrap_err()
    .to_string();
    assert!(err.contains("no LoRA weights"), "{err}");
}

#[test]
fn lora_spec_parsing() {
    let p = |s: &str| LoraSpec::parse(s).unwrap();
    assert_eq!(
        p("a.safetensors"),
        LoraSpec {
            path: "a.safetensors".into(),
            scale: 1.0
        }
    );
    assert_eq!(
        p("a.safetensors:0.5"),
        LoraSpec {
            path: "a.safetensors".into(),
            scale: 0.5
        }
    );
    assert_eq!(
        p("dir/a.safetensors:-1"),
        LoraSpec {
            path: "dir/a.safetensors".into(),
            scale: -1.0
        }
    );
    assert_eq!(
        p(r"C:\l\a.safetensors"),
        LoraSpec {
            path: r"C:\l\a.safetensors".into(),
            scale: 1.0
        }
    );
    assert_eq!(
        p(r"C:\l\a.safetensors:0.25"),
        LoraSpec {
            path: r"C:\l\a.safetensors".into(),
            scale: 0.25
        }
    );
    assert!(LoraSpec::parse("").is_err());
    assert!(LoraSpec::parse(":0.5").is_err());
    assert!(LoraSpec::parse("a.safetensors:inf").is_err());
    assert!(LoraSet::load(&[]).unwrap().is_empty());
}

/// The SDXL kohya case (sgm UNet names, `lora_te1_` / `lora_te2_`, text projection) on the tiny
/// SDXL models, from diffusers folders and from the single-file checkpoint.
#[test]
fn sdxl_kohya_lora_on_folders_and_single_file() {
    use mlbench_diffusion::single_file::{open_single_file, Part};
    let golden_path = root().join("tests/golden/lora-fused.safetensors");
    let golden = load(&golden_path);
    let cases = metadata(&golden_path, "cases_sdxl");
    let sdxl = root().join("tests/data/single-file/sdxl");
    let sf = open_single_file(root().join("tests/data/single-file/sdxl.safetensors")).unwrap();
    for (case, list) in cases.as_object().unwrap() {
        let set = LoraSet::load(&specs(list)).unwrap();
        let mut checked = 0;
        for (c, part, file) in [
            (
                Component::Unet,
                Part::Unet,
                "unet/diffusion_pytorch_model.safetensors",
            ),
            (
                Component::TextEncoder,
                Part::TextEncoder,
                "text_encoder/model.safetensors",
            ),
            (
                Component::TextEncoder2,
                Part::TextEncoder2,
                "text_encoder_2/model.safetensors",
            ),
        ] {
            let path = sdxl.join(file);
            let base = load(&path);
            let from_folder = set
                .var_builder(c, std::slice::from_ref(&path), DType::F32, &Device::Cpu)
                .unwrap();
            let shapes: BTreeMap<String, Vec<usize>> = sf.keys(part).into_iter().collect();
            let backend = Box::new(sf.backend(part).unwrap());
            let from_single = set
                .patch(c, backend, &shapes, DType::F32, &Device::Cpu)
                .unwrap();
            for (key, b) in &base {
                for vb in [&from_folder, &from_single] {
                    let got = vb.get(b.dims(), key).unwrap();
                    match golden.get(&format!("{case}.{c}.{key}")) {
                        Some(want) => {
                            let d = max_abs_diff(&got, want);
                            assert!(d <= 1e-5, "{case} {c} {key}: max abs diff {d}");
                            checked += 1;
                        }
                        None => assert!(bitwise_equal(&got, b), "{case} {c} {key} changed"),
                    }
                }
            }
        }
        let in_golden = golden
            .keys()
            .filter(|k| k.starts_with(&format!("{case}.")))
            .count();
        assert_eq!(checked, 2 * in_golden, "{case}");
        let r = set.report();
        assert!(
            r.files[0].unmatched.is_empty(),
            "{:?}",
            r.files[0].unmatched
        );
        assert_eq!(r.files[0].matched.len(), 3);
    }
}
