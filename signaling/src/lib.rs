//! # signaling — the Chorus voice control plane
//!
//! Owns the `/voice` WebSocket protocol ([`protocol`], [`session`], [`socket`]), voice
//! tokens ([`token`]), SDP negotiation hand-off to an SFU through [`sfu_link::SfuLink`],
//! voice-state notifications to chat ([`VoiceEvents`]) and the `chorus_voice_*` metrics.
//!
//! It must not know chat's storage or permissions: who may join, and with which rights,
//! comes only from a signed voice token. It must not touch media: the SFU does.
//!
//! ## Negotiation
//! Two peer connections per participant. The client offers on its **publish** connection
//! (`offer` client → server, `answer` server → client); the server offers on the
//! **subscribe** connection (`offer` server → client, `answer` client → server) whenever
//! tracks to receive come or go. One offerer per connection: no glare. If a server offer
//! is pending, further changes wait for its answer and go out in one new offer.
//!
//! ## Reconnect
//! `joined` carries a `session_id`. When the socket drops, the participant stays in the
//! room for 30 s; a new socket that sends `{"type":"resume","session_id"}` gets
//! `resumed` and every event queued meanwhile. A client whose network path changed
//! restarts ICE: a new publish offer with new credentials, and `ice_restart` for the
//! subscribe connection (the SFU re-offers); the SFU routes the new path by its STUN
//! ufrag. After 30 s the participant leaves; the client joins again.
//!
//! The full message and error-code reference is in this crate's README.md.

pub mod ice;
pub mod metrics;
pub mod protocol;
pub mod session;
pub mod sfu_link;
mod socket;
pub mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;

pub use protocol::IceServer;
pub use sfu_link::{InProcessSfu, SfuLink};
pub use token::{Rights, TokenError, VoiceClaims, VoiceGrant, VoiceTokens};

use metrics::VoiceMetrics;

/// A user's voice state changed: joined (`channel_id` set), left (`None`), or muted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceStateChange {
    pub user_id: u64,
    pub guild_id: Option<u64>,
    /// `None` = left voice.
    pub channel_id: Option<u64>,
    pub self_mute: bool,
    pub self_deaf: bool,
    pub server_mute: bool,
    pub server_deaf: bool,
}

/// Where voice states go (chat's gateway, through the binary). Must not block.
pub trait VoiceEvents: Send + Sync {
    fn voice_state(&self, s: VoiceStateChange);
}

/// A sink that drops voice states (tests, SFU-only nodes).
pub struct NoVoiceEvents;

impl VoiceEvents for NoVoiceEvents {
    fn voice_state(&self, _s: VoiceStateChange) {}
}

/// Signaling settings.
#[derive(Debug, Clone, Default)]
pub struct SignalingConfig {
    /// The `/voice` URL clients are told to open (e.g. `ws://host:8080/voice`).
    pub public_endpoint: String,
    /// Sent to clients in `joined`; empty is fine on a LAN (the SFU is ICE-lite with
    /// a public host candidate).
    pub ice_servers: Vec<IceServer>,
    /// TURN servers whose time-limited credentials each `joined` carries (after `ice_servers`).
    pub turn: Option<ice::TurnRest>,
    /// Settings of the in-process SFU (used by [`Signaling::in_process`]).
    pub sfu: sfu::SfuConfig,
    /// How long a dropped session waits for `resume` (default 30 s).
    pub resume_window: Option<Duration>,
    /// New `/voice` connections allowed per client IP; `None` is unlimited (tests, benchmarks).
    pub connect_limit: Option<ConnectLimit>,
    /// This node's id in a cluster: tokens for rooms placed on another node are refused.
    pub node_id: Option<u16>,
}

/// A per-IP rate of new `/voice` WebSocket connections; above it the upgrade is refused with 429.
#[derive(Debug, Clone, Copy)]
pub struct ConnectLimit {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SignalingError {
    #[error(transparent)]
    Sfu(#[from] sfu::SfuError),
    #[error("metrics registration failed: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Shared state of the `/voice` endpoint.
pub struct Signaling {
    pub(crate) config: SignalingConfig,
    pub(crate) link: Arc<dyn SfuLink>,
    pub(crate) tokens: VoiceTokens,
    pub(crate) events: Arc<dyn VoiceEvents>,
    pub(crate) metrics: VoiceMetrics,
    pub(crate) parked: Mutex<HashMap<String, socket::Parked>>,
    pub(crate) connects: Option<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
    /// Every live `/voice` socket listens here for the operator's kicks ([`Signaling::kick_user`])
    /// and the moderators' orders ([`Signaling::moderate`]).
    pub(crate) orders: tokio::sync::broadcast::Sender<Order>,
}

/// What a moderator does to a user's call in a guild (chat checked the permissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moderation {
    /// Server mute / deafen as they stand now.
    Mute { muted: bool, deafened: bool },
    /// The call ends with `moved`; the client joins `channel_id` by itself.
    Move { channel_id: u64 },
    /// The call ends with `error` `disconnected`.
    Disconnect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeratorOrder {
    pub user_id: u64,
    pub guild_id: u64,
    pub action: Moderation,
}

/// What every live socket hears and checks against its own user.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Order {
    Kick(Kick),
    Moderate(ModeratorOrder),
    /// Every call in one room ends with this code and message.
    CloseRoom {
        channel_id: u64,
        code: &'static str,
        message: &'static str,
    },
}

impl Order {
    /// Whether the order is about this session's call.
    pub(crate) fn concerns(&self, session: &session::Session) -> bool {
        match self {
            Order::Kick(k) => session.user_id() == Some(k.user_id),
            Order::Moderate(m) => session.user_id() == Some(m.user_id),
            Order::CloseRoom { channel_id, .. } => session.participant().is_some_and(|(room, _)| room == *channel_id),
        }
    }
}

/// The operator ends a user's voice on this node, with the error the client is told.
#[derive(Debug, Clone, Copy)]
pub struct Kick {
    pub user_id: u64,
    pub code: &'static str,
    pub message: &'static str,
}

impl Signaling {
    /// Signaling in front of any SFU.
    pub fn new(
        config: SignalingConfig,
        link: Arc<dyn SfuLink>,
        tokens: VoiceTokens,
        events: Arc<dyn VoiceEvents>,
        registry: &prometheus::Registry,
    ) -> Result<Self, SignalingError> {
        let connects = config.connect_limit.map(|l| {
            let per_second = std::num::NonZeroU32::new(l.per_second).unwrap_or(std::num::NonZeroU32::MIN);
            let burst = std::num::NonZeroU32::new(l.burst).unwrap_or(per_second);
            governor::RateLimiter::keyed(governor::Quota::per_second(per_second).allow_burst(burst))
        });
        Ok(Signaling {
            connects,
            config,
            link,
            tokens,
            events,
            metrics: VoiceMetrics::new(registry)?,
            parked: Mutex::new(HashMap::new()),
            // Orders are rare (an operator's or moderator's action); a socket that lags behind 256
            // of them has missed one (a kick is caught by the next account check).
            orders: tokio::sync::broadcast::channel(256).0,
        })
    }

    /// Ends every voice session of this user on this node: a live socket gets the error, its
    /// participant leaves the room and the voice state says "left"; a session parked for resume
    /// ends at once. Called when an account is disabled (the binary checks its voice users).
    pub fn kick_user(&self, kick: Kick) {
        // A socket with no receiver yet (none open) is fine: send fails only when nobody listens.
        let _ = self.orders.send(Order::Kick(kick));
        self.end_parked_where(|parked| parked.user_id() == Some(kick.user_id));
    }

    /// Ends the sessions parked for resume that `which` picks.
    fn end_parked_where(&self, which: impl Fn(&socket::Parked) -> bool) {
        let parked: Vec<socket::Parked> = match self.parked.lock() {
            Ok(mut p) => {
                let ids: Vec<String> = p.iter().filter(|(_, parked)| which(parked)).map(|(id, _)| id.clone()).collect();
                ids.iter().filter_map(|id| p.remove(id)).collect()
            }
            Err(_) => Vec::new(),
        };
        for p in parked {
            socket::end_parked(self, p);
        }
    }

    /// Ends every call in `channel_id`'s room on this node with `code` (live sockets are told and
    /// closed; sessions parked for resume end at once). The cluster calls this when the room was
    /// placed on another node while this one was taken for dead: its callers rejoin the new owner
    /// instead of staying in a split call.
    pub fn close_room(&self, channel_id: u64, code: &'static str, message: &'static str) {
        let _ = self.orders.send(Order::CloseRoom { channel_id, code, message });
        self.end_parked_where(|parked| parked.channel_id() == Some(channel_id));
    }

    /// Carries out a moderator's order on this user's calls on this node: a live socket's session
    /// acts on it, and so does a session parked for resume (muted in place, or ended by a move or
    /// a disconnect) — each only for its own guild's call.
    pub fn moderate(&self, order: ModeratorOrder) {
        let _ = self.orders.send(Order::Moderate(order));
        if let Ok(mut p) = self.parked.lock() {
            let ids: Vec<String> = p
                .iter()
                .filter(|(_, parked)| parked.user_id() == Some(order.user_id))
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                let ended = p.get_mut(&id).is_some_and(|parked| socket::moderate_parked(self, parked, order));
                if ended {
                    p.remove(&id);
                }
            }
        }
    }

    /// Signaling with an SFU in this process (started from `config.sfu`); both register
    /// their metrics in `registry`.
    pub fn in_process(
        config: SignalingConfig,
        secret: &[u8],
        events: Arc<dyn VoiceEvents>,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Self>, SignalingError> {
        let sfu = sfu::Sfu::start(config.sfu.clone(), registry)?;
        let link = Arc::new(InProcessSfu(sfu));
        let tokens = match config.node_id {
            Some(node) => VoiceTokens::for_node(secret, node),
            None => VoiceTokens::new(secret),
        };
        Ok(Arc::new(Signaling::new(config, link, tokens, events, registry)?))
    }

    pub fn tokens(&self) -> &VoiceTokens {
        &self.tokens
    }

    /// The SFU behind this signaling.
    pub fn sfu(&self) -> &dyn SfuLink {
        &*self.link
    }

    pub fn config(&self) -> &SignalingConfig {
        &self.config
    }
}

/// `GET /voice` (WebSocket). Mount it at the root of the HTTP server.
pub fn router(state: Arc<Signaling>) -> Router {
    Router::new()
        .route("/voice", get(socket::upgrade))
        .method_not_allowed_fallback(|| async {
            socket::http_error(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed")
        })
        .with_state(state)
}
