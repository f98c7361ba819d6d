//! The binary's side of the chat ↔ voice seams: it answers chat's voice grants with tokens the
//! signaling side verifies, and forwards signaling's voice-state changes to chat.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use chat::voice::{GrantError, GrantRequest, VoiceGrant, VoiceGrants};
use rand::RngCore;

/// Loads the voice-token secret from the settings, or from DATA_DIR/voice-secret (created once).
pub fn load_secret(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>> {
    if let Some(s) = configured {
        anyhow::ensure!(s.len() >= 32, "voice_secret must be at least 32 characters");
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("voice-secret");
    if let Ok(existing) = std::fs::read(&path)
        && existing.len() >= 32
    {
        return Ok(existing);
    }
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(secret)
}

/// How often the accounts of the users in voice here are checked: a disabled account's call ends
/// within this time, whichever process disabled it.
pub const ACCOUNT_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Ends the calls of users whose account was disabled (sessions revoked, gateway closed, and —
/// this task — voice left with `account_disabled`). Stops when either plane is gone.
pub fn spawn_account_check(chat: std::sync::Weak<chat::Chat>, voice: std::sync::Weak<signaling::Signaling>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ACCOUNT_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(chat) = chat.upgrade() else { return };
            let disabled = chat.disabled_voice_users().await;
            let Some(voice) = voice.upgrade() else { return };
            for user in disabled {
                tracing::info!(user_id = %user, "voice: ending the call of a disabled account");
                voice.kick_user(signaling::Kick {
                    user_id: user.get(),
                    code: "account_disabled",
                    message: "this account is disabled",
                });
            }
        }
    });
}

/// Carries moderators' orders (server mute, move, disconnect) from chat's event stream — every
/// node's, in a cluster — to this node's signaling, which acts on the calls it holds. Stops when
/// signaling is gone.
pub fn spawn_moderation(chat: &chat::Chat, voice: std::sync::Weak<signaling::Signaling>) {
    let mut orders = chat.voice_orders();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let order = match orders.recv().await {
                Ok(order) => order,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "voice: moderation orders were missed");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let Some(voice) = voice.upgrade() else { return };
            let action = match order.action {
                chat::voice::VoiceAction::Mute { mute, deaf } => {
                    signaling::Moderation::Mute { muted: mute, deafened: deaf }
                }
                chat::voice::VoiceAction::Move { channel_id } => {
                    signaling::Moderation::Move { channel_id: channel_id.get() }
                }
                chat::voice::VoiceAction::Disconnect => signaling::Moderation::Disconnect,
            };
            voice.moderate(signaling::ModeratorOrder {
                user_id: order.user_id.get(),
                guild_id: order.guild_id.get(),
                action,
            });
        }
    });
}

/// Signaling's voice-state changes, delivered to chat's gateway (VOICE_STATE_UPDATE).
pub struct ChatVoiceStates(pub std::sync::Weak<chat::Chat>);

impl signaling::VoiceEvents for ChatVoiceStates {
    fn voice_state(&self, s: signaling::VoiceStateChange) {
        let Some(chat) = self.0.upgrade() else { return };
        let id = |v: u64| chat::Id::from_i64(i64::try_from(v).unwrap_or(0));
        chat.voice_state(chat::voice::VoiceState {
            guild_id: s.guild_id.map(id),
            channel_id: s.channel_id.map(id),
            user_id: id(s.user_id),
            self_mute: s.self_mute,
            self_deaf: s.self_deaf,
            server_mute: s.server_mute,
            server_deaf: s.server_deaf,
        });
    }
}

/// Grants voice by issuing a signed token through signaling's issuer. In a cluster the room is
/// placed first (`cluster::rooms`), and the grant names the owner's endpoint and node.
pub struct TokenGrants {
    pub tokens: Arc<signaling::token::VoiceTokens>,
    pub endpoint: String,
    pub ttl: std::time::Duration,
    /// The cluster's Redis, when this node is in one.
    pub cluster: Option<redis::aio::ConnectionManager>,
}

#[async_trait]
impl VoiceGrants for TokenGrants {
    async fn grant(&self, r: GrantRequest) -> Result<VoiceGrant, GrantError> {
        let grant = signaling::token::VoiceGrant {
            user_id: r.user_id.get(),
            guild_id: r.guild_id.map(|g| g.get()),
            channel_id: r.channel_id.get(),
            rights: signaling::token::Rights {
                speak: r.rights.speak,
                video: r.rights.video,
                mute_members: r.rights.mute_members,
                deafen_members: r.rights.deafen_members,
                move_members: r.rights.move_members,
                server_muted: r.server_mute,
                server_deafened: r.server_deaf,
            },
        };
        let (endpoint, node) = match &self.cluster {
            Some(conn) => {
                let placed = crate::cluster::rooms::place(conn, grant.channel_id)
                    .await
                    .map_err(|e| GrantError::Unavailable(e.to_string()))?;
                (placed.voice_endpoint, Some(placed.node_id))
            }
            None => (self.endpoint.clone(), None),
        };
        let (token, expires_unix) =
            self.tokens.issue_for_node(&grant, self.ttl, node).map_err(|e| GrantError::Unavailable(e.to_string()))?;
        let expires_at = chrono::DateTime::from_timestamp(i64::try_from(expires_unix).unwrap_or(i64::MAX), 0)
            .ok_or_else(|| GrantError::Unavailable("token expiry out of range".into()))?;
        Ok(VoiceGrant { endpoint, token, expires_at })
    }
}
