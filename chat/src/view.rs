//! API shapes that combine several records (the JSON the REST API and the gateway send).

use serde::Serialize;

use crate::id::Id;
use crate::model::*;

#[derive(Debug, Clone, Serialize)]
pub struct GuildView {
    pub id: Id,
    pub name: String,
    pub owner_id: Id,
    pub created_at: Timestamp,
    /// Only the channels the viewer may see.
    pub channels: Vec<Channel>,
    pub roles: Vec<Role>,
    pub member_count: u64,
}

impl GuildView {
    pub fn new(guild: &Guild, channels: Vec<Channel>, roles: Vec<Role>, member_count: u64) -> Self {
        GuildView {
            id: guild.id,
            name: guild.name.clone(),
            owner_id: guild.owner_id,
            created_at: guild.created_at,
            channels,
            roles,
            member_count,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub guild_id: Id,
    pub user: User,
    pub nick: Option<String>,
    pub roles: Vec<Id>,
    pub joined_at: Timestamp,
    pub timed_out_until: Option<Timestamp>,
    /// Server mute and deafen.
    pub mute: bool,
    pub deaf: bool,
}

impl MemberView {
    pub fn new(member: &Member, user: User) -> Self {
        MemberView {
            guild_id: member.guild_id,
            user,
            nick: member.nick.clone(),
            roles: member.roles.clone(),
            joined_at: member.joined_at,
            timed_out_until: member.timed_out_until,
            mute: member.mute,
            deaf: member.deaf,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReactionView {
    pub emoji: String,
    pub count: u32,
    pub me: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: Id,
    pub channel_id: Id,
    pub guild_id: Option<Id>,
    pub author: User,
    pub content: String,
    pub created_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub reply_to: Option<Id>,
    /// Mentioned user ids.
    pub mentions: Vec<Id>,
    pub mention_roles: Vec<Id>,
    pub mention_everyone: bool,
    pub reactions: Vec<ReactionView>,
    pub pinned: bool,
    pub attachments: Vec<crate::service::attachments::AttachmentView>,
    pub embeds: Vec<crate::service::previews::EmbedView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl MessageView {
    pub fn new(
        m: &Message,
        author: User,
        reactions: Vec<ReactionView>,
        attachments: Vec<crate::service::attachments::AttachmentView>,
        embeds: Vec<crate::service::previews::EmbedView>,
    ) -> Self {
        MessageView {
            id: m.id,
            channel_id: m.channel_id,
            guild_id: m.guild_id,
            author,
            content: m.content.clone(),
            created_at: m.created_at,
            edited_at: m.edited_at,
            reply_to: m.reply_to,
            mentions: m.mentions.users.clone(),
            mention_roles: m.mentions.roles.clone(),
            mention_everyone: m.mentions.everyone,
            reactions,
            pinned: m.pinned,
            attachments,
            embeds,
            nonce: m.nonce.clone(),
        }
    }
}

/// A stand-in for an author whose account no longer exists.
pub fn deleted_user(id: Id) -> User {
    User { id, username: "deleted-user".into(), display_name: None, created_at: chrono::DateTime::UNIX_EPOCH }
}
