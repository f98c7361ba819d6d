//! Invites: create (max uses, max age), preview, join by code, list, revoke.

use serde::{Deserialize, Serialize};

use super::accounts::{Caller, now_ms};
use crate::Chat;
use crate::credentials::new_invite_code;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::model::{AuditAction, Invite};
use crate::permissions::Permissions;
use crate::service::audit::change;
use crate::store::StoreError;
use crate::view::GuildView;

/// Seven days, Discord's ceiling.
const MAX_AGE_SECS: u32 = 7 * 24 * 3600;

#[derive(Debug, Default, Deserialize)]
pub struct NewInvite {
    pub max_uses: Option<u32>,
    pub max_age_secs: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Joined {
    pub guild: GuildView,
}

/// What someone holding a code may see before joining, signed up or not (as Discord shows): the
/// server's name and size and who invited them; nothing about its channels or members beyond that.
#[derive(Debug, Serialize)]
pub struct InvitePreview {
    pub code: String,
    pub guild_id: Id,
    pub guild_name: String,
    pub member_count: u64,
    /// Members with a live gateway connection right now.
    pub online_count: u64,
    /// None when the inviter's account is gone.
    pub inviter: Option<crate::model::User>,
    pub expires_at: Option<crate::model::Timestamp>,
}

impl Chat {
    pub async fn create_invite(&self, caller: &Caller, guild_id: Id, body: NewInvite) -> Result<Invite> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::CREATE_INVITE)?;
        let max_uses = match body.max_uses {
            None | Some(0) => None,
            Some(n) if n > 10_000 => return Err(Error::field("max_uses", "must be 0 to 10000")),
            Some(n) => Some(n),
        };
        let expires_at = match body.max_age_secs {
            None | Some(0) => None,
            Some(s) if s > MAX_AGE_SECS => return Err(Error::field("max_age_secs", "must be 0 to 604800")),
            Some(s) => Some(now_ms() + chrono::Duration::seconds(i64::from(s))),
        };
        for _ in 0..3 {
            let invite = Invite {
                code: new_invite_code(),
                guild_id,
                inviter_id: caller.user.id,
                max_uses,
                uses: 0,
                created_at: now_ms(),
                expires_at,
            };
            match self.store.insert_invite(&invite).await {
                Ok(()) => {
                    let changes = vec![
                        change("code", (), &invite.code),
                        change("max_uses", (), invite.max_uses),
                        change("expires_at", (), invite.expires_at),
                    ];
                    self.audit(caller, guild_id, AuditAction::InviteCreate, None, changes).await;
                    return Ok(invite);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal("could not find a free invite code".into()))
    }

    pub async fn invites(&self, caller: &Caller, guild_id: Id) -> Result<Vec<Invite>> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::MANAGE_GUILD)?;
        Ok(self.store.guild_invites(guild_id).await?)
    }

    pub async fn preview_invite(&self, code: &str) -> Result<InvitePreview> {
        let invite = self.usable_invite(code).await?;
        let guild = self.store.guild(invite.guild_id).await?.ok_or(Error::NotFound("invite"))?;
        let inviter = self.store.user(invite.inviter_id).await?.map(|r| r.user);
        Ok(InvitePreview {
            code: invite.code,
            guild_id: guild.id,
            guild_name: guild.name,
            member_count: self.store.member_count(guild.id).await?,
            online_count: self.online_presences(guild.id).await.len() as u64,
            inviter,
            expires_at: invite.expires_at,
        })
    }

    async fn usable_invite(&self, code: &str) -> Result<Invite> {
        if code.is_empty() || code.len() > 32 {
            return Err(Error::NotFound("invite"));
        }
        match self.store.invite(code).await? {
            Some(i) if i.is_usable(chrono::Utc::now()) => Ok(i),
            _ => Err(Error::NotFound("invite")),
        }
    }

    pub async fn join_by_invite(&self, caller: &Caller, code: &str) -> Result<Joined> {
        let invite = self.usable_invite(code).await?;
        let guild_id = invite.guild_id;
        if self.store.ban(guild_id, caller.user.id).await?.is_some() {
            return Err(Error::Forbidden("you are banned from this guild"));
        }
        if self.store.member(guild_id, caller.user.id).await?.is_none() {
            // Count the use only for a real join; atomic so max_uses holds under concurrency.
            self.store.use_invite(code, chrono::Utc::now()).await?.ok_or(Error::NotFound("invite"))?;
            match self.add_member(guild_id, &caller.user).await {
                Ok(_) | Err(Error::Conflict(..)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Joined { guild: self.get_guild(caller, guild_id).await? })
    }

    pub async fn revoke_invite(&self, caller: &Caller, code: &str) -> Result<()> {
        let invite = self.store.invite(code).await?.ok_or(Error::NotFound("invite"))?;
        let access = self.guild_access(caller.user.id, invite.guild_id).await?;
        if invite.inviter_id != caller.user.id {
            access.require(Permissions::MANAGE_GUILD)?;
        }
        self.store.delete_invite(code).await?;
        let changes = vec![change("code", &invite.code, ()), change("uses", invite.uses, ())];
        self.audit(caller, invite.guild_id, AuditAction::InviteDelete, None, changes).await;
        Ok(())
    }
}
