//! The cluster's event stream on Redis Streams: chat's [`EventBus`] for many nodes.
//!
//! Publishing: events are queued and sent in batches by one task per node; one Lua call gives a
//! batch consecutive positions (INCRBY) and appends each as entry `0-<position>`, trimmed to about
//! [`STREAM_LEN`] entries. Reading: ONE blocking reader per node (XREAD from its last id) hands
//! every entry, in stream order, to the hub — O(1) Redis work per event per node, never per client.
//! An entry that does not decode is skipped, counted and logged; a foreign entry id is deleted.
//! RESUME reads the missed range with XRANGE. When Redis lost its data (the epoch key changed) or
//! this reader fell behind the trim, every local session is told to reconnect: its RESUME then
//! fails and the client identifies again and backfills over REST.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat::bus::{BusError, EventBus};
use chat::events::{Event, wire};
use chat::{Chat, Id};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use tokio::sync::mpsc;

use super::keys;

/// Entries kept on the stream (approximately): the resume window, counted in events.
pub const STREAM_LEN: usize = 20_000;
/// A resume replays at most this many entries; further behind, the client identifies again.
const MAX_REPLAY: usize = STREAM_LEN;
/// Entries read per XRANGE while replaying, so one resume does not hold the shared connection.
const REPLAY_PAGE: usize = 1000;
/// Events sent per Lua call.
const BATCH: usize = 256;
/// How long a blocking read waits before it checks the epoch again.
const BLOCK_MS: u64 = 1000;
/// How long a gateway session stays resumable in the cluster's records.
const SESSION_TTL_SECS: u64 = 24 * 3600;

// KEYS: stream, position, this publisher's last batch; ARGV: trim length, batch number, events.
// A batch retried after a timeout that Redis did run (a stall) is not appended twice.
const PUBLISH: &str = r"
if tonumber(ARGV[2]) <= tonumber(redis.call('GET', KEYS[3]) or '0') then return 0 end
redis.call('SET', KEYS[3], ARGV[2], 'EX', 3600)
local n = #ARGV - 2
local first = redis.call('INCRBY', KEYS[2], n) - n + 1
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-' .. (first + i - 3), 'e', ARGV[i])
end
return first
";

#[derive(Clone)]
pub struct BusMetrics {
    pub published: IntCounter,
    pub delivered: IntCounter,
    pub dropped: IntCounter,
    pub bad_entries: IntCounterVec,
    pub resets: IntCounterVec,
    pub redis_errors: IntCounter,
}

impl BusMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = BusMetrics {
            published: IntCounter::new("chorus_cluster_events_published_total", "Events this node put on the stream")?,
            delivered: IntCounter::new(
                "chorus_cluster_events_read_total",
                "Stream entries this node's reader delivered",
            )?,
            dropped: IntCounter::new(
                "chorus_cluster_events_dropped_total",
                "Events that could not be put on the stream (Redis unreachable for too long)",
            )?,
            bad_entries: IntCounterVec::new(
                Opts::new("chorus_cluster_bad_entries_total", "Stream entries skipped because they did not decode"),
                &["reason"],
            )?,
            resets: IntCounterVec::new(
                Opts::new("chorus_cluster_stream_resets_total", "Times every local session was told to reconnect"),
                &["reason"],
            )?,
            redis_errors: IntCounter::new(
                "chorus_cluster_redis_errors_total",
                "Failed Redis commands of the event stream",
            )?,
        };
        registry.register(Box::new(m.published.clone()))?;
        registry.register(Box::new(m.delivered.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.bad_entries.clone()))?;
        registry.register(Box::new(m.resets.clone()))?;
        registry.register(Box::new(m.redis_errors.clone()))?;
        Ok(m)
    }
}

pub struct RedisBus {
    outbox: mpsc::UnboundedSender<String>,
    conn: ConnectionManager,
    metrics: BusMetrics,
}

impl RedisBus {
    /// Starts the publisher and the reader (which delivers to `chat`) and returns the bus to attach.
    pub async fn start(url: &str, chat: &Arc<Chat>, metrics: BusMetrics) -> anyhow::Result<Arc<Self>> {
        let conn = super::connect(url).await?;
        // The reader blocks for BLOCK_MS on its own connection, so it needs a longer answer time.
        let reader_conn =
            super::connect_with_timeout(url, Duration::from_millis(BLOCK_MS) + Duration::from_secs(3)).await?;
        let (outbox, rx) = mpsc::unbounded_channel();
        let epoch = ensure_epoch(&conn).await?;
        let start: Option<u64> = redis::cmd("GET").arg(keys::EVENTS_POSITION).query_async(&mut conn.clone()).await?;
        tokio::spawn(publish_loop(conn.clone(), rx, metrics.clone()));
        chat.stream_starts_at(start.unwrap_or(0));
        let reader = Reader {
            conn: reader_conn,
            chat: Arc::downgrade(chat),
            metrics: metrics.clone(),
            epoch,
            last: start.unwrap_or(0),
        };
        tokio::spawn(reader.run());
        Ok(Arc::new(RedisBus { outbox, conn, metrics }))
    }
}

/// The epoch of the data Redis holds now, created if there is none.
async fn ensure_epoch(conn: &ConnectionManager) -> redis::RedisResult<String> {
    let mut conn = conn.clone();
    let fresh = format!("{:016x}", rand::random::<u64>());
    let _: Option<String> = redis::cmd("SET").arg(keys::EPOCH).arg(&fresh).arg("NX").query_async(&mut conn).await?;
    let current: Option<String> = redis::cmd("GET").arg(keys::EPOCH).query_async(&mut conn).await?;
    Ok(current.unwrap_or(fresh))
}

async fn publish_loop(mut conn: ConnectionManager, mut rx: mpsc::UnboundedReceiver<String>, metrics: BusMetrics) {
    let script = redis::Script::new(PUBLISH);
    let publisher = keys::publisher(&format!("{:016x}", rand::random::<u64>()));
    let mut batch_number: u64 = 0;
    while let Some(first) = rx.recv().await {
        batch_number += 1;
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        // About ten seconds of retries: a Redis restart or failover, not an outage.
        let mut attempt = 0;
        loop {
            let mut call = script.key(keys::EVENTS);
            call.key(keys::EVENTS_POSITION).key(&publisher).arg(STREAM_LEN).arg(batch_number);
            for e in &batch {
                call.arg(e);
            }
            match call.invoke_async::<u64>(&mut conn).await {
                Ok(_) => {
                    metrics.published.inc_by(batch.len() as u64);
                    break;
                }
                Err(e) => {
                    metrics.redis_errors.inc();
                    attempt += 1;
                    if attempt == 1 {
                        tracing::warn!("cluster: cannot publish events ({e}); retrying");
                    }
                    if attempt >= 40 {
                        tracing::error!("cluster: dropped {} events: Redis does not answer ({e})", batch.len());
                        metrics.dropped.inc_by(batch.len() as u64);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

/// The position of an entry id written by a node (`0-<position>`); None for anything else.
pub fn position_of_id(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok().filter(|p| *p > 0)
}

/// The event of a stream entry.
fn decode_entry(entry: &StreamId) -> Result<Event, &'static str> {
    let Some(json) = entry.get::<String>("e") else { return Err("no_event_field") };
    wire::decode(&json).map_err(|e| match e {
        wire::WireError::Malformed(_) => "malformed",
        wire::WireError::UnknownEvent(_) => "unknown_event",
    })
}

struct Reader {
    conn: ConnectionManager,
    chat: std::sync::Weak<Chat>,
    metrics: BusMetrics,
    epoch: String,
    /// The last position delivered.
    last: u64,
}

impl Reader {
    async fn run(mut self) {
        let mut failing = false;
        loop {
            let reply: redis::RedisResult<(Option<String>, Option<StreamReadReply>)> = redis::pipe()
                .get(keys::EPOCH)
                .cmd("XREAD")
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(keys::EVENTS)
                .arg(format!("0-{}", self.last))
                .query_async(&mut self.conn)
                .await;
            let Some(chat) = self.chat.upgrade() else { return };
            let (epoch, read) = match reply {
                Ok(r) => {
                    if failing {
                        tracing::info!("cluster: the event stream answers again");
                        failing = false;
                    }
                    r
                }
                Err(e) => {
                    self.metrics.redis_errors.inc();
                    if !failing {
                        tracing::warn!("cluster: cannot read the event stream ({e}); retrying");
                        failing = true;
                    }
                    drop(chat);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            if epoch.as_deref() != Some(self.epoch.as_str()) {
                self.on_data_lost(&chat).await;
                continue;
            }
            for entry in read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                self.deliver(&chat, &entry).await;
            }
        }
    }

    async fn deliver(&mut self, chat: &Chat, entry: &StreamId) {
        let Some(position) = position_of_id(&entry.id) else {
            // Not written by a node: it would be read again and again, so it goes.
            self.metrics.bad_entries.with_label_values(&["foreign_id"]).inc();
            tracing::warn!("cluster: deleting a foreign stream entry {:?}", entry.id);
            let _: redis::RedisResult<i64> =
                redis::cmd("XDEL").arg(keys::EVENTS).arg(&entry.id).query_async(&mut self.conn).await;
            return;
        };
        if position <= self.last {
            return;
        }
        if position > self.last.saturating_add(STREAM_LEN as u64) && !self.is_handed_out(position).await {
            // Beyond every position a node took: written by hand or by a bug. Left there, it would
            // make every node's XADD fail (ids must grow), so it goes and the stream's id is set back.
            self.metrics.bad_entries.with_label_values(&["foreign_id"]).inc();
            tracing::warn!("cluster: deleting stream entry {:?}, beyond the last position handed out", entry.id);
            let newest: Option<u64> =
                redis::cmd("GET").arg(keys::EVENTS_POSITION).query_async(&mut self.conn).await.unwrap_or(None);
            let _: redis::RedisResult<()> = redis::pipe()
                .cmd("XDEL")
                .arg(keys::EVENTS)
                .arg(&entry.id)
                .ignore()
                .cmd("XSETID")
                .arg(keys::EVENTS)
                .arg(format!("0-{}", newest.unwrap_or(0)))
                .ignore()
                .query_async(&mut self.conn)
                .await;
            return;
        }
        if position > self.last + 1 && self.last > 0 {
            // Entries were trimmed before this node read them: its sessions missed events.
            tracing::warn!(
                "cluster: the stream skipped from {} to {position}; local sessions must reconnect",
                self.last
            );
            self.metrics.resets.with_label_values(&["fell_behind"]).inc();
            chat.stream_reset(position - 1);
        }
        self.last = position;
        match decode_entry(entry) {
            Ok(event) => {
                self.metrics.delivered.inc();
                chat.deliver_from_stream(position, &event);
            }
            Err(reason) => {
                self.metrics.bad_entries.with_label_values(&[reason]).inc();
                tracing::warn!("cluster: skipping stream entry {position}: {reason}");
            }
        }
    }

    /// Whether a node was handed this position (it is at most the position counter).
    async fn is_handed_out(&mut self, position: u64) -> bool {
        let newest: redis::RedisResult<Option<u64>> =
            redis::cmd("GET").arg(keys::EVENTS_POSITION).query_async(&mut self.conn).await;
        // Unsure (Redis errors): keep the entry rather than delete a real one.
        newest.map_or(true, |n| position <= n.unwrap_or(0))
    }

    /// Redis restarted without its data (or was flushed): positions start over.
    async fn on_data_lost(&mut self, chat: &Chat) {
        match ensure_epoch(&self.conn).await {
            Ok(epoch) => {
                tracing::warn!("cluster: Redis lost its data (new epoch); every local session must identify again");
                self.metrics.resets.with_label_values(&["epoch"]).inc();
                self.epoch = epoch;
                let start: Option<u64> =
                    redis::cmd("GET").arg(keys::EVENTS_POSITION).query_async(&mut self.conn).await.unwrap_or(None);
                self.last = start.unwrap_or(0);
                chat.stream_reset(self.last);
            }
            Err(e) => {
                self.metrics.redis_errors.inc();
                tracing::warn!("cluster: cannot read the epoch ({e})");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

#[async_trait]
impl EventBus for RedisBus {
    fn publish(&self, event: &Event) {
        match wire::encode(event) {
            Ok(json) => {
                if self.outbox.send(json).is_err() {
                    self.metrics.dropped.inc();
                }
            }
            Err(e) => {
                self.metrics.dropped.inc();
                tracing::error!("cluster: could not encode an event: {e}");
            }
        }
    }

    async fn since(&self, position: u64) -> Result<Vec<(u64, Event)>, BusError> {
        let mut conn = self.conn.clone();
        let unavailable = |e: redis::RedisError| BusError::Unavailable(e.to_string());
        let newest: Option<u64> =
            redis::cmd("GET").arg(keys::EVENTS_POSITION).query_async(&mut conn).await.map_err(unavailable)?;
        let newest = newest.unwrap_or(0);
        if position > newest || newest - position > MAX_REPLAY as u64 {
            // From before Redis lost its data, or further behind than a resume replays.
            return Err(BusError::Gone);
        }
        let mut out = Vec::new();
        let mut expected = position + 1;
        // Page by page up to `newest` (what was handed out when the resume began; later entries
        // reach the session live).
        while expected <= newest {
            let range: StreamRangeReply = redis::cmd("XRANGE")
                .arg(keys::EVENTS)
                .arg(format!("0-{expected}"))
                .arg(format!("0-{newest}"))
                .arg("COUNT")
                .arg(REPLAY_PAGE)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if range.ids.is_empty() {
                // Trimmed (or never written: a publish whose script failed half-way).
                return Err(BusError::Gone);
            }
            for entry in &range.ids {
                let Some(p) = position_of_id(&entry.id) else { continue };
                if p != expected {
                    return Err(BusError::Gone);
                }
                expected = p + 1;
                match decode_entry(entry) {
                    Ok(event) => out.push((p, event)),
                    Err(reason) => self.metrics.bad_entries.with_label_values(&[reason]).inc(),
                }
            }
        }
        Ok(out)
    }

    async fn remember_session(&self, session_id: &str, user_id: Id) -> Result<(), BusError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(keys::session(session_id))
            .arg(user_id.get())
            .arg("EX")
            .arg(SESSION_TTL_SECS)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }

    async fn session_user(&self, session_id: &str) -> Result<Option<Id>, BusError> {
        if session_id.len() > 128 {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let user: Option<String> = redis::cmd("GET")
            .arg(keys::session(session_id))
            .query_async(&mut conn)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        Ok(user.and_then(|u| u.parse::<u64>().ok()).map(Id::from_raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_a_node_writes_carry_a_position() {
        assert_eq!(position_of_id("0-42"), Some(42));
        for foreign in ["0-0", "1700000000000-0", "0-x", "", "0-", "0-18446744073709551616"] {
            assert_eq!(position_of_id(foreign), None, "{foreign:?}");
        }
    }
}
