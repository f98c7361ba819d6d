//! Voice states across nodes on Redis. Per guild a hash `user → <node>|<state JSON>` holds who sits
//! in its voice channels and which node holds each call; per node a hash `user → guild` says what
//! to sweep when that node dies. READY and GUILD_CREATE on any node read the guild's hash, keeping
//! only entries whose node is alive. A node removes only entries it wrote, so a user whose call
//! moved to another node is never removed by the node they left.

use std::sync::Arc;

use async_trait::async_trait;
use chat::bus::BusError;
use chat::service::voice::VoiceDirectory;
use chat::voice::VoiceState;
use chat::{Chat, Id};
use redis::aio::ConnectionManager;

use super::keys;

// KEYS[1]: the guild the user was in (here), KEYS[2]: the guild now, KEYS[3]: this node's calls;
// ARGV[1]: user, ARGV[2]: this node, ARGV[3]: `<node>|<state>` or '' for a leave, ARGV[4]: guild now.
// Returns 0 when the user's previous entry is another node's (their call moved there: this node's
// "left" is old news), else 1.
const RECORD: &str = r"
local function owner(key)
  local v = redis.call('HGET', key, ARGV[1])
  if not v then return nil end
  return string.sub(v, 1, (string.find(v, '|', 1, true) or 1) - 1)
end
local was = owner(KEYS[1])
local moved = was ~= nil and was ~= ARGV[2]
if (ARGV[3] == '' or KEYS[1] ~= KEYS[2]) and was == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if ARGV[3] == '' then
  if owner(KEYS[2]) == ARGV[2] then redis.call('HDEL', KEYS[2], ARGV[1]) end
  redis.call('HDEL', KEYS[3], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
end
if moved and ARGV[3] == '' then return 0 end
return 1
";

// KEYS[1]: the guild's voice states. The states held by live nodes.
const IN_GUILD: &str = r"
local out = {}
local f = redis.call('HGETALL', KEYS[1])
for i = 1, #f, 2 do
  local v = f[i + 1]
  local sep = string.find(v, '|', 1, true)
  if sep and redis.call('EXISTS', @node@ .. string.sub(v, 1, sep - 1)) == 1 then
    out[#out + 1] = string.sub(v, sep + 1)
  end
end
return out
";

// KEYS[1]: a guild's voice states; ARGV[1]: user, ARGV[2]: the dead node. Removes the entry if
// that node wrote it and returns its state, else nothing (the user's call is elsewhere now).
const DROP: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return string.sub(v, #ARGV[2] + 2)
end
return false
";

// KEYS[1]: this node's calls; ARGV[1]: this node, then per call: its guild's key, user, value, guild.
const REFRESH: &str = r"
for i = 2, #ARGV, 4 do
  local key, user = ARGV[i], ARGV[i + 1]
  local v = redis.call('HGET', key, user)
  if not v or string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
    redis.call('HSET', key, user, ARGV[i + 2])
    redis.call('HSET', KEYS[1], user, ARGV[i + 3])
  end
end
return 1
";

pub struct RedisVoice {
    conn: ConnectionManager,
    node_id: u16,
    record: redis::Script,
    in_guild: redis::Script,
}

impl RedisVoice {
    pub fn new(conn: ConnectionManager, node_id: u16) -> Arc<Self> {
        Arc::new(RedisVoice { conn, node_id, record: keys::script(RECORD), in_guild: keys::script(IN_GUILD) })
    }
}

fn unavailable(e: redis::RedisError) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// A stored state, or None for an entry no node of this version writes.
fn parse_state(json: &str) -> Option<VoiceState> {
    serde_json::from_str::<VoiceState>(json).ok().filter(|s| s.channel_id.is_some() && s.guild_id.is_some())
}

#[async_trait]
impl VoiceDirectory for RedisVoice {
    async fn record(&self, before: Option<&VoiceState>, after: &VoiceState) -> Result<bool, BusError> {
        let Some(guild) = after.guild_id.or(before.and_then(|b| b.guild_id)) else { return Ok(true) };
        let was_in = before.and_then(|b| b.guild_id).unwrap_or(guild);
        let value = match after.channel_id {
            Some(_) => {
                let json = serde_json::to_string(after).map_err(|e| BusError::Unavailable(e.to_string()))?;
                format!("{}|{json}", self.node_id)
            }
            None => String::new(),
        };
        let current: i64 = self
            .record
            .key(keys::guild_voice(was_in.get()))
            .key(keys::guild_voice(guild.get()))
            .key(keys::node_voice(self.node_id))
            .arg(after.user_id.get())
            .arg(self.node_id)
            .arg(value)
            .arg(guild.get())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(current == 1)
    }

    async fn refresh(&self, states: &[VoiceState]) -> Result<(), BusError> {
        refresh(&self.conn, self.node_id, states).await.map_err(unavailable)
    }

    async fn in_guild(&self, guild_id: Id) -> Result<Vec<VoiceState>, BusError> {
        let entries: Vec<String> = self
            .in_guild
            .key(keys::guild_voice(guild_id.get()))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let mut states: Vec<VoiceState> = entries
            .iter()
            .filter_map(|json| {
                let state = parse_state(json).filter(|s| s.guild_id == Some(guild_id));
                if state.is_none() {
                    tracing::debug!("cluster: skipping a malformed voice state in guild {guild_id}");
                }
                state
            })
            .collect();
        states.sort_by_key(|s| s.user_id);
        Ok(states)
    }
}

/// Removes the calls a node held and tells each guild that those users left. For a dead node, and
/// for this node at start (a restarted node's calls ended with its process).
pub async fn forget_node(conn: &ConnectionManager, node: u16, chat: &Chat) -> redis::RedisResult<()> {
    let mut conn = conn.clone();
    let calls: Vec<(u64, u64)> = redis::cmd("HGETALL").arg(keys::node_voice(node)).query_async(&mut conn).await?;
    let drop = redis::Script::new(DROP);
    for (user, guild) in &calls {
        let state: Option<String> =
            drop.key(keys::guild_voice(*guild)).arg(user).arg(node).invoke_async(&mut conn).await?;
        if let Some(state) = state.as_deref().and_then(parse_state) {
            chat.voice_call_lost(state);
        }
        // Only the fields read: a call the node recorded meanwhile (it is alive after all) stays.
        redis::cmd("HDEL").arg(keys::node_voice(node)).arg(user).query_async::<()>(&mut conn).await?;
    }
    Ok(())
}

/// Writes this node's calls again: a write Redis missed, or entries the sweeper removed while this
/// node's record had lapsed (a long Redis stall), come back. An entry another node holds (the user's
/// call moved there while this node keeps the old session for resume) is left alone.
async fn refresh(conn: &ConnectionManager, node: u16, states: &[VoiceState]) -> redis::RedisResult<()> {
    let script = redis::Script::new(REFRESH);
    let mut call = script.key(keys::node_voice(node));
    call.arg(node);
    let mut any = false;
    for s in states {
        let (Some(guild), Some(_)) = (s.guild_id, s.channel_id) else { continue };
        let Ok(json) = serde_json::to_string(s) else { continue };
        call.arg(keys::guild_voice(guild.get())).arg(s.user_id.get()).arg(format!("{node}|{json}")).arg(guild.get());
        any = true;
    }
    if !any {
        return Ok(());
    }
    call.invoke_async::<i64>(&mut conn.clone()).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_state_in_a_channel_of_a_guild_is_read_back() {
        let state = VoiceState {
            guild_id: Some(Id::from_raw(1)),
            channel_id: Some(Id::from_raw(2)),
            user_id: Id::from_raw(3),
            self_mute: true,
            self_deaf: false,
            server_mute: false,
            server_deaf: false,
        };
        let json = serde_json::to_string(&state).expect("json");
        assert_eq!(parse_state(&json), Some(state.clone()));
        let left = serde_json::to_string(&VoiceState { channel_id: None, ..state }).expect("json");
        assert_eq!(parse_state(&left), None, "a leave is never stored");
        assert_eq!(parse_state("{\"user_id\":"), None, "garbage is skipped");
    }
}
