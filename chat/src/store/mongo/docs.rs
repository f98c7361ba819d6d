//! The stored shape of every record: one serde struct per collection, and the conversions to and
//! from the domain types.
//!
//! Domain types serialize ids and permissions as JSON strings (the API contract), so they are never
//! stored directly: here every id is a BSON Int64 (`Id::as_i64`), every time a BSON DateTime
//! (millisecond precision), and every bitfield an Int64. Decoding never panics: a value that does not
//! fit the domain type is reported as [`StoreError::Corrupt`].

use mongodb::bson::{self, DateTime as BsonDateTime};
use serde::{Deserialize, Serialize};

use crate::id::Id;
use crate::model::*;
use crate::permissions::Permissions;
use crate::store::{StoreError, StoreResult};

pub(super) fn dt(t: Timestamp) -> BsonDateTime {
    BsonDateTime::from_millis(t.timestamp_millis())
}

pub(super) fn dt_opt(t: Option<Timestamp>) -> Option<BsonDateTime> {
    t.map(dt)
}

fn ts(d: BsonDateTime) -> StoreResult<Timestamp> {
    chrono::DateTime::from_timestamp_millis(d.timestamp_millis())
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp out of range: {} ms", d.timestamp_millis())))
}

fn ts_opt(d: Option<BsonDateTime>) -> StoreResult<Option<Timestamp>> {
    d.map(ts).transpose()
}

fn ids(v: Vec<i64>) -> Vec<Id> {
    v.into_iter().map(Id::from_i64).collect()
}

pub(super) fn raw_ids(v: &[Id]) -> Vec<i64> {
    v.iter().map(|i| i.as_i64()).collect()
}

fn u32_field(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {v}")))
}

/// The lower-cased form the unique username index is built on (usernames are ASCII by validation,
/// but lower-casing all of Unicode keeps the rule total).
pub(super) fn username_key(username: &str) -> String {
    username.to_lowercase()
}

/// The unique key of the DM channel between two users, whatever order they come in.
pub(super) fn dm_key(a: Id, b: Id) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

// ---------------------------------------------------------------- users and sessions

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct UserDoc {
    #[serde(rename = "_id")]
    pub id: i64,
    pub username: String,
    pub username_lower: String,
    pub display_name: Option<String>,
    pub password_hash: String,
    pub created_at: BsonDateTime,
    /// Absent in documents written before operator controls existed: false.
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
    #[serde(default)]
    pub recovery_codes: Vec<String>,
}

impl UserDoc {
    pub fn from_record(r: &UserRecord) -> Self {
        UserDoc {
            id: r.user.id.as_i64(),
            username: r.user.username.clone(),
            username_lower: username_key(&r.user.username),
            display_name: r.user.display_name.clone(),
            password_hash: r.password_hash.clone(),
            created_at: dt(r.user.created_at),
            admin: r.admin,
            disabled: r.disabled,
            totp_secret: r.totp_secret.clone(),
            recovery_codes: r.recovery_codes.clone(),
        }
    }
    pub fn into_record(self) -> StoreResult<UserRecord> {
        Ok(UserRecord {
            user: User {
                id: Id::from_i64(self.id),
                username: self.username,
                display_name: self.display_name,
                created_at: ts(self.created_at)?,
            },
            password_hash: self.password_hash,
            admin: self.admin,
            disabled: self.disabled,
            totp_secret: self.totp_secret,
            recovery_codes: self.recovery_codes,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SessionDoc {
    #[serde(rename = "_id")]
    pub id: i64,
    pub user_id: i64,
    pub token_hash: String,
    pub created_at: BsonDateTime,
    pub user_agent: Option<String>,
}

impl SessionDoc {
    pub fn from_session(s: &Session) -> Self {
        SessionDoc {
            id: s.id.as_i64(),
            user_id: s.user_id.as_i64(),
            token_hash: s.token_hash.clone(),
            created_at: dt(s.created_at),
            user_agent: s.user_agent.clone(),
        }
    }
    pub fn into_session(self) -> StoreResult<Session> {
        Ok(Session {
            id: Id::from_i64(self.id),
            user_id: Id::from_i64(self.user_id),
            token_hash: self.token_hash,
            created_at: ts(self.created_at)?,
            user_agent: self.user_agent,
        })
    }
}

// ---------------------------------------------------------------- guilds, channels, roles

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GuildDoc {
    #[serde(rename = "_id")]
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub created_at: BsonDateTime,
}

impl GuildDoc {
    pub fn from_guild(g: &Guild) -> Self {
        GuildDoc {
            id: g.id.as_i64(),
            name: g.name.clone(),
            owner_id: g.owner_id.as_i64(),
            created_at: dt(g.created_at),
        }
    }
    pub fn into_guild(self) -> StoreResult<Guild> {
        Ok(Guild {
            id: Id::from_i64(self.id),
            name: self.name,
            owner_id: Id::from_i64(self.owner_id),
            created_at: ts(self.created_at)?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct OverwriteDoc {
    pub id: i64,
    /// "role" or "member".
    pub kind: String,
    pub allow: i64,
    pub deny: i64,
}

/// Stored kind of an overwrite; `$pull` filters in `delete_role` match on it.
pub(super) const OVERWRITE_ROLE: &str = "role";
const OVERWRITE_MEMBER: &str = "member";

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ChannelDoc {
    #[serde(rename = "_id")]
    pub id: i64,
    pub guild_id: Option<i64>,
    pub name: String,
    pub kind: String,
    pub parent_id: Option<i64>,
    pub position: i32,
    pub topic: Option<String>,
    #[serde(default)]
    pub overwrites: Vec<OverwriteDoc>,
    /// Absent unless a DM, so the sparse `recipients` index holds DM channels only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<i64>,
    /// Absent unless a DM; the partial unique index on it keeps one DM channel per pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_key: Option<String>,
    pub last_message_id: Option<i64>,
    /// Absent in documents written before slow mode existed: off.
    #[serde(default)]
    pub rate_limit_per_user: u32,
}

impl ChannelDoc {
    pub fn from_channel(c: &Channel) -> Self {
        let dm_key = match (c.kind, c.recipients.as_slice()) {
            (ChannelKind::Dm, [a, b]) => Some(dm_key(*a, *b)),
            _ => None,
        };
        ChannelDoc {
            id: c.id.as_i64(),
            guild_id: c.guild_id.map(Id::as_i64),
            name: c.name.clone(),
            kind: c.kind.as_str().to_owned(),
            parent_id: c.parent_id.map(Id::as_i64),
            position: c.position,
            topic: c.topic.clone(),
            overwrites: c
                .overwrites
                .iter()
                .map(|o| OverwriteDoc {
                    id: o.id.as_i64(),
                    kind: match o.kind {
                        OverwriteKind::Role => OVERWRITE_ROLE,
                        OverwriteKind::Member => OVERWRITE_MEMBER,
                    }
                    .to_owned(),
                    allow: o.allow.bits() as i64,
                    deny: o.deny.bits() as i64,
                })
                .collect(),
            recipients: raw_ids(&c.recipients),
            dm_key,
            last_message_id: c.last_message_id.map(Id::as_i64),
            rate_limit_per_user: c.rate_limit_per_user,
        }
    }
    pub fn into_channel(self) -> StoreResult<Channel> {
        let kind = ChannelKind::parse(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("channel {}: unknown kind {:?}", self.id, self.kind)))?;
        let overwrites = self
            .overwrites
            .into_iter()
            .map(|o| {
                let kind = match o.kind.as_str() {
                    OVERWRITE_ROLE => OverwriteKind::Role,
                    OVERWRITE_MEMBER => OverwriteKind::Member,
                    other => {
                        return Err(StoreError::Corrupt(format!("unknown overwrite kind {other:?}")));
                    }
                };
                Ok(Overwrite {
                    id: Id::from_i64(o.id),
                    kind,
                    allow: Permissions::from_wire(o.allow as u64),
                    deny: Permissions::from_wire(o.deny as u64),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Channel {
            id: Id::from_i64(self.id),
            guild_id: self.guild_id.map(Id::from_i64),
            name: self.name,
            kind,
            parent_id: self.parent_id.map(Id::from_i64),
            position: Channel::clamp_position(self.position),
            topic: self.topic,
            overwrites,
            recipients: ids(self.recipients),
            last_message_id: self.last_message_id.map(Id::from_i64),
            rate_limit_per_user: self.rate_limit_per_user.min(Channel::MAX_SLOW_MODE_SECS),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RoleDoc {
    #[serde(rename = "_id")]
    pub id: i64,
    pub guild_id: i64,
    pub name: String,
    pub permissions: i64,
    pub position: i32,
    pub color: i64,
    pub hoist: bool,
    pub mentionable: bool,
}

impl RoleDoc {
    pub fn from_role(r: &Role) -> Self {
        RoleDoc {
            id: r.id.as_i64(),
            guild_id: r.guild_id.as_i64(),
            name: r.name.clone(),
            permissions: r.permissions.bits() as i64,
            position: r.position,
            color: i64::from(r.color),
            hoist: r.hoist,
            mentionable: r.mentionable,
        }
    }
    pub fn into_role(self) -> StoreResult<Role> {
        Ok(Role {
            id: Id::from_i64(self.id),
            guild_id: Id::from_i64(self.guild_id),
            name: self.name,
            permissions: Permissions::from_wire(self.permissions as u64),
            position: self.position,
            color: u32_field(self.color, "role color")?,
            hoist: self.hoist,
            mentionable: self.mentionable,
        })
    }
}

// ---------------------------------------------------------------- members, bans, invites

/// `_id` is left to the driver (an ObjectId); the unique (guild_id, user_id) index is the key.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct MemberDoc {
    pub guild_id: i64,
    pub user_id: i64,
    pub nick: Option<String>,
    #[serde(default)]
    pub roles: Vec<i64>,
    pub joined_at: BsonDateTime,
    pub timed_out_until: Option<BsonDateTime>,
    /// Absent in documents written before voice moderation existed: false.
    #[serde(default)]
    pub mute: bool,
    #[serde(default)]
    pub deaf: bool,
}

impl MemberDoc {
    pub fn from_member(m: &Member) -> Self {
        MemberDoc {
            guild_id: m.guild_id.as_i64(),
            user_id: m.user_id.as_i64(),
            nick: m.nick.clone(),
            roles: raw_ids(&m.roles),
            joined_at: dt(m.joined_at),
            timed_out_until: dt_opt(m.timed_out_until),
            mute: m.mute,
            deaf: m.deaf,
        }
    }
    pub fn into_member(self) -> StoreResult<Member> {
        Ok(Member {
            guild_id: Id::from_i64(self.guild_id),
            user_id: Id::from_i64(self.user_id),
            nick: self.nick,
            roles: ids(self.roles),
            joined_at: ts(self.joined_at)?,
            timed_out_until: ts_opt(self.timed_out_until)?,
            mute: self.mute,
            deaf: self.deaf,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct BanDoc {
    pub guild_id: i64,
    pub user_id: i64,
    pub reason: Option<String>,
    pub created_at: BsonDateTime,
}

impl BanDoc {
    pub fn from_ban(b: &Ban) -> Self {
        BanDoc {
            guild_id: b.guild_id.as_i64(),
            user_id: b.user_id.as_i64(),
            reason: b.reason.clone(),
            created_at: dt(b.created_at),
        }
    }
    pub fn into_ban(self) -> StoreResult<Ban> {
        Ok(Ban {
            guild_id: Id::from_i64(self.guild_id),
            user_id: Id::from_i64(self.user_id),
            reason: self.reason,
            created_at: ts(self.created_at)?,
        })
    }
}

/// `_id` is the invite code, so the code is unique by MongoDB's own `_id` index.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct InviteDoc {
    #[serde(rename = "_id")]
    pub code: String,
    pub guild_id: i64,
    pub inviter_id: i64,
    /// null: unlimited (`use_invite` filters on `max_uses: null`).
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub created_at: BsonDateTime,
    pub expires_at: Option<BsonDateTime>,
}

impl InviteDoc {
    pub fn from_invite(i: &Invite) -> Self {
        InviteDoc {
            code: i.code.clone(),
            guild_id: i.guild_id.as_i64(),
            inviter_id: i.inviter_id.as_i64(),
            max_uses: i.max_uses.map(i64::from),
            uses: i64::from(i.uses),
            created_at: dt(i.created_at),
            expires_at: dt_opt(i.expires_at),
        }
    }
    pub fn into_invite(self) -> StoreResult<Invite> {
        Ok(Invite {
            code: self.code,
            guild_id: Id::from_i64(self.guild_id),
            inviter_id: Id::from_i64(self.inviter_id),
            max_uses: self.max_uses.map(|m| u32_field(m, "invite max_uses")).transpose()?,
            uses: u32_field(self.uses, "invite uses")?,
            created_at: ts(self.created_at)?,
            expires_at: ts_opt(self.expires_at)?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct InstanceInviteDoc {
    #[serde(rename = "_id")]
    pub code: String,
    /// null: unlimited (`use_instance_invite` filters on `max_uses: null`).
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub created_at: BsonDateTime,
    pub expires_at: Option<BsonDateTime>,
}

impl InstanceInviteDoc {
    pub fn from_invite(i: &InstanceInvite) -> Self {
        InstanceInviteDoc {
            code: i.code.clone(),
            max_uses: i.max_uses.map(i64::from),
            uses: i64::from(i.uses),
            created_at: dt(i.created_at),
            expires_at: dt_opt(i.expires_at),
        }
    }
    pub fn into_invite(self) -> StoreResult<InstanceInvite> {
        Ok(InstanceInvite {
            code: self.code,
            max_uses: self.max_uses.map(|m| u32_field(m, "instance invite max_uses")).transpose()?,
            uses: u32_field(self.uses, "instance invite uses")?,
            created_at: ts(self.created_at)?,
            expires_at: ts_opt(self.expires_at)?,
        })
    }
}

// ---------------------------------------------------------------- messages

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct MentionsDoc {
    #[serde(default)]
    pub users: Vec<i64>,
    #[serde(default)]
    pub roles: Vec<i64>,
    #[serde(default)]
    pub everyone: bool,
}

impl MentionsDoc {
    pub fn from_mentions(m: &Mentions) -> Self {
        MentionsDoc { users: raw_ids(&m.users), roles: raw_ids(&m.roles), everyone: m.everyone }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct MessageDoc {
    #[serde(rename = "_id")]
    pub id: i64,
    pub channel_id: i64,
    pub guild_id: Option<i64>,
    pub author_id: i64,
    pub content: String,
    pub created_at: BsonDateTime,
    pub edited_at: Option<BsonDateTime>,
    pub reply_to: Option<i64>,
    #[serde(default)]
    pub mentions: MentionsDoc,
    /// Absent without a nonce: the unique nonce index is partial on `nonce` being a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default)]
    pub pinned: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeds: Vec<crate::previews::Embed>,
}

impl MessageDoc {
    pub fn from_message(m: &Message) -> Self {
        MessageDoc {
            id: m.id.as_i64(),
            channel_id: m.channel_id.as_i64(),
            guild_id: m.guild_id.map(Id::as_i64),
            author_id: m.author_id.as_i64(),
            content: m.content.clone(),
            created_at: dt(m.created_at),
            edited_at: dt_opt(m.edited_at),
            reply_to: m.reply_to.map(Id::as_i64),
            mentions: MentionsDoc::from_mentions(&m.mentions),
            nonce: m.nonce.clone(),
            pinned: m.pinned,
            attachments: m.attachments.clone(),
            embeds: m.embeds.clone(),
        }
    }
    pub fn into_message(self) -> StoreResult<Message> {
        Ok(Message {
            id: Id::from_i64(self.id),
            channel_id: Id::from_i64(self.channel_id),
            guild_id: self.guild_id.map(Id::from_i64),
            author_id: Id::from_i64(self.author_id),
            content: self.content,
            created_at: ts(self.created_at)?,
            edited_at: ts_opt(self.edited_at)?,
            reply_to: self.reply_to.map(Id::from_i64),
            mentions: Mentions {
                users: ids(self.mentions.users),
                roles: ids(self.mentions.roles),
                everyone: self.mentions.everyone,
            },
            nonce: self.nonce,
            pinned: self.pinned,
            attachments: self.attachments,
            embeds: self.embeds,
        })
    }
}

// ---------------------------------------------------------------- reactions and read states

/// One user's reaction. `_id` is a driver-made ObjectId; with `at` it orders reactions by arrival.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReactionDoc {
    pub message_id: i64,
    pub emoji: String,
    pub user_id: i64,
    pub at: BsonDateTime,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReadStateDoc {
    pub user_id: i64,
    pub channel_id: i64,
    pub last_read_id: i64,
}

impl ReadStateDoc {
    pub fn into_read_state(self) -> ReadState {
        ReadState {
            user_id: Id::from_i64(self.user_id),
            channel_id: Id::from_i64(self.channel_id),
            last_read_id: Id::from_i64(self.last_read_id),
        }
    }
}

/// Reads an integer that the server may hand back as Int32, Int64 or Double (aggregation results).
pub(super) fn int_of(v: Option<&bson::Bson>) -> Option<i64> {
    match v? {
        bson::Bson::Int32(i) => Some(i64::from(*i)),
        bson::Bson::Int64(i) => Some(*i),
        bson::Bson::Double(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
        bson::Bson::Boolean(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// The uploader of a message document's files and their bytes (`author_id` and `attachments`
/// read); None for a message without files.
pub(super) fn upload_bytes(message: &bson::Document) -> Option<(Id, i64)> {
    let author = int_of(message.get("author_id"))?;
    let files = message.get_array("attachments").ok()?;
    let bytes: i64 = files.iter().filter_map(|f| int_of(f.as_document()?.get("size"))).sum();
    (bytes > 0).then(|| (Id::from_i64(author), bytes))
}

// ---------------------------------------------------------------- audit log

/// `_id` is the entry id; the changes are kept as the JSON text the API shows (arbitrary values
/// whose exact form must survive, which BSON numbers would not promise).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AuditDoc {
    #[serde(rename = "_id")]
    pub id: i64,
    pub guild_id: i64,
    pub user_id: i64,
    pub action_type: String,
    pub target_id: Option<i64>,
    pub reason: Option<String>,
    pub changes: String,
    pub created_at: BsonDateTime,
}

impl AuditDoc {
    pub fn from_entry(e: &AuditEntry) -> StoreResult<Self> {
        Ok(AuditDoc {
            id: e.id.as_i64(),
            guild_id: e.guild_id.as_i64(),
            user_id: e.user_id.as_i64(),
            action_type: e.action_type.as_str().to_owned(),
            target_id: e.target_id.map(Id::as_i64),
            reason: e.reason.clone(),
            changes: serde_json::to_string(&e.changes)
                .map_err(|err| StoreError::Backend(format!("mongodb: encoding audit changes: {err}")))?,
            created_at: dt(e.created_at),
        })
    }
    pub fn into_entry(self) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            id: Id::from_i64(self.id),
            guild_id: Id::from_i64(self.guild_id),
            user_id: Id::from_i64(self.user_id),
            action_type: AuditAction::parse(&self.action_type)
                .ok_or_else(|| StoreError::Corrupt(format!("audit action {:?}", self.action_type)))?,
            target_id: self.target_id.map(Id::from_i64),
            reason: self.reason,
            changes: serde_json::from_str(&self.changes)
                .map_err(|err| StoreError::Corrupt(format!("audit entry {}: changes: {err}", self.id)))?,
            created_at: ts(self.created_at)?,
        })
    }
}
