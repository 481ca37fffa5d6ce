//! Per-stage timings: pipelines record how long each stage took and how often it ran
//! (whisper.cpp style); the CLI prints them with `--timings` and the bench harness reads them.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Total time and call count of one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTiming {
    /// Stage name ("mel", "encode", "decode").
    pub stage: String,
    /// Sum of all calls, in seconds.
    pub total_s: f64,
    /// How many times the stage ran.
    pub calls: u64,
}

/// Timings of the stages of one run, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    stages: Vec<StageTiming>,
}

impl Timings {
    /// Empty timings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one call of `stage` that took `elapsed`.
    pub fn record(&mut self, stage: &str, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        match self.stages.iter_mut().find(|s| s.stage == stage) {
            Some(s) => {
                s.total_s += secs;
                s.calls += 1;
            }
            None => self.stages.push(StageTiming {
                stage: stage.to_string(),
                total_s: secs,
                calls: 1,
            }),
        }
    }

    /// Runs `f`, recording its duration under `stage`.
    pub fn time<T>(&mut self, stage: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.record(stage, start.elapsed());
        out
    }

    /// The timing of one stage.
    pub fn get(&self, stage: &str) -> Option<&StageTiming> {
        self.stages.iter().find(|s| s.stage == stage)
    }

    /// All stages in first-seen order.
    pub fn stages(&self) -> &[StageTiming] {
        &self.stages
    }

    /// Adds every stage of `other` into `self`.
    pub fn merge(&mut self, other: &Timings) {
        for s in &other.stages {
            match self.stages.iter_mut().find(|t| t.stage == s.stage) {
                Some(t) => {
                    t.total_s += s.total_s;
                    t.calls += s.calls;
                }
                None => self.stages.push(s.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_per_stage() {
        let mut t = Timings::new();
        t.record("a", Duration::from_millis(10));
        t.record("b", Duration::from_millis(5));
        t.record("a", Duration::from_millis(20));
        let a = t.get("a").unwrap();
        assert_eq!(a.calls, 2);
        assert!((a.total_s - 0.03).abs() < 1e-9);
        assert_eq!(t.stages()[1].stage, "b");
        let x = t.time("c", || 7);
        assert_eq!(x, 7);
        let mut u = Timings::new();
        u.merge(&t);
        u.merge(&t);
        assert_eq!(u.get("a").unwrap().calls, 4);
    }
}
