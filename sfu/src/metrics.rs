//! `chorus_sfu_*` Prometheus families, registered into a caller's registry.
//!
//! Labels are bounded: media kind, reason, direction — never user or room ids.
//! The hot path counts into worker-local [`LocalCounters`] and flushes them on a tick,
//! so a forwarded packet costs no atomic operation on shared cache lines.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The SFU's metric families.
#[derive(Clone)]
pub struct SfuMetrics {
    pub rooms: IntGauge,
    pub participants: IntGauge,
    pub tracks: IntGaugeVec,
    pub packets_in: IntCounter,
    pub bytes_in: IntCounter,
    pub packets_out: IntCounter,
    pub bytes_out: IntCounter,
    pub forwarded: IntCounterVec,
    pub dropped_datagrams: IntCounterVec,
    pub nacks: IntCounter,
    pub keyframe_requests: IntCounterVec,
    pub layer_switches: IntCounterVec,
    pub bandwidth_estimate: Histogram,
    pub join_latency: Histogram,
    /// Participants connected, by the path their first connected peer connection took.
    pub joins_by_path: IntCounterVec,
    /// ICE-TCP connections open now, and those refused by the connection limits.
    pub tcp_connections: IntGauge,
    pub tcp_refused: IntCounter,
}

impl SfuMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = SfuMetrics {
            rooms: IntGauge::new("chorus_sfu_rooms", "Rooms with at least one participant")?,
            participants: IntGauge::new("chorus_sfu_participants", "Participants in SFU rooms")?,
            tracks: IntGaugeVec::new(Opts::new("chorus_sfu_tracks", "Published tracks"), &["kind"])?,
            packets_in: IntCounter::new("chorus_sfu_packets_in_total", "UDP datagrams received")?,
            bytes_in: IntCounter::new("chorus_sfu_bytes_in_total", "UDP bytes received")?,
            packets_out: IntCounter::new("chorus_sfu_packets_out_total", "UDP datagrams sent")?,
            bytes_out: IntCounter::new("chorus_sfu_bytes_out_total", "UDP bytes sent")?,
            forwarded: IntCounterVec::new(
                Opts::new(
                    "chorus_sfu_forwarded_frames_total",
                    "Media frames (audio packets, video frames) forwarded to a subscriber",
                ),
                &["kind"],
            )?,
            dropped_datagrams: IntCounterVec::new(
                Opts::new("chorus_sfu_dropped_datagrams_total", "Datagrams no peer owns or that failed to parse"),
                &["reason"],
            )?,
            nacks: IntCounter::new("chorus_sfu_nacks_total", "NACKs received from subscribers")?,
            keyframe_requests: IntCounterVec::new(
                Opts::new("chorus_sfu_keyframe_requests_total", "Keyframe requests (PLI/FIR) sent to publishers"),
                &["kind"],
            )?,
            layer_switches: IntCounterVec::new(
                Opts::new("chorus_sfu_layer_switches_total", "Simulcast layer switches"),
                &["direction"],
            )?,
            bandwidth_estimate: Histogram::with_opts(
                HistogramOpts::new("chorus_sfu_bandwidth_estimate_bps", "Subscriber bandwidth estimates (TWCC)")
                    .buckets(vec![100e3, 250e3, 500e3, 1e6, 2e6, 4e6, 8e6, 16e6, 32e6]),
            )?,
            join_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "chorus_sfu_join_latency_seconds",
                    "Time from join to the first connected peer connection",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]),
            )?,
            joins_by_path: IntCounterVec::new(
                Opts::new(
                    "chorus_sfu_joins_by_path_total",
                    "Participants connected, by media path: udp (direct), tcp (ICE-TCP), relay (the embedded TURN server)",
                ),
                &["path"],
            )?,
            tcp_connections: IntGauge::new("chorus_sfu_tcp_connections", "ICE-TCP connections open")?,
            tcp_refused: IntCounter::new(
                "chorus_sfu_tcp_connections_refused_total",
                "ICE-TCP connections refused by the connection limits (in all, per address)",
            )?,
        };
        registry.register(Box::new(m.rooms.clone()))?;
        registry.register(Box::new(m.participants.clone()))?;
        registry.register(Box::new(m.tracks.clone()))?;
        registry.register(Box::new(m.packets_in.clone()))?;
        registry.register(Box::new(m.bytes_in.clone()))?;
        registry.register(Box::new(m.packets_out.clone()))?;
        registry.register(Box::new(m.bytes_out.clone()))?;
        registry.register(Box::new(m.forwarded.clone()))?;
        registry.register(Box::new(m.dropped_datagrams.clone()))?;
        registry.register(Box::new(m.nacks.clone()))?;
        registry.register(Box::new(m.keyframe_requests.clone()))?;
        registry.register(Box::new(m.layer_switches.clone()))?;
        registry.register(Box::new(m.bandwidth_estimate.clone()))?;
        registry.register(Box::new(m.join_latency.clone()))?;
        registry.register(Box::new(m.joins_by_path.clone()))?;
        for path in ["udp", "tcp", "relay"] {
            m.joins_by_path.with_label_values(&[path]);
        }
        registry.register(Box::new(m.tcp_connections.clone()))?;
        registry.register(Box::new(m.tcp_refused.clone()))?;
        Ok(m)
    }
}

/// Counters kept by one worker between flushes.
#[derive(Debug, Default, Clone)]
pub struct LocalCounters {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub forwarded_audio: u64,
    pub forwarded_video: u64,
    pub dropped_unknown: u64,
    pub dropped_malformed: u64,
    pub dropped_tcp_queue: u64,
    pub nacks: u64,
    pub pli: u64,
    pub fir: u64,
    pub switches_up: u64,
    pub switches_down: u64,
}

impl LocalCounters {
    /// Add to the shared families and reset.
    pub fn flush(&mut self, m: &SfuMetrics) {
        let c = std::mem::take(self);
        m.packets_in.inc_by(c.packets_in);
        m.bytes_in.inc_by(c.bytes_in);
        m.packets_out.inc_by(c.packets_out);
        m.bytes_out.inc_by(c.bytes_out);
        m.forwarded.with_label_values(&["audio"]).inc_by(c.forwarded_audio);
        m.forwarded.with_label_values(&["video"]).inc_by(c.forwarded_video);
        m.dropped_datagrams.with_label_values(&["unknown_peer"]).inc_by(c.dropped_unknown);
        m.dropped_datagrams.with_label_values(&["malformed"]).inc_by(c.dropped_malformed);
        m.dropped_datagrams.with_label_values(&["tcp_queue_full"]).inc_by(c.dropped_tcp_queue);
        m.nacks.inc_by(c.nacks);
        m.keyframe_requests.with_label_values(&["pli"]).inc_by(c.pli);
        m.keyframe_requests.with_label_values(&["fir"]).inc_by(c.fir);
        m.layer_switches.with_label_values(&["up"]).inc_by(c.switches_up);
        m.layer_switches.with_label_values(&["down"]).inc_by(c.switches_down);
    }
}
