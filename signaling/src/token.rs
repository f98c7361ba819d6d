//! Voice tokens: short-lived HS256 JWTs that chat issues and signaling verifies.
//!
//! A token binds a user to one voice channel (and its guild) with the rights that
//! decide what the user may do in it. Signaling never reads chat's tables: the token
//! is the whole grant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

/// Lifetime of a token: long enough to open the `/voice` socket, no longer.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

const AUDIENCE: &str = "chorus-voice";

/// What a member may do in a voice channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rights {
    /// Publish audio.
    pub speak: bool,
    /// Publish camera and screen share.
    pub video: bool,
    /// Server-mute others.
    pub mute_members: bool,
    /// Server-deafen others.
    pub deafen_members: bool,
    /// Move others between channels.
    pub move_members: bool,
    /// Server-muted by a moderator when granted: the call starts muted.
    pub server_muted: bool,
    /// Server-deafened by a moderator when granted: the call starts deaf.
    pub server_deafened: bool,
}

impl Rights {
    fn bits(self) -> u32 {
        (self.speak as u32)
            | (self.video as u32) << 1
            | (self.mute_members as u32) << 2
            | (self.deafen_members as u32) << 3
            | (self.move_members as u32) << 4
            | (self.server_muted as u32) << 5
            | (self.server_deafened as u32) << 6
    }

    fn from_bits(b: u32) -> Self {
        Rights {
            speak: b & 1 != 0,
            video: b & 2 != 0,
            mute_members: b & 4 != 0,
            deafen_members: b & 8 != 0,
            move_members: b & 16 != 0,
            server_muted: b & 32 != 0,
            server_deafened: b & 64 != 0,
        }
    }
}

/// The grant chat makes, before an expiry is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceGrant {
    pub user_id: u64,
    pub guild_id: Option<u64>,
    pub channel_id: u64,
    pub rights: Rights,
}

/// A verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceClaims {
    pub user_id: u64,
    pub guild_id: Option<u64>,
    pub channel_id: u64,
    pub rights: Rights,
    /// Unix seconds.
    pub expires_at: u64,
    /// The cluster node whose SFU hosts the room; None on a single node.
    pub node: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the voice token is malformed")]
    Malformed,
    #[error("the voice token signature is not valid")]
    BadSignature,
    #[error("the voice token has expired")]
    Expired,
    #[error("the voice token is for channel {got}, not {expected}")]
    WrongChannel { expected: u64, got: u64 },
    #[error("this voice token is for node {got}'s room, not this node ({expected}): ask for a new grant")]
    WrongNode { expected: u16, got: u16 },
    #[error("cannot sign the voice token: {0}")]
    Sign(String),
}

impl TokenError {
    /// The `error.code` sent to the client.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed => "invalid_token",
            TokenError::BadSignature => "invalid_token",
            TokenError::Expired => "token_expired",
            TokenError::WrongChannel { .. } => "wrong_channel",
            TokenError::WrongNode { .. } => "wrong_node",
            TokenError::Sign(_) => "internal",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Jwt {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gid: Option<String>,
    cid: String,
    rights: u32,
    exp: u64,
    aud: String,
    /// The node that hosts the room (cluster only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nid: Option<u16>,
}

/// Issues and verifies voice tokens with one server secret.
#[derive(Clone)]
pub struct VoiceTokens {
    enc: EncodingKey,
    dec: DecodingKey,
    /// This node, in a cluster: a token for another node's room is refused.
    node: Option<u16>,
}

impl std::fmt::Debug for VoiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoiceTokens(..)")
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl VoiceTokens {
    pub fn new(secret: &[u8]) -> Self {
        VoiceTokens { enc: EncodingKey::from_secret(secret), dec: DecodingKey::from_secret(secret), node: None }
    }

    /// Tokens verified on cluster node `node`: one naming another node is refused (`wrong_node`).
    pub fn for_node(secret: &[u8], node: u16) -> Self {
        VoiceTokens { node: Some(node), ..VoiceTokens::new(secret) }
    }

    /// Sign a grant valid for `ttl`; returns the token and its expiry (Unix seconds).
    pub fn issue(&self, grant: &VoiceGrant, ttl: Duration) -> Result<(String, u64), TokenError> {
        self.issue_for_node(grant, ttl, None)
    }

    /// Like [`VoiceTokens::issue`], for a room hosted by cluster node `node`.
    pub fn issue_for_node(
        &self,
        grant: &VoiceGrant,
        ttl: Duration,
        node: Option<u16>,
    ) -> Result<(String, u64), TokenError> {
        let exp = now_secs() + ttl.as_secs();
        let claims = Jwt {
            sub: grant.user_id.to_string(),
            gid: grant.guild_id.map(|g| g.to_string()),
            cid: grant.channel_id.to_string(),
            rights: grant.rights.bits(),
            exp,
            aud: AUDIENCE.into(),
            nid: node,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok((token, exp))
    }

    /// Check signature, expiry and (when given) the channel the client asked for.
    pub fn verify(&self, token: &str, expected_channel: Option<u64>) -> Result<VoiceClaims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Jwt>(token, &self.dec, &v).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed,
        })?;
        let c = data.claims;
        // `exp` is checked by the library with no leeway; be exact at the boundary too.
        if c.exp <= now_secs() {
            return Err(TokenError::Expired);
        }
        let parse = |s: &str| s.parse::<u64>().map_err(|_| TokenError::Malformed);
        let claims = VoiceClaims {
            user_id: parse(&c.sub)?,
            guild_id: c.gid.as_deref().map(parse).transpose()?,
            channel_id: parse(&c.cid)?,
            rights: Rights::from_bits(c.rights),
            expires_at: c.exp,
            node: c.nid,
        };
        if let (Some(mine), Some(theirs)) = (self.node, claims.node)
            && mine != theirs
        {
            return Err(TokenError::WrongNode { expected: mine, got: theirs });
        }
        if let Some(expected) = expected_channel
            && expected != claims.channel_id
        {
            return Err(TokenError::WrongChannel { expected, got: claims.channel_id });
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> VoiceGrant {
        VoiceGrant {
            user_id: 42,
            guild_id: Some(7),
            channel_id: 99,
            rights: Rights {
                speak: true,
                mute_members: true,
                move_members: true,
                server_deafened: true,
                ..Rights::default()
            },
        }
    }

    #[test]
    fn a_node_refuses_a_token_for_another_nodes_room() {
        let issuer = VoiceTokens::new(b"secret");
        let (token, _) = issuer.issue_for_node(&grant(), DEFAULT_TTL, Some(2)).unwrap();
        assert_eq!(VoiceTokens::for_node(b"secret", 2).verify(&token, None).unwrap().node, Some(2));
        let e = VoiceTokens::for_node(b"secret", 3).verify(&token, None).unwrap_err();
        assert_eq!(e, TokenError::WrongNode { expected: 3, got: 2 });
        assert_eq!(e.code(), "wrong_node");
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let t = VoiceTokens::new(b"secret");
        let (tok, exp) = t.issue(&grant(), DEFAULT_TTL).unwrap();
        let c = t.verify(&tok, Some(99)).unwrap();
        assert_eq!(c.user_id, 42);
        assert_eq!(c.guild_id, Some(7));
        assert_eq!(c.rights, grant().rights);
        assert_eq!(c.expires_at, exp);
    }

    #[test]
    fn forged_expired_garbage_and_wrong_channel_tokens_are_refused() {
        let t = VoiceTokens::new(b"secret");
        let other = VoiceTokens::new(b"other");
        let (forged, _) = other.issue(&grant(), DEFAULT_TTL).unwrap();
        assert_eq!(t.verify(&forged, None), Err(TokenError::BadSignature));
        assert_eq!(t.verify("garbage", None), Err(TokenError::Malformed));
        let (tok, _) = t.issue(&grant(), DEFAULT_TTL).unwrap();
        assert!(matches!(t.verify(&tok, Some(100)), Err(TokenError::WrongChannel { .. })));
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Jwt {
                sub: "1".into(),
                gid: None,
                cid: "99".into(),
                rights: 1,
                exp: now_secs() - 5,
                aud: AUDIENCE.into(),
                nid: None,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(t.verify(&expired, None), Err(TokenError::Expired));
    }
}
