//! `chat`: gateway fan-out. N gateway connections (one account per `per_account` of them) in one
//! channel; a poster sends messages through the REST API at a steady rate; every client records
//! post → frame-read latency on the same clock. Also reports memory per idle connection (a spawned
//! server is restarted after registration so argon2's allocator high-water mark does not hide it).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use tokio::sync::watch;

use super::{ServerSnapshot, server_usage, setup_guild};
use crate::cli::ChatParams;
use crate::client::gateway::{self, FanoutShared};
use crate::measure::latency::Histogram;
use crate::measure::proc;
use crate::report::Report;
use crate::target::Target;

pub async fn run(target: &mut Target, p: &ChatParams) -> Result<Report> {
    if p.clients == 0 || p.rate == 0 || p.per_account == 0 {
        anyhow::bail!("--clients, --rate and --per-account must be positive");
    }
    let mut report = Report::new("chat", serde_json::to_value(p)?);
    let users = p.clients.div_ceil(p.per_account.max(1)).max(1);
    let (owner, guild, accounts) = setup_guild(target, "chat", 1, users, p.restart).await?;
    // Memory per connection is only meaningful against a fresh process.
    let rss_fresh =
        if p.restart && target.is_spawned() { target.pid.and_then(proc::sample).map(|s| s.rss_kib) } else { None };

    let shared = FanoutShared::new();
    let ws_url = target.chorus()?.gateway_url();
    let (stop_tx, stop_rx) = watch::channel(false);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..p.clients {
        let token = accounts[i % users].token.clone();
        tasks.push(tokio::spawn(gateway::run_client(ws_url.clone(), token, shared.clone(), stop_rx.clone())));
    }
    let pb = crate::progress::bar(p.clients as u64, "connecting");
    while (shared.ready.load(Ordering::Relaxed) as usize) < p.clients
        && shared.disconnected.load(Ordering::Relaxed) == 0
        && t0.elapsed() < Duration::from_secs(120)
    {
        pb.set_position(shared.ready.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pb.finish_and_clear();
    let connected = shared.ready.load(Ordering::Relaxed);
    let connect_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = target.pid.and_then(proc::sample);

    let before = ServerSnapshot::take(target).await;
    let total = p.rate * p.duration;
    let mut tick = tokio::time::interval(Duration::from_nanos((1_000_000_000 / p.rate).max(1)));
    let pb = crate::progress::bar(total, "posting");
    let start = Instant::now();
    let mut posts = Vec::new();
    for n in 0..total {
        tick.tick().await;
        let (api, owner, channel) = (target.chorus()?.clone(), owner.clone(), guild.text_channel.clone());
        let content = shared.stamp();
        posts.push(tokio::spawn(async move { api.post_message(&owner, &channel, &content).await }));
        if n % 16 == 0 {
            pb.set_position(n);
            pb.set_message(format!("{} deliveries", shared.received.load(Ordering::Relaxed)));
        }
    }
    let mut ok = 0u64;
    for post in posts {
        ok += u64::from(post.await.unwrap_or(false));
    }
    let expected = ok * connected;
    let wait_until = Instant::now() + Duration::from_secs(20);
    while shared.received.load(Ordering::Relaxed) < expected && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = ServerSnapshot::take(target).await;
    pb.finish_and_clear();
    let got = shared.received.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut latency = Histogram::default();
    for t in tasks {
        if let Ok(h) = t.await {
            latency.merge(&h);
        }
    }
    let ls = latency.summary();
    report.metric("clients_ready", connected as f64, "");
    report.metric("connect_all", connect_secs, "s");
    report.metric("messages_posted", ok as f64, "");
    report.metric("deliveries", got as f64, "");
    report.metric("deliveries_expected", expected as f64, "");
    report.metric("deliveries_per_s", got as f64 / elapsed, "/s");
    report.metric("delivery_latency_p50", ls.p50_ms, "ms");
    report.metric("delivery_latency_p95", ls.p95_ms, "ms");
    report.metric("delivery_latency_p99", ls.p99_ms, "ms");
    report.metric("delivery_latency_max", ls.max_ms, "ms");
    if let (Some(fresh), Some(idle)) = (rss_fresh, idle)
        && connected > 0
    {
        report.metric("rss_per_idle_connection", idle.rss_kib.saturating_sub(fresh) as f64 / connected as f64, "KiB");
    }
    server_usage(&mut report, &before, &after);
    report.details = json!({"delivery_latency": ls, "delivery_latency_cdf": latency.cdf()});
    report.check(connected as usize == p.clients, format!("{connected} of {} gateway clients got READY", p.clients));
    report.check(ok == total, format!("{ok} of {total} messages were accepted"));
    report.check(got > 0, "no message was delivered");
    report.check(got >= expected, format!("{got} of {expected} deliveries arrived"));
    Ok(report)
}
