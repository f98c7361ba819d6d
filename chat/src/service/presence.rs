//! Presence: online/idle/dnd/offline, derived from live gateway connections, broadcast to every
//! guild the user belongs to.
//!
//! In a cluster each node knows only its own connections: a [`PresenceDirectory`] (the binary's,
//! on Redis) combines every node's view of a user, and only a change of the combined status is
//! announced. It also answers READY's "who is online in this guild" for the whole cluster.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use serde::Serialize;

use crate::Chat;
use crate::bus::BusError;
use crate::events::{Audience, Dispatch};
use crate::gateway::protocol::Status;
use crate::id::Id;

/// Presence across the nodes of a cluster.
#[async_trait]
pub trait PresenceDirectory: Send + Sync + 'static {
    /// Records this node's view of the user (Offline: no session of theirs here) and returns the
    /// user's status across the cluster before and after.
    async fn set_local(&self, user_id: Id, status: &Status) -> Result<(Status, Status), BusError>;

    /// Records the user's cluster-wide status in each of these guilds (what READY lists).
    async fn set_in_guilds(&self, user_id: Id, guilds: &[Id], status: &Status) -> Result<(), BusError>;

    /// Members of the guild online anywhere in the cluster, with their status.
    async fn online_in_guild(&self, guild_id: Id) -> Result<Vec<(Id, Status)>, BusError>;

    /// The user's status across the cluster.
    async fn status(&self, user_id: Id) -> Result<Status, BusError>;
}

#[derive(Debug, Serialize)]
struct PresenceUpdate<'a> {
    user_id: Id,
    guild_id: Id,
    status: &'a str,
}

/// Turns the hub's presence changes into PRESENCE_UPDATE dispatches. Holds only a weak reference so
/// the loop ends when the Chat is dropped.
pub fn spawn_presence_loop(chat: &Arc<Chat>) {
    let Some(mut changes) = chat.hub.presence_changes() else { return };
    let weak: Weak<Chat> = Arc::downgrade(chat);
    tokio::spawn(async move {
        while let Some((user_id, _)) = changes.recv().await {
            let Some(chat) = weak.upgrade() else { break };
            // Re-read the effective status: several changes may have raced.
            let mut status = chat.hub.status_of(user_id);
            if let Some(directory) = chat.presence.get() {
                match directory.set_local(user_id, &status).await {
                    Ok((before, after)) if before == after => continue,
                    Ok((_, after)) => status = after,
                    Err(e) => {
                        tracing::warn!(error = %e, "presence: the cluster does not answer; announcing this node's view");
                    }
                }
            }
            chat.announce_presence(user_id, status).await;
        }
    });
}

impl Chat {
    /// A user joined or left a guild: the cluster's online list of that guild follows at once
    /// (on a single node the hub's view does this through the member's effect).
    pub(crate) async fn presence_follows_membership(&self, user_id: Id, guild_id: Id, member: bool) {
        let Some(directory) = self.presence.get() else {
            if member {
                self.tell_guild_status(user_id, guild_id, self.hub.status_of(user_id));
            }
            return;
        };
        let status = if member {
            match directory.status(user_id).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "presence: the cluster does not answer; the guild's online list waits");
                    return;
                }
            }
        } else {
            Status::Offline
        };
        if let Err(e) = directory.set_in_guilds(user_id, &[guild_id], &status).await {
            tracing::warn!(error = %e, "presence: could not record a member's status in the cluster");
        }
        if member {
            self.tell_guild_status(user_id, guild_id, status);
        }
    }

    /// A newcomer who is online: the guild's members see it at once (their status was announced
    /// before to the guilds they were in, not to this one).
    fn tell_guild_status(&self, user_id: Id, guild_id: Id, status: Status) {
        if status != Status::Offline {
            let ev = PresenceUpdate { user_id, guild_id, status: status.as_str() };
            self.publish(Dispatch::new("PRESENCE_UPDATE", &ev, Audience::Guild(guild_id)));
        }
    }

    /// Makes presence cluster-wide (set once, at start-up).
    pub fn attach_presence(&self, directory: Arc<dyn PresenceDirectory>) {
        let _ = self.presence.set(directory);
    }

    /// Tells the user's guilds their status (and records it for READY, in a cluster). The cluster's
    /// sweeper calls this too, for the users of a node that died.
    pub async fn announce_presence(&self, user_id: Id, status: Status) {
        let guilds = match self.store.guilds_of(user_id).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "presence: could not list guilds");
                return;
            }
        };
        if let Some(directory) = self.presence.get()
            && let Err(e) = directory.set_in_guilds(user_id, &guilds, &status).await
        {
            tracing::warn!(error = %e, "presence: could not record the status in the cluster");
        }
        for guild_id in guilds {
            let ev = PresenceUpdate { user_id, guild_id, status: status.as_str() };
            self.publish(Dispatch::new("PRESENCE_UPDATE", &ev, Audience::Guild(guild_id)));
        }
    }
}
