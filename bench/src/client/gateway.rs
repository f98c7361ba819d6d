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
    let rest = frame.split("ts:").nth(1)?;
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
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

/// Runs one client until `stop` changes or the socket ends; returns its delivery latencies.
pub async fn run_client(
    url: String,
    token: String,
    shared: Arc<FanoutShared>,
    mut stop: watch::Receiver<bool>,
) -> Histogram {
    let mut latency = Histogram::default();
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
        shared.disconnected.fetch_add(1, Ordering::Relaxed);
        return latency;
    };
    let identify = json!({"op": 2, "d": {"token": token}}).to_string();
    if ws.send(Message::Text(identify.into())).await.is_err() {
        shared.disconnected.fetch_add(1, Ordering::Relaxed);
        return latency;
    }
    let mut heartbeat = tokio::time::interval(Duration::from_secs(3600));
    heartbeat.reset();
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = heartbeat.tick() => {
                if ws.send(Message::Text(json!({"op": 1, "d": null}).to_string().into())).await.is_err() {
                    break;
                }
                continue;
            }
            _ = stop.changed() => return latency,
        };
        let Some(Ok(msg)) = msg else { break };
        let Message::Text(text) = msg else { continue };
        let t = text.as_str();
        if t.contains("\"t\":\"MESSAGE_CREATE\"") {
            let now = shared.epoch.elapsed().as_micros() as u64;
            if let Some(sent) = stamp_in(t) {
                latency.record_us(now.saturating_sub(sent));
            }
            shared.received.fetch_add(1, Ordering::Relaxed);
        } else if t.contains("\"t\":\"READY\"") {
            shared.ready.fetch_add(1, Ordering::Relaxed);
        } else if let Some(every) = hello_interval(t) {
            heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        }
    }
    shared.disconnected.fetch_add(1, Ordering::Relaxed);
    latency
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
}
