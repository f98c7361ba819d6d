//! Voice: granting a voice channel (CONNECT checked, token from the voice side) and the voice
//! states the voice side reports back (VOICE_STATE_UPDATE).

use crate::Chat;
use crate::error::{Error, Result};
use crate::events::{Audience, Dispatch};
use crate::id::Id;
use crate::model::ChannelKind;
use crate::permissions::Permissions;
use crate::voice::{GrantRequest, VoiceGrant, VoiceRights, VoiceState};

use super::accounts::Caller;

impl Chat {
    pub async fn grant_voice(&self, caller: &Caller, channel_id: Id) -> Result<VoiceGrant> {
        let access = self.channel_access(caller.user.id, channel_id).await?;
        if access.channel.kind != ChannelKind::Voice {
            return Err(Error::bad_request("not_a_voice_channel", "this is not a voice channel"));
        }
        access.require(Permissions::CONNECT)?;
        let p = access.perms;
        let rights = VoiceRights {
            speak: p.contains(Permissions::SPEAK),
            video: p.contains(Permissions::VIDEO),
            mute_members: p.contains(Permissions::MUTE_MEMBERS),
            deafen_members: p.contains(Permissions::DEAFEN_MEMBERS),
            move_members: p.contains(Permissions::MOVE_MEMBERS),
        };
        self.voice
            .grant(GrantRequest { user_id: caller.user.id, guild_id: access.channel.guild_id, channel_id, rights })
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// The voice side reports a join, a leave (`channel_id: None`) or a mute change.
    pub fn voice_state(&self, state: VoiceState) {
        {
            let mut states = self.voice_states.write();
            if state.channel_id.is_some() {
                states.insert(state.user_id, state.clone());
            } else {
                states.remove(&state.user_id);
            }
        }
        if let Some(guild_id) = state.guild_id {
            self.publish(Dispatch::new("VOICE_STATE_UPDATE", &state, Audience::Guild(guild_id)));
        }
    }

    /// Voice states of one guild (for READY).
    pub fn voice_states_of(&self, guild_id: Id) -> Vec<VoiceState> {
        self.voice_states.read().values().filter(|s| s.guild_id == Some(guild_id)).cloned().collect()
    }

    /// A member removed from a guild leaves its voice channel in chat's view.
    pub(crate) fn leave_voice_in_guild(&self, user_id: Id, guild_id: Id) {
        let current = self.voice_states.read().get(&user_id).cloned();
        if let Some(s) = current.filter(|s| s.guild_id == Some(guild_id)) {
            self.voice_state(VoiceState { channel_id: None, ..s });
        }
    }
}
