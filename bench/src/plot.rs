//! Plots (SVG) from what the scenarios keep in their reports: latency CDFs, and server CPU
//! against load (`compare` with steps: Chorus and Janus; `ramp`: Chorus).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::prelude::*;

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
}
