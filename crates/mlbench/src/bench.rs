//! `mlbench bench`: every device × dtype asked for, in one process, in one table.
//!
//! The measuring, statistics, environment and report formats live in `mlbench-bench`; this
//! module only turns flags into workloads, draws progress and prints. Configurations that cannot
//! run here (a backend not compiled in, no GPU, a peer not installed, a category not built yet)
//! become "skipped" rows with the reason, so one command line works on every machine and two
//! reports from different machines still line up row by row. A row whose run fails is reported
//! in the table too, and makes the command exit non-zero after printing it.
//!
//! Each task is one module with the same shape: `pub fn bench(&BenchArgs, &Plan, &Progress) ->
//! Result<Vec<Record>>`, listed in [`TASKS`]. Inside, it resolves `--model` (no model: the real
//! architecture with random weights), then for every device × dtype of the [`Plan`] opens the
//! device ([`open_device`]), loads once (timed apart) and measures with
//! `mlbench_bench::measure`; with `--peers` it adds the peers' rows through [`peers`], which
//! also puts mlbench's time as a ratio of theirs in the same table.

mod classify_image;
mod classify_text;
mod diffuse;
mod peers;
mod random;
mod stt;
pub mod tts;

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use mlbench_bench::compare::compare;
use mlbench_bench::env::Environment;
use mlbench_bench::measure::{MeasureConfig, Runs};
use mlbench_bench::record::{Record, RowKey, Status};
use mlbench_bench::report::Report;
use mlbench_core::device::{device_name, DTypeSpec, DeviceSpec};
use mlbench_core::progress::Progress;

use crate::cli::BenchArgs;

/// One task's benchmark: every configuration of the plan, peers included with `--peers`.
type TaskBench = fn(&BenchArgs, &Plan, &Progress) -> Result<Vec<Record>>;

/// Every task name `mlbench bench` accepts, in the order `all` runs them, with its benchmark
/// (`None`: not built yet, a skipped row).
const TASKS: [(&str, Option<TaskBench>); 5] = [
    ("stt", Some(stt::bench)),
    ("tts", Some(tts::bench)),
    ("diffuse", Some(diffuse::bench)),
    ("classify-image", Some(classify_image::bench)),
    ("classify-text", Some(classify_text::bench)),
];

pub fn run(args: BenchArgs) -> Result<()> {
    // Bad flags and an unreadable --compare file fail before minutes of benchmarking.
    let old = args.compare.as_deref().map(read_report).transpose()?;
    let plan = Plan::from_args(&args)?;
    if args.task == "all" && args.model.is_some() {
        bail!(
            "--model names the model of one task: use it with stt, tts, diffuse, classify-image or classify-text, not all"
        );
    }
    let progress = crate::progress::bars(false);
    let mut records = Vec::new();
    for (task, bench) in tasks(&args.task) {
        match bench {
            Some(bench) => records.extend(bench(&args, &plan, &progress)?),
            None => records.push(not_built(task)),
        }
    }
    let report = Report::new(std::env::args().collect(), Environment::capture(), records);
    if let Some(path) = &args.json {
        crate::write::output(Some(path), &report.to_json()?)?;
    }
    crate::write::output(None, &render(&report, old.as_ref()))?;
    let failed = report
        .records
        .iter()
        .filter(|r| matches!(r.status, Status::Failed { .. }))
        .count();
    if failed > 0 {
        bail!("{failed} benchmark configuration(s) failed (see the table)");
    }
    Ok(())
}

/// What to run for every task: devices, dtypes, run counts.
pub struct Plan {
    pub devices: Vec<DeviceSpec>,
    /// None: each device's default dtype.
    pub dtypes: Option<Vec<DTypeSpec>>,
    pub measure: MeasureConfig,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Self> {
        Ok(Self {
            devices: parse_list(&args.device, "--device")?,
            dtypes: args
                .dtype
                .as_deref()
                .map(|d| parse_list(d, "--dtype"))
                .transpose()?,
            measure: measure_config(args)?,
        })
    }

    /// The dtypes to run on `device`.
    pub fn dtypes_for(&self, device: DeviceSpec) -> Vec<DTypeSpec> {
        match &self.dtypes {
            Some(list) => list.clone(),
            None => vec![default_dtype(device)],
        }
    }
}

/// f32 on the CPU, f16 on GPUs (as `mlbench stt` does), decided from the spec alone so that a
/// device that cannot be opened still gets a row.
fn default_dtype(device: DeviceSpec) -> DTypeSpec {
    let name = if device == DeviceSpec::Cpu {
        "f32"
    } else {
        "f16"
    };
    name.parse().expect("built-in dtype name")
}

fn parse_list<T>(list: &str, flag: &str) -> Result<Vec<T>>
where
    T: std::str::FromStr + PartialEq,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let value: T = item.parse().with_context(|| format!("{flag} {list}"))?;
        if !out.contains(&value) {
            out.push(value);
        }
    }
    if out.is_empty() {
        bail!("{flag} needs at least one value");
    }
    Ok(out)
}

fn measure_config(args: &BenchArgs) -> Result<MeasureConfig> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let runs = match args.time_budget {
        None => Runs::Count(args.runs),
        Some(s) if s > 0.0 && s.is_finite() => Runs::Budget {
            seconds: s,
            min: 1,
            max: args.runs,
        },
        Some(s) => bail!("--time-budget must be a positive number of seconds, got {s}"),
    };
    Ok(MeasureConfig {
        warmup: args.warmup,
        runs,
    })
}

fn tasks(task: &str) -> Vec<(&'static str, Option<TaskBench>)> {
    TASKS
        .iter()
        .copied()
        .filter(|&(name, _)| task == "all" || name == task)
        .collect()
}

/// The device of `spec` and its column name (`auto` is named after what it chose), or why it
/// cannot be opened here (the reason of a skipped row).
pub fn open_device(spec: DeviceSpec) -> Result<(Device, String), String> {
    let device = spec.select().map_err(|e| e.to_string())?;
    let name = match spec {
        DeviceSpec::Auto => device_name(&device),
        spec => spec.to_string(),
    };
    Ok((device, name))
}

/// The model column of a local path: its last component, so that reports from machines with
/// other home folders line up; anything else (catalog id, hub repo) as given.
pub fn model_label(spec: &str) -> String {
    let path = Path::new(spec);
    match path.file_name() {
        Some(name) if path.exists() => name.to_string_lossy().into_owned(),
        _ => spec.to_string(),
    }
}

/// The row of a category that has no benchmark yet.
fn not_built(task: &str) -> Record {
    let key = RowKey {
        task: task.into(),
        model: String::new(),
        device: String::new(),
        dtype: String::new(),
        config: String::new(),
    };
    Record::skipped(key, "not built yet")
}

fn read_report(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--compare {}: cannot read", path.display()))?;
    Report::from_json(&text).with_context(|| format!("--compare {}", path.display()))
}

/// The report's table, then the comparison with `old` if given.
fn render(report: &Report, old: Option<&Report>) -> String {
    let mut text = report.markdown();
    if let Some(old) = old {
        text.push_str(&format!(
            "\nCompared with the report of {} (median seconds per run; new/old below 1 is faster):\n\n",
            old.created_utc
        ));
        text.push_str(&compare(old, report).markdown());
    }
    text
}
