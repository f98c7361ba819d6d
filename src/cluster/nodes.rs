//! Who is in the cluster: each node's claim on its snowflake node id and its record (address,
//! state, load), both kept alive by a heartbeat and gone when it stops — Redis's expiry decides.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use redis::aio::ConnectionManager;
use serde::Serialize;

use super::keys;

/// How often a node refreshes its claim and record.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A record not refreshed for this long is gone: the node is dead (or cut off from Redis).
pub const RECORD_TTL: Duration = Duration::from_secs(10);
/// A node id claim lives longer than a record, so a node stalled past its record's expiry is
/// shown dead before anyone may take its id.
pub const CLAIM_TTL: Duration = Duration::from_secs(20);
/// The highest id a server may claim (1023 is the admin CLI's).
const MAX_NODE_ID: u16 = 1022;

/// What a node says about itself, fixed at start.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node_id: u16,
    pub url: String,
    pub voice_endpoint: String,
    /// `all`, `chat` (holds no voice rooms) or `sfu` (`--role`).
    pub role: &'static str,
    pub version: &'static str,
    pub started_at_ms: i64,
}

/// What a node reports at each heartbeat.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub connections: i64,
    pub rooms: i64,
    pub participants: i64,
}

/// A node as the cluster sees it (`GET /api/v1/admin/stats` → `cluster.nodes`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeRecord {
    pub node_id: u16,
    pub url: String,
    pub voice_endpoint: String,
    /// `serving` or `draining`.
    pub state: String,
    /// `all`, `chat` or `sfu`: what the node serves (`--role`).
    pub role: String,
    pub version: String,
    pub started_at_ms: i64,
    pub connections: i64,
    pub rooms: i64,
    pub participants: i64,
}

// Refresh our claim; take it again if it expired (Redis lost it or we stalled); 0 if another holds it.
const REFRESH_CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
";

/// Claims a snowflake node id: `wanted`, or else the lowest free one. Fails if `wanted` is held by
/// a live node, or no id is free.
pub async fn claim_node_id(conn: &ConnectionManager, wanted: Option<u16>, token: &str) -> Result<u16> {
    let mut conn = conn.clone();
    let ttl = CLAIM_TTL.as_millis() as u64;
    let candidates: Vec<u16> = match wanted {
        Some(id) => vec![id],
        None => (0..=MAX_NODE_ID).collect(),
    };
    for id in candidates {
        let set: Option<String> = redis::cmd("SET")
            .arg(keys::node_id_claim(id))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .query_async(&mut conn)
            .await?;
        if set.is_some() {
            return Ok(id);
        }
    }
    match wanted {
        Some(id) => {
            bail!("node id {id} is held by another live node of the cluster: give each node its own --node-id, or none")
        }
        None => bail!("every node id (0-{MAX_NODE_ID}) is held by a live node"),
    }
}

/// This node's presence in the cluster.
pub struct Membership {
    conn: ConnectionManager,
    info: NodeInfo,
    token: String,
    draining: AtomicBool,
    load: Box<dyn Fn() -> Load + Send + Sync>,
}

impl Membership {
    pub fn new(
        conn: ConnectionManager,
        info: NodeInfo,
        token: String,
        load: Box<dyn Fn() -> Load + Send + Sync>,
    ) -> Arc<Self> {
        Arc::new(Membership { conn, info, token, draining: AtomicBool::new(false), load })
    }

    /// Stops taking new voice rooms (SIGTERM); the record says `draining` from the next beat.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// One heartbeat: the claim, then the record. Err(lost) when another node holds our id now
    /// (we were cut off longer than the claim lives): this process must not mint another id.
    pub async fn beat(&self) -> Result<(), BeatError> {
        let mut conn = self.conn.clone();
        let kept: i64 = redis::Script::new(REFRESH_CLAIM)
            .key(keys::node_id_claim(self.info.node_id))
            .arg(&self.token)
            .arg(CLAIM_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(BeatError::Redis)?;
        if kept == 0 {
            return Err(BeatError::IdLost(self.info.node_id));
        }
        let load = (self.load)();
        let state = if self.draining.load(Ordering::Acquire) { "draining" } else { "serving" };
        let key = keys::node(self.info.node_id);
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("url", self.info.url.clone()),
                    ("voice_endpoint", self.info.voice_endpoint.clone()),
                    ("state", state.to_string()),
                    ("role", self.info.role.to_string()),
                    ("version", self.info.version.to_string()),
                    ("started_at_ms", self.info.started_at_ms.to_string()),
                    ("connections", load.connections.to_string()),
                    ("rooms", load.rooms.to_string()),
                    ("participants", load.participants.to_string()),
                ],
            )
            .ignore()
            .pexpire(&key, RECORD_TTL.as_millis() as i64)
            .ignore()
            .sadd(keys::NODES, self.info.node_id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(BeatError::Redis)
    }

    /// Leaves the cluster at once (clean shutdown): record and claim are removed, not left to expire.
    pub async fn leave(&self) {
        let mut conn = self.conn.clone();
        let _: redis::RedisResult<()> = redis::pipe()
            .del(keys::node(self.info.node_id))
            .del(keys::node_id_claim(self.info.node_id))
            .query_async(&mut conn)
            .await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BeatError {
    #[error("Redis: {0}")]
    Redis(redis::RedisError),
    #[error("node id {0} is now held by another node")]
    IdLost(u16),
}

/// Beats until the process ends. A Redis outage is logged once and waited out; a lost node id
/// ends the process, because two nodes minting ids with one node id could collide.
pub fn spawn_heartbeat(membership: Arc<Membership>, failures: prometheus::IntCounter) {
    tokio::spawn(async move {
        let mut failing = false;
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match membership.beat().await {
                Ok(()) => {
                    if failing {
                        tracing::info!("cluster: Redis answers again");
                        failing = false;
                    }
                }
                Err(BeatError::Redis(e)) => {
                    failures.inc();
                    if !failing {
                        tracing::warn!("cluster: heartbeat failed ({e}); retrying every {HEARTBEAT:?}");
                        failing = true;
                    }
                }
                Err(e @ BeatError::IdLost(_)) => {
                    tracing::error!("cluster: {e}; stopping so that no id is minted twice");
                    std::process::exit(1);
                }
            }
        }
    });
}

/// Every live node, by node id. A record that does not parse is skipped and logged.
pub async fn live_nodes(conn: &ConnectionManager) -> Result<Vec<NodeRecord>, redis::RedisError> {
    let mut conn = conn.clone();
    let ids: Vec<String> = redis::cmd("SMEMBERS").arg(keys::NODES).query_async(&mut conn).await?;
    let ids: Vec<u16> = ids.iter().filter_map(|i| i.parse().ok()).collect();
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.hgetall(keys::node(*id));
    }
    let records: Vec<HashMap<String, String>> =
        if ids.is_empty() { Vec::new() } else { pipe.query_async(&mut conn).await? };
    let mut nodes = Vec::new();
    for (id, fields) in ids.iter().zip(records) {
        if fields.is_empty() {
            continue; // dead: its record expired
        }
        let key = keys::node(*id);
        match parse_record(&key, &fields) {
            Some(record) => nodes.push(record),
            None => tracing::warn!("cluster: skipping a malformed node record {key:?}"),
        }
    }
    nodes.sort_by_key(|n| n.node_id);
    Ok(nodes)
}

/// Node ids that registered once and whose record is gone.
pub async fn dead_nodes(conn: &ConnectionManager) -> Result<Vec<u16>, redis::RedisError> {
    let mut conn = conn.clone();
    let ids: Vec<String> = redis::cmd("SMEMBERS").arg(keys::NODES).query_async(&mut conn).await?;
    let ids: Vec<u16> = ids.iter().filter_map(|i| i.parse().ok()).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One round trip for every node, as live_nodes does.
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.exists(keys::node(*id));
    }
    let alive: Vec<bool> = pipe.query_async(&mut conn).await?;
    Ok(ids.into_iter().zip(alive).filter(|(_, alive)| !alive).map(|(id, _)| id).collect())
}

/// A node record from its key and hash; None if anything is missing or malformed.
pub fn parse_record(key: &str, fields: &HashMap<String, String>) -> Option<NodeRecord> {
    let node_id: u16 = key.strip_prefix(keys::NODE_PREFIX)?.parse().ok().filter(|id| *id <= MAX_NODE_ID)?;
    let text = |k: &str| fields.get(k).filter(|v| v.len() <= 2048).cloned();
    let number = |k: &str| fields.get(k)?.parse::<i64>().ok();
    let state = text("state").filter(|s| s == "serving" || s == "draining")?;
    // A record without a role comes from a node that serves everything.
    let role = match fields.get("role") {
        None => "all".to_string(),
        Some(r) => Some(r.clone()).filter(|r| matches!(r.as_str(), "all" | "chat" | "sfu"))?,
    };
    Some(NodeRecord {
        node_id,
        url: text("url")?,
        voice_endpoint: text("voice_endpoint")?,
        state,
        role,
        version: text("version")?,
        started_at_ms: number("started_at_ms")?,
        connections: number("connections")?,
        rooms: number("rooms")?,
        participants: number("participants")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn good() -> HashMap<String, String> {
        fields(&[
            ("url", "http://10.0.0.1:8080"),
            ("voice_endpoint", "ws://10.0.0.1:8080/voice"),
            ("state", "serving"),
            ("version", "0.1.0"),
            ("started_at_ms", "1"),
            ("connections", "3"),
            ("rooms", "1"),
            ("participants", "2"),
        ])
    }

    #[test]
    fn a_node_record_parses() {
        let r = parse_record("chorus:node:7", &good()).expect("valid");
        assert_eq!((r.node_id, r.connections, r.state.as_str()), (7, 3, "serving"));
        assert_eq!(r.role, "all", "a record without a role is a node that serves everything");
        let mut f = good();
        f.insert("role".into(), "sfu".into());
        assert_eq!(parse_record("chorus:node:7", &f).expect("valid").role, "sfu");
    }

    #[test]
    fn a_garbage_node_record_is_refused() {
        assert!(parse_record("chorus:node:x", &good()).is_none(), "bad id");
        assert!(parse_record("chorus:node:5000", &good()).is_none(), "id out of range");
        let mut f = good();
        f.insert("connections".into(), "lots".into());
        assert!(parse_record("chorus:node:1", &f).is_none(), "bad number");
        let mut f = good();
        f.insert("state".into(), "exploded".into());
        assert!(parse_record("chorus:node:1", &f).is_none(), "unknown state");
        let mut f = good();
        f.insert("role".into(), "everything".into());
        assert!(parse_record("chorus:node:1", &f).is_none(), "unknown role");
        assert!(parse_record("chorus:node:1", &fields(&[("url", "x")])).is_none(), "missing fields");
    }
}
