//! SFU settings: where the workers listen and what they advertise.

use std::net::IpAddr;
use std::time::Duration;

/// Settings of the media plane. Every field has a sensible default for a single box.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Address the worker sockets bind to (e.g. `0.0.0.0`).
    pub bind_ip: IpAddr,
    /// First UDP port; worker `i` listens on `udp_port_base + i`. `0` = ephemeral ports (tests).
    pub udp_port_base: u16,
    /// Addresses written into ICE candidates, one host candidate each (e.g. an IPv4 and an IPv6
    /// address, or a private and a public one for split horizon). Each must be concrete (not `0.0.0.0`).
    pub public_ips: Vec<IpAddr>,
    /// Number of worker threads (each owns one UDP socket). `0` = one per core.
    pub workers: usize,
    /// A peer that sends nothing for this long is removed with its tracks.
    pub peer_timeout: Duration,
    /// Initial bandwidth estimate for subscribers, bits per second.
    pub initial_bitrate_bps: u64,
    /// The one TCP port for ICE-TCP (passive candidates on every public address, for clients
    /// without UDP); `None` = off, `Some(0)` = an ephemeral port (tests).
    pub tcp_port: Option<u16>,
    /// Source addresses that are TURN relays (the embedded TURN server keeps this set), so that a
    /// relayed participant is told from a direct one in `chorus_sfu_joins_by_path_total`. Read once
    /// per join, never per packet.
    pub relay_sources: RelaySources,
}

/// See [`SfuConfig::relay_sources`].
pub type RelaySources = std::sync::Arc<std::sync::RwLock<std::collections::HashSet<std::net::SocketAddr>>>;

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            udp_port_base: 0,
            public_ips: vec![IpAddr::from([127, 0, 0, 1])],
            workers: 0,
            peer_timeout: Duration::from_secs(15),
            initial_bitrate_bps: 1_000_000,
            tcp_port: None,
            relay_sources: RelaySources::default(),
        }
    }
}

impl SfuConfig {
    /// The number of workers to start, resolving `0` to the number of cores.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 { self.workers } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }
    }
}
