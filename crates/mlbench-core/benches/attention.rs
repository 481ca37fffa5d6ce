//! Fused attention and softmax against the plain Candle composition, side by side.
//!
//! `cargo bench -p mlbench-core --bench attention` (add `-- encoder` etc. to filter by name).
//! Prints per-call times (fastest and median 10 ms batch, CPU time of all threads) and the
//! GFLOP/s the fastest implies (2 flops per multiply-add of both products, counting the full
//! (tq, tk) score block even where a causal mask skips part).

use std::hint::black_box;
use std::time::{Duration, Instant};

use candle_core::{Device, Result, Tensor};
use mlbench_core::kernels::attention::{attention, attention_merged, attention_reference};
use mlbench_core::kernels::softmax::softmax_last_dim;

/// Deterministic uniform values in [-1, 1) (SplitMix64).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn tensor(dims: (usize, usize, usize, usize), seed: u64) -> Result<Tensor> {
    let n = dims.0 * dims.1 * dims.2 * dims.3;
    Tensor::from_vec(random(n, seed), dims, &Device::Cpu)
}

/// CPU time used so far by all threads of this process, in seconds (Linux; 0 elsewhere).
fn cpu_time() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        * 1e-9
}

/// Per-call statistics of one implementation, from batches of calls.
#[derive(Default)]
struct Stats {
    /// Wall seconds per call, one value per batch.
    wall: Vec<f64>,
    /// CPU seconds (all threads) and calls, summed over batches.
    cpu: f64,
    calls: usize,
}

impl Stats {
    /// Fastest batch: the least disturbed by other processes.
    fn min(&self) -> f64 {
        self.wall.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn median(&self) -> f64 {
        let mut s = self.wall.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    }
    /// CPU seconds (all threads) per call.
    fn cpu_per_call(&self) -> f64 {
        self.cpu / self.calls as f64
    }
}

/// Times the closures in batches of about 10 ms each, round-robin (so that load from other
/// processes hits them alike), for about `budget` in total and at least 5 rounds.
type Bench<'a> = &'a mut dyn FnMut() -> Result<Tensor>;
fn time_all(budget: Duration, fs: &mut [Bench]) -> Result<Vec<Stats>> {
    let mut stats: Vec<Stats> = fs.iter().map(|_| Stats::default()).collect();
    let mut batch = Vec::new();
    for f in fs.iter_mut() {
        black_box(f()?);
        let t = Instant::now();
        black_box(f()?);
        batch.push((0.01 / t.elapsed().as_secs_f64().max(1e-9)).clamp(1.0, 10_000.0) as usize);
    }
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < 5 || start.elapsed() < budget {
        for ((f, st), &n) in fs.iter_mut().zip(stats.iter_mut()).zip(&batch) {
            let c = cpu_time();
            let t = Instant::now();
            for _ in 0..n {
                black_box(f()?);
            }
            st.wall.push(t.elapsed().as_secs_f64() / n as f64);
            st.cpu += cpu_time() - c;
            st.calls += n;
        }
        rounds += 1;
    }
    Ok(stats)
}

/// How the fused kernel gets its inputs (the Candle composition always gets dense tensors,
/// with keys and values repeated per batch entry as the Whisper model does for beams).
#[derive(Clone, Copy, PartialEq)]
enum Feed {
    /// Dense (b, h, t, d) tensors.
    Dense,
    /// Keys and values of one batch entry, `broadcast_as` over the batch (stride 0).
    SharedKv,
    /// The b single-row queries as one (1, h, b, d) strided view against one shared (1, h,
    /// tk, d) key/value set: one gemm over b rows per head instead of b gemvs.
    BeamsAsRows,
}

struct Case {
    name: &'static str,
    feed: Feed,
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    causal: Option<usize>,
}

fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:6.1} µs", s * 1e6)
    } else {
        format!("{:6.2} ms", s * 1e3)
    }
}

fn main() -> Result<()> {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f));
    let budget = Duration::from_millis(1500);
    let case = |name, b, h, tq, tk, causal| Case {
        name,
        feed: Feed::Dense,
        b,
        h,
        tq,
        tk,
        d: 64,
        causal,
    };
    let cases = [
        case("encoder (1,6,1500,64)", 1, 6, 1500, 1500, None),
        case("encoder large (1,20,1500,64)", 1, 20, 1500, 1500, None),
        case("cross b1 h6 tq1 T1500", 1, 6, 1, 1500, None),
        case("cross b5 h6 tq1 T1500", 5, 6, 1, 1500, None),
        case("cross b5 h20 tq1 T1500", 5, 20, 1, 1500, None),
        Case {
            feed: Feed::SharedKv,
            ..case("cross b5 h20 T1500 shared kv", 5, 20, 1, 1500, None)
        },
        Case {
            feed: Feed::BeamsAsRows,
            ..case("cross b5 h20 T1500 beams=rows", 5, 20, 1, 1500, None)
        },
        case("self b1 h6 tq1 T1", 1, 6, 1, 1, None),
        case("self b1 h6 tq1 T7", 1, 6, 1, 7, None),
        case("self b1 h6 tq1 T448", 1, 6, 1, 448, None),
        case("self b5 h6 tq1 T448", 5, 6, 1, 448, None),
        case("self b5 h20 tq1 T448", 5, 20, 1, 448, None),
        case("prompt b1 h6 tq5 T5 causal0", 1, 6, 5, 5, Some(0)),
        case("prompt b5 h6 tq4 T7 causal3", 5, 6, 4, 7, Some(3)),
        case("prompt b1 h6 tq64 T64 causal0", 1, 6, 64, 64, Some(0)),
    ];
    println!("{} rayon threads", rayon::current_num_threads());
    println!(
        "min = fastest 10 ms batch (least disturbed by other processes), med = median batch, \
         cpu = CPU time of all threads per call; GFLOP/s from min\n"
    );
    println!(
        "{:<30} | {:>9} {:>9} {:>9} {:>6} | {:>9} {:>6} | {:>9} {:>9} {:>9} {:>6} | {:>7}",
        "case",
        "fused min",
        "med",
        "cpu",
        "GF/s",
        "merged",
        "GF/s",
        "candle min",
        "med",
        "cpu",
        "GF/s",
        "speedup"
    );
    for c in cases.iter().filter(|c| wanted(c.name)) {
        let q = tensor((c.b, c.h, c.tq, c.d), 1)?;
        let k = tensor((c.b, c.h, c.tk, c.d), 2)?;
        let v = tensor((c.b, c.h, c.tk, c.d), 3)?;
        let scale = 1.0 / (c.d as f32).sqrt();
        let flops = 4.0 * (c.b * c.h * c.tq * c.tk * c.d) as f64;
        let (q1, k1, v1) = match c.feed {
            Feed::Dense => (q.clone(), k.clone(), v.clone()),
            Feed::SharedKv => {
                let k1 = tensor((1, c.h, c.tk, c.d), 2)?;
                let v1 = tensor((1, c.h, c.tk, c.d), 3)?;
                let dims = (c.b, c.h, c.tk, c.d);
                (q.clone(), k1.broadcast_as(dims)?, v1.broadcast_as(dims)?)
            }
            Feed::BeamsAsRows => (
                q.transpose(0, 2)?,
                tensor((1, c.h, c.tk, c.d), 2)?,
                tensor((1, c.h, c.tk, c.d), 3)?,
            ),
        };
        let unbeam = |y: Tensor| -> Result<Tensor> {
            match c.feed {
                // (1, h, b, dv) -> (b, h, 1, dv) and (1, b, h * dv) -> (b, 1, h * dv): views.
                Feed::BeamsAsRows if y.rank() == 4 => y.transpose(0, 2),
                Feed::BeamsAsRows => y.reshape((c.b, 1, ())),
                _ => Ok(y),
            }
        };
        let st = time_all(
            budget,
            &mut [
                &mut || unbeam(attention(&q1, &k1, &v1, scale, c.causal)?),
                &mut || unbeam(attention_merged(&q1, &k1, &v1, scale, c.causal)?),
                &mut || attention_reference(&q, &k, &v, scale, c.causal),
            ],
        )?;
        let (ours, merged, candle) = (&st[0], &st[1], &st[2]);
        println!(
            "{:<30} | {} {} {} {:6.1} | {} {:6.1} | {} {} {} {:6.1} | {:6.1}x",
            c.name,
            fmt_time(ours.min()),
            fmt_time(ours.median()),
            fmt_time(ours.cpu_per_call()),
            flops / ours.min() / 1e9,
            fmt_time(merged.min()),
            flops / merged.min() / 1e9,
            fmt_time(candle.min()),
            fmt_time(candle.median()),
            fmt_time(candle.cpu_per_call()),
            flops / candle.min() / 1e9,
            candle.min() / ours.min()
        );
    }
    if wanted("softmax") {
        println!(
            "\n{:<30} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>7}",
            "softmax_last_dim", "ours min", "med", "cpu", "candle min", "med", "cpu", "speedup"
        );
        for dims in [(1, 6, 1500, 1500), (5, 6, 1, 448), (1, 1, 5, 51865)] {
            let x = (tensor(dims, 4)? * 8.0)?;
            let st = time_all(
                budget,
                &mut [&mut || softmax_last_dim(&x), &mut || {
                    candle_nn::ops::softmax_last_dim(&x)
                }],
            )?;
            let (ours, candle) = (&st[0], &st[1]);
            println!(
                "{:<30} | {} {} {} | {} {} {} | {:6.1}x",
                format!("{dims:?}"),
                fmt_time(ours.min()),
                fmt_time(ours.median()),
                fmt_time(ours.cpu_per_call()),
                fmt_time(candle.min()),
                fmt_time(candle.median()),
                fmt_time(candle.cpu_per_call()),
                candle.min() / ours.min()
            );
        }
    }
    Ok(())
}
