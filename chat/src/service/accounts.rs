//! Accounts and sessions: register, login, logout, profile, session list and revocation.

use chrono::Utc;
use serde::Serialize;

use crate::Chat;
use crate::credentials::{hash_password, hash_token, new_token, verify_password};
use crate::error::{Error, Result};
use crate::events::{Audience, Dispatch};
use crate::id::Id;
use crate::model::{Session, User, UserRecord};
use crate::operator::Registration;
use crate::store::StoreError;
use crate::validate;

#[derive(Debug, Serialize)]
pub struct Authenticated {
    pub user: User,
    pub token: String,
}

/// A session as listed to its owner.
#[derive(Debug, Serialize)]
pub struct SessionView {
    #[serde(flatten)]
    pub session: Session,
    pub current: bool,
}

/// The verified identity behind a bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub session_id: Id,
    /// Why the caller acts (`X-Audit-Log-Reason`), recorded with what the action changed.
    pub audit_reason: Option<String>,
}

impl Chat {
    /// Creates an account as `registration` allows: in `invite` mode one use of a valid instance
    /// invite is counted (after the username is known to be free, so a taken name costs no use).
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        invite_code: Option<&str>,
        user_agent: Option<String>,
    ) -> Result<Authenticated> {
        let username = validate::username(username)?;
        let password = validate::password(password)?;
        if self.config.registration == Registration::Closed {
            return Err(Error::Refused("registration_closed", "registration is closed; ask an admin for an account"));
        }
        // Hashed before an invite use is counted: the slow step cannot fail after the code was spent.
        let password_hash = hash_password(password).await?;
        match self.config.registration {
            Registration::Open | Registration::Closed => {}
            Registration::Invite => {
                let Some(code) = invite_code.filter(|c| !c.is_empty()) else {
                    return Err(Error::Refused("invite_required", "registration needs an invite code"));
                };
                let invalid = Error::Refused("invalid_invite_code", "that invite code is unknown, used up or expired");
                if code.len() > 64 {
                    return Err(invalid);
                }
                if self.store.user_by_username(&username).await?.is_some() {
                    return Err(Error::Conflict("username_taken", "that username is taken"));
                }
                if self.store.use_instance_invite(code, now_ms()).await?.is_none() {
                    return Err(invalid);
                }
            }
        }
        let user = User { id: self.ids.next(), username, display_name: None, created_at: now_ms() };
        match self.store.insert_user(&UserRecord::new(user.clone(), password_hash)).await {
            Err(StoreError::Conflict(_)) => return Err(Error::Conflict("username_taken", "that username is taken")),
            other => other?,
        }
        let token = self.open_session(user.id, user_agent).await?;
        Ok(Authenticated { user, token })
    }

    /// A session, or — for an account with two-factor authentication — a ticket for
    /// [`Chat::login_mfa`].
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        user_agent: Option<String>,
    ) -> Result<super::mfa::LoginResult> {
        let record = self.store.user_by_username(username).await?;
        // Verify against a fixed hash when the user is unknown, so timing does not reveal usernames.
        let record_disabled = record.as_ref().is_some_and(|r| r.disabled);
        let mfa = record.as_ref().is_some_and(|r| r.totp_secret.is_some());
        let (phc, user) = match record {
            Some(r) => (r.password_hash, Some(r.user)),
            None => (DUMMY_HASH.to_string(), None),
        };
        let ok = verify_password(password.to_string(), phc.clone()).await;
        let Some(user) = user.filter(|_| ok) else {
            return Err(Error::InvalidCredentials);
        };
        // Only after the password matched: a stranger learns nothing about the account.
        if record_disabled {
            return Err(Error::Refused("account_disabled", "this account is disabled"));
        }
        if mfa {
            return Ok(super::mfa::LoginResult::Mfa { mfa: true, ticket: self.mfa_ticket(user.id, &phc) });
        }
        let token = self.open_session(user.id, user_agent).await?;
        Ok(super::mfa::LoginResult::Done(Authenticated { user, token }))
    }

    pub(crate) async fn open_session(&self, user_id: Id, user_agent: Option<String>) -> Result<String> {
        let token = new_token();
        let session = Session {
            id: self.ids.next(),
            user_id,
            token_hash: hash_token(&token),
            created_at: now_ms(),
            user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
        };
        self.store.insert_session(&session).await?;
        Ok(token)
    }

    /// Resolves a bearer token to its user; `Unauthorized` if unknown or revoked.
    /// The gate of every authenticated request: rate limits per IP, the token, then per user.
    pub async fn authorize(&self, token: &str, ip: std::net::IpAddr) -> Result<Caller> {
        self.limits.rest_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
        let caller = self.authenticate(token).await?;
        self.limits.rest_user(caller.user.id).await.map_err(|l| Error::RateLimited(l.0))?;
        Ok(caller)
    }

    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        if token.is_empty() || token.len() > 128 {
            return Err(Error::Unauthorized);
        }
        let session = self.store.session_by_token_hash(&hash_token(token)).await?.ok_or(Error::Unauthorized)?;
        let record = self.store.user(session.user_id).await?.filter(|r| !r.disabled).ok_or(Error::Unauthorized)?;
        Ok(Caller { user: record.user, session_id: session.id, audit_reason: None })
    }

    /// Whether a gateway session's login still stands: its session not revoked, its user not
    /// disabled (both may change from another process: `chorus admin`, another node).
    pub async fn login_still_valid(&self, user_id: Id, session_id: Id) -> Result<bool> {
        let user_ok = self.store.user(user_id).await?.is_some_and(|r| !r.disabled);
        Ok(user_ok && self.store.sessions_of(user_id).await?.iter().any(|s| s.id == session_id))
    }

    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        self.store.delete_session(caller.user.id, caller.session_id).await?;
        self.hub.log_out(caller.session_id);
        Ok(())
    }

    pub async fn sessions(&self, caller: &Caller) -> Result<Vec<SessionView>> {
        let sessions = self.store.sessions_of(caller.user.id).await?;
        Ok(sessions.into_iter().map(|s| SessionView { current: s.id == caller.session_id, session: s }).collect())
    }

    pub async fn revoke_session(&self, caller: &Caller, session_id: Id) -> Result<()> {
        if !self.store.delete_session(caller.user.id, session_id).await? {
            return Err(Error::NotFound("session"));
        }
        self.hub.log_out(session_id);
        Ok(())
    }

    /// Changes the caller's password after checking the current one; every other session is logged out
    /// (its token refused, its gateway closed), this one stays. Returns how many were logged out.
    pub async fn change_password(&self, caller: &Caller, current: &str, new: &str) -> Result<u64> {
        let record = self.store.user(caller.user.id).await?.ok_or(Error::Unauthorized)?;
        if !verify_password(current.to_string(), record.password_hash).await {
            return Err(Error::WrongPassword);
        }
        let new = validate::password(new)?;
        self.store.set_password_hash(caller.user.id, &hash_password(new).await?).await?;
        let mut revoked = 0;
        for session in self.store.sessions_of(caller.user.id).await? {
            if session.id != caller.session_id && self.store.delete_session(caller.user.id, session.id).await? {
                self.hub.log_out(session.id);
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    pub async fn update_me(&self, caller: &Caller, display_name: Option<Option<String>>) -> Result<User> {
        let mut record = self.store.user(caller.user.id).await?.ok_or(Error::Unauthorized)?;
        if let Some(name) = display_name {
            record.user.display_name = validate::optional_text("display_name", name.as_deref(), 32)?;
        }
        self.store.set_display_name(record.user.id, record.user.display_name.as_deref()).await?;
        let user = record.user;
        // Everyone who shares a guild with the user sees the new name.
        for guild_id in self.store.guilds_of(user.id).await? {
            self.publish(Dispatch::new("USER_UPDATE", &user, Audience::Guild(guild_id)));
        }
        self.publish(Dispatch::new("USER_UPDATE", &user, Audience::Users(vec![user.id])));
        Ok(user)
    }

    /// A new username; the password confirms it is the owner. Everyone who shares a guild with the
    /// user sees it (USER_UPDATE).
    pub async fn change_username(&self, caller: &Caller, username: &str, password: &str) -> Result<User> {
        let record = self.store.user(caller.user.id).await?.ok_or(Error::Unauthorized)?;
        let username = validate::username(username)?;
        if !verify_password(password.to_string(), record.password_hash).await {
            return Err(Error::WrongPassword);
        }
        match self.store.set_username(caller.user.id, &username).await {
            Err(StoreError::Conflict(_)) => return Err(Error::Conflict("username_taken", "that username is taken")),
            other => other?,
        }
        let user = User { username, ..record.user };
        for guild_id in self.store.guilds_of(user.id).await? {
            self.publish(Dispatch::new("USER_UPDATE", &user, Audience::Guild(guild_id)));
        }
        self.publish(Dispatch::new("USER_UPDATE", &user, Audience::Users(vec![user.id])));
        Ok(user)
    }

    /// Deletes the caller's account (the password, and a second factor when 2FA is on, confirm it):
    /// every guild membership ends as a leave would, every session is logged out, the username is
    /// free again. Messages stay, shown as written by a deleted user (Discord's way). An owner must
    /// first give their guilds away or delete them.
    pub async fn delete_account(&self, caller: &Caller, password: &str, code: Option<&str>) -> Result<()> {
        let record = self.store.user(caller.user.id).await?.ok_or(Error::Unauthorized)?;
        if !verify_password(password.to_string(), record.password_hash.clone()).await {
            return Err(Error::WrongPassword);
        }
        if record.totp_secret.is_some() {
            self.require_second_factor(&record, code.unwrap_or("")).await?;
        }
        let guilds = self.store.guilds_of(caller.user.id).await?;
        for guild_id in &guilds {
            if self.store.guild(*guild_id).await?.is_some_and(|g| g.owner_id == caller.user.id) {
                return Err(Error::bad_request(
                    "owns_guilds",
                    "transfer or delete the servers you own before deleting your account",
                ));
            }
        }
        for guild_id in guilds {
            self.leave_guild(caller, guild_id).await?;
        }
        let sessions = self.store.sessions_of(caller.user.id).await?;
        self.store.delete_user(caller.user.id).await?;
        for s in sessions {
            self.hub.log_out(s.id);
        }
        Ok(())
    }

    pub async fn user(&self, id: Id) -> Result<User> {
        Ok(self.store.user(id).await?.ok_or(Error::NotFound("user"))?.user)
    }
}

/// Times are kept at millisecond precision so that stored and returned values are equal.
pub fn now_ms() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// An argon2id hash of a random password nobody knows, for constant-time failed logins.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Hn8bMRk3nMZ7xJZk7Q9pYV6sY0c8gYb8mYk3K2ZQ0s";
