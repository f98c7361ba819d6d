//! The ICE servers each `joined` carries: fixed ones from the settings, and TURN servers with
//! time-limited credentials in the TURN REST API scheme that coturn implements (`use-auth-secret`):
//! username `EXPIRY:PARTICIPANT` (EXPIRY in Unix seconds), credential `base64(HMAC-SHA1(secret, username))`.
//! The TURN server checks both with the shared secret alone, so no per-user state is shared with it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::protocol::IceServer;

/// TURN servers sharing one secret with Chorus.
#[derive(Clone)]
pub struct TurnRest {
    /// `turn:` / `turns:` URLs, e.g. `turn:turn.example.org:3478?transport=udp`.
    pub urls: Vec<String>,
    secret: Arc<[u8]>,
    /// How long a credential stays valid from the `joined` that carried it.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnRest").field("urls", &self.urls).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TurnRest {
    pub fn new(urls: Vec<String>, secret: &str, ttl: Duration) -> TurnRest {
        TurnRest { urls, secret: secret.as_bytes().into(), ttl }
    }

    /// The credential for `username` (coturn's `use-auth-secret` check).
    pub fn credential(&self, username: &str) -> String {
        turn_rest_credential(&self.secret, username)
    }
}

/// `base64(HMAC-SHA1(secret, username))`.
pub fn turn_rest_credential(secret: &[u8], username: &str) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// What a session hands out in `joined`.
#[derive(Debug, Clone, Default)]
pub struct IceServers {
    pub fixed: Vec<IceServer>,
    pub turn: Option<TurnRest>,
}

impl IceServers {
    /// The list for one participant at `unix_now` (seconds).
    pub fn for_participant(&self, unix_now: u64, participant: &str) -> Vec<IceServer> {
        let mut out = self.fixed.clone();
        if let Some(t) = self.turn.as_ref().filter(|t| !t.urls.is_empty()) {
            let username = format!("{}:{participant}", unix_now.saturating_add(t.ttl.as_secs()));
            out.push(IceServer {
                urls: t.urls.clone(),
                credential: Some(t.credential(&username)),
                username: Some(username),
            });
        }
        out
    }
}

/// Seconds since the Unix epoch by the wall clock (credentials expire by the TURN server's clock).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_base64_of_hmac_sha1_of_the_username() {
        // Computed independently: printf '%s' 1700000000:42 | openssl dgst -sha1 -hmac north -binary | base64
        assert_eq!(turn_rest_credential(b"north", "1700000000:42"), "DWX3FI7DiPIpadEYQAZsnZBAagI=");
        assert_eq!(
            turn_rest_credential(b"logen", "1433895918506:my_super_secret_user"),
            "nQijsyHJmrYQsc6dnqutWIIQ6ko="
        );
    }

    #[test]
    fn each_participant_gets_a_username_with_its_expiry_and_id() {
        let ice = IceServers {
            fixed: vec![IceServer {
                urls: vec!["stun:stun.example.org:3478".into()],
                username: None,
                credential: None,
            }],
            turn: Some(TurnRest::new(vec!["turn:turn.example.org:3478".into()], "north", Duration::from_secs(3600))),
        };
        let list = ice.for_participant(1_700_000_000, "42");
        assert_eq!(list.len(), 2, "the fixed servers stay first");
        assert_eq!(list[1].username.as_deref(), Some("1700003600:42"));
        assert_eq!(list[1].credential, Some(turn_rest_credential(b"north", "1700003600:42")));
        assert_ne!(ice.for_participant(1_700_000_000, "43")[1].credential, list[1].credential);
    }

    #[test]
    fn without_turn_only_the_fixed_servers_are_sent() {
        assert!(IceServers::default().for_participant(1, "1").is_empty());
        let debug = format!("{:?}", TurnRest::new(vec![], "hunter2-secret", Duration::from_secs(1)));
        assert!(!debug.contains("hunter2"), "the secret never reaches a log: {debug}");
    }
}
