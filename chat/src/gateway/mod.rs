//! The gateway: a WebSocket at `/gateway` that streams dispatch events to clients.
//!
//! `protocol` is the wire format (pure), `replay` the resume buffer (pure), `hub` the sessions and
//! fan-out, `socket` the thin I/O loop of one connection.

pub mod hub;
pub mod protocol;
pub mod replay;
pub mod socket;

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::Chat;

/// Drops expired detached sessions and idle rate-limit keys every 30 s.
pub(crate) fn spawn_sweeper(chat: &Arc<Chat>) {
    let weak: Weak<Chat> = Arc::downgrade(chat);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            let Some(chat) = weak.upgrade() else { break };
            chat.hub.sweep();
            chat.limits.shrink();
        }
    });
}
