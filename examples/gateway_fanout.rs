//! Gateway fan-out benchmark against the real binary: N gateway clients in one channel, messages
//! posted at a steady rate; reports deliveries/s, p50/p99 delivery latency (post → frame read, same
//! clock), server CPU and memory per idle connection (from /proc of the server's PID).
//!
//! ```sh
//! cargo build --release && cargo run --release --example gateway_fanout -- --clients 1000 --rate 200 --seconds 10
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Args {
    clients: usize,
    rate: u64,
    seconds: u64,
    server_bin: String,
}

fn args() -> Args {
    let mut a = Args { clients: 1000, rate: 200, seconds: 10, server_bin: "target/release/chorus".into() };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--clients" => a.clients = v.parse().unwrap_or(a.clients),
            "--rate" => a.rate = v.parse().unwrap_or(a.rate),
            "--seconds" => a.seconds = v.parse().unwrap_or(a.seconds),
            "--server-bin" => a.server_bin = v,
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    a
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// (utime + stime) in seconds and RSS in KiB of a process.
fn proc_stats(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0; // utime, stime (fields 14, 15), USER_HZ = 100
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

async fn api(base: &str, token: Option<&str>, path: &str, body: Value) -> Value {
    let mut req = reqwest::Client::new().post(format!("{base}/api/v1{path}")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request").json().await.unwrap_or(Value::Null)
}

async fn start_server(bin: &str, port: u16, data_dir: &std::path::Path, base: &str) -> std::process::Child {
    let child = std::process::Command::new(bin)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--no-rate-limits", "true", "--log", "warn"])
        .arg("--data-dir")
        .arg(data_dir)
        .spawn()
        .expect("start chorus (build it with cargo build --release first)");
    while reqwest::get(format!("{base}/readyz")).await.map(|r| r.status() != 200).unwrap_or(true) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|x| x.port()).expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start_server(&a.server_bin, port, dir.path(), &base).await;

    let owner = api(&base, None, "/auth/register", json!({"username": "owner", "password": "password123"})).await;
    let owner_token = owner["token"].as_str().expect("token").to_string();
    let guild = api(&base, Some(&owner_token), "/guilds", json!({"name": "bench"})).await;
    let guild_id = guild["id"].as_str().expect("guild").to_string();
    let channel = guild["channels"][0]["id"].as_str().expect("channel").to_string();
    let invite = api(&base, Some(&owner_token), &format!("/guilds/{guild_id}/invites"), json!({})).await;
    let code = invite["code"].as_str().expect("code").to_string();
    // One account per 10 connections (argon2 makes registration deliberately slow).
    let users = a.clients.div_ceil(10);
    let mut tokens = Vec::new();
    for i in 0..users {
        let u =
            api(&base, None, "/auth/register", json!({"username": format!("u{i}"), "password": "password123"})).await;
        let t = u["token"].as_str().expect("token").to_string();
        api(&base, Some(&t), &format!("/invites/{code}"), json!({})).await;
        tokens.push(t);
    }

    let received = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(AtomicU64::new(0));
    let ws_url = format!("ws://127.0.0.1:{port}/gateway");
    // Restart so the allocator's high-water mark from registration (argon2 uses 19 MiB per hash)
    // does not hide what the connections cost; sessions are in the database and survive.
    let _ = child.kill();
    let _ = child.wait();
    let mut child = start_server(&a.server_bin, port, dir.path(), &base).await;
    let pid = child.id();
    let (_, rss_before) = proc_stats(pid);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..a.clients {
        let token = tokens[i % users].clone();
        let (received, latencies, ready, url) = (received.clone(), latencies.clone(), ready.clone(), ws_url.clone());
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else { return };
            let identify = json!({"op": 2, "d": {"token": token}}).to_string();
            if ws.send(Message::Text(identify.into())).await.is_err() {
                return;
            }
            let mut local = Vec::new();
            loop {
                let msg = tokio::select! {
                    m = ws.next() => m,
                    _ = stop.changed() => break,
                };
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                let t = text.as_str();
                if t.contains("\"t\":\"READY\"") {
                    ready.fetch_add(1, Ordering::Relaxed);
                } else if t.contains("\"t\":\"MESSAGE_CREATE\"") {
                    let now = now_ns();
                    let sent = t
                        .split("ts:")
                        .nth(1)
                        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|ts| ts.parse::<u64>().ok());
                    if let Some(sent) = sent {
                        local.push(now.saturating_sub(sent) / 1000);
                    }
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies.lock().extend(local);
        }));
    }
    while (ready.load(Ordering::Relaxed) as usize) < a.clients && t0.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_idle, rss_connected) = proc_stats(pid);
    let per_conn_kib = rss_connected.saturating_sub(rss_before) as f64 / a.clients as f64;
    println!("connected {} clients in {:.1} s", ready.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());

    let client = reqwest::Client::new();
    let total = a.rate * a.seconds;
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / a.rate.max(1)));
    let start = Instant::now();
    let mut posts = Vec::new();
    for _ in 0..total {
        tick.tick().await;
        let (client, url, token) =
            (client.clone(), format!("{base}/api/v1/channels/{channel}/messages"), owner_token.clone());
        posts.push(tokio::spawn(async move {
            let body = json!({"content": format!("ts:{}", now_ns())});
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }));
    }
    let mut ok = 0u64;
    for p in posts {
        ok += u64::from(p.await.unwrap_or(false));
    }
    let expected = ok * a.clients as u64;
    let wait_until = Instant::now() + Duration::from_secs(20);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (cpu_end, rss_end) = proc_stats(pid);
    let got = received.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut lat = std::mem::take(&mut *latencies.lock());
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!("clients: {}  messages posted: {ok}/{total} at {}/s", a.clients, a.rate);
    println!("deliveries: {got}/{expected} in {elapsed:.2} s = {:.0} deliveries/s", got as f64 / elapsed);
    println!(
        "delivery latency: p50 {:.1} ms, p99 {:.1} ms ({} samples)",
        pct(0.5) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        lat.len()
    );
    println!(
        "server CPU during the run: {:.2} s ({:.0}% of one core)",
        cpu_end - cpu_idle,
        (cpu_end - cpu_idle) / elapsed * 100.0
    );
    println!(
        "server RSS: {rss_before} KiB fresh, {rss_connected} KiB with {} idle clients ({per_conn_kib:.1} KiB per idle connection), {rss_end} KiB at the end",
        a.clients
    );
}
