//! `voice`: rooms × participants, the first `talkers` of each room sending Opus. Measures join
//! latency, per-packet forwarding latency, loss, jitter, bitrate per subscriber, and the server's
//! CPU, memory and forwarded packets per CPU-second over a measurement window that starts once
//! every participant receives media.

use std::collections::HashMap;

use anyhow::Result;
use serde_json::json;

use super::{ServerSnapshot, server_usage, setup_rooms, window};
use crate::cli::VoiceParams;
use crate::client::api::Account;
use crate::client::voice::{Outcome, Plan};
use crate::measure::latency::Histogram;
use crate::measure::media::{ReceiverStats, loss};
use crate::measure::metrics_scrape::delta;
use crate::report::Report;
use crate::target::Target;

/// Talker id of participant `i` of room `room` (ids only need to be unique within a run).
fn talker_id(per_room: usize, room: usize, i: usize) -> u32 {
    u32::try_from(room * per_room + i).unwrap_or(u32::MAX)
}

pub async fn run(target: &mut Target, restart: bool, p: &VoiceParams) -> Result<Report> {
    if p.rooms == 0 || p.participants == 0 {
        anyhow::bail!("--rooms and --participants must be positive");
    }
    let (channels, accounts) = setup_rooms(target, "voice", p.rooms, p.participants, p.talkers, restart).await?;
    measure(target, p, &channels, &accounts).await
}

/// Runs `p` in `channels` (at least `p.rooms`) with `accounts` that may join them (at least
/// rooms × participants).
pub async fn measure(target: &Target, p: &VoiceParams, channels: &[String], accounts: &[Account]) -> Result<Report> {
    if channels.len() < p.rooms || accounts.len() < p.rooms * p.participants {
        anyhow::bail!("not enough voice channels or accounts for {} rooms × {}", p.rooms, p.participants);
    }
    let mut report = Report::new("voice", serde_json::to_value(p)?);
    report.target = target.name().to_owned();
    let talkers = p.talkers.min(p.participants);
    // Who each participant should hear: the talkers of its room but itself.
    let mut hears: Vec<Vec<u32>> = Vec::new();
    let mut participants = Vec::new();
    for room in 0..p.rooms {
        let room_talkers: Vec<u32> = (0..talkers).map(|i| talker_id(p.participants, room, i)).collect();
        for i in 0..p.participants {
            let me = (i < talkers).then(|| talker_id(p.participants, room, i));
            let heard: Vec<u32> = room_talkers.iter().copied().filter(|t| Some(*t) != me).collect();
            let plan = Plan {
                channel: channels[room].clone(),
                hears: heard.clone(),
                talker: me,
                video: false,
                tile: None,
                leave_after_media: None,
                media_deadline: None,
                tcp: p.tcp,
                turn: p.turn,
            };
            hears.push(heard);
            participants.push((accounts[room * p.participants + i].clone(), plan));
        }
    }
    let receivers = hears.iter().filter(|h| !h.is_empty()).count() as u64;
    let w = window::run(target, participants, receivers, p.duration, p.connect_timeout).await;
    let (outcomes, window, before, after) = (&w.outcomes, w.seconds, &w.before, &w.after);
    summarize(&mut report, p, outcomes, &hears, window, before, after);
    report.metric("connect_all", w.connect_secs, "s");
    report.metric("payload_key_collisions", w.collisions as f64, "");
    Ok(report)
}

fn summarize(
    report: &mut Report,
    p: &VoiceParams,
    outcomes: &[Outcome],
    hears: &[Vec<u32>],
    window: f64,
    before: &ServerSnapshot,
    after: &ServerSnapshot,
) {
    let mut join = Histogram::default();
    let mut forward = Histogram::default();
    let mut sent: HashMap<u32, u64> = HashMap::new();
    let mut errors = Vec::new();
    let (mut decoded, mut decode_failures, mut without_media) = (0u64, 0u64, 0usize);
    let mut bitrates = Vec::new();
    let mut jitters = Vec::new();
    let mut pairs: Vec<(Vec<u32>, &ReceiverStats)> = Vec::new();
    for (i, (o, h)) in outcomes.iter().zip(hears).enumerate() {
        if let Some(d) = o.first_media {
            join.record(d);
        } else if !h.is_empty() {
            without_media += 1;
        }
        forward.merge(&o.stats.latency);
        if o.sent_in_window > 0 || o.sent_total > 0 {
            let per_room = p.participants.max(1);
            sent.insert(talker_id(per_room, i / per_room, i % per_room), o.sent_in_window);
        }
        if !h.is_empty() {
            bitrates.push(o.rx_bytes_in_window as f64 * 8.0 / window / 1000.0);
            jitters.extend(h.iter().filter_map(|t| o.stats.pairs.get(t)).map(|s| s.jitter_us / 1000.0));
            pairs.push((h.clone(), &o.stats));
        }
        decoded += o.decoded;
        decode_failures += o.decode_failures;
        if let Some(e) = &o.error {
            errors.push(e.clone());
        }
    }
    let l = loss(&sent, &pairs);
    let js = join.summary();
    let fs = forward.summary();
    report.metric("participants", outcomes.len() as f64, "");
    report.metric("talkers", sent.len() as f64, "");
    report.metric("window", window, "s");
    report.metric("join_latency_p50", js.p50_ms, "ms");
    report.metric("join_latency_p95", js.p95_ms, "ms");
    report.metric("join_latency_p99", js.p99_ms, "ms");
    report.metric("forward_latency_p50", fs.p50_ms, "ms");
    report.metric("forward_latency_p95", fs.p95_ms, "ms");
    report.metric("forward_latency_p99", fs.p99_ms, "ms");
    report.metric("forward_latency_p99.9", fs.p999_ms, "ms");
    report.metric("forward_latency_max", fs.max_ms, "ms");
    report.metric("packets_expected", l.expected as f64, "");
    report.metric("packets_received", l.received as f64, "");
    report.metric("loss", l.loss * 100.0, "%");
    report.metric("worst_pair_loss", l.worst_pair_loss * 100.0, "%");
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    report.metric("jitter_mean", mean(&jitters), "ms");
    report.metric("jitter_max", max(&jitters), "ms");
    report.metric("subscriber_bitrate_mean", mean(&bitrates), "kbit/s");
    report.metric("subscriber_bitrate_min", if bitrates.is_empty() { 0.0 } else { min(&bitrates) }, "kbit/s");

    let cpu = server_usage(report, before, after);
    // Counted by the receivers, so the same for any SFU: media packets sent in the window and
    // delivered to a listener.
    let delivered = l.received as f64;
    report.metric("delivered_per_s", delivered / window, "/s");
    if let Some(cpu) = cpu.filter(|c| *c > 0.0 && delivered > 0.0) {
        report.metric("cpu_per_delivered_packet", cpu / delivered * 1e6, "µs");
    }
    if !before.metrics.is_empty() {
        // Chorus's own counters.
        let out = delta(&before.metrics, &after.metrics, "chorus_sfu_packets_out_total");
        let fwd = delta(&before.metrics, &after.metrics, "chorus_sfu_forwarded_frames_total");
        let inp = delta(&before.metrics, &after.metrics, "chorus_sfu_packets_in_total");
        report.metric("sfu_packets_in_per_s", inp / window, "/s");
        report.metric("sfu_packets_out_per_s", out / window, "/s");
        report.metric("sfu_forwarded_per_s", fwd / window, "/s");
        if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
            report.metric("packets_out_per_cpu_second", out / cpu, "/CPU-s");
            report.metric("forwarded_per_cpu_second", fwd / cpu, "/CPU-s");
            if fwd > 0.0 {
                report.metric("cpu_per_forwarded_packet", cpu / fwd * 1e6, "µs");
            }
        }
    }
    report.details = json!({
        "join_latency": js,
        "forward_latency": fs,
        "loss": l,
        "forward_latency_cdf": forward.cdf(),
        "errors": errors.iter().take(20).collect::<Vec<_>>(),
    });

    report.check(
        errors.is_empty(),
        format!("{} participants failed, first: {}", errors.len(), errors.first().map_or("", |e| e)),
    );
    report.check(without_media == 0, format!("{without_media} participants never received media"));
    report.check(l.received > 0, "no media forwarded in the window");
    report.check(
        decode_failures == 0 && decoded > 0,
        format!("{decode_failures} received frames did not decode as Opus ({decoded} did)"),
    );
    report.check(l.loss < 0.5, format!("loss {:.1}% (broken forwarding?)", l.loss * 100.0));
}
