//! Instance administration on a store — what `chorus admin` does, whether a server runs on the same
//! store or not. It needs no hub: a running instance sees every change because each request reads
//! its session and user from the store, and each gateway session re-checks both at every heartbeat
//! (see `gateway::socket`), so a disabled user is cut off within one heartbeat interval on every node.

use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::credentials::{hash_password, new_invite_code};
use crate::error::{Error, Result};
use crate::id::{Id, Snowflakes};
use crate::model::{Guild, InstanceInvite, User, UserRecord};
use crate::service::accounts::now_ms;
use crate::store::{Store, StoreError};
use crate::validate;

/// Who may create an account over `POST /auth/register`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone (the default: a first run must be able to make its first user).
    #[default]
    Open,
    /// Only with an instance invite code (`chorus admin invite create`).
    Invite,
    /// Nobody; accounts come from `chorus admin user create`.
    Closed,
}

impl FromStr for Registration {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "open" => Ok(Registration::Open),
            "invite" => Ok(Registration::Invite),
            "closed" => Ok(Registration::Closed),
            other => Err(format!("registration must be open, invite or closed, not {other:?}")),
        }
    }
}

impl std::fmt::Display for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Registration::Open => "open",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
        })
    }
}

/// A user as the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    #[serde(flatten)]
    pub user: User,
    pub admin: bool,
    pub disabled: bool,
}

impl From<UserRecord> for UserSummary {
    fn from(r: UserRecord) -> Self {
        UserSummary { user: r.user, admin: r.admin, disabled: r.disabled }
    }
}

/// A guild as the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct GuildSummary {
    #[serde(flatten)]
    pub guild: Guild,
    pub members: u64,
}

/// Page size when walking whole collections.
const PAGE: u32 = 500;

pub struct Operator {
    store: Arc<dyn Store>,
    ids: Snowflakes,
}

impl Operator {
    /// Ids minted here use `node_id`; give it one no server node uses, so ids cannot collide with a
    /// running instance's.
    pub fn new(store: Arc<dyn Store>, node_id: u16) -> Operator {
        Operator { store, ids: Snowflakes::new(node_id) }
    }

    async fn by_name(&self, username: &str) -> Result<UserRecord> {
        self.store.user_by_username(username).await?.ok_or(Error::NotFound("user"))
    }

    pub async fn create_user(&self, username: &str, password: &str, admin: bool) -> Result<UserSummary> {
        let username = validate::username(username)?;
        let password = validate::password(password)?;
        let user = User { id: self.ids.next(), username, display_name: None, created_at: now_ms() };
        let mut record = UserRecord::new(user, hash_password(password).await?);
        record.admin = admin;
        match self.store.insert_user(&record).await {
            Err(StoreError::Conflict("username")) => Err(Error::Conflict("username_taken", "that username is taken")),
            // Two CLI runs in one millisecond minted the same id: nothing was written, run it again.
            Err(StoreError::Conflict(_)) => Err(Error::Internal("id collision; run the command again".into())),
            other => other.map_err(Error::from),
        }?;
        Ok(record.into())
    }

    pub async fn list_users(&self) -> Result<Vec<UserSummary>> {
        let mut out = Vec::new();
        let mut after = Id::from_i64(0);
        loop {
            let page = self.store.list_users(after, PAGE).await?;
            let full = page.len() == PAGE as usize;
            if let Some(last) = page.last() {
                after = last.user.id;
            }
            out.extend(page.into_iter().map(UserSummary::from));
            if !full {
                return Ok(out);
            }
        }
    }

    /// Sets a new password and revokes every session (whoever had the old one is logged out).
    /// Returns how many sessions were revoked.
    pub async fn reset_password(&self, username: &str, password: &str) -> Result<u64> {
        let record = self.by_name(username).await?;
        let hash = hash_password(validate::password(password)?).await?;
        self.store.set_password_hash(record.user.id, &hash).await?;
        Ok(self.store.delete_sessions_of(record.user.id).await?)
    }

    /// Whether the account is the instance's first, which is an admin whatever its flag says.
    pub async fn is_first_user(&self, username: &str) -> Result<bool> {
        let record = self.by_name(username).await?;
        Ok(self.store.first_user().await?.is_some_and(|first| first.id == record.user.id))
    }

    pub async fn set_admin(&self, username: &str, admin: bool) -> Result<UserSummary> {
        let mut record = self.by_name(username).await?;
        record.admin = admin;
        self.store.set_user_flags(record.user.id, record.admin, record.disabled).await?;
        Ok(record.into())
    }

    /// Disables (logins refused, every session revoked) or enables an account. Returns the user and
    /// how many sessions were revoked.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<(UserSummary, u64)> {
        let mut record = self.by_name(username).await?;
        record.disabled = disabled;
        self.store.set_user_flags(record.user.id, record.admin, record.disabled).await?;
        let revoked = if disabled { self.store.delete_sessions_of(record.user.id).await? } else { 0 };
        Ok((record.into(), revoked))
    }

    /// An instance invite for `registration = invite`: `max_uses` None is unlimited, `ttl` None never
    /// expires.
    pub async fn create_invite(&self, max_uses: Option<u32>, ttl: Option<chrono::Duration>) -> Result<InstanceInvite> {
        if max_uses == Some(0) {
            return Err(Error::field("uses", "must be at least 1"));
        }
        let created_at = now_ms();
        for _ in 0..5 {
            let invite = InstanceInvite {
                code: new_invite_code(),
                max_uses,
                uses: 0,
                created_at,
                expires_at: ttl.map(|t| created_at + t),
            };
            match self.store.insert_instance_invite(&invite).await {
                Ok(()) => return Ok(invite),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal("could not find a free invite code".into()))
    }

    pub async fn list_guilds(&self) -> Result<Vec<GuildSummary>> {
        let mut out = Vec::new();
        let mut after = Id::from_i64(0);
        loop {
            let page = self.store.list_guilds(after, PAGE).await?;
            let full = page.len() == PAGE as usize;
            if let Some(last) = page.last() {
                after = last.id;
            }
            for guild in page {
                let members = self.store.member_count(guild.id).await?;
                out.push(GuildSummary { guild, members });
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Deletes a guild and everything in it. Members connected to a running instance see it vanish at
    /// their next reconnect (this process has no gateway to tell them at once).
    /// Deletes a guild with everything in it; returns it and the ids of its channels (whose
    /// attachment files the caller removes from the storage).
    pub async fn delete_guild(&self, id: Id) -> Result<(Guild, Vec<Id>)> {
        let guild = self.store.guild(id).await?.ok_or(Error::NotFound("guild"))?;
        let channels = self.store.guild_channels(id).await?.into_iter().map(|c| c.id).collect();
        self.store.delete_guild(id).await?;
        Ok((guild, channels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_modes_parse_and_print_as_their_names() {
        for mode in [Registration::Open, Registration::Invite, Registration::Closed] {
            assert_eq!(mode.to_string().parse::<Registration>(), Ok(mode));
        }
        assert!("Open".parse::<Registration>().is_err(), "exact names only");
        assert_eq!(Registration::default(), Registration::Open);
    }
}
