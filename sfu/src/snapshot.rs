//! A point-in-time view of the rooms a worker holds, for the operator dashboard: who is in each room,
//! what they publish, which layer each subscription gets, and each participant's link quality.
//! Taken on request (about once a second), never on the forwarding path.

use crate::{Layer, ParticipantId, RoomId, TrackId};

#[derive(Debug, Clone)]
pub struct RoomSnapshot {
    pub room: RoomId,
    /// Index of the worker thread the room is pinned to.
    pub worker: usize,
    pub participants: Vec<ParticipantSnapshot>,
}

#[derive(Debug, Clone)]
pub struct ParticipantSnapshot {
    pub id: ParticipantId,
    pub user_id: u64,
    pub published_tracks: usize,
    pub quality: Quality,
    pub subscriptions: Vec<SubscriptionSnapshot>,
}

/// Link quality from str0m's once-a-second statistics; `None` until reported.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quality {
    /// Round trip between the SFU and the client.
    pub rtt_ms: Option<f32>,
    /// Fraction of the client's packets that did not reach the SFU (publish side).
    pub loss_in: Option<f32>,
    /// Fraction of the SFU's packets the client reports lost (subscribe side).
    pub loss_out: Option<f32>,
    /// Interarrival jitter of the client's audio as the SFU measures it.
    pub jitter_ms: Option<f32>,
    /// The subscribe connection's bandwidth estimate.
    pub bwe_bps: Option<u64>,
    /// The rate the SFU asked that estimator to probe for: what the subscriber's video would use at
    /// the sizes it asked for.
    pub bwe_target_bps: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct SubscriptionSnapshot {
    pub track: TrackId,
    /// The layer being forwarded now (`None`: paused or waiting for a keyframe).
    pub layer: Option<Layer>,
}
