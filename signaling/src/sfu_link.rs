//! The seam between signaling and the media plane.
//!
//! Signaling only talks to an SFU through [`SfuLink`], so a remote SFU node (over the
//! network, in cluster mode) can stand behind it later. [`InProcessSfu`] is the default.

use sfu::{Command, EventSink, ParticipantId, RoomId, Sfu};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the SFU is not available: {0}")]
    Unavailable(String),
}

/// What signaling needs from an SFU. Calls must not block: they enqueue.
pub trait SfuLink: Send + Sync {
    /// Put a participant into a room; events arrive on `sink`, `Joined` first.
    fn join(
        &self,
        room: RoomId,
        user_id: u64,
        rights: sfu::Rights,
        sink: EventSink,
    ) -> Result<ParticipantId, LinkError>;

    /// A request for a participant already in `room`.
    fn command(&self, room: RoomId, participant: ParticipantId, cmd: Command) -> Result<(), LinkError>;

    /// Rooms, participants and link quality, for the operator dashboard. Blocks up to `timeout`.
    fn rooms(&self, timeout: std::time::Duration) -> Vec<sfu::RoomSnapshot> {
        let _ = timeout;
        Vec::new()
    }

    /// The SFU's UDP addresses, when it runs in this process (diagnostics, tests).
    fn udp_addrs(&self) -> Vec<std::net::SocketAddr> {
        Vec::new()
    }

    /// The SFU's ICE-TCP listener, when it runs in this process with ICE-TCP on.
    fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        None
    }
}

/// The SFU running in this process.
pub struct InProcessSfu(pub Sfu);

impl SfuLink for InProcessSfu {
    fn join(
        &self,
        room: RoomId,
        user_id: u64,
        rights: sfu::Rights,
        sink: EventSink,
    ) -> Result<ParticipantId, LinkError> {
        self.0.join(room, user_id, rights, sink).map_err(|e| LinkError::Unavailable(e.to_string()))
    }

    fn command(&self, room: RoomId, participant: ParticipantId, cmd: Command) -> Result<(), LinkError> {
        self.0.command(room, participant, cmd).map_err(|e| LinkError::Unavailable(e.to_string()))
    }

    fn udp_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.0.local_addrs()
    }

    fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.0.tcp_addr()
    }

    fn rooms(&self, timeout: std::time::Duration) -> Vec<sfu::RoomSnapshot> {
        self.0.snapshot(timeout)
    }
}
