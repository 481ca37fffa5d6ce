//! Convolution benchmarks (criterion) at the shapes of the project's models, side by side with
//! PyTorch in the same run.
//!
//! ```text
//! cargo bench -p mlbench-core --bench conv                 # every shape
//! cargo bench -p mlbench-core --bench conv -- sd-vae       # shapes whose name contains "sd-vae"
//! MLBENCH_CONV_CANDLE=1 cargo bench ...                    # also time Candle's own kernels
//! ```
//!
//! The shapes come from `benches/conv_shapes.json`, which the PyTorch peer
//! (`benches/peers/torch_conv.py`) reads too. Before criterion runs, the bench measures this
//! CPU's f32 FMA peak (256-bit FMA chains on every thread, what the gemm kernels use) and
//! starts the peer with the same thread count, if a Python with torch is found
//! (`MLBENCH_TORCH_PYTHON`, else the venv of `benches/peers/setup-torch.sh`); a missing peer is
//! reported as skipped. At the end it prints one Markdown table: time per call (criterion's
//! median), GFLOP/s, fraction of the measured peak, and the ratio to PyTorch's median.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Module, Tensor};
use criterion::{BenchmarkId, Throughput};
use mlbench_core::kernels::conv::{
    Conv1d, Conv1dParams, Conv2d, Conv2dParams, ConvTranspose1d, ConvTranspose1dParams,
    ConvTranspose2d, ConvTranspose2dParams, Geometry, Padding2d,
};
use serde_json::Value;

#[path = "common/mod.rs"]
mod common;
use common::{criterion_dir, criterion_median, measured_peak, workspace};

/// Candle's own kernel for a layer.
type Reference = Box<dyn Fn(&Tensor) -> candle_core::Result<Tensor>>;

/// One shape of the table, built into a layer and an input.
struct Case {
    name: String,
    layer: Box<dyn Module>,
    /// Candle's own kernel for the same layer, when it can express it.
    reference: Option<Reference>,
    input: Tensor,
    geometry: Geometry,
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("dims")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect()
}

/// A number or an [h, w] pair.
fn pair(v: Option<&Value>, default: usize) -> (usize, usize) {
    match v {
        None => (default, default),
        Some(Value::Array(a)) => (a[0].as_u64().unwrap() as _, a[1].as_u64().unwrap() as _),
        Some(n) => {
            let n = n.as_u64().unwrap() as usize;
            (n, n)
        }
    }
}

fn padding2d(v: Option<&Value>) -> Padding2d {
    match v {
        Some(Value::Array(a)) if a.len() == 4 => {
            let p: Vec<usize> = a.iter().map(|v| v.as_u64().unwrap() as usize).collect();
            Padding2d {
                top: p[0],
                bottom: p[1],
                left: p[2],
                right: p[3],
            }
        }
        v => {
            let (h, w) = pair(v, 0);
            Padding2d::symmetric(h, w)
        }
    }
}

fn random(shape: &[usize], scale: f64) -> Tensor {
    (Tensor::randn(0f32, 1f32, shape, &Device::Cpu).unwrap() * scale).unwrap()
}

fn build(shape: &Value) -> Case {
    let name = shape["name"].as_str().unwrap().to_string();
    let (x, w) = (dims(&shape["x"]), dims(&shape["w"]));
    let groups = shape
        .get("groups")
        .map_or(1, |g| g.as_u64().unwrap() as usize);
    let (stride, dilation) = (pair(shape.get("stride"), 1), pair(shape.get("dilation"), 1));
    let input = random(&x, 1.0);
    let weight = random(&w, 0.05);
    let op = shape["op"].as_str().unwrap();
    let out_ch = if op.contains("transpose") {
        w[1] * groups
    } else {
        w[0]
    };
    let bias = Some(random(&[out_ch], 1.0));
    macro_rules! case {
        ($layer:expr) => {{
            let layer = $layer;
            let geometry = layer.geometry(input.dims()).unwrap();
            let r = layer.clone();
            Case {
                name,
                reference: Some(Box::new(move |x| r.forward_reference(x))),
                layer: Box::new(layer),
                input,
                geometry,
            }
        }};
    }
    match op {
        "conv1d" => case!(Conv1d::new(
            weight,
            bias,
            Conv1dParams {
                padding: pair(shape.get("padding"), 0).0,
                stride: stride.0,
                dilation: dilation.0,
                groups,
            },
        )
        .unwrap()),
        "conv2d" => {
            let padding = padding2d(shape.get("padding"));
            let mut case = case!(Conv2d::new(
                weight,
                bias,
                Conv2dParams {
                    padding,
                    stride,
                    dilation,
                    groups,
                },
            )
            .unwrap());
            // Candle pads asymmetric inputs with a copy first: not its conv's own cost.
            if padding.top != padding.left || padding.top != padding.bottom {
                case.reference = None;
            }
            case
        }
        "conv_transpose1d" => case!(ConvTranspose1d::new(
            weight,
            bias,
            ConvTranspose1dParams {
                padding: pair(shape.get("padding"), 0).0,
                output_padding: pair(shape.get("output_padding"), 0).0,
                stride: stride.0,
                dilation: dilation.0,
                groups,
            },
        )
        .unwrap()),
        "conv_transpose2d" => case!(ConvTranspose2d::new(
            weight,
            bias,
            ConvTranspose2dParams {
                padding: pair(shape.get("padding"), 0),
                output_padding: pair(shape.get("output_padding"), 0),
                stride,
                dilation,
                groups,
            },
        )
        .unwrap()),
        op => panic!("{name}: unknown op {op}"),
    }
}

/// The Python that has torch: `MLBENCH_TORCH_PYTHON`, else setup-torch.sh's venv.
fn torch_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MLBENCH_TORCH_PYTHON") {
        return Some(p.into());
    }
    let home = std::env::var_os("HOME")?;
    let p = Path::new(&home).join(".cache/mlbench/torch-venv/bin/python");
    p.exists().then_some(p)
}

/// PyTorch's median seconds per shape name, or why there are none.
fn torch_times(
    filter: &str,
    threads: usize,
) -> Result<(String, std::collections::HashMap<String, f64>), String> {
    let python = torch_python().ok_or("no Python with torch (run benches/peers/setup-torch.sh)")?;
    let out = Command::new(&python)
        .arg(workspace().join("benches/peers/torch_conv.py"))
        .args(["--threads", &threads.to_string(), "--filter", filter])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .into());
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let times = v["results"]
        .as_object()
        .ok_or("no results")?
        .iter()
        .map(|(k, r)| (k.clone(), r["median_s"].as_f64().unwrap_or(f64::NAN)))
        .collect();
    Ok((v["torch"].as_str().unwrap_or("?").to_string(), times))
}

fn main() {
    let filter = common::filter();
    let with_candle = std::env::var_os("MLBENCH_CONV_CANDLE").is_some();
    let threads = rayon::current_num_threads();
    let table: Value = serde_json::from_slice(
        &std::fs::read(workspace().join("benches/conv_shapes.json")).expect("conv_shapes.json"),
    )
    .expect("conv_shapes.json is JSON");
    let cases: Vec<Case> = table["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"].as_str().unwrap().contains(&filter))
        .map(build)
        .collect();
    let peak = measured_peak(threads);
    eprintln!("measured f32 FMA peak (256-bit, {threads} threads): {peak:.0} GFLOP/s");
    let torch = torch_times(&filter, threads);
    if let Err(why) = &torch {
        eprintln!("PyTorch peer: skipped ({why})");
    }

    let out_dir = criterion_dir();
    let mut c = common::criterion();
    for case in &cases {
        let mut group = c.benchmark_group(&case.name);
        group.throughput(Throughput::Elements(case.geometry.flops() as u64));
        group.bench_function(BenchmarkId::from_parameter("mlbench"), |b| {
            b.iter(|| case.layer.forward(&case.input).unwrap())
        });
        if let (true, Some(reference)) = (with_candle, &case.reference) {
            group.bench_function(BenchmarkId::from_parameter("candle"), |b| {
                b.iter(|| reference(&case.input).unwrap())
            });
        }
        group.finish();
    }

    println!(
        "\n| shape | ms | GFLOP/s | % of peak |{} PyTorch ms | ÷ PyTorch |",
        if with_candle { " Candle ms |" } else { "" }
    );
    println!(
        "|---|---|---|---|{}---|---|",
        if with_candle { "---|" } else { "" }
    );
    for case in &cases {
        let Some(t) = criterion_median(&out_dir, &case.name, "mlbench") else {
            continue;
        };
        let gflops = case.geometry.flops() / t / 1e9;
        let candle = if with_candle {
            criterion_median(&out_dir, &case.name, "candle")
                .map_or(" — |".into(), |c| format!(" {:.2} |", c * 1e3))
        } else {
            String::new()
        };
        let (torch_ms, ratio) = match torch.as_ref().ok().and_then(|(_, m)| m.get(&case.name)) {
            Some(p) => (format!("{:.2}", p * 1e3), format!("{:.2}", t / p)),
            None => ("skipped".into(), "—".into()),
        };
        println!(
            "| {} | {:.2} | {gflops:.0} | {:.0} % |{candle} {torch_ms} | {ratio} |",
            case.name,
            t * 1e3,
            100.0 * gflops / peak
        );
    }
    if let Ok((version, _)) = &torch {
        println!(
            "\nPyTorch {version}, {threads} threads; peak {peak:.0} GFLOP/s (f32, 256-bit FMA)"
        );
    }
}
