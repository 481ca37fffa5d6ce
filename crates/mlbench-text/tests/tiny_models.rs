//! Parity with PyTorch on tiny random checkpoints (tests/data/text-tiny-*, made with
//! tests/golden/text-tiny.safetensors by scripts/reference/text_goldens.py tiny): the same
//! token ids from our tokenizer, and the same logits for a padded batch of texts of different
//! lengths, one of them longer than the model's maximum length.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_text::tokenize::Batch;
use mlbench_text::{ClassifyParams, ScoreFunction, TextClassifier};

/// The texts of text_goldens.py's TEXTS, in the same order.
fn texts() -> Vec<String> {
    vec![
        "I loved this film!".into(),
        "The service was slow and the food arrived cold, so we will not come back.".into(),
        "ok".into(),
        "Café déjà vu: NAÏVE résumé über straße 123.".into(),
        ["a very long review that keeps going and going"; 12].join(" "),
    ]
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        root().join("tests/golden/text-tiny.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn load(name: &str) -> TextClassifier {
    let dir = root().join(format!("tests/data/text-tiny-{name}"));
    let files = ModelFiles::new(ModelSource::Dir(dir), Progress::none());
    TextClassifier::load(&files, &Device::Cpu, DType::F32).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::U32).unwrap().to_vec2::<u32>().unwrap()
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

/// Our tokenization equals the golden's, and our logits of the golden's ids equal PyTorch's.
fn check(name: &str) {
    let model = load(name);
    let g = golden();
    let ids = rows(&g[&format!("{name}.input_ids")]);
    let mask = rows(&g[&format!("{name}.attention_mask")]);
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (batch, truncated) = model.tokenizer().encode(&refs, 0, &Device::Cpu).unwrap();
    assert_eq!(rows(&batch.input_ids), ids, "{name}: token ids");
    assert_eq!(rows(&batch.attention_mask), mask, "{name}: attention mask");
    // The long text (index 4) is cut at the model's 40 tokens, and so is any other text that
    // fills all 40 positions of the golden batch (DeBERTa's tiny unigram vocabulary makes many
    // tokens); no other.
    assert!(
        truncated.iter().any(|t| t.index == 4),
        "{name}: {truncated:?}"
    );
    for t in &truncated {
        assert_eq!(t.kept, 40);
        assert!(t.tokens > 40);
        assert_eq!(mask[t.index].iter().sum::<u32>(), 40, "{name}: {t:?}");
    }

    let logits = model.logits(&batch).unwrap();
    let want = &g[&format!("{name}.logits")];
    let diff = max_abs_diff(&logits, want);
    eprintln!("{name}: max abs logit diff {diff:.2e}");
    assert!(diff < 1e-4, "{name}: logits differ by {diff}");

    // Each text alone (no padding) gives the same logits as in the padded batch.
    for (i, text) in refs.iter().enumerate() {
        let (one, _) = model.tokenizer().encode(&[text], 0, &Device::Cpu).unwrap();
        let alone = model.logits(&one).unwrap();
        let diff = max_abs_diff(&alone.squeeze(0).unwrap(), &want.get(i).unwrap());
        assert!(diff < 1e-4, "{name}: text {i} alone differs by {diff}");
    }
}

#[test]
fn bert_matches_pytorch() {
    check("bert");
}

#[test]
fn bert_multilabel_matches_pytorch_and_uses_sigmoid() {
    check("bert-multilabel");
    let model = load("bert-multilabel");
    assert_eq!(model.default_function(), ScoreFunction::Sigmoid);
    let g = golden();
    let want = g["bert-multilabel.logits"]
        .get(0)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let params = ClassifyParams {
        top_k: 0,
        ..ClassifyParams::default()
    };
    let out = model.classify(&texts()[..1], &params).unwrap();
    let preds = &out.predictions[0];
    assert_eq!(preds.len(), 4);
    for p in preds {
        let i = model.labels().iter().position(|l| *l == p.label).unwrap();
        let sigmoid = 1.0 / (1.0 + (-want[i]).exp());
        assert!((p.score - sigmoid).abs() < 1e-4, "{p:?} vs {sigmoid}");
    }
    assert!(preds.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn distilbert_matches_pytorch() {
    check("distilbert");
}

#[test]
fn roberta_matches_pytorch() {
    check("roberta");
}

#[test]
fn xlm_roberta_matches_pytorch() {
    check("xlm-roberta");
}

#[test]
fn deberta_v2_matches_pytorch() {
    check("deberta-v2");
}

#[test]
fn modernbert_matches_pytorch() {
    check("modernbert");
}

#[test]
fn modernbert_mean_pooling_matches_pytorch() {
    check("modernbert-mean");
}

#[test]
fn classify_returns_softmax_top_k_in_input_order() {
    let model = load("bert");
    assert_eq!(model.default_function(), ScoreFunction::Softmax);
    assert_eq!(model.labels(), ["negative", "neutral", "positive"]);
    let g = golden();
    let want = g["bert.logits"].to_vec2::<f32>().unwrap();
    let params = ClassifyParams {
        top_k: 2,
        batch_size: 2,
        function: None,
    };
    let out = model.classify(&texts(), &params).unwrap();
    assert_eq!(out.predictions.len(), 5);
    assert_eq!(out.truncated.len(), 1);
    assert_eq!(out.truncated[0].index, 4);
    for (preds, logits) in out.predictions.iter().zip(&want) {
        assert_eq!(preds.len(), 2);
        let probs = ScoreFunction::Softmax.apply(logits);
        let best = (0..3)
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        assert_eq!(preds[0].label, model.labels()[best]);
        assert!((preds[0].score - probs[best]).abs() < 1e-4);
    }
    // --function none gives the logits themselves.
    let raw = ClassifyParams {
        top_k: 0,
        function: Some(ScoreFunction::None),
        ..params
    };
    let out = model.classify(&texts()[..1], &raw).unwrap();
    let mut got: Vec<f32> = out.predictions[0].iter().map(|p| p.score).collect();
    let mut exp = want[0].clone();
    got.sort_by(f32::total_cmp);
    exp.sort_by(f32::total_cmp);
    for (a, b) in got.iter().zip(&exp) {
        assert!((a - b).abs() < 1e-4);
    }
}

#[test]
fn empty_and_huge_texts_are_handled() {
    let model = load("roberta");
    let huge = "word ".repeat(20_000);
    let texts = ["", huge.as_str(), "fine"];
    let out = model.classify(&texts, &ClassifyParams::default()).unwrap();
    assert_eq!(out.predictions.len(), 3);
    assert!(out
        .predictions
        .iter()
        .all(|p| p.len() == 1 && p[0].score.is_finite()));
    assert_eq!(out.truncated.len(), 1);
    assert_eq!(out.truncated[0].index, 1);
    assert!(out.truncated[0].tokens > 10_000);
    let msg = out.truncated[0].to_string();
    assert!(msg.contains("text 2") && msg.contains("truncated"), "{msg}");
    // No texts, or a zero batch size: errors, not panics.
    assert!(model
        .classify::<&str>(&[], &ClassifyParams::default())
        .is_err());
    let zero = ClassifyParams {
        batch_size: 0,
        ..ClassifyParams::default()
    };
    assert!(model.classify(&["x"], &zero).is_err());
}

#[test]
fn batches_need_equal_rows() {
    assert!(Batch::from_ids(&[vec![1, 2], vec![3]], &[vec![1, 1], vec![1]], &Device::Cpu).is_err());
    assert!(Batch::from_ids(&[], &[], &Device::Cpu).is_err());
    // Left padding and empty rows are refused.
    assert!(Batch::from_ids(&[vec![0, 5]], &[vec![0, 1]], &Device::Cpu).is_err());
    assert!(Batch::from_ids(&[vec![0, 0]], &[vec![0, 0]], &Device::Cpu).is_err());
    let b = Batch::from_ids(
        &[vec![2, 5], vec![2, 0]],
        &[vec![1, 1], vec![1, 0]],
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(b.lengths, [2, 1]);
}

#[test]
fn a_directory_without_a_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let files = ModelFiles::new(ModelSource::Dir(dir.path().into()), Progress::none());
    let err = TextClassifier::load(&files, &Device::Cpu, DType::F32).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type":"gpt2"}"#).unwrap();
    let err = TextClassifier::load(&files, &Device::Cpu, DType::F32).unwrap_err();
    assert!(err.to_string().contains("gpt2"), "{err}");
    std::fs::write(
        dir.path().join("config.json"),
        std::fs::read(root().join("tests/data/text-tiny-bert/config.json")).unwrap(),
    )
    .unwrap();
    let err = TextClassifier::load(&files, &Device::Cpu, DType::F32).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
    let err = TextClassifier::load(&files, &Device::Cpu, DType::F32).unwrap_err();
    assert!(err.to_string().contains("safetensors"), "{err}");
}

/// A copy of a tiny checkpoint's config and weights in a temporary folder, without its
/// tokenizer.json.
fn without_tokenizer_json(name: &str) -> tempfile::TempDir {
    let src = root().join(format!("tests/data/text-tiny-{name}"));
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn golden_ids_of(model: &TextClassifier, name: &str) {
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (batch, _) = model.tokenizer().encode(&refs, 0, &Device::Cpu).unwrap();
    assert_eq!(
        rows(&batch.input_ids),
        rows(&golden()[&format!("{name}.input_ids")])
    );
}

#[test]
fn roberta_without_tokenizer_json_uses_vocab_json_and_merges() {
    let dir = without_tokenizer_json("roberta");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/data/text-tiny-roberta/tokenizer.json"))
            .unwrap(),
    )
    .unwrap();
    let model = &json["model"];
    std::fs::write(
        dir.path().join("vocab.json"),
        serde_json::to_string(&model["vocab"]).unwrap(),
    )
    .unwrap();
    let merges: Vec<String> = model["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap()))
        .collect();
    std::fs::write(
        dir.path().join("merges.txt"),
        format!("#version: 0.2\n{}\n", merges.join("\n")),
    )
    .unwrap();
    let files = ModelFiles::new(ModelSource::Dir(dir.path().into()), Progress::none());
    let classifier = TextClassifier::load(&files, &Device::Cpu, DType::F32).unwrap();
    golden_ids_of(&classifier, "roberta");
}

#[test]
fn bert_without_tokenizer_json_uses_vocab_txt() {
    let dir = without_tokenizer_json("bert");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/data/text-tiny-bert/tokenizer.json")).unwrap(),
    )
    .unwrap();
    let vocab = json["model"]["vocab"].as_object().unwrap();
    let mut tokens: Vec<(&String, u64)> = vocab
        .iter()
        .map(|(t, i)| (t, i.as_u64().unwrap()))
        .collect();
    tokens.sort_by_key(|&(_, i)| i);
    let lines: Vec<&str> = tokens.iter().map(|(t, _)| t.as_str()).collect();
    std::fs::write(dir.path().join("vocab.txt"), lines.join("\n") + "\n").unwrap();
    let files = ModelFiles::new(ModelSource::Dir(dir.path().into()), Progress::none());
    let classifier = TextClassifier::load(&files, &Device::Cpu, DType::F32).unwrap();
    golden_ids_of(&classifier, "bert");
    // Neither tokenizer.json nor a vocabulary: a clear error.
    std::fs::remove_file(dir.path().join("vocab.txt")).unwrap();
    let err = TextClassifier::load(&files, &Device::Cpu, DType::F32).unwrap_err();
    assert!(err.to_string().contains("tokenizer"), "{err}");
}
