//! `video`: rooms where the first `publishers` participants publish VP8 in three simulcast layers
//! (30 fps, 150 / 500 / 1,500 kbit/s, keyframes every 2 s and on request) and everyone receives
//! every other publisher, optionally asking for a tile size. Measures frame latency (send →
//! last packet received), frames per second and the layer each subscriber gets, frame loss on
//! pairs that stayed on one layer, bitrate per subscriber and the server's CPU per forwarded packet.

use std::collections::HashMap;

use anyhow::{Result, bail};
use serde_json::json;

use super::{server_usage, setup_rooms, window};
use crate::cli::VideoParams;
use crate::client::video::LAYERS;
use crate::client::voice::Plan;
use crate::measure::latency::Histogram;
use crate::measure::metrics_scrape::delta;
use crate::report::Report;
use crate::target::Target;

/// "640x360" → (640, 360).
pub fn parse_tile(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once(['x', 'X'])?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

pub async fn run(target: &mut Target, restart: bool, p: &VideoParams) -> Result<Report> {
    if p.rooms == 0 || p.participants < 2 || p.publishers == 0 {
        bail!("need --rooms > 0, --participants >= 2, --publishers > 0");
    }
    let tile = match &p.tile {
        Some(t) => Some(parse_tile(t).ok_or_else(|| anyhow::anyhow!("--tile wants WIDTHxHEIGHT, got {t}"))?),
        None => None,
    };
    let mut report = Report::new("video", serde_json::to_value(p)?);
    report.target = target.name().to_owned();
    let publishers = p.publishers.min(p.participants);
    let (channels, accounts) = setup_rooms(target, "video", p.rooms, p.participants, publishers, restart).await?;
    let id = |room: usize, i: usize| u32::try_from(room * p.participants + i).unwrap_or(u32::MAX);
    let mut hears: Vec<Vec<u32>> = Vec::new();
    let mut participants = Vec::new();
    for room in 0..p.rooms {
        for i in 0..p.participants {
            let me = (i < publishers).then(|| id(room, i));
            let heard: Vec<u32> = (0..publishers).map(|j| id(room, j)).filter(|t| Some(*t) != me).collect();
            let plan = Plan {
                channel: channels[room].clone(),
                hears: heard.clone(),
                talker: me,
                video: true,
                tile,
                leave_after_media: None,
                media_deadline: None,
                tcp: false,
                turn: false,
            };
            hears.push(heard);
            participants.push((accounts[room * p.participants + i].clone(), plan));
        }
    }
    let receivers = hears.iter().filter(|h| !h.is_empty()).count() as u64;
    let w = window::run(target, participants, receivers, p.duration, p.connect_timeout).await;

    // Frames each publisher sent per layer inside the window (all layers at every frame time).
    let sent: HashMap<u32, u64> = w
        .outcomes
        .iter()
        .zip(hears.iter().enumerate())
        .filter(|(o, _)| o.sent_total > 0)
        .map(|(o, (i, _))| (id(i / p.participants, i % p.participants), o.sent_in_window / LAYERS.len() as u64))
        .collect();
    let mut latency = Histogram::default();
    let mut by_layer = [0u64; 3];
    let (mut expected, mut received, mut stable, mut switched) = (0u64, 0u64, 0u64, 0u64);
    let (mut without_media, mut valid, mut invalid, mut keyframe_requests) = (0usize, 0u64, 0u64, 0u64);
    let mut fps = Vec::new();
    let mut bitrates = Vec::new();
    let mut errors = Vec::new();
    for (o, h) in w.outcomes.iter().zip(&hears) {
        latency.merge(&o.stats.latency);
        valid += o.decoded;
        invalid += o.decode_failures;
        keyframe_requests += o.keyframe_requests;
        if let Some(e) = &o.error {
            errors.push(e.clone());
        }
        if h.is_empty() {
            continue;
        }
        if o.first_media.is_none() {
            without_media += 1;
        }
        bitrates.push(o.rx_bytes_in_window as f64 * 8.0 / w.seconds / 1000.0);
        for t in h {
            let counts: Vec<u64> =
                (0..3u32).map(|l| o.stats.pairs.get(&(t * 4 + l)).map_or(0, |s| s.received)).collect();
            for (l, c) in counts.iter().enumerate() {
                by_layer[l] += c;
            }
            let total: u64 = counts.iter().sum();
            fps.push(total as f64 / w.seconds);
            if counts.iter().filter(|c| **c > 0).count() == 1 {
                stable += 1;
                let want = sent.get(t).copied().unwrap_or(0);
                expected += want;
                received += total.min(want);
            } else if total > 0 {
                switched += 1;
            }
        }
    }
    let ls = latency.summary();
    let all: u64 = by_layer.iter().sum();
    let share = |l: usize| if all == 0 { 0.0 } else { by_layer[l] as f64 / all as f64 * 100.0 };
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    let loss = if expected == 0 { 0.0 } else { 1.0 - received as f64 / expected as f64 };
    report.metric("participants", w.outcomes.len() as f64, "");
    report.metric("publishers", sent.len() as f64, "");
    report.metric("window", w.seconds, "s");
    report.metric("connect_all", w.connect_secs, "s");
    report.metric("frame_latency_p50", ls.p50_ms, "ms");
    report.metric("frame_latency_p95", ls.p95_ms, "ms");
    report.metric("frame_latency_p99", ls.p99_ms, "ms");
    report.metric("frame_latency_max", ls.max_ms, "ms");
    report.metric("fps_per_pair_mean", mean(&fps), "/s");
    report.metric("fps_per_pair_min", fps.iter().copied().fold(f64::INFINITY, f64::min).min(1e9), "/s");
    report.metric("frames_on_q", share(0), "%");
    report.metric("frames_on_h", share(1), "%");
    report.metric("frames_on_f", share(2), "%");
    report.metric("pairs_on_one_layer", stable as f64, "");
    report.metric("pairs_that_switched", switched as f64, "");
    report.metric("frame_loss_one_layer_pairs", loss * 100.0, "%");
    report.metric("subscriber_bitrate_mean", mean(&bitrates), "kbit/s");
    report.metric("keyframe_requests", keyframe_requests as f64, "");
    let cpu = server_usage(&mut report, &w.before, &w.after);
    // Counted by the subscribers, so the same for any SFU.
    let delivered_bytes: u64 = w.outcomes.iter().map(|o| o.rx_bytes_in_window).sum();
    report.metric("delivered_frames_per_s", all as f64 / w.seconds, "/s");
    if let Some(cpu) = cpu.filter(|c| *c > 0.0 && delivered_bytes > 0) {
        report.metric("cpu_per_delivered_megabyte", cpu / (delivered_bytes as f64 / 1e6) * 1e3, "ms");
    }
    let out = delta(&w.before.metrics, &w.after.metrics, "chorus_sfu_packets_out_total");
    if out > 0.0 {
        let fwd = delta(&w.before.metrics, &w.after.metrics, "chorus_sfu_forwarded_frames_total");
        report.metric("sfu_packets_out_per_s", out / w.seconds, "/s");
        report.metric("sfu_forwarded_frames_per_s", fwd / w.seconds, "/s");
        if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
            report.metric("packets_out_per_cpu_second", out / cpu, "/CPU-s");
            report.metric("cpu_per_packet_out", cpu / out * 1e6, "µs");
        }
    }
    let bwe_n = delta(&w.before.metrics, &w.after.metrics, "chorus_sfu_bandwidth_estimate_bps_count");
    if bwe_n > 0.0 {
        let bwe_sum = delta(&w.before.metrics, &w.after.metrics, "chorus_sfu_bandwidth_estimate_bps_sum");
        report.metric("sfu_bandwidth_estimate_mean", bwe_sum / bwe_n / 1000.0, "kbit/s");
    }
    report.metric("payload_key_collisions", w.collisions as f64, "");
    report.details = json!({
        "frame_latency": ls,
        "frame_latency_cdf": latency.cdf(),
        "frames_by_layer": by_layer,
        "errors": errors.iter().take(20).collect::<Vec<_>>(),
    });
    report.check(
        errors.is_empty(),
        format!("{} participants failed, first: {}", errors.len(), errors.first().map_or("", |e| e)),
    );
    report.check(without_media == 0, format!("{without_media} subscribers never received video"));
    report.check(all > 0, "no video frame forwarded in the window");
    report.check(
        invalid == 0 && valid > 0,
        format!("{invalid} received frames lacked the bench's marker ({valid} had it)"),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles() {
        assert_eq!(parse_tile("640x360"), Some((640, 360)));
        assert_eq!(parse_tile("320X180"), Some((320, 180)));
        assert_eq!(parse_tile("640"), None);
        assert_eq!(parse_tile("ax1"), None);
    }
}
