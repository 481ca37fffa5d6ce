//! f32 matmul throughput of this build (Candle's `matmul`, i.e. the `gemm` crate): GFLOP/s at
//! n×n×n, best of several runs, on one thread and on all of rayon's threads. Used to compare
//! builds (`-C target-cpu=native` or not, gemm's `x86-v4` AVX-512 kernels or not):
//!
//! ```text
//! cargo run --release -p mlbench-core --example gemm -- [N] [RUNS]
//! ```
use std::time::Instant;

use candle_core::{Device, Tensor};

fn best_gflops(a: &Tensor, b: &Tensor, n: usize, runs: usize) -> f64 {
    let _ = a.matmul(b).unwrap();
    let best = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(a.matmul(b).unwrap());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n * n * n) as f64 / best / 1e9
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let runs: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(20);
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu).unwrap();
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu).unwrap();
    let all = best_gflops(&a, &b, n, runs);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let one = pool.install(|| best_gflops(&a, &b, n, runs));
    println!(
        "matmul f32 {n}^3: {one:.0} GFLOP/s on 1 thread, {all:.0} on {} threads",
        rayon::current_num_threads()
    );
}
