//! Published tracks and the subscriptions that forward them.

use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};

use crate::forwarder::{LayerForwarder, LayerStats, Preference, Timestamps};
use crate::{ParticipantId, TrackId};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Audio,
    Video,
}

impl TrackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        }
    }

    pub(crate) fn media_kind(self) -> MediaKind {
        match self {
            TrackKind::Audio => MediaKind::Audio,
            TrackKind::Video => MediaKind::Video,
        }
    }
}

/// What everyone in the room learns about a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub track_id: TrackId,
    pub participant_id: ParticipantId,
    pub kind: TrackKind,
    /// Three simulcast layers (camera) or one (screen share, audio).
    pub simulcast: bool,
}

/// One subscriber's copy of a track.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// Slot of the subscriber in the room.
    pub slot: usize,
    /// Outgoing media line in the subscriber's subscribe connection; `None` until offered.
    pub mid: Option<Mid>,
    /// The subscriber answered the offer carrying `mid`.
    pub negotiated: bool,
    /// Outgoing payload type for the codec the publisher sends, found once per codec.
    pub pt: Option<(Codec, Pt)>,
    /// The codec the subscriber's answer left out: nothing of it is forwarded (the subscriber was
    /// told once, with `TrackUnsupported`).
    pub unsupported: Option<Codec>,
    pub pref: Preference,
    pub layers: LayerForwarder,
    /// Its video timestamps, continuous across layer switches.
    pub timestamps: Timestamps,
    /// Cumulative NACK count last reported by str0m's egress stats.
    pub nacks_seen: u64,
}

impl Subscription {
    pub fn new(slot: usize) -> Self {
        Subscription {
            slot,
            mid: None,
            negotiated: false,
            pt: None,
            unsupported: None,
            pref: Preference::default(),
            layers: LayerForwarder::default(),
            timestamps: Timestamps::default(),
            nacks_seen: 0,
        }
    }
}

/// A track a participant publishes, with everyone who receives it.
#[derive(Debug)]
pub(crate) struct Track {
    pub info: TrackInfo,
    /// Slot of the publisher.
    pub owner: usize,
    /// Media line in the publisher's publish connection.
    pub mid: Mid,
    /// What subscribe offers list for this track: the codec its media arrives in. Until then, every
    /// codec negotiated on the publisher's line — offered for audio only (a video line waits for the
    /// first frame, since a browser negotiates VP8 and H.264 and sends one).
    pub codecs: Vec<Codec>,
    /// The codec of the media last received.
    pub sending: Option<Codec>,
    pub layers: [LayerStats; 3],
    /// The layers that were on ([`crate::forwarder::active_layers`]) at the last layer choice: one turning off
    /// between choices makes its subscribers choose again at once.
    pub layers_on: [bool; 3],
    /// Last keyframe request per layer (throttled to one per second).
    pub last_keyframe_request: [Option<Instant>; 3],
    pub subs: Vec<Subscription>,
}
