//! Latency CDF plots (SVG) from the CDF points a scenario keeps in its report.

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
}
