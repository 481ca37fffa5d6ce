//! Reports: the versioned JSON a run saves, and the Markdown table it prints.
//!
//! A saved report is only useful if a later mlbench can still read it for `--compare`, so the
//! JSON carries [`SCHEMA_VERSION`]. The rule: adding an optional field or a [`Figures`] kind
//! keeps the version (old readers ignore unknown fields and read unknown kinds as
//! `Figures::Unknown`); renaming, removing or changing the meaning of a field bumps it, and
//! [`Report::from_json`] refuses reports newer than it understands instead of misreading them.
//!
//! [`Figures`]: crate::record::Figures

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::env::Environment;
use crate::record::{Record, Status};
use crate::{Error, Result};

/// The JSON schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u64 = 1;

/// A whole bench run: where it ran, and its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u64,
    /// When the run finished, UTC, ISO 8601 (`2026-11-25T10:04:05Z`).
    pub created_utc: String,
    /// The command line that produced it.
    pub command: Vec<String>,
    /// Machine and build.
    pub environment: Environment,
    /// One row per configuration, in run order.
    pub records: Vec<Record>,
}

impl Report {
    /// A report of `records` made now, here.
    pub fn new(command: Vec<String>, environment: Environment, records: Vec<Record>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            created_utc: utc_now(),
            command,
            environment,
            records,
        }
    }

    /// Pretty-printed JSON with a trailing newline.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// Reads a report, refusing one without a schema version or with a newer one.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let version = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or(Error::MissingSchemaVersion)?;
        if version > SCHEMA_VERSION {
            return Err(Error::UnsupportedSchema {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(serde_json::from_value(value)?)
    }

    /// The rows as one Markdown table, under a line naming the machine and build.
    pub fn markdown(&self) -> String {
        let env = &self.environment;
        let mut out = format!(
            "mlbench bench, {}: {}\nmlbench {} (commit {}), candle {}, {}, features: {}\n\n",
            self.created_utc,
            env.summary(),
            env.mlbench_version,
            short_commit(&env.git_commit),
            env.candle,
            env.rustc,
            if env.features.is_empty() {
                "none (CPU only)".to_string()
            } else {
                env.features.join(", ")
            },
        );
        out.push_str(&records_table(&self.records));
        out
    }
}

fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

const HEADER: [&str; 12] = [
    "task",
    "implementation",
    "model",
    "device",
    "dtype",
    "config",
    "load (s)",
    "median (s)",
    "p10–p90 (s)",
    "figures",
    "peak RSS (MiB)",
    "status",
];

/// The Markdown table of `records` (one row each; skipped and failed rows say why).
pub fn records_table(records: &[Record]) -> String {
    let mut out = markdown_row(HEADER.iter().map(|s| s.to_string()));
    out.push_str(&markdown_row(HEADER.iter().map(|h| {
        if h.contains("(s)") || h.contains("MiB") {
            "---:".to_string()
        } else {
            "---".to_string()
        }
    })));
    for r in records {
        out.push_str(&markdown_row(record_cells(r)));
    }
    out
}

fn record_cells(r: &Record) -> Vec<String> {
    let k = &r.key;
    vec![
        k.task.clone(),
        r.implementation.clone(),
        k.model.clone(),
        k.device.clone(),
        k.dtype.clone(),
        k.config.clone(),
        r.load_s.map(|s| format!("{s:.2}")).unwrap_or_default(),
        r.run_s
            .map(|s| format!("{:.4}", s.median))
            .unwrap_or_default(),
        r.run_s
            .map(|s| format!("{:.4}–{:.4}", s.p10, s.p90))
            .unwrap_or_default(),
        r.figures.summary(),
        r.peak_rss_bytes
            .map(|b| format!("{:.0}", b as f64 / (1024.0 * 1024.0)))
            .unwrap_or_default(),
        status_cell(r),
    ]
}

fn status_cell(r: &Record) -> String {
    let status = match &r.status {
        Status::Ok => "ok".to_string(),
        Status::Skipped { reason } => format!("skipped: {reason}"),
        Status::Failed { error } => format!("failed: {error}"),
    };
    std::iter::once(status)
        .chain(r.notes.iter().cloned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One Markdown table row; `|` inside a cell is escaped and newlines become spaces.
pub(crate) fn markdown_row(cells: impl IntoIterator<Item = String>) -> String {
    let cells: Vec<String> = cells
        .into_iter()
        .map(|c| c.replace('|', "\\|").replace('\n', " "))
        .collect();
    format!("| {} |\n", cells.join(" | "))
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date-time dependency.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

fn format_utc(unix_s: u64) -> String {
    let (days, rem) = (unix_s / 86_400, unix_s % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{measure, MeasureConfig, Runs};
    use crate::record::{Figures, RowKey, SttFigures};
    use mlbench_core::progress::Progress;

    pub(crate) fn key(device: &str, config: &str) -> RowKey {
        RowKey {
            task: "stt".into(),
            model: "whisper tiny (random weights)".into(),
            device: device.into(),
            dtype: "f32".into(),
            config: config.into(),
        }
    }

    fn sample_report() -> Report {
        let config = MeasureConfig {
            warmup: 0,
            runs: Runs::Count(3),
        };
        let m = measure(&config, &Progress::none(), "t", |p| {
            p.stage("encode", || ());
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
        let mut ok = Record::measured(key("cpu", "30 s window | 32 tokens"), &m);
        ok.load_s = Some(0.5);
        ok.figures = Figures::Stt(SttFigures::new(30.0, 0.6).with_split(0.3, 0.3, Some(32)));
        ok.peak_rss_bytes = Some(300 << 20);
        ok.metrics.insert("mel_s".into(), 0.01);
        ok.notes.push("random weights".into());
        let skipped = Record::skipped(key("cuda:0", "30 s window"), "not compiled in");
        let failed = Record::failed(key("metal", "30 s window"), "boom");
        Report::new(
            vec!["mlbench".into(), "bench".into()],
            Environment::capture(),
            vec![ok, skipped, failed],
        )
    }

    #[test]
    fn json_round_trips() {
        let report = sample_report();
        let json = report.to_json().unwrap();
        assert!(json.contains("\"schema_version\": 1"));
        assert!(json.contains("\"state\": \"skipped\""));
        assert!(json.contains("\"kind\": \"stt\""));
        assert_eq!(Report::from_json(&json).unwrap(), report);
    }

    #[test]
    fn schema_version_is_checked() {
        let mut value: serde_json::Value =
            serde_json::from_str(&sample_report().to_json().unwrap()).unwrap();
        value["schema_version"] = (SCHEMA_VERSION + 1).into();
        assert!(matches!(
            Report::from_json(&value.to_string()),
            Err(Error::UnsupportedSchema { found: 2, .. })
        ));
        value.as_object_mut().unwrap().remove("schema_version");
        assert!(matches!(
            Report::from_json(&value.to_string()),
            Err(Error::MissingSchemaVersion)
        ));
        assert!(matches!(Report::from_json("nope"), Err(Error::Json(_))));
    }

    #[test]
    fn markdown_has_one_row_per_record() {
        let md = sample_report().markdown();
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), 2 + 3, "{md}");
        assert!(rows[2].contains("30 s window \\| 32 tokens"), "{md}");
        assert!(rows[2].contains("ok; random weights") && rows[2].contains("RTF 0.0200"));
        assert!(rows[3].contains("skipped: not compiled in"));
        assert!(rows[4].contains("failed: boom"));
        // Every row has the same number of cells.
        let cells = |l: &str| l.matches(" | ").count();
        assert!(rows.iter().all(|r| cells(r) == cells(rows[0])), "{md}");
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
