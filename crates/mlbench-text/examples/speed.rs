//! Sentences per second of a sentence-embedding model, batch 32 of ~21 tokens (the batch of
//! scripts/reference/text_goldens.py bench, which times sentence-transformers the same way).
//!
//! cargo run --release -p mlbench-text --example speed -- MODEL_DIR [RUNS]
//! (MIMALLOC_PURGE_DELAY=-1 keeps freed memory as the `mlbench` binary does.)

use std::time::Instant;

use candle_core::{DType, Device};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_text::{EmbedParams, SentenceEmbedder};

// As the `mlbench` binary allocates.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: speed MODEL_DIR [RUNS]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let files = ModelFiles::new(ModelSource::Dir(dir.into()), Progress::none());
    let model = SentenceEmbedder::load(&files, &Device::Cpu, DType::F32)?;
    // Sentence i joined with sentence i + 7: ~21 tokens per text.
    let batch: Vec<String> = (0..32)
        .map(|i| format!("{} {}", SENTENCES[i % 20], SENTENCES[(i + 7) % 20]))
        .collect();
    let params = EmbedParams::default();
    for _ in 0..3 {
        model.embed(&batch, &params)?;
    }
    let start = Instant::now();
    for _ in 0..runs {
        model.embed(&batch, &params)?;
    }
    let dt = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "mlbench (candle, {} threads): batch 32: {:.0} sentences/s",
        candle_core::utils::get_num_threads(),
        32.0 / dt
    );
    Ok(())
}
