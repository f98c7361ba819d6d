//! The scenarios, and what they share: watching the server's process and metrics over a window.

pub mod chat;
pub mod cluster;
pub mod compare;
pub mod floor;
pub mod join;
pub mod ramp;
pub mod smoke;
pub mod soak;
pub mod upload;
pub mod video;
pub mod voice;
pub mod window;

use std::collections::HashMap;

use crate::client::api::{Account, BenchGuild};
use crate::measure::metrics_scrape;
use crate::measure::proc::{self, ProcSample};
use crate::report::Report;
use crate::target::Target;

/// The server's counters at one moment.
pub struct ServerSnapshot {
    pub proc: Option<ProcSample>,
    pub metrics: HashMap<String, f64>,
    /// The bench's own process, whose load clients share the machine with the server.
    pub bench: Option<ProcSample>,
}

impl ServerSnapshot {
    pub async fn take(target: &Target) -> ServerSnapshot {
        let metrics = match target.chorus() {
            Ok(api) => metrics_scrape::scrape(api.http(), api.base()).await.unwrap_or_default(),
            Err(_) => HashMap::new(),
        };
        ServerSnapshot { proc: target.pid.and_then(proc::sample), metrics, bench: proc::sample(std::process::id()) }
    }
}

/// Adds the server's CPU and memory over `a` → `b` to a report; returns the CPU seconds used.
pub fn server_usage(report: &mut Report, a: &ServerSnapshot, b: &ServerSnapshot) -> Option<f64> {
    if let (Some(ba), Some(bb)) = (&a.bench, &b.bench) {
        report.metric("bench_cpu", proc::cores_busy(ba, bb) * 100.0, "% of one core");
    }
    let (Some(pa), Some(pb)) = (&a.proc, &b.proc) else {
        return None;
    };
    let cpu = (pb.cpu_seconds - pa.cpu_seconds).max(0.0);
    report.metric("server_cpu_seconds", cpu, "s");
    report.metric("server_cpu", proc::cores_busy(pa, pb) * 100.0, "% of one core");
    report.metric("server_rss", pb.rss_kib as f64 / 1024.0, "MiB");
    report.metric("server_threads", pb.threads as f64, "");
    Some(cpu)
}

/// A username prefix no earlier run on the same server used.
pub fn unique_prefix(scenario: &str) -> String {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() % 1_000_000_000)
        .unwrap_or(0);
    format!("{scenario}{nonce}-")
}

/// Voice rooms for a media scenario and the accounts that may join them: on Chorus a guild with
/// `rooms` voice channels and rooms × `per_room` members ([`setup_guild`]); on Janus VideoRoom
/// rooms for `publishers` publishers each, numbered uniquely per run (Janus has no accounts).
pub async fn setup_rooms(
    target: &mut Target,
    scenario: &str,
    rooms: usize,
    per_room: usize,
    publishers: usize,
    restart: bool,
) -> anyhow::Result<(Vec<String>, Vec<Account>)> {
    if let Some(janus) = target.janus() {
        let first = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 1_000_000 * 1000)
            .unwrap_or(0);
        let mut channels = Vec::new();
        for room in first + 1..=first + rooms as u64 {
            janus.create_room(room, publishers).await?;
            channels.push(room.to_string());
        }
        return Ok((channels, vec![Account::default(); rooms * per_room]));
    }
    let (_owner, guild, accounts) = setup_guild(target, scenario, rooms, rooms * per_room, restart).await?;
    Ok((guild.voice_channels, accounts))
}

/// A guild with `rooms` voice channels and `members` accounts in it (plus its owner), named
/// uniquely per run so that runs can share a server. A spawned server is restarted afterwards
/// when `restart`, so that argon2's allocator high-water mark (19 MiB per hash) does not hide
/// the memory the load costs; sessions live in the database and survive.
pub async fn setup_guild(
    target: &mut Target,
    scenario: &str,
    rooms: usize,
    members: usize,
    restart: bool,
) -> anyhow::Result<(Account, BenchGuild, Vec<Account>)> {
    let prefix = unique_prefix(scenario);
    let api = target.chorus()?;
    let owner = api.register(&format!("{prefix}owner")).await?;
    let guild = api.create_guild(&owner, &format!("bench {scenario}"), rooms.max(1)).await?;
    let pb = crate::progress::bar(members as u64, "accounts");
    let accounts = api.register_members(&prefix, members, &guild, 4, || pb.inc(1)).await?;
    pb.finish_and_clear();
    if restart && target.is_spawned() {
        target.restart().await?;
    }
    Ok((owner, guild, accounts))
}
