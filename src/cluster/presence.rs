//! Presence across nodes on Redis. Per user a hash `node → rank` holds each node's view (the
//! "most present" of the user's sessions there); the user's status is the highest rank among
//! nodes that are alive (whose record exists). Per guild a hash `user → rank` lists who is online
//! for READY. When a node dies its record expires: one node at a time (a lease) sweeps the dead
//! node's users, and a user whose status fell is announced as any change is.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat::bus::BusError;
use chat::gateway::protocol::Status;
use chat::service::presence::PresenceDirectory;
use chat::{Chat, Id};
use redis::aio::ConnectionManager;

use super::keys;

fn rank(status: &Status) -> u8 {
    match status {
        Status::Offline => 0,
        Status::Idle => 1,
        Status::Dnd => 2,
        Status::Online => 3,
    }
}

fn status(rank: u8) -> Status {
    match rank {
        3 => Status::Online,
        2 => Status::Dnd,
        1 => Status::Idle,
        _ => Status::Offline,
    }
}

// The highest rank among live nodes' fields.
const AGGREGATE: &str = r"
local function agg(key)
  local best = 0
  local f = redis.call('HGETALL', key)
  for i = 1, #f, 2 do
    if redis.call('EXISTS', @node@ .. f[i]) == 1 then
      local r = tonumber(f[i + 1]) or 0
      if r > best then best = r end
    end
  end
  return best
end
";

// KEYS[1]: the user's presence, KEYS[2]: the node's users; ARGV: node, rank, user.
const SET_LOCAL: &str = r"
local before = agg(KEYS[1])
if ARGV[2] == '0' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
end
return {before, agg(KEYS[1])}
";

// KEYS[1]: the user's presence; ARGV[1]: the dead node. Before counts the dead node's view (what
// was last announced), after does not.
const SWEEP: &str = r"
local dead = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
local before = agg(KEYS[1])
if dead > before then before = dead end
redis.call('HDEL', KEYS[1], ARGV[1])
return {before, agg(KEYS[1])}
";

/// How long the sweeper's lease lasts; renewed at every heartbeat by its holder.
const LEASE: Duration = Duration::from_secs(6);

pub struct RedisPresence {
    conn: ConnectionManager,
    node_id: u16,
    set_local: redis::Script,
    status: redis::Script,
}

impl RedisPresence {
    pub fn new(conn: ConnectionManager, node_id: u16) -> Arc<Self> {
        Arc::new(RedisPresence {
            conn,
            node_id,
            set_local: keys::script(&format!("{AGGREGATE}{SET_LOCAL}")),
            status: keys::script(&format!("{AGGREGATE}return agg(KEYS[1])")),
        })
    }
}

fn unavailable(e: redis::RedisError) -> BusError {
    BusError::Unavailable(e.to_string())
}

#[async_trait]
impl PresenceDirectory for RedisPresence {
    async fn set_local(&self, user_id: Id, status: &Status) -> Result<(Status, Status), BusError> {
        let mut conn = self.conn.clone();
        let (before, after): (u8, u8) = self
            .set_local
            .key(keys::presence(user_id.get()))
            .key(keys::node_users(self.node_id))
            .arg(self.node_id)
            .arg(rank(status))
            .arg(user_id.get())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok((self::status(before), self::status(after)))
    }

    async fn set_in_guilds(&self, user_id: Id, guilds: &[Id], status: &Status) -> Result<(), BusError> {
        let mut pipe = redis::pipe();
        for g in guilds {
            let key = keys::guild_presence(g.get());
            match status {
                Status::Offline => pipe.hdel(key, user_id.get()).ignore(),
                s => pipe.hset(key, user_id.get(), rank(s)).ignore(),
            };
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await.map_err(unavailable)
    }

    async fn status(&self, user_id: Id) -> Result<Status, BusError> {
        let rank: u8 = self
            .status
            .key(keys::presence(user_id.get()))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(self::status(rank))
    }

    async fn online_in_guild(&self, guild_id: Id) -> Result<Vec<(Id, Status)>, BusError> {
        let all: Vec<(u64, u8)> = redis::cmd("HGETALL")
            .arg(keys::guild_presence(guild_id.get()))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let mut online: Vec<(Id, Status)> =
            all.into_iter().filter(|(_, r)| *r > 0).map(|(u, r)| (Id::from_raw(u), status(r))).collect();
        online.sort_by_key(|(u, _)| *u);
        Ok(online)
    }
}

/// One pass of the sweeper, if this node holds the lease: the users of every dead node lose that
/// node's view, and those whose status changed are announced; the node's voice calls are announced
/// as left.
pub async fn sweep_dead_nodes(conn: &ConnectionManager, token: &str, chat: &Chat) -> redis::RedisResult<()> {
    let mut conn = conn.clone();
    let held: Option<String> = redis::cmd("SET")
        .arg(keys::SWEEPER)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(LEASE.as_millis() as u64)
        .query_async(&mut conn)
        .await?;
    if held.is_none() {
        let holder: Option<String> = redis::cmd("GET").arg(keys::SWEEPER).query_async(&mut conn).await?;
        if holder.as_deref() != Some(token) {
            return Ok(());
        }
        let _: () =
            redis::cmd("PEXPIRE").arg(keys::SWEEPER).arg(LEASE.as_millis() as u64).query_async(&mut conn).await?;
    }
    for node in super::nodes::dead_nodes(&conn).await? {
        forget_node(&conn, node, chat).await?;
        super::voice::forget_node(&conn, node, chat).await?;
        let _: () = redis::cmd("SREM").arg(keys::NODES).arg(node).query_async(&mut conn).await?;
    }
    Ok(())
}

/// Drops a node's view of every user it held one of, announcing those whose status changed. For a
/// dead node, and for this node at start (a restarted node's earlier sessions are gone).
pub async fn forget_node(conn: &ConnectionManager, node: u16, chat: &Chat) -> redis::RedisResult<()> {
    let mut conn = conn.clone();
    let sweep = keys::script(&format!("{AGGREGATE}{SWEEP}"));
    loop {
        let users: Vec<u64> = redis::cmd("SPOP").arg(keys::node_users(node)).arg(100).query_async(&mut conn).await?;
        if users.is_empty() {
            return Ok(());
        }
        for user in users {
            let (before, after): (u8, u8) = sweep.key(keys::presence(user)).arg(node).invoke_async(&mut conn).await?;
            if before != after {
                chat.announce_presence(Id::from_raw(user), status(after)).await;
            }
        }
    }
}

/// Sweeps every heartbeat while the process lives.
pub fn spawn_sweeper(conn: ConnectionManager, token: String, chat: std::sync::Weak<Chat>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(super::nodes::HEARTBEAT);
        loop {
            tick.tick().await;
            let Some(chat) = chat.upgrade() else { return };
            if let Err(e) = sweep_dead_nodes(&conn, &token, &chat).await {
                tracing::debug!("cluster: presence sweep failed: {e}");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_round_trip_and_order_by_presence() {
        for s in [Status::Offline, Status::Idle, Status::Dnd, Status::Online] {
            assert_eq!(status(rank(&s)), s);
        }
        assert!(rank(&Status::Online) > rank(&Status::Dnd) && rank(&Status::Idle) > rank(&Status::Offline));
        assert_eq!(status(200), Status::Offline, "garbage reads as offline");
    }
}
