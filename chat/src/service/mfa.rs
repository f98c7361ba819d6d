//! Two-factor authentication with TOTP (RFC 6238: SHA-1, 6 digits, 30 s, one step of clock skew),
//! as authenticator apps implement it.
//!
//! Enrolling is two steps with no state kept between them: `totp_setup` makes a secret and its QR
//! code; `enable_totp` takes the secret back with a code from the app (proof it holds the secret)
//! and the password (so a stolen session cannot lock the owner out), stores it, and answers ten
//! one-time recovery codes, kept only as SHA-256 hashes. A login of an account with 2FA answers a
//! ticket instead of a session; `login_mfa` trades the ticket and a code (or a recovery code) for
//! the session. Tickets are HMACs under the server key, valid five minutes, bound to the password
//! hash (a password change voids them), so any node of a cluster accepts them. Code attempts are
//! limited per account, and a code is good once (RFC 6238 §5.2): the store keeps the time step of
//! the last accepted code and takes only later ones, so a code seen over a shoulder or in a log
//! cannot be replayed within its 90 s of validity.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

use super::accounts::{Authenticated, Caller};
use crate::Chat;
use crate::credentials::verify_password;
use crate::error::{Error, Result};
use crate::id::Id;

const ISSUER: &str = "Chorus";
const TICKET_SECS: i64 = 300;
const RECOVERY_CODES: usize = 10;
const STEP_SECS: u64 = 30;
/// Steps of clock skew taken either side of now (as authenticator apps expect).
const SKEW_STEPS: u64 = 1;

/// The answer of `POST /users/@me/mfa/totp/setup`.
#[derive(Debug, Serialize)]
pub struct TotpSetup {
    /// Base32, for typing into an app by hand.
    pub secret: String,
    pub otpauth_url: String,
    /// The QR code of `otpauth_url`, an SVG image as a `data:` URL (an `<img>` shows it; no markup
    /// goes into the page).
    pub qr_svg: String,
}

/// What a login answers: a session, or a ticket for the second factor.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LoginResult {
    Done(Authenticated),
    Mfa { mfa: bool, ticket: String },
}

#[derive(Debug, Deserialize)]
pub struct EnableTotp {
    pub secret: String,
    pub code: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
pub struct DisableTotp {
    pub password: String,
    pub code: String,
}

#[derive(Debug, Deserialize)]
pub struct MfaLogin {
    pub ticket: String,
    pub code: String,
}

fn totp(secret_b32: &str, account: &str) -> Result<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .map_err(|_| Error::field("secret", "not a base32 TOTP secret"))?;
    if bytes.len() < 16 {
        return Err(Error::field("secret", "a TOTP secret has at least 128 bits"));
    }
    TOTP::new(Algorithm::SHA1, 6, 0, STEP_SECS, bytes, Some(ISSUER.to_owned()), account.to_owned())
        .map_err(|e| Error::field("secret", e.to_string()))
}

/// A code as typed: digits only (spaces and dashes dropped).
fn digits(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect()
}

fn recovery_hash(code: &str) -> String {
    let normalized: String = digits(code).to_ascii_lowercase();
    hex(&Sha256::digest(normalized.as_bytes()))
}

use crate::credentials::hex;

/// Ten codes like `k3f9-x2mq`, from an alphabet without look-alikes.
fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut raw = [0u8; 8];
            rng.fill_bytes(&mut raw);
            let s: String = raw.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
            format!("{}-{}", &s[..4], &s[4..])
        })
        .collect()
}

impl Chat {
    fn ticket_mac(&self, user_id: Id, expires: i64, password_hash: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.config.server_key.bytes()).expect("any key length");
        mac.update(format!("mfa-ticket\n{user_id}\n{expires}\n{password_hash}").as_bytes());
        mac
    }

    /// A ticket for the second step of a login.
    pub(crate) fn mfa_ticket(&self, user_id: Id, password_hash: &str) -> String {
        let expires = chrono::Utc::now().timestamp() + TICKET_SECS;
        let sig = self.ticket_mac(user_id, expires, password_hash).finalize().into_bytes();
        let raw = format!("{user_id}.{expires}.{}", hex(&sig));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// One guess at a second factor (or, when enabling or disabling, at the password) for this
    /// account: limited per account, whatever the client's address.
    async fn attempt(&self, user_id: Id) -> Result<()> {
        self.limits.mfa_attempt(user_id).await.map_err(|l| Error::RateLimited(l.0))
    }

    /// Makes a new secret and its QR code; nothing is stored until `enable_totp`.
    pub async fn totp_setup(&self, caller: &Caller) -> Result<TotpSetup> {
        let mut raw = [0u8; 20];
        rand::rng().fill_bytes(&mut raw);
        let secret = Secret::Raw(raw.to_vec()).to_encoded().to_string();
        let t = totp(&secret, &caller.user.username)?;
        let url = t.get_url();
        let qr = qrcode::QrCode::new(url.as_bytes()).map_err(|e| Error::Internal(e.to_string()))?;
        let svg = qr.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
        let qr_svg =
            format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg.as_bytes()));
        Ok(TotpSetup { secret, otpauth_url: url, qr_svg })
    }

    /// The time step a code belongs to (now, or one step either side), if it is the account's.
    /// Each request that checks one counts one attempt first ([`Chat::attempt`]).
    fn code_step(&self, secret: &str, account: &str, code: &str) -> Result<Option<u64>> {
        let code = digits(code);
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let t = totp(secret, account)?;
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0) / STEP_SECS;
        Ok((now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS).find(|step| t.check(&code, step * STEP_SECS)))
    }

    /// Turns 2FA on; answers the recovery codes (shown once).
    pub async fn enable_totp(&self, caller: &Caller, body: EnableTotp) -> Result<Vec<String>> {
        let record = self.store.user(caller.user.id).await?.ok_or(Error::Unauthorized)?;
        if record.totp_secret.is_some() {
            return Err(Error::Conflict("mfa_enabled", "two-factor authentication is already on"));
        }
        self.attempt(caller.user.id).await?;
        if !verify_password(body.password, record.password_hash).await {
            return Err(Error::WrongPassword);
        }
        let secret = body.secret.trim().to_ascii_uppercase();
        totp(&secret, &record.user.username)?;
        let Some(step) = self.code_step(&secret, &record.user.username, &body.code)? else {
            return Err(Error::bad_request("invalid_mfa_code", "that code is not the app's current one"));
        };
        let codes = new_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
        self.store.set_totp(caller.user.id, Some(&secret), &hashes).await?;
        // The code that proved the app holds the secret is spent: it cannot log in next. 2FA is on
        // already, so a failure here must not hide the recovery codes from the caller.
        if let Err(e) = self.store.use_totp_step(caller.user.id, step).await {
            tracing::warn!(error = %e, "the enabling TOTP code was not marked used");
        }
        Ok(codes)
    }

    /// Turns 2FA off: the password and a code (or a recovery code).
    pub async fn disable_totp(&self, caller: &Caller, body: DisableTotp) -> Result<()> {
        let record = self.store.user(caller.user.id).await?.ok_or(Error::Unauthorized)?;
        let Some(secret) = record.totp_secret.clone() else {
            return Err(Error::bad_request("mfa_not_enabled", "two-factor authentication is off"));
        };
        self.attempt(caller.user.id).await?;
        if !verify_password(body.password, record.password_hash.clone()).await {
            return Err(Error::WrongPassword);
        }
        if !self.second_factor(record.user.id, &secret, &record.user.username, &body.code).await? {
            return Err(Error::bad_request("invalid_mfa_code", "that code is not valid"));
        }
        self.store.set_totp(caller.user.id, None, &[]).await?;
        Ok(())
    }

    /// A TOTP code not used before (its step is later than the last accepted one), or else a
    /// recovery code (spent on use).
    async fn second_factor(&self, user_id: Id, secret: &str, account: &str, code: &str) -> Result<bool> {
        if let Some(step) = self.code_step(secret, account, code)? {
            return Ok(self.store.use_totp_step(user_id, step).await?);
        }
        Ok(self.store.use_recovery_code(user_id, &recovery_hash(code)).await?)
    }

    /// A TOTP or recovery code the account's 2FA accepts, else `invalid_mfa_code`.
    pub(crate) async fn require_second_factor(&self, record: &crate::model::UserRecord, code: &str) -> Result<()> {
        let Some(secret) = record.totp_secret.as_deref() else { return Ok(()) };
        self.attempt(record.user.id).await?;
        if self.second_factor(record.user.id, secret, &record.user.username, code).await? {
            Ok(())
        } else {
            Err(Error::bad_request("invalid_mfa_code", "a valid two-factor code is needed"))
        }
    }

    /// The second step of a login.
    pub async fn login_mfa(&self, body: MfaLogin, user_agent: Option<String>) -> Result<Authenticated> {
        // 400, not 401/403: the request carries no credential that failed, only a bad body value.
        let invalid = || Error::bad_request("invalid_ticket", "the login ticket is unknown or expired; log in again");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body.ticket.trim()).map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let mut parts = raw.splitn(3, '.');
        let (Some(user), Some(expires), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let user_id: Id = user.parse().map_err(|_| invalid())?;
        let expires: i64 = expires.parse().map_err(|_| invalid())?;
        if expires < chrono::Utc::now().timestamp() {
            return Err(invalid());
        }
        let sig = crate::credentials::unhex32(sig).ok_or_else(invalid)?;
        let record = self.store.user(user_id).await?.ok_or_else(invalid)?;
        if self.ticket_mac(user_id, expires, &record.password_hash).verify_slice(&sig).is_err() {
            return Err(invalid());
        }
        if record.disabled {
            return Err(Error::Refused("account_disabled", "this account is disabled"));
        }
        let secret = record.totp_secret.clone().ok_or_else(invalid)?;
        self.attempt(user_id).await?;
        if !self.second_factor(user_id, &secret, &record.user.username, &body.code).await? {
            return Err(Error::bad_request("invalid_mfa_code", "that code is not valid"));
        }
        let token = self.open_session(user_id, user_agent).await?;
        Ok(Authenticated { user: record.user, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_test_vector_for_sha1() {
        // RFC 6238 appendix B: the ASCII secret "12345678901234567890", T = 59 s → 94287082 (8
        // digits); our 6-digit codes are its last six.
        let secret = Secret::Raw(b"12345678901234567890".to_vec()).to_encoded().to_string();
        let t = totp(&secret, "a").unwrap();
        assert_eq!(t.generate(59), "287082");
        assert_eq!(t.generate(1_111_111_109), "081804");
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_hash_the_same_however_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes.iter().collect::<std::collections::BTreeSet<_>>().len(), 10);
        let c = &codes[0];
        assert_eq!(recovery_hash(c), recovery_hash(&c.to_uppercase().replace('-', " ")));
    }

    #[test]
    fn a_short_or_malformed_secret_is_refused() {
        assert!(totp("not base32 !", "a").is_err());
        assert!(totp("JBSWY3DP", "a").is_err(), "40 bits is too short");
    }
}
