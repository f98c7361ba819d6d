//! Acknowledged message inserts per second into the SQLite store, from many concurrent callers.
//!
//! Every insert is awaited until the store acknowledges it (committed, WAL fsynced with
//! `synchronous=FULL`), like a REST send. Run:
//!
//! ```text
//! cargo run --release -p chat --example bench_sqlite_inserts -- [--tasks 64] [--messages 100000] [--dir PATH]
//! ```
//!
//! The database goes to a fresh temp dir (or under `--dir`, which should be on the disk you want to
//! measure: a tmpfs makes fsync free and the number meaningless).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chat::model::*;
use chat::store::{Inserted, SqliteStore, Store};
use chat::{Id, Snowflakes};
use chrono::{DateTime, Utc};

struct Args {
    tasks: usize,
    messages: usize,
    dir: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { tasks: 64, messages: 100_000, dir: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tasks" => args.tasks = value()?.parse().map_err(|e| format!("--tasks: {e}"))?,
            "--messages" => args.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?,
            "--dir" => args.dir = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.tasks == 0 || args.messages == 0 {
        return Err("--tasks and --messages must be positive".into());
    }
    Ok(args)
}

fn now() -> Timestamp {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let dir = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let path = dir.path().join("bench.db");
    let store = Arc::new(SqliteStore::open(&path).await?);
    let ids = Arc::new(Snowflakes::new(9));

    // A guild with a few channels and authors, as a busy community would have.
    let owner = ids.next();
    let guild = Guild { id: ids.next(), name: "bench".into(), owner_id: owner, created_at: now() };
    store.insert_guild(&guild).await?;
    let mut channels = Vec::new();
    for i in 0..8 {
        let ch = Channel {
            id: ids.next(),
            guild_id: Some(guild.id),
            name: format!("channel-{i}"),
            kind: ChannelKind::Text,
            parent_id: None,
            position: i,
            topic: None,
            overwrites: Vec::new(),
            recipients: Vec::new(),
            last_message_id: None,
            rate_limit_per_user: 0,
        };
        store.put_channel(&ch).await?;
        channels.push(ch.id);
    }
    let channels = Arc::new(channels);
    let next = Arc::new(AtomicUsize::new(0));

    println!("inserting {} messages from {} concurrent tasks into {}", args.messages, args.tasks, path.display());
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.tasks)
        .map(|t| {
            let (store, ids, channels, next) = (store.clone(), ids.clone(), channels.clone(), next.clone());
            let (total, guild_id) = (args.messages, guild.id);
            tokio::spawn(async move {
                let author = Id::from_raw(1_000 + t as u64);
                let mut latencies = Vec::with_capacity(total / 64 + 1);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let mentions = if i % 10 == 0 {
                        Mentions { users: vec![Id::from_raw(1_000 + (i % 64) as u64)], ..Mentions::default() }
                    } else {
                        Mentions::default()
                    };
                    let m = Message {
                        id: ids.next(),
                        channel_id: channels[i % channels.len()],
                        guild_id: Some(guild_id),
                        author_id: author,
                        content: format!("message {i} from task {t}: the quick brown fox jumps over the lazy dog"),
                        created_at: now(),
                        edited_at: None,
                        reply_to: None,
                        mentions,
                        nonce: Some(format!("{t}-{i}")),
                        pinned: false,
                        attachments: vec![],
                        embeds: vec![],
                    };
                    let sent = Instant::now();
                    match store.insert_message(&m).await {
                        Ok(Inserted::Created) => latencies.push(sent.elapsed()),
                        Ok(Inserted::Existing(_)) => {
                            return Err(format!("message {i} was a duplicate"));
                        }
                        Err(e) => return Err(format!("message {i}: {e}")),
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(args.messages);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();

    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!("acknowledged inserts: {} in {:.2} s", latencies.len(), elapsed.as_secs_f64());
    println!("throughput:           {rate:.0} msgs/s");
    for (label, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)] {
        println!("latency {label:<6}        {:.2} ms", percentile(&latencies, p).as_secs_f64() * 1e3);
    }
    if let Some(max) = latencies.last() {
        println!("latency max           {:.2} ms", max.as_secs_f64() * 1e3);
    }

    // Sanity: everything acknowledged is there.
    let mut stored = 0u64;
    for ch in channels.iter() {
        stored += u64::from(store.count_messages_after(*ch, Id::default(), u32::MAX).await?);
    }
    println!("stored messages:      {stored}");
    if stored != latencies.len() as u64 {
        return Err(format!("stored {stored} != acknowledged {}", latencies.len()).into());
    }
    store.flush().await?;
    Ok(())
}
