//! Voice: granting a voice channel (CONNECT checked, token from the voice side) and the voice
//! states the voice side reports back (VOICE_STATE_UPDATE).
//!
//! A voice state names its channel, so it reaches exactly the sessions whose member may view that
//! channel — in dispatches, READY and GUILD_CREATE — and a "left" update reaches those who could see
//! the channel that was left. Changes are announced in the order the voice side reported them.
//!
//! In a cluster each node's voice side reports only the calls it holds: a [`VoiceDirectory`] (the
//! binary's, on Redis) keeps every node's states, so READY and GUILD_CREATE on any node list who
//! sits in voice anywhere, and the states of a node that died are announced as left.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::Chat;
use crate::bus::BusError;
use crate::error::{Error, Result};
use crate::events::{Audience, ChannelScope, Dispatch};
use crate::id::Id;
use crate::model::{Channel, ChannelKind};
use crate::permissions::Permissions;
use crate::voice::{GrantRequest, VoiceGrant, VoiceRights, VoiceState};

use super::accounts::Caller;

/// Voice states across the nodes of a cluster.
#[async_trait]
pub trait VoiceDirectory: Send + Sync + 'static {
    /// Records a change this node's voice side reported (`after.channel_id` None: a leave);
    /// `before` is this node's previous state of the user, if any. False when another node holds
    /// the user's call now (they moved): this node's "left" is then not announced.
    async fn record(&self, before: Option<&VoiceState>, after: &VoiceState) -> Result<bool, BusError>;

    /// The voice states in a guild, held by any live node.
    async fn in_guild(&self, guild_id: Id) -> Result<Vec<VoiceState>, BusError>;

    /// Writes every call this node holds again (called every few seconds from the same task that
    /// records changes, so a rewrite never undoes a later leave).
    async fn refresh(&self, states: &[VoiceState]) -> Result<(), BusError>;
}

/// How often a cluster node rewrites the voice states of its calls.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// One change to announce: the user's voice state before it (if any) and after it.
#[derive(Debug)]
pub(crate) struct VoiceChange {
    before: Option<VoiceState>,
    after: VoiceState,
    /// Reported by this node's voice side (so recorded in the cluster's directory), rather than
    /// a call that ended with another node.
    local: bool,
}

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
        let (server_mute, server_deaf) =
            access.guild.as_ref().map_or((false, false), |g| (g.member.mute, g.member.deaf));
        let request = GrantRequest {
            user_id: caller.user.id,
            guild_id: access.channel.guild_id,
            channel_id,
            rights,
            server_mute,
            server_deaf,
        };
        self.voice.grant(request).await.map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// The voice side reports a join, a leave (`channel_id: None`) or a mute change. The state is
    /// current at once (READY includes it); the dispatch follows, in report order.
    pub fn voice_state(&self, state: VoiceState) {
        let before = {
            let mut states = self.voice_states.write();
            if state.channel_id.is_some() {
                states.insert(state.user_id, state.clone())
            } else {
                states.remove(&state.user_id)
            }
        };
        self.queue_voice_change(VoiceChange { before, after: state, local: true });
    }

    /// A call held by another node ended without its node saying so (the node died): the guild
    /// hears that the user left. The cluster's sweeper calls this with the state it removed.
    pub fn voice_call_lost(&self, state: VoiceState) {
        let after = VoiceState { channel_id: None, ..state.clone() };
        self.queue_voice_change(VoiceChange { before: Some(state), after, local: false });
    }

    fn queue_voice_change(&self, change: VoiceChange) {
        if self.voice_changes.send(change).is_err() {
            tracing::warn!("voice state change dropped: the announcing task is gone");
        }
    }

    /// Makes voice states cluster-wide (set once, at start-up).
    pub fn attach_voice_directory(&self, directory: Arc<dyn VoiceDirectory>) {
        let _ = self.voice_directory.set(directory);
    }

    /// Voice states in a guild's voice channels: every node's in a cluster (this node's when the
    /// cluster does not answer).
    pub(crate) async fn guild_voice_states(&self, guild_id: Id) -> Vec<VoiceState> {
        if let Some(directory) = self.voice_directory.get() {
            match directory.in_guild(guild_id).await {
                Ok(states) => return states,
                Err(e) => tracing::warn!(error = %e, "voice: the cluster does not answer; listing this node's calls"),
            }
        }
        self.voice_states.read().values().filter(|s| s.guild_id == Some(guild_id)).cloned().collect()
    }

    /// Voice states in the given channels of a guild (READY and GUILD_CREATE pass the channels the
    /// member may view).
    pub(crate) async fn voice_states_in_channels(&self, guild_id: Id, channels: &[Channel]) -> Vec<VoiceState> {
        let mut states = self.guild_voice_states(guild_id).await;
        states.retain(|s| s.channel_id.is_some_and(|c| channels.iter().any(|ch| ch.id == c)));
        states
    }

    /// Users in voice on this node whose account has been disabled (by `chorus admin user disable`,
    /// perhaps from another process) or deleted since they joined: the binary ends their calls.
    pub async fn disabled_voice_users(&self) -> Vec<Id> {
        let users: Vec<Id> = self.voice_states.read().keys().copied().collect();
        let mut disabled = Vec::new();
        for user_id in users {
            match self.store.user(user_id).await {
                Ok(Some(record)) if record.disabled => disabled.push(user_id),
                // A deleted account's call ends too.
                Ok(None) => disabled.push(user_id),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "voice: could not check an account"),
            }
        }
        disabled
    }

    /// A member removed from a guild leaves its voice channel in chat's view.
    pub(crate) fn leave_voice_in_guild(&self, user_id: Id, guild_id: Id) {
        let current = self.voice_states.read().get(&user_id).cloned();
        if let Some(s) = current.filter(|s| s.guild_id == Some(guild_id)) {
            self.voice_state(VoiceState { channel_id: None, ..s });
        }
    }

    /// The permission context of a guild channel as it is now; None if it is gone.
    async fn current_scope(&self, guild_id: Id, channel_id: Id) -> Result<Option<ChannelScope>> {
        let (guild, channel) = tokio::try_join!(self.store.guild(guild_id), self.store.channel(channel_id))?;
        let (Some(guild), Some(channel)) = (guild, channel) else { return Ok(None) };
        if channel.guild_id != Some(guild_id) {
            return Ok(None);
        }
        let roles = self.store.guild_roles(guild_id).await?;
        Ok(Some(ChannelScope { guild_id, owner_id: guild.owner_id, roles, channel }))
    }

    /// Announces one change to the sessions that may see it.
    /// A call that started without the member's standing server mute or deafen (a token granted
    /// before the moderator acted) gets it at once.
    async fn hold_moderation(&self, state: &VoiceState) {
        let (Some(guild_id), Some(_)) = (state.guild_id, state.channel_id) else { return };
        let Ok(Some(member)) = self.store.member(guild_id, state.user_id).await else { return };
        if (member.mute && !state.server_mute) || (member.deaf && !state.server_deaf) {
            let action = crate::voice::VoiceAction::Mute { mute: member.mute, deaf: member.deaf };
            self.order_voice(crate::voice::VoiceOrder { guild_id, user_id: state.user_id, action });
        }
    }

    async fn announce_voice_change(&self, VoiceChange { before, after, local }: VoiceChange) -> Result<()> {
        if local
            && after.guild_id.is_some()
            && let Some(directory) = self.voice_directory.get()
        {
            match directory.record(before.as_ref(), &after).await {
                Ok(true) => {}
                // The user's call is on another node now, which announced it: nothing left to say.
                Ok(false) => return Ok(()),
                Err(e) => tracing::warn!(error = %e, "voice: could not record a state in the cluster"),
            }
        }
        let old = before.as_ref().and_then(|b| Some((b.guild_id?, b.channel_id?)));
        let new = after.guild_id.zip(after.channel_id);
        let new_scope = match new {
            Some((g, c)) => self.current_scope(g, c).await?,
            None => None,
        };
        if let Some(scope) = &new_scope {
            self.publish(Dispatch::new("VOICE_STATE_UPDATE", &after, Audience::Channel(Arc::new(scope.clone()))));
        }
        let Some((old_guild, old_channel)) = old.filter(|o| Some(*o) != new) else { return Ok(()) };
        let Some(old_scope) = self.current_scope(old_guild, old_channel).await? else { return Ok(()) };
        // Those who saw the old channel hear that the user left it, unless they see where it went.
        let left = VoiceState { guild_id: Some(old_guild), channel_id: None, ..after };
        let audience = Audience::ChannelUnless { scope: Arc::new(old_scope), unless: new_scope.map(Arc::new) };
        self.publish(Dispatch::new("VOICE_STATE_UPDATE", &left, audience));
        Ok(())
    }
}

/// Announces voice state changes one at a time, in the order they were reported, and in a cluster
/// rewrites this node's calls every [`REFRESH`] between them. Holds only a weak reference so the loop
/// ends when the Chat is dropped.
pub(crate) fn spawn_voice_state_loop(chat: &Arc<Chat>, mut changes: mpsc::UnboundedReceiver<VoiceChange>) {
    let weak: Weak<Chat> = Arc::downgrade(chat);
    tokio::spawn(async move {
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let Some(change) = change else { break };
                    let Some(chat) = weak.upgrade() else { break };
                    chat.hold_moderation(&change.after).await;
                    if let Err(e) = chat.announce_voice_change(change).await {
                        tracing::warn!(error = %e, "voice state: could not announce a change");
                    }
                }
                _ = refresh.tick() => {
                    let Some(chat) = weak.upgrade() else { break };
                    if let Some(directory) = chat.voice_directory.get() {
                        let states: Vec<VoiceState> = chat.voice_states.read().values().cloned().collect();
                        if let Err(e) = directory.refresh(&states).await {
                            tracing::debug!(error = %e, "voice: could not rewrite this node's calls in the cluster");
                        }
                    }
                }
            }
        }
    });
}
