//! The TURN server's state machine, without sockets: messages in, replies and forwards out.
//!
//! It relays only to the addresses in [`Targets`] — this node's SFU — so it is never an open
//! relay: a permission or channel for any other peer is answered 403 and nothing is sent there.
//! Allocations are limited in number (overall and per participant) and in bytes per second.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::credentials::Secret;
use crate::wire::{self, Builder, Class, Message};

pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
const UDP: u8 = 17;

/// How much one participant, and the server as a whole, may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_allocations: usize,
    pub allocations_per_participant: usize,
    /// Relayed bytes per second per allocation (both directions together), and the burst above it.
    pub bytes_per_sec: u64,
    pub burst_bytes: u64,
    pub permissions_per_allocation: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A participant's two peer connections each take one allocation per path they try (UDP and
        // TLS, IPv4 and IPv6), and an ICE restart takes more for a while. 2.5 MB/s carries a
        // camera's top simulcast layer and a screen share with room to spare.
        Limits {
            max_allocations: 4096,
            allocations_per_participant: 12,
            bytes_per_sec: 2_500_000,
            burst_bytes: 1_000_000,
            permissions_per_allocation: 16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tls,
}

/// A client's end of the 5-tuple: the listener it came in on and its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// The peers relaying is allowed to: each SFU address as clients name it (the advertised one, from
/// the SDP) and where this node actually sends to reach it (its bound address on this machine).
#[derive(Debug, Clone, Default)]
pub struct Targets {
    by_name: HashMap<SocketAddr, SocketAddr>,
}

impl Targets {
    pub fn new(pairs: impl IntoIterator<Item = (SocketAddr, SocketAddr)>) -> Targets {
        Targets { by_name: pairs.into_iter().collect() }
    }

    pub fn local(&self, name: &SocketAddr) -> Option<SocketAddr> {
        self.by_name.get(name).copied()
    }

    /// The local address relay sockets of this family bind to (that of the first target).
    fn relay_ip(&self, v6: bool) -> Option<IpAddr> {
        let mut ips: Vec<IpAddr> = self.by_name.values().map(|a| a.ip()).filter(|ip| ip.is_ipv6() == v6).collect();
        ips.sort();
        ips.first().copied()
    }
}

/// Opens a relay socket on `ip` for a new allocation; the I/O layer's, or a test's.
pub trait RelayBinder {
    fn bind(&mut self, ip: IpAddr) -> std::io::Result<SocketAddr>;
}

/// What one message from a client leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    None,
    ToClient(Vec<u8>),
    /// Send `input[payload]` from relay socket `relay` to `to` (the SFU's local address).
    ToPeer {
        relay: SocketAddr,
        to: SocketAddr,
        payload: Range<usize>,
    },
    /// Answer, and close relay socket `.1`: the client deallocated (Refresh with LIFETIME 0, which
    /// browsers send at the end of every call).
    ToClientAndRelease(Vec<u8>, SocketAddr),
}

/// Why something was refused, for the `chorus_turn_refused_total{reason}` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Auth,
    ForeignPeer,
    Quota,
    Bandwidth,
}

impl Refusal {
    pub const ALL: [Refusal; 5] =
        [Refusal::Malformed, Refusal::Auth, Refusal::ForeignPeer, Refusal::Quota, Refusal::Bandwidth];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Auth => "auth",
            Refusal::ForeignPeer => "foreign_peer",
            Refusal::Quota => "quota",
            Refusal::Bandwidth => "bandwidth",
        }
    }
}

/// Plain counters, read by the I/O layer into Prometheus on its tick (no atomics per packet).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub allocations_total: u64,
    pub bytes_to_peer: u64,
    pub bytes_to_client: u64,
    pub refused: [u64; 5],
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Allocation {
    relay: SocketAddr,
    participant: String,
    username: String,
    key: [u8; 16],
    allocate_transaction: [u8; 12],
    expires: Instant,
    /// By peer IP, as RFC 8656 §9 keys them; only ever SFU addresses.
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, (SocketAddr, Instant)>,
    channel_of: HashMap<SocketAddr, u16>,
    /// The SFU's local address → the name this client uses for it (what Data indications carry).
    names: HashMap<SocketAddr, SocketAddr>,
    bucket: Bucket,
}

pub struct Server {
    realm: String,
    secret: Secret,
    targets: Targets,
    limits: Limits,
    allocations: HashMap<Client, Allocation>,
    by_relay: HashMap<SocketAddr, Client>,
    per_participant: HashMap<String, usize>,
    pub counters: Counters,
}

impl Server {
    pub fn new(realm: &str, secret: &[u8], targets: Targets, limits: Limits) -> Server {
        Server {
            realm: realm.to_string(),
            secret: Secret::new(secret),
            targets,
            limits,
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            per_participant: HashMap::new(),
            counters: Counters::default(),
        }
    }

    pub fn set_targets(&mut self, targets: Targets) {
        self.targets = targets;
    }

    pub fn allocations(&self) -> usize {
        self.allocations.len()
    }

    fn refuse(&mut self, why: Refusal) {
        self.counters.refused[why as usize] += 1;
    }

    /// One message (STUN or ChannelData) from `client`.
    pub fn on_client(
        &mut self,
        now: Instant,
        unix_now: u64,
        client: Client,
        input: &[u8],
        binder: &mut dyn RelayBinder,
    ) -> Reply {
        if input.first().is_some_and(|b| b >> 6 == 0b01) {
            return self.channel_data_from_client(now, client, input);
        }
        let Ok(msg) = Message::parse(input) else {
            self.refuse(Refusal::Malformed);
            return Reply::None;
        };
        match msg.class {
            Class::Indication if msg.method == wire::SEND => self.send_indication(now, client, &msg, input),
            Class::Request => {
                let unknown = msg.unknown_required();
                if !unknown.is_empty() {
                    self.refuse(Refusal::Malformed);
                    let list: Vec<u8> = unknown.iter().flat_map(|k| k.to_be_bytes()).collect();
                    let reply = Builder::new(msg.method, Class::Error, msg.transaction)
                        .error(420, "Unknown Attribute")
                        .attr(wire::ATTR_UNKNOWN_ATTRIBUTES, &list);
                    return Reply::ToClient(reply.finish(None));
                }
                match msg.method {
                    wire::BINDING => Reply::ToClient(
                        Builder::new(wire::BINDING, Class::Success, msg.transaction)
                            .xor_address(wire::ATTR_XOR_MAPPED_ADDRESS, client.addr)
                            .finish(None),
                    ),
                    wire::ALLOCATE => self.allocate(now, unix_now, client, &msg, binder),
                    wire::REFRESH | wire::CREATE_PERMISSION | wire::CHANNEL_BIND => {
                        self.authenticated(now, unix_now, client, &msg)
                    }
                    _ => {
                        self.refuse(Refusal::Malformed);
                        Reply::ToClient(error(&msg, 400, "Bad Request"))
                    }
                }
            }
            // Responses and other indications have no business reaching a server.
            _ => Reply::None,
        }
    }

    /// 401/438 with a fresh nonce. `refused`: a credential failed (counted in the metric) — not the
    /// first unauthenticated Allocate or a stale nonce, which every client meets.
    fn challenge(&mut self, msg: &Message<'_>, client: Client, unix_now: u64, code: u16, refused: bool) -> Reply {
        if refused {
            self.refuse(Refusal::Auth);
        }
        let reason = if code == 438 { "Stale Nonce" } else { "Unauthorized" };
        Reply::ToClient(
            Builder::new(msg.method, Class::Error, msg.transaction)
                .error(code, reason)
                .attr(wire::ATTR_REALM, self.realm.as_bytes())
                .attr(wire::ATTR_NONCE, self.secret.nonce(client.addr, unix_now).as_bytes())
                .finish(None),
        )
    }

    fn allocate(
        &mut self,
        now: Instant,
        unix_now: u64,
        client: Client,
        msg: &Message<'_>,
        binder: &mut dyn RelayBinder,
    ) -> Reply {
        if !has_integrity(msg) {
            return self.challenge(msg, client, unix_now, 401, false);
        }
        let (Some(username), Some(realm), Some(nonce)) =
            (msg.text(wire::ATTR_USERNAME), msg.text(wire::ATTR_REALM), msg.text(wire::ATTR_NONCE))
        else {
            self.refuse(Refusal::Malformed);
            return Reply::ToClient(error(msg, 400, "Bad Request"));
        };
        if !self.secret.nonce_fresh(nonce, client.addr, unix_now) {
            return self.challenge(msg, client, unix_now, 438, false);
        }
        let Ok(credential) = self.secret.credential(username, realm, unix_now) else {
            return self.challenge(msg, client, unix_now, 401, true);
        };
        if realm != self.realm || !msg.integrity_ok(&credential.key) {
            return self.challenge(msg, client, unix_now, 401, true);
        }
        let key = credential.key;
        if let Some(existing) = self.allocations.get(&client) {
            // A retransmission gets the same answer; anything else is a second allocation on one 5-tuple.
            if existing.allocate_transaction == msg.transaction {
                let (relay, remaining) = (existing.relay, existing.expires.saturating_duration_since(now));
                return Reply::ToClient(allocated(msg, relay, client, remaining, &key));
            }
            self.refuse(Refusal::Malformed);
            return Reply::ToClient(signed_error(msg, 437, "Allocation Mismatch", &key));
        }
        match msg.get(wire::ATTR_REQUESTED_TRANSPORT).and_then(|v| v.first()) {
            Some(&UDP) => {}
            Some(_) => return Reply::ToClient(signed_error(msg, 442, "Unsupported Transport Protocol", &key)),
            None => return Reply::ToClient(signed_error(msg, 400, "Bad Request", &key)),
        }
        let v6 = match msg.get(wire::ATTR_REQUESTED_ADDRESS_FAMILY).and_then(|v| v.first()) {
            None | Some(0x01) => false,
            Some(0x02) => true,
            Some(_) => return Reply::ToClient(signed_error(msg, 440, "Address Family not Supported", &key)),
        };
        let Some(relay_ip) = self.targets.relay_ip(v6) else {
            return Reply::ToClient(signed_error(msg, 440, "Address Family not Supported", &key));
        };
        let held = self.per_participant.get(&credential.participant).copied().unwrap_or(0);
        if self.allocations.len() >= self.limits.max_allocations || held >= self.limits.allocations_per_participant {
            self.refuse(Refusal::Quota);
            return Reply::ToClient(signed_error(msg, 486, "Allocation Quota Reached", &key));
        }
        let relay = match binder.bind(relay_ip) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("TURN: cannot open a relay socket on {relay_ip}: {e}");
                return Reply::ToClient(signed_error(msg, 508, "Insufficient Capacity", &key));
            }
        };
        // RFC 8656 §7.2: never shorter than the default.
        let lifetime = lifetime(msg).unwrap_or(DEFAULT_LIFETIME).max(DEFAULT_LIFETIME);
        *self.per_participant.entry(credential.participant.clone()).or_default() += 1;
        self.counters.allocations_total += 1;
        self.by_relay.insert(relay, client);
        self.allocations.insert(
            client,
            Allocation {
                relay,
                participant: credential.participant,
                username: username.to_string(),
                key,
                allocate_transaction: msg.transaction,
                expires: now + lifetime,
                permissions: HashMap::new(),
                channels: HashMap::new(),
                channel_of: HashMap::new(),
                names: HashMap::new(),
                bucket: Bucket { tokens: self.limits.burst_bytes as f64, at: now },
            },
        );
        Reply::ToClient(allocated(msg, relay, client, lifetime, &key))
    }

    /// Refresh, CreatePermission, ChannelBind: signed with the allocation's key under its username.
    fn authenticated(&mut self, now: Instant, unix_now: u64, client: Client, msg: &Message<'_>) -> Reply {
        let Some(alloc) = self.allocations.get(&client) else {
            self.refuse(Refusal::Malformed);
            return Reply::ToClient(error(msg, 437, "Allocation Mismatch"));
        };
        let key = alloc.key;
        if msg.text(wire::ATTR_USERNAME) != Some(alloc.username.as_str()) || !msg.integrity_ok(&key) {
            return self.challenge(msg, client, unix_now, 401, true);
        }
        if !msg.text(wire::ATTR_NONCE).is_some_and(|n| self.secret.nonce_fresh(n, client.addr, unix_now)) {
            return self.challenge(msg, client, unix_now, 438, false);
        }
        match msg.method {
            wire::REFRESH => {
                let lifetime = lifetime(msg).unwrap_or(DEFAULT_LIFETIME);
                let answer = Builder::new(msg.method, Class::Success, msg.transaction)
                    .u32(wire::ATTR_LIFETIME, lifetime.as_secs() as u32)
                    .finish(Some(&key));
                if lifetime.is_zero() {
                    return match self.remove(&client) {
                        Some(relay) => Reply::ToClientAndRelease(answer, relay),
                        None => Reply::ToClient(answer),
                    };
                }
                if let Some(a) = self.allocations.get_mut(&client) {
                    a.expires = now + lifetime;
                }
                Reply::ToClient(answer)
            }
            wire::CREATE_PERMISSION => {
                let peers: Vec<Option<SocketAddr>> = msg
                    .get_all(wire::ATTR_XOR_PEER_ADDRESS)
                    .map(|v| wire::decode_xor_address(v, &msg.transaction))
                    .collect();
                if peers.is_empty() || peers.iter().any(Option::is_none) {
                    self.refuse(Refusal::Malformed);
                    return Reply::ToClient(signed_error(msg, 400, "Bad Request", &key));
                }
                let peers: Vec<SocketAddr> = peers.into_iter().flatten().collect();
                if let Some(reply) = self.check_peers(msg, client, &peers, &key) {
                    return reply;
                }
                for peer in peers {
                    self.permit(now, client, peer);
                }
                Reply::ToClient(Builder::new(msg.method, Class::Success, msg.transaction).finish(Some(&key)))
            }
            _ => self.channel_bind(now, client, msg, &key),
        }
    }

    /// 403 unless every peer is an SFU address; 508 when the allocation holds too many permissions.
    fn check_peers(&mut self, msg: &Message<'_>, client: Client, peers: &[SocketAddr], key: &[u8]) -> Option<Reply> {
        if peers.iter().any(|p| self.targets.local(p).is_none()) {
            self.refuse(Refusal::ForeignPeer);
            return Some(Reply::ToClient(signed_error(msg, 403, "Forbidden", key)));
        }
        let alloc = self.allocations.get(&client)?;
        let new = peers.iter().filter(|p| !alloc.permissions.contains_key(&p.ip())).count();
        if alloc.permissions.len() + new > self.limits.permissions_per_allocation {
            self.refuse(Refusal::Quota);
            return Some(Reply::ToClient(signed_error(msg, 508, "Insufficient Capacity", key)));
        }
        None
    }

    fn permit(&mut self, now: Instant, client: Client, peer: SocketAddr) {
        let local = self.targets.local(&peer);
        if let (Some(a), Some(local)) = (self.allocations.get_mut(&client), local) {
            a.permissions.insert(peer.ip(), now + PERMISSION_LIFETIME);
            a.names.entry(local).or_insert(peer);
        }
    }

    fn channel_bind(&mut self, now: Instant, client: Client, msg: &Message<'_>, key: &[u8; 16]) -> Reply {
        let channel =
            msg.get(wire::ATTR_CHANNEL_NUMBER).and_then(|v| v.get(..2)).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let peer = msg.xor_address(wire::ATTR_XOR_PEER_ADDRESS);
        let (Some(channel), Some(peer)) = (channel.filter(|c| wire::valid_channel(*c)), peer) else {
            self.refuse(Refusal::Malformed);
            return Reply::ToClient(signed_error(msg, 400, "Bad Request", key));
        };
        if let Some(reply) = self.check_peers(msg, client, &[peer], key) {
            return reply;
        }
        let Some(alloc) = self.allocations.get_mut(&client) else { return Reply::None };
        let clash = alloc.channels.get(&channel).is_some_and(|(p, _)| *p != peer)
            || alloc.channel_of.get(&peer).is_some_and(|c| *c != channel);
        if clash {
            self.refuse(Refusal::Malformed);
            return Reply::ToClient(signed_error(msg, 400, "Bad Request", key));
        }
        alloc.channels.insert(channel, (peer, now + CHANNEL_LIFETIME));
        alloc.channel_of.insert(peer, channel);
        self.permit(now, client, peer);
        Reply::ToClient(Builder::new(msg.method, Class::Success, msg.transaction).finish(Some(key)))
    }

    fn send_indication(&mut self, now: Instant, client: Client, msg: &Message<'_>, input: &[u8]) -> Reply {
        let (Some(peer), Some(data)) = (msg.xor_address(wire::ATTR_XOR_PEER_ADDRESS), msg.get(wire::ATTR_DATA)) else {
            self.refuse(Refusal::Malformed);
            return Reply::None;
        };
        // The DATA value is a slice of `input`: forward that range, no copy.
        let start = data.as_ptr() as usize - input.as_ptr() as usize;
        self.forward_to_peer(now, client, peer, start..start + data.len())
    }

    fn channel_data_from_client(&mut self, now: Instant, client: Client, input: &[u8]) -> Reply {
        let Some((channel, payload)) = wire::parse_channel_data(input) else {
            self.refuse(Refusal::Malformed);
            return Reply::None;
        };
        let Some(peer) = self
            .allocations
            .get(&client)
            .and_then(|a| a.channels.get(&channel))
            .filter(|(_, until)| *until > now)
            .map(|(p, _)| *p)
        else {
            return Reply::None;
        };
        self.forward_to_peer(now, client, peer, 4..4 + payload.len())
    }

    fn forward_to_peer(&mut self, now: Instant, client: Client, peer: SocketAddr, payload: Range<usize>) -> Reply {
        let (Some(to), Some(alloc)) = (self.targets.local(&peer), self.allocations.get_mut(&client)) else {
            return Reply::None;
        };
        if alloc.permissions.get(&peer.ip()).is_none_or(|until| *until <= now) {
            return Reply::None;
        }
        let len = payload.len() as u64;
        if !take(&mut alloc.bucket, &self.limits, now, len) {
            self.refuse(Refusal::Bandwidth);
            return Reply::None;
        }
        self.counters.bytes_to_peer += len;
        Reply::ToPeer { relay: alloc.relay, to, payload }
    }

    /// A datagram that reached relay socket `relay` from `from`: framed for its client into `out`.
    /// None when nobody may receive it (no allocation, no permission, over the bandwidth limit).
    pub fn on_peer(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        from: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Client> {
        let client = *self.by_relay.get(&relay)?;
        let alloc = self.allocations.get_mut(&client)?;
        let name = *alloc.names.get(&from)?;
        if alloc.permissions.get(&name.ip()).is_none_or(|until| *until <= now) || data.len() > u16::MAX as usize {
            return None;
        }
        if !take(&mut alloc.bucket, &self.limits, now, data.len() as u64) {
            self.refuse(Refusal::Bandwidth);
            return None;
        }
        let pad = client.transport == Transport::Tls;
        match alloc.channel_of.get(&name).filter(|c| alloc.channels.get(c).is_some_and(|(_, t)| *t > now)) {
            Some(&channel) => wire::write_channel_data(out, channel, data, pad),
            None => {
                out.clear();
                out.extend_from_slice(
                    &Builder::new(wire::DATA, Class::Indication, rand::random())
                        .xor_address(wire::ATTR_XOR_PEER_ADDRESS, name)
                        .attr(wire::ATTR_DATA, data)
                        .finish(None),
                );
            }
        }
        self.counters.bytes_to_client += data.len() as u64;
        Some(client)
    }

    /// Drops expired allocations, permissions and channels; returns the relay sockets to close.
    pub fn expire(&mut self, now: Instant) -> Vec<SocketAddr> {
        let gone: Vec<Client> = self.allocations.iter().filter(|(_, a)| a.expires <= now).map(|(c, _)| *c).collect();
        for a in self.allocations.values_mut() {
            a.permissions.retain(|_, until| *until > now);
            a.channels.retain(|_, (_, until)| *until > now);
            let channels = &a.channels;
            a.channel_of.retain(|_, c| channels.contains_key(c));
        }
        gone.iter().filter_map(|c| self.remove(c)).collect()
    }

    /// The client went away (its TLS connection closed): its allocation goes too.
    pub fn remove(&mut self, client: &Client) -> Option<SocketAddr> {
        let alloc = self.allocations.remove(client)?;
        self.by_relay.remove(&alloc.relay);
        if let Some(n) = self.per_participant.get_mut(&alloc.participant) {
            *n -= 1;
            if *n == 0 {
                self.per_participant.remove(&alloc.participant);
            }
        }
        Some(alloc.relay)
    }
}

fn has_integrity(msg: &Message<'_>) -> bool {
    msg.attributes().any(|(k, _, _)| k == wire::ATTR_MESSAGE_INTEGRITY)
}

fn lifetime(msg: &Message<'_>) -> Option<Duration> {
    msg.u32(wire::ATTR_LIFETIME).map(|s| Duration::from_secs(s as u64).min(MAX_LIFETIME))
}

fn take(bucket: &mut Bucket, limits: &Limits, now: Instant, bytes: u64) -> bool {
    let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * limits.bytes_per_sec as f64;
    bucket.tokens = (bucket.tokens + refill).min(limits.burst_bytes as f64);
    bucket.at = now;
    if bucket.tokens < bytes as f64 {
        return false;
    }
    bucket.tokens -= bytes as f64;
    true
}

fn allocated(msg: &Message<'_>, relay: SocketAddr, client: Client, lifetime: Duration, key: &[u8]) -> Vec<u8> {
    Builder::new(wire::ALLOCATE, Class::Success, msg.transaction)
        .xor_address(wire::ATTR_XOR_RELAYED_ADDRESS, relay)
        .xor_address(wire::ATTR_XOR_MAPPED_ADDRESS, client.addr)
        .u32(wire::ATTR_LIFETIME, lifetime.as_secs() as u32)
        .finish(Some(key))
}

fn error(msg: &Message<'_>, code: u16, reason: &str) -> Vec<u8> {
    Builder::new(msg.method, Class::Error, msg.transaction).error(code, reason).finish(None)
}

fn signed_error(msg: &Message<'_>, code: u16, reason: &str, key: &[u8]) -> Vec<u8> {
    Builder::new(msg.method, Class::Error, msg.transaction).error(code, reason).finish(Some(key))
}
