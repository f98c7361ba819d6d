//! Where a voice channel's room lives: on exactly one node, chosen by one Lua script that any
//! node runs when it grants voice (no lock, no double placement). A live owner keeps its room —
//! draining or not; otherwise the least-loaded serving node that runs an SFU (not `--role chat`)
//! gets it and the room's epoch goes up.
//! The grant then carries the owner's `/voice` endpoint and a token only the owner accepts, so
//! media goes straight to the owner and no signaling is relayed between nodes.
//!
//! Load is the number of rooms placed on a node (its `rooms_of` set), which placement itself keeps
//! current; a heartbeat's figures would be seconds old when many rooms start at once. The owner
//! releases a room with nobody in it once its last grant is [`RELEASE_AFTER`] old — longer than a
//! voice token lives, so no valid token can still lead to the old owner once the room moves.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::keys;

/// A placed room with nobody in it is released this long after its last grant (more than the
/// longest voice token lifetime, 60 s by default).
pub const RELEASE_AFTER: Duration = Duration::from_secs(90);

// KEYS[1]: the room; ARGV[1]: its channel id; ARGV[2..]: ids of the nodes that have a record.
const PLACE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owner = redis.call('HGET', KEYS[1], 'node')
if owner then
  local o = @node@ .. owner
  if redis.call('HGET', o, 'state') and redis.call('HGET', o, 'role') ~= 'chat' then
    redis.call('HSET', KEYS[1], 'granted_at', now)
    return {tonumber(owner), tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')}
  end
  redis.call('SREM', @rooms_of@ .. owner, ARGV[1])
end
local best, best_load = nil, nil
for i = 2, #ARGV do
  local id = ARGV[i]
  local node = @node@ .. id
  if redis.call('HGET', node, 'state') == 'serving' and redis.call('HGET', node, 'role') ~= 'chat' then
    local load = redis.call('SCARD', @rooms_of@ .. id)
    if not best or load < best_load or (load == best_load and tonumber(id) < tonumber(best)) then
      best, best_load = id, load
    end
  end
end
if not best then return false end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'node', best, 'granted_at', now)
redis.call('SADD', @rooms_of@ .. best, ARGV[1])
return {tonumber(best), epoch}
";

// KEYS[1]: the room, KEYS[2]: the node's rooms; ARGV[1]: the node, ARGV[2]: channel, ARGV[3]: how
// long after its last grant (ms) an empty room may go.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then
  redis.call('SREM', KEYS[2], ARGV[2])
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now - tonumber(redis.call('HGET', KEYS[1], 'granted_at') or '0') < tonumber(ARGV[3]) then return 0 end
redis.call('HDEL', KEYS[1], 'node', 'granted_at')
redis.call('SREM', KEYS[2], ARGV[2])
return 1
";

// KEYS[1]: the room, KEYS[2]: this node's rooms; ARGV[1]: this node, ARGV[2]: channel. A room that
// has people here but no owner in Redis (Redis lost its data) is claimed back; returns the owner.
const CLAIM: &str = r"
local owner = redis.call('HGET', KEYS[1], 'node')
if owner then return tonumber(owner) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'granted_at', now)
redis.call('SADD', KEYS[2], ARGV[2])
return tonumber(ARGV[1])
";

/// Where a room was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node_id: u16,
    pub epoch: u64,
    pub voice_endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("no node of the cluster is serving voice")]
    NoNode,
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The room of `channel_id`: its live owner, or a newly chosen one.
pub async fn place(conn: &ConnectionManager, channel_id: u64) -> Result<Placement, PlaceError> {
    let nodes = super::nodes::live_nodes(conn).await?;
    let mut conn = conn.clone();
    let script = keys::script(PLACE);
    let mut call = script.key(keys::room(channel_id));
    call.arg(channel_id);
    for n in &nodes {
        call.arg(n.node_id);
    }
    let placed: Option<(u16, u64)> = call.invoke_async(&mut conn).await?;
    let (node_id, epoch) = placed.ok_or(PlaceError::NoNode)?;
    // The owner's endpoint from the records just read, or fresh (an owner that joined since).
    let endpoint = match nodes.iter().find(|n| n.node_id == node_id) {
        Some(n) => Some(n.voice_endpoint.clone()),
        None => redis::cmd("HGET").arg(keys::node(node_id)).arg("voice_endpoint").query_async(&mut conn).await?,
    };
    Ok(Placement { node_id, epoch, voice_endpoint: endpoint.ok_or(PlaceError::NoNode)? })
}

/// Checks who owns each room with people on this node, claiming back any that Redis has no owner
/// for (it lost its data); returns those another node owns — placed there while this node was taken
/// for dead (stalled longer than its record lives). Their calls must end here so that nobody stays
/// in a split call.
pub async fn claim_or_lost(conn: &ConnectionManager, node_id: u16, active: &[u64]) -> redis::RedisResult<Vec<u64>> {
    let mut conn = conn.clone();
    let script = keys::script(CLAIM);
    let mut lost = Vec::new();
    for &channel in active {
        let owner: u16 = script
            .key(keys::room(channel))
            .key(keys::rooms_of(node_id))
            .arg(node_id)
            .arg(channel)
            .invoke_async(&mut conn)
            .await?;
        if owner != node_id {
            lost.push(channel);
        }
    }
    Ok(lost)
}

/// Releases this node's placed rooms that nobody is in (`active`: the channels with participants here).
pub async fn release_idle(conn: &ConnectionManager, node_id: u16, active: &[u64]) -> redis::RedisResult<usize> {
    let mut conn = conn.clone();
    let placed: Vec<u64> = redis::cmd("SMEMBERS").arg(keys::rooms_of(node_id)).query_async(&mut conn).await?;
    let script = keys::script(RELEASE);
    let mut released = 0;
    for channel in placed.into_iter().filter(|c| !active.contains(c)) {
        let done: i64 = script
            .key(keys::room(channel))
            .key(keys::rooms_of(node_id))
            .arg(node_id)
            .arg(channel)
            .arg(RELEASE_AFTER.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        released += done as usize;
    }
    Ok(released)
}
