//! The READY payload: who you are, your guilds (visible channels, roles, member count), DMs, read
//! states with unread and mention counts, voice states and the presences of online members.

use serde::Serialize;

use super::accounts::Caller;
use crate::Chat;
use crate::error::Result;
use crate::id::Id;
use crate::model::{Channel, User};
use crate::view::GuildView;
use crate::voice::VoiceState;

/// Unread counts are exact up to this many; beyond it clients show "99+".
const UNREAD_CAP: u32 = 100;

#[derive(Debug, Serialize)]
pub struct ReadStateView {
    pub channel_id: Id,
    pub last_read_id: Option<Id>,
    pub unread_count: u32,
    pub mention_count: u32,
}

#[derive(Debug, Serialize)]
pub struct PresenceView {
    pub user_id: Id,
    pub status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ReadyGuild {
    #[serde(flatten)]
    pub guild: GuildView,
    pub voice_states: Vec<VoiceState>,
    pub presences: Vec<PresenceView>,
}

#[derive(Debug, Serialize)]
pub struct Ready {
    pub session_id: String,
    pub user: User,
    pub guilds: Vec<ReadyGuild>,
    pub private_channels: Vec<Channel>,
    pub read_states: Vec<ReadStateView>,
}

impl Chat {
    /// Builds READY for a caller's new session.
    pub async fn ready(&self, caller: &Caller, session_id: String) -> Result<Ready> {
        let user_id = caller.user.id;
        let acks: std::collections::HashMap<Id, Id> =
            self.store.read_states(user_id).await?.into_iter().map(|r| (r.channel_id, r.last_read_id)).collect();
        let mut guilds = Vec::new();
        let mut read_states = Vec::new();
        for guild_id in self.store.guilds_of(user_id).await? {
            let Ok(access) = self.guild_access(user_id, guild_id).await else { continue };
            let view = self.guild_view(&access).await?;
            for c in view.channels.iter().filter(|c| c.kind.has_messages()) {
                read_states.push(self.read_state(c, acks.get(&c.id).copied(), user_id, &access.member.roles).await?);
            }
            let presences = self.online_presences(guild_id).await;
            let voice_states = self.voice_states_in_channels(guild_id, &view.channels).await;
            guilds.push(ReadyGuild { guild: view, voice_states, presences });
        }
        let private_channels = self.store.dm_channels_of(user_id).await?;
        for c in &private_channels {
            read_states.push(self.read_state(c, acks.get(&c.id).copied(), user_id, &[]).await?);
        }
        Ok(Ready { session_id, user: caller.user.clone(), guilds, private_channels, read_states })
    }

    async fn read_state(&self, c: &Channel, last_read: Option<Id>, user_id: Id, roles: &[Id]) -> Result<ReadStateView> {
        let after = last_read.unwrap_or_default();
        let unread = match c.last_message_id {
            Some(last) if last > after => self.store.count_messages_after(c.id, after, UNREAD_CAP).await?,
            _ => 0,
        };
        let mentions = if unread > 0 {
            self.store.count_mentions_after(c.id, after, user_id, roles, UNREAD_CAP).await?
        } else {
            0
        };
        Ok(ReadStateView { channel_id: c.id, last_read_id: last_read, unread_count: unread, mention_count: mentions })
    }

    /// Presences of the guild's online members (on any node, in a cluster; this node's view when
    /// the cluster does not answer).
    pub(crate) async fn online_presences(&self, guild_id: Id) -> Vec<PresenceView> {
        let online = match self.presence.get() {
            Some(directory) => match directory.online_in_guild(guild_id).await {
                Ok(online) => online,
                Err(e) => {
                    tracing::warn!(error = %e, "presence: the cluster does not answer; listing this node's view");
                    self.hub.online_in_guild(guild_id)
                }
            },
            None => self.hub.online_in_guild(guild_id),
        };
        online.into_iter().map(|(user_id, status)| PresenceView { user_id, status: status.as_str() }).collect()
    }
}
