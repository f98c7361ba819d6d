//! Cluster mode with real processes: three `chorus` nodes on loopback over a redis-server this test
//! starts on a free port and the MongoDB stand-in (or the server `CHORUS_TEST_MONGODB_URI` names).
//! Skipped with a line on stderr when no MongoDB is named (scripts/test.sh always names one).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Chorus, free_port, register, voice_channel_id};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A redis-server of the test's own, gone with it.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_on(free_port())
    }

    /// A restart without persistence: everything Redis held is gone.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Redis::start_on(self.port);
    }

    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cli(&self, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The MongoDB URI with a database of this test's own; None (skip) when none is named.
fn mongo_uri() -> Option<String> {
    let Ok(uri) = std::env::var("CHORUS_TEST_MONGODB_URI") else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: cluster tests — CHORUS_TEST_MONGODB_URI is not set");
        return None;
    };
    let database = format!("chorus_cluster_{:016x}", rand::random::<u64>());
    Some(chat::store::mongodb_uri_with_database(&uri, &database))
}

struct Cluster {
    redis: Redis,
    store: String,
    dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    fn new() -> Option<Cluster> {
        Some(Cluster { redis: Redis::start(), store: mongo_uri()?, dirs: Vec::new() })
    }

    async fn node(&mut self, extra: &[&str]) -> Chorus {
        let dir = tempfile::tempdir().expect("dir");
        let url = self.redis.url();
        let mut args = vec![
            "--store",
            &self.store,
            "--cluster",
            &url,
            "--voice-secret",
            "cluster-test-voice-secret-0123456789abcdef",
        ];
        args.extend_from_slice(extra);
        let node = Chorus::start_with(dir.path(), free_port(), &args).await;
        self.dirs.push(dir);
        node
    }
}

async fn gateway(node: &Chorus) -> Ws {
    let url = format!("{}/gateway", node.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.expect("ws").0
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into())).await.expect("send");
}

/// The next frame (HELLO, dispatch, …), or None when nothing comes within `wait`.
async fn next_frame(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// Identifies and returns the socket, the session id and the last sequence number (READY's).
async fn identify(node: &Chorus, token: &str) -> (Ws, String, u64) {
    let mut ws = gateway(node).await;
    send(&mut ws, json!({"op": 2, "d": {"token": token}})).await;
    loop {
        let f = next_frame(&mut ws, Duration::from_secs(10)).await.expect("READY");
        if f["t"] == "READY" {
            let session = f["d"]["session_id"].as_str().expect("session_id").to_string();
            return (ws, session, f["s"].as_u64().expect("s"));
        }
    }
}

/// Dispatches received until `quiet` passes without one, as (seq, name, data).
async fn dispatches_until_quiet(ws: &mut Ws, quiet: Duration) -> Vec<(u64, String, Value)> {
    let mut out = Vec::new();
    while let Some(f) = next_frame(ws, quiet).await {
        if f["op"] == 0 {
            out.push((f["s"].as_u64().unwrap_or(0), f["t"].as_str().unwrap_or("").to_string(), f["d"].clone()));
        }
    }
    out
}

/// Waits for a dispatch named `name` whose data satisfies `pred`; returns its data.
async fn wait_for(ws: &mut Ws, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for_frame(ws, name, pred).await["d"].clone()
}

/// Like [`wait_for`], returning the whole frame (with its `s`).
async fn wait_for_frame(ws: &mut Ws, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = next_frame(ws, left).await.unwrap_or_else(|| panic!("no {name} within 10 s"));
        if f["t"] == name && pred(&f["d"]) {
            return f;
        }
    }
}

/// A guild owned by `owner` (created on `on`) that `member` joined (on `join_on`); returns
/// (guild id, its first text channel id).
async fn guild_with_member(on: &Chorus, owner: &str, join_on: &Chorus, member: &str) -> (String, String) {
    let (s, g) = on.api(Some(owner), Method::POST, "/guilds", Some(json!({"name": "Cluster"}))).await;
    assert_eq!(s, 201, "{g}");
    let guild = g["id"].as_str().expect("id").to_string();
    let channel = g["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["kind"] == "text")
        .and_then(|c| c["id"].as_str())
        .expect("a text channel")
        .to_string();
    let (s, inv) = on.api(Some(owner), Method::POST, &format!("/guilds/{guild}/invites"), Some(json!({}))).await;
    assert_eq!(s, 201, "{inv}");
    let code = inv["code"].as_str().expect("code");
    let (s, b) = join_on.api(Some(member), Method::POST, &format!("/invites/{code}"), None).await;
    assert_eq!(s, 200, "{b}");
    (guild, channel)
}

/// RESUMEs a session on `node` from `seq`; returns the socket (live after RESUMED) and the ids of
/// the MESSAGE_CREATEs replayed, each checked to come after `seq`. INVALID_SESSION fails the test.
async fn resume_and_collect(node: &Chorus, token: &str, session: &str, seq: u64) -> (Ws, Vec<String>) {
    let mut ws = gateway(node).await;
    let _hello = next_frame(&mut ws, Duration::from_secs(5)).await;
    send(&mut ws, json!({"op": 6, "d": {"token": token, "session_id": session, "seq": seq}})).await;
    let mut replayed = Vec::new();
    loop {
        let f = next_frame(&mut ws, Duration::from_secs(10)).await.expect("replay, then RESUMED");
        assert_ne!(f["op"], 9, "INVALID_SESSION: {f}");
        if f["t"] == "RESUMED" {
            return (ws, replayed);
        }
        if f["t"] == "MESSAGE_CREATE" {
            assert!(f["s"].as_u64().expect("s") > seq, "only what came after seq");
            replayed.push(f["d"]["id"].as_str().expect("id").to_string());
        }
    }
}

/// Registers `owner` on one node and `alice` on another, and puts both in a guild of the owner's;
/// returns (owner's token, alice's token, guild id, its first text channel id).
async fn owner_and_alice(owner_on: &Chorus, alice_on: &Chorus) -> (String, String, String, String) {
    let owner = register(owner_on, "owner").await;
    let alice = register(alice_on, "alice").await;
    let (guild, general) = guild_with_member(owner_on, &owner, alice_on, &alice).await;
    (owner, alice, guild, general)
}

async fn post(node: &Chorus, token: &str, channel: &str, content: &str) -> String {
    let (s, m) = node
        .api(Some(token), Method::POST, &format!("/channels/{channel}/messages"), Some(json!({"content": content})))
        .await;
    assert_eq!(s, 201, "{m}");
    m["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn a_client_on_one_node_sees_what_other_nodes_do_and_nothing_it_may_not_view() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let c = cluster.node(&[]).await;
    let (owner, alice, guild, general) = owner_and_alice(&b, &c).await;
    // A channel alice may not view: @everyone (the guild's id) denied VIEW_CHANNEL.
    let (s, hidden) =
        b.api(Some(&owner), Method::POST, &format!("/guilds/{guild}/channels"), Some(json!({"name": "staff"}))).await;
    assert_eq!(s, 201, "{hidden}");
    let hidden = hidden["id"].as_str().expect("id").to_string();
    let (s, body) = b
        .api(
            Some(&owner),
            Method::PUT,
            &format!("/channels/{hidden}/permissions/{guild}"),
            Some(json!({"kind": "role", "deny": (1u64 << 10).to_string()})),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    let (mut ws, _, _) = identify(&a, &alice).await;
    let secret = post(&b, &owner, &hidden, "staff only").await;
    let created = post(&b, &owner, &general, "hello from b").await;
    let got = wait_for(&mut ws, "MESSAGE_CREATE", |d| d["id"] == created.as_str()).await;
    assert_eq!(got["content"], "hello from b");
    let (s, _) = c
        .api(
            Some(&owner),
            Method::PATCH,
            &format!("/channels/{general}/messages/{created}"),
            Some(json!({"content": "edited on c"})),
        )
        .await;
    assert_eq!(s, 200);
    let got = wait_for(&mut ws, "MESSAGE_UPDATE", |d| d["id"] == created.as_str()).await;
    assert_eq!(got["content"], "edited on c");
    let (s, _) = c
        .api(Some(&owner), Method::PUT, &format!("/channels/{general}/messages/{created}/reactions/%F0%9F%91%8D"), None)
        .await;
    assert_eq!(s, 204);
    wait_for(&mut ws, "MESSAGE_REACTION_ADD", |d| d["message_id"] == created.as_str()).await;
    let (s, _) = b.api(Some(&owner), Method::DELETE, &format!("/channels/{general}/messages/{created}"), None).await;
    assert_eq!(s, 204);
    wait_for(&mut ws, "MESSAGE_DELETE", |d| d["id"] == created.as_str()).await;
    // Nothing about the hidden channel arrived, before or after.
    post(&c, &owner, &hidden, "still staff only").await;
    let rest = dispatches_until_quiet(&mut ws, Duration::from_secs(2)).await;
    let all = format!("{rest:?}");
    assert!(!all.contains(&hidden) && !all.contains(&secret), "hidden channel leaked: {all}");
}

#[tokio::test]
async fn resume_on_another_node_replays_exactly_the_missed_events_then_resumed() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let c = cluster.node(&[]).await;
    let (owner, alice, _, general) = owner_and_alice(&b, &a).await;

    let (mut ws, session, _) = identify(&a, &alice).await;
    let first = post(&b, &owner, &general, "seen live").await;
    let live = wait_for_frame(&mut ws, "MESSAGE_CREATE", |d| d["id"] == first.as_str()).await;
    let mut seq = live["s"].as_u64().expect("s");
    for (s, _, _) in dispatches_until_quiet(&mut ws, Duration::from_millis(500)).await {
        seq = seq.max(s);
    }
    let _ = ws.close(None).await;
    drop(ws);

    let mut missed = Vec::new();
    for i in 0..3 {
        missed.push(post(if i % 2 == 0 { &b } else { &c }, &owner, &general, &format!("missed {i}")).await);
    }
    let (mut ws, replayed) = resume_and_collect(&c, &alice, &session, seq).await;
    assert_eq!(replayed, missed, "exactly the missed messages, in order");
    // And the resumed session is live.
    let later = post(&a, &owner, &general, "after resume").await;
    wait_for(&mut ws, "MESSAGE_CREATE", |d| d["id"] == later.as_str()).await;
}

#[tokio::test]
async fn a_resume_of_an_unknown_session_is_invalid_on_every_node() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let alice = register(&a, "alice").await;
    let mut ws = gateway(&a).await;
    let _hello = next_frame(&mut ws, Duration::from_secs(5)).await;
    send(&mut ws, json!({"op": 6, "d": {"token": alice, "session_id": "nope", "seq": 5}})).await;
    let f = next_frame(&mut ws, Duration::from_secs(10)).await.expect("an answer");
    assert_eq!(f["op"], 9, "INVALID_SESSION, got {f}");
}

#[tokio::test]
async fn garbage_on_the_stream_is_skipped_and_counted_and_later_events_still_flow() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let (owner, alice, _, general) = owner_and_alice(&b, &a).await;
    let (mut ws, _, _) = identify(&a, &alice).await;
    // A node of another version (or a bug) writes entries that do not decode, each at a position
    // taken as a node takes it (one script, so no node's publish comes between).
    let append =
        "local p = redis.call('INCR', KEYS[2]) return redis.call('XADD', KEYS[1], '0-' .. p, ARGV[1], ARGV[2])";
    let evil = r#"{"dispatch":{"t":"EVIL","d":{},"audience":{"kind":"guild","of":"1"},"effect":null}}"#;
    for (field, value) in [("e", "{not json"), ("e", evil), ("other", "field")] {
        let id = cluster.redis.cli(&["EVAL", append, "2", "chorus:events", "chorus:events:position", field, value]);
        assert!(id.starts_with("0-"), "appended: {id}");
    }
    // And an entry far beyond any position handed out, which would block every node's XADD if kept.
    assert_eq!(cluster.redis.cli(&["XADD", "chorus:events", "0-999999999", "e", "{}"]), "0-999999999");
    cluster.redis.cli(&["HSET", "chorus:node:1000", "state", "\u{1F4A5}", "connections", "many"]);
    cluster.redis.cli(&["SADD", "chorus:nodes", "1000"]);

    let id = post(&b, &owner, &general, "after the garbage").await;
    wait_for(&mut ws, "MESSAGE_CREATE", |d| d["id"] == id.as_str()).await;
    let metrics = reqwest::get(format!("{}/metrics", a.base)).await.expect("metrics").text().await.expect("text");
    for reason in ["malformed", "unknown_event", "no_event_field", "foreign_id"] {
        assert!(
            metrics.contains(&format!("chorus_cluster_bad_entries_total{{reason=\"{reason}\"}} 1")),
            "{reason} counted once:\n{}",
            metrics.lines().filter(|l| l.contains("bad_entries")).collect::<Vec<_>>().join("\n")
        );
    }
    // The garbage node record is skipped in the stats; both real nodes are listed.
    let (s, stats) = a.api(Some(&owner), Method::GET, "/admin/stats", None).await;
    assert_eq!(s, 200, "{stats}");
    let ids: Vec<u64> = stats["cluster"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["node_id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2, "{stats}");
    assert_eq!(stats["cluster"]["totals"]["nodes"], 2);
}

#[tokio::test]
async fn nodes_claim_distinct_node_ids_and_one_that_is_taken_is_refused() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let owner = register(&a, "owner").await;
    let (s, stats) = b.api(Some(&owner), Method::GET, "/admin/stats", None).await;
    assert_eq!(s, 200, "{stats}");
    let nodes = stats["cluster"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    assert_ne!(nodes[0]["node_id"], nodes[1]["node_id"]);
    assert!(nodes.iter().all(|n| n["state"] == "serving"));
    let held = nodes[0]["node_id"].as_u64().expect("id").to_string();
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--store", &cluster.store])
        .args(["--cluster", &cluster.redis.url(), "--node-id", &held])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run chorus");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("held by another live node"), "{err}");
    drop(a);
}

#[tokio::test]
async fn readyz_fails_when_the_clusters_redis_is_gone() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let _ = cluster.redis.child.kill();
    let _ = cluster.redis.child.wait();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = reqwest::get(format!("{}/readyz", a.base)).await.expect("readyz");
        if r.status() == 503 {
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["code"], "cluster_unavailable");
            break;
        }
        assert!(Instant::now() < deadline, "still ready without Redis");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_cluster_over_sqlite_refuses_to_start() {
    let dir = tempfile::tempdir().expect("dir");
    let run = common::run_command(dir.path(), &["--cluster", "redis://127.0.0.1:1", "ports"], None);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--cluster needs a shared store"), "{}", run.stderr);
}

/// A gateway client that follows the message ids it receives and, when its node goes away,
/// resumes on the next node of `fallbacks` by itself (as the web client does).
async fn resilient_client(
    first: String,
    fallbacks: Vec<String>,
    token: String,
    stop: tokio::sync::watch::Receiver<bool>,
    ready: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Result<Vec<String>, String> {
    let ws_url = |base: &str| format!("{}/gateway", base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&first)).await.map_err(|e| e.to_string())?;
    send(&mut ws, json!({"op": 2, "d": {"token": token}})).await;
    let mut session = String::new();
    let mut seq = 0u64;
    let mut ids = Vec::new();
    let mut next = 0;
    loop {
        let frame = match tokio::time::timeout(Duration::from_millis(1500), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(&t).ok(),
            Ok(Some(Ok(_))) => continue,
            Err(_) if *stop.borrow() => return Ok(ids),
            Err(_) => continue,
            // The node is gone (or closed us): resume on another.
            Ok(_) => {
                let base = fallbacks.get(next % fallbacks.len()).ok_or("no fallback")?;
                next += 1;
                let Ok((fresh, _)) = tokio_tungstenite::connect_async(ws_url(base)).await else { continue };
                ws = fresh;
                send(&mut ws, json!({"op": 6, "d": {"token": token, "session_id": session, "seq": seq}})).await;
                continue;
            }
        };
        let Some(f) = frame else { continue };
        if f["op"] == 9 {
            return Err(format!("INVALID_SESSION after seq {seq}"));
        }
        if let Some(s) = f["s"].as_u64() {
            seq = seq.max(s);
        }
        match f["t"].as_str() {
            Some("READY") => {
                session = f["d"]["session_id"].as_str().unwrap_or_default().to_string();
                ready.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Some("MESSAGE_CREATE") => ids.push(f["d"]["id"].as_str().unwrap_or_default().to_string()),
            _ => {}
        }
    }
}

#[tokio::test]
async fn kill_9_of_a_node_loses_no_message_for_its_clients_which_resume_elsewhere() {
    let Some(mut cluster) = Cluster::new() else { return };
    let mut a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let c = cluster.node(&[]).await;
    let owner = register(&b, "owner").await;
    let mut members = Vec::new();
    for i in 0..4 {
        members.push(register(&a, &format!("member{i}")).await);
    }
    let (s, g) = b.api(Some(&owner), Method::POST, "/guilds", Some(json!({"name": "Failover"}))).await;
    assert_eq!(s, 201, "{g}");
    let guild = g["id"].as_str().expect("id").to_string();
    let general = g["channels"][0]["id"].as_str().expect("channel").to_string();
    let (_, inv) = b.api(Some(&owner), Method::POST, &format!("/guilds/{guild}/invites"), Some(json!({}))).await;
    let code = inv["code"].as_str().expect("code").to_string();
    for m in &members {
        let (s, _) = c.api(Some(m), Method::POST, &format!("/invites/{code}"), None).await;
        assert_eq!(s, 200);
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, token)| {
            // Half fall back to b first, half to c.
            let fallbacks =
                if i % 2 == 0 { vec![b.base.clone(), c.base.clone()] } else { vec![c.base.clone(), b.base.clone()] };
            tokio::spawn(resilient_client(a.base.clone(), fallbacks, token.clone(), stop_rx.clone(), ready.clone()))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready.load(std::sync::atomic::Ordering::SeqCst) < members.len() {
        assert!(Instant::now() < deadline, "every client identified on a");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 50 messages a second through b and c for four seconds; a dies after the first second.
    let mut acknowledged = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..200 {
        tick.tick().await;
        if i == 50 {
            a.kill9();
        }
        let node = if i % 2 == 0 { &b } else { &c };
        acknowledged.push(post(node, &owner, &general, &format!("m{i}")).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let mut expected = acknowledged.clone();
    expected.sort();
    for (i, client) in clients.into_iter().enumerate() {
        let got = client.await.expect("client task").unwrap_or_else(|e| panic!("client {i}: {e}"));
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "client {i} received a message twice");
        assert_eq!(unique, expected, "client {i} received exactly the acknowledged messages");
    }
}

#[tokio::test]
async fn a_rate_limit_hammered_over_three_nodes_admits_one_nodes_budget() {
    let Some(mut cluster) = Cluster::new() else { return };
    let limited = ["--no-rate-limits", "false"];
    let nodes = [cluster.node(&limited).await, cluster.node(&limited).await, cluster.node(&limited).await];
    // Login attempts per address: a burst of 20, then one a second (the documented default).
    let started = Instant::now();
    let mut admitted = 0;
    let mut retry_after = None;
    for i in 0..45 {
        let node = &nodes[i % 3];
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", node.base))
            .json(&json!({"username": "nobody", "password": "wrong-password"}))
            .send()
            .await
            .expect("login");
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        } else {
            admitted += 1;
        }
    }
    let refill = started.elapsed().as_secs() + 1;
    assert!(admitted >= 20, "the burst is admitted: {admitted}");
    assert!(
        admitted <= 20 + refill,
        "{admitted} admitted in {refill} s: more than one budget (per node it would be 45)"
    );
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)), "429 carries Retry-After");
}

async fn voice_join(endpoint: &str, token: &str) -> Value {
    let (mut ws, answer) = voice_socket(endpoint, token).await;
    // Keep the participant in the room while the test looks at it.
    tokio::spawn(async move { while ws.next().await.is_some() {} });
    answer
}

/// Opens `/voice`, sends `join`; the socket and the answer (`joined` or `error`).
async fn voice_socket(endpoint: &str, token: &str) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(endpoint).await.expect("voice socket");
    send(&mut ws, json!({"type": "join", "token": token})).await;
    loop {
        let v = next_frame(&mut ws, Duration::from_secs(10)).await.expect("an answer to join");
        if v["type"] == "joined" || v["type"] == "error" {
            return (ws, v);
        }
    }
}

/// An owner registered on `node` with a guild there; its voice channel and a grant for it.
async fn owner_with_voice_grant(node: &Chorus) -> (String, String, Value) {
    let owner = register(node, "owner").await;
    let (s, g) = node.api(Some(&owner), Method::POST, "/guilds", Some(json!({"name": "G"}))).await;
    assert_eq!(s, 201);
    let voice = voice_channel_id(&g);
    let (s, grant) = node.api(Some(&owner), Method::POST, &format!("/channels/{voice}/voice"), None).await;
    assert_eq!(s, 200, "{grant}");
    (owner, voice, grant)
}

#[tokio::test]
async fn a_voice_room_lives_on_one_node_whichever_node_grants_and_rooms_spread_by_load() {
    let Some(mut cluster) = Cluster::new() else { return };
    let nodes = [cluster.node(&[]).await, cluster.node(&[]).await, cluster.node(&[]).await];
    let owner = register(&nodes[0], "owner").await;
    let alice = register(&nodes[1], "alice").await;
    let (guild, _) = guild_with_member(&nodes[0], &owner, &nodes[1], &alice).await;
    // A draining node with no rooms at all must still get none.
    cluster.redis.cli(&[
        "HSET",
        "chorus:node:900",
        "url",
        "http://127.0.0.1:9",
        "voice_endpoint",
        "ws://127.0.0.1:9/voice",
        "state",
        "draining",
        "version",
        "0",
        "started_at_ms",
        "0",
        "connections",
        "0",
        "rooms",
        "0",
        "participants",
        "0",
    ]);
    cluster.redis.cli(&["SADD", "chorus:nodes", "900"]);
    let mut channels = Vec::new();
    for i in 0..6 {
        let (s, ch) = nodes[0]
            .api(
                Some(&owner),
                Method::POST,
                &format!("/guilds/{guild}/channels"),
                Some(json!({"name": format!("v{i}"), "kind": "voice"})),
            )
            .await;
        assert_eq!(s, 201, "{ch}");
        channels.push(ch["id"].as_str().expect("id").to_string());
    }
    let grant = |node: &Chorus, token: &str, channel: &str| {
        let (node, token, channel) = (node.base.clone(), token.to_string(), channel.to_string());
        async move {
            let r = reqwest::Client::new()
                .post(format!("{node}/api/v1/channels/{channel}/voice"))
                .bearer_auth(token)
                .send()
                .await
                .expect("grant");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("json")
        }
    };
    // Grants for one channel, asked on different nodes, name one endpoint.
    let on_a = grant(&nodes[0], &owner, &channels[0]).await;
    let on_c = grant(&nodes[2], &alice, &channels[0]).await;
    assert_eq!(on_a["endpoint"], on_c["endpoint"]);
    // Six rooms over three serving nodes: two each, none on the draining one.
    let mut endpoints = vec![on_a["endpoint"].as_str().expect("endpoint").to_string()];
    for (i, ch) in channels.iter().enumerate().skip(1) {
        let g = grant(&nodes[i % 3], &owner, ch).await;
        endpoints.push(g["endpoint"].as_str().expect("endpoint").to_string());
    }
    for node in &nodes {
        let mine = format!("{}/voice", node.base.replace("http://", "ws://"));
        assert_eq!(endpoints.iter().filter(|e| **e == mine).count(), 2, "{endpoints:?}");
    }
    assert!(!endpoints.iter().any(|e| e.contains(":9/")), "the draining node got a room");

    // Alice follows the guild on another node than the room's; she sees the owner join there.
    let room = on_a["endpoint"].as_str().expect("endpoint");
    let watcher = nodes.iter().find(|n| !room.starts_with(&n.base.replace("http://", "ws://"))).expect("another node");
    let (mut gw, _, _) = identify(watcher, &alice).await;
    let joined = voice_join(room, on_a["token"].as_str().expect("token")).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let state = wait_for(&mut gw, "VOICE_STATE_UPDATE", |d| d["channel_id"] == channels[0].as_str()).await;
    assert!(state["user_id"].is_string());
    // The token is the owner's: another node refuses it, with the documented error.
    let elsewhere = format!("{}/voice", watcher.base.replace("http://", "ws://"));
    let refused = voice_join(&elsewhere, on_c["token"].as_str().expect("token")).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "wrong_node", "{refused}");
}

#[tokio::test]
async fn when_a_rooms_node_dies_the_next_grant_places_it_on_a_live_node() {
    let Some(mut cluster) = Cluster::new() else { return };
    let mut a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let (owner, voice, grant) = owner_with_voice_grant(&b).await;
    let first = grant["endpoint"].as_str().expect("endpoint").to_string();
    let joined = voice_join(&first, grant["token"].as_str().expect("token")).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    // READY on the node that does not hold the call lists it: voice states are the cluster's.
    let a_voice = format!("{}/voice", a.base.replace("http://", "ws://"));
    let other = if first == a_voice { &b } else { &a };
    let mut watch = gateway(other).await;
    send(&mut watch, json!({"op": 2, "d": {"token": owner}})).await;
    let ready = wait_for(&mut watch, "READY", |_| true).await;
    let in_voice = &ready["guilds"][0]["voice_states"];
    assert_eq!(in_voice.as_array().map(Vec::len), Some(1), "{in_voice}");
    assert_eq!(in_voice[0]["channel_id"], voice.as_str());
    // Kill the room's node; the other one takes the grants from now on.
    let (survivor, survivor_voice) = if first == a_voice {
        a.kill9();
        let b_voice = format!("{}/voice", b.base.replace("http://", "ws://"));
        (b, b_voice)
    } else {
        let mut b = b;
        b.kill9();
        (a, a_voice)
    };
    // The dead node's record expires (10 s) and the sweeper announces its calls as left.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = next_frame(&mut watch, left).await.expect("the dead node's call announced as left within 30 s");
        // The join itself may still arrive after READY (READY read Redis before the dispatch went out).
        if f["t"] == "VOICE_STATE_UPDATE" && f["d"]["channel_id"].is_null() {
            break;
        }
    }
    let (_, fresh) = identify_ready(&survivor, &owner).await;
    assert_eq!(fresh["guilds"][0]["voice_states"], json!([]), "READY no longer lists the lost call");
    // The dead node's record expires (10 s); then a grant re-places the room on the survivor.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, grant) = survivor.api(Some(&owner), Method::POST, &format!("/channels/{voice}/voice"), None).await;
        assert_eq!(s, 200, "{grant}");
        if grant["endpoint"] == survivor_voice.as_str() {
            let joined = voice_join(&survivor_voice, grant["token"].as_str().expect("token")).await;
            assert_eq!(joined["type"], "joined", "{joined}");
            break;
        }
        assert!(Instant::now() < deadline, "the room stayed on the dead node");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_chat_node_hands_voice_to_an_sfu_node_and_each_serves_only_its_part() {
    let Some(mut cluster) = Cluster::new() else { return };
    let chat_node = cluster.node(&["--role", "chat"]).await;
    let sfu_node = cluster.node(&["--role", "sfu"]).await;
    let owner = register(&chat_node, "owner").await;
    let (s, g) = chat_node.api(Some(&owner), Method::POST, "/guilds", Some(json!({"name": "G"}))).await;
    assert_eq!(s, 201, "{g}");
    let voice = voice_channel_id(&g);
    // Each serves only its part.
    let http = reqwest::Client::new();
    let on_sfu = http.get(format!("{}/api/v1/users/@me", sfu_node.base)).bearer_auth(&owner).send().await.expect("get");
    assert_eq!(on_sfu.status(), 404, "an SFU node serves no REST");
    let voice_on_chat = http.get(format!("{}/voice", chat_node.base)).send().await.expect("get");
    assert_eq!(voice_on_chat.status(), 404, "a chat node serves no /voice");
    assert_eq!(http.get(format!("{}/readyz", sfu_node.base)).send().await.expect("get").status(), 200);

    // The grant, asked on the chat node, names the SFU node; the join there reaches the chat node.
    let (mut gw, _) = identify_ready(&chat_node, &owner).await;
    let (s, grant) = chat_node.api(Some(&owner), Method::POST, &format!("/channels/{voice}/voice"), None).await;
    assert_eq!(s, 200, "{grant}");
    let endpoint = grant["endpoint"].as_str().expect("endpoint");
    assert_eq!(endpoint, format!("{}/voice", sfu_node.base.replace("http://", "ws://")));
    let joined = voice_join(endpoint, grant["token"].as_str().expect("token")).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    wait_for(&mut gw, "VOICE_STATE_UPDATE", |d| d["channel_id"] == voice.as_str()).await;

    // The dashboard's cluster view says what each node serves.
    let (s, stats) = chat_node.api(Some(&owner), Method::GET, "/admin/stats", None).await;
    assert_eq!(s, 200, "{stats}");
    let mut roles: Vec<String> = stats["cluster"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["role"].as_str().expect("role").to_string())
        .collect();
    roles.sort();
    assert_eq!(roles, ["chat", "sfu"]);
}

#[tokio::test]
async fn a_voice_state_lost_from_redis_is_written_again_by_the_node_that_holds_the_call() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let owner = register(&a, "owner").await;
    let me = user_id(&a, &owner).await;
    let (s, g) = a.api(Some(&owner), Method::POST, "/guilds", Some(json!({"name": "G"}))).await;
    assert_eq!(s, 201, "{g}");
    let guild = g["id"].as_str().expect("id").to_string();
    let voice = voice_channel_id(&g);
    let (s, grant) = a.api(Some(&owner), Method::POST, &format!("/channels/{voice}/voice"), None).await;
    assert_eq!(s, 200, "{grant}");
    let joined =
        voice_join(grant["endpoint"].as_str().expect("endpoint"), grant["token"].as_str().expect("token")).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let listed = |ready: &Value| ready["guilds"][0]["voice_states"].as_array().map_or(0, Vec::len);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed(&identify_ready(&b, &owner).await.1) != 1 {
        assert!(Instant::now() < deadline, "the call is listed on the other node");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Redis loses the entry (a failover, a sweep during a stall): the holder writes it again.
    cluster.redis.cli(&["HDEL", &format!("chorus:guild_voice:{guild}"), &me]);
    assert_eq!(listed(&identify_ready(&b, &owner).await.1), 0, "gone from Redis");
    let deadline = Instant::now() + Duration::from_secs(30);
    while listed(&identify_ready(&b, &owner).await.1) != 1 {
        assert!(Instant::now() < deadline, "written again within the refresh period (10 s)");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A new gateway session's socket and its READY data.
async fn identify_ready(node: &Chorus, token: &str) -> (Ws, Value) {
    let mut ws = gateway(node).await;
    send(&mut ws, json!({"op": 2, "d": {"token": token}})).await;
    let ready = wait_for(&mut ws, "READY", |_| true).await;
    (ws, ready)
}

/// The users READY lists as online in a guild.
fn online_in(ready: &Value, guild: &str) -> Vec<String> {
    let g = ready["guilds"].as_array().expect("guilds").iter().find(|g| g["id"] == guild).expect("the guild");
    g["presences"]
        .as_array()
        .expect("presences")
        .iter()
        .filter_map(|p| p["user_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_member_who_joins_a_guild_while_online_is_in_its_online_list_on_every_node_until_they_leave() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let bob = register(&b, "bob").await;
    let alice = register(&a, "alice").await;
    let alice_id = user_id(&a, &alice).await;
    // Alice is online (on a) before she is a member: no status change comes after her join.
    let (_online, _) = identify_ready(&a, &alice).await;
    let (guild, _) = guild_with_member(&b, &bob, &a, &alice).await;
    let (_, ready) = identify_ready(&b, &bob).await;
    assert!(online_in(&ready, &guild).contains(&alice_id), "joined while online: listed on another node");
    let (s, _) = a.api(Some(&alice), Method::DELETE, &format!("/users/@me/guilds/{guild}"), None).await;
    assert_eq!(s, 204, "leave");
    let (_, ready) = identify_ready(&b, &bob).await;
    assert!(!online_in(&ready, &guild).contains(&alice_id), "a former member is not listed");
}

/// The status a PRESENCE_UPDATE for `user` says, waiting up to `wait`; None if none came.
async fn presence_of(ws: &mut Ws, user: &str, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let f = next_frame(ws, left).await?;
        if f["t"] == "PRESENCE_UPDATE" && f["d"]["user_id"] == user {
            return f["d"]["status"].as_str().map(str::to_string);
        }
    }
}

async fn user_id(node: &Chorus, token: &str) -> String {
    let (s, me) = node.api(Some(token), Method::GET, "/users/@me", None).await;
    assert_eq!(s, 200, "{me}");
    me["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn presence_is_the_clusters_a_user_stays_online_until_their_last_node_dies() {
    let Some(mut cluster) = Cluster::new() else { return };
    let mut a = cluster.node(&[]).await;
    let mut b = cluster.node(&[]).await;
    let c = cluster.node(&[]).await;
    let bob = register(&c, "bob").await;
    let alice = register(&a, "alice").await;
    let alice_id = user_id(&a, &alice).await;
    let (guild, _) = guild_with_member(&c, &bob, &a, &alice).await;
    let (mut watch, _, _) = identify(&c, &bob).await;

    let (_on_a, _, _) = identify(&a, &alice).await;
    assert_eq!(presence_of(&mut watch, &alice_id, Duration::from_secs(10)).await.as_deref(), Some("online"));
    let (_on_b, _, _) = identify(&b, &alice).await;
    // READY on a third node lists her: presence is the cluster's, not the node's.
    let mut ready_ws = gateway(&c).await;
    send(&mut ready_ws, json!({"op": 2, "d": {"token": bob}})).await;
    let ready = wait_for(&mut ready_ws, "READY", |_| true).await;
    let guild_ready =
        ready["guilds"].as_array().expect("guilds").iter().find(|g| g["id"] == guild.as_str()).expect("guild");
    assert!(
        guild_ready["presences"]
            .as_array()
            .expect("presences")
            .iter()
            .any(|p| p["user_id"] == alice_id.as_str() && p["status"] == "online"),
        "{guild_ready}"
    );

    let (_, stats) = a.api(Some(&bob), Method::GET, "/admin/stats", None).await;
    let a_node = stats["node_id"].as_u64().expect("a's node id").to_string();
    let presence_key = format!("chorus:presence:{alice_id}");
    assert_eq!(cluster.redis.cli(&["HGET", &presence_key, &a_node]), "3", "a holds her online");
    a.kill9();
    // a's record expires after 10 s and its users are swept within a heartbeat: she stays online (b).
    assert_eq!(presence_of(&mut watch, &alice_id, Duration::from_secs(20)).await, None, "no change while b holds her");
    assert_eq!(cluster.redis.cli(&["HGET", &presence_key, &a_node]), "", "a's view was swept");
    b.kill9();
    let seen = presence_of(&mut watch, &alice_id, Duration::from_secs(30)).await;
    assert_eq!(seen.as_deref(), Some("offline"), "offline once her last node is gone");
}

#[tokio::test]
async fn after_redis_loses_its_data_clients_are_told_to_identify_again_and_nothing_acknowledged_is_missing() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let (owner, alice, _, general) = owner_and_alice(&b, &a).await;
    let (mut ws, session, seq) = identify(&a, &alice).await;
    let before = post(&b, &owner, &general, "before the restart").await;
    wait_for(&mut ws, "MESSAGE_CREATE", |d| d["id"] == before.as_str()).await;

    cluster.redis.restart();
    // The node notices the new epoch and asks its clients to reconnect (op 7) …
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match next_frame(&mut ws, Duration::from_secs(1)).await {
            Some(f) if f["op"] == 7 => break,
            _ => assert!(Instant::now() < deadline, "no RECONNECT after Redis lost its data"),
        }
    }
    // … whose RESUME cannot be honoured: INVALID_SESSION, then IDENTIFY works again.
    let mut ws = gateway(&a).await;
    let _hello = next_frame(&mut ws, Duration::from_secs(5)).await;
    send(&mut ws, json!({"op": 6, "d": {"token": alice, "session_id": session, "seq": seq}})).await;
    loop {
        let f = next_frame(&mut ws, Duration::from_secs(10)).await.expect("an answer to RESUME");
        assert_ne!(f["t"], "RESUMED", "a resume across lost data must not succeed");
        if f["op"] == 9 {
            break;
        }
    }
    // Writes made while Redis was away are in the store: the client backfills them over REST.
    let during = post(&b, &owner, &general, "after the restart").await;
    let (mut ws, _, _) = identify(&a, &alice).await;
    let (s, history) = a.api(Some(&alice), Method::GET, &format!("/channels/{general}/messages?limit=10"), None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = history.as_array().expect("messages").iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&before.as_str()) && ids.contains(&during.as_str()), "{ids:?}");
    let live = post(&b, &owner, &general, "live again").await;
    wait_for(&mut ws, "MESSAGE_CREATE", |d| d["id"] == live.as_str()).await;
}

#[tokio::test]
async fn a_three_second_redis_stall_declares_no_node_dead_and_loses_nothing() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let (owner, alice, _, general) = owner_and_alice(&b, &a).await;
    let (mut ws, _, _) = identify(&a, &alice).await;
    assert_eq!(cluster.redis.cli(&["CLIENT", "PAUSE", "3000"]), "OK");
    let during = post(&b, &owner, &general, "during the stall").await;
    let got = wait_for_frame(&mut ws, "MESSAGE_CREATE", |d| d["id"] == during.as_str()).await;
    assert_eq!(got["d"]["content"], "during the stall");
    let rest = dispatches_until_quiet(&mut ws, Duration::from_secs(3)).await;
    assert!(rest.iter().all(|(_, name, _)| name != "MESSAGE_CREATE"), "delivered once: {rest:?}");
    let (s, stats) = a.api(Some(&owner), Method::GET, "/admin/stats", None).await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["cluster"]["totals"]["serving"], 2, "both nodes still alive: {stats}");
}

#[tokio::test]
async fn sigterm_drains_a_node_new_rooms_go_elsewhere_while_its_call_runs_on() {
    let Some(mut cluster) = Cluster::new() else { return };
    let mut a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let owner = register(&b, "owner").await;
    let (s, g) = b.api(Some(&owner), Method::POST, "/guilds", Some(json!({"name": "G"}))).await;
    assert_eq!(s, 201);
    let guild = g["id"].as_str().expect("id").to_string();
    let mut voice = Vec::new();
    for i in 0..2 {
        let (_, ch) = b
            .api(
                Some(&owner),
                Method::POST,
                &format!("/guilds/{guild}/channels"),
                Some(json!({"name": format!("v{i}"), "kind": "voice"})),
            )
            .await;
        voice.push(ch["id"].as_str().expect("id").to_string());
    }
    let a_voice = format!("{}/voice", a.base.replace("http://", "ws://"));
    // Find the channel whose room is on a and join it there.
    let mut on_a = None;
    for ch in &voice {
        let (_, grant) = b.api(Some(&owner), Method::POST, &format!("/channels/{ch}/voice"), None).await;
        if grant["endpoint"] == a_voice.as_str() {
            on_a = Some((ch.clone(), grant));
        }
    }
    let (_, grant) = on_a.expect("one of two rooms is placed on a");
    assert_eq!(voice_join(&a_voice, grant["token"].as_str().expect("token")).await["type"], "joined");
    let pid = a.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    // While the call runs, a says it is draining and gets no new room.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, stats) = b.api(Some(&owner), Method::GET, "/admin/stats", None).await;
        let states: Vec<&str> =
            stats["cluster"]["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["state"].as_str()).collect();
        if states.contains(&"draining") {
            break;
        }
        assert!(Instant::now() < deadline, "a never showed as draining: {states:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, fresh) = b
        .api(
            Some(&owner),
            Method::POST,
            &format!("/guilds/{guild}/channels"),
            Some(json!({"name": "new", "kind": "voice"})),
        )
        .await;
    assert_eq!(s, 201);
    let (_, grant) = b
        .api(Some(&owner), Method::POST, &format!("/channels/{}/voice", fresh["id"].as_str().expect("id")), None)
        .await;
    assert_eq!(
        grant["endpoint"],
        format!("{}/voice", b.base.replace("http://", "ws://")),
        "a new room on a serving node"
    );
    assert!(a.child.try_wait().expect("wait").is_none(), "a is still up for its call");
}

#[tokio::test]
async fn a_session_that_began_on_a_node_started_late_resumes_elsewhere_with_only_what_it_missed() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let (owner, alice, _, general) = owner_and_alice(&a, &a).await;
    for i in 0..5 {
        post(&a, &owner, &general, &format!("before {i}")).await;
    }
    // A node that joins now starts reading where the stream is, and numbers READY from there.
    let late = cluster.node(&[]).await;
    let (ws, session, ready_seq) = identify(&late, &alice).await;
    drop(ws);
    let mut missed = Vec::new();
    for i in 0..2 {
        missed.push(post(&a, &owner, &general, &format!("missed {i}")).await);
    }
    let (_ws, replayed) = resume_and_collect(&a, &alice, &session, ready_seq).await;
    assert_eq!(replayed, missed, "nothing from before READY, everything after it");
}

#[tokio::test]
async fn a_resume_after_joining_a_guild_meanwhile_identifies_again() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let owner = register(&a, "owner").await;
    let alice = register(&a, "alice").await;
    let (ws, session, seq) = identify(&a, &alice).await;
    drop(ws);
    // Alice joins a guild on another device while this session is away.
    guild_with_member(&b, &owner, &b, &alice).await;
    let mut ws = gateway(&b).await;
    let _hello = next_frame(&mut ws, Duration::from_secs(5)).await;
    send(&mut ws, json!({"op": 6, "d": {"token": alice, "session_id": session, "seq": seq}})).await;
    loop {
        let f = next_frame(&mut ws, Duration::from_secs(10)).await.expect("an answer");
        assert_ne!(f["t"], "RESUMED", "a replay cannot show a guild joined meanwhile");
        if f["op"] == 9 {
            break;
        }
    }
}

#[tokio::test]
async fn a_moderators_order_on_one_node_reaches_the_call_on_the_node_that_holds_it() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let (owner, alice, guild, _) = owner_and_alice(&a, &b).await;
    let alice_id = user_id(&b, &alice).await;
    let (_, g) = a.api(Some(&owner), Method::GET, &format!("/guilds/{guild}"), None).await;
    let voice = voice_channel_id(&g);
    let (s, other) = a
        .api(
            Some(&owner),
            Method::POST,
            &format!("/guilds/{guild}/channels"),
            Some(json!({"name": "Other", "kind": "voice"})),
        )
        .await;
    assert_eq!(s, 201, "{other}");
    let other = other["id"].as_str().expect("id").to_string();
    let (s, grant) = b.api(Some(&alice), Method::POST, &format!("/channels/{voice}/voice"), None).await;
    assert_eq!(s, 200, "{grant}");
    let endpoint = grant["endpoint"].as_str().expect("endpoint").to_string();
    let (mut call, _) = tokio_tungstenite::connect_async(endpoint.as_str()).await.expect("voice socket");
    send(&mut call, json!({"type": "join", "token": grant["token"]})).await;
    loop {
        let v = next_frame(&mut call, Duration::from_secs(10)).await.expect("joined");
        assert_ne!(v["type"], "error", "{v}");
        if v["type"] == "joined" {
            break;
        }
    }
    // The order is given on whichever node does not hold the call.
    let room_node = if endpoint.starts_with(&a.base.replace("http://", "ws://")) { &a } else { &b };
    let moderator_node = if std::ptr::eq(room_node, &a) { &b } else { &a };
    let (mut gw, _, _) = identify(moderator_node, &owner).await;
    let path = format!("/guilds/{guild}/members/{alice_id}");
    let (s, m) = moderator_node.api(Some(&owner), Method::PATCH, &path, Some(json!({"mute": true}))).await;
    assert_eq!(s, 200, "{m}");
    loop {
        let v = next_frame(&mut call, Duration::from_secs(10)).await.expect("the call hears of the mute");
        if v["type"] == "mute" && v["server_muted"] == true {
            break;
        }
    }
    let state = wait_for(&mut gw, "VOICE_STATE_UPDATE", |d| d["server_mute"] == true).await;
    assert_eq!(state["user_id"], alice_id.as_str());
    let (s, m) = moderator_node.api(Some(&owner), Method::PATCH, &path, Some(json!({"channel_id": other}))).await;
    assert_eq!(s, 200, "{m}");
    loop {
        let v = next_frame(&mut call, Duration::from_secs(10)).await.expect("the call hears of the move");
        if v["type"] == "moved" {
            assert_eq!(v["channel_id"], other.as_str());
            break;
        }
    }
}

#[tokio::test]
async fn a_node_that_stalled_past_its_record_ends_the_calls_of_a_room_placed_elsewhere_meanwhile() {
    let Some(mut cluster) = Cluster::new() else { return };
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let (owner, voice, grant) = owner_with_voice_grant(&b).await;
    let first = grant["endpoint"].as_str().expect("endpoint").to_string();
    let (mut call, joined) = voice_socket(&first, grant["token"].as_str().expect("token")).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let voice_of = |n: &Chorus| format!("{}/voice", n.base.replace("http://", "ws://"));
    assert!(first == voice_of(&a) || first == voice_of(&b), "the grant names one of the two nodes: {first}");
    let (stalled, other) = if first == voice_of(&a) { (&a, &b) } else { (&b, &a) };
    let pid = stalled.child.id().to_string();

    // The room's node stops (SIGSTOP) longer than its record lives; meanwhile a grant places the room elsewhere.
    assert!(Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
    // The record lives 10 s; stay well inside the 20 s a node id claim lives, or the node would give up its id.
    let deadline = Instant::now() + Duration::from_secs(16);
    loop {
        let (s, grant) = other.api(Some(&owner), Method::POST, &format!("/channels/{voice}/voice"), None).await;
        if s == 200 && grant["endpoint"] == voice_of(other).as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "the room was not placed elsewhere while its node stood still: {grant}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(Command::new("kill").args(["-CONT", &pid]).status().expect("kill").success());

    // Back, the node finds the room is another's and ends the call it still held: no split call.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = next_frame(&mut call, left).await.expect("the stale call was ended within 20 s of the node's return");
        if v["type"] == "error" {
            assert_eq!(v["code"], "room_moved", "{v}");
            break;
        }
    }
}

#[tokio::test]
async fn slow_mode_holds_across_nodes_and_a_send_with_files_waits_before_its_upload() {
    let Some(mut cluster) = Cluster::new() else { return };
    let limited = ["--no-rate-limits", "false"];
    let (a, b) = (cluster.node(&limited).await, cluster.node(&limited).await);
    let owner = register(&a, "owner").await;
    let alice = register(&a, "alice").await;
    let (_, channel) = guild_with_member(&a, &owner, &a, &alice).await;
    let slow = json!({"rate_limit_per_user": 60});
    let (s, _) = a.api(Some(&owner), Method::PATCH, &format!("/channels/{channel}"), Some(slow)).await;
    assert_eq!(s, 200);
    let path = format!("/channels/{channel}/messages");
    let (s, first) = a.api(Some(&alice), Method::POST, &path, Some(json!({"content": "on a"}))).await;
    assert_eq!(s, 201, "{first}");
    let (s, body) = b.api(Some(&alice), Method::POST, &path, Some(json!({"content": "on b"}))).await;
    assert_eq!((s, body["code"].as_str()), (429, Some("slow_mode")), "the period is the cluster's: {body}");

    // A send with files whose body never ends: node B answers from Redis before reading the file.
    let head = "--b\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{\"content\":\"file\"}\r\n\
                --b\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"f.bin\"\r\n\r\n";
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(head.as_bytes().to_vec()) })
        .chain(futures::stream::pending());
    let send = reqwest::Client::new()
        .post(format!("{}/api/v1{path}", b.base))
        .bearer_auth(&alice)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let r = tokio::time::timeout(Duration::from_secs(10), send).await.expect("an answer before the body ends");
    let r = r.expect("response");
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], "slow_mode", "{body}");
}
