//! # sfu — the Chorus media plane
//!
//! A selective forwarding unit on [str0m] (Sans-IO WebRTC). It owns: one `Rtc` per peer
//! connection (ICE-lite), UDP worker threads, rooms pinned to workers, forwarding of Opus
//! and VP8 (with simulcast layer selection per subscriber), keyframe-request throttling,
//! speaking detection from RFC 6464 audio levels, mute/deafen, publish rights, peer
//! timeouts, and the `chorus_sfu_*` metrics.
//!
//! It must not know about chat: no users beyond a numeric id, no guilds, no tokens, no
//! HTTP. Signaling drives it through [`Sfu::join`] and [`Sfu::command`] and hears back
//! through the [`EventSink`] given at join.
//!
//! ## Shape
//! - [`room`]: the Sans-IO core (`Room`): participants, tracks, subscriptions, forwarding.
//! - [`forwarder`]: which simulcast layer one subscriber receives.
//! - [`speaking`]: speaking detection with hysteresis.
//! - `link`: a participant's link quality from str0m's statistics.
//! - `offer_sdp`: subscribe offers list only each track's negotiated codecs (the one sent, once media has
//!   arrived) and keep transport-cc off audio lines (the
//!   estimate is for video); a subscriber's rejected line without a direction is read as inactive.
//! - [`router`]: datagram → peer connection by hash map (remote address, STUN ufrag).
//! - [`worker`]: the thin UDP loop around rooms, one thread and socket per worker.
//! - [`tcp`]: ICE over TCP (RFC 6544/4571) for clients without UDP: framing, the listener, and the
//!   threads that feed each connection's frames to the worker that owns its peer.
//! - [`metrics`], [`config`].
//!
//! Each participant has two peer connections: **publish** (the client offers, the SFU
//! answers; client → SFU media) and **subscribe** (the SFU offers, the client answers;
//! SFU → client media). Each connection has exactly one offerer, so offers never collide.

pub mod config;
pub mod forwarder;
mod link;
pub mod metrics;
mod offer_sdp;
mod participant;
pub mod room;
pub mod router;
pub mod snapshot;
pub mod speaking;
pub mod tcp;
pub mod track;
mod udp_batch;
mod worker;

/// Parsers of untrusted input that are otherwise private, for the fuzz targets in `fuzz/` only.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::offer_sdp::{rejected_lines_inactive, without_audio_transport_cc};
    pub use crate::room::check_publish_rights;
}

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use config::{RelaySources, SfuConfig};
pub use forwarder::{Layer, Preference};
pub use metrics::SfuMetrics;
pub use snapshot::{ParticipantSnapshot, Quality, RoomSnapshot, SubscriptionSnapshot};
pub use track::{TrackInfo, TrackKind};

use worker::{Worker, WorkerMsg};

/// A room: one voice channel. Signaling picks the id (the channel id).
pub type RoomId = u64;

/// A participant, unique in this SFU process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

/// A published track, unique in this SFU process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

/// What a participant may publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights {
    /// Publish audio.
    pub speak: bool,
    /// Publish video (camera and screen).
    pub video: bool,
}

/// A participant as the others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub participant_id: ParticipantId,
    pub user_id: u64,
    pub tracks: Vec<TrackInfo>,
    pub muted: bool,
    pub deafened: bool,
    pub server_muted: bool,
    pub server_deafened: bool,
}

/// Why a participant left the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The participant asked to leave.
    Left,
    /// No datagram from the participant for the peer timeout (its network went away).
    Timeout,
    /// A peer connection ended: the client closed it (DTLS close) or ICE/DTLS failed.
    PeerClosed,
    /// The SFU is shutting down.
    Shutdown,
}

/// Everything the SFU tells one participant's signaling session.
#[derive(Debug, Clone, PartialEq)]
pub enum SfuEvent {
    /// First event after [`Sfu::join`]: who else is in the room.
    Joined {
        participant_id: ParticipantId,
        participants: Vec<ParticipantInfo>,
    },
    /// Offer for the subscribe connection; answer with [`Command::SubscribeAnswer`].
    Offer {
        sdp: String,
    },
    /// Answer to a [`Command::PublishOffer`].
    Answer {
        sdp: String,
    },
    ParticipantJoined(ParticipantInfo),
    ParticipantLeft {
        participant_id: ParticipantId,
    },
    TrackPublished(TrackInfo),
    TrackUnpublished {
        track_id: TrackId,
        participant_id: ParticipantId,
    },
    /// This participant's subscribe answer left out the codec `track_id` is sent in, so it gets
    /// nothing of that track; the rest of its call goes on.
    TrackUnsupported {
        track_id: TrackId,
        participant_id: ParticipantId,
        codec: String,
    },
    Speaking {
        participant_id: ParticipantId,
        speaking: bool,
    },
    MuteChanged {
        participant_id: ParticipantId,
        muted: bool,
        deafened: bool,
        server_muted: bool,
        server_deafened: bool,
    },
    /// A request was refused; `code` is stable and documented in docs/api.md.
    Error {
        code: &'static str,
        message: String,
    },
    /// This participant is no longer in the room (last event).
    Closed {
        reason: LeaveReason,
    },
}

/// Receives a participant's events, on the worker thread: must not block.
pub type EventSink = Box<dyn FnMut(SfuEvent) + Send>;

/// Requests for one participant.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// SDP offer for the publish connection (client → SFU media).
    PublishOffer(String),
    /// SDP answer to the last [`SfuEvent::Offer`].
    SubscribeAnswer(String),
    /// Size, pause and layer preference for one track.
    Subscribe {
        track_id: TrackId,
        pref: Preference,
    },
    /// Self mute / deafen.
    SetMute {
        muted: bool,
        deafened: bool,
    },
    /// Server mute of another participant (signaling checked the right).
    ServerMute {
        target: ParticipantId,
        muted: bool,
    },
    /// Server deafen (a moderator's order): nothing is forwarded to the target.
    ServerDeafen {
        target: ParticipantId,
        deafened: bool,
    },
    /// Restart ICE on the subscribe connection (the SFU sends a new offer). The
    /// publish connection restarts when the client offers with new credentials.
    IceRestart,
    Leave,
}

/// Where the room sends datagrams (a UDP socket in the worker; a buffer in tests).
pub trait Transmitter {
    fn transmit(&mut self, to: SocketAddr, data: &[u8]);

    /// A packet for a peer reached over ICE-TCP (the worker frames it onto the connection). A
    /// transmitter without TCP drops it.
    fn transmit_tcp(&mut self, to: SocketAddr, data: &[u8]) {
        let _ = (to, data);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("cannot bind UDP port {port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on TCP port {port} for ICE-TCP: {source}")]
    BindTcp {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("public address must be concrete, not {0}")]
    UnspecifiedPublicIp(std::net::IpAddr),
    #[error("no public address to advertise")]
    NoPublicIp,
    #[error("metrics registration failed: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("the SFU worker has stopped")]
    WorkerGone,
}

struct WorkerHandle {
    tx: Sender<WorkerMsg>,
    load: Arc<AtomicUsize>,
    addr: SocketAddr,
    /// Set by an ICE-TCP connection that rang this worker's doorbell; cleared by the worker.
    tcp_rung: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The running SFU: worker threads and room placement.
pub struct Sfu {
    workers: Vec<WorkerHandle>,
    placement: Mutex<HashMap<RoomId, usize>>,
    next_participant: AtomicU64,
    metrics: SfuMetrics,
    /// The ICE-TCP listener's address, when it runs.
    tcp: Option<tcp::Listening>,
}

impl Sfu {
    /// Bind one UDP socket per worker and start the worker threads.
    pub fn start(config: SfuConfig, registry: &prometheus::Registry) -> Result<Sfu, SfuError> {
        if let Some(ip) = config.public_ips.iter().find(|ip| ip.is_unspecified()) {
            return Err(SfuError::UnspecifiedPublicIp(*ip));
        }
        if config.public_ips.is_empty() {
            return Err(SfuError::NoPublicIp);
        }
        let metrics = SfuMetrics::new(registry)?;
        let tcp_listener = match config.tcp_port {
            Some(port) => Some(
                std::net::TcpListener::bind(SocketAddr::new(config.bind_ip, port))
                    .map_err(|source| SfuError::BindTcp { port, source })?,
            ),
            None => None,
        };
        let tcp_port = match &tcp_listener {
            Some(l) => Some(l.local_addr().map_err(|source| SfuError::BindTcp { port: 0, source })?.port()),
            None => None,
        };
        let tcp_public: Vec<SocketAddr> = match tcp_port {
            Some(port) => config.public_ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
            None => Vec::new(),
        };
        let mut workers = Vec::new();
        for i in 0..config.worker_count() {
            let port = if config.udp_port_base == 0 { 0 } else { config.udp_port_base.saturating_add(i as u16) };
            let socket = UdpSocket::bind(SocketAddr::new(config.bind_ip, port))
                .map_err(|source| SfuError::Bind { port, source })?;
            let local = socket.local_addr().map_err(|source| SfuError::Bind { port, source })?;
            let public: Vec<SocketAddr> =
                config.public_ips.iter().map(|ip| SocketAddr::new(*ip, local.port())).collect();
            let (tx, rx) = channel();
            let load = Arc::new(AtomicUsize::new(0));
            let tcp_rung = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let worker = Worker {
                tcp_rung: tcp_rung.clone(),
                index: i,
                socket,
                public,
                tcp_public: tcp_public.clone(),
                rx,
                metrics: metrics.clone(),
                load: load.clone(),
                peer_timeout: config.peer_timeout,
                initial_bps: config.initial_bitrate_bps,
                relay_sources: config.relay_sources.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("sfu-worker-{i}"))
                .spawn(move || worker.run())
                .map_err(SfuError::Thread)?;
            workers.push(WorkerHandle { tx, load, addr: local, tcp_rung, thread: Some(thread) });
        }
        let tcp = match tcp_listener {
            Some(listener) => {
                let senders =
                    tcp::Workers::new(workers.iter().map(|w| (w.tx.clone(), w.addr, w.tcp_rung.clone())).collect());
                Some(tcp::Listening::start(listener, senders, metrics.clone()).map_err(SfuError::Thread)?)
            }
            None => None,
        };
        Ok(Sfu { workers, placement: Mutex::new(HashMap::new()), next_participant: AtomicU64::new(1), metrics, tcp })
    }

    /// The ICE-TCP listener's bound address, when ICE-TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().map(|t| t.addr)
    }

    /// The bound UDP addresses, one per worker.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.addr).collect()
    }

    pub fn metrics(&self) -> &SfuMetrics {
        &self.metrics
    }

    fn worker_for(&self, room: RoomId) -> usize {
        let mut placement = self.placement.lock().unwrap_or_else(|e| e.into_inner());
        *placement.entry(room).or_insert_with(|| {
            self.workers
                .iter()
                .enumerate()
                .min_by_key(|(_, w)| w.load.load(Ordering::Relaxed))
                .map(|(i, _)| i)
                .unwrap_or(0)
        })
    }

    /// Add a participant to a room (created on first join). The first event on `sink`
    /// is [`SfuEvent::Joined`].
    pub fn join(&self, room: RoomId, user_id: u64, rights: Rights, sink: EventSink) -> Result<ParticipantId, SfuError> {
        let id = ParticipantId(self.next_participant.fetch_add(1, Ordering::Relaxed));
        let w = self.worker_for(room);
        self.workers[w]
            .tx
            .send(WorkerMsg::Join { room, id, user_id, rights, sink })
            .map_err(|_| SfuError::WorkerGone)?;
        Ok(id)
    }

    /// Every room on every worker, each worker answering within `timeout` (a busy or stopped worker's
    /// rooms are left out rather than waited for).
    pub fn snapshot(&self, timeout: std::time::Duration) -> Vec<RoomSnapshot> {
        let deadline = std::time::Instant::now() + timeout;
        let replies: Vec<_> = self
            .workers
            .iter()
            .filter_map(|w| {
                let (tx, rx) = channel();
                w.tx.send(WorkerMsg::Snapshot(tx)).ok().map(|_| rx)
            })
            .collect();
        let mut rooms = Vec::new();
        for rx in replies {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if let Ok(mut r) = rx.recv_timeout(left) {
                rooms.append(&mut r);
            }
        }
        rooms
    }

    /// A request for a participant of a room.
    pub fn command(&self, room: RoomId, id: ParticipantId, cmd: Command) -> Result<(), SfuError> {
        let w = self.worker_for(room);
        self.workers[w].tx.send(WorkerMsg::Command { room, id, cmd }).map_err(|_| SfuError::WorkerGone)
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        if let Some(tcp) = self.tcp.take() {
            tcp.stop();
        }
        for w in &self.workers {
            let _ = w.tx.send(WorkerMsg::Shutdown);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}
