//! # chat — the community plane of Chorus
//!
//! Owns accounts, sessions, guilds, channels, roles and permissions, invites, members, messages,
//! reactions, pins, typing, presence, read state, search and direct messages; their REST API under
//! `/api/v1`, the gateway WebSocket at `/gateway`, and their storage (SQLite and MongoDB behind one
//! trait).
//!
//! It must not know about media: voice is reached only through the [`voice::VoiceGrants`] trait (who
//! may join, answered with a signed token) and reported back through [`Chat::voice_state`]. The binary
//! wires both to the signaling side.
//!
//! Layout: `service/` holds the operations (permission checks, validation, store calls, events);
//! `http/` maps them to routes; `gateway/` holds the WebSocket protocol, the per-session state and the
//! hub that fans events out; `store/` the two backends.

pub mod attachments;
pub mod bus;
pub mod credentials;
pub mod error;
pub mod events;
pub mod gateway;
pub mod http;
pub mod id;
pub mod mentions;
pub mod metrics;
pub mod model;
pub mod operator;
pub mod permissions;
pub mod previews;
pub mod ratelimit;
pub mod service;
pub mod store;
pub mod validate;
pub mod view;
pub mod voice;

/// Parsers of untrusted input that are otherwise private, for the fuzz targets in `fuzz/` only.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http::handlers::{HistoryQuery, Page, SearchQuery};
    pub use crate::store::mongo::text_search_terms;
    pub use crate::store::sqlite::fts_query;
}

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

pub use error::Error;
pub use id::{Id, Snowflakes};

use events::Event;
use gateway::hub::{Hub, HubConfig};
use store::Store;
use voice::{VoiceGrants, VoiceState};

/// Settings of the community plane.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Snowflake node id (0–1023), distinct per node in a cluster.
    pub node_id: u16,
    pub heartbeat_interval: Duration,
    pub hub: HubConfig,
    pub limits: ratelimit::RateLimitConfig,
    /// Largest accepted REST body.
    pub max_body_bytes: usize,
    /// Largest accepted gateway frame from a client.
    pub max_frame_bytes: usize,
    /// A gateway write that takes longer than this means the peer stopped reading: drop it.
    pub gateway_write_timeout: Duration,
    /// Who may register (`--registration`).
    pub registration: operator::Registration,
    /// Attachment limits and quota.
    pub uploads: attachments::UploadLimits,
    /// Signs login tickets (2FA) and preview-image URLs.
    pub server_key: credentials::ServerKey,
    /// Link previews (`--link-previews`).
    pub previews: service::previews::PreviewConfig,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            node_id: 0,
            heartbeat_interval: Duration::from_millis(41_250),
            hub: HubConfig::default(),
            limits: ratelimit::RateLimitConfig::default(),
            max_body_bytes: 64 * 1024,
            max_frame_bytes: 16 * 1024,
            gateway_write_timeout: Duration::from_secs(10),
            registration: operator::Registration::Open,
            uploads: attachments::UploadLimits::default(),
            server_key: credentials::ServerKey::default(),
            previews: service::previews::PreviewConfig::default(),
        }
    }
}

/// The community plane: shared by every request handler and gateway connection.
pub struct Chat {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ids: Snowflakes,
    pub(crate) hub: Hub,
    pub(crate) config: ChatConfig,
    pub(crate) voice: Arc<dyn VoiceGrants>,
    /// Who sits in which voice channel, by user (fed by the voice side).
    pub(crate) voice_states: RwLock<HashMap<Id, VoiceState>>,
    /// Voice state changes waiting to be announced, in report order.
    pub(crate) voice_changes: tokio::sync::mpsc::UnboundedSender<service::voice::VoiceChange>,
    pub(crate) limits: ratelimit::RateLimits,
    pub(crate) metrics: metrics::ChatMetrics,
    /// The cluster's event stream; unset on a single node.
    pub(crate) bus: std::sync::OnceLock<Arc<dyn bus::EventBus>>,
    /// Presence across the cluster's nodes; unset on a single node.
    pub(crate) presence: std::sync::OnceLock<Arc<dyn service::presence::PresenceDirectory>>,
    /// Voice states across the cluster's nodes; unset on a single node.
    pub(crate) voice_directory: std::sync::OnceLock<Arc<dyn service::voice::VoiceDirectory>>,
    /// Where attachments go; unset: uploads are refused (503).
    pub(crate) uploads: std::sync::OnceLock<service::attachments::Uploads>,
    /// Messages waiting for link previews, and the previews fetched lately.
    pub(crate) preview_jobs: tokio::sync::mpsc::Sender<service::previews::PreviewJob>,
    pub(crate) preview_cache: service::previews::PreviewCache,
    /// Preview images being proxied at once.
    pub(crate) preview_proxy_slots: tokio::sync::Semaphore,
    /// Moderators' orders for the voice side, as they come off the event stream.
    pub(crate) voice_orders: tokio::sync::broadcast::Sender<voice::VoiceOrder>,
}

impl Chat {
    pub fn new(
        store: Arc<dyn Store>,
        voice: Arc<dyn VoiceGrants>,
        config: ChatConfig,
        registry: &prometheus::Registry,
    ) -> Arc<Self> {
        let store = store::Metered::wrap(store, registry);
        let hub = Hub::new(config.hub.clone());
        let metrics = metrics::ChatMetrics::new(registry, &hub);
        let (voice_changes, voice_changes_rx) = tokio::sync::mpsc::unbounded_channel();
        let (preview_jobs, preview_jobs_rx) = tokio::sync::mpsc::channel(256);
        let limits = ratelimit::RateLimits::new(&config.limits);
        let _ = registry.register(Box::new(limits.shared_fallbacks.clone()));
        let chat = Arc::new(Chat {
            store,
            ids: Snowflakes::new(config.node_id),
            hub,
            limits,
            config,
            voice,
            voice_states: RwLock::new(HashMap::new()),
            voice_changes,
            metrics,
            bus: std::sync::OnceLock::new(),
            presence: std::sync::OnceLock::new(),
            voice_directory: std::sync::OnceLock::new(),
            uploads: std::sync::OnceLock::new(),
            preview_jobs,
            preview_cache: Default::default(),
            preview_proxy_slots: tokio::sync::Semaphore::new(8),
            // Orders are rare (a moderator's click); a voice side lagging 256 behind is broken anyway.
            voice_orders: tokio::sync::broadcast::channel(256).0,
        });
        service::presence::spawn_presence_loop(&chat);
        service::voice::spawn_voice_state_loop(&chat, voice_changes_rx);
        service::previews::spawn_preview_loop(&chat, preview_jobs_rx);
        gateway::spawn_sweeper(&chat);
        chat
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// The REST API and the gateway, ready to merge into the binary's router.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        http::router(self.clone())
    }

    /// Joins a cluster: from now on every event goes through `bus` (set once, at start-up, before
    /// serving; the hub must have been configured with `stream_positions`).
    pub fn attach_bus(&self, bus: Arc<dyn bus::EventBus>) {
        if self.bus.set(bus).is_err() {
            tracing::warn!("an event bus was already attached; keeping the first");
        }
    }

    /// Makes the rate limits cluster-wide (set once, at start-up).
    pub fn share_rate_limits(&self, limiter: Arc<dyn ratelimit::SharedLimiter>) {
        self.limits.share(limiter);
    }

    pub(crate) fn bus(&self) -> Option<&Arc<dyn bus::EventBus>> {
        self.bus.get()
    }

    /// Delivers an event to the gateway sessions (of every node, in a cluster).
    pub(crate) fn publish(&self, event: impl Into<Event>) {
        let event = event.into();
        self.metrics.events.with_label_values(&[event.name()]).inc();
        match self.bus.get() {
            Some(bus) => bus.publish(&event),
            None => {
                self.hub.publish(&event, None);
                self.pass_voice_order(&event);
            }
        }
    }

    /// The cluster's stream reader hands over each entry here, in stream order.
    pub fn deliver_from_stream(&self, position: u64, event: &Event) {
        self.hub.publish(event, Some(position));
        self.pass_voice_order(event);
    }

    fn pass_voice_order(&self, event: &Event) {
        if let Event::Dispatch(events::Dispatch { effect: Some(events::Effect::VoiceOrder(order)), .. }) = event {
            // Nobody listening (a node without voice) is fine.
            let _ = self.voice_orders.send(order.clone());
        }
    }

    /// Moderators' orders for the calls in voice (every node's, in stream order). The binary hands
    /// them to its signaling, which acts on the calls it holds.
    pub fn voice_orders(&self) -> tokio::sync::broadcast::Receiver<voice::VoiceOrder> {
        self.voice_orders.subscribe()
    }

    /// Where this node's stream reader starts (cluster start-up).
    pub fn stream_starts_at(&self, position: u64) {
        self.hub.start_stream_at(position);
    }

    /// The stream lost entries this node's sessions needed (see [`Hub::reset_stream`]).
    pub fn stream_reset(&self, position: u64) {
        self.hub.reset_stream(position);
    }

    /// Gateway connections open on this node.
    pub fn gateway_connections(&self) -> i64 {
        self.metrics.gateway_connections.get()
    }

    /// First step of a graceful shutdown: every gateway client is told to reconnect (op 7).
    pub fn hub_reconnect_all(&self) {
        self.hub.reconnect_all();
    }

    /// Last step of a graceful shutdown: makes every acknowledged write durable.
    pub async fn shutdown(&self) -> Result<(), store::StoreError> {
        self.store.flush().await
    }
}
