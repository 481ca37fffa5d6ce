//! Best-of-N time of the conv layers at the shapes of benches/conv_shapes.json whose name
//! contains FILTER (a quick developer loop; the criterion bench is the reference):
//!
//! ```text
//! cargo run --release -p mlbench-core --example conv_shapes -- [FILTER] [RUNS]
//! ```
use std::time::Instant;

use candle_core::{Device, Module, Tensor};
use mlbench_core::kernels::conv::{
    Conv1d, Conv1dParams, Conv2d, Conv2dParams, ConvTranspose1d, ConvTranspose1dParams, Padding2d,
};
use serde_json::Value;

// As in the `mlbench` binary: mimalloc keeps freed pages, where glibc hands large buffers back
// to the kernel and every call pays page faults again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn num(v: &Value, key: &str, default: usize) -> usize {
    v.get(key)
        .and_then(Value::as_u64)
        .map_or(default, |n| n as usize)
}

/// User + system CPU time of the whole process: robust to other processes on the machine,
/// unlike wall time (but counts spinning threads as busy).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let filter = args.next().unwrap_or_default();
    let runs: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(10);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../benches/conv_shapes.json"
    );
    let table: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for s in table["shapes"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        if !name.contains(&filter) {
            continue;
        }
        let (x, w) = (dims(&s["x"]), dims(&s["w"]));
        let input = Tensor::randn(0f32, 1.0, x.as_slice(), &Device::Cpu).unwrap();
        let weight =
            (Tensor::randn(0f32, 1.0, w.as_slice(), &Device::Cpu).unwrap() * 0.05).unwrap();
        let groups = num(s, "groups", 1);
        let (stride, dilation) = (num(s, "stride", 1), num(s, "dilation", 1));
        let (layer, flops): (Box<dyn Module>, f64) = match s["op"].as_str().unwrap() {
            "conv1d" => {
                let l = Conv1d::new(
                    weight,
                    None,
                    Conv1dParams {
                        padding: num(s, "padding", 0),
                        stride,
                        dilation,
                        groups,
                    },
                )
                .unwrap();
                let f = l.geometry(&x).unwrap().flops();
                (Box::new(l), f)
            }
            "conv_transpose1d" => {
                let l = ConvTranspose1d::new(
                    weight,
                    None,
                    ConvTranspose1dParams {
                        padding: num(s, "padding", 0),
                        stride,
                        dilation,
                        groups,
                        output_padding: 0,
                    },
                )
                .unwrap();
                let f = l.geometry(&x).unwrap().flops();
                (Box::new(l), f)
            }
            _ => {
                let padding = match s.get("padding") {
                    Some(Value::Array(p)) => Padding2d {
                        top: p[0].as_u64().unwrap() as usize,
                        bottom: p[1].as_u64().unwrap() as usize,
                        left: p[2].as_u64().unwrap() as usize,
                        right: p[3].as_u64().unwrap() as usize,
                    },
                    _ => Padding2d::uniform(num(s, "padding", 0)),
                };
                let l = Conv2d::new(
                    weight,
                    None,
                    Conv2dParams {
                        padding,
                        stride: (stride, stride),
                        dilation: (dilation, dilation),
                        groups,
                    },
                )
                .unwrap();
                let f = l.geometry(&x).unwrap().flops();
                (Box::new(l), f)
            }
        };
        layer.forward(&input).unwrap();
        let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..runs {
            let (t, c) = (Instant::now(), cpu_seconds());
            std::hint::black_box(layer.forward(&input).unwrap());
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu_seconds() - c);
        }
        println!(
            "{name:32} {:9.3} ms {:6.0} GFLOP/s  cpu {:9.3} ms {:6.0} GFLOP/s per core",
            best * 1e3,
            flops / best / 1e9,
            best_cpu * 1e3,
            flops / best_cpu / 1e9
        );
    }
}
