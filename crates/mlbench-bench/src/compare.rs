//! Comparing two reports row by row: did a change make anything faster or slower?
//!
//! Rows are matched by their [`RowKey`] (task, model, device, dtype, config), so a report may
//! gain or lose rows between runs; unmatched rows are listed, not dropped. The ratio is
//! new median ÷ old median: below 1 the new run is faster, above 1 slower. Medians, not means,
//! because one disturbed run should not decide the verdict.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::record::{Record, RowKey};
use crate::report::{markdown_row, Report};

/// One row of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedRow {
    /// The row's identity.
    pub key: RowKey,
    /// Median seconds per run in the old report (None: absent or not measured there).
    pub old_median_s: Option<f64>,
    /// Median seconds per run in the new report.
    pub new_median_s: Option<f64>,
    /// new ÷ old, where both were measured.
    pub ratio: Option<f64>,
}

/// All rows of the new report in order, then rows only the old one has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The compared rows.
    pub rows: Vec<ComparedRow>,
}

/// new ÷ old, when both are positive and finite.
pub fn ratio(old: f64, new: f64) -> Option<f64> {
    (old > 0.0 && new > 0.0 && old.is_finite() && new.is_finite()).then(|| new / old)
}

/// Matches `new`'s rows with `old`'s by key (the first row wins when a key repeats).
pub fn compare(old: &Report, new: &Report) -> Comparison {
    let mut old_by_key: HashMap<&RowKey, &Record> = HashMap::new();
    for r in &old.records {
        old_by_key.entry(&r.key).or_insert(r);
    }
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for n in &new.records {
        if !seen.insert(&n.key) {
            continue;
        }
        let o = old_by_key.get(&n.key);
        rows.push(row(&n.key, o.and_then(|o| o.median_s()), n.median_s()));
    }
    for o in &old.records {
        if seen.insert(&o.key) {
            rows.push(row(&o.key, o.median_s(), None));
        }
    }
    Comparison { rows }
}

fn row(key: &RowKey, old: Option<f64>, new: Option<f64>) -> ComparedRow {
    ComparedRow {
        key: key.clone(),
        old_median_s: old,
        new_median_s: new,
        ratio: old.zip(new).and_then(|(o, n)| ratio(o, n)),
    }
}

impl Comparison {
    /// A Markdown table: old and new medians and new ÷ old per row.
    pub fn markdown(&self) -> String {
        let header = [
            "task", "model", "device", "dtype", "config", "old (s)", "new (s)", "new/old",
        ];
        let mut out = markdown_row(header.iter().map(|s| s.to_string()));
        out.push_str(&markdown_row(
            header
                .iter()
                .enumerate()
                .map(|(i, _)| if i >= 5 { "---:" } else { "---" }.to_string()),
        ));
        for r in &self.rows {
            out.push_str(&markdown_row(cells(r)));
        }
        out
    }
}

fn cells(r: &ComparedRow) -> Vec<String> {
    let secs = |s: Option<f64>| s.map_or_else(|| "—".to_string(), |s| format!("{s:.4}"));
    let verdict = match (r.ratio, r.old_median_s, r.new_median_s) {
        (Some(x), _, _) => format!("{x:.3}"),
        (None, None, Some(_)) => "new row".into(),
        (None, Some(_), None) => "not measured now".into(),
        _ => "not measured".into(),
    };
    let k = &r.key;
    vec![
        k.task.clone(),
        k.model.clone(),
        k.device.clone(),
        k.dtype.clone(),
        k.config.clone(),
        secs(r.old_median_s),
        secs(r.new_median_s),
        verdict,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Environment;
    use crate::stats::Stats;

    fn key(device: &str) -> RowKey {
        RowKey {
            task: "stt".into(),
            model: "tiny".into(),
            device: device.into(),
            dtype: "f32".into(),
            config: "30 s".into(),
        }
    }

    fn measured(device: &str, samples: &[f64]) -> Record {
        let mut r = Record::skipped(key(device), "");
        r.status = crate::record::Status::Ok;
        r.run_s = Some(Stats::from_samples(samples).unwrap());
        r
    }

    fn report(records: Vec<Record>) -> Report {
        Report::new(vec![], Environment::capture(), records)
    }

    #[test]
    fn ratio_is_new_over_old_of_medians() {
        let old = report(vec![
            measured("cpu", &[1.0, 2.0, 9.0]),
            measured("cuda:0", &[1.0]),
            measured("metal", &[1.0]),
        ]);
        let new = report(vec![
            measured("cpu", &[1.0, 1.5, 1.6]),
            Record::skipped(key("cuda:0"), "no GPU"),
            measured("cpu-new", &[0.5]),
        ]);
        let c = compare(&old, &new);
        assert_eq!(c.rows.len(), 4);
        assert_eq!(c.rows[0].key.device, "cpu");
        assert!((c.rows[0].ratio.unwrap() - 0.75).abs() < 1e-12);
        assert_eq!((c.rows[1].old_median_s, c.rows[1].ratio), (Some(1.0), None));
        assert_eq!(
            (c.rows[2].old_median_s, c.rows[2].new_median_s),
            (None, Some(0.5))
        );
        assert_eq!(c.rows[3].key.device, "metal");
        let md = c.markdown();
        assert!(md.contains("| 0.750 |") && md.contains("new row"), "{md}");
        assert!(md.contains("not measured now"), "{md}");
    }

    #[test]
    fn ratio_guards_against_zero_and_nan() {
        assert_eq!(ratio(2.0, 1.0), Some(0.5));
        assert_eq!(ratio(0.0, 1.0), None);
        assert_eq!(ratio(1.0, f64::NAN), None);
    }

    #[test]
    fn repeated_keys_use_the_first_row() {
        let old = report(vec![measured("cpu", &[2.0]), measured("cpu", &[8.0])]);
        let new = report(vec![measured("cpu", &[1.0])]);
        let c = compare(&old, &new);
        assert_eq!(c.rows.len(), 1);
        assert_eq!(c.rows[0].ratio, Some(0.5));
    }
}
