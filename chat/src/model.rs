//! The domain types of the community plane. Stored records and API shapes share these where they
//! coincide; views that combine several records (a message with its author and reactions) live in
//! `view.rs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::Id;
use crate::permissions::Permissions;

pub type Timestamp = DateTime<Utc>;

/// A registered account, as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub username: String,
    pub display_name: Option<String>,
    pub created_at: Timestamp,
}

/// A user as stored, with the argon2id PHC hash of the password and the instance-level flags only
/// the operator sets (`chorus admin user set-admin|disable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: String,
    /// An instance admin (sees `/admin`), besides the first user and `--admins`.
    pub admin: bool,
    /// Logins refused, sessions revoked, gateway closed.
    pub disabled: bool,
    /// Two-factor authentication: the TOTP secret (base32), when enabled.
    pub totp_secret: Option<String>,
    /// SHA-256 (hex) of each recovery code not used yet.
    pub recovery_codes: Vec<String>,
}

impl UserRecord {
    /// A newly registered account: no flags, no second factor.
    pub fn new(user: User, password_hash: String) -> UserRecord {
        UserRecord { user, password_hash, admin: false, disabled: false, totp_secret: None, recovery_codes: Vec::new() }
    }
}

/// An instance-level invite: the code `register` needs when registration is `invite`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInvite {
    pub code: String,
    /// None: unlimited.
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub created_at: Timestamp,
    /// None: never expires.
    pub expires_at: Option<Timestamp>,
}

/// A login session. The bearer token is never stored; only its SHA-256 digest (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: Id,
    pub user_id: Id,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: Timestamp,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guild {
    pub id: Id,
    pub name: String,
    pub owner_id: Id,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Text,
    Voice,
    Category,
    /// A direct-message channel between two users; it has no guild.
    Dm,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Text => "text",
            ChannelKind::Voice => "voice",
            ChannelKind::Category => "category",
            ChannelKind::Dm => "dm",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => ChannelKind::Text,
            "voice" => ChannelKind::Voice,
            "category" => ChannelKind::Category,
            "dm" => ChannelKind::Dm,
            _ => return None,
        })
    }
    /// Can messages be posted here?
    pub fn has_messages(self) -> bool {
        matches!(self, ChannelKind::Text | ChannelKind::Dm)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverwriteKind {
    Role,
    Member,
}

/// A channel permission overwrite for one role or one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overwrite {
    pub id: Id,
    pub kind: OverwriteKind,
    pub allow: Permissions,
    pub deny: Permissions,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: Id,
    /// None for DM channels.
    pub guild_id: Option<Id>,
    pub name: String,
    pub kind: ChannelKind,
    pub parent_id: Option<Id>,
    pub position: i32,
    pub topic: Option<String>,
    pub overwrites: Vec<Overwrite>,
    /// The two users of a DM channel; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<Id>,
    /// Newest message, maintained on every send (drives unread state).
    pub last_message_id: Option<Id>,
    /// Slow mode: seconds a member waits between two messages here (0: off; text channels only).
    #[serde(default)]
    pub rate_limit_per_user: u32,
}

impl Channel {
    /// The documented range of `position` (the OpenAPI document says 0..10000).
    pub const MAX_POSITION: i32 = 10_000;
    /// The longest slow mode (Discord's: six hours).
    pub const MAX_SLOW_MODE_SECS: u32 = 21_600;

    /// The one rule for channel positions: requests, defaults and stored values (an older release
    /// could store more) are all kept in 0..=MAX_POSITION; ties sort by id.
    pub fn clamp_position(position: i32) -> i32 {
        position.clamp(0, Self::MAX_POSITION)
    }
}

/// A role. The @everyone role of a guild has the guild's id and position 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub id: Id,
    pub guild_id: Id,
    pub name: String,
    pub permissions: Permissions,
    pub position: i32,
    pub color: u32,
    pub hoist: bool,
    pub mentionable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub guild_id: Id,
    pub user_id: Id,
    pub nick: Option<String>,
    /// Role ids, not including @everyone.
    pub roles: Vec<Id>,
    pub joined_at: Timestamp,
    /// While in the future, the member may only read.
    pub timed_out_until: Option<Timestamp>,
    /// Server mute: the member's audio is not forwarded in any voice channel of the guild.
    #[serde(default)]
    pub mute: bool,
    /// Server deafen: the member hears nothing in any voice channel of the guild.
    #[serde(default)]
    pub deaf: bool,
}

impl Member {
    pub fn is_timed_out(&self, now: Timestamp) -> bool {
        self.timed_out_until.is_some_and(|t| t > now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub guild_id: Id,
    pub user_id: Id,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub code: String,
    pub guild_id: Id,
    pub inviter_id: Id,
    /// None: unlimited.
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub created_at: Timestamp,
    /// None: never expires.
    pub expires_at: Option<Timestamp>,
}

impl Invite {
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| t > now) && self.max_uses.is_none_or(|m| self.uses < m)
    }
}

/// Who a message mentions, parsed on the server from `<@id>`, `<@&id>` and `@everyone`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mentions {
    pub users: Vec<Id>,
    pub roles: Vec<Id>,
    pub everyone: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Id,
    pub channel_id: Id,
    pub guild_id: Option<Id>,
    pub author_id: Id,
    pub content: String,
    pub created_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub reply_to: Option<Id>,
    pub mentions: Mentions,
    pub nonce: Option<String>,
    pub pinned: bool,
    /// Files sent with the message (stored with it; the bytes live in the attachment storage).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Previews of the message's links, added by the server after it was sent.
    #[serde(default)]
    pub embeds: Vec<crate::previews::Embed>,
}

/// A file sent with a message. Its bytes are in the attachment storage under keys derived from the
/// channel and attachment ids, never from the filename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: Id,
    /// The uploader's name for it, made safe (no path, no control characters, at most 255 bytes).
    pub filename: String,
    /// Detected from the bytes.
    pub content_type: String,
    /// Bytes as served (an image's after its metadata was stripped).
    pub size: u64,
    /// Images only.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The content type of the smaller rendition stored beside it (images), if any.
    #[serde(default)]
    pub thumbnail_type: Option<String>,
}

/// Reaction totals on one message, from the point of view of one reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionCount {
    pub message_id: Id,
    pub emoji: String,
    pub count: u32,
    pub me: bool,
}

/// How far a user has read in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    pub user_id: Id,
    pub channel_id: Id,
    pub last_read_id: Id,
}

/// Where in a channel's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryAnchor {
    /// Newest messages (newest first).
    Latest,
    /// Messages older than the id (newest first).
    Before(Id),
    /// Messages newer than the id (oldest first).
    After(Id),
    /// Up to limit/2 on each side of the id, including it (newest first).
    Around(Id),
}

/// What a moderator or manager did in a guild, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    GuildUpdate,
    ChannelCreate,
    ChannelUpdate,
    ChannelDelete,
    ChannelOverwriteUpdate,
    ChannelOverwriteDelete,
    MemberKick,
    MemberBanAdd,
    MemberBanRemove,
    MemberUpdate,
    MemberRoleUpdate,
    MemberMove,
    MemberDisconnect,
    RoleCreate,
    RoleUpdate,
    RoleDelete,
    InviteCreate,
    InviteDelete,
    MessageDelete,
}

impl AuditAction {
    pub const ALL: [AuditAction; 19] = [
        AuditAction::GuildUpdate,
        AuditAction::ChannelCreate,
        AuditAction::ChannelUpdate,
        AuditAction::ChannelDelete,
        AuditAction::ChannelOverwriteUpdate,
        AuditAction::ChannelOverwriteDelete,
        AuditAction::MemberKick,
        AuditAction::MemberBanAdd,
        AuditAction::MemberBanRemove,
        AuditAction::MemberUpdate,
        AuditAction::MemberRoleUpdate,
        AuditAction::MemberMove,
        AuditAction::MemberDisconnect,
        AuditAction::RoleCreate,
        AuditAction::RoleUpdate,
        AuditAction::RoleDelete,
        AuditAction::InviteCreate,
        AuditAction::InviteDelete,
        AuditAction::MessageDelete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::GuildUpdate => "guild_update",
            AuditAction::ChannelCreate => "channel_create",
            AuditAction::ChannelUpdate => "channel_update",
            AuditAction::ChannelDelete => "channel_delete",
            AuditAction::ChannelOverwriteUpdate => "channel_overwrite_update",
            AuditAction::ChannelOverwriteDelete => "channel_overwrite_delete",
            AuditAction::MemberKick => "member_kick",
            AuditAction::MemberBanAdd => "member_ban_add",
            AuditAction::MemberBanRemove => "member_ban_remove",
            AuditAction::MemberUpdate => "member_update",
            AuditAction::MemberRoleUpdate => "member_role_update",
            AuditAction::MemberMove => "member_move",
            AuditAction::MemberDisconnect => "member_disconnect",
            AuditAction::RoleCreate => "role_create",
            AuditAction::RoleUpdate => "role_update",
            AuditAction::RoleDelete => "role_delete",
            AuditAction::InviteCreate => "invite_create",
            AuditAction::InviteDelete => "invite_delete",
            AuditAction::MessageDelete => "message_delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One changed property in an audit entry: its key and the JSON values before and after
/// (null when it did not exist).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditChange {
    pub key: String,
    pub old_value: serde_json::Value,
    pub new_value: serde_json::Value,
}

/// An entry of a guild's audit log. Entries are never edited; they go with the guild.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: Id,
    pub guild_id: Id,
    /// Who acted.
    pub user_id: Id,
    pub action_type: AuditAction,
    /// The member, channel, role, invite code's guild object, or message acted on.
    pub target_id: Option<Id>,
    /// From the request's `X-Audit-Log-Reason` header.
    pub reason: Option<String>,
    pub changes: Vec<AuditChange>,
    pub created_at: Timestamp,
}

/// Which audit entries to read: newest first, older than `before`, optionally one actor or action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditQuery {
    pub before: Option<Id>,
    pub limit: u32,
    pub user_id: Option<Id>,
    pub action_type: Option<AuditAction>,
}
