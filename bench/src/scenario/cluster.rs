//! `cluster`: gateway fan-out over several Chorus nodes. The bench starts a redis-server of its own
//! and N nodes over it and one MongoDB (`--store`); gateway clients are spread round-robin over the
//! nodes and one poster sends through node 0's REST API. Latency is split into clients on node 0
//! (same node as the write) and on the others (the event crossed Redis), and Redis's own counters
//! give commands and CPU per message — which must not grow with the number of recipients.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::sync::watch;

use super::setup_guild;
use crate::cli::ClusterParams;
use crate::client::gateway::{self, FanoutShared};
use crate::measure::latency::Histogram;
use crate::report::Report;
use crate::target::{Spec, Target};

/// A redis-server of the run's own on a free port (killed when dropped).
struct Redis {
    _child: tokio::process::Child,
    port: u16,
}

impl Redis {
    async fn start() -> Result<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (apt install redis-server)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Redis { _child: child, port })
    }

    /// Total commands served and CPU seconds used so far (INFO commandstats, INFO cpu).
    async fn counters(&self) -> Result<(u64, f64)> {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "INFO", "all"])
            .output()
            .await
            .context("redis-cli")?;
        Ok(parse_counters(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// (commands, CPU seconds) from INFO's text: the `calls=` of every command, and user + system CPU.
fn parse_counters(info: &str) -> (u64, f64) {
    let mut calls = 0;
    let mut cpu = 0.0;
    for line in info.lines() {
        if line.starts_with("cmdstat_") {
            if let Some(n) =
                line.split("calls=").nth(1).and_then(|r| r.split(',').next()).and_then(|n| n.parse::<u64>().ok())
            {
                calls += n;
            }
        } else if let Some(v) = line.strip_prefix("used_cpu_sys:").or_else(|| line.strip_prefix("used_cpu_user:")) {
            cpu += v.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    (calls, cpu)
}

/// The MongoDB URI with a database of the run's own.
fn with_database(uri: &str, database: &str) -> String {
    let (base, query) = match uri.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (uri, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("mongodb", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{authority}/{database}?{q}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

pub async fn run(bin: &Path, p: &ClusterParams) -> Result<Report> {
    if p.nodes == 0 || p.clients == 0 || p.rate == 0 || p.per_account == 0 {
        bail!("--nodes, --clients, --rate and --per-account must be positive");
    }
    if p.failover && p.nodes < 2 {
        bail!("--failover needs at least two nodes: the clients of the killed one resume on the others");
    }
    let mut report = Report::new("cluster", serde_json::to_value(p)?);
    let redis = Redis::start().await?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let store = with_database(&p.store, &format!("chorus_bench_{stamp:x}"));
    let extra = vec![
        "--store".to_string(),
        store,
        "--cluster".to_string(),
        format!("redis://127.0.0.1:{}", redis.port),
        "--voice-secret".to_string(),
        "chorus-bench-cluster-voice-secret-0123456789".to_string(),
        "--sfu-workers".to_string(),
        "1".to_string(),
    ];
    let mut nodes = Vec::new();
    for _ in 0..p.nodes {
        nodes.push(Target::open(&Spec::Spawn { bin: bin.to_path_buf(), extra: extra.clone() }).await?);
    }
    let users = p.clients.div_ceil(p.per_account).max(1);
    let (owner, guild, accounts) = setup_guild(&mut nodes[0], "cluster", 1, users, false).await?;

    let shared = FanoutShared::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let urls: Vec<String> = nodes.iter().map(|n| n.chorus().map(|a| a.gateway_url())).collect::<Result<_>>()?;
    let mut tasks = Vec::new();
    for i in 0..p.clients {
        let node = i % p.nodes;
        // Its own node first, then the others in turn: where the web client would go next.
        let order: Vec<String> = (0..p.nodes).map(|k| urls[(node + k) % p.nodes].clone()).collect();
        let order = if p.failover { order } else { order[..1].to_vec() };
        let token = accounts[i % users].token.clone();
        let client = gateway::follow(order, token, shared.clone(), p.failover, stop_rx.clone());
        tasks.push((node, tokio::spawn(client)));
    }
    let t0 = Instant::now();
    while (shared.ready.load(Ordering::Relaxed) as usize) < p.clients && t0.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = shared.ready.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (calls_before, cpu_before) = redis.counters().await?;
    let total = p.rate * p.duration;
    let victim = p.nodes - 1;
    let mut killed_at = None;
    let mut tick = tokio::time::interval(Duration::from_nanos((1_000_000_000 / p.rate).max(1)));
    let start = Instant::now();
    let mut posts = Vec::new();
    for i in 0..total {
        tick.tick().await;
        if p.failover && i == total / 2 {
            nodes[victim].kill9().await;
            killed_at = Some(shared.epoch.elapsed().as_micros() as u64);
        }
        let (api, owner, channel) = (nodes[0].chorus()?.clone(), owner.clone(), guild.text_channel.clone());
        let content = gateway::numbered(&shared, i);
        posts.push(tokio::spawn(async move { api.post_message(&owner, &channel, &content).await.then_some(i) }));
    }
    let mut acknowledged = Vec::new();
    for post in posts {
        if let Ok(Some(n)) = post.await {
            acknowledged.push(n);
        }
    }
    let ok = acknowledged.len() as u64;
    let expected = ok * connected;
    let wait_until = Instant::now() + Duration::from_secs(20);
    while shared.received.load(Ordering::Relaxed) < expected && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (calls_after, cpu_after) = redis.counters().await?;
    let got = shared.received.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let (mut same, mut cross) = (Histogram::default(), Histogram::default());
    let mut failover = Failover::default();
    acknowledged.sort_unstable();
    for (node, t) in tasks {
        let Ok(log) = t.await else { continue };
        if node == 0 {
            same.merge(&log.latency)
        } else {
            cross.merge(&log.latency)
        }
        if let Some(killed_at) = killed_at {
            failover.add(node == victim, killed_at, log, &acknowledged);
        }
    }
    // The poster's own REST calls and the nodes' heartbeats are in Redis's counts too: per message
    // this is an upper bound of the event path's cost.
    let per_message = |v: f64| if ok > 0 { v / ok as f64 } else { 0.0 };
    let (ss, cs) = (same.summary(), cross.summary());
    report.metric("nodes", p.nodes as f64, "");
    report.metric("clients_ready", connected as f64, "");
    report.metric("messages_posted", ok as f64, "");
    report.metric("deliveries_per_s", got as f64 / elapsed, "/s");
    report.metric("same_node_latency_p50", ss.p50_ms, "ms");
    report.metric("same_node_latency_p99", ss.p99_ms, "ms");
    if p.nodes > 1 {
        report.metric("cross_node_latency_p50", cs.p50_ms, "ms");
        report.metric("cross_node_latency_p99", cs.p99_ms, "ms");
    }
    report.metric("redis_commands_per_message", per_message(calls_after.saturating_sub(calls_before) as f64), "");
    report.metric("redis_cpu_per_message", per_message((cpu_after - cpu_before) * 1e6), "µs");
    report.details = json!({"same_node_latency": ss, "cross_node_latency": cs, "same_node_latency_cdf": same.cdf(), "cross_node_latency_cdf": cross.cdf()});
    report.check(connected as usize == p.clients, format!("{connected} of {} gateway clients got READY", p.clients));
    report.check(ok == total, format!("{ok} of {total} messages were accepted"));
    if p.failover {
        failover.report(&mut report);
    } else {
        report.check(got >= expected, format!("{got} of {expected} deliveries arrived"));
    }
    for n in nodes {
        n.shutdown().await;
    }
    drop(redis);
    Ok(report)
}

/// What the clients saw around the kill: how long the victim's clients took to be RESUMED elsewhere,
/// and whether any client lost or doubled an acknowledged message.
#[derive(Default)]
struct Failover {
    /// Kill → RESUMED, one sample per client of the killed node.
    resume: Histogram,
    victims: usize,
    victims_resumed: usize,
    invalid_sessions: u32,
    clients_with_loss: usize,
    lost: usize,
    duplicates: usize,
}

impl Failover {
    fn add(&mut self, on_victim: bool, killed_at: u64, log: gateway::ClientLog, acknowledged: &[u64]) {
        self.victims += usize::from(on_victim);
        if on_victim && let Some(at) = log.resumed_at {
            self.victims_resumed += 1;
            self.resume.record_us(at.saturating_sub(killed_at));
        }
        self.invalid_sessions += log.invalid_sessions;
        let mut got = log.posts;
        got.sort_unstable();
        let before = got.len();
        got.dedup();
        self.duplicates += before - got.len();
        let lost = acknowledged.iter().filter(|s| got.binary_search(s).is_err()).count();
        self.lost += lost;
        self.clients_with_loss += usize::from(lost > 0);
    }

    fn report(&self, report: &mut Report) {
        let victims = self.victims;
        let r = self.resume.summary();
        report.metric("failover_clients_resumed", self.victims_resumed as f64, "");
        report.metric("failover_resume_p50", r.p50_ms, "ms");
        report.metric("failover_resume_p99", r.p99_ms, "ms");
        report.metric("failover_resume_max", r.max_ms, "ms");
        report.metric("failover_invalid_sessions", f64::from(self.invalid_sessions), "");
        report.metric("failover_lost_messages", self.lost as f64, "");
        report.metric("failover_duplicate_messages", self.duplicates as f64, "");
        report.check(
            self.victims_resumed == victims,
            format!("{} of the killed node's {victims} clients resumed elsewhere", self.victims_resumed),
        );
        report.check(
            self.lost == 0 && self.duplicates == 0,
            format!(
                "{} acknowledged messages missing over {} clients, {} delivered twice",
                self.lost, self.clients_with_loss, self.duplicates
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_info_counters_are_summed() {
        let info = "# CPU\r\nused_cpu_sys:1.50\r\nused_cpu_user:0.25\r\n# Commandstats\r\ncmdstat_get:calls=10,usec=5,usec_per_call=0.5\r\ncmdstat_evalsha:calls=3,usec=9\r\n";
        let (calls, cpu) = parse_counters(info);
        assert_eq!(calls, 13);
        assert!((cpu - 1.75).abs() < 1e-9);
    }

    #[test]
    fn the_run_gets_a_database_of_its_own() {
        assert_eq!(with_database("mongodb://h:1/?directConnection=true", "d"), "mongodb://h:1/d?directConnection=true");
        assert_eq!(with_database("mongodb://h:1", "d"), "mongodb://h:1/d");
    }
}
