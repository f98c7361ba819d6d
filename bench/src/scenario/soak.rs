//! `soak`: chat and voice load held for a long time with joins and leaves, while the server's
//! resources are sampled; fails when memory or descriptors keep growing after the warm-up.
//!
//! The load: voice rooms whose talkers and some listeners stay for the whole run while other
//! listeners leave `voice_hold` s after their first media packet and rejoin (a fresh grant,
//! `/voice` socket and pair of peer connections each time); gateway clients that stay (they
//! count every message's delivery) and gateway clients that disconnect after `gateway_hold` s and
//! reconnect with a fresh IDENTIFY; messages posted through REST at a steady rate. Every
//! `interval` s the bench reads the server's RSS, CPU and threads (`/proc/PID/stat`, `status`),
//! its open descriptors (`/proc/PID/fd`) — for a `--target` without `--pid` the same figures from
//! `process_*` in `/metrics` — and the gateway and voice gauges of `/metrics`. The server exposes
//! no tokio task count, so OS threads are the only task figure. [`trend::judge`] decides whether
//! RSS and descriptors kept growing; threads and CPU are reported the same way but not judged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use super::setup_guild;
use crate::cli::SoakParams;
use crate::client::api::{Account, Api};
use crate::client::gateway::{self, FanoutShared};
use crate::client::voice::{self, Outcome, Plan, SfuClient, VoiceShared};
use crate::measure::latency::Histogram;
use crate::measure::media::loss;
use crate::measure::trend::{self, Tolerance, Trend};
use crate::measure::{metrics_scrape, proc};
use crate::report::Report;
use crate::target::Target;

/// A churning listener that got no media this long after its grant request failed its cycle.
const MEDIA_DEADLINE: Duration = Duration::from_secs(15);
/// Pause between a churning client's leave and its next join.
const REJOIN_GAP: Duration = Duration::from_secs(1);
/// Open-descriptor growth that is noise, relative to the first third's median.
const FD_TOLERANCE_RELATIVE: f64 = 0.05;

/// One sample of the server, with the load's counters to read the curves against.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Point {
    /// Seconds since the load started.
    pub t: f64,
    pub rss_mib: Option<f64>,
    pub fds: Option<f64>,
    pub threads: Option<f64>,
    /// Server CPU since the previous sample, % of one core.
    pub cpu_percent: Option<f64>,
    /// Gauges from /metrics.
    pub gateway_connections: Option<f64>,
    pub voice_sessions: Option<f64>,
    pub sfu_participants: Option<f64>,
    /// Totals so far.
    pub messages_posted: u64,
    pub voice_rejoins: u64,
    pub gateway_reconnects: u64,
    pub bench_rss_mib: Option<f64>,
}

/// Completed and failed cycles of the churning clients of one kind.
#[derive(Default)]
struct Churn {
    cycles: AtomicU64,
    failed: AtomicU64,
}

/// The poster's counters.
#[derive(Default)]
struct Posts {
    ok: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
}

/// Sleeps `d`; true when `stop` turned (or was) true.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// A listener that joins, stays `hold` after its first media packet, leaves, and again.
/// Returns its join latencies and first errors.
#[allow(clippy::too_many_arguments)]
async fn voice_churner(
    sfu: SfuClient,
    account: Account,
    channel: String,
    hears: Vec<u32>,
    hold: Duration,
    start_after: Duration,
    shared: Arc<VoiceShared>,
    churn: Arc<Churn>,
    mut stop: watch::Receiver<bool>,
) -> (Histogram, Vec<String>) {
    let mut joins = Histogram::default();
    let mut errors = Vec::new();
    if wait_or_stop(&mut stop, start_after).await {
        return (joins, errors);
    }
    loop {
        let plan = Plan {
            channel: channel.clone(),
            hears: hears.clone(),
            talker: None,
            video: false,
            tile: None,
            leave_after_media: Some(hold),
            media_deadline: Some(MEDIA_DEADLINE),
            tcp: false,
            turn: false,
        };
        let o = voice::run(sfu.clone(), account.clone(), plan, shared.clone(), stop.clone()).await;
        if let Some(e) = o.error {
            churn.cycles.fetch_add(1, Ordering::Relaxed);
            churn.failed.fetch_add(1, Ordering::Relaxed);
            if errors.len() < 5 {
                errors.push(e);
            }
        } else if let Some(d) = o.first_media {
            churn.cycles.fetch_add(1, Ordering::Relaxed);
            joins.record(d);
        }
        // (Neither: stopped before media arrived — the end of the run, not a failure.)
        if wait_or_stop(&mut stop, REJOIN_GAP).await {
            return (joins, errors);
        }
    }
}

/// A gateway client that connects, stays `hold`, drops its socket, and again. A cycle fails
/// when READY never came or the server closed the socket first.
async fn gateway_churner(
    url: String,
    token: String,
    hold: Duration,
    start_after: Duration,
    churn: Arc<Churn>,
    mut stop: watch::Receiver<bool>,
) {
    if wait_or_stop(&mut stop, start_after).await {
        return;
    }
    let mine = FanoutShared::new();
    loop {
        let (ready, dropped) = (mine.ready.load(Ordering::Relaxed), mine.disconnected.load(Ordering::Relaxed));
        let (cycle_tx, cycle_rx) = watch::channel(false);
        let client = tokio::spawn(gateway::run_client(url.clone(), token.clone(), mine.clone(), cycle_rx));
        let stopped = wait_or_stop(&mut stop, hold).await;
        let _ = cycle_tx.send(true);
        let _ = client.await;
        let got_ready = mine.ready.load(Ordering::Relaxed) > ready;
        let closed_early = mine.disconnected.load(Ordering::Relaxed) > dropped;
        if !stopped || got_ready || closed_early {
            churn.cycles.fetch_add(1, Ordering::Relaxed);
            if !got_ready || closed_early {
                churn.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if stopped || wait_or_stop(&mut stop, REJOIN_GAP).await {
            return;
        }
    }
}

/// Posts `rate` messages per second until `stop`; each carries the post time on `clock`'s epoch.
async fn poster(
    api: Api,
    owner: Account,
    channel: String,
    rate: f64,
    clock: Arc<FanoutShared>,
    posts: Arc<Posts>,
    mut stop: watch::Receiver<bool>,
) {
    if rate <= 0.0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (api, owner, channel, posts) = (api.clone(), owner.clone(), channel.clone(), posts.clone());
        let content = clock.stamp();
        posts.in_flight.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let counter = if api.post_message(&owner, &channel, &content).await { &posts.ok } else { &posts.failed };
            counter.fetch_add(1, Ordering::Relaxed);
            posts.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The server's figures now: from /proc when the PID is known, else from `process_*` in
/// /metrics. `prev` carries the last CPU reading, for the CPU share since then.
async fn sample(api: &Api, pid: Option<u32>, prev: &mut Option<(f64, Instant)>) -> Point {
    let m = metrics_scrape::scrape(api.http(), api.base()).await.unwrap_or_default();
    let now = Instant::now();
    let from_proc = pid.and_then(proc::sample);
    let (rss_mib, fds, threads, cpu) = match from_proc {
        Some(s) => (
            Some(s.rss_kib as f64 / 1024.0),
            pid.and_then(proc::open_fds).map(|n| n as f64),
            Some(s.threads as f64),
            Some(s.cpu_seconds),
        ),
        None => (
            m.get("process_resident_memory_bytes").map(|b| b / 1_048_576.0),
            m.get("process_open_fds").copied(),
            m.get("process_threads").copied(),
            m.get("process_cpu_seconds_total").copied(),
        ),
    };
    let cpu_percent = match (cpu, *prev) {
        (Some(c), Some((pc, at))) if now > at => Some((c - pc).max(0.0) / (now - at).as_secs_f64() * 100.0),
        _ => None,
    };
    if let Some(c) = cpu {
        *prev = Some((c, now));
    }
    Point {
        rss_mib,
        fds,
        threads,
        cpu_percent,
        gateway_connections: m.get("chorus_gateway_connections").copied(),
        voice_sessions: m.get("chorus_voice_sessions").copied(),
        sfu_participants: m.get("chorus_sfu_participants").copied(),
        bench_rss_mib: proc::sample(std::process::id()).map(|s| s.rss_kib as f64 / 1024.0),
        ..Point::default()
    }
}

/// Samples at or after the warm-up that a run of `p` takes (one every `interval` from 0).
fn samples_after_warmup(p: &SoakParams, warmup: u64) -> u64 {
    let n = p.duration / p.interval.max(1);
    (0..=n).filter(|k| k * p.interval >= warmup).count() as u64
}

fn validate(p: &SoakParams, warmup: u64) -> Result<()> {
    if p.interval == 0 || p.duration < p.interval {
        bail!("--interval must be positive and at most --duration");
    }
    let after = samples_after_warmup(p, warmup);
    if after < trend::MIN_SAMPLES as u64 {
        bail!(
            "--duration {} s with --interval {} s and --warmup {warmup} s leaves {after} samples after the warm-up; \
             the growth check needs at least {} (lengthen --duration or shorten --interval or --warmup)",
            p.duration,
            p.interval,
            trend::MIN_SAMPLES
        );
    }
    if p.rooms == 0 || p.participants == 0 || p.talkers == 0 || p.talkers + p.voice_churn > p.participants {
        bail!("need --rooms, --participants and --talkers ≥ 1, and --talkers + --voice-churn ≤ --participants");
    }
    if p.clients == 0 {
        bail!("--clients must be positive (they count the messages' deliveries)");
    }
    let secs = |v: f64| v.is_finite() && (0.0..=3600.0).contains(&v);
    if !secs(p.voice_hold) || !secs(p.gateway_hold) {
        bail!("--voice-hold and --gateway-hold must be in [0, 3600] seconds");
    }
    if !(p.rate.is_finite() && (0.0..=1000.0).contains(&p.rate)) {
        bail!("--rate must be in [0, 1000] messages per second");
    }
    Ok(())
}

pub async fn run(target: &mut Target, p: &SoakParams) -> Result<Report> {
    let warmup = p.warmup_secs();
    validate(p, warmup)?;
    target.chorus()?;
    let mut params = serde_json::to_value(p)?;
    params["warmup"] = json!(warmup);
    let mut report = Report::new("soak", params);
    report.target = target.name().to_owned();

    let per_room = p.participants;
    let members = (p.rooms * per_room).max((p.clients + p.churn_clients).div_ceil(10)).max(1);
    let (owner, guild, accounts) = setup_guild(target, "soak", p.rooms, members, p.restart).await?;
    let api = target.chorus()?.clone();
    let ws_url = api.gateway_url();
    let (stop_tx, stop_rx) = watch::channel(false);

    // Gateway clients that stay, all READY before the load starts.
    let steady = FanoutShared::new();
    let mut steady_gateway = Vec::new();
    for i in 0..p.clients {
        let token = accounts[i % members].token.clone();
        steady_gateway.push(tokio::spawn(gateway::run_client(ws_url.clone(), token, steady.clone(), stop_rx.clone())));
    }
    let t = Instant::now();
    while (steady.ready.load(Ordering::Relaxed) as usize) < p.clients {
        if steady.disconnected.load(Ordering::Relaxed) > 0 || t.elapsed() > Duration::from_secs(60) {
            bail!("only {} of {} gateway clients got READY", steady.ready.load(Ordering::Relaxed), p.clients);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Voice participants that stay; the last `voice_churn` of each room churn later.
    let voice = VoiceShared::new();
    let mut steady_voice = Vec::new();
    let mut churners = Vec::new();
    for room in 0..p.rooms {
        let channel = guild.voice_channels[room].clone();
        let id = |i: usize| u32::try_from(room * per_room + i).unwrap_or(u32::MAX);
        let talkers: Vec<u32> = (0..p.talkers).map(id).collect();
        for i in 0..per_room {
            let account = accounts[room * per_room + i].clone();
            let me = (i < p.talkers).then(|| id(i));
            let hears: Vec<u32> = talkers.iter().copied().filter(|t| Some(*t) != me).collect();
            if i >= per_room - p.voice_churn {
                churners.push((account, channel.clone(), hears));
                continue;
            }
            let plan = Plan {
                channel: channel.clone(),
                hears: hears.clone(),
                talker: me,
                video: false,
                tile: None,
                leave_after_media: None,
                media_deadline: None,
                tcp: false,
                turn: false,
            };
            let task = tokio::spawn(voice::run(target.sfu(), account, plan, voice.clone(), stop_rx.clone()));
            steady_voice.push((me, hears, task));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let receivers = steady_voice.iter().filter(|(_, h, _)| !h.is_empty()).count() as u64;
    let t = Instant::now();
    while voice.first_media.load(Ordering::Relaxed) < receivers || voice.media_tx.load(Ordering::Relaxed) == 0 {
        if voice.failed.load(Ordering::Relaxed) > 0 || t.elapsed() > Duration::from_secs(30) {
            bail!(
                "{} of {receivers} voice listeners received media within 30 s ({} failed)",
                voice.first_media.load(Ordering::Relaxed),
                voice.failed.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The load starts: churn, posting, sampling.
    let t0 = Instant::now();
    voice.ledger.set_measuring(true);
    let voice_churn = Arc::new(Churn::default());
    let gateway_churn = Arc::new(Churn::default());
    let posts = Arc::new(Posts::default());
    let hold = Duration::from_secs_f64(p.voice_hold);
    let n = churners.len().max(1) as u32;
    let mut voice_churners = Vec::new();
    for (j, (account, channel, hears)) in churners.into_iter().enumerate() {
        let start_after = hold * j as u32 / n;
        voice_churners.push(tokio::spawn(voice_churner(
            target.sfu(),
            account,
            channel,
            hears,
            hold,
            start_after,
            voice.clone(),
            voice_churn.clone(),
            stop_rx.clone(),
        )));
    }
    let ghold = Duration::from_secs_f64(p.gateway_hold);
    let mut gateway_churners = Vec::new();
    for j in 0..p.churn_clients {
        let token = accounts[(p.clients + j) % members].token.clone();
        let start_after = ghold * j as u32 / p.churn_clients.max(1) as u32;
        let task = gateway_churner(ws_url.clone(), token, ghold, start_after, gateway_churn.clone(), stop_rx.clone());
        gateway_churners.push(tokio::spawn(task));
    }
    let (stop_posting, stop_posting_rx) = watch::channel(false);
    // Its own client with a small idle pool: the server's descriptors should show the server,
    // not how many keep-alive connections a burst of slow posts left in the bench's pool.
    let poster = tokio::spawn(poster(
        Api::with_idle_pool(api.base(), 4)?,
        owner.clone(),
        guild.text_channel.clone(),
        p.rate,
        steady.clone(),
        posts.clone(),
        stop_posting_rx,
    ));

    let mut series: Vec<Point> = Vec::new();
    let mut prev_cpu = None;
    let bench_start = proc::sample(std::process::id());
    let pb = crate::progress::timed(p.duration, "soak");
    for k in 0..=p.duration / p.interval {
        let due = t0 + Duration::from_secs(k * p.interval);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let mut pt = sample(&api, target.pid, &mut prev_cpu).await;
        pt.t = t0.elapsed().as_secs_f64();
        pt.messages_posted = posts.ok.load(Ordering::Relaxed);
        pt.voice_rejoins = voice_churn.cycles.load(Ordering::Relaxed);
        pt.gateway_reconnects = gateway_churn.cycles.load(Ordering::Relaxed);
        if target.pid.is_some() && pt.rss_mib.is_none() {
            bail!("the server (PID {}) is gone after {:.0} s of soak", target.pid.unwrap_or(0), pt.t);
        }
        let show = |v: Option<f64>, d: usize| v.map_or("?".to_owned(), |v| format!("{v:.d$}"));
        pb.set_position(pt.t as u64);
        pb.set_message(format!(
            "RSS {} MiB, {} fds, {} threads, CPU {} %; {} posted, {} rejoins, {} reconnects",
            show(pt.rss_mib, 1),
            show(pt.fds, 0),
            show(pt.threads, 0),
            show(pt.cpu_percent, 0),
            pt.messages_posted,
            pt.voice_rejoins,
            pt.gateway_reconnects
        ));
        series.push(pt);
    }
    pb.finish_and_clear();
    let measured = t0.elapsed().as_secs_f64();
    let bench_end = proc::sample(std::process::id());
    voice.ledger.set_measuring(false);
    let end = Instant::now();

    // Posting stops; every accepted message must reach every steady client.
    let _ = stop_posting.send(true);
    let _ = poster.await;
    let until = Instant::now() + Duration::from_secs(35);
    while posts.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let posted = posts.ok.load(Ordering::Relaxed);
    let expected = posted * p.clients as u64;
    let until = Instant::now() + Duration::from_secs(15);
    while steady.received.load(Ordering::Relaxed) < expected && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = steady.received.load(Ordering::Relaxed);
    let steady_dropped = steady.disconnected.load(Ordering::Relaxed);
    // Media sent at the end of the window is still in flight.
    tokio::time::sleep_until(tokio::time::Instant::from_std(end + Duration::from_secs(1))).await;
    let _ = stop_tx.send(true);

    let mut rejoin = Histogram::default();
    let mut churn_errors = Vec::new();
    for t in voice_churners {
        if let Ok((h, e)) = t.await {
            rejoin.merge(&h);
            churn_errors.extend(e);
        }
    }
    for t in gateway_churners {
        let _ = t.await;
    }
    let mut delivery = Histogram::default();
    for t in steady_gateway {
        if let Ok(h) = t.await {
            delivery.merge(&h);
        }
    }
    let mut outcomes: Vec<(Option<u32>, Vec<u32>, Outcome)> = Vec::new();
    for (me, hears, t) in steady_voice {
        let o = t.await.unwrap_or_else(|e| Outcome { error: Some(format!("task: {e}")), ..Default::default() });
        outcomes.push((me, hears, o));
    }

    // Judging.
    let warm = warmup as f64;
    let points = |f: fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        series.iter().filter_map(|pt| Some((pt.t, f(pt)?))).collect()
    };
    let rss_tol = Tolerance { absolute: p.rss_tolerance_mib, relative: p.rss_tolerance_percent / 100.0 };
    let fd_tol = Tolerance { absolute: p.fd_tolerance as f64, relative: FD_TOLERANCE_RELATIVE };
    let rss = trend::judge(&points(|pt| pt.rss_mib), warm, rss_tol);
    let fds = trend::judge(&points(|pt| pt.fds), warm, fd_tol);
    let threads = trend::judge(&points(|pt| pt.threads), warm, Tolerance { absolute: 4.0, relative: 0.1 });
    let cpu = trend::judge(&points(|pt| pt.cpu_percent), warm, Tolerance { absolute: 5.0, relative: 0.25 });

    report.metric("duration", measured, "s");
    report.metric("warmup", warm, "s");
    report.metric("samples", series.len() as f64, "");
    report.metric("samples_judged", rss.map_or(0.0, |t| t.samples as f64), "");
    resource_metrics(&mut report, "server_rss", "MiB", &points(|pt| pt.rss_mib), rss.as_ref());
    resource_metrics(&mut report, "server_fds", "", &points(|pt| pt.fds), fds.as_ref());
    resource_metrics(&mut report, "server_threads", "", &points(|pt| pt.threads), threads.as_ref());
    let cpu_after: Vec<f64> =
        points(|pt| pt.cpu_percent).into_iter().filter(|(t, _)| *t >= warm).map(|p| p.1).collect();
    if !cpu_after.is_empty() {
        report.metric("server_cpu_mean", cpu_after.iter().sum::<f64>() / cpu_after.len() as f64, "% of one core");
        report.metric("server_cpu_max", cpu_after.iter().copied().fold(0.0, f64::max), "% of one core");
    }
    if let (Some(a), Some(b)) = (&bench_start, &bench_end) {
        report.metric("bench_cpu", proc::cores_busy(a, b) * 100.0, "% of one core");
        report.metric("bench_rss_end", b.rss_kib as f64 / 1024.0, "MiB");
    }
    let ds = delivery.summary();
    report.metric("messages_posted", posted as f64, "");
    report.metric("messages_failed", posts.failed.load(Ordering::Relaxed) as f64, "");
    report.metric("deliveries", delivered as f64, "");
    report.metric("deliveries_expected", expected as f64, "");
    report.metric("delivery_latency_p50", ds.p50_ms, "ms");
    report.metric("delivery_latency_p99", ds.p99_ms, "ms");
    report.metric("delivery_latency_max", ds.max_ms, "ms");
    let (g_cycles, g_failed) =
        (gateway_churn.cycles.load(Ordering::Relaxed), gateway_churn.failed.load(Ordering::Relaxed));
    let (v_cycles, v_failed) = (voice_churn.cycles.load(Ordering::Relaxed), voice_churn.failed.load(Ordering::Relaxed));
    report.metric("gateway_reconnects", g_cycles as f64, "");
    report.metric("gateway_reconnects_failed", g_failed as f64, "");
    report.metric("voice_rejoins", v_cycles as f64, "");
    report.metric("voice_rejoins_failed", v_failed as f64, "");
    let rs = rejoin.summary();
    report.metric("rejoin_latency_p50", rs.p50_ms, "ms");
    report.metric("rejoin_latency_p99", rs.p99_ms, "ms");
    report.metric("rejoin_latency_max", rs.max_ms, "ms");

    // Steady voice: forwarding latency and loss over the whole run.
    let mut forward = Histogram::default();
    let mut sent = std::collections::HashMap::new();
    let mut pairs = Vec::new();
    let (mut decoded, mut decode_failures) = (0, 0);
    let mut voice_errors = Vec::new();
    for (me, hears, o) in &outcomes {
        forward.merge(&o.stats.latency);
        if let Some(id) = me {
            sent.insert(*id, o.sent_in_window);
        }
        if !hears.is_empty() {
            pairs.push((hears.clone(), &o.stats));
        }
        decoded += o.decoded;
        decode_failures += o.decode_failures;
        if let Some(e) = &o.error {
            voice_errors.push(e.clone());
        }
    }
    let l = loss(&sent, &pairs);
    let fs = forward.summary();
    report.metric("forward_latency_p50", fs.p50_ms, "ms");
    report.metric("forward_latency_p99", fs.p99_ms, "ms");
    report.metric("steady_listener_loss", l.loss * 100.0, "%");

    let source = if target.pid.is_some() { "/proc" } else { "/metrics process_*" };
    report.details = json!({
        "warmup_s": warm,
        "interval_s": p.interval,
        "source": source,
        "task_count": "threads only (the server exposes no tokio task count)",
        "rule": "after the warm-up: median of the last third − median of the first third > tolerance, \
                 and each half (first→middle, middle→last third) > tolerance / 3",
        "trends": {"rss_mib": rss, "fds": fds, "threads": threads, "cpu_percent": cpu},
        "series": series,
        "delivery_latency": ds,
        "rejoin_latency": rs,
        "forward_latency": fs,
        "steady_loss": l,
        "errors": voice_errors.iter().chain(&churn_errors).take(20).collect::<Vec<_>>(),
    });

    judge_check(&mut report, "server RSS", "MiB", rss.as_ref());
    judge_check(&mut report, "server open descriptors", "", fds.as_ref());
    report.check(
        steady_dropped == 0,
        format!("{steady_dropped} of {} steady gateway clients lost their connection", p.clients),
    );
    let failed_posts = posts.failed.load(Ordering::Relaxed);
    report.check(failed_posts == 0, format!("{failed_posts} of {} messages were refused", posted + failed_posts));
    report.check(p.rate == 0.0 || posted > 0, "no message was posted");
    report.check(delivered >= expected, format!("{delivered} of {expected} deliveries to steady clients arrived"));
    report.check(
        voice_errors.is_empty(),
        format!(
            "{} steady voice participants failed, first: {}",
            voice_errors.len(),
            voice_errors.first().map_or("", |e| e)
        ),
    );
    report.check(l.received > 0, "steady listeners received no media");
    report.check(l.loss < 0.5, format!("steady listeners lost {:.1}% (broken forwarding?)", l.loss * 100.0));
    report.check(
        decode_failures == 0 && decoded > 0,
        format!("{decode_failures} received frames did not decode as Opus ({decoded} did)"),
    );
    // Churn: it must have happened, and (almost) every cycle must work.
    if p.voice_churn > 0 {
        report.check(v_cycles > 0, "no churning listener completed a rejoin");
        report.check(
            v_failed <= v_cycles / 50,
            format!(
                "{v_failed} of {v_cycles} voice rejoins failed (more than 2 %), first: {}",
                churn_errors.first().map_or("", |e| e)
            ),
        );
    }
    if p.churn_clients > 0 {
        report.check(g_cycles > 0, "no churning gateway client completed a reconnect");
        report.check(
            g_failed <= g_cycles / 50,
            format!("{g_failed} of {g_cycles} gateway reconnects got no READY or were closed early (more than 2 %)"),
        );
    }
    Ok(report)
}

/// start / end / max of a resource and its trend's medians, growth, tolerance and slope.
fn resource_metrics(report: &mut Report, name: &str, unit: &str, points: &[(f64, f64)], trend: Option<&Trend>) {
    let (Some(first), Some(last)) = (points.first(), points.last()) else { return };
    report.metric(&format!("{name}_start"), first.1, unit);
    report.metric(&format!("{name}_end"), last.1, unit);
    report.metric(&format!("{name}_max"), points.iter().map(|p| p.1).fold(f64::MIN, f64::max), unit);
    if let Some(t) = trend {
        report.metric(&format!("{name}_first_third"), t.first, unit);
        report.metric(&format!("{name}_last_third"), t.last, unit);
        report.metric(&format!("{name}_growth"), t.growth, unit);
        report.metric(&format!("{name}_tolerance"), t.tolerance, unit);
        let per_h = if unit.is_empty() { "/h".to_owned() } else { format!("{unit}/h") };
        report.metric(&format!("{name}_slope"), t.slope_per_hour, &per_h);
    }
}

/// Fails the report when `trend` says the series kept growing (or could not be judged).
fn judge_check(report: &mut Report, what: &str, unit: &str, trend: Option<&Trend>) {
    let u = if unit.is_empty() { String::new() } else { format!(" {unit}") };
    match trend {
        None => report.check(false, format!("{what}: too few samples after the warm-up to judge")),
        Some(t) => report.check(
            !t.growing,
            format!(
                "{what} kept growing after the warm-up: median {:.1}{u} in the first third → {:.1}{u} in the middle → \
                 {:.1}{u} in the last (+{:.1}{u}, tolerance {:.1}{u}; trend {:+.1}{u} per hour)",
                t.first, t.middle, t.last, t.growth, t.tolerance, t.slope_per_hour
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn params(args: &[&str]) -> SoakParams {
        let mut argv = vec!["chorus-bench", "soak", "--spawn", "chorus"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Soak(a) => a.soak,
            _ => panic!("not soak"),
        }
    }

    #[test]
    fn the_ci_run_has_enough_samples_and_short_runs_are_refused() {
        let ci = params(&["--duration", "60", "--interval", "5", "--warmup", "20"]);
        assert_eq!(samples_after_warmup(&ci, 20), 9);
        assert!(validate(&ci, 20).is_ok());
        let short = params(&["--duration", "30", "--interval", "10", "--warmup", "10"]);
        let err = validate(&short, 10).unwrap_err().to_string();
        assert!(err.contains("leaves 3 samples"), "{err}");
        let default = params(&[]);
        assert_eq!(samples_after_warmup(&default, default.warmup_secs()), 145);
        assert!(validate(&params(&["--talkers", "3", "--voice-churn", "3"]), 360).is_err());
    }

    #[test]
    fn a_growing_trend_fails_the_report_with_its_numbers() {
        let pts: Vec<(f64, f64)> = (0..=30).map(|i| (i as f64 * 10.0, 50.0 + i as f64)).collect();
        let t = trend::judge(&pts, 60.0, Tolerance { absolute: 8.0, relative: 0.1 });
        let mut r = Report::new("soak", json!({}));
        judge_check(&mut r, "server RSS", "MiB", t.as_ref());
        assert_eq!(r.failures.len(), 1);
        assert!(r.failures[0].starts_with("server RSS kept growing after the warm-up: median 59.0 MiB"), "{r:?}");
        let mut ok = Report::new("soak", json!({}));
        let flat: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, 50.0)).collect();
        judge_check(
            &mut ok,
            "server RSS",
            "MiB",
            trend::judge(&flat, 60.0, Tolerance { absolute: 8.0, relative: 0.1 }).as_ref(),
        );
        assert!(ok.failures.is_empty());
    }
}
