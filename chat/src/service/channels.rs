//! Channels: create, update, delete, permission overwrites, and direct-message channels.

use serde::Deserialize;

use super::access::GuildAccess;
use super::accounts::Caller;
use super::visibility::{Sight, Standing};
use crate::Chat;
use crate::error::{Error, Result};
use crate::events::{Audience, Dispatch};
use crate::id::Id;
use crate::model::{AuditAction, AuditChange, Channel, ChannelKind, Overwrite, OverwriteKind};
use crate::permissions::Permissions;
use crate::service::audit::{change, changed};
use crate::validate;

#[derive(Debug, Deserialize)]
pub struct NewChannel {
    pub name: String,
    pub kind: Option<String>,
    pub parent_id: Option<Id>,
    pub position: Option<i32>,
    pub topic: Option<String>,
    pub rate_limit_per_user: Option<u32>,
}

/// Fields absent from the request stay unchanged; `parent_id: null` moves a channel out of its category.
#[derive(Debug, Default, Deserialize)]
pub struct ChannelPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub topic: Option<Option<String>>,
    pub position: Option<i32>,
    #[serde(default, deserialize_with = "double_option")]
    pub parent_id: Option<Option<Id>>,
    pub rate_limit_per_user: Option<u32>,
}

/// Distinguishes an absent field (None) from an explicit null (Some(None)).
pub fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[derive(Debug, Deserialize)]
pub struct OverwriteBody {
    pub kind: OverwriteKind,
    #[serde(default)]
    pub allow: Permissions,
    #[serde(default)]
    pub deny: Permissions,
}

impl Chat {
    pub async fn guild_channels(&self, caller: &Caller, guild_id: Id) -> Result<Vec<Channel>> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        Ok(self.guild_view(&access).await?.channels)
    }

    pub async fn create_channel(&self, caller: &Caller, guild_id: Id, body: NewChannel) -> Result<Channel> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::MANAGE_CHANNELS)?;
        let kind = match body.kind.as_deref() {
            None => ChannelKind::Text,
            Some(k) => match ChannelKind::parse(k) {
                Some(ChannelKind::Dm) | None => {
                    return Err(Error::field("kind", "must be one of text, voice, category"));
                }
                Some(kind) => kind,
            },
        };
        let name = validate::channel_name(&body.name, kind == ChannelKind::Text)?;
        let topic = validate::optional_text("topic", body.topic.as_deref(), 1024)?;
        let parent_id = self.check_parent(&access, body.parent_id, kind).await?;
        let rate_limit_per_user = slow_mode(kind, body.rate_limit_per_user)?;
        let position = match body.position {
            Some(p) => Channel::clamp_position(p),
            // After the last channel; once the last sits at the maximum, new ones share it (order by id).
            None => Channel::clamp_position(
                self.store
                    .guild_channels(guild_id)
                    .await?
                    .iter()
                    .map(|c| c.position.saturating_add(1))
                    .max()
                    .unwrap_or(0),
            ),
        };
        let channel = Channel {
            id: self.ids.next(),
            guild_id: Some(guild_id),
            name,
            kind,
            parent_id,
            position,
            topic,
            overwrites: vec![],
            recipients: vec![],
            last_message_id: None,
            rate_limit_per_user,
        };
        self.store.put_channel(&channel).await?;
        self.publish(Dispatch::new("CHANNEL_CREATE", &channel, Audience::Channel(access.scope(&channel).into())));
        let mut changes = vec![change("name", (), &channel.name), change("kind", (), channel.kind)];
        changes.extend(channel.parent_id.map(|p| change("parent_id", (), p)));
        changes.extend(channel.topic.as_ref().map(|t| change("topic", (), t)));
        if channel.rate_limit_per_user > 0 {
            changes.push(change("rate_limit_per_user", (), channel.rate_limit_per_user));
        }
        self.audit(caller, guild_id, AuditAction::ChannelCreate, Some(channel.id), changes).await;
        Ok(channel)
    }

    async fn check_parent(&self, access: &GuildAccess, parent: Option<Id>, kind: ChannelKind) -> Result<Option<Id>> {
        let Some(parent_id) = parent else { return Ok(None) };
        if kind == ChannelKind::Category {
            return Err(Error::field("parent_id", "a category cannot have a parent"));
        }
        match self.store.channel(parent_id).await? {
            Some(p) if p.guild_id == Some(access.guild.id) && p.kind == ChannelKind::Category => Ok(Some(parent_id)),
            _ => Err(Error::field("parent_id", "must be a category of this guild")),
        }
    }

    pub async fn get_channel(&self, caller: &Caller, channel_id: Id) -> Result<Channel> {
        Ok(self.channel_access(caller.user.id, channel_id).await?.channel)
    }

    /// Loads a guild channel the caller may manage.
    async fn managed_channel(
        &self,
        caller: &Caller,
        channel_id: Id,
        needed: Permissions,
    ) -> Result<(GuildAccess, Channel)> {
        let access = self.channel_access(caller.user.id, channel_id).await?;
        access.require(needed)?;
        let Some(guild) = access.guild else {
            return Err(Error::Forbidden("direct-message channels cannot be changed"));
        };
        Ok((guild, access.channel))
    }

    pub async fn update_channel(&self, caller: &Caller, channel_id: Id, patch: ChannelPatch) -> Result<Channel> {
        let (guild, mut channel) = self.managed_channel(caller, channel_id, Permissions::MANAGE_CHANNELS).await?;
        let before = channel.clone();
        if let Some(name) = patch.name {
            channel.name = validate::channel_name(&name, channel.kind == ChannelKind::Text)?;
        }
        if let Some(topic) = patch.topic {
            channel.topic = validate::optional_text("topic", topic.as_deref(), 1024)?;
        }
        if let Some(position) = patch.position {
            channel.position = Channel::clamp_position(position);
        }
        if let Some(parent) = patch.parent_id {
            channel.parent_id = self.check_parent(&guild, parent, channel.kind).await?;
        }
        if patch.rate_limit_per_user.is_some() {
            channel.rate_limit_per_user = slow_mode(channel.kind, patch.rate_limit_per_user)?;
        }
        self.store.put_channel(&channel).await?;
        self.publish(Dispatch::new("CHANNEL_UPDATE", &channel, Audience::Channel(guild.scope(&channel).into())));
        let changes: Vec<AuditChange> = [
            changed("name", &before.name, &channel.name),
            changed("topic", &before.topic, &channel.topic),
            changed("position", &before.position, &channel.position),
            changed("parent_id", &before.parent_id, &channel.parent_id),
            changed("rate_limit_per_user", &before.rate_limit_per_user, &channel.rate_limit_per_user),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !changes.is_empty() {
            self.audit(caller, guild.guild.id, AuditAction::ChannelUpdate, Some(channel_id), changes).await;
        }
        Ok(channel)
    }

    pub async fn delete_channel(&self, caller: &Caller, channel_id: Id) -> Result<()> {
        let (guild, channel) = self.managed_channel(caller, channel_id, Permissions::MANAGE_CHANNELS).await?;
        self.store.delete_channel(channel_id).await?;
        self.forget_channel_files(&[channel_id]).await;
        self.publish(Dispatch::new("CHANNEL_DELETE", &channel, Audience::Channel(guild.scope(&channel).into())));
        let changes = vec![change("name", &channel.name, ()), change("kind", channel.kind, ())];
        self.audit(caller, guild.guild.id, AuditAction::ChannelDelete, Some(channel_id), changes).await;
        Ok(())
    }

    /// Sets a role or member overwrite. Needs MANAGE_ROLES, and nobody may allow or deny a
    /// permission they do not have themselves in that channel.
    pub async fn put_overwrite(
        &self,
        caller: &Caller,
        channel_id: Id,
        target: Id,
        body: OverwriteBody,
    ) -> Result<Channel> {
        let (guild, mut channel) = self.managed_channel(caller, channel_id, Permissions::MANAGE_ROLES).await?;
        let mine = guild.in_channel(&channel);
        if !mine.contains(body.allow | body.deny) && !guild.base().contains(Permissions::ADMINISTRATOR) {
            return Err(Error::Forbidden("cannot grant or deny permissions you do not have"));
        }
        let exists = match body.kind {
            OverwriteKind::Role => guild.role(target).is_some(),
            OverwriteKind::Member => self.store.member(guild.guild.id, target).await?.is_some(),
        };
        if !exists {
            return Err(Error::NotFound("overwrite target"));
        }
        let before = channel.clone();
        let old = channel.overwrites.iter().find(|o| o.id == target).cloned();
        channel.overwrites.retain(|o| o.id != target);
        let new = Overwrite { id: target, kind: body.kind, allow: body.allow, deny: body.deny - body.allow };
        channel.overwrites.push(new.clone());
        self.store.put_channel(&channel).await?;
        self.announce_overwrite_change(&guild, before, &channel).await;
        let changes = vec![
            change("overwrite_id", (), target),
            change("allow", old.as_ref().map(|o| o.allow), new.allow),
            change("deny", old.as_ref().map(|o| o.deny), new.deny),
        ];
        self.audit(caller, guild.guild.id, AuditAction::ChannelOverwriteUpdate, Some(channel_id), changes).await;
        Ok(channel)
    }

    pub async fn delete_overwrite(&self, caller: &Caller, channel_id: Id, target: Id) -> Result<Channel> {
        let (guild, mut channel) = self.managed_channel(caller, channel_id, Permissions::MANAGE_ROLES).await?;
        let before = channel.clone();
        let Some(old) = channel.overwrites.iter().find(|o| o.id == target).cloned() else {
            return Err(Error::NotFound("overwrite"));
        };
        channel.overwrites.retain(|o| o.id != target);
        self.store.put_channel(&channel).await?;
        self.announce_overwrite_change(&guild, before, &channel).await;
        let changes =
            vec![change("overwrite_id", target, ()), change("allow", old.allow, ()), change("deny", old.deny, ())];
        self.audit(caller, guild.guild.id, AuditAction::ChannelOverwriteDelete, Some(channel_id), changes).await;
        Ok(channel)
    }

    /// CHANNEL_UPDATE to those who see the channel before and after, CHANNEL_CREATE (and who sits in
    /// it) to those who just gained it, CHANNEL_DELETE (after its voice states as left) to those who
    /// just lost it.
    async fn announce_overwrite_change(&self, guild: &GuildAccess, before: Channel, channel: &Channel) {
        let sight = Sight {
            guild_id: guild.guild.id,
            owner_id: guild.guild.owner_id,
            roles: &guild.roles,
            standing: Standing::AsFollowed,
        };
        self.announce_sight_change(sight, sight, &[(before, channel.clone())], true, None).await;
    }

    /// Opens (or returns) the DM channel between the caller and another user.
    pub async fn open_dm(&self, caller: &Caller, recipient: Id) -> Result<Channel> {
        if recipient == caller.user.id {
            return Err(Error::field("recipient_id", "cannot open a DM with yourself"));
        }
        self.store.user(recipient).await?.ok_or(Error::NotFound("user"))?;
        if let Some(existing) = self.store.dm_channel(caller.user.id, recipient).await? {
            return Ok(existing);
        }
        let channel = Channel {
            id: self.ids.next(),
            guild_id: None,
            name: String::new(),
            kind: ChannelKind::Dm,
            parent_id: None,
            position: 0,
            topic: None,
            overwrites: vec![],
            recipients: vec![caller.user.id, recipient],
            last_message_id: None,
            rate_limit_per_user: 0,
        };
        self.store.put_channel(&channel).await?;
        self.publish(Dispatch::new("CHANNEL_CREATE", &channel, Audience::Users(channel.recipients.clone())));
        Ok(channel)
    }

    pub async fn my_dms(&self, caller: &Caller) -> Result<Vec<Channel>> {
        Ok(self.store.dm_channels_of(caller.user.id).await?)
    }
}

/// Slow mode as requested: 0 to six hours, and only where messages are posted.
fn slow_mode(kind: ChannelKind, requested: Option<u32>) -> Result<u32> {
    match requested {
        None | Some(0) => Ok(0),
        Some(secs) if secs > Channel::MAX_SLOW_MODE_SECS => {
            Err(Error::field("rate_limit_per_user", format!("must be 0 to {}", Channel::MAX_SLOW_MODE_SECS)))
        }
        Some(_) if kind != ChannelKind::Text => {
            Err(Error::field("rate_limit_per_user", "slow mode applies to text channels only"))
        }
        Some(secs) => Ok(secs),
    }
}
