//! `join`: a join storm. Each room has one talker; listeners join round-robin at a set rate,
//! stay `hold` seconds after their first media packet, and leave. Join latency is grant request →
//! first remote media packet.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;
use tokio::sync::watch;

use super::{ServerSnapshot, server_usage, setup_guild};
use crate::cli::JoinParams;
use crate::client::voice::{self, Outcome, Plan, VoiceShared};
use crate::measure::latency::Histogram;
use crate::measure::metrics_scrape::delta;
use crate::report::Report;
use crate::target::Target;

pub async fn run(target: &mut Target, restart: bool, p: &JoinParams) -> Result<Report> {
    if !(p.rate > 0.0 && p.rate <= 10_000.0) || p.rooms == 0 || p.accounts == 0 {
        bail!("--rate must be in (0, 10000], --rooms and --accounts positive");
    }
    if !(p.hold >= 0.0 && p.hold <= 3600.0) {
        bail!("--hold must be in [0, 3600] seconds");
    }
    let mut report = Report::new("join", serde_json::to_value(p)?);
    let (_owner, guild, accounts) = setup_guild(target, "join", p.rooms, p.rooms + p.accounts, restart).await?;
    let (talker_accounts, joiner_accounts) = accounts.split_at(p.rooms);

    // One talker per room, already talking when the storm starts.
    let talkers = VoiceShared::new();
    let (stop_talkers, stop_talkers_rx) = watch::channel(false);
    let mut talker_tasks = Vec::new();
    for (room, account) in talker_accounts.iter().enumerate() {
        let plan = Plan {
            channel: guild.voice_channels[room].clone(),
            hears: Vec::new(),
            talker: Some(room as u32),
            video: false,
            tile: None,
            leave_after_media: None,
            media_deadline: None,
            tcp: false,
            turn: false,
        };
        talker_tasks.push(tokio::spawn(voice::run(
            target.sfu(),
            account.clone(),
            plan,
            talkers.clone(),
            stop_talkers_rx.clone(),
        )));
    }
    let warm = Instant::now();
    while talkers.media_tx.load(Ordering::Relaxed) < 25 * p.rooms as u64 {
        if warm.elapsed() > Duration::from_secs(20) || talkers.failed.load(Ordering::Relaxed) > 0 {
            bail!("the talkers did not start sending within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let joiners = VoiceShared::new();
    let (_stop_joiners, stop_joiners_rx) = watch::channel(false);
    let total = (p.rate * p.duration as f64).round() as u64;
    let before = ServerSnapshot::take(target).await;
    let pb = crate::progress::bar(total, "join storm");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / p.rate);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let room = n as usize % p.rooms;
        let plan = Plan {
            channel: guild.voice_channels[room].clone(),
            hears: vec![room as u32],
            talker: None,
            video: false,
            tile: None,
            leave_after_media: Some(Duration::from_secs_f64(p.hold)),
            media_deadline: Some(Duration::from_secs(p.media_timeout)),
            tcp: false,
            turn: false,
        };
        let account = joiner_accounts[n as usize % joiner_accounts.len()].clone();
        tasks.push(tokio::spawn(voice::run(target.sfu(), account, plan, joiners.clone(), stop_joiners_rx.clone())));
        pb.set_position(n + 1);
        pb.set_message(format!(
            "{} got media, {} failed",
            joiners.first_media.load(Ordering::Relaxed),
            joiners.failed.load(Ordering::Relaxed)
        ));
    }
    let storm_secs = start.elapsed().as_secs_f64();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap_or_else(|e| Outcome { error: Some(format!("task: {e}")), ..Default::default() }));
    }
    let after = ServerSnapshot::take(target).await;
    pb.finish_and_clear();
    let _ = stop_talkers.send(true);
    for t in talker_tasks {
        let _ = t.await;
    }

    let mut join = Histogram::default();
    let mut grant = Histogram::default();
    let mut joined = Histogram::default();
    let mut subscribed = Histogram::default();
    let mut errors = Vec::new();
    for o in &outcomes {
        if let Some(d) = o.first_media {
            join.record(d);
        }
        if let Some(d) = o.grant {
            grant.record(d);
        }
        if let Some(d) = o.joined {
            joined.record(d);
        }
        if let Some(d) = o.subscribed {
            subscribed.record(d);
        }
        if let Some(e) = &o.error {
            errors.push(e.clone());
        }
    }
    let js = join.summary();
    report.metric("joins_attempted", total as f64, "");
    report.metric("joins_with_media", js.count as f64, "");
    report.metric("joins_failed", errors.len() as f64, "");
    // Joins n = 0..total start at n / rate: total - 1 intervals.
    if total > 1 {
        report.metric("achieved_rate", (total - 1) as f64 / storm_secs.max(1e-9), "/s");
    }
    report.metric("join_latency_p50", js.p50_ms, "ms");
    report.metric("join_latency_p95", js.p95_ms, "ms");
    report.metric("join_latency_p99", js.p99_ms, "ms");
    report.metric("join_latency_max", js.max_ms, "ms");
    report.metric("grant_p50", grant.summary().p50_ms, "ms");
    report.metric("grant_to_joined_p50", joined.summary().p50_ms, "ms");
    report.metric("grant_to_subscribe_connected_p50", subscribed.summary().p50_ms, "ms");
    let n = delta(&before.metrics, &after.metrics, "chorus_voice_join_latency_seconds_count");
    let sum = delta(&before.metrics, &after.metrics, "chorus_voice_join_latency_seconds_sum");
    if n > 0.0 {
        report.metric("server_join_handling_mean", sum / n * 1000.0, "ms");
    }
    server_usage(&mut report, &before, &after);
    report.details = json!({
        "join_latency": js,
        "grant": grant.summary(),
        "grant_to_joined": joined.summary(),
        "grant_to_subscribe_connected": subscribed.summary(),
        "join_latency_cdf": join.cdf(),
        "errors": errors.iter().take(20).collect::<Vec<_>>(),
    });
    report.check(js.count > 0, "no joiner received media");
    report.check(
        errors.is_empty(),
        format!("{} of {total} joins failed, first: {}", errors.len(), errors.first().map_or("", |e| e)),
    );
    Ok(report)
}
