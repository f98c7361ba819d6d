//! `compare`: the voice scenario against Chorus and against Janus VideoRoom in one invocation,
//! alternating rounds on the same machine, and a side-by-side report with the ratios
//! Chorus / Janus. Both servers run in the bench's network namespace (Janus needs it), with the
//! same load clients, so only the SFU differs. At each step the machine's forwarding `floor` (a bare
//! receive → decrypt → encrypt-and-send loop, no server) runs too, so the report says how far each
//! server is from what forwarding costs here, from the same invocation.

use anyhow::{Result, bail};
use serde_json::json;

use crate::cli::VoiceParams;
use crate::report::Report;
use crate::target::{Spec, Target};

/// What the comparison puts side by side (metric names of the voice report). Lower is better
/// for all but `delivered_per_s`.
const COMPARED: [&str; 12] = [
    "cpu_per_delivered_packet",
    "server_cpu",
    "server_rss",
    "delivered_per_s",
    "forward_latency_p50",
    "forward_latency_p95",
    "forward_latency_p99",
    "loss",
    "jitter_mean",
    "join_latency_p50",
    "join_latency_p99",
    "bench_cpu",
];

/// Runs `rounds` × (Chorus, Janus) at each load step (a number of rooms; `p.rooms` when `steps`
/// is empty); returns every run's report and then the comparison, whose table is the largest
/// step's and whose details carry server CPU against load for both.
pub async fn run(chorus: &Spec, janus: &Spec, rounds: usize, steps: &[usize], p: &VoiceParams) -> Result<Vec<Report>> {
    if rounds == 0 || steps.contains(&0) {
        bail!("--rounds and every --steps entry must be at least 1");
    }
    let steps = if steps.is_empty() { vec![p.rooms] } else { steps.to_vec() };
    let mut runs = Vec::new();
    for &rooms in &steps {
        let p = VoiceParams { rooms, ..p.clone() };
        for round in 0..rounds {
            // Alternate which goes first, so neither always meets a warmer (or busier) machine.
            let order = if round % 2 == 0 { [chorus, janus] } else { [janus, chorus] };
            for spec in order {
                let mut target = Target::open(spec).await?;
                eprintln!("compare: {rooms} rooms, round {} of {rounds}, {}", round + 1, target.name());
                let result = super::voice::run(&mut target, true, &p).await;
                let tail = target.log_tail();
                target.shutdown().await;
                runs.push(result.map_err(|e| e.context(tail))?);
            }
        }
        eprintln!("compare: {rooms} rooms, the forwarding floor");
        runs.push(tokio::task::spawn_blocking(move || super::floor::run(&p)).await??);
    }
    let largest = steps.iter().copied().max().unwrap_or(p.rooms);
    let mut comparison = compare(&runs, &VoiceParams { rooms: largest, ..p.clone() })?;
    comparison.details["cpu_vs_load"] = cpu_vs_load(&runs, &steps);
    runs.push(comparison);
    Ok(runs)
}

fn rooms_of(r: &Report) -> Option<u64> {
    r.params.get("rooms").and_then(serde_json::Value::as_u64)
}

fn metric(r: &Report, name: &str) -> Option<f64> {
    r.metrics.iter().find(|m| m.name == name).map(|m| m.value)
}

/// Per server, (delivered packets/s, server CPU % of one core) at each step: medians of its rounds.
fn cpu_vs_load(runs: &[Report], steps: &[usize]) -> serde_json::Value {
    let series: Vec<serde_json::Value> = ["chorus", "janus", "floor"]
        .iter()
        .map(|target| {
            let points: Vec<[f64; 2]> = steps
                .iter()
                .filter_map(|&rooms| {
                    let load = median_at(runs, target, rooms as u64, "delivered_per_s")?;
                    let cpu = median_at(runs, target, rooms as u64, "server_cpu")?;
                    Some([load, cpu])
                })
                .collect();
            json!({"name": target, "points": points})
        })
        .collect();
    json!(series)
}

/// CPU per delivered packet at each step: Chorus, Janus and the floor (medians of the rounds), and
/// Chorus's ratio to each — the figures the forwarding-cost goals are stated in.
fn per_step(runs: &[Report]) -> serde_json::Value {
    let mut steps: Vec<u64> = runs.iter().filter_map(rooms_of).collect();
    steps.sort_unstable();
    steps.dedup();
    let rows: Vec<serde_json::Value> = steps
        .iter()
        .map(|&rooms| {
            let of = |target: &str| median_at(runs, target, rooms, "cpu_per_delivered_packet");
            let (c, j, f) = (of("chorus"), of("janus"), of("floor"));
            let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b.filter(|b| *b > 0.0)).map(|(a, b)| a / b);
            json!({"rooms": rooms, "chorus": c, "janus": j, "floor": f,
                   "chorus_over_janus": ratio(c, j), "chorus_over_floor": ratio(c, f)})
        })
        .collect();
    json!(rows)
}

/// The median of `name` over `target`'s runs at `rooms` (a run that names no room count counts at
/// every step).
fn median_at(runs: &[Report], target: &str, rooms: u64, name: &str) -> Option<f64> {
    median(
        runs.iter()
            .filter(|r| r.target == target && rooms_of(r).is_none_or(|n| n == rooms))
            .filter_map(|r| metric(r, name))
            .collect(),
    )
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The median of each compared metric per server at `p.rooms`, and Chorus / Janus.
fn compare(runs: &[Report], p: &VoiceParams) -> Result<Report> {
    let mut report = Report::new("compare", serde_json::to_value(p)?);
    report.target = "chorus vs janus".into();
    let of = |target: &str, name: &str| median_at(runs, target, p.rooms as u64, name);
    let mut rows = Vec::new();
    for name in COMPARED {
        let unit = runs
            .iter()
            .find_map(|r| r.metrics.iter().find(|m| m.name == name).map(|m| m.unit.clone()))
            .unwrap_or_default();
        let (c, j) = (of("chorus", name), of("janus", name));
        if let Some(c) = c {
            report.metric(&format!("{name} chorus"), c, &unit);
        }
        if let Some(j) = j {
            report.metric(&format!("{name} janus"), j, &unit);
        }
        let ratio = match (c, j) {
            (Some(c), Some(j)) if j > 0.0 => Some(c / j),
            _ => None,
        };
        if let Some(r) = ratio {
            report.metric(&format!("{name} chorus/janus"), r, "×");
        }
        rows.push(json!({"metric": name, "unit": unit, "chorus": c, "janus": j, "ratio": ratio}));
    }
    let floor = of("floor", "cpu_per_delivered_packet");
    if let (Some(c), Some(f)) = (of("chorus", "cpu_per_delivered_packet"), floor.filter(|f| *f > 0.0)) {
        report.metric("cpu_per_delivered_packet floor", f, "µs");
        report.metric("cpu_per_delivered_packet chorus/floor", c / f, "×");
    }
    for r in runs {
        for f in &r.failures {
            report.failures.push(format!("{}: {f}", r.target));
        }
    }
    let steps = per_step(runs);
    for row in steps.as_array().into_iter().flatten() {
        let rooms = &row["rooms"];
        for (key, label) in [("chorus_over_janus", "chorus/janus"), ("chorus_over_floor", "chorus/floor")] {
            if let Some(v) = row[key].as_f64() {
                report.metric(&format!("cpu_per_delivered_packet {label} at {rooms} rooms"), v, "×");
            }
        }
    }
    report.details = json!({
        "rows": rows,
        "per_step": steps,
        "rounds": runs.iter().filter(|r| r.target == "chorus" && rooms_of(r) == Some(p.rooms as u64)).count(),
        "note": "medians over the rounds; ratio = Chorus / Janus (below 1: Chorus uses less)",
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: &str, cpu: f64) -> Report {
        run_at(target, json!({}), cpu)
    }

    fn run_at(target: &str, params: serde_json::Value, cpu: f64) -> Report {
        let mut r = Report::new("voice", params);
        r.target = target.into();
        r.metric("cpu_per_delivered_packet", cpu, "µs");
        r
    }

    fn one_small_room() -> VoiceParams {
        VoiceParams { rooms: 1, participants: 2, talkers: 1, duration: 1, connect_timeout: 1, tcp: false, turn: false }
    }

    #[test]
    fn ratio_is_chorus_median_over_janus_median() {
        let p = one_small_room();
        let runs = [run("chorus", 4.0), run("janus", 12.0), run("chorus", 6.0), run("janus", 8.0)];
        let c = compare(&runs, &p).expect("comparison");
        let get = |n: &str| c.metrics.iter().find(|m| m.name == n).map(|m| m.value);
        assert_eq!(get("cpu_per_delivered_packet chorus"), Some(5.0));
        assert_eq!(get("cpu_per_delivered_packet janus"), Some(10.0));
        assert_eq!(get("cpu_per_delivered_packet chorus/janus"), Some(0.5));
        assert!(c.failures.is_empty());
    }

    #[test]
    fn cpu_against_load_has_a_point_per_step_and_server() {
        let step = |target: &str, rooms: u64, load: f64, cpu: f64| {
            let mut r = Report::new("voice", json!({"rooms": rooms}));
            r.target = target.into();
            r.metric("delivered_per_s", load, "/s");
            r.metric("server_cpu", cpu, "%");
            r
        };
        let runs = [step("chorus", 2, 1000.0, 5.0), step("janus", 2, 1000.0, 9.0), step("chorus", 4, 2000.0, 8.0)];
        let v = cpu_vs_load(&runs, &[2, 4]);
        assert_eq!(v[0]["name"], "chorus");
        assert_eq!(v[0]["points"], json!([[1000.0, 5.0], [2000.0, 8.0]]));
        assert_eq!(v[1]["points"], json!([[1000.0, 9.0]]));
    }

    #[test]
    fn each_step_puts_chorus_beside_janus_and_the_floor() {
        let step = |target: &str, rooms: u64, cpu: f64| run_at(target, json!({"rooms": rooms}), cpu);
        let runs = [step("chorus", 2, 6.0), step("janus", 2, 24.0), step("floor", 2, 3.0), step("chorus", 20, 9.0)];
        let rows = per_step(&runs);
        assert_eq!(rows[0]["rooms"], 2);
        assert_eq!(rows[0]["chorus_over_janus"], 0.25);
        assert_eq!(rows[0]["chorus_over_floor"], 2.0);
        assert_eq!(rows[1]["rooms"], 20);
        assert!(rows[1]["chorus_over_floor"].is_null(), "no floor at 20 rooms: no ratio");
    }

    #[test]
    fn a_failed_run_fails_the_comparison() {
        let p = one_small_room();
        let mut j = run("janus", 1.0);
        j.check(false, "no media forwarded in the window");
        let c = compare(&[run("chorus", 1.0), j], &p).expect("comparison");
        assert_eq!(c.failures, vec!["janus: no media forwarded in the window".to_owned()]);
    }
}
