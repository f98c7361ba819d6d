//! The SQLite schema as an ordered list of migrations, applied at open.
//!
//! `PRAGMA user_version` holds how many migrations a database file has had. Each migration runs in
//! its own transaction together with the version bump, so a crash mid-migration leaves the previous
//! version intact. Migrations are append-only: never edit one that has shipped, add a new one.
//! Every index the backend's queries rely on is declared here, nowhere else.

use rusqlite::Connection;

use super::rows::db;
use crate::store::{StoreError, StoreResult};

/// The schema version this build writes and expects.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Ordered migrations; migration `i` brings a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// Version 1: the whole community plane.
///
/// Ids are INTEGER snowflakes; times are unix milliseconds (INTEGER); lists that are only ever read
/// and written whole (member roles, channel overwrites, DM recipients, message mentions) are JSON
/// text. Foreign keys exist only towards containers that get deleted (guild, channel, message) so
/// that deleting one cascades inside SQLite in the same transaction.
const V1: &str = r#"
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL,
    -- lower(username), computed in Rust: SQLite's lower() folds ASCII only.
    username_key  TEXT NOT NULL,
    display_name  TEXT,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_username_lower ON users (username_key);

CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    token_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    user_agent TEXT
) STRICT;
CREATE UNIQUE INDEX sessions_token_hash ON sessions (token_hash);
CREATE INDEX sessions_user ON sessions (user_id, id);

CREATE TABLE guilds (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    owner_id   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE channels (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER REFERENCES guilds (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    parent_id       INTEGER,
    position        INTEGER NOT NULL,
    topic           TEXT,
    overwrites      TEXT NOT NULL,
    recipients      TEXT NOT NULL,
    -- The two DM recipients, smaller id first, so a pair is found in either order.
    dm_a            INTEGER,
    dm_b            INTEGER,
    last_message_id INTEGER
) STRICT;
CREATE INDEX channels_guild ON channels (guild_id, position, id);
CREATE INDEX channels_parent ON channels (parent_id) WHERE parent_id IS NOT NULL;
CREATE UNIQUE INDEX channels_dm_pair ON channels (dm_a, dm_b) WHERE dm_a IS NOT NULL;
CREATE INDEX channels_dm_b ON channels (dm_b) WHERE dm_b IS NOT NULL;

CREATE TABLE roles (
    id          INTEGER PRIMARY KEY,
    guild_id    INTEGER NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    permissions INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    color       INTEGER NOT NULL,
    hoist       INTEGER NOT NULL,
    mentionable INTEGER NOT NULL
) STRICT;
CREATE INDEX roles_guild ON roles (guild_id, position, id);

CREATE TABLE members (
    guild_id        INTEGER NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL,
    nick            TEXT,
    roles           TEXT NOT NULL,
    joined_at       INTEGER NOT NULL,
    timed_out_until INTEGER,
    PRIMARY KEY (guild_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX members_user ON members (user_id);

CREATE TABLE bans (
    guild_id   INTEGER NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL,
    reason     TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE invites (
    code       TEXT PRIMARY KEY,
    guild_id   INTEGER NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    inviter_id INTEGER NOT NULL,
    max_uses   INTEGER,
    uses       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX invites_guild ON invites (guild_id, created_at);

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    guild_id   INTEGER,
    author_id  INTEGER NOT NULL,
    content    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    edited_at  INTEGER,
    reply_to   INTEGER,
    mentions   TEXT NOT NULL,
    nonce      TEXT,
    pinned     INTEGER NOT NULL
) STRICT;
-- History pagination reads only through this index (queries say INDEXED BY).
CREATE INDEX messages_channel ON messages (channel_id, id);
CREATE UNIQUE INDEX messages_nonce ON messages (channel_id, author_id, nonce) WHERE nonce IS NOT NULL;
CREATE INDEX messages_pinned ON messages (channel_id, id) WHERE pinned = 1;

-- kind: 0 = @everyone (target 0), 1 = user, 2 = role.
CREATE TABLE message_mentions (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    target     INTEGER NOT NULL,
    PRIMARY KEY (message_id, kind, target)
) STRICT, WITHOUT ROWID;
CREATE INDEX message_mentions_channel ON message_mentions (channel_id, message_id, kind, target);

-- seq orders reactions by first use; AUTOINCREMENT so a deleted newest row's seq is never reused.
CREATE TABLE reactions (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji      TEXT NOT NULL,
    user_id    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX reactions_unique ON reactions (message_id, emoji, user_id);

CREATE TABLE read_states (
    user_id      INTEGER NOT NULL,
    channel_id   INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    last_read_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, channel_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX read_states_channel ON read_states (channel_id);

-- Full-text index over message content, kept in sync by triggers (also on cascaded deletes).
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    content, content = 'messages', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
WHEN old.content IS NOT new.content BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
"#;

/// Version 2: index new messages for search once per write group instead of once per message.
///
/// FTS5 writes its in-memory index to disk at every savepoint release, and the writer runs each
/// job of a group in its own savepoint: indexing inside the insert trigger made one FTS segment per
/// message (and merges to match), a third of the writer's CPU. New messages are now queued in
/// `messages_fts_pending` and indexed by [`drain_fts_queue`] just before the group's COMMIT, in
/// the same transaction, so a committed message is always searchable. A queued row is not in the
/// index yet, so deleting or editing it must not touch the index (the drain reads current content).
const V2: &str = r#"
CREATE TABLE messages_fts_pending (id INTEGER PRIMARY KEY) STRICT;
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_queue AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts_pending (id) VALUES (new.id);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
        SELECT 'delete', old.id, old.content
        WHERE NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE id = old.id);
    DELETE FROM messages_fts_pending WHERE id = old.id;
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
WHEN old.content IS NOT new.content
    AND NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE id = old.id) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
"#;

/// Operator controls (`chorus admin`): instance admins and disabled accounts, and the instance-level
/// invites that `registration = invite` asks for at register.
const V3: &str = r#"
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
CREATE TABLE instance_invites (
    code       TEXT PRIMARY KEY,
    max_uses   INTEGER,
    uses       INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;
"#;

/// Moderation: slow mode per channel, server mute / deafen per member, and the guild audit log
/// (read newest first per guild, optionally per actor or action, through `audit_log_guild`); and
/// attachments.
const V4: &str = r#"
ALTER TABLE channels ADD COLUMN rate_limit_per_user INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN mute INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN deaf INTEGER NOT NULL DEFAULT 0;
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    guild_id    INTEGER NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL,
    action_type TEXT NOT NULL,
    target_id   INTEGER,
    reason      TEXT,
    changes     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_log_guild ON audit_log (guild_id, id);
-- Attachments, kept with their message (read and written whole, like mentions).
ALTER TABLE messages ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
-- Bytes each user has uploaded and not deleted (the upload quota).
CREATE TABLE upload_usage (
    user_id INTEGER PRIMARY KEY,
    bytes   INTEGER NOT NULL
) STRICT;
-- Two-factor authentication: the TOTP secret and the hashes of the unused recovery codes.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN recovery_codes TEXT NOT NULL DEFAULT '[]';
-- Link previews, kept with their message.
ALTER TABLE messages ADD COLUMN embeds TEXT NOT NULL DEFAULT '[]';
-- EMBED_LINKS (1 << 14) and ATTACH_FILES (1 << 15) are new and part of @everyone's defaults: existing
-- guilds get them as new ones do.
UPDATE roles SET permissions = permissions | 49152 WHERE id = guild_id;
"#;

/// The time step of the last TOTP code accepted per account: a code is good once (RFC 6238 §5.2).
const V5: &str = r#"
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
"#;

/// Indexes every queued message (see [`V2`]). Runs on the writer inside the group transaction,
/// outside any job savepoint; also at open, in case a file holds a queue from elsewhere.
pub fn drain_fts_queue(conn: &Connection) -> StoreResult<()> {
    let mut index = conn
        .prepare_cached(
            "INSERT INTO messages_fts (rowid, content) SELECT m.id, m.content \
             FROM messages_fts_pending AS p JOIN messages AS m ON m.id = p.id",
        )
        .map_err(db)?;
    index.execute([]).map_err(db)?;
    conn.prepare_cached("DELETE FROM messages_fts_pending").and_then(|mut s| s.execute([])).map_err(db)?;
    Ok(())
}

/// Brings the database to [`SCHEMA_VERSION`]; a no-op on an up-to-date file.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db)?;
    if current > SCHEMA_VERSION {
        // A newer binary wrote this file; running on it could corrupt data we do not understand.
        return Err(StoreError::Backend(format!(
            "database schema version {current} is newer than this build's {SCHEMA_VERSION}"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index + 1;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
        tx.execute_batch(sql).map_err(|e| StoreError::Backend(format!("sqlite migration {version} failed: {e}")))?;
        // PRAGMA takes no bound parameters; `version` is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {version}")).map_err(db)?;
        tx.commit().map_err(db)?;
        tracing::info!(version, "sqlite schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_file_upgrades_with_its_search_index_intact() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("v1.db")).unwrap();
        c.execute_batch(V1).unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO channels (id, name, kind, position, overwrites, recipients)
                 VALUES (1, 'c', 'text', 0, '[]', '[]');
             INSERT INTO messages (id, channel_id, author_id, content, created_at, mentions, pinned)
                 VALUES (10, 1, 1, 'old words', 0, '{}', 0);",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let version: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let found: i64 =
            c.query_row("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'old'", [], |r| r.get(0)).unwrap();
        assert_eq!(found, 10);
        // Indexed under V1, edited and deleted under V2's triggers.
        c.execute("UPDATE messages SET content = 'new words' WHERE id = 10", []).unwrap();
        c.execute("DELETE FROM messages WHERE id = 10", []).unwrap();
        c.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')", []).unwrap();
        let left: i64 = c
            .query_row("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'words'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    /// `tests/fixtures/schema-v2.db` was written by the release before V3 (two users, a guild, three
    /// messages); opening it must migrate it without losing any of that.
    #[test]
    fn a_database_of_the_previous_release_upgrades_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chorus.db");
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-v2.db"), &path).unwrap();
        let mut c = Connection::open(&path).unwrap();
        let before: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(before, 2);
        migrate(&mut c).unwrap();
        let after: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(after, SCHEMA_VERSION);
        let users: Vec<(String, i64, i64)> = c
            .prepare("SELECT username, admin, disabled FROM users ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(users, vec![("olduser".into(), 0, 0), ("second".into(), 0, 0)]);
        let found: i64 = c
            .query_row("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'previous'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(found, 3, "the old messages are still searchable");
        let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
    }

    #[test]
    fn a_failed_migration_leaves_the_file_at_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chorus.db");
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-v2.db"), &path).unwrap();
        let mut c = Connection::open(&path).unwrap();
        // A column V3 adds already exists: V3 fails half-way through its batch.
        c.execute_batch("ALTER TABLE users ADD COLUMN disabled INTEGER").unwrap();
        assert!(migrate(&mut c).is_err());
        let version: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 2, "no version bump");
        let admin_column: i64 = c
            .query_row("SELECT count(*) FROM pragma_table_info('users') WHERE name = 'admin'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(admin_column, 0, "the statement before the failing one was rolled back too");
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("n.db")).unwrap();
        c.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1)).unwrap();
        let e = migrate(&mut c).unwrap_err().to_string();
        assert!(e.contains("newer than this build"), "{e}");
    }
}
