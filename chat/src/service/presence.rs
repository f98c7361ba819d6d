//! Presence: online/idle/dnd/offline, derived from live gateway connections, broadcast to every
//! guild the user belongs to.

use std::sync::{Arc, Weak};

use serde::Serialize;

use crate::Chat;
use crate::events::{Audience, Dispatch};
use crate::id::Id;

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
            let status = chat.hub.status_of(user_id);
            let guilds = match chat.store.guilds_of(user_id).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(error = %e, "presence: could not list guilds");
                    continue;
                }
            };
            for guild_id in guilds {
                let ev = PresenceUpdate { user_id, guild_id, status: status.as_str() };
                chat.publish(Dispatch::new("PRESENCE_UPDATE", &ev, Audience::Guild(guild_id)));
            }
        }
    });
}
