//! Every Redis key the cluster uses, in one place (all under `chorus:`).

/// The event stream (entry ids `0-<position>`).
pub const EVENTS: &str = "chorus:events";
/// The last position handed out on the stream.
pub const EVENTS_POSITION: &str = "chorus:events:position";
/// A random value set once per Redis data set: when it changes, Redis lost its data and every
/// stream position from before means nothing.
pub const EPOCH: &str = "chorus:epoch";

/// A gateway session that any node may resume: its user id.
pub fn session(id: &str) -> String {
    format!("chorus:session:{id}")
}

/// A live node's record (a hash that expires unless refreshed).
pub fn node(node_id: u16) -> String {
    format!("{NODE_PREFIX}{node_id}")
}

/// What [`node`] puts before the id (Lua scripts build node keys from it).
pub const NODE_PREFIX: &str = "chorus:node:";

/// Every node id that registered (alive or not): what lists nodes and what the sweeper walks,
/// instead of a SCAN over the whole keyspace.
pub const NODES: &str = "chorus:nodes";

/// The claim on a snowflake node id (the claiming process's token).
pub fn node_id_claim(node_id: u16) -> String {
    format!("chorus:nodeid:{node_id}")
}

/// Where a voice channel's room lives: `node`, `epoch`, `granted_at` (ms, Redis's clock).
pub fn room(channel_id: u64) -> String {
    format!("chorus:room:{channel_id}")
}

/// The channels whose rooms are placed on a node (its load for placement).
pub fn rooms_of(node_id: u16) -> String {
    format!("{ROOMS_OF_PREFIX}{node_id}")
}

/// What [`rooms_of`] puts before the id.
pub const ROOMS_OF_PREFIX: &str = "chorus:rooms_of:";

/// A Lua script whose node and room-set keys are spelt `@node@ .. id` and `@rooms_of@ .. id`: the
/// prefixes come from here, so this file stays the one place that names keys.
pub fn script(lua: &str) -> redis::Script {
    redis::Script::new(
        &lua.replace("@node@", &format!("'{NODE_PREFIX}'")).replace("@rooms_of@", &format!("'{ROOMS_OF_PREFIX}'")),
    )
}

/// Each node's view of a user's presence: node id → rank (0 offline … 3 online).
pub fn presence(user_id: u64) -> String {
    format!("chorus:presence:{user_id}")
}

/// The users a node holds a presence view of (what to sweep when it dies).
pub fn node_users(node_id: u16) -> String {
    format!("chorus:node_users:{node_id}")
}

/// Who is online in a guild: user id → rank.
pub fn guild_presence(guild_id: u64) -> String {
    format!("chorus:guild_presence:{guild_id}")
}

/// Who sits in a guild's voice channels: user id → `<node>|<voice state JSON>` (the node holding
/// the call).
pub fn guild_voice(guild_id: u64) -> String {
    format!("chorus:guild_voice:{guild_id}")
}

/// The calls a node holds: user id → guild id (what to sweep when it dies).
pub fn node_voice(node_id: u16) -> String {
    format!("chorus:node_voice:{node_id}")
}

/// The lease of the node that sweeps dead nodes' presence.
pub const SWEEPER: &str = "chorus:sweeper";

/// The last batch a publisher (one process) appended to the stream, so a retry is not appended twice.
pub fn publisher(token: &str) -> String {
    format!("chorus:publisher:{token}")
}
