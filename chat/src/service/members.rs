//! Members: list, nicknames, roles, timeout, voice moderation (server mute and deafen, move,
//! disconnect), kick, ban and unban. Every change by a moderator lands in the audit log.

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
use crate::model::{AuditAction, AuditChange, Ban, ChannelKind, Member, Timestamp};
use crate::permissions::{Permissions, can_manage_role, can_moderate, channel_permissions};
use crate::service::access::missing;
use crate::service::audit::{change, changed};
use crate::validate;
use crate::view::{MemberView, deleted_user};
use crate::voice::{VoiceAction, VoiceOrder};

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
    /// Server mute (MUTE_MEMBERS).
    pub mute: Option<bool>,
    /// Server deafen (DEAFEN_MEMBERS).
    pub deaf: Option<bool>,
    /// Move to this voice channel, or `null`: disconnect from voice (MOVE_MEMBERS).
    #[serde(default, deserialize_with = "double_option")]
    pub channel_id: Option<Option<Id>>,
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
        // Voice moderation is checked where the member sits (a voice channel's overwrites apply),
        // or at guild level when they are not in voice.
        let in_voice = if patch.mute.is_some() || patch.deaf.is_some() || patch.channel_id.is_some() {
            self.guild_voice_states(guild_id)
                .await
                .into_iter()
                .find(|s| s.user_id == user_id)
                .and_then(|s| s.channel_id)
        } else {
            None
        };
        let voice_perms = match in_voice {
            Some(channel_id) => match self.store.channel(channel_id).await? {
                Some(channel) => access.in_channel(&channel),
                None => access.base(),
            },
            None => access.base(),
        };
        if let Some(mute) = patch.mute {
            if !voice_perms.contains(Permissions::MUTE_MEMBERS) {
                return Err(missing(Permissions::MUTE_MEMBERS));
            }
            target.mute = mute;
        }
        if let Some(deaf) = patch.deaf {
            if !voice_perms.contains(Permissions::DEAFEN_MEMBERS) {
                return Err(missing(Permissions::DEAFEN_MEMBERS));
            }
            target.deaf = deaf;
        }
        let moved = match patch.channel_id {
            None => None,
            Some(destination) => {
                let Some(from) = in_voice else {
                    return Err(Error::bad_request("not_in_voice", "that member is not in a voice channel"));
                };
                if !voice_perms.contains(Permissions::MOVE_MEMBERS) {
                    return Err(missing(Permissions::MOVE_MEMBERS));
                }
                if let Some(to) = destination {
                    let channel = match self.store.channel(to).await? {
                        Some(c) if c.guild_id == Some(guild_id) && c.kind == ChannelKind::Voice => c,
                        _ => return Err(Error::field("channel_id", "must be a voice channel of this guild")),
                    };
                    let mine = access.in_channel(&channel);
                    let needed = Permissions::CONNECT | Permissions::MOVE_MEMBERS;
                    if !mine.contains(needed) {
                        return Err(missing(needed - mine));
                    }
                    let theirs = channel_permissions(access.ctx(), &channel, &target, now);
                    if !theirs.contains(Permissions::CONNECT) {
                        return Err(Error::Forbidden("that member may not connect to that channel"));
                    }
                }
                Some((from, destination))
            }
        };
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
        // Sent even when nothing changed: a repeated mute reaches a call that escaped the first.
        if patch.mute.is_some() || patch.deaf.is_some() {
            let action = VoiceAction::Mute { mute: target.mute, deaf: target.deaf };
            self.order_voice(VoiceOrder { guild_id, user_id, action });
        }
        if let Some((from, to)) = moved {
            let action = to.map_or(VoiceAction::Disconnect, |channel_id| VoiceAction::Move { channel_id });
            self.order_voice(VoiceOrder { guild_id, user_id, action });
            let (kind, changes) = match to {
                Some(to) => (AuditAction::MemberMove, vec![change("channel_id", from, to)]),
                None => (AuditAction::MemberDisconnect, vec![change("channel_id", from, ())]),
            };
            self.audit(caller, guild_id, kind, Some(user_id), changes).await;
        }
        if before.roles != target.roles {
            let added: Vec<Id> = target.roles.iter().filter(|r| !before.roles.contains(r)).copied().collect();
            let removed: Vec<Id> = before.roles.iter().filter(|r| !target.roles.contains(r)).copied().collect();
            let changes = vec![change("$add", (), added), change("$remove", (), removed)];
            self.audit(caller, guild_id, AuditAction::MemberRoleUpdate, Some(user_id), changes).await;
        }
        let changes: Vec<AuditChange> = [
            changed("nick", &before.nick, &target.nick),
            changed("timed_out_until", &before.timed_out_until, &target.timed_out_until),
            changed("mute", &before.mute, &target.mute),
            changed("deaf", &before.deaf, &target.deaf),
        ]
        .into_iter()
        .flatten()
        .collect();
        // A member's own nickname is theirs, not a moderation action.
        if !changes.is_empty() && !is_self {
            self.audit(caller, guild_id, AuditAction::MemberUpdate, Some(user_id), changes).await;
        }
        Ok(view)
    }

    /// Hands a moderator's order to the voice side of whichever node holds the call.
    pub(crate) fn order_voice(&self, order: VoiceOrder) {
        let guild_id = order.guild_id;
        self.publish(
            Dispatch::new("VOICE_STATE_UPDATE", &serde_json::Value::Null, Audience::Users(vec![]))
                .with_effect(Effect::VoiceOrder(order)),
        );
        tracing::debug!(guild_id = %guild_id, "voice order published");
    }

    pub async fn kick(&self, caller: &Caller, guild_id: Id, user_id: Id) -> Result<()> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        let target = self.store.member(guild_id, user_id).await?.ok_or(Error::NotFound("member"))?;
        access.require(Permissions::KICK_MEMBERS)?;
        if !can_moderate(access.ctx(), &access.member, &target, Permissions::KICK_MEMBERS, Utc::now()) {
            return Err(Error::Forbidden("cannot kick a member at or above your highest role"));
        }
        let user = self.store.user(user_id).await?.map(|r| r.user).unwrap_or_else(|| deleted_user(user_id));
        self.remove_member(guild_id, user_id, &user).await?;
        self.audit(caller, guild_id, AuditAction::MemberKick, Some(user_id), vec![]).await;
        Ok(())
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
        let changes = ban.reason.as_ref().map(|r| vec![change("reason", (), r)]).unwrap_or_default();
        self.audit(caller, guild_id, AuditAction::MemberBanAdd, Some(user_id), changes).await;
        Ok(())
    }

    pub async fn unban(&self, caller: &Caller, guild_id: Id, user_id: Id) -> Result<()> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::BAN_MEMBERS)?;
        let ban = self.store.ban(guild_id, user_id).await?.ok_or(Error::NotFound("ban"))?;
        self.store.delete_ban(guild_id, user_id).await?;
        self.publish(Dispatch::new("GUILD_BAN_REMOVE", &ban, Audience::Guild(guild_id)));
        self.audit(caller, guild_id, AuditAction::MemberBanRemove, Some(user_id), vec![]).await;
        Ok(())
    }

    pub async fn bans(&self, caller: &Caller, guild_id: Id) -> Result<Vec<Ban>> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::BAN_MEMBERS)?;
        Ok(self.store.bans(guild_id).await?)
    }
}
