//! The embedded SQLite backend — the default store of a single-node Chorus.
//!
//! This module owns the database file: its schema and versioned migrations ([`migrations`]), the
//! writer thread with group commit and the pool of read-only connections (`engine`), and the
//! mapping between rows and domain types (`rows`).
//!
//! Guarantees and conventions (the conformance suite checks the observable ones):
//! - `Ok` from a write means its group's COMMIT returned with WAL + `synchronous=FULL`: durable.
//! - Times are stored as unix milliseconds; sub-millisecond precision is dropped on write, so
//!   callers should pass millisecond-precision times if they compare what they read back.
//! - Conflict names: "username", "user", "session", "guild", "member", "invite", "message",
//!   "dm_channel" (a second DM channel for the same pair); a row whose guild, channel or message
//!   does not exist is refused with `Conflict("missing_parent")` (foreign keys).
//! - `put_channel` never moves `last_message_id` backwards: a channel edited from a stale read
//!   must not hide messages sent meanwhile.
//! - History and counts read only through the `messages_channel (channel_id, id)` index.

pub mod backup;
mod engine;
mod migrations;
mod rows;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use self::engine::Engine;
use self::rows::{all, conflict, count, db, exec, id_opt, ids_json, one, to_json, ts, ts_opt};
use super::{Inserted, Store, StoreError, StoreResult};
use crate::id::Id;
use crate::model::*;

use self::migrations::SCHEMA_VERSION;

/// The SQLite implementation of [`Store`]. Cheap to share behind an `Arc`; dropping the last
/// handle stops the writer thread after it has finished what was queued.
pub struct SqliteStore {
    engine: Engine,
    path: PathBuf,
}

pub(super) async fn open_dyn(path: &Path) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(SqliteStore::open(path).await?))
}

impl SqliteStore {
    /// The schema version (`PRAGMA user_version`) this build migrates database files to.
    pub const SCHEMA_VERSION: u32 = SCHEMA_VERSION;

    /// Opens or creates the database at `path` (and its directory), applying pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let owned = path.to_path_buf();
        let engine = tokio::task::spawn_blocking(move || Engine::open(&owned))
            .await
            .map_err(|e| StoreError::Backend(format!("opening sqlite store: {e}")))??;
        tracing::info!(path = %path.display(), schema = SCHEMA_VERSION, "sqlite store open");
        Ok(SqliteStore { engine, path: path.to_path_buf() })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The code (?1) exists, has not expired at ?2 and has uses left: guild and instance invites alike.
const USABLE_INVITE: &str =
    "code = ?1 AND (expires_at IS NULL OR expires_at > ?2) AND (max_uses IS NULL OR uses < max_uses)";

fn sql_limit(limit: u32) -> i64 {
    i64::from(limit)
}

fn permissions_bits(role: &Role) -> StoreResult<i64> {
    i64::try_from(role.permissions.bits())
        .map_err(|_| StoreError::Backend("permission bits do not fit a signed 64-bit integer".into()))
}

/// Turns user input into an FTS5 query: every word must occur (AND), each quoted so that FTS5
/// operators and syntax in the input are taken literally. Words are split at whitespace and at
/// control characters: FTS5 ends a quoted string at a NUL ("unterminated string"), and its
/// tokenizer separates words at control characters anyway, so splitting there changes no match.
pub fn fts_query(query: &str) -> Option<String> {
    let terms: Vec<String> = query
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|t| !t.is_empty())
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

// History queries; each names its index so that a page never turns into a scan of the channel.
const HISTORY_LATEST: &str = "SELECT m.id, m.channel_id, m.guild_id, m.author_id, m.content, m.created_at, \
     m.edited_at, m.reply_to, m.mentions, m.nonce, m.pinned, m.attachments, m.embeds FROM messages AS m INDEXED BY messages_channel \
     WHERE m.channel_id = ?1 ORDER BY m.id DESC LIMIT ?2";
const HISTORY_BEFORE: &str = "SELECT m.id, m.channel_id, m.guild_id, m.author_id, m.content, m.created_at, \
     m.edited_at, m.reply_to, m.mentions, m.nonce, m.pinned, m.attachments, m.embeds FROM messages AS m INDEXED BY messages_channel \
     WHERE m.channel_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3";
const HISTORY_AT_OR_BEFORE: &str = "SELECT m.id, m.channel_id, m.guild_id, m.author_id, m.content, \
     m.created_at, m.edited_at, m.reply_to, m.mentions, m.nonce, m.pinned, m.attachments, m.embeds FROM messages AS m \
     INDEXED BY messages_channel WHERE m.channel_id = ?1 AND m.id <= ?2 ORDER BY m.id DESC LIMIT ?3";
const HISTORY_AFTER: &str = "SELECT m.id, m.channel_id, m.guild_id, m.author_id, m.content, m.created_at, \
     m.edited_at, m.reply_to, m.mentions, m.nonce, m.pinned, m.attachments, m.embeds FROM messages AS m INDEXED BY messages_channel \
     WHERE m.channel_id = ?1 AND m.id > ?2 ORDER BY m.id ASC LIMIT ?3";
const COUNT_AFTER: &str = "SELECT count(*) FROM (SELECT 1 FROM messages INDEXED BY messages_channel \
     WHERE channel_id = ?1 AND id > ?2 LIMIT ?3)";
const COUNT_MENTIONS_AFTER: &str = "SELECT count(*) FROM (SELECT DISTINCT message_id FROM message_mentions \
     INDEXED BY message_mentions_channel WHERE channel_id = ?1 AND message_id > ?2 \
     AND (kind = 0 OR (kind = 1 AND target = ?3) OR (kind = 2 AND target IN (SELECT value FROM json_each(?4)))) \
     LIMIT ?5)";

fn insert_mentions(c: &Connection, m: &Message) -> StoreResult<()> {
    let mut stmt = c
        .prepare_cached(
            "INSERT OR IGNORE INTO message_mentions (message_id, channel_id, kind, target) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db)?;
    let (id, channel) = (m.id.as_i64(), m.channel_id.as_i64());
    if m.mentions.everyone {
        stmt.execute(params![id, channel, 0, 0]).map_err(db)?;
    }
    for user in &m.mentions.users {
        stmt.execute(params![id, channel, 1, user.as_i64()]).map_err(db)?;
    }
    for role in &m.mentions.roles {
        stmt.execute(params![id, channel, 2, role.as_i64()]).map_err(db)?;
    }
    Ok(())
}

/// The body of `insert_message`, run on the writer inside the job's savepoint.
fn insert_message_tx(c: &Connection, m: &Message) -> StoreResult<Inserted> {
    if let Some(nonce) = &m.nonce {
        // The writer is the only writer, so check-then-insert cannot race; the unique index backs it up.
        let sql = format!(
            "SELECT {} FROM messages AS m WHERE m.channel_id = ?1 AND m.author_id = ?2 AND m.nonce = ?3",
            rows::MESSAGE_COLS
        );
        if let Some(existing) =
            one(c, &sql, params![m.channel_id.as_i64(), m.author_id.as_i64(), nonce], rows::message)?
        {
            return Ok(Inserted::Existing(Box::new(existing)));
        }
    }
    exec(
        c,
        "INSERT INTO messages (id, channel_id, guild_id, author_id, content, created_at, edited_at, reply_to, \
         mentions, nonce, pinned, attachments, embeds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            m.id.as_i64(),
            m.channel_id.as_i64(),
            id_opt(m.guild_id),
            m.author_id.as_i64(),
            m.content,
            ts(&m.created_at),
            ts_opt(&m.edited_at),
            id_opt(m.reply_to),
            to_json(&m.mentions)?,
            m.nonce,
            m.pinned,
            to_json(&m.attachments)?,
            to_json(&m.embeds)?,
        ],
    )
    .map_err(|e| conflict(e, "message"))?;
    insert_mentions(c, m)?;
    exec(
        c,
        "UPDATE channels SET last_message_id = ?1 WHERE id = ?2 AND (last_message_id IS NULL OR last_message_id < ?1)",
        params![m.id.as_i64(), m.channel_id.as_i64()],
    )
    .map_err(db)?;
    Ok(Inserted::Created)
}

fn delete_role_tx(c: &Connection, guild_id: Id, role_id: Id) -> StoreResult<()> {
    let (guild, role) = (guild_id.as_i64(), role_id.as_i64());
    exec(c, "DELETE FROM roles WHERE guild_id = ?1 AND id = ?2", params![guild, role]).map_err(db)?;
    let holders = all(
        c,
        "SELECT user_id, roles FROM members WHERE guild_id = ?1 \
         AND EXISTS (SELECT 1 FROM json_each(members.roles) WHERE value = ?2)",
        params![guild, role],
        rows::id_and_text,
    )?;
    for (user_id, text) in holders {
        let mut roles = rows::ids_from_json(&text)?;
        roles.retain(|r| *r != role_id);
        exec(
            c,
            "UPDATE members SET roles = ?3 WHERE guild_id = ?1 AND user_id = ?2",
            params![guild, user_id.as_i64(), ids_json(&roles)],
        )
        .map_err(db)?;
    }
    let channels = all(c, "SELECT id, overwrites FROM channels WHERE guild_id = ?1", [guild], rows::id_and_text)?;
    for (channel_id, text) in channels {
        let mut overwrites = rows::overwrites_from_json(&text)?;
        let before = overwrites.len();
        overwrites.retain(|o| !(o.kind == OverwriteKind::Role && o.id == role_id));
        if overwrites.len() != before {
            exec(
                c,
                "UPDATE channels SET overwrites = ?2 WHERE id = ?1",
                params![channel_id.as_i64(), to_json(&overwrites)?],
            )
            .map_err(db)?;
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.engine.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db)).await?;
        // An empty group: proves the writer thread is alive without writing anything.
        self.engine.write(|_| Ok(())).await
    }

    async fn flush(&self) -> StoreResult<()> {
        // Acknowledged writes are already durable; folding the WAL back into the main file makes
        // the next start fast and leaves one self-contained file for backups.
        self.engine.write_raw(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(db)).await
    }

    // ---- users and sessions

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let u = user.clone();
        self.engine
            .write(move |c| {
                let key = u.user.username.to_lowercase();
                if count(c, "SELECT count(*) FROM users WHERE username_key = ?1", [&key])? > 0 {
                    return Err(StoreError::Conflict("username"));
                }
                exec(
                    c,
                    "INSERT INTO users (id, username, username_key, display_name, password_hash, created_at, \
                     admin, disabled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        u.user.id.as_i64(),
                        u.user.username,
                        key,
                        u.user.display_name,
                        u.password_hash,
                        ts(&u.user.created_at),
                        u.admin,
                        u.disabled
                    ],
                )
                .map_err(|e| conflict(e, "user"))?;
                Ok(())
            })
            .await
    }

    async fn user(&self, id: Id) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {} FROM users WHERE id = ?1", rows::USER_COLS);
        self.engine.read(move |c| one(c, &sql, [id.as_i64()], rows::user_record)).await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {} FROM users WHERE username_key = ?1", rows::USER_COLS);
        let key = username.to_lowercase();
        self.engine.read(move |c| one(c, &sql, [key], rows::user_record)).await
    }

    async fn first_user(&self) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {} FROM users ORDER BY id LIMIT 1", rows::USER_COLS);
        self.engine.read(move |c| one(c, &sql, [], rows::user)).await
    }

    async fn users(&self, ids: &[Id]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {} FROM users WHERE id IN (SELECT value FROM json_each(?1))", rows::USER_COLS);
        let list = ids_json(ids);
        self.engine.read(move |c| all(c, &sql, [list], rows::user)).await
    }

    async fn set_display_name(&self, id: Id, display_name: Option<&str>) -> StoreResult<()> {
        let name = display_name.map(str::to_owned);
        self.engine
            .write(move |c| {
                exec(c, "UPDATE users SET display_name = ?2 WHERE id = ?1", params![id.as_i64(), name]).map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn set_password_hash(&self, id: Id, password_hash: &str) -> StoreResult<()> {
        let hash = password_hash.to_owned();
        self.engine
            .write(move |c| {
                exec(c, "UPDATE users SET password_hash = ?2 WHERE id = ?1", params![id.as_i64(), hash]).map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn set_username(&self, id: Id, username: &str) -> StoreResult<()> {
        let name = username.to_owned();
        self.engine
            .write(move |c| {
                let key = name.to_lowercase();
                if count(
                    c,
                    "SELECT count(*) FROM users WHERE username_key = ?1 AND id != ?2",
                    params![key, id.as_i64()],
                )? > 0
                {
                    return Err(StoreError::Conflict("username"));
                }
                exec(
                    c,
                    "UPDATE users SET username = ?2, username_key = ?3 WHERE id = ?1",
                    params![id.as_i64(), name, key],
                )
                .map_err(|e| conflict(e, "username"))?;
                Ok(())
            })
            .await
    }

    async fn set_totp(&self, id: Id, secret: Option<&str>, recovery_codes: &[String]) -> StoreResult<()> {
        let (secret, codes) = (secret.map(str::to_owned), to_json(&recovery_codes)?);
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "UPDATE users SET totp_secret = ?2, recovery_codes = ?3 WHERE id = ?1",
                    params![id.as_i64(), secret, codes],
                )
                .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn use_totp_step(&self, id: Id, step: u64) -> StoreResult<bool> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        self.engine
            .write(move |c| {
                let changed = exec(
                    c,
                    "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
                    params![id.as_i64(), step],
                )
                .map_err(db)?;
                Ok(changed > 0)
            })
            .await
    }

    async fn use_recovery_code(&self, id: Id, code_hash: &str) -> StoreResult<bool> {
        let hash = code_hash.to_owned();
        self.engine
            .write(move |c| {
                // The writer is the only writer: this read-modify-write cannot race another use.
                let codes: Option<String> =
                    c.query_row("SELECT recovery_codes FROM users WHERE id = ?1", [id.as_i64()], |r| r.get(0)).ok();
                let Some(codes) = codes else { return Ok(false) };
                let mut codes: Vec<String> =
                    serde_json::from_str(&codes).map_err(|e| StoreError::Corrupt(format!("recovery codes: {e}")))?;
                let before = codes.len();
                codes.retain(|c| c != &hash);
                if codes.len() == before {
                    return Ok(false);
                }
                exec(c, "UPDATE users SET recovery_codes = ?2 WHERE id = ?1", params![id.as_i64(), to_json(&codes)?])
                    .map_err(db)?;
                Ok(true)
            })
            .await
    }

    async fn delete_user(&self, id: Id) -> StoreResult<()> {
        self.engine
            .write(move |c| {
                exec(c, "DELETE FROM sessions WHERE user_id = ?1", [id.as_i64()]).map_err(db)?;
                exec(c, "DELETE FROM upload_usage WHERE user_id = ?1", [id.as_i64()]).map_err(db)?;
                exec(c, "DELETE FROM read_states WHERE user_id = ?1", [id.as_i64()]).map_err(db)?;
                exec(c, "DELETE FROM users WHERE id = ?1", [id.as_i64()]).map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn set_user_flags(&self, id: Id, admin: bool, disabled: bool) -> StoreResult<()> {
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "UPDATE users SET admin = ?2, disabled = ?3 WHERE id = ?1",
                    params![id.as_i64(), admin, disabled],
                )
                .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn list_users(&self, after: Id, limit: u32) -> StoreResult<Vec<UserRecord>> {
        let sql = format!("SELECT {} FROM users WHERE id > ?1 ORDER BY id LIMIT ?2", rows::USER_COLS);
        self.engine.read(move |c| all(c, &sql, params![after.as_i64(), limit], rows::user_record)).await
    }

    async fn delete_sessions_of(&self, user_id: Id) -> StoreResult<u64> {
        self.engine
            .write(move |c| {
                let n = exec(c, "DELETE FROM sessions WHERE user_id = ?1", [user_id.as_i64()]).map_err(db)?;
                Ok(n as u64)
            })
            .await
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        let s = session.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO sessions (id, user_id, token_hash, created_at, user_agent) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![s.id.as_i64(), s.user_id.as_i64(), s.token_hash, ts(&s.created_at), s.user_agent],
                )
                .map_err(|e| conflict(e, "session"))?;
                Ok(())
            })
            .await
    }

    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        let sql = format!("SELECT {} FROM sessions WHERE token_hash = ?1", rows::SESSION_COLS);
        let hash = token_hash.to_owned();
        self.engine.read(move |c| one(c, &sql, [hash], rows::session)).await
    }

    async fn sessions_of(&self, user_id: Id) -> StoreResult<Vec<Session>> {
        let sql = format!("SELECT {} FROM sessions WHERE user_id = ?1 ORDER BY id", rows::SESSION_COLS);
        self.engine.read(move |c| all(c, &sql, [user_id.as_i64()], rows::session)).await
    }

    async fn delete_session(&self, user_id: Id, session_id: Id) -> StoreResult<bool> {
        self.engine
            .write(move |c| {
                let n = exec(
                    c,
                    "DELETE FROM sessions WHERE id = ?1 AND user_id = ?2",
                    params![session_id.as_i64(), user_id.as_i64()],
                )
                .map_err(db)?;
                Ok(n > 0)
            })
            .await
    }

    // ---- guilds

    async fn insert_guild(&self, guild: &Guild) -> StoreResult<()> {
        let g = guild.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO guilds (id, name, owner_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![g.id.as_i64(), g.name, g.owner_id.as_i64(), ts(&g.created_at)],
                )
                .map_err(|e| conflict(e, "guild"))?;
                Ok(())
            })
            .await
    }

    async fn guild(&self, id: Id) -> StoreResult<Option<Guild>> {
        let sql = format!("SELECT {} FROM guilds WHERE id = ?1", rows::GUILD_COLS);
        self.engine.read(move |c| one(c, &sql, [id.as_i64()], rows::guild)).await
    }

    async fn update_guild(&self, guild: &Guild) -> StoreResult<()> {
        let g = guild.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "UPDATE guilds SET name = ?2, owner_id = ?3 WHERE id = ?1",
                    params![g.id.as_i64(), g.name, g.owner_id.as_i64()],
                )
                .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn delete_guild(&self, id: Id) -> StoreResult<()> {
        // Foreign keys cascade to channels (then their messages, reactions, mentions, read states,
        // FTS rows via triggers), roles, members, bans and invites — all in this one transaction.
        self.engine
            .write(move |c| {
                give_back_upload_usage(c, "SELECT id FROM channels WHERE guild_id = ?1", id)?;
                exec(c, "DELETE FROM guilds WHERE id = ?1", [id.as_i64()]).map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn list_guilds(&self, after: Id, limit: u32) -> StoreResult<Vec<Guild>> {
        let sql = format!("SELECT {} FROM guilds WHERE id > ?1 ORDER BY id LIMIT ?2", rows::GUILD_COLS);
        self.engine.read(move |c| all(c, &sql, params![after.as_i64(), limit], rows::guild)).await
    }

    // ---- channels

    async fn put_channel(&self, channel: &Channel) -> StoreResult<()> {
        let ch = channel.clone();
        self.engine
            .write(move |c| {
                let (dm_a, dm_b) = rows::dm_pair(&ch);
                exec(
                    c,
                    "INSERT INTO channels (id, guild_id, name, kind, parent_id, position, topic, overwrites, \
                     recipients, dm_a, dm_b, last_message_id, rate_limit_per_user) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                     ON CONFLICT (id) DO UPDATE SET guild_id = excluded.guild_id, name = excluded.name, \
                     kind = excluded.kind, parent_id = excluded.parent_id, position = excluded.position, \
                     topic = excluded.topic, overwrites = excluded.overwrites, recipients = excluded.recipients, \
                     dm_a = excluded.dm_a, dm_b = excluded.dm_b, rate_limit_per_user = excluded.rate_limit_per_user, \
                     last_message_id = max(coalesce(channels.last_message_id, excluded.last_message_id), \
                                           coalesce(excluded.last_message_id, channels.last_message_id))",
                    params![
                        ch.id.as_i64(),
                        id_opt(ch.guild_id),
                        ch.name,
                        ch.kind.as_str(),
                        id_opt(ch.parent_id),
                        ch.position,
                        ch.topic,
                        to_json(&ch.overwrites)?,
                        ids_json(&ch.recipients),
                        dm_a,
                        dm_b,
                        id_opt(ch.last_message_id),
                        ch.rate_limit_per_user,
                    ],
                )
                .map_err(|e| conflict(e, "dm_channel"))?;
                Ok(())
            })
            .await
    }

    async fn channel(&self, id: Id) -> StoreResult<Option<Channel>> {
        let sql = format!("SELECT {} FROM channels WHERE id = ?1", rows::CHANNEL_COLS);
        self.engine.read(move |c| one(c, &sql, [id.as_i64()], rows::channel)).await
    }

    async fn guild_channels(&self, guild_id: Id) -> StoreResult<Vec<Channel>> {
        let sql = format!("SELECT {} FROM channels WHERE guild_id = ?1 ORDER BY position, id", rows::CHANNEL_COLS);
        self.engine.read(move |c| all(c, &sql, [guild_id.as_i64()], rows::channel)).await
    }

    async fn delete_channel(&self, id: Id) -> StoreResult<()> {
        self.engine
            .write(move |c| {
                exec(c, "UPDATE channels SET parent_id = NULL WHERE parent_id = ?1", [id.as_i64()]).map_err(db)?;
                give_back_upload_usage(c, "?1", id)?;
                // Messages (and their reactions, mentions, FTS rows) and read states cascade.
                exec(c, "DELETE FROM channels WHERE id = ?1", [id.as_i64()]).map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn dm_channel(&self, a: Id, b: Id) -> StoreResult<Option<Channel>> {
        let sql = format!("SELECT {} FROM channels WHERE dm_a = ?1 AND dm_b = ?2", rows::CHANNEL_COLS);
        let (lo, hi) = (a.min(b).as_i64(), a.max(b).as_i64());
        self.engine.read(move |c| one(c, &sql, [lo, hi], rows::channel)).await
    }

    async fn dm_channels_of(&self, user_id: Id) -> StoreResult<Vec<Channel>> {
        let sql = format!("SELECT {} FROM channels WHERE dm_a = ?1 OR dm_b = ?1 ORDER BY id", rows::CHANNEL_COLS);
        self.engine.read(move |c| all(c, &sql, [user_id.as_i64()], rows::channel)).await
    }

    // ---- roles

    async fn put_role(&self, role: &Role) -> StoreResult<()> {
        let r = role.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO roles (id, guild_id, name, permissions, position, color, hoist, mentionable) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO UPDATE SET \
                     guild_id = excluded.guild_id, name = excluded.name, permissions = excluded.permissions, \
                     position = excluded.position, color = excluded.color, hoist = excluded.hoist, \
                     mentionable = excluded.mentionable",
                    params![
                        r.id.as_i64(),
                        r.guild_id.as_i64(),
                        r.name,
                        permissions_bits(&r)?,
                        r.position,
                        i64::from(r.color),
                        r.hoist,
                        r.mentionable
                    ],
                )
                .map_err(|e| conflict(e, "role"))?;
                Ok(())
            })
            .await
    }

    async fn guild_roles(&self, guild_id: Id) -> StoreResult<Vec<Role>> {
        let sql = format!("SELECT {} FROM roles WHERE guild_id = ?1 ORDER BY position, id", rows::ROLE_COLS);
        self.engine.read(move |c| all(c, &sql, [guild_id.as_i64()], rows::role)).await
    }

    async fn delete_role(&self, guild_id: Id, role_id: Id) -> StoreResult<()> {
        self.engine.write(move |c| delete_role_tx(c, guild_id, role_id)).await
    }

    // ---- members and bans

    async fn insert_member(&self, member: &Member) -> StoreResult<()> {
        let m = member.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO members (guild_id, user_id, nick, roles, joined_at, timed_out_until, mute, deaf) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        m.guild_id.as_i64(),
                        m.user_id.as_i64(),
                        m.nick,
                        ids_json(&m.roles),
                        ts(&m.joined_at),
                        ts_opt(&m.timed_out_until),
                        m.mute,
                        m.deaf
                    ],
                )
                .map_err(|e| conflict(e, "member"))?;
                Ok(())
            })
            .await
    }

    async fn member(&self, guild_id: Id, user_id: Id) -> StoreResult<Option<Member>> {
        let sql = format!("SELECT {} FROM members WHERE guild_id = ?1 AND user_id = ?2", rows::MEMBER_COLS);
        self.engine.read(move |c| one(c, &sql, [guild_id.as_i64(), user_id.as_i64()], rows::member)).await
    }

    async fn members(&self, guild_id: Id, after: Id, limit: u32) -> StoreResult<Vec<Member>> {
        let sql = format!(
            "SELECT {} FROM members WHERE guild_id = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3",
            rows::MEMBER_COLS
        );
        self.engine
            .read(move |c| all(c, &sql, [guild_id.as_i64(), after.as_i64(), sql_limit(limit)], rows::member))
            .await
    }

    async fn update_member(&self, member: &Member) -> StoreResult<()> {
        let m = member.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "UPDATE members SET nick = ?3, roles = ?4, timed_out_until = ?5, mute = ?6, deaf = ?7 \
                     WHERE guild_id = ?1 AND user_id = ?2",
                    params![
                        m.guild_id.as_i64(),
                        m.user_id.as_i64(),
                        m.nick,
                        ids_json(&m.roles),
                        ts_opt(&m.timed_out_until),
                        m.mute,
                        m.deaf
                    ],
                )
                .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn delete_member(&self, guild_id: Id, user_id: Id) -> StoreResult<bool> {
        self.engine
            .write(move |c| {
                let n = exec(
                    c,
                    "DELETE FROM members WHERE guild_id = ?1 AND user_id = ?2",
                    [guild_id.as_i64(), user_id.as_i64()],
                )
                .map_err(db)?;
                Ok(n > 0)
            })
            .await
    }

    async fn member_count(&self, guild_id: Id) -> StoreResult<u64> {
        self.engine
            .read(move |c| count(c, "SELECT count(*) FROM members WHERE guild_id = ?1", [guild_id.as_i64()]))
            .await
    }

    async fn guilds_of(&self, user_id: Id) -> StoreResult<Vec<Id>> {
        self.engine
            .read(move |c| {
                all(
                    c,
                    "SELECT guild_id FROM members WHERE user_id = ?1 ORDER BY guild_id",
                    [user_id.as_i64()],
                    rows::single_id,
                )
            })
            .await
    }

    async fn put_ban(&self, ban: &Ban) -> StoreResult<()> {
        let b = ban.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO bans (guild_id, user_id, reason, created_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (guild_id, user_id) DO UPDATE SET reason = excluded.reason, \
                     created_at = excluded.created_at",
                    params![b.guild_id.as_i64(), b.user_id.as_i64(), b.reason, ts(&b.created_at)],
                )
                .map_err(|e| conflict(e, "ban"))?;
                Ok(())
            })
            .await
    }

    async fn ban(&self, guild_id: Id, user_id: Id) -> StoreResult<Option<Ban>> {
        let sql = format!("SELECT {} FROM bans WHERE guild_id = ?1 AND user_id = ?2", rows::BAN_COLS);
        self.engine.read(move |c| one(c, &sql, [guild_id.as_i64(), user_id.as_i64()], rows::ban)).await
    }

    async fn bans(&self, guild_id: Id) -> StoreResult<Vec<Ban>> {
        let sql = format!("SELECT {} FROM bans WHERE guild_id = ?1 ORDER BY user_id", rows::BAN_COLS);
        self.engine.read(move |c| all(c, &sql, [guild_id.as_i64()], rows::ban)).await
    }

    async fn delete_ban(&self, guild_id: Id, user_id: Id) -> StoreResult<bool> {
        self.engine
            .write(move |c| {
                let n = exec(
                    c,
                    "DELETE FROM bans WHERE guild_id = ?1 AND user_id = ?2",
                    [guild_id.as_i64(), user_id.as_i64()],
                )
                .map_err(db)?;
                Ok(n > 0)
            })
            .await
    }

    // ---- invites

    async fn insert_invite(&self, invite: &Invite) -> StoreResult<()> {
        let i = invite.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO invites (code, guild_id, inviter_id, max_uses, uses, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        i.code,
                        i.guild_id.as_i64(),
                        i.inviter_id.as_i64(),
                        i.max_uses.map(i64::from),
                        i64::from(i.uses),
                        ts(&i.created_at),
                        ts_opt(&i.expires_at)
                    ],
                )
                .map_err(|e| conflict(e, "invite"))?;
                Ok(())
            })
            .await
    }

    async fn invite(&self, code: &str) -> StoreResult<Option<Invite>> {
        let sql = format!("SELECT {} FROM invites WHERE code = ?1", rows::INVITE_COLS);
        let code = code.to_owned();
        self.engine.read(move |c| one(c, &sql, [code], rows::invite)).await
    }

    async fn guild_invites(&self, guild_id: Id) -> StoreResult<Vec<Invite>> {
        let sql = format!("SELECT {} FROM invites WHERE guild_id = ?1 ORDER BY created_at, code", rows::INVITE_COLS);
        self.engine.read(move |c| all(c, &sql, [guild_id.as_i64()], rows::invite)).await
    }

    async fn delete_invite(&self, code: &str) -> StoreResult<bool> {
        let code = code.to_owned();
        self.engine.write(move |c| Ok(exec(c, "DELETE FROM invites WHERE code = ?1", [code]).map_err(db)? > 0)).await
    }

    async fn use_invite(&self, code: &str, now: Timestamp) -> StoreResult<Option<Invite>> {
        // One conditional UPDATE on the single writer: the check and the count cannot interleave.
        let sql = format!("UPDATE invites SET uses = uses + 1 WHERE {USABLE_INVITE} RETURNING {}", rows::INVITE_COLS);
        let code = code.to_owned();
        self.engine.write(move |c| one(c, &sql, params![code, ts(&now)], rows::invite)).await
    }

    async fn insert_instance_invite(&self, invite: &InstanceInvite) -> StoreResult<()> {
        let i = invite.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO instance_invites (code, max_uses, uses, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        i.code,
                        i.max_uses.map(i64::from),
                        i64::from(i.uses),
                        ts(&i.created_at),
                        ts_opt(&i.expires_at)
                    ],
                )
                .map_err(|e| conflict(e, "instance_invite"))?;
                Ok(())
            })
            .await
    }

    async fn use_instance_invite(&self, code: &str, now: Timestamp) -> StoreResult<Option<InstanceInvite>> {
        let sql = format!(
            "UPDATE instance_invites SET uses = uses + 1 WHERE {USABLE_INVITE} RETURNING {}",
            rows::INSTANCE_INVITE_COLS
        );
        let code = code.to_owned();
        self.engine.write(move |c| one(c, &sql, params![code, ts(&now)], rows::instance_invite)).await
    }

    // ---- messages

    async fn insert_message(&self, message: &Message) -> StoreResult<Inserted> {
        let m = message.clone();
        self.engine.write(move |c| insert_message_tx(c, &m)).await
    }

    async fn message(&self, channel_id: Id, id: Id) -> StoreResult<Option<Message>> {
        let sql = format!("SELECT {} FROM messages AS m WHERE m.id = ?1 AND m.channel_id = ?2", rows::MESSAGE_COLS);
        self.engine.read(move |c| one(c, &sql, [id.as_i64(), channel_id.as_i64()], rows::message)).await
    }

    async fn update_message(&self, message: &Message) -> StoreResult<()> {
        let m = message.clone();
        self.engine
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE messages SET content = ?3, edited_at = ?4, mentions = ?5, pinned = ?6 \
                     WHERE id = ?1 AND channel_id = ?2",
                    params![
                        m.id.as_i64(),
                        m.channel_id.as_i64(),
                        m.content,
                        ts_opt(&m.edited_at),
                        to_json(&m.mentions)?,
                        m.pinned
                    ],
                )
                .map_err(db)?;
                if n > 0 {
                    exec(c, "DELETE FROM message_mentions WHERE message_id = ?1", [m.id.as_i64()]).map_err(db)?;
                    insert_mentions(c, &m)?;
                }
                Ok(())
            })
            .await
    }

    async fn message_by_nonce(&self, channel_id: Id, author_id: Id, nonce: &str) -> StoreResult<Option<Message>> {
        let sql = format!(
            "SELECT {} FROM messages AS m WHERE m.channel_id = ?1 AND m.author_id = ?2 AND m.nonce = ?3",
            rows::MESSAGE_COLS
        );
        let nonce = nonce.to_owned();
        self.engine
            .read(move |c| one(c, &sql, params![channel_id.as_i64(), author_id.as_i64(), nonce], rows::message))
            .await
    }

    async fn set_embeds(
        &self,
        channel_id: Id,
        id: Id,
        content: &str,
        embeds: &[crate::previews::Embed],
    ) -> StoreResult<bool> {
        let (embeds, content) = (to_json(&embeds)?, content.to_owned());
        self.engine
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE messages SET embeds = ?3 WHERE id = ?1 AND channel_id = ?2 AND content = ?4",
                    params![id.as_i64(), channel_id.as_i64(), embeds, content],
                )
                .map_err(db)?;
                Ok(n > 0)
            })
            .await
    }

    async fn delete_message(&self, channel_id: Id, id: Id) -> StoreResult<bool> {
        self.engine
            .write(move |c| {
                // Reactions and mentions cascade; the FTS row goes by trigger.
                let n = exec(
                    c,
                    "DELETE FROM messages WHERE id = ?1 AND channel_id = ?2",
                    [id.as_i64(), channel_id.as_i64()],
                )
                .map_err(db)?;
                Ok(n > 0)
            })
            .await
    }

    async fn messages(&self, channel_id: Id, anchor: HistoryAnchor, limit: u32) -> StoreResult<Vec<Message>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ch = channel_id.as_i64();
        self.engine
            .read(move |c| match anchor {
                HistoryAnchor::Latest => all(c, HISTORY_LATEST, params![ch, sql_limit(limit)], rows::message),
                HistoryAnchor::Before(id) => {
                    all(c, HISTORY_BEFORE, params![ch, id.as_i64(), sql_limit(limit)], rows::message)
                }
                HistoryAnchor::After(id) => {
                    all(c, HISTORY_AFTER, params![ch, id.as_i64(), sql_limit(limit)], rows::message)
                }
                HistoryAnchor::Around(id) => {
                    // Newer side gets limit/2, the anchor and older side the rest; one snapshot for both.
                    let newer_limit = limit / 2;
                    let tx = c.unchecked_transaction().map_err(db)?;
                    let mut page =
                        all(&tx, HISTORY_AFTER, params![ch, id.as_i64(), sql_limit(newer_limit)], rows::message)?;
                    page.reverse();
                    let older = all(
                        &tx,
                        HISTORY_AT_OR_BEFORE,
                        params![ch, id.as_i64(), sql_limit(limit - newer_limit)],
                        rows::message,
                    )?;
                    tx.finish().map_err(db)?;
                    page.extend(older);
                    Ok(page)
                }
            })
            .await
    }

    async fn pinned_messages(&self, channel_id: Id) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {} FROM messages AS m INDEXED BY messages_pinned WHERE m.channel_id = ?1 AND m.pinned = 1 \
             ORDER BY m.id DESC",
            rows::MESSAGE_COLS
        );
        self.engine.read(move |c| all(c, &sql, [channel_id.as_i64()], rows::message)).await
    }

    async fn count_messages_after(&self, channel_id: Id, after: Id, cap: u32) -> StoreResult<u32> {
        let n = self
            .engine
            .read(move |c| count(c, COUNT_AFTER, params![channel_id.as_i64(), after.as_i64(), sql_limit(cap)]))
            .await?;
        Ok(u32::try_from(n).unwrap_or(cap))
    }

    async fn count_mentions_after(
        &self,
        channel_id: Id,
        after: Id,
        user_id: Id,
        role_ids: &[Id],
        cap: u32,
    ) -> StoreResult<u32> {
        let roles = ids_json(role_ids);
        let n = self
            .engine
            .read(move |c| {
                count(
                    c,
                    COUNT_MENTIONS_AFTER,
                    params![channel_id.as_i64(), after.as_i64(), user_id.as_i64(), roles, sql_limit(cap)],
                )
            })
            .await?;
        Ok(u32::try_from(n).unwrap_or(cap))
    }

    async fn search_messages(&self, channel_ids: &[Id], query: &str, limit: u32) -> StoreResult<Vec<Message>> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        if channel_ids.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        // FTS5 yields rowids (= message ids) in descending order itself, so the scan stops after
        // `limit` hits in the wanted channels instead of sorting every match.
        let sql = format!(
            "SELECT {} FROM messages_fts JOIN messages AS m ON m.id = messages_fts.rowid \
             WHERE messages_fts MATCH ?1 AND m.channel_id IN (SELECT value FROM json_each(?2)) \
             ORDER BY messages_fts.rowid DESC LIMIT ?3",
            rows::MESSAGE_COLS
        );
        let channels = ids_json(channel_ids);
        self.engine.read(move |c| all(c, &sql, params![fts, channels, sql_limit(limit)], rows::message)).await
    }

    // ---- reactions

    async fn add_reaction(&self, message_id: Id, emoji: &str, user_id: Id) -> StoreResult<bool> {
        let emoji = emoji.to_owned();
        self.engine
            .write(move |c| {
                let n = exec(
                    c,
                    "INSERT INTO reactions (message_id, emoji, user_id) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (message_id, emoji, user_id) DO NOTHING",
                    params![message_id.as_i64(), emoji, user_id.as_i64()],
                )
                .map_err(|e| conflict(e, "reaction"))?;
                Ok(n > 0)
            })
            .await
    }

    async fn remove_reaction(&self, message_id: Id, emoji: &str, user_id: Id) -> StoreResult<bool> {
        let emoji = emoji.to_owned();
        self.engine
            .write(move |c| {
                let n = exec(
                    c,
                    "DELETE FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3",
                    params![message_id.as_i64(), emoji, user_id.as_i64()],
                )
                .map_err(db)?;
                Ok(n > 0)
            })
            .await
    }

    async fn reactions(&self, message_ids: &[Id], viewer: Id) -> StoreResult<Vec<ReactionCount>> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids_json(message_ids);
        self.engine
            .read(move |c| {
                all(
                    c,
                    "SELECT message_id, emoji, count(*), max(user_id = ?2), min(seq) AS first FROM reactions \
                     WHERE message_id IN (SELECT value FROM json_each(?1)) \
                     GROUP BY message_id, emoji ORDER BY message_id, first",
                    params![list, viewer.as_i64()],
                    rows::reaction_count,
                )
            })
            .await
    }

    // ---- read states

    async fn ack(&self, user_id: Id, channel_id: Id, message_id: Id) -> StoreResult<()> {
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO read_states (user_id, channel_id, last_read_id) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (user_id, channel_id) DO UPDATE SET \
                     last_read_id = max(last_read_id, excluded.last_read_id)",
                    [user_id.as_i64(), channel_id.as_i64(), message_id.as_i64()],
                )
                .map_err(|e| conflict(e, "read_state"))?;
                Ok(())
            })
            .await
    }

    async fn read_states(&self, user_id: Id) -> StoreResult<Vec<ReadState>> {
        self.engine
            .read(move |c| {
                all(
                    c,
                    "SELECT user_id, channel_id, last_read_id FROM read_states WHERE user_id = ?1 ORDER BY channel_id",
                    [user_id.as_i64()],
                    rows::read_state,
                )
            })
            .await
    }

    // ---- upload quota

    async fn add_upload_usage(&self, user_id: Id, delta: i64) -> StoreResult<u64> {
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO upload_usage (user_id, bytes) VALUES (?1, max(?2, 0)) \
                     ON CONFLICT (user_id) DO UPDATE SET bytes = max(bytes + ?2, 0)",
                    [user_id.as_i64(), delta],
                )
                .map_err(db)?;
                let bytes: i64 = c
                    .query_row("SELECT bytes FROM upload_usage WHERE user_id = ?1", [user_id.as_i64()], |r| r.get(0))
                    .map_err(db)?;
                Ok(u64::try_from(bytes).unwrap_or(0))
            })
            .await
    }

    async fn upload_usage(&self, user_id: Id) -> StoreResult<u64> {
        self.engine
            .read(move |c| {
                let bytes: Option<i64> =
                    one(c, "SELECT bytes FROM upload_usage WHERE user_id = ?1", [user_id.as_i64()], |r| {
                        r.get(0).map_err(db)
                    })?;
                Ok(bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0)))
            })
            .await
    }

    // ---- audit log

    async fn insert_audit_entry(&self, entry: &AuditEntry) -> StoreResult<()> {
        let e = entry.clone();
        self.engine
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO audit_log (id, guild_id, user_id, action_type, target_id, reason, changes, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        e.id.as_i64(),
                        e.guild_id.as_i64(),
                        e.user_id.as_i64(),
                        e.action_type.as_str(),
                        id_opt(e.target_id),
                        e.reason,
                        to_json(&e.changes)?,
                        ts(&e.created_at)
                    ],
                )
                .map_err(|e| conflict(e, "audit_entry"))?;
                Ok(())
            })
            .await
    }

    async fn audit_entries(&self, guild_id: Id, query: AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {} FROM audit_log INDEXED BY audit_log_guild WHERE guild_id = ?1 AND id < ?2 \
             AND (?3 IS NULL OR user_id = ?3) AND (?4 IS NULL OR action_type = ?4) ORDER BY id DESC LIMIT ?5",
            rows::AUDIT_COLS
        );
        self.engine
            .read(move |c| {
                all(
                    c,
                    &sql,
                    params![
                        guild_id.as_i64(),
                        query.before.map_or(i64::MAX, Id::as_i64),
                        id_opt(query.user_id),
                        query.action_type.map(AuditAction::as_str),
                        sql_limit(query.limit)
                    ],
                    rows::audit_entry,
                )
            })
            .await
    }
}

/// Before the messages of some channels go (`channels`: SQL naming their ids, with `?1` bound to
/// `param`): their files' bytes go back to each uploader's usage, in the same transaction — summed
/// per uploader in one pass over the channels' messages.
fn give_back_upload_usage(c: &rusqlite::Connection, channels: &str, param: Id) -> StoreResult<()> {
    let sql = format!(
        "WITH freed AS (\
           SELECT m.author_id AS user_id, SUM(json_extract(a.value, '$.size')) AS bytes \
           FROM messages AS m, json_each(m.attachments) AS a \
           WHERE m.channel_id IN ({channels}) AND m.attachments <> '[]' GROUP BY m.author_id) \
         UPDATE upload_usage SET bytes = max(upload_usage.bytes - freed.bytes, 0) \
         FROM freed WHERE upload_usage.user_id = freed.user_id"
    );
    exec(c, &sql, [param.as_i64()]).map_err(db)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(c: &Connection, sql: &str, params: impl rusqlite::Params) -> String {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map(params, |r| r.get::<_, String>(3)).unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join(" | ")
    }

    #[test]
    fn history_and_counts_search_the_channel_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("plan.db")).unwrap();
        migrations::migrate(&mut c).unwrap();
        for (sql, p) in [
            (HISTORY_LATEST, vec![1i64, 50]),
            (HISTORY_BEFORE, vec![1, 2, 50]),
            (HISTORY_AT_OR_BEFORE, vec![1, 2, 50]),
            (HISTORY_AFTER, vec![1, 2, 50]),
            (COUNT_AFTER, vec![1, 2, 50]),
        ] {
            let plan = plan(&c, sql, rusqlite::params_from_iter(p));
            assert!(plan.contains("SEARCH") && plan.contains("messages_channel"), "{sql}: {plan}");
            assert!(!plan.contains("SCAN m") && !plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
        let plan = plan(&c, COUNT_MENTIONS_AFTER, params![1, 2, 3, "[4]", 10]);
        assert!(plan.contains("SEARCH message_mentions USING COVERING INDEX message_mentions_channel"), "{plan}");
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("m.db")).unwrap();
        migrations::migrate(&mut c).unwrap();
        migrations::migrate(&mut c).unwrap();
        let v: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn queued_search_index_survives_edits_and_deletes_before_the_drain() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("fts.db")).unwrap();
        migrations::migrate(&mut c).unwrap();
        c.execute(
            "INSERT INTO channels (id, name, kind, position, overwrites, recipients) \
             VALUES (1, 'c', 'text', 0, '[]', '[]')",
            [],
        )
        .unwrap();
        let insert = |c: &Connection, id: i64, content: &str| {
            c.execute(
                "INSERT INTO messages (id, channel_id, author_id, content, created_at, mentions, pinned) \
                 VALUES (?1, 1, 1, ?2, 0, '{}', 0)",
                params![id, content],
            )
            .unwrap();
        };
        let hits = |c: &Connection, word: &str| -> Vec<i64> {
            let mut stmt =
                c.prepare("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid").unwrap();
            stmt.query_map([word], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
        };
        let tx = c.transaction().unwrap();
        insert(&tx, 1, "apple");
        insert(&tx, 2, "banana");
        insert(&tx, 3, "cherry");
        // Edited and deleted while still queued: the index must never see the old text.
        tx.execute("UPDATE messages SET content = 'apricot' WHERE id = 1", []).unwrap();
        tx.execute("DELETE FROM messages WHERE id = 2", []).unwrap();
        migrations::drain_fts_queue(&tx).unwrap();
        tx.commit().unwrap();
        assert_eq!(hits(&c, "apple"), Vec::<i64>::new());
        assert_eq!(hits(&c, "apricot"), vec![1]);
        assert_eq!(hits(&c, "banana"), Vec::<i64>::new());
        assert_eq!(hits(&c, "cherry"), vec![3]);
        // Indexed rows take the trigger path for edits and deletes.
        c.execute("UPDATE messages SET content = 'date' WHERE id = 3", []).unwrap();
        c.execute("DELETE FROM messages WHERE id = 1", []).unwrap();
        assert_eq!(hits(&c, "cherry"), Vec::<i64>::new());
        assert_eq!(hits(&c, "date"), vec![3]);
        assert_eq!(hits(&c, "apricot"), Vec::<i64>::new());
        let queued: i64 = c.query_row("SELECT count(*) FROM messages_fts_pending", [], |r| r.get(0)).unwrap();
        assert_eq!(queued, 0);
        // FTS5 compares its index with the content table and errors on any difference.
        c.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')", []).unwrap();
    }

    #[test]
    fn fts_query_quotes_every_word() {
        assert_eq!(fts_query("  hello  wor\"ld "), Some("\"hello\" \"wor\"\"ld\"".into()));
        assert_eq!(fts_query("   "), None);
        assert_eq!(fts_query("a OR b*"), Some("\"a\" \"OR\" \"b*\"".into()));
        assert_eq!(fts_query("a\0b"), Some("\"a\" \"b\"".into()), "NUL splits words");
        assert_eq!(fts_query("\0\u{1}\u{7f}"), None, "control characters only: no word");
    }
}
