//! Who may do what: loading the caller's standing in a guild or channel and checking permissions.
//! Anything the caller may not see is `NotFound`, never `Forbidden`, so ids do not leak existence.

use chrono::Utc;

use crate::Chat;
use crate::error::{Error, Result};
use crate::events::ChannelScope;
use crate::id::Id;
use crate::model::{Channel, ChannelKind, Guild, Member, Role};
use crate::permissions::{GuildContext, Permissions, base_permissions, channel_permissions};

/// The caller's standing in one guild.
#[derive(Debug, Clone)]
pub struct GuildAccess {
    pub guild: Guild,
    pub roles: Vec<Role>,
    pub member: Member,
}

impl GuildAccess {
    pub fn ctx(&self) -> GuildContext<'_> {
        GuildContext { guild_id: self.guild.id, owner_id: self.guild.owner_id, roles: &self.roles }
    }

    pub fn is_owner(&self) -> bool {
        self.member.user_id == self.guild.owner_id
    }

    pub fn base(&self) -> Permissions {
        base_permissions(self.ctx(), &self.member, Utc::now())
    }

    pub fn in_channel(&self, channel: &Channel) -> Permissions {
        channel_permissions(self.ctx(), channel, &self.member, Utc::now())
    }

    pub fn require(&self, needed: Permissions) -> Result<()> {
        let have = self.base();
        if have.contains(needed) { Ok(()) } else { Err(missing(needed - have)) }
    }

    pub fn scope(&self, channel: &Channel) -> ChannelScope {
        ChannelScope {
            guild_id: self.guild.id,
            owner_id: self.guild.owner_id,
            roles: self.roles.clone(),
            channel: channel.clone(),
        }
    }

    pub fn role(&self, id: Id) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }
}

/// The caller's standing in one channel (guild channel or DM).
#[derive(Debug, Clone)]
pub struct ChannelAccess {
    pub channel: Channel,
    /// None for DM channels.
    pub guild: Option<GuildAccess>,
    pub perms: Permissions,
}

impl ChannelAccess {
    pub fn require(&self, needed: Permissions) -> Result<()> {
        if self.perms.contains(needed) { Ok(()) } else { Err(missing(needed - self.perms)) }
    }
}

/// What a recipient may do in a DM channel.
const DM_PERMISSIONS: Permissions = Permissions::VIEW_CHANNEL
    .union(Permissions::SEND_MESSAGES)
    .union(Permissions::ATTACH_FILES)
    .union(Permissions::EMBED_LINKS)
    .union(Permissions::READ_MESSAGE_HISTORY)
    .union(Permissions::ADD_REACTIONS);

pub fn missing(p: Permissions) -> Error {
    let name = p.iter_names().next().map(|(n, _)| n).unwrap_or("UNKNOWN");
    Error::MissingPermission(name)
}

impl Chat {
    /// The caller's standing in a guild; `NotFound` unless they are a member.
    pub async fn guild_access(&self, user_id: Id, guild_id: Id) -> Result<GuildAccess> {
        let (guild, member) = tokio::try_join!(self.store.guild(guild_id), self.store.member(guild_id, user_id))?;
        let (Some(guild), Some(member)) = (guild, member) else {
            return Err(Error::NotFound("guild"));
        };
        let roles = self.store.guild_roles(guild_id).await?;
        Ok(GuildAccess { guild, roles, member })
    }

    /// The caller's standing in a channel; `NotFound` unless they may view it.
    pub async fn channel_access(&self, user_id: Id, channel_id: Id) -> Result<ChannelAccess> {
        let channel = self.store.channel(channel_id).await?.ok_or(Error::NotFound("channel"))?;
        match channel.guild_id {
            None => {
                if channel.kind != ChannelKind::Dm || !channel.recipients.contains(&user_id) {
                    return Err(Error::NotFound("channel"));
                }
                Ok(ChannelAccess { channel, guild: None, perms: DM_PERMISSIONS })
            }
            Some(guild_id) => {
                let guild = self.guild_access(user_id, guild_id).await.map_err(|e| match e {
                    Error::NotFound(_) => Error::NotFound("channel"),
                    other => other,
                })?;
                let perms = guild.in_channel(&channel);
                if !perms.contains(Permissions::VIEW_CHANNEL) {
                    return Err(Error::NotFound("channel"));
                }
                Ok(ChannelAccess { channel, guild: Some(guild), perms })
            }
        }
    }
}
