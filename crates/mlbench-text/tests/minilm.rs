//! all-MiniLM-L6-v2 on its real weights (scripts/fetch-test-weights.sh): embeddings equal
//! sentence-transformers' (tests/golden/text-all-minilm-l6-v2.safetensors, made by
//! scripts/reference/text_goldens.py minilm from the same files), and zero-shot classification
//! ranks the obvious label first on hand-written examples.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_text::{zero_shot, EmbedParams, SentenceEmbedder, ZeroShotParams};

/// text_goldens.py's SENTENCES, in the same order.
const SENTENCES: [&str; 20] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome!",
    "The cat sits outside.",
    "I love pasta.",
    "Do you like pizza?",
    "The stock market fell 3.5% on Tuesday after the central bank raised interest rates.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "Naïve café owners serve crème brûlée.",
    "Hi",
    "How do I reset my password if I no longer have access to my e-mail account?",
    "Quantum computers use qubits, which can be in superpositions of 0 and 1.",
    "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun.",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fetched model; fails the test (never skips) when it is missing.
fn minilm() -> SentenceEmbedder {
    let dir = match std::env::var_os("MLBENCH_TEST_WEIGHTS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mlbench/test-weights"),
    }
    .join("all-minilm-l6-v2");
    assert!(
        dir.join(".complete").is_file(),
        "{} is missing: run scripts/fetch-test-weights.sh",
        dir.display()
    );
    let files = ModelFiles::new(ModelSource::Dir(dir), Progress::none());
    SentenceEmbedder::load(&files, &Device::Cpu, DType::F32).unwrap()
}

#[test]
fn embeddings_equal_sentence_transformers() {
    let model = minilm();
    assert!(model.normalizes());
    assert!(model.pooling().mean && !model.pooling().cls);
    assert_eq!(model.tokenizer().max_length(), 256);
    let golden = candle_core::safetensors::load(
        root().join("tests/golden/text-all-minilm-l6-v2.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let want = golden["embeddings"].to_vec2::<f32>().unwrap();
    // Batches of 7: batching and the length sorting must not change any vector.
    let params = EmbedParams {
        batch_size: 7,
        normalize: None,
    };
    let got = model.embed(&SENTENCES, &params).unwrap();
    assert!(got.truncated.is_empty());
    assert_eq!(got.vectors.len(), 20);
    let mut worst = 0f32;
    for (g, w) in got.vectors.iter().zip(&want) {
        assert_eq!(g.len(), 384);
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("all-MiniLM-L6-v2: max abs embedding diff {worst:.2e}");
    assert!(worst < 1e-4, "max abs diff {worst}");
}

/// Hand-written texts and the label a person would pick among LABELS.
const EXAMPLES: [(&str, &str); 10] = [
    (
        "The striker scored twice in the second half and the team won the cup.",
        "sports",
    ),
    (
        "The senate voted against the president's new immigration bill.",
        "politics",
    ),
    (
        "The new laptop ships with a faster processor and twice the memory.",
        "technology",
    ),
    (
        "Simmer the tomatoes with garlic and basil, then stir in the pasta.",
        "food",
    ),
    (
        "Heavy rain and strong winds are expected across the region tomorrow.",
        "weather",
    ),
    ("She finished the marathon in under three hours.", "sports"),
    (
        "Voters head to the polls on Sunday to elect a new parliament.",
        "politics",
    ),
    (
        "The app update fixes a bug that drained the phone's battery.",
        "technology",
    ),
    (
        "This bakery makes the best chocolate croissants in town.",
        "food",
    ),
    (
        "A heatwave will push temperatures above 40 degrees this weekend.",
        "weather",
    ),
];

const LABELS: [&str; 5] = ["sports", "politics", "technology", "food", "weather"];

#[test]
fn zero_shot_ranks_the_obvious_label_first() {
    let model = minilm();
    let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
    let texts: Vec<&str> = EXAMPLES.iter().map(|e| e.0).collect();
    let (results, truncated) =
        zero_shot::classify(&model, &texts, &labels, &ZeroShotParams::default()).unwrap();
    assert!(truncated.is_empty());
    let mut right = 0;
    for (r, (text, want)) in results.iter().zip(EXAMPLES) {
        assert_eq!(r.sequence, text);
        assert_eq!(r.labels.len(), 5);
        let total: f32 = r.scores.iter().sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(r.scores.windows(2).all(|w| w[0] >= w[1]));
        assert!(r.similarities.windows(2).all(|w| w[0] >= w[1]));
        right += usize::from(r.labels[0] == want);
    }
    eprintln!("zero-shot: {right}/10 right");
    assert!(right >= 9, "{right}/10 right: {results:#?}");
}

#[test]
fn bad_zero_shot_arguments_are_errors() {
    let model = minilm();
    let params = ZeroShotParams::default();
    assert!(zero_shot::classify(&model, &["x"], &[], &params).is_err());
    assert!(zero_shot::classify(&model, &["x"], &[" ".to_string()], &params).is_err());
    let no_slot = ZeroShotParams {
        hypothesis_template: "no slot".into(),
        ..params
    };
    assert!(zero_shot::classify(&model, &["x"], &["a".to_string()], &no_slot).is_err());
}

#[test]
fn a_100k_character_text_is_truncated_to_256_tokens() {
    let model = minilm();
    let huge = "lorem ipsum dolor sit amet ".repeat(3_704);
    assert!(huge.len() >= 100_000);
    let out = model
        .embed(&[huge.as_str(), ""], &EmbedParams::default())
        .unwrap();
    assert_eq!(out.vectors.len(), 2);
    assert_eq!(out.truncated.len(), 1);
    assert_eq!((out.truncated[0].index, out.truncated[0].kept), (0, 256));
    for v in &out.vectors {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
}
