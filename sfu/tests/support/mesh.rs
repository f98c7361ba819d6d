//! An in-memory network around one Sans-IO `Room`: str0m client peers, simulated time,
//! no sockets. Used by the room tests and the forwarding benchmark.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfu::metrics::{LocalCounters, SfuMetrics};
use sfu::room::{Ctx, Room};
use sfu::router::{Pc, Router, stun_local_ufrag};
use sfu::{Command, ParticipantId, Rights, SfuEvent, Transmitter};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// Collects the room's datagrams (or only counts them, for benchmarks).
#[derive(Default)]
pub struct Wire {
    pub keep: bool,
    pub datagrams: Vec<(SocketAddr, Vec<u8>)>,
    pub count: u64,
    pub bytes: u64,
}

impl Transmitter for Wire {
    fn transmit(&mut self, to: SocketAddr, data: &[u8]) {
        self.count += 1;
        self.bytes += data.len() as u64;
        if self.keep {
            self.datagrams.push((to, data.to_vec()));
        }
    }
}

pub struct Peer {
    pub id: ParticipantId,
    pub publish: Rtc,
    pub subscribe: Rtc,
    pub pub_addr: SocketAddr,
    pub sub_addr: SocketAddr,
    pub events: Arc<Mutex<VecDeque<SfuEvent>>>,
    pending: Option<SdpPendingOffer>,
    pub audio_mid: Option<Mid>,
    pub publish_connected: bool,
    pub subscribe_connected: bool,
    pub media_in: usize,
    pub seen: Vec<SfuEvent>,
    pub video_mid: Option<Mid>,
    pub keyframe_requests: usize,
    /// Keyframe requests already answered by `Mesh::send_video_frame`.
    keyframe_requests_served: usize,
    /// Video payloads received (only when `Mesh::record`).
    pub frames: Vec<Vec<u8>>,
    /// Each (media kind, whether its packets carried a transport-wide sequence number) seen in media received.
    pub transport_cc: Vec<(MediaKind, bool)>,
}

impl Peer {
    /// The last subscribe offer this peer received.
    pub fn last_offer(&self) -> Option<&str> {
        self.seen.iter().rev().find_map(|e| match e {
            SfuEvent::Offer { sdp } => Some(sdp.as_str()),
            _ => None,
        })
    }
}

pub struct Mesh {
    pub room: Room,
    pub router: Router,
    pub metrics: SfuMetrics,
    pub counters: LocalCounters,
    pub now: Instant,
    pub wire: Wire,
    pub peers: Vec<Peer>,
    pub sfu: SocketAddr,
    to_sfu: VecDeque<(SocketAddr, Vec<u8>)>,
    rtp_time: u64,
    video_frame: u64,
    pub record: bool,
    /// Clients' datagrams reach the SFU one step late (a path with latency). Off, the path takes no
    /// time, and a round trip measured from RTCP reports is 0 — which str0m may round to "none".
    pub uplink_delay: bool,
    delayed: Vec<(SocketAddr, Vec<u8>)>,
    /// Client addresses whose datagrams are lost on the way to the SFU (a network that went away).
    pub silenced: Vec<SocketAddr>,
    /// How many simulcast layers `publish_video_frame` sends, from q up (3; 2: the publisher turned `f` off).
    pub video_layers: usize,
}

fn client_rtc(now: Instant, addr: SocketAddr) -> Rtc {
    let mut rtc = Rtc::builder().build(now);
    if let Ok(c) = Candidate::host(addr, "udp") {
        rtc.add_local_candidate(c);
    }
    rtc
}

impl Mesh {
    /// A room with `n` participants; the first `publishers` publish one audio track.
    pub fn new(n: usize, publishers: usize) -> Mesh {
        let now = Instant::now();
        let sfu: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let registry = prometheus::Registry::new();
        let metrics = SfuMetrics::new(&registry).unwrap();
        let mut mesh = Mesh {
            room: Room::new(1, &[sfu], Duration::from_secs(30), 2_000_000),
            router: Router::default(),
            metrics,
            counters: LocalCounters::default(),
            now,
            wire: Wire { keep: true, ..Default::default() },
            peers: Vec::new(),
            sfu,
            to_sfu: VecDeque::new(),
            rtp_time: 0,
            video_frame: 0,
            record: false,
            uplink_delay: false,
            delayed: Vec::new(),
            silenced: Vec::new(),
            video_layers: 3,
        };
        for i in 0..n {
            mesh.add_peer(i < publishers, i);
        }
        mesh
    }

    pub fn add_peer(&mut self, publish_audio: bool, i: usize) {
        let id = ParticipantId(1 + self.peers.len() as u64 + 1000 * i as u64);
        let pub_addr = SocketAddr::from(([10, 0, 1, (i % 250) as u8 + 1], 6000 + i as u16));
        let sub_addr = SocketAddr::from(([10, 0, 2, (i % 250) as u8 + 1], 6000 + i as u16));
        let events = Arc::new(Mutex::new(VecDeque::new()));
        let sink_events = events.clone();
        let rights = Rights { speak: true, video: true };
        {
            let mut ctx = Ctx {
                now: self.now,
                out: &mut self.wire,
                router: &mut self.router,
                counters: &mut self.counters,
                metrics: &self.metrics,
            };
            self.room.join(
                &mut ctx,
                id,
                i as u64,
                rights,
                Box::new(move |ev| {
                    if let Ok(mut q) = sink_events.lock() {
                        q.push_back(ev);
                    }
                }),
            );
        }
        let mut peer = Peer {
            id,
            publish: client_rtc(self.now, pub_addr),
            subscribe: client_rtc(self.now, sub_addr),
            pub_addr,
            sub_addr,
            events,
            pending: None,
            audio_mid: None,
            publish_connected: false,
            subscribe_connected: false,
            media_in: 0,
            seen: Vec::new(),
            video_mid: None,
            keyframe_requests: 0,
            keyframe_requests_served: 0,
            frames: Vec::new(),
            transport_cc: Vec::new(),
        };
        if publish_audio {
            let mut api = peer.publish.sdp_api();
            let mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            if let Some((offer, pending)) = api.apply() {
                peer.audio_mid = Some(mid);
                peer.pending = Some(pending);
                let sdp = offer.to_sdp_string();
                self.peers.push(peer);
                self.command(id, Command::PublishOffer(sdp));
                return;
            }
        }
        self.peers.push(peer);
    }

    pub fn command(&mut self, id: ParticipantId, cmd: Command) {
        let mut ctx = Ctx {
            now: self.now,
            out: &mut self.wire,
            router: &mut self.router,
            counters: &mut self.counters,
            metrics: &self.metrics,
        };
        self.room.command(&mut ctx, id, cmd);
    }

    /// Hand one datagram to the room the way the worker does (hash-map routing).
    pub fn sfu_receive(&mut self, source: SocketAddr, data: &[u8]) {
        let (key, known) = match self.router.by_addr(&source) {
            Some(k) => (Some(k), true),
            None => (stun_local_ufrag(data).and_then(|u| self.router.by_ufrag(u)), false),
        };
        let Some(key) = key else { return };
        let Ok(contents) = data.try_into() else {
            return;
        };
        let recv = Receive { proto: Protocol::Udp, source, destination: self.sfu, contents };
        let mut ctx = Ctx {
            now: self.now,
            out: &mut self.wire,
            router: &mut self.router,
            counters: &mut self.counters,
            metrics: &self.metrics,
        };
        self.room.receive(&mut ctx, key, recv, known);
    }

    pub fn tick(&mut self) {
        let mut ctx = Ctx {
            now: self.now,
            out: &mut self.wire,
            router: &mut self.router,
            counters: &mut self.counters,
            metrics: &self.metrics,
        };
        self.room.tick(&mut ctx);
    }

    fn drain_client(&mut self, i: usize, pc: Pc) {
        let p = &mut self.peers[i];
        let (rtc, src) = match pc {
            Pc::Publish => (&mut p.publish, p.pub_addr),
            Pc::Subscribe => (&mut p.subscribe, p.sub_addr),
        };
        loop {
            match rtc.poll_output() {
                Ok(Output::Transmit(t)) => self.to_sfu.push_back((src, t.contents.to_vec())),
                Ok(Output::Timeout(_)) | Err(_) => break,
                Ok(Output::Event(Event::MediaData(d))) => {
                    p.media_in += 1;
                    if let Some(kind) = rtc.media(d.mid).map(|m| m.kind()) {
                        let seen = (kind, d.ext_vals.transport_cc.is_some());
                        if !p.transport_cc.contains(&seen) {
                            p.transport_cc.push(seen);
                        }
                    }
                    if self.record {
                        p.frames.push(d.data.to_vec());
                    }
                }
                Ok(Output::Event(Event::IceConnectionStateChange(IceConnectionState::Connected))) => match pc {
                    Pc::Publish => p.publish_connected = true,
                    Pc::Subscribe => p.subscribe_connected = true,
                },
                Ok(Output::Event(Event::KeyframeRequest(_))) => p.keyframe_requests += 1,
                Ok(Output::Event(_)) => {}
            }
        }
    }

    /// One round of the simulated network; time moves by `dt`.
    pub fn step(&mut self, dt: Duration) {
        self.now += dt;
        // Signaling events.
        for i in 0..self.peers.len() {
            let evs: Vec<SfuEvent> = match self.peers[i].events.lock() {
                Ok(mut q) => q.drain(..).collect(),
                Err(_) => Vec::new(),
            };
            for ev in evs {
                match &ev {
                    SfuEvent::Offer { sdp } => {
                        let Ok(offer) = SdpOffer::from_sdp_string(sdp) else {
                            continue;
                        };
                        let Ok(answer) = self.peers[i].subscribe.sdp_api().accept_offer(offer) else {
                            continue;
                        };
                        let id = self.peers[i].id;
                        self.command(id, Command::SubscribeAnswer(answer.to_sdp_string()));
                    }
                    SfuEvent::Answer { sdp } => {
                        let p = &mut self.peers[i];
                        if let (Some(pending), Ok(a)) = (p.pending.take(), SdpAnswer::from_sdp_string(sdp)) {
                            let _ = p.publish.sdp_api().accept_answer(pending, a);
                        }
                    }
                    _ => {}
                }
                self.peers[i].seen.push(ev);
            }
        }
        let mut out = self.client_round();
        if self.uplink_delay {
            out = std::mem::replace(&mut self.delayed, out);
        }
        for (src, data) in out {
            if !self.silenced.contains(&src) {
                self.sfu_receive(src, &data);
            }
        }
        self.tick();
        self.deliver_to_clients();
    }

    /// Clients run their timers; returns what they send to the SFU.
    pub fn client_round(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        for i in 0..self.peers.len() {
            let now = self.now;
            let _ = self.peers[i].publish.handle_input(Input::Timeout(now));
            self.drain_client(i, Pc::Publish);
            let _ = self.peers[i].subscribe.handle_input(Input::Timeout(now));
            self.drain_client(i, Pc::Subscribe);
        }
        self.to_sfu.drain(..).collect()
    }

    /// Hand the room's datagrams to the clients they are addressed to.
    pub fn deliver_to_clients(&mut self) {
        let out = std::mem::take(&mut self.wire.datagrams);
        for (to, data) in out {
            let Some(i) = self.peers.iter().position(|p| p.pub_addr == to || p.sub_addr == to) else {
                continue;
            };
            let pc = if self.peers[i].pub_addr == to { Pc::Publish } else { Pc::Subscribe };
            let Ok(contents) = data.as_slice().try_into() else {
                continue;
            };
            let input =
                Input::Receive(self.now, Receive { proto: Protocol::Udp, source: self.sfu, destination: to, contents });
            let p = &mut self.peers[i];
            let rtc = match pc {
                Pc::Publish => &mut p.publish,
                Pc::Subscribe => &mut p.subscribe,
            };
            let _ = rtc.handle_input(input);
            self.drain_client(i, pc);
        }
    }

    /// Step until `cond` holds; false after `max` steps.
    pub fn run_until(&mut self, max: usize, mut cond: impl FnMut(&Mesh) -> bool) -> bool {
        for _ in 0..max {
            if cond(self) {
                return true;
            }
            self.step(Duration::from_millis(5));
        }
        cond(self)
    }

    /// Step until [`Mesh::all_connected`]; false after `max` steps. A camera's line is offered to the
    /// others once its first frame arrives, so each simulcast camera sends one keyframe as soon as
    /// its publish connection is up (as a browser does), and nothing more.
    pub fn connect_all(&mut self, max: usize) -> bool {
        let mut sent = vec![false; self.peers.len()];
        for _ in 0..max {
            if self.all_connected() {
                return true;
            }
            let ready: Vec<usize> = (0..self.peers.len())
                .filter(|&i| !sent[i] && self.peers[i].video_mid.is_some() && self.peers[i].publish.is_connected())
                .collect();
            for i in ready {
                sent[i] = true;
                self.send_video_frame(i, true);
            }
            self.step(Duration::from_millis(5));
        }
        self.all_connected()
    }

    /// Everyone connected both ways and every subscription negotiated.
    pub fn all_connected(&self) -> bool {
        let publishes = |p: &Peer| p.audio_mid.is_some() || p.video_mid.is_some();
        let publishers = self.peers.iter().filter(|p| publishes(p)).count();
        self.peers.iter().all(|p| {
            let me = publishes(p) as usize;
            (me == 0 || p.publish.is_connected()) && (publishers == me || p.subscribe.is_connected())
        })
    }

    /// Peer `i` changes the direction of one of its publish lines and offers the change, as a browser
    /// does when a camera is turned off (inactive) or on again (sendonly).
    pub fn set_publish_direction(&mut self, i: usize, mid: Mid, dir: Direction) {
        let p = &mut self.peers[i];
        let mut api = p.publish.sdp_api();
        api.set_direction(mid, dir);
        if let Some((offer, pending)) = api.apply() {
            p.pending = Some(pending);
            let id = p.id;
            self.command(id, Command::PublishOffer(offer.to_sdp_string()));
        }
    }

    /// Peer `i` adds a publish line of `kind` with direction `dir` and offers it; its answer arrives at
    /// the next step.
    pub fn add_publish_line(&mut self, i: usize, kind: MediaKind, dir: Direction) -> Option<Mid> {
        let p = &mut self.peers[i];
        let mut api = p.publish.sdp_api();
        let mid = api.add_media(kind, dir, None, None, None);
        let (offer, pending) = api.apply()?;
        p.pending = Some(pending);
        let id = p.id;
        self.command(id, Command::PublishOffer(offer.to_sdp_string()));
        Some(mid)
    }

    /// Peer `i` stops one of its publish lines (port 0 in its next offer, as `RTCRtpTransceiver.stop()`).
    pub fn stop_publish_line(&mut self, i: usize, mid: Mid) {
        let p = &mut self.peers[i];
        let mut api = p.publish.sdp_api();
        api.stop_media(mid);
        if let Some((offer, pending)) = api.apply() {
            p.pending = Some(pending);
            let id = p.id;
            self.command(id, Command::PublishOffer(offer.to_sdp_string()));
        }
    }

    /// Add a participant that publishes one VP8 track with simulcast layers q, h, f.
    pub fn add_simulcast_publisher(&mut self) {
        let i = self.peers.len();
        self.add_peer(false, i);
        let p = self.peers.last_mut().unwrap();
        let mut simulcast = Simulcast::new();
        for rid in ["q", "h", "f"] {
            simulcast.add_send_layer(SimulcastLayer::new(rid));
        }
        let mut api = p.publish.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(simulcast));
        if let Some((offer, pending)) = api.apply() {
            p.video_mid = Some(mid);
            p.pending = Some(pending);
            let id = p.id;
            self.command(id, Command::PublishOffer(offer.to_sdp_string()));
        }
    }

    /// Peer `i` sends one simulcast frame to the room: a keyframe when `periodic` or when the SFU asked
    /// for one since its last frame, as a browser's encoder does.
    pub fn send_video_frame(&mut self, i: usize, periodic: bool) {
        let p = &mut self.peers[i];
        let asked = p.keyframe_requests > p.keyframe_requests_served;
        p.keyframe_requests_served = p.keyframe_requests;
        let d = self.publish_video_frame(i, periodic || asked);
        self.deliver(d);
    }

    /// `frames` rounds of 20 ms: every audio publisher but the ones in `skip` sends one frame.
    pub fn talk(&mut self, frames: usize, skip: &[usize]) {
        for _ in 0..frames {
            for i in 0..self.peers.len() {
                if skip.contains(&i) || self.peers[i].audio_mid.is_none() {
                    continue;
                }
                let dgrams = self.publish_frame(i, &[0xfc; 80]);
                self.deliver(dgrams);
            }
            self.step(Duration::from_millis(20));
        }
    }

    /// Peer `i` writes one frame on each simulcast layer. Payload: a VP8 frame tag
    /// (keyframes carry the size: 320x180, 640x360, 1280x720) then the layer's index
    /// (0 q, 1 h, 2 f) repeated. Returns its datagrams, not yet delivered.
    pub fn publish_video_frame(&mut self, i: usize, keyframe: bool) -> Vec<(SocketAddr, Vec<u8>)> {
        self.video_frame += 1;
        let now = self.now;
        let t = MediaTime::new(self.video_frame * 3000, Frequency::NINETY_KHZ);
        let p = &mut self.peers[i];
        let Some(mid) = p.video_mid else {
            return Vec::new();
        };
        for (layer, (rid, w, h, size)) in
            [("q", 320u16, 180u16, 200usize), ("h", 640, 360, 800), ("f", 1280, 720, 2400)]
                .into_iter()
                .enumerate()
                .take(self.video_layers)
        {
            let frame = vp8_frame(keyframe, w, h, layer as u8, size);
            let Some(w) = p.publish.writer(mid) else {
                continue;
            };
            let pt = w.payload_params().find(|pp| pp.spec().codec == Codec::Vp8).map(|pp| pp.pt());
            if let Some(pt) = pt {
                let _ = w.rid(rid.into()).write(pt, now, t, frame);
            }
        }
        let _ = p.publish.handle_input(Input::Timeout(now));
        self.drain_client(i, Pc::Publish);
        self.to_sfu.drain(..).collect()
    }

    /// Peer `i` sends one VP8 keyframe (1280x720) on its single-layer video line `mid` to the room.
    pub fn send_camera_keyframe(&mut self, i: usize, mid: Mid) {
        self.video_frame += 1;
        let (now, t) = (self.now, MediaTime::new(self.video_frame * 3000, Frequency::NINETY_KHZ));
        let p = &mut self.peers[i];
        let frame = vp8_frame(true, 1280, 720, 0, 600);
        if let Some(w) = p.publish.writer(mid) {
            let pt = w.payload_params().find(|pp| pp.spec().codec == Codec::Vp8).map(|pp| pp.pt());
            if let Some(pt) = pt {
                let _ = w.write(pt, now, t, frame);
            }
        }
        let _ = p.publish.handle_input(Input::Timeout(now));
        self.drain_client(i, Pc::Publish);
        let d = self.to_sfu.drain(..).collect();
        self.deliver(d);
    }

    /// Hand datagrams from a client to the room.
    pub fn deliver(&mut self, dgrams: Vec<(SocketAddr, Vec<u8>)>) {
        for (src, d) in dgrams {
            self.sfu_receive(src, &d);
        }
    }

    /// Peer `i` writes one 20 ms Opus-sized frame; returns its datagrams, not yet delivered.
    pub fn publish_frame(&mut self, i: usize, payload: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        self.rtp_time += 960;
        let now = self.now;
        let t = self.rtp_time;
        let p = &mut self.peers[i];
        let Some(mid) = p.audio_mid else {
            return Vec::new();
        };
        if let Some(w) = p.publish.writer(mid) {
            let pt = w.payload_params().next().map(|pp| pp.pt());
            if let Some(pt) = pt {
                let _ = w.write(pt, now, MediaTime::new(t, Frequency::FORTY_EIGHT_KHZ), payload.to_vec());
            }
        }
        let _ = p.publish.handle_input(Input::Timeout(now));
        self.drain_client(i, Pc::Publish);
        self.to_sfu.drain(..).collect()
    }
}

/// A VP8 frame of `size` bytes filled with `fill` behind its frame tag; a keyframe's tag carries
/// the start code and its `w`×`h` (RFC 6386 §9.1).
fn vp8_frame(keyframe: bool, w: u16, h: u16, fill: u8, size: usize) -> Vec<u8> {
    let mut frame = vec![fill; size];
    if keyframe {
        frame[..6].copy_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
        frame[6..8].copy_from_slice(&w.to_le_bytes());
        frame[8..10].copy_from_slice(&h.to_le_bytes());
    } else {
        frame[..3].copy_from_slice(&[0x11, 0x02, 0x00]);
    }
    frame
}
