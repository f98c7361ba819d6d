//! The MongoDB backend of [`Store`]: the storage of a multi-node Chorus cluster.
//!
//! It owns the database named in the URI path (`mongodb://host/DBNAME`, default `chorus`): its
//! collections and indexes (declared once in [`indexes`], created and verified at connect), the stored
//! shape of every record ([`docs`]), and the mapping of driver errors to [`StoreError`].
//!
//! Consistency model: every write is acknowledged by a majority with journaling (`w: majority, j: true`
//! unless the URI asks for another acknowledged level), so `Ok` means durable. There are no
//! multi-document transactions: each hot path is one single-document atomic operation, and uniqueness
//! rules are unique indexes. Multi-step deletions (guild, channel, message) remove children before
//! the parent so that a crash half-way leaves a state the same call can finish.

mod docs;
mod indexes;

use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, ClientOptions, ReturnDocument, WriteConcern};
use mongodb::{Client, Collection, Database};
use serde::de::DeserializeOwned;

use self::docs::*;
use self::indexes::*;
use super::{Inserted, Store, StoreError, StoreResult};
use crate::id::Id;
use crate::model::*;

/// The database used when the URI names none.
const DEFAULT_DATABASE: &str = "chorus";
/// Messages removed per round trip when a channel or guild is deleted: bounded requests, and each
/// batch's reactions go first so that no reaction outlives its message.
const PURGE_BATCH: i64 = 500;
/// Words of a search query used at most (each is one more index lookup).
const MAX_SEARCH_TERMS: usize = 16;

pub struct MongoStore {
    db: Database,
    users: Collection<UserDoc>,
    sessions: Collection<SessionDoc>,
    guilds: Collection<GuildDoc>,
    channels: Collection<ChannelDoc>,
    roles: Collection<RoleDoc>,
    members: Collection<MemberDoc>,
    bans: Collection<BanDoc>,
    invites: Collection<InviteDoc>,
    messages: Collection<MessageDoc>,
    reactions: Collection<ReactionDoc>,
    read_states: Collection<ReadStateDoc>,
    instance_invites: Collection<InstanceInviteDoc>,
    audit_log: Collection<AuditDoc>,
}

/// The code exists, has not expired at `now` and has uses left: guild and instance invites alike.
fn usable_invite(code: &str, now: Timestamp) -> Document {
    doc! {
        "_id": code,
        "$and": [
            { "$or": [ { "expires_at": Bson::Null }, { "expires_at": { "$gt": dt(now) } } ] },
            { "$or": [ { "max_uses": Bson::Null }, { "$expr": { "$lt": [ "$uses", "$max_uses" ] } } ] },
        ],
    }
}

/// One-time data changes of new releases, each done once per database: a document in
/// `schema_markers` records it, so a later deliberate change (an owner taking a right back) stands.
async fn upgrade(db: &Database) -> StoreResult<()> {
    let markers = db.collection::<Document>("schema_markers");
    const ATTACH_FILES_DEFAULT: &str = "attach_files_default";
    if markers.find_one(doc! { "_id": ATTACH_FILES_DEFAULT }).await.map_err(map_err)?.is_none() {
        // EMBED_LINKS and ATTACH_FILES (1 << 14, 1 << 15) joined @everyone's defaults: existing guilds
        // get them as new ones do.
        let roles = db.collection::<Document>(ROLES);
        let everyone: Vec<Document> = roles
            .find(doc! {})
            .projection(doc! { "_id": 1, "guild_id": 1 })
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        for role in everyone {
            let (id, guild) = (docs::int_of(role.get("_id")), docs::int_of(role.get("guild_id")));
            if let (Some(id), true) = (id, id == guild) {
                roles
                    .update_one(doc! { "_id": id }, doc! { "$bit": { "permissions": { "or": 3i64 << 14 } } })
                    .await
                    .map_err(map_err)?;
            }
        }
        match markers.insert_one(doc! { "_id": ATTACH_FILES_DEFAULT }).await {
            // Another node starting at the same time did it too (OR-ing a bit twice is harmless).
            Err(e) if duplicate_index(&e).is_none() => return Err(map_err(e)),
            _ => {}
        }
    }
    Ok(())
}

pub(super) async fn open_dyn(uri: &str) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(MongoStore::connect(uri).await?))
}

impl MongoStore {
    /// Connects, checks the server answers, and creates and verifies collections and indexes.
    pub async fn connect(uri: &str) -> StoreResult<Self> {
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(|e| StoreError::Backend(format!("mongodb: invalid URI: {}", describe(&e))))?;
        let db_name = options.default_database.clone().unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        options.app_name.get_or_insert_with(|| "chorus".to_owned());
        options.write_concern = Some(durable_write_concern(options.write_concern.take())?);
        let client = Client::with_options(options).map_err(map_err)?;
        let db = client.database(&db_name);
        db.run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| StoreError::Backend(format!("mongodb: server not reachable: {}", describe(&e))))?;
        indexes::ensure(&db).await?;
        upgrade(&db).await?;
        tracing::info!(database = %db_name, "mongodb store ready");
        Ok(MongoStore {
            users: db.collection(USERS),
            sessions: db.collection(SESSIONS),
            guilds: db.collection(GUILDS),
            channels: db.collection(CHANNELS),
            roles: db.collection(ROLES),
            members: db.collection(MEMBERS),
            bans: db.collection(BANS),
            invites: db.collection(INVITES),
            messages: db.collection(MESSAGES),
            reactions: db.collection(REACTIONS),
            read_states: db.collection(READ_STATES),
            instance_invites: db.collection(INSTANCE_INVITES),
            audit_log: db.collection(AUDIT_LOG),
            db,
        })
    }

    fn raw(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// Advances the channel's newest-message marker. `$max` makes it order-independent: concurrent
    /// sends, and a retried send that repairs a crash between its two writes, never move it back.
    async fn bump_last_message(&self, channel_id: i64, message_id: i64) -> StoreResult<()> {
        self.channels
            .update_one(doc! { "_id": channel_id }, doc! { "$max": { "last_message_id": message_id } })
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Deletes a channel's messages (with their reactions) and read states, in batches.
    async fn purge_channel_contents(&self, channel_id: i64) -> StoreResult<()> {
        let raw_messages = self.raw(MESSAGES);
        loop {
            let batch: Vec<Document> = raw_messages
                .find(doc! { "channel_id": channel_id })
                .projection(doc! { "_id": 1, "author_id": 1, "attachments": 1 })
                .limit(PURGE_BATCH)
                .await
                .map_err(map_err)?
                .try_collect()
                .await
                .map_err(map_err)?;
            let ids: Vec<Bson> = batch.iter().filter_map(|d| d.get("_id").cloned()).collect();
            if ids.is_empty() {
                break;
            }
            self.reactions.delete_many(doc! { "message_id": { "$in": &ids } }).await.map_err(map_err)?;
            // A message with files goes on its own, and its bytes go back to the uploader only if this
            // delete took it: a message delete racing the purge (which gives them back itself), or a
            // second purge of the channel, must not give them back twice. After the delete: a crash in
            // between leaves bytes counted, never files uncounted.
            let mut plain = Vec::new();
            for m in &batch {
                let Some(id) = m.get("_id").cloned() else { continue };
                let Some((author, bytes)) = docs::upload_bytes(m) else {
                    plain.push(id);
                    continue;
                };
                let deleted = self.messages.delete_one(doc! { "_id": id }).await.map_err(map_err)?;
                if deleted.deleted_count == 1 {
                    self.add_upload_usage(author, -bytes).await?;
                }
            }
            self.messages.delete_many(doc! { "_id": { "$in": &plain } }).await.map_err(map_err)?;
        }
        self.read_states.delete_many(doc! { "channel_id": channel_id }).await.map_err(map_err)?;
        Ok(())
    }

    /// Counts messages matching `filter`, stopping at `cap` (unread badges show "99+", never more).
    /// The pipeline is what countDocuments with a limit sends, but with an Int32 `$limit`: the
    /// driver's own sends an Int64, which the test stand-in rejects; both are valid on a real server.
    async fn count_capped(&self, filter: Document, cap: u32) -> StoreResult<u32> {
        if cap == 0 {
            return Ok(0);
        }
        let limit = i32::try_from(cap).unwrap_or(i32::MAX);
        let pipeline = [
            doc! { "$match": filter },
            doc! { "$limit": limit },
            doc! { "$group": { "_id": Bson::Null, "n": { "$sum": 1 } } },
        ];
        let groups: Vec<Document> =
            self.messages.aggregate(pipeline).await.map_err(map_err)?.try_collect().await.map_err(map_err)?;
        let n = match groups.first() {
            None => 0,
            Some(g) => docs::int_of(g.get("n")).ok_or_else(|| StoreError::Corrupt(format!("count result: {g}")))?,
        };
        Ok(u32::try_from(n).unwrap_or(cap).min(cap))
    }

    async fn find_messages(&self, filter: Document, sort: Document, limit: u32) -> StoreResult<Vec<Message>> {
        if limit == 0 {
            // MongoDB reads limit 0 as "no limit".
            return Ok(Vec::new());
        }
        let cursor = self.messages.find(filter).sort(sort).limit(i64::from(limit)).await.map_err(map_err)?;
        collect(cursor, MessageDoc::into_message).await
    }
}

/// Keeps the URI's acknowledged write level (default majority) and always asks for the journal.
/// Unacknowledged writes (w: 0) would break the store's durability contract, so they are refused.
fn durable_write_concern(from_uri: Option<WriteConcern>) -> StoreResult<WriteConcern> {
    let mut wc = from_uri.unwrap_or_default();
    if matches!(wc.w, Some(Acknowledgment::Nodes(0))) {
        return Err(StoreError::Backend(
            "mongodb: w=0 (unacknowledged writes) is not allowed; use w=majority or w=1".into(),
        ));
    }
    if wc.w.is_none() {
        wc.w = Some(Acknowledgment::Majority);
    }
    wc.journal = Some(true);
    Ok(wc)
}

// ---------------------------------------------------------------- errors

/// The server error code of a failed operation, if the server sent one.
pub(super) fn error_code(e: &MongoError) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    }
}

/// For a duplicate-key error, the name of the unique index that refused the write ("" if the server
/// did not say); None for any other error.
fn duplicate_index(e: &MongoError) -> Option<String> {
    let message = match e.kind.as_ref() {
        ErrorKind::Command(c) if c.code == 11000 || c.code == 11001 => &c.message,
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000 || w.code == 11001 => &w.message,
        _ => return None,
    };
    // "E11000 duplicate key error collection: db.coll index: NAME dup key: { ... }"
    let name = message.split_once(" index: ").and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or_default();
    Some(name.to_owned())
}

pub(super) fn map_err(e: MongoError) -> StoreError {
    match e.kind.as_ref() {
        ErrorKind::BsonDeserialization(d) => StoreError::Corrupt(format!("mongodb document: {d}")),
        _ => StoreError::Backend(format!("mongodb: {}", describe(&e))),
    }
}

/// A one-line account of a driver error: the server's code, name and message when it sent them
/// (the driver's own Display appends a hex dump of the raw reply), else the driver's description.
pub(super) fn describe(e: &MongoError) -> String {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => format!("error {} ({}): {}", c.code, c.code_name, c.message),
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            format!("write error {}: {}", w.code, w.message)
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => {
            format!("write concern error {} ({}): {}", w.code, w.code_name, w.message)
        }
        other => other.to_string(),
    }
}

/// Maps a duplicate key to the trait's conflict name, anything else to Backend.
fn conflict_or(e: MongoError, name: &'static str) -> StoreError {
    if duplicate_index(&e).is_some() { StoreError::Conflict(name) } else { map_err(e) }
}

async fn collect<T, U>(cursor: mongodb::Cursor<T>, convert: impl Fn(T) -> StoreResult<U>) -> StoreResult<Vec<U>>
where
    T: DeserializeOwned + Unpin + Send + Sync,
{
    let docs: Vec<T> = cursor.try_collect().await.map_err(map_err)?;
    docs.into_iter().map(convert).collect()
}

/// A user's query as MongoDB `$text` input: every word quoted, which makes the words required
/// (all must appear, as in the SQLite backend's FTS) and strips `$text` operators (`-word`, quotes)
/// out of user input. None when the query has no word.
pub fn text_search_terms(query: &str) -> Option<String> {
    let words: Vec<&str> =
        query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(MAX_SEARCH_TERMS).collect();
    if words.is_empty() {
        return None;
    }
    Some(words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" "))
}

// ---------------------------------------------------------------- the trait

#[async_trait]
impl Store for MongoStore {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map_err(map_err)?;
        Ok(())
    }

    async fn flush(&self) -> StoreResult<()> {
        // Every acknowledged write is already journaled (j: true); nothing is buffered here. The
        // driver's pools close when the last handle to the store is dropped.
        Ok(())
    }

    // ---- users and sessions

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        match self.users.insert_one(UserDoc::from_record(user)).await {
            Ok(_) => Ok(()),
            Err(e) => match duplicate_index(&e).as_deref() {
                Some("_id_") => Err(StoreError::Conflict("user")),
                Some(_) => Err(StoreError::Conflict("username")),
                None => Err(map_err(e)),
            },
        }
    }

    async fn user(&self, id: Id) -> StoreResult<Option<UserRecord>> {
        let found = self.users.find_one(doc! { "_id": id.as_i64() }).await.map_err(map_err)?;
        found.map(UserDoc::into_record).transpose()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let found = self.users.find_one(doc! { "username_lower": username_key(username) }).await.map_err(map_err)?;
        found.map(UserDoc::into_record).transpose()
    }

    async fn first_user(&self) -> StoreResult<Option<User>> {
        let found = self.users.find_one(doc! {}).sort(doc! { "_id": 1 }).await.map_err(map_err)?;
        found.map(|d| d.into_record().map(|r| r.user)).transpose()
    }

    async fn users(&self, ids: &[Id]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let cursor = self.users.find(doc! { "_id": { "$in": raw_ids(ids) } }).await.map_err(map_err)?;
        collect(cursor, |d| d.into_record().map(|r| r.user)).await
    }

    async fn set_display_name(&self, id: Id, display_name: Option<&str>) -> StoreResult<()> {
        self.users
            .update_one(doc! { "_id": id.as_i64() }, doc! { "$set": { "display_name": display_name } })
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn set_password_hash(&self, id: Id, password_hash: &str) -> StoreResult<()> {
        self.users
            .update_one(doc! { "_id": id.as_i64() }, doc! { "$set": { "password_hash": password_hash } })
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn set_username(&self, id: Id, username: &str) -> StoreResult<()> {
        let update = doc! { "$set": { "username": username, "username_lower": docs::username_key(username) } };
        match self.users.update_one(doc! { "_id": id.as_i64() }, update).await {
            Ok(_) => Ok(()),
            Err(e) if duplicate_index(&e).is_some() => Err(StoreError::Conflict("username")),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn set_totp(&self, id: Id, secret: Option<&str>, recovery_codes: &[String]) -> StoreResult<()> {
        let update = match secret {
            Some(s) => doc! { "$set": { "totp_secret": s, "recovery_codes": recovery_codes } },
            None => doc! { "$unset": { "totp_secret": "" }, "$set": { "recovery_codes": recovery_codes } },
        };
        self.users.update_one(doc! { "_id": id.as_i64() }, update).await.map_err(map_err)?;
        Ok(())
    }

    async fn use_totp_step(&self, id: Id, step: u64) -> StoreResult<bool> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        // One conditional update (a missing field is an account that never used a code).
        let r = self
            .users
            .update_one(
                doc! { "_id": id.as_i64(), "$or": [ { "totp_last_step": { "$exists": false } }, { "totp_last_step": { "$lt": step } } ] },
                doc! { "$set": { "totp_last_step": step } },
            )
            .await
            .map_err(map_err)?;
        Ok(r.modified_count > 0)
    }

    async fn use_recovery_code(&self, id: Id, code_hash: &str) -> StoreResult<bool> {
        // One conditional update: two logins racing with the same code cannot both spend it.
        let r = self
            .users
            .update_one(
                doc! { "_id": id.as_i64(), "recovery_codes": code_hash },
                doc! { "$pull": { "recovery_codes": code_hash } },
            )
            .await
            .map_err(map_err)?;
        Ok(r.modified_count > 0)
    }

    async fn delete_user(&self, id: Id) -> StoreResult<()> {
        let uid = id.as_i64();
        self.sessions.delete_many(doc! { "user_id": uid }).await.map_err(map_err)?;
        self.read_states.delete_many(doc! { "user_id": uid }).await.map_err(map_err)?;
        self.raw(UPLOAD_USAGE).delete_one(doc! { "_id": uid }).await.map_err(map_err)?;
        self.users.delete_one(doc! { "_id": uid }).await.map_err(map_err)?;
        Ok(())
    }

    async fn set_user_flags(&self, id: Id, admin: bool, disabled: bool) -> StoreResult<()> {
        self.users
            .update_one(doc! { "_id": id.as_i64() }, doc! { "$set": { "admin": admin, "disabled": disabled } })
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_users(&self, after: Id, limit: u32) -> StoreResult<Vec<UserRecord>> {
        let cursor = self
            .users
            .find(doc! { "_id": { "$gt": after.as_i64() } })
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(map_err)?;
        collect(cursor, UserDoc::into_record).await
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        self.sessions.insert_one(SessionDoc::from_session(session)).await.map_err(|e| conflict_or(e, "session"))?;
        Ok(())
    }

    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        let found = self.sessions.find_one(doc! { "token_hash": token_hash }).await.map_err(map_err)?;
        found.map(SessionDoc::into_session).transpose()
    }

    async fn sessions_of(&self, user_id: Id) -> StoreResult<Vec<Session>> {
        let cursor =
            self.sessions.find(doc! { "user_id": user_id.as_i64() }).sort(doc! { "_id": 1 }).await.map_err(map_err)?;
        collect(cursor, SessionDoc::into_session).await
    }

    async fn delete_session(&self, user_id: Id, session_id: Id) -> StoreResult<bool> {
        let r = self
            .sessions
            .delete_one(doc! { "_id": session_id.as_i64(), "user_id": user_id.as_i64() })
            .await
            .map_err(map_err)?;
        Ok(r.deleted_count > 0)
    }

    async fn delete_sessions_of(&self, user_id: Id) -> StoreResult<u64> {
        let r = self.sessions.delete_many(doc! { "user_id": user_id.as_i64() }).await.map_err(map_err)?;
        Ok(r.deleted_count)
    }

    // ---- guilds

    async fn insert_guild(&self, guild: &Guild) -> StoreResult<()> {
        self.guilds.insert_one(GuildDoc::from_guild(guild)).await.map_err(|e| conflict_or(e, "guild"))?;
        Ok(())
    }

    async fn guild(&self, id: Id) -> StoreResult<Option<Guild>> {
        let found = self.guilds.find_one(doc! { "_id": id.as_i64() }).await.map_err(map_err)?;
        found.map(GuildDoc::into_guild).transpose()
    }

    async fn update_guild(&self, guild: &Guild) -> StoreResult<()> {
        self.guilds
            .update_one(
                doc! { "_id": guild.id.as_i64() },
                doc! { "$set": { "name": &guild.name, "owner_id": guild.owner_id.as_i64() } },
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_guilds(&self, after: Id, limit: u32) -> StoreResult<Vec<Guild>> {
        let cursor = self
            .guilds
            .find(doc! { "_id": { "$gt": after.as_i64() } })
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(map_err)?;
        collect(cursor, GuildDoc::into_guild).await
    }

    async fn delete_guild(&self, id: Id) -> StoreResult<()> {
        let gid = id.as_i64();
        // Children first, the guild document last: a crash half-way leaves a guild whose deletion
        // can simply be run again.
        let channel_ids: Vec<Document> = self
            .raw(CHANNELS)
            .find(doc! { "guild_id": gid })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        for channel in channel_ids {
            if let Some(cid) = docs::int_of(channel.get("_id")) {
                self.purge_channel_contents(cid).await?;
            }
        }
        self.channels.delete_many(doc! { "guild_id": gid }).await.map_err(map_err)?;
        self.roles.delete_many(doc! { "guild_id": gid }).await.map_err(map_err)?;
        self.members.delete_many(doc! { "guild_id": gid }).await.map_err(map_err)?;
        self.bans.delete_many(doc! { "guild_id": gid }).await.map_err(map_err)?;
        self.invites.delete_many(doc! { "guild_id": gid }).await.map_err(map_err)?;
        self.audit_log.delete_many(doc! { "guild_id": gid }).await.map_err(map_err)?;
        self.guilds.delete_one(doc! { "_id": gid }).await.map_err(map_err)?;
        Ok(())
    }

    // ---- channels

    async fn put_channel(&self, channel: &Channel) -> StoreResult<()> {
        let stored = ChannelDoc::from_channel(channel);
        let mut set = mongodb::bson::to_document(&stored)
            .map_err(|e| StoreError::Backend(format!("mongodb: encoding channel: {e}")))?;
        set.remove("_id");
        // last_message_id only moves forward, whatever copy of the channel the caller edited: a
        // rename racing a send must not hide the new message from unread state.
        let last = set.remove("last_message_id").unwrap_or(Bson::Null);
        let mut unset = Document::new();
        for optional in ["recipients", "dm_key"] {
            if !set.contains_key(optional) {
                unset.insert(optional, "");
            }
        }
        let mut update = doc! { "$set": set, "$max": { "last_message_id": last } };
        if !unset.is_empty() {
            update.insert("$unset", unset);
        }
        self.channels
            .update_one(doc! { "_id": stored.id }, update)
            .upsert(true)
            .await
            .map_err(|e| conflict_or(e, "channel"))?;
        Ok(())
    }

    async fn channel(&self, id: Id) -> StoreResult<Option<Channel>> {
        let found = self.channels.find_one(doc! { "_id": id.as_i64() }).await.map_err(map_err)?;
        found.map(ChannelDoc::into_channel).transpose()
    }

    async fn guild_channels(&self, guild_id: Id) -> StoreResult<Vec<Channel>> {
        let cursor = self
            .channels
            .find(doc! { "guild_id": guild_id.as_i64() })
            .sort(doc! { "position": 1, "_id": 1 })
            .await
            .map_err(map_err)?;
        collect(cursor, ChannelDoc::into_channel).await
    }

    async fn delete_channel(&self, id: Id) -> StoreResult<()> {
        let cid = id.as_i64();
        self.purge_channel_contents(cid).await?;
        self.channels
            .update_many(doc! { "parent_id": cid }, doc! { "$set": { "parent_id": Bson::Null } })
            .await
            .map_err(map_err)?;
        self.channels.delete_one(doc! { "_id": cid }).await.map_err(map_err)?;
        Ok(())
    }

    async fn dm_channel(&self, a: Id, b: Id) -> StoreResult<Option<Channel>> {
        let found = self.channels.find_one(doc! { "dm_key": dm_key(a, b) }).await.map_err(map_err)?;
        found.map(ChannelDoc::into_channel).transpose()
    }

    async fn dm_channels_of(&self, user_id: Id) -> StoreResult<Vec<Channel>> {
        let cursor = self
            .channels
            .find(doc! { "recipients": user_id.as_i64() })
            .sort(doc! { "_id": 1 })
            .await
            .map_err(map_err)?;
        collect(cursor, ChannelDoc::into_channel).await
    }

    // ---- roles

    async fn put_role(&self, role: &Role) -> StoreResult<()> {
        self.roles
            .replace_one(doc! { "_id": role.id.as_i64() }, RoleDoc::from_role(role))
            .upsert(true)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn guild_roles(&self, guild_id: Id) -> StoreResult<Vec<Role>> {
        let cursor = self
            .roles
            .find(doc! { "guild_id": guild_id.as_i64() })
            .sort(doc! { "position": 1, "_id": 1 })
            .await
            .map_err(map_err)?;
        collect(cursor, RoleDoc::into_role).await
    }

    async fn delete_role(&self, guild_id: Id, role_id: Id) -> StoreResult<()> {
        let (gid, rid) = (guild_id.as_i64(), role_id.as_i64());
        // References first, then the role, so a retry after a crash still finds what to clean.
        self.members
            .update_many(doc! { "guild_id": gid, "roles": rid }, doc! { "$pull": { "roles": rid } })
            .await
            .map_err(map_err)?;
        self.channels
            .update_many(
                doc! { "guild_id": gid, "overwrites.id": rid },
                doc! { "$pull": { "overwrites": { "id": rid, "kind": OVERWRITE_ROLE } } },
            )
            .await
            .map_err(map_err)?;
        self.roles.delete_one(doc! { "_id": rid, "guild_id": gid }).await.map_err(map_err)?;
        Ok(())
    }

    // ---- members and bans

    async fn insert_member(&self, member: &Member) -> StoreResult<()> {
        self.members.insert_one(MemberDoc::from_member(member)).await.map_err(|e| conflict_or(e, "member"))?;
        Ok(())
    }

    async fn member(&self, guild_id: Id, user_id: Id) -> StoreResult<Option<Member>> {
        let found = self
            .members
            .find_one(doc! { "guild_id": guild_id.as_i64(), "user_id": user_id.as_i64() })
            .await
            .map_err(map_err)?;
        found.map(MemberDoc::into_member).transpose()
    }

    async fn members(&self, guild_id: Id, after: Id, limit: u32) -> StoreResult<Vec<Member>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let cursor = self
            .members
            .find(doc! { "guild_id": guild_id.as_i64(), "user_id": { "$gt": after.as_i64() } })
            .sort(doc! { "user_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(map_err)?;
        collect(cursor, MemberDoc::into_member).await
    }

    async fn update_member(&self, member: &Member) -> StoreResult<()> {
        let stored = MemberDoc::from_member(member);
        self.members
            .update_one(
                doc! { "guild_id": stored.guild_id, "user_id": stored.user_id },
                doc! { "$set": {
                    "nick": stored.nick,
                    "roles": stored.roles,
                    "timed_out_until": stored.timed_out_until,
                    "mute": stored.mute,
                    "deaf": stored.deaf,
                } },
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_member(&self, guild_id: Id, user_id: Id) -> StoreResult<bool> {
        let r = self
            .members
            .delete_one(doc! { "guild_id": guild_id.as_i64(), "user_id": user_id.as_i64() })
            .await
            .map_err(map_err)?;
        Ok(r.deleted_count > 0)
    }

    async fn member_count(&self, guild_id: Id) -> StoreResult<u64> {
        self.members.count_documents(doc! { "guild_id": guild_id.as_i64() }).await.map_err(map_err)
    }

    async fn guilds_of(&self, user_id: Id) -> StoreResult<Vec<Id>> {
        let found: Vec<Document> = self
            .raw(MEMBERS)
            .find(doc! { "user_id": user_id.as_i64() })
            .projection(doc! { "_id": 0, "guild_id": 1 })
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        let mut ids = found
            .iter()
            .map(|d| {
                docs::int_of(d.get("guild_id"))
                    .map(Id::from_i64)
                    .ok_or_else(|| StoreError::Corrupt(format!("member without guild_id: {d}")))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn put_ban(&self, ban: &Ban) -> StoreResult<()> {
        let filter = doc! { "guild_id": ban.guild_id.as_i64(), "user_id": ban.user_id.as_i64() };
        let stored = BanDoc::from_ban(ban);
        for attempt in 0..2 {
            match self.bans.replace_one(filter.clone(), &stored).upsert(true).await {
                Ok(_) => return Ok(()),
                // Two concurrent upserts of one ban: the loser retries and now replaces.
                Err(e) if attempt == 0 && duplicate_index(&e).is_some() => continue,
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(())
    }

    async fn ban(&self, guild_id: Id, user_id: Id) -> StoreResult<Option<Ban>> {
        let found = self
            .bans
            .find_one(doc! { "guild_id": guild_id.as_i64(), "user_id": user_id.as_i64() })
            .await
            .map_err(map_err)?;
        found.map(BanDoc::into_ban).transpose()
    }

    async fn bans(&self, guild_id: Id) -> StoreResult<Vec<Ban>> {
        let cursor = self
            .bans
            .find(doc! { "guild_id": guild_id.as_i64() })
            .sort(doc! { "user_id": 1 })
            .await
            .map_err(map_err)?;
        collect(cursor, BanDoc::into_ban).await
    }

    async fn delete_ban(&self, guild_id: Id, user_id: Id) -> StoreResult<bool> {
        let r = self
            .bans
            .delete_one(doc! { "guild_id": guild_id.as_i64(), "user_id": user_id.as_i64() })
            .await
            .map_err(map_err)?;
        Ok(r.deleted_count > 0)
    }

    // ---- invites

    async fn insert_invite(&self, invite: &Invite) -> StoreResult<()> {
        self.invites.insert_one(InviteDoc::from_invite(invite)).await.map_err(|e| conflict_or(e, "invite"))?;
        Ok(())
    }

    async fn invite(&self, code: &str) -> StoreResult<Option<Invite>> {
        let found = self.invites.find_one(doc! { "_id": code }).await.map_err(map_err)?;
        found.map(InviteDoc::into_invite).transpose()
    }

    async fn guild_invites(&self, guild_id: Id) -> StoreResult<Vec<Invite>> {
        let cursor = self
            .invites
            .find(doc! { "guild_id": guild_id.as_i64() })
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await
            .map_err(map_err)?;
        collect(cursor, InviteDoc::into_invite).await
    }

    async fn delete_invite(&self, code: &str) -> StoreResult<bool> {
        let r = self.invites.delete_one(doc! { "_id": code }).await.map_err(map_err)?;
        Ok(r.deleted_count > 0)
    }

    async fn use_invite(&self, code: &str, now: Timestamp) -> StoreResult<Option<Invite>> {
        // One findAndModify: the usability check and the increment happen on one document
        // atomically, so the last use of an invite cannot be handed out twice.
        let filter = usable_invite(code, now);
        let updated = self
            .invites
            .find_one_and_update(filter, doc! { "$inc": { "uses": 1_i64 } })
            .return_document(ReturnDocument::After)
            .await
            .map_err(map_err)?;
        updated.map(InviteDoc::into_invite).transpose()
    }

    async fn insert_instance_invite(&self, invite: &InstanceInvite) -> StoreResult<()> {
        self.instance_invites
            .insert_one(InstanceInviteDoc::from_invite(invite))
            .await
            .map_err(|e| conflict_or(e, "instance_invite"))?;
        Ok(())
    }

    async fn use_instance_invite(&self, code: &str, now: Timestamp) -> StoreResult<Option<InstanceInvite>> {
        // The same single findAndModify as `use_invite`.
        let filter = usable_invite(code, now);
        let updated = self
            .instance_invites
            .find_one_and_update(filter, doc! { "$inc": { "uses": 1_i64 } })
            .return_document(ReturnDocument::After)
            .await
            .map_err(map_err)?;
        updated.map(InstanceInviteDoc::into_invite).transpose()
    }

    // ---- messages

    async fn insert_message(&self, message: &Message) -> StoreResult<Inserted> {
        let stored = MessageDoc::from_message(message);
        match self.messages.insert_one(&stored).await {
            Ok(_) => {
                self.bump_last_message(stored.channel_id, stored.id).await?;
                Ok(Inserted::Created)
            }
            Err(e) => {
                if duplicate_index(&e).is_none() {
                    return Err(map_err(e));
                }
                let Some(nonce) = &stored.nonce else {
                    return Err(StoreError::Conflict("message"));
                };
                // The unique nonce index refused a retried send: answer with the first message.
                let first = self
                    .messages
                    .find_one(doc! { "channel_id": stored.channel_id, "author_id": stored.author_id, "nonce": nonce })
                    .await
                    .map_err(map_err)?;
                let Some(first) = first else {
                    return Err(StoreError::Conflict("message"));
                };
                // Repairs the marker if the first send died between its two writes.
                self.bump_last_message(first.channel_id, first.id).await?;
                Ok(Inserted::Existing(Box::new(first.into_message()?)))
            }
        }
    }

    async fn message(&self, channel_id: Id, id: Id) -> StoreResult<Option<Message>> {
        let found = self
            .messages
            .find_one(doc! { "_id": id.as_i64(), "channel_id": channel_id.as_i64() })
            .await
            .map_err(map_err)?;
        found.map(MessageDoc::into_message).transpose()
    }

    async fn update_message(&self, message: &Message) -> StoreResult<()> {
        let stored = MessageDoc::from_message(message);
        let mentions = mongodb::bson::to_bson(&stored.mentions)
            .map_err(|e| StoreError::Backend(format!("mongodb: encoding mentions: {e}")))?;
        self.messages
            .update_one(
                doc! { "_id": stored.id, "channel_id": stored.channel_id },
                doc! { "$set": {
                    "content": stored.content,
                    "edited_at": stored.edited_at,
                    "mentions": mentions,
                    "pinned": stored.pinned,
                } },
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn message_by_nonce(&self, channel_id: Id, author_id: Id, nonce: &str) -> StoreResult<Option<Message>> {
        let found = self
            .messages
            .find_one(doc! { "channel_id": channel_id.as_i64(), "author_id": author_id.as_i64(), "nonce": nonce })
            .await
            .map_err(map_err)?;
        found.map(MessageDoc::into_message).transpose()
    }

    async fn set_embeds(
        &self,
        channel_id: Id,
        id: Id,
        content: &str,
        embeds: &[crate::previews::Embed],
    ) -> StoreResult<bool> {
        let embeds = mongodb::bson::to_bson(embeds)
            .map_err(|e| StoreError::Backend(format!("mongodb: encoding embeds: {e}")))?;
        let r = self
            .messages
            .update_one(
                doc! { "_id": id.as_i64(), "channel_id": channel_id.as_i64(), "content": content },
                doc! { "$set": { "embeds": embeds } },
            )
            .await
            .map_err(map_err)?;
        Ok(r.matched_count > 0)
    }

    async fn delete_message(&self, channel_id: Id, id: Id) -> StoreResult<bool> {
        let filter = doc! { "_id": id.as_i64(), "channel_id": channel_id.as_i64() };
        // Checked first so that a wrong channel id cannot strip another channel's reactions.
        let exists =
            self.raw(MESSAGES).find_one(filter.clone()).projection(doc! { "_id": 1 }).await.map_err(map_err)?;
        if exists.is_none() {
            return Ok(false);
        }
        // Reactions before the message: a crash in between leaves a message the caller can delete again.
        self.reactions.delete_many(doc! { "message_id": id.as_i64() }).await.map_err(map_err)?;
        let r = self.messages.delete_one(filter).await.map_err(map_err)?;
        Ok(r.deleted_count > 0)
    }

    async fn messages(&self, channel_id: Id, anchor: HistoryAnchor, limit: u32) -> StoreResult<Vec<Message>> {
        let cid = channel_id.as_i64();
        let newest_first = doc! { "_id": -1 };
        let oldest_first = doc! { "_id": 1 };
        match anchor {
            HistoryAnchor::Latest => self.find_messages(doc! { "channel_id": cid }, newest_first, limit).await,
            HistoryAnchor::Before(id) => {
                self.find_messages(doc! { "channel_id": cid, "_id": { "$lt": id.as_i64() } }, newest_first, limit).await
            }
            HistoryAnchor::After(id) => {
                self.find_messages(doc! { "channel_id": cid, "_id": { "$gt": id.as_i64() } }, oldest_first, limit).await
            }
            HistoryAnchor::Around(id) => {
                let newer_limit = limit / 2;
                let older_limit = limit - newer_limit;
                let mut newer = self
                    .find_messages(doc! { "channel_id": cid, "_id": { "$gt": id.as_i64() } }, oldest_first, newer_limit)
                    .await?;
                let older = self
                    .find_messages(
                        doc! { "channel_id": cid, "_id": { "$lte": id.as_i64() } },
                        newest_first,
                        older_limit,
                    )
                    .await?;
                newer.reverse();
                newer.extend(older);
                Ok(newer)
            }
        }
    }

    async fn pinned_messages(&self, channel_id: Id) -> StoreResult<Vec<Message>> {
        let cursor = self
            .messages
            .find(doc! { "channel_id": channel_id.as_i64(), "pinned": true })
            .sort(doc! { "_id": -1 })
            .await
            .map_err(map_err)?;
        collect(cursor, MessageDoc::into_message).await
    }

    async fn count_messages_after(&self, channel_id: Id, after: Id, cap: u32) -> StoreResult<u32> {
        self.count_capped(doc! { "channel_id": channel_id.as_i64(), "_id": { "$gt": after.as_i64() } }, cap).await
    }

    async fn count_mentions_after(
        &self,
        channel_id: Id,
        after: Id,
        user_id: Id,
        role_ids: &[Id],
        cap: u32,
    ) -> StoreResult<u32> {
        let mut who = vec![doc! { "mentions.users": user_id.as_i64() }, doc! { "mentions.everyone": true }];
        if !role_ids.is_empty() {
            who.push(doc! { "mentions.roles": { "$in": raw_ids(role_ids) } });
        }
        let filter = doc! { "channel_id": channel_id.as_i64(), "_id": { "$gt": after.as_i64() }, "$or": who };
        self.count_capped(filter, cap).await
    }

    async fn search_messages(&self, channel_ids: &[Id], query: &str, limit: u32) -> StoreResult<Vec<Message>> {
        if channel_ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(terms) = text_search_terms(query) else {
            return Ok(Vec::new());
        };
        self.find_messages(
            doc! { "$text": { "$search": terms }, "channel_id": { "$in": raw_ids(channel_ids) } },
            doc! { "_id": -1 },
            limit,
        )
        .await
    }

    // ---- reactions

    async fn add_reaction(&self, message_id: Id, emoji: &str, user_id: Id) -> StoreResult<bool> {
        let reaction = ReactionDoc {
            message_id: message_id.as_i64(),
            emoji: emoji.to_owned(),
            user_id: user_id.as_i64(),
            at: mongodb::bson::DateTime::now(),
        };
        // The unique (message, emoji, user) index makes a repeated reaction a no-op.
        match self.reactions.insert_one(reaction).await {
            Ok(_) => Ok(true),
            Err(e) if duplicate_index(&e).is_some() => Ok(false),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn remove_reaction(&self, message_id: Id, emoji: &str, user_id: Id) -> StoreResult<bool> {
        let r = self
            .reactions
            .delete_one(doc! { "message_id": message_id.as_i64(), "emoji": emoji, "user_id": user_id.as_i64() })
            .await
            .map_err(map_err)?;
        Ok(r.deleted_count > 0)
    }

    async fn reactions(&self, message_ids: &[Id], viewer: Id) -> StoreResult<Vec<ReactionCount>> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = [
            doc! { "$match": { "message_id": { "$in": raw_ids(message_ids) } } },
            doc! { "$group": {
                "_id": { "m": "$message_id", "e": "$emoji" },
                "count": { "$sum": 1 },
                // Arrival order of an emoji on a message: its first reaction's time, then its
                // ObjectId (monotonic per node) for reactions within one millisecond.
                "first_at": { "$min": "$at" },
                "first_id": { "$min": "$_id" },
                "me": { "$max": { "$cond": [ { "$eq": [ "$user_id", viewer.as_i64() ] }, 1, 0 ] } },
            } },
            doc! { "$sort": { "_id.m": 1, "first_at": 1, "first_id": 1 } },
        ];
        let groups: Vec<Document> =
            self.reactions.aggregate(pipeline).await.map_err(map_err)?.try_collect().await.map_err(map_err)?;
        groups
            .into_iter()
            .map(|g| {
                let corrupt = || StoreError::Corrupt(format!("reaction group: {g}"));
                let key = g.get_document("_id").map_err(|_| corrupt())?;
                let message_id = docs::int_of(key.get("m")).ok_or_else(corrupt)?;
                let emoji = key.get_str("e").map_err(|_| corrupt())?;
                let count = docs::int_of(g.get("count")).ok_or_else(corrupt)?;
                Ok(ReactionCount {
                    message_id: Id::from_i64(message_id),
                    emoji: emoji.to_owned(),
                    count: u32::try_from(count).map_err(|_| corrupt())?,
                    me: docs::int_of(g.get("me")).ok_or_else(corrupt)? > 0,
                })
            })
            .collect()
    }

    // ---- read states

    async fn ack(&self, user_id: Id, channel_id: Id, message_id: Id) -> StoreResult<()> {
        let filter = doc! { "user_id": user_id.as_i64(), "channel_id": channel_id.as_i64() };
        // `$max` with upsert: one atomic document update that never moves the marker backwards.
        let update = doc! { "$max": { "last_read_id": message_id.as_i64() } };
        for attempt in 0..2 {
            match self.read_states.update_one(filter.clone(), update.clone()).upsert(true).await {
                Ok(_) => return Ok(()),
                // Two first acks racing to insert: the loser retries and now updates.
                Err(e) if attempt == 0 && duplicate_index(&e).is_some() => continue,
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(())
    }

    async fn read_states(&self, user_id: Id) -> StoreResult<Vec<ReadState>> {
        let cursor = self
            .read_states
            .find(doc! { "user_id": user_id.as_i64() })
            .sort(doc! { "channel_id": 1 })
            .await
            .map_err(map_err)?;
        let states: Vec<ReadStateDoc> = cursor.try_collect().await.map_err(map_err)?;
        Ok(states.into_iter().map(ReadStateDoc::into_read_state).collect())
    }

    // ---- upload quota

    async fn add_upload_usage(&self, user_id: Id, delta: i64) -> StoreResult<u64> {
        // One atomic update; a result below zero (a delete racing a reset) is clamped after.
        let updated = self
            .raw(UPLOAD_USAGE)
            .find_one_and_update(doc! { "_id": user_id.as_i64() }, doc! { "$inc": { "bytes": delta } })
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await
            .map_err(map_err)?;
        let bytes = updated.as_ref().and_then(|d| docs::int_of(d.get("bytes"))).unwrap_or(0);
        if bytes < 0 {
            self.raw(UPLOAD_USAGE)
                .update_one(doc! { "_id": user_id.as_i64(), "bytes": { "$lt": 0 } }, doc! { "$set": { "bytes": 0i64 } })
                .await
                .map_err(map_err)?;
        }
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    async fn upload_usage(&self, user_id: Id) -> StoreResult<u64> {
        let found = self.raw(UPLOAD_USAGE).find_one(doc! { "_id": user_id.as_i64() }).await.map_err(map_err)?;
        Ok(found.as_ref().and_then(|d| docs::int_of(d.get("bytes"))).map_or(0, |b| u64::try_from(b).unwrap_or(0)))
    }

    // ---- audit log

    async fn insert_audit_entry(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.audit_log.insert_one(AuditDoc::from_entry(entry)?).await.map_err(|e| conflict_or(e, "audit_entry"))?;
        Ok(())
    }

    async fn audit_entries(&self, guild_id: Id, query: AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let mut filter = doc! { "guild_id": guild_id.as_i64() };
        if let Some(before) = query.before {
            filter.insert("_id", doc! { "$lt": before.as_i64() });
        }
        if let Some(user) = query.user_id {
            filter.insert("user_id", user.as_i64());
        }
        if let Some(action) = query.action_type {
            filter.insert("action_type", action.as_str());
        }
        let cursor = self
            .audit_log
            .find(filter)
            .sort(doc! { "_id": -1 })
            .limit(i64::from(query.limit))
            .await
            .map_err(map_err)?;
        collect(cursor, AuditDoc::into_entry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_are_quoted_words_without_operators() {
        assert_eq!(text_search_terms("hello world").as_deref(), Some("\"hello\" \"world\""));
        assert_eq!(text_search_terms("  -secret \"x\" ").as_deref(), Some("\"secret\" \"x\""));
        assert_eq!(text_search_terms(" -- \"\" "), None);
    }

    #[test]
    fn write_concern_is_journaled_and_acknowledged() {
        let wc = durable_write_concern(None).unwrap();
        assert_eq!(wc.w, Some(Acknowledgment::Majority));
        assert_eq!(wc.journal, Some(true));
        let mut one = WriteConcern::default();
        one.w = Some(Acknowledgment::Nodes(1));
        assert_eq!(durable_write_concern(Some(one)).unwrap().w, Some(Acknowledgment::Nodes(1)));
        let mut zero = WriteConcern::default();
        zero.w = Some(Acknowledgment::Nodes(0));
        assert!(durable_write_concern(Some(zero)).is_err());
    }
}
