//! Plots (SVG) from what the scenarios keep in their reports: latency CDFs, server CPU
//! against load (`compare` with steps: Chorus and Janus; `ramp`: Chorus), and the server's
//! resources over time (`soak`).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use crate::report::Report;

/// The CDF series a report carries: (details key, axis label).
const SERIES: [(&str, &str); 4] = [
    ("forward_latency_cdf", "forwarding latency (ms)"),
    ("frame_latency_cdf", "video frame latency: send to last packet (ms)"),
    ("join_latency_cdf", "join latency: grant request to first media (ms)"),
    ("delivery_latency_cdf", "delivery latency: post to gateway frame (ms)"),
];

/// Writes `DIR/<scenario>-<series>.svg` for every CDF in the reports; returns the files.
pub fn write_cdfs(reports: &[Report], dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for r in reports {
        for (key, label) in SERIES {
            let Some(points) = r.details.get(key).and_then(|v| v.as_array()) else { continue };
            let points: Vec<(f64, f64)> =
                points.iter().filter_map(|p| Some((p.get(0)?.as_f64()?.max(0.001), p.get(1)?.as_f64()?))).collect();
            if points.is_empty() {
                continue;
            }
            let path = dir.join(format!("{}-{}.svg", r.scenario, key.trim_end_matches("_cdf").replace('_', "-")));
            cdf_svg(&path, &format!("{}: {label}", r.scenario), label, &points)?;
            files.push(path);
        }
    }
    Ok(files)
}

fn cdf_svg(path: &Path, title: &str, x_label: &str, points: &[(f64, f64)]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let lo = points.first().map_or(0.01, |p| p.0) * 0.9;
    let hi = points.last().map_or(1.0, |p| p.0) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc(x_label).y_desc("fraction of samples ≤ x").draw().map_err(|e| err(&e))?;
    // A step function: each bucket's share is reached at its value.
    let mut steps = Vec::with_capacity(points.len() * 2);
    let mut last = 0.0;
    for &(x, y) in points {
        steps.push((x, last));
        steps.push((x, y));
        last = y;
    }
    chart.draw_series(LineSeries::new(steps, &BLUE)).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Writes `DIR/<scenario>-cpu-vs-load.svg` for every report with CPU-against-load series
/// (`compare`'s `cpu_vs_load`, `ramp`'s steps); returns the files.
pub fn write_cpu_vs_load(reports: &[Report], dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for r in reports {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        if let Some(list) = r.details.get("cpu_vs_load").and_then(|v| v.as_array()) {
            for s in list {
                let name = s["name"].as_str().unwrap_or("?").to_owned();
                let points = s["points"]
                    .as_array()
                    .map(|ps| ps.iter().filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?))).collect())
                    .unwrap_or_default();
                series.push((name, points));
            }
        } else if let Some(steps) = r.details.get("steps").and_then(|v| v.as_array()) {
            let points = steps
                .iter()
                .filter_map(|s| Some((s["delivered_per_s"].as_f64()?, s["server_cpu_percent"].as_f64()?)))
                .collect();
            series.push((r.target.clone(), points));
        }
        series.retain(|(_, p)| !p.is_empty());
        if series.is_empty() {
            continue;
        }
        let path = dir.join(format!("{}-cpu-vs-load.svg", r.scenario));
        load_svg(&path, &format!("{}: server CPU against load", r.scenario), &series)?;
        files.push(path);
    }
    Ok(files)
}

fn load_svg(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (x_max, y_max) = all.fold((1.0f64, 1.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max * 1.1, 0.0..y_max * 1.15)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("media packets delivered to listeners per second")
        .y_desc("server CPU (% of one core)")
        .draw()
        .map_err(|e| err(&e))?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (name, points)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(|e| err(&e))?;
    }
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The soak's judged and plotted series: (key in each sample, panel label).
const RESOURCES: [(&str, &str); 4] = [
    ("rss_mib", "server RSS (MiB)"),
    ("fds", "server open descriptors"),
    ("threads", "server threads"),
    ("cpu_percent", "server CPU (% of one core)"),
];

/// One line of a panel: legend, points, colour.
type Line<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// The load panel's gauges from /metrics: (key, legend).
const LOAD: [(&str, &str); 3] = [
    ("gateway_connections", "gateway connections"),
    ("voice_sessions", "/voice sessions"),
    ("sfu_participants", "SFU participants"),
];

/// Writes `DIR/<scenario>-resources.svg` for every report with a time series (`soak`): RSS,
/// descriptors, threads, CPU and the connection gauges over time, the warm-up shaded and the
/// medians of the judged thirds drawn (red when the series kept growing); returns the files.
pub fn write_resources(reports: &[Report], dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for r in reports {
        let Some(series) = r.details.get("series").and_then(|v| v.as_array()).filter(|s| !s.is_empty()) else {
            continue;
        };
        let path = dir.join(format!("{}-resources.svg", r.scenario));
        let warmup = r.details["warmup_s"].as_f64().unwrap_or(0.0);
        let title = format!(
            "{} ({}): server resources over time (warm-up shaded; bars: medians of the judged thirds, red = kept growing)",
            r.scenario, r.target
        );
        resources_svg(&path, &title, series, warmup, &r.details["trends"])
            .map_err(|e| anyhow!("plotting {}: {e}", path.display()))?;
        files.push(path);
    }
    Ok(files)
}

fn resources_svg(path: &Path, title: &str, series: &[Value], warmup: f64, trends: &Value) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (900, 1150)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, ("sans-serif", 16)).map_err(|x| e(&x))?;
    let t_max = series.iter().filter_map(|p| p["t"].as_f64()).fold(1.0, f64::max);
    let (scale, x_desc) =
        if t_max >= 600.0 { (60.0, "minutes since the load started") } else { (1.0, "seconds since the load started") };
    let column = |key: &str| -> Vec<(f64, f64)> {
        series.iter().filter_map(|p| Some((p["t"].as_f64()? / scale, p[key].as_f64()?))).collect()
    };
    let panels = root.split_evenly((RESOURCES.len() + 1, 1));
    for (area, (key, label)) in panels.iter().zip(RESOURCES) {
        let points = column(key);
        let trend = &trends[key];
        let medians = thirds(&points, warmup / scale, trend);
        let growing = trend["growing"].as_bool().unwrap_or(false);
        let caption = match trend["growth"].as_f64() {
            Some(g) if growing => format!("{label}: KEPT GROWING, {g:+.1} from the first to the last third"),
            Some(g) => format!("{label}: {g:+.1} from the first to the last third"),
            None => label.to_owned(),
        };
        let lines = [(label, points, BLUE)];
        let bars = if growing { RED } else { RGBColor(0, 150, 0) };
        panel(area, &caption, "", t_max / scale, warmup / scale, &lines, &medians, bars)?;
    }
    let lines: Vec<Line> = LOAD
        .iter()
        .zip([BLUE, RED, RGBColor(0, 150, 0)])
        .map(|((key, legend), color)| (*legend, column(key), color))
        .filter(|(_, p, _)| !p.is_empty())
        .collect();
    if let Some(area) = panels.last() {
        panel(area, "load (from /metrics)", x_desc, t_max / scale, warmup / scale, &lines, &[], GREEN)?;
    }
    root.present().map_err(|x| e(&x))
}

/// The judged thirds after the warm-up as ((from, to), median) segments.
fn thirds(points: &[(f64, f64)], warm: f64, trend: &Value) -> Vec<((f64, f64), f64)> {
    let after: Vec<f64> = points.iter().filter(|p| p.0 >= warm).map(|p| p.0).collect();
    let (n, k) = (after.len(), after.len() / 3);
    let (Some(m1), Some(m2), Some(m3)) = (trend["first"].as_f64(), trend["middle"].as_f64(), trend["last"].as_f64())
    else {
        return Vec::new();
    };
    if k == 0 {
        return Vec::new();
    }
    vec![((after[0], after[k - 1]), m1), ((after[k], after[n - k - 1]), m2), ((after[n - k], after[n - 1]), m3)]
}

#[allow(clippy::too_many_arguments)]
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    x_desc: &str,
    x_max: f64,
    warm: f64,
    lines: &[Line],
    medians: &[((f64, f64), f64)],
    median_color: RGBColor,
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let values = lines.iter().flat_map(|(_, p, _)| p.iter().map(|p| p.1)).chain(medians.iter().map(|m| m.1));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.15).max(hi.abs() * 0.05).max(1.0);
    let y = (lo - pad).max(0.0)..hi + pad;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(if x_desc.is_empty() { 22 } else { 38 })
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max.max(1e-9), y.clone())
        .map_err(|x| e(&x))?;
    chart.configure_mesh().x_desc(x_desc).draw().map_err(|x| e(&x))?;
    if warm > 0.0 {
        let shade = Rectangle::new([(0.0, y.start), (warm.min(x_max), y.end)], RGBColor(232, 232, 232).filled());
        chart.draw_series(std::iter::once(shade)).map_err(|x| e(&x))?;
    }
    for (name, points, color) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    for &((from, to), m) in medians {
        let segment = PathElement::new(vec![(from, m), (to.max(from), m)], median_color.stroke_width(3));
        chart.draw_series(std::iter::once(segment)).map_err(|x| e(&x))?;
    }
    if lines.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE)
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_per_cdf() {
        let mut r = Report::new("voice", serde_json::json!({}));
        r.details = serde_json::json!({"forward_latency_cdf": [[0.2, 0.1], [1.5, 0.9], [7.0, 1.0]]});
        let dir = tempfile::tempdir().unwrap();
        let files = write_cdfs(&[r], dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("forwarding latency"));
    }

    #[test]
    fn writes_cpu_against_load_with_a_line_per_server() {
        let mut r = Report::new("compare", serde_json::json!({}));
        r.details = serde_json::json!({"cpu_vs_load": [
            {"name": "chorus", "points": [[1000.0, 5.0], [4000.0, 12.0]]},
            {"name": "janus", "points": [[1000.0, 9.0], [4000.0, 30.0]]}]});
        let dir = tempfile::tempdir().unwrap();
        let files = write_cpu_vs_load(&[r], dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.contains("chorus") && svg.contains("janus") && svg.contains("server CPU"));
    }

    #[test]
    fn writes_the_soak_resources_over_time() {
        let series: Vec<Value> = (0..=12)
            .map(|i| {
                serde_json::json!({"t": i as f64 * 5.0, "rss_mib": 40.0 + i as f64, "fds": 30.0, "threads": 9.0,
                    "cpu_percent": if i == 0 { Value::Null } else { Value::from(12.5) },
                    "gateway_connections": 14.0, "voice_sessions": 6.0, "sfu_participants": 6.0})
            })
            .collect();
        let mut r = Report::new("soak", serde_json::json!({}));
        r.details = serde_json::json!({"series": series, "warmup_s": 20.0, "trends": {
            "rss_mib": {"first": 45.0, "middle": 48.0, "last": 51.0, "growth": 6.0, "growing": false}}});
        let dir = tempfile::tempdir().unwrap();
        let files = write_resources(&[r], dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert!(files[0].ends_with("soak-resources.svg"));
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        for text in ["server RSS", "open descriptors", "threads", "CPU", "gateway connections", "+6.0"] {
            assert!(svg.contains(text), "{text}");
        }
        // No series, no plot.
        assert!(write_resources(&[Report::new("voice", serde_json::json!({}))], dir.path()).unwrap().is_empty());
    }
}
