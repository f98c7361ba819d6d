//! Results of a run: a terminal table, JSON and a Markdown report.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

/// One number of a scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

/// A scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// The server under test: "chorus" or "janus".
    pub target: String,
    /// The bench's command line.
    pub command: String,
    pub started_at: String,
    pub machine: String,
    /// /proc/loadavg when the scenario started (other work on the machine skews every number).
    pub load_average: String,
    /// The scenario's parameters.
    pub params: Value,
    pub metrics: Vec<Metric>,
    /// Everything else worth keeping (latency summaries, CDF points, per-room numbers).
    pub details: Value,
    /// Checks that failed (the smoke exits non-zero when any is present).
    pub failures: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, params: Value) -> Report {
        Report {
            scenario: scenario.to_owned(),
            target: "chorus".to_owned(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine: machine(),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            params,
            metrics: Vec::new(),
            details: Value::Null,
            failures: Vec::new(),
        }
    }

    pub fn metric(&mut self, name: &str, value: f64, unit: &str) {
        self.metrics.push(Metric { name: name.to_owned(), value, unit: unit.to_owned() });
    }

    /// Records a failed check unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }
}

/// "2 × AMD EPYC …" from /proc/cpuinfo.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} × {model}")
}

/// Numbers as people read them: thousands separated, at most 3 significant decimals.
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let decimals = if v.abs() >= 1000.0 || v.fract() == 0.0 {
        0
    } else if v.abs() >= 100.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        4
    };
    let mut s = format!("{v:.decimals$}");
    if decimals == 4 {
        s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Columns of a report's time series (`soak`): (key in each sample, header).
const SERIES_COLUMNS: [(&str, &str); 10] = [
    ("t", "t (s)"),
    ("rss_mib", "RSS (MiB)"),
    ("fds", "fds"),
    ("threads", "threads"),
    ("cpu_percent", "CPU (%)"),
    ("gateway_connections", "gateway conns"),
    ("voice_sessions", "voice sessions"),
    ("messages_posted", "posted"),
    ("voice_rejoins", "rejoins"),
    ("gateway_reconnects", "reconnects"),
];

/// At most `rows` evenly spaced samples of the report's time series (the last one always), as
/// formatted cells; empty without a series.
fn series_rows(r: &Report, rows: usize) -> Vec<Vec<String>> {
    let Some(series) = r.details.get("series").and_then(|v| v.as_array()) else { return Vec::new() };
    let step = series.len().div_ceil(rows.max(1)).max(1);
    let mut picked: Vec<&Value> = series.iter().step_by(step).collect();
    if let Some(last) = series.last()
        && (series.len() - 1) % step != 0
    {
        picked.push(last);
    }
    picked
        .into_iter()
        .map(|p| {
            SERIES_COLUMNS
                .iter()
                .map(|(key, _)| p[key].as_f64().map_or("–".to_owned(), |v| format_value((v * 10.0).round() / 10.0)))
                .collect()
        })
        .collect()
}

/// The terminal summary.
pub fn table(r: &Report) -> String {
    let width = r.metrics.iter().map(|m| m.name.len()).max().unwrap_or(0).max(6);
    let mut s = String::new();
    let _ = writeln!(s, "\n== {} ({}) ==  {}  (load average {})", r.scenario, r.target, r.params, r.load_average);
    for m in &r.metrics {
        let _ = writeln!(s, "  {:<width$}  {:>14} {}", m.name, format_value(m.value), m.unit);
    }
    let rows = series_rows(r, 12);
    if !rows.is_empty() {
        let _ = writeln!(s, "  over time:");
        let widths: Vec<usize> = SERIES_COLUMNS.iter().map(|(_, h)| h.chars().count().max(7)).collect();
        let line = |cells: Vec<&str>| -> String {
            cells.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}")).collect::<Vec<_>>().join("  ")
        };
        let _ = writeln!(s, "  {}", line(SERIES_COLUMNS.iter().map(|(_, h)| *h).collect()));
        for row in &rows {
            let _ = writeln!(s, "  {}", line(row.iter().map(String::as_str).collect()));
        }
    }
    if r.failures.is_empty() {
        let _ = writeln!(s, "  checks: ok");
    } else {
        for f in &r.failures {
            let _ = writeln!(s, "  FAILED: {f}");
        }
    }
    s
}

/// The Markdown report of one or more scenario runs.
pub fn markdown(reports: &[Report]) -> String {
    let mut s = String::from("# chorus-bench results\n");
    for r in reports {
        let _ = write!(
            s,
            "\n## {} ({})\n\n```sh\n{}\n```\nMachine: {}, load average {} at the start. Started {}. Parameters: `{}`.\n\n| metric | value | unit |\n|---|---:|---|\n",
            r.scenario, r.target, r.command, r.machine, r.load_average, r.started_at, r.params
        );
        for m in &r.metrics {
            let _ = writeln!(s, "| {} | {} | {} |", m.name, format_value(m.value), m.unit);
        }
        let rows = series_rows(r, 40);
        if !rows.is_empty() {
            let header: Vec<&str> = SERIES_COLUMNS.iter().map(|(_, h)| *h).collect();
            let _ = write!(s, "\nOver time:\n\n| {} |\n|{}\n", header.join(" | "), "---:|".repeat(header.len()));
            for row in rows {
                let _ = writeln!(s, "| {} |", row.join(" | "));
            }
        }
        if !r.failures.is_empty() {
            let _ = writeln!(s, "\nFailed checks:\n");
            for f in &r.failures {
                let _ = writeln!(s, "- {f}");
            }
        }
    }
    s
}

/// Writes the JSON and Markdown files asked for.
pub fn write_files(reports: &[Report], json: Option<&Path>, md: Option<&Path>) -> Result<()> {
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(reports)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = md {
        std::fs::write(path, markdown(reports)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_well() {
        assert_eq!(format_value(1234567.0), "1,234,567");
        assert_eq!(format_value(-1234.4), "-1,234");
        assert_eq!(format_value(150.26), "150.3");
        assert_eq!(format_value(2.345), "2.35");
        assert_eq!(format_value(0.0123), "0.0123");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(f64::NAN), "–");
    }

    #[test]
    fn table_and_markdown_carry_metrics_and_failures() {
        let mut r = Report::new("voice", serde_json::json!({"rooms": 1}));
        r.metric("loss", 0.5, "%");
        r.check(false, "no media received");
        r.check(true, "never shown");
        assert!(table(&r).contains("FAILED: no media received"));
        let md = markdown(&[r]);
        assert!(md.contains("| loss | 0.5 | % |"));
        assert!(md.contains("- no media received"));
        assert!(!md.contains("never shown"));
    }

    #[test]
    fn a_time_series_is_shown_thinned_with_its_last_sample() {
        let mut r = Report::new("soak", serde_json::json!({}));
        let series: Vec<Value> =
            (0..=30).map(|i| serde_json::json!({"t": i as f64 * 10.0, "rss_mib": 50.04, "fds": 31})).collect();
        r.details = serde_json::json!({ "series": series });
        let rows = series_rows(&r, 12);
        assert_eq!(rows.len(), 11);
        assert_eq!(rows[1][0], "30");
        assert_eq!(rows.last().unwrap()[0], "300");
        assert_eq!(rows[0][1], "50");
        assert_eq!(rows[0][4], "–");
        assert!(table(&r).contains("over time:"));
        let md = markdown(&[r]);
        assert!(md.contains("| t (s) | RSS (MiB) |") && md.contains("| 300 | 50 | 31 |"), "{md}");
        assert!(series_rows(&Report::new("voice", serde_json::json!({})), 12).is_empty());
    }
}
