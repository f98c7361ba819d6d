//! Every collection and index of the MongoDB backend, declared in one list, created at connect and
//! then verified against what the server reports.
//!
//! Creation is idempotent (createIndexes with an identical definition is a no-op). Verification
//! catches what creation cannot: a server or proxy that accepted createIndexes without building the
//! index, or an index of the same name left behind with other keys by an older version. Either
//! would silently break a uniqueness rule the store depends on, so connect fails instead.

use mongodb::bson::{Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

use super::map_err;
use crate::store::{StoreError, StoreResult};

pub(super) const USERS: &str = "users";
pub(super) const SESSIONS: &str = "sessions";
pub(super) const GUILDS: &str = "guilds";
pub(super) const CHANNELS: &str = "channels";
pub(super) const ROLES: &str = "roles";
pub(super) const MEMBERS: &str = "members";
pub(super) const BANS: &str = "bans";
pub(super) const INVITES: &str = "invites";
pub(super) const MESSAGES: &str = "messages";
pub(super) const REACTIONS: &str = "reactions";
pub(super) const READ_STATES: &str = "read_states";
pub(super) const INSTANCE_INVITES: &str = "instance_invites";
pub(super) const AUDIT_LOG: &str = "audit_log";
pub(super) const UPLOAD_USAGE: &str = "upload_usage";

pub(super) const COLLECTIONS: [&str; 14] = [
    USERS,
    SESSIONS,
    GUILDS,
    CHANNELS,
    ROLES,
    MEMBERS,
    BANS,
    INVITES,
    MESSAGES,
    REACTIONS,
    READ_STATES,
    INSTANCE_INVITES,
    AUDIT_LOG,
    UPLOAD_USAGE,
];

/// Index names the store reacts to in duplicate-key errors.
pub(super) const USERNAME_UNIQUE: &str = "username_lower_unique";
pub(super) const NONCE_UNIQUE: &str = "channel_author_nonce_unique";
pub(super) const DM_PAIR_UNIQUE: &str = "dm_key_unique";

/// One declared index.
pub(super) struct IndexSpec {
    pub collection: &'static str,
    pub name: &'static str,
    pub keys: Document,
    pub unique: bool,
    pub sparse: bool,
    pub partial: Option<Document>,
    /// For text indexes: the language whose stemming and stop words apply ("none": plain words).
    pub text_language: Option<&'static str>,
}

impl IndexSpec {
    fn new(collection: &'static str, name: &'static str, keys: Document) -> Self {
        IndexSpec { collection, name, keys, unique: false, sparse: false, partial: None, text_language: None }
    }
    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    fn sparse(mut self) -> Self {
        self.sparse = true;
        self
    }
    fn partial(mut self, filter: Document) -> Self {
        self.partial = Some(filter);
        self
    }
    fn text(mut self, language: &'static str) -> Self {
        self.text_language = Some(language);
        self
    }

    fn model(&self) -> IndexModel {
        let mut options = IndexOptions::default();
        options.name = Some(self.name.to_owned());
        options.unique = self.unique.then_some(true);
        options.sparse = self.sparse.then_some(true);
        options.partial_filter_expression = self.partial.clone();
        options.default_language = self.text_language.map(str::to_owned);
        IndexModel::builder().keys(self.keys.clone()).options(options).build()
    }
}

/// The whole index set. `_id` indexes are implicit and unique: users, sessions, guilds, channels,
/// roles and messages use the entity id as `_id`, invites use the invite code.
pub(super) fn declared() -> Vec<IndexSpec> {
    vec![
        // Case-insensitive username uniqueness and lookup.
        IndexSpec::new(USERS, USERNAME_UNIQUE, doc! { "username_lower": 1 }).unique(),
        // Bearer-token lookup on every authenticated request.
        IndexSpec::new(SESSIONS, "token_hash_unique", doc! { "token_hash": 1 }).unique(),
        IndexSpec::new(SESSIONS, "user_id", doc! { "user_id": 1 }),
        // One membership per (guild, user); `members` pages walk it in user-id order.
        IndexSpec::new(MEMBERS, "guild_user_unique", doc! { "guild_id": 1, "user_id": 1 }).unique(),
        // The guilds of a user (READY payload).
        IndexSpec::new(MEMBERS, "user_id", doc! { "user_id": 1 }),
        IndexSpec::new(CHANNELS, "guild_id", doc! { "guild_id": 1 }),
        // One DM channel per pair of users; only DM channels carry `dm_key`.
        IndexSpec::new(CHANNELS, DM_PAIR_UNIQUE, doc! { "dm_key": 1 })
            .unique()
            .partial(doc! { "dm_key": { "$type": "string" } }),
        // The DM channels of a user; only DM channels carry `recipients`.
        IndexSpec::new(CHANNELS, "recipients", doc! { "recipients": 1 }).sparse(),
        IndexSpec::new(ROLES, "guild_id", doc! { "guild_id": 1 }),
        IndexSpec::new(BANS, "guild_user_unique", doc! { "guild_id": 1, "user_id": 1 }).unique(),
        IndexSpec::new(INVITES, "guild_id", doc! { "guild_id": 1 }),
        // History pages in both directions and unread counts: a range on _id within one channel.
        IndexSpec::new(MESSAGES, "channel_id_id", doc! { "channel_id": 1, "_id": 1 }),
        // Idempotent sends: a retried send with the same nonce hits this and returns the first message.
        IndexSpec::new(MESSAGES, NONCE_UNIQUE, doc! { "channel_id": 1, "author_id": 1, "nonce": 1 })
            .unique()
            .partial(doc! { "nonce": { "$type": "string" } }),
        // The pins of a channel without scanning its history.
        IndexSpec::new(MESSAGES, "pinned", doc! { "channel_id": 1, "_id": -1 }).partial(doc! { "pinned": true }),
        // Full-text search. "none": no stemming or stop words, so chat words match as typed.
        IndexSpec::new(MESSAGES, "content_text", doc! { "content": "text" }).text("none"),
        IndexSpec::new(REACTIONS, "message_emoji_user_unique", doc! { "message_id": 1, "emoji": 1, "user_id": 1 })
            .unique(),
        IndexSpec::new(READ_STATES, "user_channel_unique", doc! { "user_id": 1, "channel_id": 1 }).unique(),
        // Dropping the read states of a deleted channel.
        IndexSpec::new(READ_STATES, "channel_id", doc! { "channel_id": 1 }),
        // A guild's audit log, newest first (filters by actor or action narrow this range).
        IndexSpec::new(AUDIT_LOG, "guild_id_id", doc! { "guild_id": 1, "_id": -1 }),
    ]
}

/// Creates missing collections and indexes, then checks that every declared index is present.
pub(super) async fn ensure(db: &Database) -> StoreResult<()> {
    // Explicit collections: listIndexes on a missing collection fails on a real server.
    let existing = db.list_collection_names().await.map_err(map_err)?;
    for name in COLLECTIONS {
        if !existing.iter().any(|e| e == name) {
            match db.create_collection(name).await {
                Ok(()) => {}
                // NamespaceExists: another node created it between our listing and now.
                Err(e) if super::error_code(&e) == Some(48) => {}
                Err(e) => return Err(map_err(e)),
            }
        }
    }

    let specs = declared();
    for collection in COLLECTIONS {
        let models: Vec<IndexModel> =
            specs.iter().filter(|s| s.collection == collection).map(IndexSpec::model).collect();
        if models.is_empty() {
            continue;
        }
        db.collection::<Document>(collection).create_indexes(models).await.map_err(|e| {
            match super::error_code(&e) {
                // IndexOptionsConflict / IndexKeySpecsConflict: an older definition is in the way.
                Some(85 | 86) => StoreError::Backend(format!(
                    "mongodb: an index of {collection} exists with another definition ({}); drop it and restart",
                    super::describe(&e)
                )),
                _ => map_err(e),
            }
        })?;
    }
    verify(db, &specs).await
}

async fn verify(db: &Database, specs: &[IndexSpec]) -> StoreResult<()> {
    use futures::TryStreamExt;
    for collection in COLLECTIONS {
        let listed: Vec<IndexModel> = db
            .collection::<Document>(collection)
            .list_indexes()
            .await
            .map_err(map_err)?
            .try_collect()
            .await
            .map_err(map_err)?;
        let name_of = |m: &IndexModel| m.options.as_ref().and_then(|o| o.name.clone()).unwrap_or_default();
        if !listed.iter().any(|m| name_of(m) == "_id_") {
            return Err(StoreError::Backend(format!("mongodb: index {collection}._id_ is missing")));
        }
        for spec in specs.iter().filter(|s| s.collection == collection) {
            let Some(found) = listed.iter().find(|m| name_of(m) == spec.name) else {
                return Err(StoreError::Backend(format!(
                    "mongodb: index {collection}.{} {} is missing after createIndexes",
                    spec.name, spec.keys
                )));
            };
            if !keys_match(&spec.keys, found) {
                return Err(StoreError::Backend(format!(
                    "mongodb: index {collection}.{} has keys {} but {} are required; drop it and restart",
                    spec.name, found.keys, spec.keys
                )));
            }
            let unique = found.options.as_ref().and_then(|o| o.unique).unwrap_or(false);
            if unique != spec.unique {
                return Err(StoreError::Backend(format!(
                    "mongodb: index {collection}.{} must {}be unique; drop it and restart",
                    spec.name,
                    if spec.unique { "" } else { "not " }
                )));
            }
        }
    }
    Ok(())
}

/// Same fields in the same order with the same directions. A real server reports a text index as
/// `{_fts: "text", _ftsx: 1}` with the text fields in `weights`; a declared `{field: "text"}` matches that.
fn keys_match(declared: &Document, found: &IndexModel) -> bool {
    let text_fields: Vec<&str> =
        declared.iter().filter(|(_, v)| matches!(v, Bson::String(s) if s == "text")).map(|(k, _)| k.as_str()).collect();
    if !text_fields.is_empty() && found.keys.contains_key("_fts") {
        let weights = found.options.as_ref().and_then(|o| o.weights.as_ref());
        return weights.is_some_and(|w| w.len() == text_fields.len() && text_fields.iter().all(|f| w.contains_key(f)));
    }
    declared.len() == found.keys.len()
        && declared.iter().zip(found.keys.iter()).all(|((dk, dv), (fk, fv))| dk == fk && direction(dv) == direction(fv))
}

/// An index key value reduced to something comparable: 1 and 1.0 and 1i64 are the same direction.
fn direction(v: &Bson) -> Option<String> {
    match v {
        Bson::Int32(i) => Some(i.signum().to_string()),
        Bson::Int64(i) => Some(i.signum().to_string()),
        Bson::Double(f) if *f > 0.0 => Some("1".into()),
        Bson::Double(f) if *f < 0.0 => Some("-1".into()),
        Bson::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_are_unique_per_collection() {
        let specs = declared();
        for (i, a) in specs.iter().enumerate() {
            assert!(COLLECTIONS.contains(&a.collection), "{} is not a declared collection", a.collection);
            for b in &specs[i + 1..] {
                assert!(!(a.collection == b.collection && a.name == b.name), "{}.{} twice", a.collection, a.name);
            }
        }
    }

    #[test]
    fn a_real_servers_text_index_listing_matches_the_declaration() {
        let mut options = IndexOptions::default();
        options.weights = Some(doc! { "content": 1 });
        let found = IndexModel::builder().keys(doc! { "_fts": "text", "_ftsx": 1 }).options(options).build();
        assert!(keys_match(&doc! { "content": "text" }, &found));
        assert!(!keys_match(&doc! { "title": "text" }, &found));
    }

    #[test]
    fn key_order_and_direction_matter() {
        let found = IndexModel::builder().keys(doc! { "channel_id": 1.0, "_id": 1i64 }).build();
        assert!(keys_match(&doc! { "channel_id": 1, "_id": 1 }, &found));
        assert!(!keys_match(&doc! { "_id": 1, "channel_id": 1 }, &found));
        assert!(!keys_match(&doc! { "channel_id": 1, "_id": -1 }, &found));
    }
}
