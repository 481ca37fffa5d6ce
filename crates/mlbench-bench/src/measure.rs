//! The measurement core: warm-up, timed runs, stages, load time.
//!
//! Every benchmark is a closure that does one complete unit of work (transcribe one window,
//! generate one image). [`measure`] calls it `warmup` times untimed — first calls pay for lazy
//! initialisation, page faults and caches — then times each later call on the monotonic clock
//! ([`Instant`]), either a fixed number of times or until a time budget is spent. Inside a run the
//! closure may time named stages through its [`Probe`] (encoder vs decoder), so that the split is
//! measured on exactly the same runs as the total. Model loading happens once, outside the
//! closure, and is timed separately with [`timed`]: it would otherwise dominate small models.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mlbench_core::progress::{Progress, Unit};
use serde::{Deserialize, Serialize};

use crate::stats::Stats;
use crate::{Error, Result};

/// How many timed runs to make.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runs {
    /// Exactly this many.
    Count(usize),
    /// Until `seconds` of timed runs have passed, but at least `min` and at most `max` runs.
    Budget {
        /// Time budget for the timed runs, in seconds.
        seconds: f64,
        /// Runs made even if the budget is spent.
        min: usize,
        /// Runs never exceeded.
        max: usize,
    },
}

/// Warm-up and timed runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasureConfig {
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs.
    pub runs: Runs,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        Self {
            warmup: 1,
            runs: Runs::Count(5),
        }
    }
}

impl MeasureConfig {
    fn validate(&self) -> Result<()> {
        match self.runs {
            Runs::Count(0) => Err(Error::InvalidConfig("at least one timed run is needed".into())),
            Runs::Budget { seconds, min, max } if seconds.is_nan() || seconds <= 0.0 || max == 0 || min > max => {
                Err(Error::InvalidConfig(format!(
                    "time budget needs seconds > 0 and 1 <= max, min <= max (got {seconds} s, min {min}, max {max})"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The number of timed runs if fixed, for a progress total.
    fn fixed_runs(&self) -> Option<usize> {
        match self.runs {
            Runs::Count(n) => Some(n),
            Runs::Budget { .. } => None,
        }
    }

    fn wants_more(&self, done: usize, spent: Duration) -> bool {
        match self.runs {
            Runs::Count(n) => done < n,
            Runs::Budget { seconds, min, max } => {
                done < min || (done < max && spent.as_secs_f64() < seconds)
            }
        }
    }
}

/// Stage timings of one run, handed to the measured closure.
#[derive(Debug, Default)]
pub struct Probe {
    stages: Vec<(String, Duration)>,
}

impl Probe {
    /// Runs `f`, adding its wall time to stage `name` (a stage may run several times per run).
    pub fn stage<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.record(name, start.elapsed());
        out
    }

    /// Adds `elapsed` to stage `name` (for times measured elsewhere, e.g. a pipeline's own).
    pub fn record(&mut self, name: &str, elapsed: Duration) {
        match self.stages.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total += elapsed,
            None => self.stages.push((name.to_string(), elapsed)),
        }
    }
}

/// The timed runs of one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Untimed runs made first.
    pub warmup: usize,
    /// Seconds per timed run, in order.
    pub samples_s: Vec<f64>,
    /// Statistics of `samples_s`.
    pub total: Stats,
    /// Statistics per stage, over the runs that recorded it (seconds per run).
    pub stages: BTreeMap<String, Stats>,
}

/// Warms up, then times `f` as `config` says; `progress` gets one task named `label` that
/// counts runs, warm-up included.
pub fn measure<E>(
    config: &MeasureConfig,
    progress: &Progress,
    label: &str,
    mut f: impl FnMut(&mut Probe) -> Result<(), E>,
) -> Result<Measurement>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    config.validate()?;
    let total = config.fixed_runs().map(|n| (n + config.warmup) as u64);
    progress.begin(label, total, Unit::Items);
    let result = run_all(config, progress, &mut f);
    progress.end();
    result
}

fn run_all<E>(
    config: &MeasureConfig,
    progress: &Progress,
    f: &mut impl FnMut(&mut Probe) -> Result<(), E>,
) -> Result<Measurement>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    for i in 0..config.warmup {
        f(&mut Probe::default()).map_err(|e| Error::Run(e.into()))?;
        progress.update(i as u64 + 1);
    }
    let (mut samples, mut probes) = (Vec::new(), Vec::new());
    let mut spent = Duration::ZERO;
    while config.wants_more(samples.len(), spent) {
        let mut probe = Probe::default();
        let start = Instant::now();
        f(&mut probe).map_err(|e| Error::Run(e.into()))?;
        let elapsed = start.elapsed();
        spent += elapsed;
        samples.push(elapsed.as_secs_f64());
        probes.push(probe);
        progress.update((config.warmup + samples.len()) as u64);
    }
    Ok(Measurement {
        warmup: config.warmup,
        total: Stats::from_samples(&samples)?,
        stages: stage_stats(&probes)?,
        samples_s: samples,
    })
}

fn stage_stats(probes: &[Probe]) -> Result<BTreeMap<String, Stats>> {
    let mut per_stage: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for probe in probes {
        for (name, elapsed) in &probe.stages {
            per_stage
                .entry(name.clone())
                .or_default()
                .push(elapsed.as_secs_f64());
        }
    }
    per_stage
        .into_iter()
        .map(|(name, samples)| Ok((name, Stats::from_samples(&samples)?)))
        .collect()
}

/// Runs `f` once and returns its value with its wall time in seconds (model loads).
pub fn timed<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<(T, f64), E> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Never = std::convert::Infallible;

    #[test]
    fn counts_warmup_and_timed_runs() {
        let mut calls = 0;
        let config = MeasureConfig {
            warmup: 2,
            runs: Runs::Count(3),
        };
        let m = measure(&config, &Progress::none(), "t", |_| {
            calls += 1;
            Ok::<(), Never>(())
        })
        .unwrap();
        assert_eq!(calls, 5);
        assert_eq!((m.warmup, m.samples_s.len(), m.total.n), (2, 3, 3));
    }

    #[test]
    fn stages_are_summed_within_a_run() {
        let config = MeasureConfig {
            warmup: 0,
            runs: Runs::Count(2),
        };
        let m = measure(&config, &Progress::none(), "t", |p| {
            p.record("decode", Duration::from_millis(2));
            p.record("decode", Duration::from_millis(3));
            p.record("encode", Duration::from_millis(7));
            Ok::<(), Never>(())
        })
        .unwrap();
        assert!((m.stages["decode"].median - 0.005).abs() < 1e-12);
        assert!((m.stages["encode"].median - 0.007).abs() < 1e-12);
        assert_eq!(m.stages["decode"].n, 2);
    }

    #[test]
    fn budget_respects_min_and_max() {
        let config = |seconds, min, max| MeasureConfig {
            warmup: 0,
            runs: Runs::Budget { seconds, min, max },
        };
        let ok = |_: &mut Probe| Ok::<(), Never>(());
        // A huge budget stops at max; a tiny one still makes min runs.
        let m = measure(&config(1e9, 1, 4), &Progress::none(), "t", ok).unwrap();
        assert_eq!(m.total.n, 4);
        let slow = |_: &mut Probe| {
            std::thread::sleep(Duration::from_millis(2));
            Ok::<(), Never>(())
        };
        let m = measure(&config(1e-6, 3, 10), &Progress::none(), "t", slow).unwrap();
        assert_eq!(m.total.n, 3);
    }

    #[test]
    fn invalid_settings_and_failures_are_errors() {
        let none = MeasureConfig {
            warmup: 0,
            runs: Runs::Count(0),
        };
        let ok = |_: &mut Probe| Ok::<(), Never>(());
        assert!(matches!(
            measure(&none, &Progress::none(), "t", ok),
            Err(Error::InvalidConfig(_))
        ));
        let fail = |_: &mut Probe| Err(std::io::Error::other("boom"));
        let err = measure(&MeasureConfig::default(), &Progress::none(), "t", fail).unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }

    #[test]
    fn timed_returns_value_and_duration() {
        let (v, s) = timed(|| Ok::<_, Never>(42)).unwrap();
        assert_eq!(v, 42);
        assert!(s >= 0.0);
    }
}
