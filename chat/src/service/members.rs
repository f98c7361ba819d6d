//! Members: list, nicknames, roles, timeout, kick, ban and unban.

use std::collections::HashMap;

use chrono::Utc;
use serde::Deserialize;

use super::accounts::{Caller, now_ms};
use super::channels::double_option;
use super::visibility::{Sight, Standing};
use crate::Chat;
use crate::error::{Error, Result};
use crate::events::{Audience, Dispatch, Effect};
use crate::id::Id;
use crate::model::{Ban, Member, Timestamp};
use crate::permissions::{Permissions, can_manage_role, can_moderate};
use crate::validate;
use crate::view::{MemberView, deleted_user};

pub const MAX_MEMBER_PAGE: u32 = 1000;
/// Discord's ceiling for a timeout.
const MAX_TIMEOUT_DAYS: i64 = 28;

#[derive(Debug, Default, Deserialize)]
pub struct MemberPatch {
    #[serde(default, deserialize_with = "double_option")]
    pub nick: Option<Option<String>>,
    pub roles: Option<Vec<Id>>,
    #[serde(default, deserialize_with = "double_option")]
    pub timed_out_until: Option<Option<Timestamp>>,
}

impl Chat {
    pub async fn members(
        &self,
        caller: &Caller,
        guild_id: Id,
        after: Option<Id>,
        limit: Option<u32>,
    ) -> Result<Vec<MemberView>> {
        self.guild_access(caller.user.id, guild_id).await?;
        let limit = limit.unwrap_or(100);
        if !(1..=MAX_MEMBER_PAGE).contains(&limit) {
            return Err(Error::field("limit", format!("must be 1 to {MAX_MEMBER_PAGE}")));
        }
        let members = self.store.members(guild_id, after.unwrap_or_default(), limit).await?;
        self.member_views(members).await
    }

    pub(crate) async fn member_views(&self, members: Vec<Member>) -> Result<Vec<MemberView>> {
        let ids: Vec<Id> = members.iter().map(|m| m.user_id).collect();
        let users: HashMap<Id, _> = self.store.users(&ids).await?.into_iter().map(|u| (u.id, u)).collect();
        Ok(members
            .iter()
            .map(|m| MemberView::new(m, users.get(&m.user_id).cloned().unwrap_or_else(|| deleted_user(m.user_id))))
            .collect())
    }

    pub async fn member(&self, caller: &Caller, guild_id: Id, user_id: Id) -> Result<MemberView> {
        self.guild_access(caller.user.id, guild_id).await?;
        let m = self.store.member(guild_id, user_id).await?.ok_or(Error::NotFound("member"))?;
        Ok(self.member_views(vec![m]).await?.remove(0))
    }

    pub async fn update_member(
        &self,
        caller: &Caller,
        guild_id: Id,
        user_id: Id,
        patch: MemberPatch,
    ) -> Result<MemberView> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        let mut target = self.store.member(guild_id, user_id).await?.ok_or(Error::NotFound("member"))?;
        let before = target.clone();
        let now = Utc::now();
        let is_self = user_id == caller.user.id;
        if let Some(nick) = patch.nick {
            if !is_self {
                access.require(Permissions::MANAGE_GUILD)?;
            }
            if !is_self && !can_moderate(access.ctx(), &access.member, &target, Permissions::MANAGE_GUILD, now) {
                return Err(Error::Forbidden("cannot rename a member at or above your highest role"));
            }
            target.nick = validate::optional_text("nick", nick.as_deref(), 32)?;
        }
        if let Some(roles) = patch.roles {
            access.require(Permissions::MANAGE_ROLES)?;
            let mut wanted = Vec::new();
            for id in roles {
                if id == guild_id || wanted.contains(&id) {
                    continue;
                }
                if access.role(id).is_none() {
                    return Err(Error::field("roles", format!("unknown role {id}")));
                }
                wanted.push(id);
            }
            // Every role added or removed must be below the actor's highest.
            let changed = wanted
                .iter()
                .filter(|r| !target.roles.contains(r))
                .chain(target.roles.iter().filter(|r| !wanted.contains(r)));
            for id in changed {
                let role = access.role(*id).ok_or(Error::NotFound("role"))?;
                if !can_manage_role(access.ctx(), &access.member, role, now) {
                    return Err(Error::Forbidden("cannot assign a role at or above your highest role"));
                }
            }
            target.roles = wanted;
        }
        if let Some(until) = patch.timed_out_until {
            access.require(Permissions::MODERATE_MEMBERS)?;
            if !can_moderate(access.ctx(), &access.member, &target, Permissions::MODERATE_MEMBERS, now) {
                return Err(Error::Forbidden("cannot time out a member at or above your highest role"));
            }
            if until.is_some_and(|t| t > now + chrono::Duration::days(MAX_TIMEOUT_DAYS)) {
                return Err(Error::field("timed_out_until", "at most 28 days ahead"));
            }
            target.timed_out_until = until.filter(|t| *t > now);
        }
        self.store.update_member(&target).await?;
        let view = self.member_views(vec![target.clone()]).await?.remove(0);
        self.publish(
            Dispatch::new("GUILD_MEMBER_UPDATE", &view, Audience::Guild(guild_id))
                .with_effect(Effect::MemberUpsert(target.clone())),
        );
        if before.roles != target.roles || before.timed_out_until != target.timed_out_until {
            let sight = |m| Sight {
                guild_id,
                owner_id: access.guild.owner_id,
                roles: &access.roles,
                standing: Standing::Exactly(m),
            };
            self.announce_guild_sight_change(sight(&before), sight(&target), Some(user_id)).await?;
        }
        Ok(view)
    }

    pub async fn kick(&self, caller: &Caller, guild_id: Id, user_id: Id) -> Result<()> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        let target = self.store.member(guild_id, user_id).await?.ok_or(Error::NotFound("member"))?;
        access.require(Permissions::KICK_MEMBERS)?;
        if !can_moderate(access.ctx(), &access.member, &target, Permissions::KICK_MEMBERS, Utc::now()) {
            return Err(Error::Forbidden("cannot kick a member at or above your highest role"));
        }
        let user = self.store.user(user_id).await?.map(|r| r.user).unwrap_or_else(|| deleted_user(user_id));
        self.remove_member(guild_id, user_id, &user).await
    }

    pub async fn ban(&self, caller: &Caller, guild_id: Id, user_id: Id, reason: Option<String>) -> Result<()> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::BAN_MEMBERS)?;
        let user = self.store.user(user_id).await?.ok_or(Error::NotFound("user"))?.user;
        let target = self.store.member(guild_id, user_id).await?;
        if let Some(target) = &target {
            if !can_moderate(access.ctx(), &access.member, target, Permissions::BAN_MEMBERS, Utc::now()) {
                return Err(Error::Forbidden("cannot ban a member at or above your highest role"));
            }
        } else if user_id == access.guild.owner_id || user_id == caller.user.id {
            return Err(Error::Forbidden("cannot ban that user"));
        }
        let reason = validate::optional_text("reason", reason.as_deref(), 512)?;
        let ban = Ban { guild_id, user_id, reason, created_at: now_ms() };
        self.store.put_ban(&ban).await?;
        if target.is_some() {
            self.remove_member(guild_id, user_id, &user).await?;
        }
        self.publish(Dispatch::new("GUILD_BAN_ADD", &ban, Audience::Guild(guild_id)));
        Ok(())
    }

    pub async fn unban(&self, caller: &Caller, guild_id: Id, user_id: Id) -> Result<()> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::BAN_MEMBERS)?;
        let ban = self.store.ban(guild_id, user_id).await?.ok_or(Error::NotFound("ban"))?;
        self.store.delete_ban(guild_id, user_id).await?;
        self.publish(Dispatch::new("GUILD_BAN_REMOVE", &ban, Audience::Guild(guild_id)));
        Ok(())
    }

    pub async fn bans(&self, caller: &Caller, guild_id: Id) -> Result<Vec<Ban>> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::BAN_MEMBERS)?;
        Ok(self.store.bans(guild_id).await?)
    }
}
