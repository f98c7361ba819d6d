//! `ramp`: the voice scenario with more rooms at each step until p99 forwarding latency passes
//! its limit, loss passes its limit or a check fails; reports the largest load that held.

use anyhow::{Result, bail};
use serde_json::json;

use super::{setup_guild, unique_prefix};
use crate::cli::{RampParams, VoiceParams};
use crate::report::Report;
use crate::target::Target;

/// The numbers of one step that decide and describe it.
fn step_summary(r: &Report, rooms: usize, passed: bool) -> serde_json::Value {
    let get = |name: &str| r.metrics.iter().find(|m| m.name == name).map(|m| m.value);
    json!({
        "rooms": rooms,
        "participants": get("participants"),
        "passed": passed,
        "forward_latency_p99_ms": get("forward_latency_p99"),
        "loss_percent": get("loss"),
        "sfu_forwarded_per_s": get("sfu_forwarded_per_s"),
        "delivered_per_s": get("delivered_per_s"),
        "server_cpu_percent": get("server_cpu"),
        "cpu_per_forwarded_packet_us": get("cpu_per_forwarded_packet"),
        "bench_cpu_percent": get("bench_cpu"),
        "join_latency_p99_ms": get("join_latency_p99"),
        "failures": r.failures,
    })
}

pub async fn run(target: &mut Target, p: &RampParams) -> Result<Report> {
    if p.start_rooms == 0 || p.step_rooms == 0 || p.participants == 0 || p.max_rooms < p.start_rooms {
        bail!("need 0 < --start-rooms <= --max-rooms, --step-rooms > 0 and --participants > 0");
    }
    let mut report = Report::new("ramp", serde_json::to_value(p)?);
    let (_owner, guild, mut accounts) = setup_guild(target, "ramp", p.max_rooms, 0, false).await?;
    let mut steps = Vec::new();
    let mut held: Option<Report> = None;
    let mut rooms = p.start_rooms;
    while rooms <= p.max_rooms {
        let need = rooms * p.participants;
        if accounts.len() < need {
            let pb = crate::progress::bar((need - accounts.len()) as u64, "accounts");
            let more = target
                .chorus()?
                .register_members(&unique_prefix("ramp"), need - accounts.len(), &guild, 4, || pb.inc(1))
                .await?;
            pb.finish_and_clear();
            accounts.extend(more);
        }
        let params = VoiceParams {
            rooms,
            participants: p.participants,
            talkers: p.talkers,
            duration: p.step_duration,
            connect_timeout: 60,
            tcp: false,
            turn: false,
        };
        let r = super::voice::measure(target, &params, &guild.voice_channels, &accounts).await?;
        let get = |name: &str| r.metrics.iter().find(|m| m.name == name).map_or(f64::INFINITY, |m| m.value);
        let passed = r.failures.is_empty()
            && get("forward_latency_p99") <= p.p99_limit_ms
            && get("loss") <= p.loss_limit_percent;
        eprintln!(
            "ramp: {rooms} rooms × {}: p99 {:.1} ms, loss {:.2} %, server CPU {:.0} %, bench CPU {:.0} % -> {}",
            p.participants,
            get("forward_latency_p99"),
            get("loss"),
            get("server_cpu"),
            get("bench_cpu"),
            if passed { "held" } else { "failed" }
        );
        steps.push(step_summary(&r, rooms, passed));
        if !passed {
            break;
        }
        held = Some(r);
        rooms += p.step_rooms;
    }
    match &held {
        Some(h) => {
            let last = steps.iter().rev().find(|s| s["passed"] == true).and_then(|s| s["rooms"].as_u64()).unwrap_or(0);
            report.metric("held_rooms", last as f64, "");
            report.metric("held_participants", (last as usize * p.participants) as f64, "");
            for name in [
                "sfu_forwarded_per_s",
                "forward_latency_p50",
                "forward_latency_p99",
                "loss",
                "server_cpu",
                "cpu_per_forwarded_packet",
                "bench_cpu",
            ] {
                if let Some(m) = h.metrics.iter().find(|m| m.name == name) {
                    report.metric(&format!("held_{name}"), m.value, &m.unit);
                }
            }
        }
        None => report.check(false, "even the first step failed its limits"),
    }
    report.metric("steps", steps.len() as f64, "");
    report.metric("reached_max_rooms", f64::from(u8::from(steps.last().is_some_and(|s| s["passed"] == true))), "");
    report.details = json!({ "steps": steps });
    Ok(report)
}
