//! Who may allocate: TURN REST API credentials (the scheme coturn's `use-auth-secret` implements),
//! checked with the shared secret alone — username `EXPIRY:PARTICIPANT`, password
//! `base64(HMAC-SHA1(secret, username))` — and the long-term key RFC 8489 §9.2.2 derives from them.
//! Nonces are stateless: a timestamp and an HMAC of it and the client's address under a key made at
//! start, so a nonce cannot be reused from another address or after [`NONCE_LIFETIME`].

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

pub const NONCE_LIFETIME: Duration = Duration::from_secs(600);

/// The participant an accepted username names, and the long-term key its messages are signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub participant: String,
    pub expires_unix: u64,
    pub key: [u8; 16],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("username is not EXPIRY:PARTICIPANT")]
    Malformed,
    #[error("credential expired")]
    Expired,
}

pub struct Secret {
    secret: Vec<u8>,
    nonce_key: [u8; 32],
}

impl Secret {
    pub fn new(secret: &[u8]) -> Secret {
        Secret { secret: secret.to_vec(), nonce_key: rand::random() }
    }

    /// The password a REST username implies.
    pub fn password(&self, username: &str) -> String {
        let mut mac = hmac_sha1(&self.secret);
        mac.update(username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Checks the username's form and expiry and derives the long-term key; the caller then checks
    /// MESSAGE-INTEGRITY with it, which is what proves the password.
    pub fn credential(&self, username: &str, realm: &str, unix_now: u64) -> Result<Credential, CredentialError> {
        let (expiry, participant) = username.split_once(':').ok_or(CredentialError::Malformed)?;
        let expires_unix: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
        if participant.is_empty() || participant.len() > 64 {
            return Err(CredentialError::Malformed);
        }
        if expires_unix < unix_now {
            return Err(CredentialError::Expired);
        }
        let key = long_term_key(username, realm, &self.password(username));
        Ok(Credential { participant: participant.to_string(), expires_unix, key })
    }

    /// A nonce for `client` issued at `unix_now`.
    pub fn nonce(&self, client: SocketAddr, unix_now: u64) -> String {
        format!("{unix_now:016x}{}", self.nonce_tag(client, unix_now))
    }

    /// Whether `nonce` was issued by this server to `client` and is still fresh.
    pub fn nonce_fresh(&self, nonce: &str, client: SocketAddr, unix_now: u64) -> bool {
        let (Some(stamp), Some(tag)) = (nonce.get(..16), nonce.get(16..)) else { return false };
        let Ok(issued) = u64::from_str_radix(stamp, 16) else { return false };
        issued <= unix_now
            && unix_now - issued < NONCE_LIFETIME.as_secs()
            && constant_time_eq(tag.as_bytes(), self.nonce_tag(client, issued).as_bytes())
    }

    fn nonce_tag(&self, client: SocketAddr, issued: u64) -> String {
        let mut mac = hmac_sha1(&self.nonce_key);
        mac.update(&issued.to_be_bytes());
        mac.update(client.to_string().as_bytes());
        mac.finalize().into_bytes()[..12].iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn hmac_sha1(key: &[u8]) -> Hmac<Sha1> {
    // HMAC takes keys of any length.
    match Hmac::<Sha1>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    }
}

/// MD5(username ":" realm ":" password).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(format!("{username}:{realm}:{password}").as_bytes());
    h.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_coturns_rest_credential() {
        // coturn's documented example (turnserver.conf, use-auth-secret): secret "logen".
        let s = Secret::new(b"logen");
        assert_eq!(s.password("1433895918506:my_super_secret_user"), "nQijsyHJmrYQsc6dnqutWIIQ6ko=");
    }

    #[test]
    fn an_expired_or_malformed_username_is_refused() {
        let s = Secret::new(b"0123456789abcdef");
        assert_eq!(s.credential("100:7", "chorus", 101), Err(CredentialError::Expired));
        assert_eq!(s.credential("7", "chorus", 1), Err(CredentialError::Malformed));
        assert_eq!(s.credential("soon:7", "chorus", 1), Err(CredentialError::Malformed));
        assert_eq!(s.credential("100:", "chorus", 1), Err(CredentialError::Malformed));
        let ok = s.credential("100:7", "chorus", 100).unwrap();
        assert_eq!(ok.participant, "7");
        assert_eq!(ok.key, long_term_key("100:7", "chorus", &s.password("100:7")));
    }

    #[test]
    fn a_nonce_is_bound_to_its_client_and_goes_stale() {
        let s = Secret::new(b"0123456789abcdef");
        let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:5001".parse().unwrap();
        let n = s.nonce(a, 1000);
        assert!(s.nonce_fresh(&n, a, 1000 + 599));
        assert!(!s.nonce_fresh(&n, a, 1000 + 600), "stale after ten minutes");
        assert!(!s.nonce_fresh(&n, b, 1001), "another address");
        assert!(!s.nonce_fresh("garbage", a, 1001));
        assert!(!s.nonce_fresh(&Secret::new(b"0123456789abcdef").nonce(a, 1000), a, 1001), "another server");
    }
}
