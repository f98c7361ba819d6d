//! Reads counters from the server's Prometheus text endpoint (`GET /metrics`).

use std::collections::HashMap;

/// Sums of every sample per metric family name (label sets added together); histogram and
/// summary sub-series keep their suffixed names (`_sum`, `_count`, `_bucket`).
pub fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => continue,
        };
        let rest = match rest.strip_prefix('{') {
            Some(r) => match r.rfind('}') {
                Some(end) => &r[end + 1..],
                None => continue,
            },
            None => rest,
        };
        let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *out.entry(name.to_string()).or_insert(0.0) += value;
    }
    out
}

/// Scrapes `base/metrics`.
pub async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<HashMap<String, f64>> {
    let text = http.get(format!("{base}/metrics")).send().await?.error_for_status()?.text().await?;
    Ok(parse(&text))
}

/// The difference of one family between two scrapes (0 when absent).
pub fn delta(a: &HashMap<String, f64>, b: &HashMap<String, f64>, name: &str) -> f64 {
    b.get(name).copied().unwrap_or(0.0) - a.get(name).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_label_sets_and_skips_comments() {
        let text = "# HELP chorus_sfu_packets_out_total UDP datagrams sent\n\
                    # TYPE chorus_sfu_packets_out_total counter\n\
                    chorus_sfu_packets_out_total 1500\n\
                    chorus_sfu_forwarded_frames_total{kind=\"audio\"} 100\n\
                    chorus_sfu_forwarded_frames_total{kind=\"video\",x=\"a}b\"} 20\n\
                    chorus_voice_join_latency_seconds_sum 0.5\n\
                    broken_line\n\
                    process_cpu_seconds_total 1.25e1\n";
        let m = parse(text);
        assert_eq!(m["chorus_sfu_packets_out_total"], 1500.0);
        assert_eq!(m["chorus_sfu_forwarded_frames_total"], 120.0);
        assert_eq!(m["chorus_voice_join_latency_seconds_sum"], 0.5);
        assert_eq!(m["process_cpu_seconds_total"], 12.5);
        assert!(!m.contains_key("broken_line"));
        let mut later = m.clone();
        later.insert("chorus_sfu_packets_out_total".into(), 2000.0);
        assert_eq!(delta(&m, &later, "chorus_sfu_packets_out_total"), 500.0);
        assert_eq!(delta(&m, &later, "absent"), 0.0);
    }
}
