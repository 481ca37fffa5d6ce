//! Summary statistics of timing samples.
//!
//! Benchmarks on a shared machine have skewed noise (a run can only be slowed down, never sped
//! up), so the headline figure is the median, with p10/p90 as the spread; mean and standard
//! deviation are kept for those who want them. Percentiles interpolate linearly between the two
//! nearest ranks, as numpy's default does, so results agree with a spreadsheet or a Python check.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Summary of a set of samples (seconds, unless a field says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of samples.
    pub n: usize,
    /// 50th percentile.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator; 0 for a single sample).
    pub stddev: f64,
}

impl Stats {
    /// Summarises `samples`, which must be non-empty and finite.
    pub fn from_samples(samples: &[f64]) -> Result<Self> {
        if samples.is_empty() {
            return Err(Error::NoSamples);
        }
        if let Some((index, &value)) = samples.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite { index, value });
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        Ok(Self {
            n: sorted.len(),
            median: percentile_sorted(&sorted, 50.0),
            p10: percentile_sorted(&sorted, 10.0),
            p90: percentile_sorted(&sorted, 90.0),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            mean,
            stddev: sample_stddev(&sorted, mean),
        })
    }

    /// The same statistics with every value multiplied by `factor` (n unchanged), e.g. seconds
    /// per run to milliseconds per token.
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            n: self.n,
            median: self.median * factor,
            p10: self.p10 * factor,
            p90: self.p90 * factor,
            min: self.min * factor,
            max: self.max * factor,
            mean: self.mean * factor,
            stddev: self.stddev * factor.abs(),
        }
    }
}

/// The `p`-th percentile (0–100) of ascending `sorted` samples, interpolating linearly between
/// the nearest ranks (numpy's `method="linear"`).
///
/// # Panics
///
/// If `sorted` is empty.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn sample_stddev(samples: &[f64], mean: f64) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let squares: f64 = samples.iter().map(|x| (x - mean).powi(2)).sum();
    (squares / (samples.len() - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn one_to_ten() {
        let samples: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let s = Stats::from_samples(&samples).unwrap();
        assert_eq!(s.n, 10);
        assert!(close(s.median, 5.5));
        assert!(close(s.p10, 1.9), "{}", s.p10);
        assert!(close(s.p90, 9.1), "{}", s.p90);
        assert!(close(s.min, 1.0) && close(s.max, 10.0));
        assert!(close(s.mean, 5.5));
        // Sum of squared deviations 82.5 over 9.
        assert!(close(s.stddev, (82.5f64 / 9.0).sqrt()), "{}", s.stddev);
    }

    #[test]
    fn odd_count_median_is_the_middle_sample() {
        let s = Stats::from_samples(&[3.0, 1.0, 2.0, 100.0, 4.0]).unwrap();
        assert!(close(s.median, 3.0));
        // rank 0.4 between 1 and 2; rank 3.6 between 4 and 100.
        assert!(close(s.p10, 1.4), "{}", s.p10);
        assert!(close(s.p90, 4.0 + 0.6 * 96.0), "{}", s.p90);
    }

    #[test]
    fn textbook_standard_deviation() {
        // Population stddev 2; sample stddev sqrt(32 / 7).
        let s = Stats::from_samples(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert!(close(s.mean, 5.0));
        assert!(close(s.median, 4.5));
        assert!(close(s.stddev, (32.0f64 / 7.0).sqrt()));
    }

    #[test]
    fn single_sample_has_no_spread() {
        let s = Stats::from_samples(&[0.25]).unwrap();
        assert_eq!((s.median, s.p10, s.p90, s.stddev), (0.25, 0.25, 0.25, 0.0));
    }

    #[test]
    fn empty_and_non_finite_samples_are_errors() {
        assert!(matches!(Stats::from_samples(&[]), Err(Error::NoSamples)));
        assert!(matches!(
            Stats::from_samples(&[1.0, f64::NAN]),
            Err(Error::NonFinite { index: 1, .. })
        ));
    }

    #[test]
    fn scaling_keeps_n_and_scales_the_rest() {
        let s = Stats::from_samples(&[1.0, 2.0, 3.0])
            .unwrap()
            .scaled(1000.0);
        assert_eq!(s.n, 3);
        assert!(close(s.median, 2000.0) && close(s.stddev, 1000.0));
    }
}
