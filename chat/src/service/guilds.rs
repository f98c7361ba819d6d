//! Guilds: create (with `general` and `General`), read, rename, delete, leave.

use serde::Serialize;

use super::access::GuildAccess;
use super::accounts::{Caller, now_ms};
use crate::Chat;
use crate::error::{Error, Result};
use crate::events::{Audience, Dispatch, Effect};
use crate::id::Id;
use crate::model::{Channel, ChannelKind, Guild, Member, Role};
use crate::permissions::Permissions;
use crate::validate;
use crate::view::{GuildView, MemberView};

#[derive(Debug, Serialize)]
struct GuildDeleted {
    id: Id,
}

impl Chat {
    pub async fn create_guild(&self, caller: &Caller, name: &str) -> Result<GuildView> {
        let name = validate::name("name", name, 100)?;
        let guild = Guild { id: self.ids.next(), name, owner_id: caller.user.id, created_at: now_ms() };
        let everyone = Role {
            id: guild.id,
            guild_id: guild.id,
            name: "@everyone".into(),
            permissions: Permissions::DEFAULT_EVERYONE,
            position: 0,
            color: 0,
            hoist: false,
            mentionable: false,
        };
        let channel = |name: &str, kind, position| Channel {
            id: self.ids.next(),
            guild_id: Some(guild.id),
            name: name.into(),
            kind,
            parent_id: None,
            position,
            topic: None,
            overwrites: vec![],
            recipients: vec![],
            last_message_id: None,
            rate_limit_per_user: 0,
        };
        let channels = vec![channel("general", ChannelKind::Text, 0), channel("General", ChannelKind::Voice, 1)];
        let member = Member {
            guild_id: guild.id,
            user_id: caller.user.id,
            nick: None,
            roles: vec![],
            joined_at: now_ms(),
            timed_out_until: None,
            mute: false,
            deaf: false,
        };
        // The guild row first and the owner's membership last: a crash part-way leaves a guild that
        // nobody is a member of (invisible), never a membership of a guild that does not exist.
        self.store.insert_guild(&guild).await?;
        self.store.put_role(&everyone).await?;
        for c in &channels {
            self.store.put_channel(c).await?;
        }
        self.store.insert_member(&member).await?;
        let view = GuildView::new(&guild, channels, vec![everyone], 1);
        self.publish(
            Dispatch::new("GUILD_CREATE", &view, Audience::Users(vec![caller.user.id]))
                .with_effect(Effect::MemberUpsert(member)),
        );
        Ok(view)
    }

    /// The guild as the caller sees it (only visible channels).
    pub async fn guild_view(&self, access: &GuildAccess) -> Result<GuildView> {
        let channels = self.store.guild_channels(access.guild.id).await?;
        let visible =
            channels.into_iter().filter(|c| access.in_channel(c).contains(Permissions::VIEW_CHANNEL)).collect();
        let count = self.store.member_count(access.guild.id).await?;
        Ok(GuildView::new(&access.guild, visible, access.roles.clone(), count))
    }

    pub async fn get_guild(&self, caller: &Caller, guild_id: Id) -> Result<GuildView> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        self.guild_view(&access).await
    }

    /// The user's member records in every guild they belong to.
    pub async fn memberships(&self, user_id: Id) -> Result<Vec<Member>> {
        let mut out = Vec::new();
        for guild_id in self.store.guilds_of(user_id).await? {
            if let Some(m) = self.store.member(guild_id, user_id).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub async fn my_guilds(&self, caller: &Caller) -> Result<Vec<GuildView>> {
        let mut out = Vec::new();
        for guild_id in self.store.guilds_of(caller.user.id).await? {
            if let Ok(access) = self.guild_access(caller.user.id, guild_id).await {
                out.push(self.guild_view(&access).await?);
            }
        }
        Ok(out)
    }

    pub async fn rename_guild(&self, caller: &Caller, guild_id: Id, name: &str) -> Result<GuildView> {
        let mut access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::MANAGE_GUILD)?;
        let old_name = std::mem::replace(&mut access.guild.name, validate::name("name", name, 100)?);
        self.store.update_guild(&access.guild).await?;
        self.publish(Dispatch::new("GUILD_UPDATE", &access.guild, Audience::Guild(guild_id)));
        if let Some(c) = crate::service::audit::changed("name", &old_name, &access.guild.name) {
            self.audit(caller, guild_id, crate::model::AuditAction::GuildUpdate, Some(guild_id), vec![c]).await;
        }
        self.guild_view(&access).await
    }

    pub async fn delete_guild(&self, caller: &Caller, guild_id: Id) -> Result<()> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        if !access.is_owner() {
            return Err(Error::Forbidden("only the owner can delete a guild"));
        }
        let channels: Vec<Id> = self.store.guild_channels(guild_id).await?.iter().map(|c| c.id).collect();
        self.store.delete_guild(guild_id).await?;
        self.forget_channel_files(&channels).await;
        self.publish(
            Dispatch::new("GUILD_DELETE", &GuildDeleted { id: guild_id }, Audience::Guild(guild_id))
                .with_effect(Effect::GuildRemove(guild_id)),
        );
        Ok(())
    }

    pub async fn leave_guild(&self, caller: &Caller, guild_id: Id) -> Result<()> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        if access.is_owner() {
            return Err(Error::bad_request("owner_cannot_leave", "the owner cannot leave; delete the guild instead"));
        }
        self.remove_member(guild_id, caller.user.id, &caller.user).await
    }

    /// Removes a member and tells the guild (GUILD_MEMBER_REMOVE) and the member (GUILD_DELETE).
    pub(crate) async fn remove_member(&self, guild_id: Id, user_id: Id, user: &crate::model::User) -> Result<()> {
        self.store.delete_member(guild_id, user_id).await?;
        #[derive(Serialize)]
        struct Removed<'a> {
            guild_id: Id,
            user: &'a crate::model::User,
        }
        self.publish(
            Dispatch::new("GUILD_MEMBER_REMOVE", &Removed { guild_id, user }, Audience::Guild(guild_id))
                .with_effect(Effect::MemberRemove { guild_id, user_id }),
        );
        self.publish(Dispatch::new("GUILD_DELETE", &GuildDeleted { id: guild_id }, Audience::Users(vec![user_id])));
        self.leave_voice_in_guild(user_id, guild_id);
        self.presence_follows_membership(user_id, guild_id, false).await;
        Ok(())
    }

    /// Adds a member (invite or DM-less join) and announces it.
    pub(crate) async fn add_member(&self, guild_id: Id, user: &crate::model::User) -> Result<Member> {
        let member = Member {
            guild_id,
            user_id: user.id,
            nick: None,
            roles: vec![],
            joined_at: now_ms(),
            timed_out_until: None,
            mute: false,
            deaf: false,
        };
        self.store.insert_member(&member).await?;
        self.publish(
            Dispatch::new("GUILD_MEMBER_ADD", &MemberView::new(&member, user.clone()), Audience::Guild(guild_id))
                .with_effect(Effect::MemberUpsert(member.clone())),
        );
        self.presence_follows_membership(user.id, guild_id, true).await;
        let access = self.guild_access(user.id, guild_id).await?;
        let view = self.guild_view(&access).await?;
        // Like READY's guilds: the newcomer also learns who is online and who sits in voice.
        let guild = super::ready::ReadyGuild {
            voice_states: self.voice_states_in_channels(guild_id, &view.channels).await,
            presences: self.online_presences(guild_id).await,
            guild: view,
        };
        self.publish(Dispatch::new("GUILD_CREATE", &guild, Audience::Users(vec![user.id])));
        Ok(member)
    }
}
