//! Criterion micro-benchmarks of the kernels the models spend their time in, beyond
//! convolutions (`benches/conv.rs`): matmul in f32/f16/bf16, attention with and without a KV
//! cache, softmax, layer norm and group norm.
//!
//! ```text
//! cargo bench -p mlbench-core --bench kernels              # everything
//! cargo bench -p mlbench-core --bench kernels -- matmul    # names containing "matmul"
//! ```
//!
//! After criterion, a Markdown table: median time, GFLOP/s (matmul, attention) or GB/s of the
//! tensors read and written (softmax, norms), and for matmul the fraction of this CPU's measured
//! f32 FMA peak.

use candle_core::{DType, Device, Module, Tensor};
use criterion::{BenchmarkId, Throughput};
use mlbench_core::kernels::attention::{attention, attention_reference};
use mlbench_core::kernels::softmax::softmax_last_dim;

#[path = "common/mod.rs"]
mod common;
use common::{criterion_dir, criterion_median, measured_peak};

/// What one benchmark's throughput counts.
#[derive(Clone, Copy)]
enum Work {
    Flops(f64),
    Bytes(f64),
}

struct Bench {
    group: String,
    id: &'static str,
    work: Work,
    run: Box<dyn Fn()>,
}

fn randn(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::randn(0f32, 1f32, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn matmuls() -> Vec<Bench> {
    let mut out = Vec::new();
    for n in [512, 1024, 2048] {
        for (dtype, name) in [
            (DType::F32, "f32"),
            (DType::F16, "f16"),
            (DType::BF16, "bf16"),
        ] {
            let (a, b) = (randn(&[n, n], dtype), randn(&[n, n], dtype));
            out.push(Bench {
                group: format!("matmul {name} {n}^3"),
                id: "candle",
                work: Work::Flops(2.0 * (n * n * n) as f64),
                run: Box::new(move || {
                    a.matmul(&b).unwrap();
                }),
            });
        }
    }
    out
}

fn attentions() -> Vec<Bench> {
    // (name, b, h, tq, tk, causal offset): Whisper tiny's encoder, a decoder step against a
    // 448-token KV cache, cross-attention over 1500 audio frames, and a causal prompt pass.
    let cases = [
        ("attention encoder (1,6,1500,64)", 1, 6, 1500, 1500, None),
        (
            "attention kv-cache step (5,6,1,448)",
            5,
            6,
            1,
            448,
            Some(447),
        ),
        ("attention cross step (5,6,1,1500)", 5, 6, 1, 1500, None),
        ("attention causal prompt (1,6,64,64)", 1, 6, 64, 64, Some(0)),
    ];
    let mut out = Vec::new();
    for (name, b, h, tq, tk, causal) in cases {
        let q = randn(&[b, h, tq, 64], DType::F32);
        let k = randn(&[b, h, tk, 64], DType::F32);
        let v = randn(&[b, h, tk, 64], DType::F32);
        let flops = 4.0 * (b * h * tq * tk * 64) as f64;
        let (q2, k2, v2) = (q.clone(), k.clone(), v.clone());
        out.push(Bench {
            group: name.into(),
            id: "fused",
            work: Work::Flops(flops),
            run: Box::new(move || {
                attention(&q, &k, &v, 0.125, causal).unwrap();
            }),
        });
        out.push(Bench {
            group: name.into(),
            id: "candle",
            work: Work::Flops(flops),
            run: Box::new(move || {
                attention_reference(&q2, &k2, &v2, 0.125, causal).unwrap();
            }),
        });
    }
    out
}

fn norms_and_softmax() -> Vec<Bench> {
    let mut out = Vec::new();
    let scores = randn(&[6, 1500, 1500], DType::F32);
    let bytes = 2.0 * 4.0 * scores.elem_count() as f64;
    let s2 = scores.clone();
    out.push(Bench {
        group: "softmax (6,1500,1500)".into(),
        id: "fused",
        work: Work::Bytes(bytes),
        run: Box::new(move || {
            softmax_last_dim(&scores).unwrap();
        }),
    });
    out.push(Bench {
        group: "softmax (6,1500,1500)".into(),
        id: "candle",
        work: Work::Bytes(bytes),
        run: Box::new(move || {
            candle_nn::ops::softmax_last_dim(&s2).unwrap();
        }),
    });
    let x = randn(&[1500, 384], DType::F32);
    let (w, b) = (randn(&[384], DType::F32), randn(&[384], DType::F32));
    let ln = candle_nn::LayerNorm::new(w, b, 1e-5);
    out.push(Bench {
        group: "layer norm (1500,384)".into(),
        id: "candle",
        work: Work::Bytes(2.0 * 4.0 * x.elem_count() as f64),
        run: Box::new(move || {
            ln.forward(&x).unwrap();
        }),
    });
    let x = randn(&[2, 320, 64, 64], DType::F32);
    let (w, b) = (randn(&[320], DType::F32), randn(&[320], DType::F32));
    let gn = candle_nn::GroupNorm::new(w, b, 320, 32, 1e-5).unwrap();
    out.push(Bench {
        group: "group norm (2,320,64,64) 32 groups".into(),
        id: "candle",
        work: Work::Bytes(2.0 * 4.0 * x.elem_count() as f64),
        run: Box::new(move || {
            gn.forward(&x).unwrap();
        }),
    });
    out
}

fn main() {
    let filter = common::filter();
    let benches: Vec<Bench> = [matmuls(), attentions(), norms_and_softmax()]
        .into_iter()
        .flatten()
        .filter(|b| b.group.contains(&filter))
        .collect();
    let threads = rayon::current_num_threads();
    let peak = measured_peak(threads);
    eprintln!("measured f32 FMA peak (256-bit, {threads} threads): {peak:.0} GFLOP/s");
    let mut c = common::criterion();
    for b in &benches {
        let mut group = c.benchmark_group(&b.group);
        group.throughput(match b.work {
            Work::Flops(f) => Throughput::Elements(f as u64),
            Work::Bytes(n) => Throughput::Bytes(n as u64),
        });
        group.bench_function(BenchmarkId::from_parameter(b.id), |bencher| {
            bencher.iter(|| (b.run)())
        });
        group.finish();
    }
    println!("\n| kernel | implementation | ms | throughput | % of f32 peak |");
    println!("|---|---|---|---|---|");
    for b in &benches {
        let Some(t) = criterion_median(&criterion_dir(), &b.group, b.id) else {
            continue;
        };
        let (throughput, of_peak) = match b.work {
            Work::Flops(f) => (
                format!("{:.0} GFLOP/s", f / t / 1e9),
                format!("{:.0} %", 100.0 * f / t / 1e9 / peak),
            ),
            Work::Bytes(n) => (format!("{:.1} GB/s", n / t / 1e9), "—".into()),
        };
        println!(
            "| {} | {} | {:.3} | {throughput} | {of_peak} |",
            b.group,
            b.id,
            t * 1e3
        );
    }
    println!("\n{threads} threads; peak {peak:.0} GFLOP/s (f32, 256-bit FMA chains)");
}
