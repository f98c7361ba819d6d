//! The seam to a cluster's event stream. On a single node there is no bus and events go straight
//! to the hub. In a cluster the binary attaches one: every event goes onto the shared stream after
//! the store write it describes, and comes back in stream order, with its position, through
//! [`crate::Chat::deliver_from_stream`] on every node — this one included, so that all nodes
//! deliver one order. Chat does not know what carries the stream.

use async_trait::async_trait;

use crate::events::Event;
use crate::id::Id;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Some entries after the asked position are no longer kept (trimmed, or the stream lost its data).
    #[error("the events after this position are no longer kept")]
    Gone,
    #[error("the event stream is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Hands an event to the stream. Never blocks; events of one node keep their order.
    fn publish(&self, event: &Event);

    /// Every entry after `position`, in order, or [`BusError::Gone`] when one of them is not kept.
    async fn since(&self, position: u64) -> Result<Vec<(u64, Event)>, BusError>;

    /// Remembers a gateway session, so that a RESUME on any node finds whose it is.
    async fn remember_session(&self, session_id: &str, user_id: Id) -> Result<(), BusError>;

    /// The user a remembered session belongs to; None if unknown or expired.
    async fn session_user(&self, session_id: &str) -> Result<Option<Id>, BusError>;
}
