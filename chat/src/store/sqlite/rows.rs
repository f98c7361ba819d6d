//! Mapping between SQLite rows and the domain types, and between SQLite errors and [`StoreError`].
//!
//! Nothing read from the file is trusted: every conversion that can fail yields
//! [`StoreError::Corrupt`] instead of panicking.

use chrono::DateTime;
use rusqlite::types::FromSql;
use rusqlite::{Connection, Params, Row, ffi};

use crate::id::Id;
use crate::model::*;
use crate::permissions::Permissions;
use crate::store::{StoreError, StoreResult};

/// Any SQLite failure that is not a constraint we know how to name.
pub fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

/// Maps a uniqueness violation to `Conflict(what)`, a missing parent row (foreign key) to
/// `Conflict("missing_parent")`, anything else to `Backend`.
pub fn conflict(e: rusqlite::Error, what: &'static str) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return StoreError::Conflict(what);
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return StoreError::Conflict("missing_parent"),
            _ => {}
        }
    }
    db(e)
}

// ---- scalar encodings

/// Times are stored as unix milliseconds: sub-millisecond precision is dropped on write.
pub fn ts(t: &Timestamp) -> i64 {
    t.timestamp_millis()
}

pub fn ts_opt(t: &Option<Timestamp>) -> Option<i64> {
    t.as_ref().map(ts)
}

pub fn id_opt(id: Option<Id>) -> Option<i64> {
    id.map(Id::as_i64)
}

/// A JSON array of integers, for `json_each(?)` IN-lists and stored id lists.
pub fn ids_json(ids: &[Id]) -> String {
    let raw: Vec<i64> = ids.iter().map(|id| id.as_i64()).collect();
    // Serializing a Vec<i64> cannot fail; fall back to an empty list rather than panic.
    serde_json::to_string(&raw).unwrap_or_else(|_| "[]".to_owned())
}

pub fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding for sqlite: {e}")))
}

/// The two DM recipients in a canonical order, when the channel is a two-party DM.
pub fn dm_pair(channel: &Channel) -> (Option<i64>, Option<i64>) {
    match (channel.kind, channel.recipients.as_slice()) {
        (ChannelKind::Dm, [a, b]) => (Some((*a).min(*b).as_i64()), Some((*a).max(*b).as_i64())),
        _ => (None, None),
    }
}

// ---- column readers

fn get<T: FromSql>(row: &Row<'_>, i: usize) -> StoreResult<T> {
    row.get(i).map_err(|e| StoreError::Corrupt(format!("sqlite column {i}: {e}")))
}

fn get_id(row: &Row<'_>, i: usize) -> StoreResult<Id> {
    Ok(Id::from_i64(get::<i64>(row, i)?))
}

fn get_id_opt(row: &Row<'_>, i: usize) -> StoreResult<Option<Id>> {
    Ok(get::<Option<i64>>(row, i)?.map(Id::from_i64))
}

fn ms_to_ts(ms: i64) -> StoreResult<Timestamp> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

fn get_ts(row: &Row<'_>, i: usize) -> StoreResult<Timestamp> {
    ms_to_ts(get(row, i)?)
}

fn get_ts_opt(row: &Row<'_>, i: usize) -> StoreResult<Option<Timestamp>> {
    get::<Option<i64>>(row, i)?.map(ms_to_ts).transpose()
}

fn to_u32(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} out of range")))
}

fn get_u32(row: &Row<'_>, i: usize) -> StoreResult<u32> {
    to_u32(get(row, i)?, "integer")
}

fn get_bool(row: &Row<'_>, i: usize) -> StoreResult<bool> {
    Ok(get::<i64>(row, i)? != 0)
}

fn get_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, i: usize) -> StoreResult<T> {
    let text: String = get(row, i)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("sqlite json column {i}: {e}")))
}

fn get_ids_json(row: &Row<'_>, i: usize) -> StoreResult<Vec<Id>> {
    let raw: Vec<i64> = get_json(row, i)?;
    Ok(raw.into_iter().map(Id::from_i64).collect())
}

// ---- query helpers

pub fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let mut rows = stmt.query(params).map_err(db)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

pub fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let mut rows = stmt.query(params).map_err(db)?;
    match rows.next().map_err(db)? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// Runs a statement that returns no rows; returns the number of changed rows.
pub fn exec(conn: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

pub fn count(conn: &Connection, sql: &str, params: impl Params) -> StoreResult<u64> {
    let n: i64 = conn.prepare_cached(sql).map_err(db)?.query_row(params, |r| r.get(0)).map_err(db)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
}

// ---- decoders; each matches the column list next to it

pub const USER_COLS: &str =
    "id, username, display_name, created_at, password_hash, admin, disabled, totp_secret, recovery_codes";

pub fn user_record(row: &Row<'_>) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        user: user(row)?,
        password_hash: get(row, 4)?,
        admin: get_bool(row, 5)?,
        disabled: get_bool(row, 6)?,
        totp_secret: get(row, 7)?,
        recovery_codes: get_json(row, 8)?,
    })
}

pub const INSTANCE_INVITE_COLS: &str = "code, max_uses, uses, created_at, expires_at";

pub fn instance_invite(row: &Row<'_>) -> StoreResult<InstanceInvite> {
    Ok(InstanceInvite {
        code: get(row, 0)?,
        max_uses: get::<Option<i64>>(row, 1)?.map(|v| to_u32(v, "max_uses")).transpose()?,
        uses: get_u32(row, 2)?,
        created_at: get_ts(row, 3)?,
        expires_at: get_ts_opt(row, 4)?,
    })
}

pub fn user(row: &Row<'_>) -> StoreResult<User> {
    Ok(User { id: get_id(row, 0)?, username: get(row, 1)?, display_name: get(row, 2)?, created_at: get_ts(row, 3)? })
}

pub const SESSION_COLS: &str = "id, user_id, token_hash, created_at, user_agent";

pub fn session(row: &Row<'_>) -> StoreResult<Session> {
    Ok(Session {
        id: get_id(row, 0)?,
        user_id: get_id(row, 1)?,
        token_hash: get(row, 2)?,
        created_at: get_ts(row, 3)?,
        user_agent: get(row, 4)?,
    })
}

pub const GUILD_COLS: &str = "id, name, owner_id, created_at";

pub fn guild(row: &Row<'_>) -> StoreResult<Guild> {
    Ok(Guild { id: get_id(row, 0)?, name: get(row, 1)?, owner_id: get_id(row, 2)?, created_at: get_ts(row, 3)? })
}

pub const CHANNEL_COLS: &str = "id, guild_id, name, kind, parent_id, position, topic, overwrites, recipients, last_message_id, \
     rate_limit_per_user";

pub fn channel(row: &Row<'_>) -> StoreResult<Channel> {
    let kind: String = get(row, 3)?;
    Ok(Channel {
        id: get_id(row, 0)?,
        guild_id: get_id_opt(row, 1)?,
        name: get(row, 2)?,
        kind: ChannelKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("channel kind {kind:?}")))?,
        parent_id: get_id_opt(row, 4)?,
        position: Channel::clamp_position(get(row, 5)?),
        topic: get(row, 6)?,
        overwrites: get_json(row, 7)?,
        recipients: get_ids_json(row, 8)?,
        last_message_id: get_id_opt(row, 9)?,
        rate_limit_per_user: get_u32(row, 10)?.min(Channel::MAX_SLOW_MODE_SECS),
    })
}

pub const ROLE_COLS: &str = "id, guild_id, name, permissions, position, color, hoist, mentionable";

pub fn role(row: &Row<'_>) -> StoreResult<Role> {
    Ok(Role {
        id: get_id(row, 0)?,
        guild_id: get_id(row, 1)?,
        name: get(row, 2)?,
        // Stored from `bits()`, so always non-negative; unknown bits are dropped like on the wire.
        permissions: Permissions::from_wire(get::<i64>(row, 3)? as u64),
        position: get(row, 4)?,
        color: get_u32(row, 5)?,
        hoist: get_bool(row, 6)?,
        mentionable: get_bool(row, 7)?,
    })
}

pub const MEMBER_COLS: &str = "guild_id, user_id, nick, roles, joined_at, timed_out_until, mute, deaf";

pub fn member(row: &Row<'_>) -> StoreResult<Member> {
    Ok(Member {
        guild_id: get_id(row, 0)?,
        user_id: get_id(row, 1)?,
        nick: get(row, 2)?,
        roles: get_ids_json(row, 3)?,
        joined_at: get_ts(row, 4)?,
        timed_out_until: get_ts_opt(row, 5)?,
        mute: get_bool(row, 6)?,
        deaf: get_bool(row, 7)?,
    })
}

pub const BAN_COLS: &str = "guild_id, user_id, reason, created_at";

pub fn ban(row: &Row<'_>) -> StoreResult<Ban> {
    Ok(Ban { guild_id: get_id(row, 0)?, user_id: get_id(row, 1)?, reason: get(row, 2)?, created_at: get_ts(row, 3)? })
}

pub const INVITE_COLS: &str = "code, guild_id, inviter_id, max_uses, uses, created_at, expires_at";

pub fn invite(row: &Row<'_>) -> StoreResult<Invite> {
    Ok(Invite {
        code: get(row, 0)?,
        guild_id: get_id(row, 1)?,
        inviter_id: get_id(row, 2)?,
        max_uses: get::<Option<i64>>(row, 3)?.map(|v| to_u32(v, "max_uses")).transpose()?,
        uses: get_u32(row, 4)?,
        created_at: get_ts(row, 5)?,
        expires_at: get_ts_opt(row, 6)?,
    })
}

/// Always selected through the alias `m`, because search joins the FTS table (which also has `content`).
pub const MESSAGE_COLS: &str = "m.id, m.channel_id, m.guild_id, m.author_id, m.content, m.created_at, \
                                m.edited_at, m.reply_to, m.mentions, m.nonce, m.pinned, m.attachments, m.embeds";

pub fn message(row: &Row<'_>) -> StoreResult<Message> {
    Ok(Message {
        id: get_id(row, 0)?,
        channel_id: get_id(row, 1)?,
        guild_id: get_id_opt(row, 2)?,
        author_id: get_id(row, 3)?,
        content: get(row, 4)?,
        created_at: get_ts(row, 5)?,
        edited_at: get_ts_opt(row, 6)?,
        reply_to: get_id_opt(row, 7)?,
        mentions: get_json(row, 8)?,
        nonce: get(row, 9)?,
        pinned: get_bool(row, 10)?,
        attachments: get_json(row, 11)?,
        embeds: get_json(row, 12)?,
    })
}

pub fn reaction_count(row: &Row<'_>) -> StoreResult<ReactionCount> {
    Ok(ReactionCount {
        message_id: get_id(row, 0)?,
        emoji: get(row, 1)?,
        count: to_u32(get(row, 2)?, "reaction count")?,
        me: get_bool(row, 3)?,
    })
}

pub fn read_state(row: &Row<'_>) -> StoreResult<ReadState> {
    Ok(ReadState { user_id: get_id(row, 0)?, channel_id: get_id(row, 1)?, last_read_id: get_id(row, 2)? })
}

/// (user_id, JSON roles) for delete_role's rewrite.
pub fn id_and_text(row: &Row<'_>) -> StoreResult<(Id, String)> {
    Ok((get_id(row, 0)?, get(row, 1)?))
}

pub fn ids_from_json(text: &str) -> StoreResult<Vec<Id>> {
    let raw: Vec<i64> = serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("sqlite id list: {e}")))?;
    Ok(raw.into_iter().map(Id::from_i64).collect())
}

pub fn overwrites_from_json(text: &str) -> StoreResult<Vec<Overwrite>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("sqlite overwrites: {e}")))
}

pub fn single_id(row: &Row<'_>) -> StoreResult<Id> {
    get_id(row, 0)
}

pub const AUDIT_COLS: &str = "id, guild_id, user_id, action_type, target_id, reason, changes, created_at";

pub fn audit_entry(row: &Row<'_>) -> StoreResult<AuditEntry> {
    let action: String = get(row, 3)?;
    Ok(AuditEntry {
        id: get_id(row, 0)?,
        guild_id: get_id(row, 1)?,
        user_id: get_id(row, 2)?,
        action_type: AuditAction::parse(&action)
            .ok_or_else(|| StoreError::Corrupt(format!("audit action {action:?}")))?,
        target_id: get_id_opt(row, 4)?,
        reason: get(row, 5)?,
        changes: get_json(row, 6)?,
        created_at: get_ts(row, 7)?,
    })
}
