//! Durability of the SQLite backend: what was acknowledged is on disk.
//!
//! - Reopening the file shows every acknowledged write, and reopening does not re-run migrations.
//! - A writer process killed with SIGKILL mid-stream loses nothing it had acknowledged: the test
//!   re-runs this test as a child process (`write_until_killed`), reads the ids the child prints
//!   after each acknowledged insert, kills it, and checks every printed id in the file.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat::model::*;
use chat::store::{Inserted, SqliteStore, Store};
use chat::{Id, Snowflakes};
use chrono::{DateTime, Utc};

const CHILD_ENV: &str = "CHORUS_KILL9_CHILD_DB";

fn now() -> Timestamp {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

fn channel(id: Id, guild_id: Id) -> Channel {
    Channel {
        id,
        guild_id: Some(guild_id),
        name: "general".into(),
        kind: ChannelKind::Text,
        parent_id: None,
        position: 0,
        topic: None,
        overwrites: Vec::new(),
        recipients: Vec::new(),
        last_message_id: None,
        rate_limit_per_user: 0,
    }
}

fn message(id: Id, channel_id: Id, guild_id: Id, author_id: Id, i: usize) -> Message {
    Message {
        id,
        channel_id,
        guild_id: Some(guild_id),
        author_id,
        content: format!("durable message {i}"),
        created_at: now(),
        edited_at: None,
        reply_to: None,
        mentions: Mentions::default(),
        nonce: Some(format!("nonce-{i}")),
        pinned: false,
        attachments: vec![],
        embeds: vec![],
    }
}

/// A guild with one channel; returns (guild id, channel id, owner id).
async fn seed(store: &SqliteStore, ids: &Snowflakes) -> (Id, Id, Id) {
    let owner = ids.next();
    let guild = Guild { id: ids.next(), name: "durable".into(), owner_id: owner, created_at: now() };
    store.insert_guild(&guild).await.unwrap();
    let ch = channel(ids.next(), guild.id);
    store.put_channel(&ch).await.unwrap();
    (guild.id, ch.id, owner)
}

fn user_version(path: &Path) -> (u32, i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    let v: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    let objects: i64 = c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).unwrap();
    (v, objects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_acknowledged_writes_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("chorus.db");
    let ids = Arc::new(Snowflakes::new(2));

    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let (guild, ch, owner) = seed(&store, &ids).await;
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (store, ids) = (store.clone(), ids.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..25 {
                    let m = message(ids.next(), ch, guild, owner, t * 100 + i);
                    assert_eq!(store.insert_message(&m).await.unwrap(), Inserted::Created);
                    acked.push(m);
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    // No flush, no graceful shutdown: just drop the handle.
    drop(store);
    let (version, objects) = user_version(&path);
    assert_eq!(version, SqliteStore::SCHEMA_VERSION);

    for round in 0..2 {
        let store = SqliteStore::open(&path).await.unwrap();
        for m in &acked {
            assert_eq!(store.message(ch, m.id).await.unwrap().as_ref(), Some(m), "round {round}");
        }
        assert_eq!(store.count_messages_after(ch, Id::default(), 10_000).await.unwrap() as usize, acked.len());
        let newest = acked.iter().map(|m| m.id).max();
        assert_eq!(store.channel(ch).await.unwrap().unwrap().last_message_id, newest);
        // Still writable after reopening, and the nonce index survived.
        let again = Message { id: ids.next(), ..acked[0].clone() };
        assert_eq!(store.insert_message(&again).await.unwrap(), Inserted::Existing(Box::new(acked[0].clone())));
        store.flush().await.unwrap();
        drop(store);
        assert_eq!(user_version(&path), (version, objects), "reopening re-ran no migration");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    // The same test, run again as a child process by the parent below: it writes until it is killed.
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return write_until_killed(&spec).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chorus.db");
    let ids = Snowflakes::new(3);
    let (guild, ch, owner) = {
        let store = SqliteStore::open(&path).await.unwrap();
        let seeded = seed(&store, &ids).await;
        drop(store);
        seeded
    };

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "acknowledged_writes_survive_kill_9", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}|{}|{}|{}", path.display(), guild, ch, owner))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked: BTreeSet<Id> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 500 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(id) = line.strip_prefix("ACK ") {
                    acked.insert(id.trim().parse().unwrap());
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("child stopped acknowledging after {} acks: {e}", acked.len());
            }
        }
    }
    // SIGKILL while the child is still writing at full speed.
    child.kill().unwrap();
    child.wait().unwrap();
    // Acks printed before the kill that we have not read yet count too.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.insert(id.trim().parse().unwrap());
        }
    }

    let store = SqliteStore::open(&path).await.unwrap();
    let mut missing = Vec::new();
    for id in &acked {
        if store.message(ch, *id).await.unwrap().is_none() {
            missing.push(*id);
        }
    }
    assert!(missing.is_empty(), "{} of {} acknowledged messages lost: {missing:?}", missing.len(), acked.len());
    let stored = store.count_messages_after(ch, Id::default(), 1_000_000).await.unwrap() as usize;
    assert!(stored >= acked.len());
    eprintln!("kill -9: {} acknowledged, {} stored, none lost", acked.len(), stored);
}

/// The child half of `acknowledged_writes_survive_kill_9`: 16 tasks insert messages into the store named in
/// `spec` and print `ACK <id>` once each insert has returned, until the parent kills the process.
async fn write_until_killed(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [path, guild, ch, owner] = parts.as_slice() else { panic!("bad {CHILD_ENV}: {spec}") };
    let (guild, ch, owner): (Id, Id, Id) = (guild.parse().unwrap(), ch.parse().unwrap(), owner.parse().unwrap());
    let store = Arc::new(SqliteStore::open(&PathBuf::from(path)).await.unwrap());
    let ids = Arc::new(Snowflakes::new(4));
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (store, ids) = (store.clone(), ids.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let m = message(ids.next(), ch, guild, owner, t * 1_000_000 + i);
                    store.insert_message(&m).await.unwrap();
                    // Printed only after the store acknowledged the write.
                    println!("ACK {}", m.id);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}
