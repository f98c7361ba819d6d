//! The two seams between chat and the voice side. Chat decides who may join a voice channel and
//! shows who sits where; it never touches media. The binary implements [`VoiceGrants`] with the
//! signaling crate's token issuer and feeds [`VoiceStates`] from signaling's participant events.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::id::Id;
use crate::model::Timestamp;

/// What a member may do in the voice channel they are granted, from their channel permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceRights {
    pub speak: bool,
    pub video: bool,
    pub mute_members: bool,
    pub deafen_members: bool,
    pub move_members: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRequest {
    pub user_id: Id,
    pub guild_id: Option<Id>,
    pub channel_id: Id,
    pub rights: VoiceRights,
    /// The member's server mute and deafen at grant time (the call starts that way).
    pub server_mute: bool,
    pub server_deaf: bool,
}

/// The answer of `POST /api/v1/channels/{id}/voice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceGrant {
    /// The `/voice` WebSocket URL the client should open.
    pub endpoint: String,
    pub token: String,
    pub expires_at: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("voice is unavailable: {0}")]
    Unavailable(String),
}

/// Issues voice tokens. Implemented by the binary (signaling's signer); chat only asks.
#[async_trait]
pub trait VoiceGrants: Send + Sync + 'static {
    async fn grant(&self, request: GrantRequest) -> Result<VoiceGrant, GrantError>;
}

/// Who sits in which voice channel: `VOICE_STATE_UPDATE` on the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceState {
    pub guild_id: Option<Id>,
    /// None when the user left voice.
    pub channel_id: Option<Id>,
    pub user_id: Id,
    pub self_mute: bool,
    pub self_deaf: bool,
    #[serde(default)]
    pub server_mute: bool,
    #[serde(default)]
    pub server_deaf: bool,
}

/// A moderator's order to the voice side about one member's call in a guild. Chat decides (the
/// permission checks, the stored mute/deaf); the node that holds the call carries it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceOrder {
    pub guild_id: Id,
    pub user_id: Id,
    pub action: VoiceAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VoiceAction {
    /// Server mute / deafen as stored on the member now.
    Mute { mute: bool, deaf: bool },
    /// Leave this call and join `channel_id` (the client rejoins by itself).
    Move { channel_id: Id },
    /// Leave voice.
    Disconnect,
}
