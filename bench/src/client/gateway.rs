//! A light chat gateway client: identifies, heartbeats, and counts `MESSAGE_CREATE` deliveries,
//! reading the post time the bench put into each message (`ts:<µs since the run's epoch>`)
//! without parsing whole frames as JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::measure::latency::Histogram;

/// Shared by all gateway clients of a run.
pub struct FanoutShared {
    /// The clock messages carry their post time on.
    pub epoch: Instant,
    pub ready: AtomicU64,
    pub received: AtomicU64,
    pub disconnected: AtomicU64,
}

impl FanoutShared {
    pub fn new() -> Arc<FanoutShared> {
        Arc::new(FanoutShared {
            epoch: Instant::now(),
            ready: AtomicU64::new(0),
            received: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
        })
    }

    /// The content of a message posted now.
    pub fn stamp(&self) -> String {
        format!("ts:{}", self.epoch.elapsed().as_micros())
    }
}

/// The post time in a message frame, µs since the epoch.
pub fn stamp_in(frame: &str) -> Option<u64> {
    number_after(frame, "ts:")
}

/// The decimal number right after the first `marker` in `frame`.
fn number_after(frame: &str, marker: &str) -> Option<u64> {
    leading_number(frame.split(marker).nth(1)?)
}

/// The decimal number `text` starts with.
fn leading_number(text: &str) -> Option<u64> {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    text[..end].parse().ok()
}

/// The content of message number `n` posted now: its post time, then its number (the time alone
/// is not unique: two posts can fall in one microsecond).
pub fn numbered(shared: &FanoutShared, n: u64) -> String {
    format!("{} #{n}", shared.stamp())
}

/// The number of a message posted with [`numbered`].
pub fn number_in(frame: &str) -> Option<u64> {
    number_after(frame, " #")
}

/// Heartbeat interval from a HELLO frame, if this is one.
fn hello_interval(frame: &str) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_str(frame).ok()?;
    if v["op"] != 10 {
        return None;
    }
    v["d"]["heartbeat_interval_ms"]
        .as_u64()
        .or_else(|| v["d"]["heartbeat_interval"].as_u64())
        .map(Duration::from_millis)
}

/// What one gateway client saw.
#[derive(Default)]
pub struct ClientLog {
    pub latency: Histogram,
    /// The poster's numbers of the messages delivered (`#N` in the content), in order of arrival
    /// (kept when the run asks for them).
    pub posts: Vec<u64>,
    /// When the client was last told RESUMED after losing its node, µs since the epoch.
    pub resumed_at: Option<u64>,
    /// INVALID_SESSION answers to a RESUME (the client identified again, so it may have missed events).
    pub invalid_sessions: u32,
}

/// Runs one client until `stop` changes or the socket ends; returns its delivery latencies.
pub async fn run_client(
    url: String,
    token: String,
    shared: Arc<FanoutShared>,
    stop: watch::Receiver<bool>,
) -> Histogram {
    follow(vec![url], token, shared, false, stop).await.latency
}

/// The sequence number of a dispatch frame as the server formats it (`{"op":0,"s":N,…`).
fn seq_in(frame: &str) -> Option<u64> {
    leading_number(frame.strip_prefix("{\"op\":0,\"s\":")?)
}

/// The session id in a READY frame.
fn session_in(frame: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(frame).ok()?;
    v["d"]["session_id"].as_str().map(str::to_string)
}

/// How one connection ended.
enum Ended {
    Stopped,
    /// The socket closed, failed or the server asked for a reconnect: resume elsewhere.
    Lost,
    /// The server did not know the session: identify afresh.
    Invalid,
}

/// Runs one client on `nodes[0]` until `stop` changes. With more than one node it behaves like the
/// web client: when its node goes away it RESUMEs on the next one (INVALID_SESSION → IDENTIFY);
/// with one node it ends when the socket does.
pub async fn follow(
    nodes: Vec<String>,
    token: String,
    shared: Arc<FanoutShared>,
    keep_posts: bool,
    mut stop: watch::Receiver<bool>,
) -> ClientLog {
    let mut log = ClientLog::default();
    let mut session: Option<(String, u64)> = None;
    let mut node = 0;
    let mut failures = 0;
    loop {
        let Some(url) = nodes.get(node % nodes.len().max(1)) else { return log };
        let ws = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => ws,
            Err(_) if nodes.len() > 1 && failures < 20 * nodes.len() => {
                failures += 1;
                node += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => {
                shared.disconnected.fetch_add(1, Ordering::Relaxed);
                return log;
            }
        };
        match connection(ws, &token, &mut session, &shared, keep_posts, &mut log, &mut stop).await {
            Ended::Stopped => return log,
            Ended::Invalid => {
                log.invalid_sessions += 1;
                session = None;
            }
            Ended::Lost if nodes.len() > 1 => node += 1,
            Ended::Lost => {
                shared.disconnected.fetch_add(1, Ordering::Relaxed);
                return log;
            }
        }
    }
}

/// One WebSocket connection: IDENTIFY (or RESUME when `session` is known), then read until it ends.
async fn connection(
    mut ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    token: &str,
    session: &mut Option<(String, u64)>,
    shared: &FanoutShared,
    keep_posts: bool,
    log: &mut ClientLog,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let hello = match session.as_ref() {
        Some((id, seq)) => json!({"op": 6, "d": {"token": token, "session_id": id, "seq": seq}}),
        None => json!({"op": 2, "d": {"token": token}}),
    };
    if ws.send(Message::Text(hello.to_string().into())).await.is_err() {
        return Ended::Lost;
    }
    let mut heartbeat = tokio::time::interval(Duration::from_secs(3600));
    heartbeat.reset();
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = heartbeat.tick() => {
                if ws.send(Message::Text(json!({"op": 1, "d": null}).to_string().into())).await.is_err() {
                    return Ended::Lost;
                }
                continue;
            }
            _ = stop.changed() => return Ended::Stopped,
        };
        let Some(Ok(msg)) = msg else { return Ended::Lost };
        let Message::Text(text) = msg else { continue };
        let t = text.as_str();
        if let (Some(s), Some((_, seq))) = (seq_in(t), session.as_mut()) {
            *seq = (*seq).max(s);
        }
        if t.contains("\"t\":\"MESSAGE_CREATE\"") {
            let now = shared.epoch.elapsed().as_micros() as u64;
            if let Some(sent) = stamp_in(t) {
                log.latency.record_us(now.saturating_sub(sent));
            }
            if keep_posts && let Some(n) = number_in(t) {
                log.posts.push(n);
            }
            shared.received.fetch_add(1, Ordering::Relaxed);
        } else if t.contains("\"t\":\"READY\"") {
            *session = session_in(t).map(|id| (id, seq_in(t).unwrap_or(0)));
            shared.ready.fetch_add(1, Ordering::Relaxed);
        } else if t.contains("\"t\":\"RESUMED\"") {
            log.resumed_at = Some(shared.epoch.elapsed().as_micros() as u64);
        } else if t.starts_with("{\"op\":9") {
            return Ended::Invalid;
        } else if t.starts_with("{\"op\":7") {
            return Ended::Lost;
        } else if let Some(every) = hello_interval(t) {
            heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stamps_and_hello() {
        let frame = r#"{"op":0,"t":"MESSAGE_CREATE","s":3,"d":{"content":"ts:123456","id":"1"}}"#;
        assert_eq!(stamp_in(frame), Some(123456));
        assert_eq!(stamp_in(r#"{"d":{"content":"ts:"}}"#), None);
        assert_eq!(stamp_in("no stamp"), None);
        assert_eq!(
            hello_interval(r#"{"op":10,"d":{"heartbeat_interval_ms":41250}}"#),
            Some(Duration::from_millis(41250))
        );
        assert_eq!(hello_interval(r#"{"op":0,"d":{}}"#), None);
    }

    #[test]
    fn reads_the_sequence_and_session_of_dispatches() {
        let ready = r#"{"op":0,"s":1,"t":"READY","d":{"session_id":"abc","user":{}}}"#;
        assert_eq!(seq_in(ready), Some(1));
        assert_eq!(session_in(ready).as_deref(), Some("abc"));
        assert_eq!(seq_in(r#"{"op":0,"s":42,"t":"MESSAGE_CREATE","d":{}}"#), Some(42));
        assert_eq!(seq_in(r#"{"op":11,"d":{}}"#), None);
    }

    #[test]
    fn numbered_posts_carry_their_stamp_and_number() {
        let shared = FanoutShared::new();
        let content = numbered(&shared, 42);
        let frame = format!(r#"{{"op":0,"s":3,"t":"MESSAGE_CREATE","d":{{"content":"{content}","id":"1"}}}}"#);
        assert!(stamp_in(&frame).is_some());
        assert_eq!(number_in(&frame), Some(42));
        assert_eq!(number_in(r#"{"d":{"content":"ts:5"}}"#), None);
    }
}
