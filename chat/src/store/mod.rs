//! The storage boundary of the community plane: one async trait, two real backends.
//!
//! Both backends pass the same conformance suite (`tests/store_conformance.rs`). Every method that
//! returns `Ok` has made its write durable (SQLite: committed in WAL with `synchronous=FULL`;
//! MongoDB: acknowledged with journaled write concern). The trait speaks in domain types only; it
//! knows nothing of HTTP, permissions or the gateway.

mod metered;
pub(crate) mod mongo;
pub(crate) mod sqlite;
/// Online backup and restore of the SQLite store.
pub use sqlite::backup;

pub use metered::Metered;
pub use mongo::MongoStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;

use crate::id::Id;
use crate::model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (username taken, member already present, ...).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The backend failed or could not be reached.
    #[error("storage backend: {0}")]
    Backend(String),
    /// Stored data could not be decoded into the domain types.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What `insert_message` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The message is new and stored.
    Created,
    /// A message with the same (channel, author, nonce) exists already; here it is. Nothing was written.
    Existing(Box<Message>),
}

/// Opens the backend named by a store URI: `sqlite` (in `data_dir`), `sqlite:PATH`, or `mongodb://...`.
pub async fn open(uri: &str, data_dir: &std::path::Path) -> StoreResult<std::sync::Arc<dyn Store>> {
    if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") {
        mongo::open_dyn(uri).await
    } else if let Some(path) = sqlite_path(uri, data_dir) {
        sqlite::open_dyn(&path).await
    } else {
        Err(StoreError::Backend(format!("unknown store URI {uri:?}: use sqlite, sqlite:PATH or mongodb://...")))
    }
}

/// A MongoDB URI naming another database on the same servers, with the same options (tests and
/// benchmarks give each run a database of its own).
pub fn mongodb_uri_with_database(uri: &str, database: &str) -> String {
    let (base, options) = match uri.trim().split_once('?') {
        Some((b, o)) => (b, Some(o)),
        None => (uri.trim(), None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("mongodb", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    match options {
        Some(o) => format!("{scheme}://{authority}/{database}?{o}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// The database file of an SQLite store URI (`sqlite` is `DATA_DIR/chorus.db`); None for others.
pub fn sqlite_path(uri: &str, data_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    if uri == "sqlite" || uri.is_empty() {
        Some(data_dir.join("chorus.db"))
    } else {
        uri.strip_prefix("sqlite:").map(std::path::PathBuf::from)
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name for logs and metrics labels: "sqlite" or "mongodb".
    fn backend(&self) -> &'static str;
    /// Answers when the backend is reachable and usable.
    async fn ping(&self) -> StoreResult<()>;
    /// Makes everything acknowledged so far durable and releases resources for shutdown.
    async fn flush(&self) -> StoreResult<()>;

    // ---- users and sessions
    /// Conflict("username") when the username (case-insensitively) exists.
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    async fn user(&self, id: Id) -> StoreResult<Option<UserRecord>>;
    /// Case-insensitive lookup.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// The users that exist among `ids`, in any order.
    async fn users(&self, ids: &[Id]) -> StoreResult<Vec<User>>;
    /// The earliest registered user (the smallest id): the instance's first admin.
    async fn first_user(&self) -> StoreResult<Option<User>>;
    /// Each setter writes one thing, so concurrent changes of different things (a profile edit and an
    /// operator's disable) cannot undo each other.
    async fn set_display_name(&self, id: Id, display_name: Option<&str>) -> StoreResult<()>;
    async fn set_password_hash(&self, id: Id, password_hash: &str) -> StoreResult<()>;
    async fn set_user_flags(&self, id: Id, admin: bool, disabled: bool) -> StoreResult<()>;
    /// Conflict("username") when another user has it (case-insensitively).
    async fn set_username(&self, id: Id, username: &str) -> StoreResult<()>;
    /// Turns two-factor authentication on (a secret and the recovery codes' hashes) or off (None, none).
    async fn set_totp(&self, id: Id, secret: Option<&str>, recovery_codes: &[String]) -> StoreResult<()>;
    /// Takes a TOTP code of time step `step`: true when no code of this or a later step was taken
    /// before (the step is then kept), false for a replay. Atomic: two logins racing with one code
    /// cannot both pass.
    async fn use_totp_step(&self, id: Id, step: u64) -> StoreResult<bool>;
    /// Spends one recovery code (by its hash); false when the user has no such unused code.
    async fn use_recovery_code(&self, id: Id, code_hash: &str) -> StoreResult<bool>;
    /// Removes the account, its sessions, quota and read states. Messages stay (shown as a deleted
    /// user); memberships must be removed first (each is an announced event).
    async fn delete_user(&self, id: Id) -> StoreResult<()>;
    /// Users ordered by id, with id > `after`, at most `limit` (the operator's list).
    async fn list_users(&self, after: Id, limit: u32) -> StoreResult<Vec<UserRecord>>;
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>>;
    async fn sessions_of(&self, user_id: Id) -> StoreResult<Vec<Session>>;
    /// Returns whether a session of that user with that id existed.
    async fn delete_session(&self, user_id: Id, session_id: Id) -> StoreResult<bool>;
    /// Revokes every session of a user; returns how many there were.
    async fn delete_sessions_of(&self, user_id: Id) -> StoreResult<u64>;

    // ---- guilds
    async fn insert_guild(&self, guild: &Guild) -> StoreResult<()>;
    async fn guild(&self, id: Id) -> StoreResult<Option<Guild>>;
    async fn update_guild(&self, guild: &Guild) -> StoreResult<()>;
    /// Removes the guild and everything in it: channels, roles, members, bans, invites, messages,
    /// audit log. The bytes of the messages' files go back to their uploaders' upload usage.
    async fn delete_guild(&self, id: Id) -> StoreResult<()>;
    /// Guilds ordered by id, with id > `after`, at most `limit` (the operator's list).
    async fn list_guilds(&self, after: Id, limit: u32) -> StoreResult<Vec<Guild>>;

    // ---- channels (guild channels and DM channels)
    /// Inserts or replaces by id.
    async fn put_channel(&self, channel: &Channel) -> StoreResult<()>;
    async fn channel(&self, id: Id) -> StoreResult<Option<Channel>>;
    /// All channels of a guild, ordered by (position, id).
    async fn guild_channels(&self, guild_id: Id) -> StoreResult<Vec<Channel>>;
    /// Removes the channel and its messages; children of a category lose their parent. The bytes of
    /// the messages' files go back to their uploaders' upload usage.
    async fn delete_channel(&self, id: Id) -> StoreResult<()>;
    /// The DM channel between two users, whichever order they are given in.
    async fn dm_channel(&self, a: Id, b: Id) -> StoreResult<Option<Channel>>;
    /// All DM channels a user is a recipient of.
    async fn dm_channels_of(&self, user_id: Id) -> StoreResult<Vec<Channel>>;

    // ---- roles
    async fn put_role(&self, role: &Role) -> StoreResult<()>;
    /// All roles of a guild, @everyone included, ordered by (position, id).
    async fn guild_roles(&self, guild_id: Id) -> StoreResult<Vec<Role>>;
    /// Removes the role and takes it from every member and every channel overwrite of the guild.
    async fn delete_role(&self, guild_id: Id, role_id: Id) -> StoreResult<()>;

    // ---- members and bans
    /// Conflict("member") if already a member.
    async fn insert_member(&self, member: &Member) -> StoreResult<()>;
    async fn member(&self, guild_id: Id, user_id: Id) -> StoreResult<Option<Member>>;
    /// Members ordered by user id, with user id > `after`, at most `limit`.
    async fn members(&self, guild_id: Id, after: Id, limit: u32) -> StoreResult<Vec<Member>>;
    async fn update_member(&self, member: &Member) -> StoreResult<()>;
    /// Returns whether the member existed.
    async fn delete_member(&self, guild_id: Id, user_id: Id) -> StoreResult<bool>;
    async fn member_count(&self, guild_id: Id) -> StoreResult<u64>;
    /// Ids of the guilds a user is a member of.
    async fn guilds_of(&self, user_id: Id) -> StoreResult<Vec<Id>>;
    async fn put_ban(&self, ban: &Ban) -> StoreResult<()>;
    async fn ban(&self, guild_id: Id, user_id: Id) -> StoreResult<Option<Ban>>;
    async fn bans(&self, guild_id: Id) -> StoreResult<Vec<Ban>>;
    async fn delete_ban(&self, guild_id: Id, user_id: Id) -> StoreResult<bool>;

    // ---- invites
    /// Conflict("invite") when the code exists.
    async fn insert_invite(&self, invite: &Invite) -> StoreResult<()>;
    async fn invite(&self, code: &str) -> StoreResult<Option<Invite>>;
    async fn guild_invites(&self, guild_id: Id) -> StoreResult<Vec<Invite>>;
    async fn delete_invite(&self, code: &str) -> StoreResult<bool>;
    /// Atomically counts one use if the invite exists, has not expired at `now` and has uses left;
    /// returns the updated invite, or None if it could not be used.
    async fn use_invite(&self, code: &str, now: Timestamp) -> StoreResult<Option<Invite>>;
    /// Conflict("instance_invite") when the code exists.
    async fn insert_instance_invite(&self, invite: &InstanceInvite) -> StoreResult<()>;
    /// Like [`Store::use_invite`], for the instance-level invites registration asks for.
    async fn use_instance_invite(&self, code: &str, now: Timestamp) -> StoreResult<Option<InstanceInvite>>;

    // ---- messages
    /// Stores a message and advances the channel's `last_message_id`. With a nonce, a second insert
    /// with the same (channel, author, nonce) writes nothing and returns the first message.
    async fn insert_message(&self, message: &Message) -> StoreResult<Inserted>;
    async fn message(&self, channel_id: Id, id: Id) -> StoreResult<Option<Message>>;
    /// The message an author sent with this nonce in the channel, if any (a retried send).
    async fn message_by_nonce(&self, channel_id: Id, author_id: Id, nonce: &str) -> StoreResult<Option<Message>>;
    /// Replaces content, edited_at, mentions and pinned of an existing message.
    async fn update_message(&self, message: &Message) -> StoreResult<()>;
    /// Replaces the link previews of a message (nothing else of it) if its content is still
    /// `content` (previews of an edited-away link are not attached); false otherwise or when gone.
    async fn set_embeds(
        &self,
        channel_id: Id,
        id: Id,
        content: &str,
        embeds: &[crate::previews::Embed],
    ) -> StoreResult<bool>;
    /// Removes the message and its reactions; returns whether it existed.
    async fn delete_message(&self, channel_id: Id, id: Id) -> StoreResult<bool>;
    /// A page of history through the (channel_id, id) index; see [`HistoryAnchor`] for order.
    async fn messages(&self, channel_id: Id, anchor: HistoryAnchor, limit: u32) -> StoreResult<Vec<Message>>;
    /// Pinned messages of a channel, newest first.
    async fn pinned_messages(&self, channel_id: Id) -> StoreResult<Vec<Message>>;
    /// Messages with id > `after` in the channel, counted up to `cap`.
    async fn count_messages_after(&self, channel_id: Id, after: Id, cap: u32) -> StoreResult<u32>;
    /// Messages with id > `after` in the channel that mention the user, one of the roles, or everyone;
    /// counted up to `cap`.
    async fn count_mentions_after(
        &self,
        channel_id: Id,
        after: Id,
        user_id: Id,
        role_ids: &[Id],
        cap: u32,
    ) -> StoreResult<u32>;
    /// Full-text search over the given channels, newest first, at most `limit`.
    async fn search_messages(&self, channel_ids: &[Id], query: &str, limit: u32) -> StoreResult<Vec<Message>>;

    // ---- reactions
    /// Returns false if that user had already reacted with that emoji.
    async fn add_reaction(&self, message_id: Id, emoji: &str, user_id: Id) -> StoreResult<bool>;
    /// Returns false if there was no such reaction.
    async fn remove_reaction(&self, message_id: Id, emoji: &str, user_id: Id) -> StoreResult<bool>;
    /// Reaction totals for the given messages as seen by `viewer`, ordered by (message, first reaction).
    async fn reactions(&self, message_ids: &[Id], viewer: Id) -> StoreResult<Vec<ReactionCount>>;

    // ---- read states
    /// Moves the read marker forward (never backwards).
    async fn ack(&self, user_id: Id, channel_id: Id, message_id: Id) -> StoreResult<()>;
    async fn read_states(&self, user_id: Id) -> StoreResult<Vec<ReadState>>;

    // ---- upload quota
    /// Adds `delta` (negative: files deleted) to the bytes a user has stored, never below 0; returns
    /// the new total.
    async fn add_upload_usage(&self, user_id: Id, delta: i64) -> StoreResult<u64>;
    async fn upload_usage(&self, user_id: Id) -> StoreResult<u64>;

    // ---- audit log
    /// Conflict("audit_entry") when the id exists. Entries go when their guild is deleted.
    async fn insert_audit_entry(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// A guild's entries newest first, as `query` selects (ids below `before`, one actor, one action).
    async fn audit_entries(&self, guild_id: Id, query: AuditQuery) -> StoreResult<Vec<AuditEntry>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mongodb_uri_gets_another_database_and_keeps_its_options() {
        assert_eq!(mongodb_uri_with_database("mongodb://h:1/a?replicaSet=rs0", "b"), "mongodb://h:1/b?replicaSet=rs0");
        assert_eq!(mongodb_uri_with_database("mongodb://h1,h2/", "b"), "mongodb://h1,h2/b");
        assert_eq!(mongodb_uri_with_database("mongodb://h", "b"), "mongodb://h/b");
    }
}
