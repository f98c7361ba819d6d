//! The Sans-IO room: participants, their tracks and subscriptions, and forwarding.
//!
//! A `Room` does no I/O and reads no clock: the worker feeds it datagrams, commands and
//! ticks with a time, and it answers through a [`Transmitter`] (datagrams), the
//! [`Router`] (paths and ufrags) and each participant's event sink.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaAdded, MediaChanged, MediaData, MediaKind, MediaTime, Mid};
use str0m::net::Receive;
use str0m::{Event, IceConnectionState, Input, PacerReason, Reason};

use crate::forwarder::{Decision, Layer, active_layers, vp8_keyframe_size};
use crate::metrics::{LocalCounters, SfuMetrics};
use crate::offer_sdp::{LineCodecs, only_codecs, rejected_lines_inactive, without_audio_transport_cc};
use crate::participant::{Addresses, Participant};
use crate::router::{Pc, PeerKey, Router};
use crate::track::{Subscription, Track, TrackInfo, TrackKind};
use crate::{Command, EventSink, LeaveReason, ParticipantId, Rights, RoomId, SfuEvent, TrackId, Transmitter};

/// Keyframe requests per track layer at most this often.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// Most timeouts handled per peer connection and pass: str0m's pacer releases one packet per timeout, so
/// this many packets per pass (a probe of 240-byte padding at 2 ms spacing needs up to 3 per 1 ms pass).
const MAX_TIMEOUT_ROUNDS: usize = 4;
/// After each packet str0m's pacer asks for its next timeout this much after the last one ("at once").
const PACER_AT_ONCE: Duration = Duration::from_micros(1);
/// Layer choices are revisited this often (bitrates and active layers move).
const RESELECT_INTERVAL: Duration = Duration::from_millis(500);
/// Timeouts further away than this are left to the worker's regular tick.
const WAKE_HORIZON: Duration = Duration::from_millis(5);
/// How long an audio-only listener's pass may wait after a packet left (see [`Room::forward`]): below
/// every str0m timer it runs for such a connection (pacer budget 40 ms, NACK 33 ms, reports and stats
/// 1 s), above the 20 ms at which each talker's next packet comes and runs a pass anyway.
const LISTENER_PASS_DEFER: Duration = Duration::from_millis(25);

/// What the room needs from its worker on each call.
pub struct Ctx<'a> {
    pub now: Instant,
    pub out: &'a mut dyn Transmitter,
    pub router: &'a mut Router,
    pub counters: &'a mut LocalCounters,
    pub metrics: &'a SfuMetrics,
}

pub struct Room {
    pub id: RoomId,
    addrs: Addresses,
    peer_timeout: Duration,
    initial_bps: u64,
    parts: Vec<Option<Participant>>,
    index: HashMap<ParticipantId, usize>,
    tracks: Vec<Option<Track>>,
    events: VecDeque<(usize, Pc, Event)>,
    next_track: u64,
    last_reselect: Option<Instant>,
    /// The earliest str0m timeout that forwarding or a tick produced since the worker last asked (see [`Room::take_wake`]).
    wake: Option<Instant>,
    relay_sources: crate::config::RelaySources,
}

impl Room {
    /// Peers of this room are also offered these passive ICE-TCP candidates.
    pub fn with_tcp(mut self, tcp: &[SocketAddr]) -> Self {
        self.addrs.tcp = tcp.to_vec();
        self
    }

    pub fn new(id: RoomId, public: &[SocketAddr], peer_timeout: Duration, initial_bps: u64) -> Self {
        Room {
            id,
            addrs: Addresses { udp: public.to_vec(), tcp: Vec::new() },
            peer_timeout,
            initial_bps,
            parts: Vec::new(),
            index: HashMap::new(),
            tracks: Vec::new(),
            events: VecDeque::with_capacity(64),
            next_track: 1,
            last_reselect: None,
            wake: None,
            relay_sources: Default::default(),
        }
    }

    /// Source addresses that are TURN relays, for the join-path metric.
    pub fn with_relay_sources(mut self, relays: crate::config::RelaySources) -> Self {
        self.relay_sources = relays;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn participant_count(&self) -> usize {
        self.index.len()
    }

    /// A participant joins: both peer connections are created and the room is told.
    pub fn join(&mut self, ctx: &mut Ctx, id: ParticipantId, user_id: u64, rights: Rights, sink: EventSink) {
        let mut p = Participant::new(ctx.now, id, user_id, rights, sink, &self.addrs, self.initial_bps);
        let slot = match self.parts.iter().position(Option::is_none) {
            Some(s) => s,
            None => {
                self.parts.push(None);
                self.parts.len() - 1
            }
        };
        for pc in [Pc::Publish, Pc::Subscribe] {
            let key = PeerKey { room: self.id, participant: id, pc };
            let ufrag = match pc {
                Pc::Publish => p.publish_ufrag.clone(),
                Pc::Subscribe => p.subscribe_ufrag.clone(),
            };
            ctx.router.add_ufrag(ufrag, key);
        }
        let others: Vec<_> = self.parts.iter().flatten().map(|o| o.info(self.tracks_of(o.id))).collect();
        p.emit(SfuEvent::Joined { participant_id: id, participants: others });
        let info = p.info(Vec::new());
        self.broadcast(None, &SfuEvent::ParticipantJoined(info));
        self.parts[slot] = Some(p);
        self.index.insert(id, slot);
        ctx.metrics.participants.inc();

        // Subscribe the newcomer to everything already published.
        for t in self.tracks.iter_mut().flatten() {
            t.subs.push(Subscription::new(slot));
        }
        if self.tracks.iter().any(Option::is_some) {
            if let Some(p) = self.parts[slot].as_mut() {
                p.renegotiate = true;
            }
            self.offer_if_needed(ctx, slot);
        }
        self.process_events(ctx);
    }

    fn tracks_of(&self, id: ParticipantId) -> Vec<TrackInfo> {
        self.tracks.iter().flatten().filter(|t| t.info.participant_id == id).map(|t| t.info.clone()).collect()
    }

    fn broadcast(&mut self, except: Option<usize>, ev: &SfuEvent) {
        for (i, p) in self.parts.iter_mut().enumerate() {
            if Some(i) == except {
                continue;
            }
            if let Some(p) = p {
                p.emit(ev.clone());
            }
        }
    }

    /// A datagram for one of this room's peer connections. `known_path` is false when
    /// the router found the owner by ufrag; the path is remembered once accepted.
    pub fn receive(&mut self, ctx: &mut Ctx, key: PeerKey, recv: Receive, known_path: bool) {
        let Some(&slot) = self.index.get(&key.participant) else {
            return;
        };
        let Some(p) = self.parts[slot].as_mut() else {
            return;
        };
        let source = recv.source;
        if !p.connected {
            p.path = Some((recv.proto, source));
        }
        let input = Input::Receive(ctx.now, recv);
        let rtc = p.rtc(key.pc);
        if !known_path {
            if !rtc.accepts(&input) {
                ctx.counters.dropped_unknown += 1;
                return;
            }
            ctx.router.add_path(source, key);
        }
        if let Err(e) = rtc.handle_input(input) {
            tracing::debug!(participant = key.participant.0, error = %e, "bad input");
            ctx.counters.dropped_malformed += 1;
        } else {
            p.last_seen = ctx.now;
            p.seen_traffic = true;
        }
        p.drain(slot, key.pc, ctx.out, &mut self.events);
        self.process_events(ctx);
    }

    /// A request from signaling for one participant.
    pub fn command(&mut self, ctx: &mut Ctx, id: ParticipantId, cmd: Command) {
        let Some(&slot) = self.index.get(&id) else {
            return;
        };
        match cmd {
            Command::PublishOffer(sdp) => self.publish_offer(ctx, slot, &sdp),
            Command::SubscribeAnswer(sdp) => self.subscribe_answer(ctx, slot, &sdp),
            Command::Subscribe { track_id, pref } => {
                let mut found = false;
                for (ti, t) in self.tracks.iter_mut().enumerate() {
                    let Some(t) = t else { continue };
                    if t.info.track_id != track_id {
                        continue;
                    }
                    if let Some(s) = t.subs.iter_mut().find(|s| s.slot == slot) {
                        s.pref = pref;
                        found = true;
                    }
                    if found {
                        self.reselect_track(ctx, ti);
                    }
                    break;
                }
                if !found {
                    self.emit_to(
                        slot,
                        SfuEvent::Error {
                            code: "unknown_track",
                            message: format!("no track {} to subscribe to", track_id.0),
                        },
                    );
                }
            }
            Command::SetMute { muted, deafened } => {
                if let Some(p) = self.parts[slot].as_mut() {
                    p.muted = muted;
                    p.deafened = deafened;
                    if muted && p.speaking.reset().is_some() {
                        self.broadcast(None, &SfuEvent::Speaking { participant_id: id, speaking: false });
                    }
                }
                self.broadcast_mute(slot);
            }
            Command::ServerMute { target, muted } => {
                let Some(tslot) = self.target_slot(slot, target) else { return };
                if let Some(p) = self.parts[tslot].as_mut() {
                    p.server_muted = muted;
                    if muted && p.speaking.reset().is_some() {
                        self.broadcast(None, &SfuEvent::Speaking { participant_id: target, speaking: false });
                    }
                }
                self.broadcast_mute(tslot);
            }
            Command::ServerDeafen { target, deafened } => {
                let Some(tslot) = self.target_slot(slot, target) else { return };
                if let Some(p) = self.parts[tslot].as_mut() {
                    p.server_deafened = deafened;
                }
                self.broadcast_mute(tslot);
            }
            Command::IceRestart => {
                if let Some(p) = self.parts[slot].as_mut() {
                    p.restart_ice = true;
                    p.renegotiate = true;
                }
                self.offer_if_needed(ctx, slot);
            }
            Command::Leave => self.remove(ctx, slot, LeaveReason::Left),
        }
        self.process_events(ctx);
    }

    /// The slot of a moderation command's target; an unknown one is an error to the sender.
    fn target_slot(&mut self, slot: usize, target: ParticipantId) -> Option<usize> {
        let found = self.index.get(&target).copied();
        if found.is_none() {
            let message = format!("no participant {} in this room", target.0);
            self.emit_to(slot, SfuEvent::Error { code: "unknown_participant", message });
        }
        found
    }

    fn emit_to(&mut self, slot: usize, ev: SfuEvent) {
        if let Some(p) = self.parts[slot].as_mut() {
            p.emit(ev);
        }
    }

    fn broadcast_mute(&mut self, slot: usize) {
        let Some(p) = self.parts[slot].as_ref() else {
            return;
        };
        let ev = SfuEvent::MuteChanged {
            participant_id: p.id,
            muted: p.muted,
            deafened: p.deafened,
            server_muted: p.server_muted,
            server_deafened: p.server_deafened,
        };
        self.broadcast(None, &ev);
    }

    fn publish_offer(&mut self, ctx: &mut Ctx, slot: usize, sdp: &str) {
        let Some(p) = self.parts[slot].as_mut() else {
            return;
        };
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                p.emit(SfuEvent::Error { code: "bad_sdp", message: format!("offer does not parse: {e}") });
                return;
            }
        };
        if let Err(what) = check_publish_rights(sdp, p.rights) {
            p.emit(SfuEvent::Error {
                code: "forbidden",
                message: format!("this token does not allow publishing {what}"),
            });
            return;
        }
        // str0m panics on some offers it parses (a payload type claimed twice; found by the sfu_sdp
        // fuzz target). Unwinding here would take the worker thread and every room on it down: the
        // panic is caught and the participant, whose connection is now in an unknown state, leaves.
        let Ok(accepted) = catch_unwind(AssertUnwindSafe(|| p.publish.sdp_api().accept_offer(offer))) else {
            p.emit(SfuEvent::Error { code: "bad_sdp", message: "offer rejected: it cannot be applied".into() });
            self.remove(ctx, slot, LeaveReason::PeerClosed);
            return;
        };
        match accepted {
            Ok(answer) => {
                let sdp = answer.to_sdp_string();
                // A client ICE restart gives the publish connection new local credentials.
                if let Some(ufrag) = sdp_ice_ufrag(&sdp)
                    && ufrag != p.publish_ufrag
                {
                    let key = PeerKey { room: self.id, participant: p.id, pc: Pc::Publish };
                    ctx.router.add_ufrag(ufrag.to_owned(), key);
                    let old = std::mem::replace(&mut p.publish_ufrag, ufrag.to_owned());
                    retire_ufrag(ctx.router, &mut p.retired_ufrags, old);
                }
                p.emit(SfuEvent::Answer { sdp });
            }
            Err(e) => p.emit(SfuEvent::Error { code: "bad_sdp", message: format!("offer rejected: {e}") }),
        }
        p.drain(slot, Pc::Publish, ctx.out, &mut self.events);
    }

    fn subscribe_answer(&mut self, ctx: &mut Ctx, slot: usize, sdp: &str) {
        let Some(p) = self.parts[slot].as_mut() else {
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(&rejected_lines_inactive(sdp)) {
            Ok(a) => a,
            Err(e) => {
                p.emit(SfuEvent::Error { code: "bad_sdp", message: format!("answer does not parse: {e}") });
                return;
            }
        };
        let Some(pending) = p.pending_offer.take() else {
            p.emit(SfuEvent::Error { code: "no_pending_offer", message: "there is no offer to answer".into() });
            return;
        };
        let Ok(accepted) = catch_unwind(AssertUnwindSafe(|| p.subscribe.sdp_api().accept_answer(pending, answer)))
        else {
            // As for offers: a panic in str0m must not take the worker down.
            p.emit(SfuEvent::Error { code: "bad_sdp", message: "answer rejected: it cannot be applied".into() });
            self.remove(ctx, slot, LeaveReason::PeerClosed);
            return;
        };
        if let Err(e) = accepted {
            p.emit(SfuEvent::Error { code: "bad_sdp", message: format!("answer rejected: {e}") });
            // The offer is gone; offer the whole state again.
            p.renegotiate = true;
        }
        p.drain(slot, Pc::Subscribe, ctx.out, &mut self.events);
        for t in self.tracks.iter_mut().flatten() {
            for s in t.subs.iter_mut().filter(|s| s.slot == slot && s.mid.is_some()) {
                s.negotiated = true;
            }
        }
        let mut tis = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            if t.as_ref().is_some_and(|t| t.info.kind == TrackKind::Video) {
                tis.push(ti);
            }
        }
        // Its video lines count before the next packet is forwarded (see the listener's pass in `forward`).
        self.count_video_out();
        for ti in tis {
            self.reselect_track(ctx, ti);
        }
        self.offer_if_needed(ctx, slot);
    }

    /// Send the subscriber an offer for added/removed subscriptions, unless one is pending.
    fn offer_if_needed(&mut self, ctx: &mut Ctx, slot: usize) {
        let Some(p) = self.parts[slot].as_mut() else {
            return;
        };
        if p.pending_offer.is_some() || !p.renegotiate {
            return;
        }
        p.renegotiate = false;
        let mut api = p.subscribe.sdp_api();
        let mut new_ufrag = None;
        if p.restart_ice {
            p.restart_ice = false;
            new_ufrag = Some(api.ice_restart(true).ufrag);
        }
        for mid in p.to_stop.drain(..) {
            if p.bundle_mid == Some(mid) {
                api.set_direction(mid, Direction::Inactive);
            } else {
                api.stop_media(mid);
            }
        }
        for (ti, t) in self.tracks.iter_mut().enumerate() {
            let Some(t) = t else { continue };
            // A video line waits for the track's first media: a browser negotiates VP8 and H.264 on its
            // publish line, and only the codec it then sends may be offered (`forward` offers it then).
            if t.info.kind == TrackKind::Video && t.sending.is_none() {
                continue;
            }
            for s in t.subs.iter_mut().filter(|s| s.slot == slot && s.mid.is_none()) {
                let mid = api.add_media(
                    t.info.kind.media_kind(),
                    Direction::SendOnly,
                    Some(t.info.participant_id.0.to_string()),
                    Some(t.info.track_id.0.to_string()),
                    None,
                );
                s.mid = Some(mid);
                p.bundle_mid.get_or_insert(mid);
                p.outgoing.push((mid, ti));
            }
        }
        let lines: Vec<LineCodecs> = self
            .tracks
            .iter()
            .flatten()
            .filter_map(|t| {
                let mid = t.subs.iter().find(|s| s.slot == slot)?.mid?;
                Some(LineCodecs { mid: mid.to_string(), codecs: t.codecs.iter().map(|c| c.to_string()).collect() })
            })
            .collect();
        if let Some((offer, pending)) = api.apply() {
            if let Some(ufrag) = new_ufrag {
                let key = PeerKey { room: self.id, participant: p.id, pc: Pc::Subscribe };
                ctx.router.add_ufrag(ufrag.clone(), key);
                let old = std::mem::replace(&mut p.subscribe_ufrag, ufrag);
                retire_ufrag(ctx.router, &mut p.retired_ufrags, old);
            }
            p.pending_offer = Some(pending);
            let sdp = without_audio_transport_cc(&only_codecs(&offer.to_sdp_string(), &lines));
            p.emit(SfuEvent::Offer { sdp });
        }
        p.drain(slot, Pc::Subscribe, ctx.out, &mut self.events);
    }

    /// Handle queued str0m events until none are left (forwarding can queue more).
    fn process_events(&mut self, ctx: &mut Ctx) {
        while let Some((slot, pc, ev)) = self.events.pop_front() {
            match (pc, ev) {
                (Pc::Publish, Event::MediaData(data)) => self.forward(ctx, slot, data),
                (Pc::Publish, Event::MediaAdded(m)) => self.media_added(ctx, slot, m),
                (Pc::Publish, Event::MediaChanged(m)) => self.media_changed(ctx, slot, m),
                // An ICE-lite agent (the SFU) goes from checking straight to completed.
                (_, Event::IceConnectionStateChange(IceConnectionState::Connected | IceConnectionState::Completed)) => {
                    if let Some(p) = self.parts[slot].as_mut()
                        && !p.connected
                    {
                        p.connected = true;
                        ctx.metrics.join_latency.observe(ctx.now.saturating_duration_since(p.joined_at).as_secs_f64());
                        let path = match p.path {
                            Some((str0m::net::Protocol::Udp, source)) => {
                                let relayed = self.relay_sources.read().map(|r| r.contains(&source)).unwrap_or(false);
                                if relayed { "relay" } else { "udp" }
                            }
                            Some(_) => "tcp",
                            None => "udp",
                        };
                        ctx.metrics.joins_by_path.with_label_values(&[path]).inc();
                    }
                }
                (Pc::Subscribe, Event::KeyframeRequest(req)) => {
                    let Some(p) = self.parts[slot].as_ref() else {
                        continue;
                    };
                    let Some(&(_, ti)) = p.outgoing.iter().find(|(m, _)| *m == req.mid) else {
                        continue;
                    };
                    // While a switch waits for the target's keyframe, that keyframe both repairs the decoder and
                    // completes the switch (the current layer's would be a large frame on a link that is too small).
                    let layer = self.tracks[ti].as_ref().and_then(|t| {
                        t.subs
                            .iter()
                            .find(|s| s.slot == slot)
                            .and_then(|s| s.layers.wants_keyframe().or(s.layers.current).or(s.layers.target))
                    });
                    self.request_keyframe(ctx, ti, layer.unwrap_or(Layer::F), req.kind);
                }
                (Pc::Subscribe, Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })) => {
                    let bps = estimate.as_u64();
                    ctx.metrics.bandwidth_estimate.observe(bps as f64);
                    if let Some(p) = self.parts[slot].as_mut() {
                        p.bwe_bps = Some(bps);
                    }
                }
                (pc, Event::PeerStats(st)) => {
                    if let Some(p) = self.parts[slot].as_mut() {
                        p.link.connection_report(pc, &st, &mut p.quality);
                    }
                }
                (Pc::Publish, Event::MediaIngressStats(st)) => {
                    let Some(p) = self.parts[slot].as_mut() else {
                        continue;
                    };
                    p.link.stream_in(&st);
                    let audio =
                        p.published.iter().find(|(m, _)| *m == st.mid).and_then(|&(_, ti)| self.tracks[ti].as_ref());
                    if audio.is_some_and(|t| t.info.kind == TrackKind::Audio) {
                        // Opus runs a 48 kHz RTP clock.
                        p.quality.jitter_ms = Some(st.jitter as f32 / 48.0);
                    }
                }
                (Pc::Subscribe, Event::MediaEgressStats(st)) => {
                    let Some(p) = self.parts[slot].as_mut() else {
                        continue;
                    };
                    p.link.stream_out(&st);
                    let Some(&(_, ti)) = p.outgoing.iter().find(|(m, _)| *m == st.mid) else {
                        continue;
                    };
                    if let Some(s) = self.tracks[ti].as_mut().and_then(|t| t.subs.iter_mut().find(|s| s.slot == slot)) {
                        ctx.counters.nacks += st.nacks.saturating_sub(s.nacks_seen);
                        s.nacks_seen = st.nacks;
                    }
                }
                _ => {}
            }
        }
    }

    /// The earliest moment a peer connection wants a timeout pass, set while forwarding and by each pass
    /// over the timeouts; the worker runs the due timeouts ([`Room::drive_due`]) no later than that.
    pub fn take_wake(&mut self) -> Option<Instant> {
        self.wake.take()
    }

    /// Who is here and how their links are doing, for the operator dashboard.
    pub fn snapshot(&self, worker: usize) -> crate::RoomSnapshot {
        let participants = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(slot, p)| p.as_ref().map(|p| (slot, p)))
            .map(|(slot, p)| {
                let subscriptions = self
                    .tracks
                    .iter()
                    .flatten()
                    .filter_map(|t| {
                        t.subs
                            .iter()
                            .find(|s| s.slot == slot)
                            .map(|s| crate::SubscriptionSnapshot { track: t.info.track_id, layer: s.layers.current })
                    })
                    .collect();
                crate::ParticipantSnapshot {
                    id: p.id,
                    user_id: p.user_id,
                    published_tracks: p.published.len(),
                    quality: crate::Quality {
                        bwe_bps: p.bwe_bps,
                        bwe_target_bps: (p.desired_bps > 0).then_some(p.desired_bps),
                        ..p.quality
                    },
                    subscriptions,
                }
            })
            .collect();
        crate::RoomSnapshot { room: self.id, worker, participants }
    }

    fn media_added(&mut self, ctx: &mut Ctx, slot: usize, m: MediaAdded) {
        let Some(p) = self.parts[slot].as_mut() else {
            return;
        };
        // Every line is remembered, also one offered inactive: it publishes once the client turns it on.
        if !p.publish_lines.iter().any(|(mid, ..)| *mid == m.mid) {
            p.publish_lines.push((m.mid, m.kind, m.simulcast.is_some()));
        }
        if matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) {
            self.publish_track(ctx, slot, m.mid, m.kind, m.simulcast.is_some());
        }
    }

    /// A publish line changed direction in a renegotiation: a client that stops sending on it (camera or
    /// screen off: the line goes inactive or recvonly, or is stopped, which str0m reports as inactive)
    /// unpublishes its track; sending again publishes a new one.
    fn media_changed(&mut self, ctx: &mut Ctx, slot: usize, m: MediaChanged) {
        let Some(p) = self.parts[slot].as_mut() else {
            return;
        };
        let published = p.published.iter().position(|(mid, _)| *mid == m.mid);
        let receiving = matches!(m.direction, Direction::RecvOnly | Direction::SendRecv);
        // A rejected (stopped) line never comes back; the client may recycle its slot under a new mid.
        if p.publish.media(m.mid).is_none_or(|media| media.stopped()) {
            p.publish_lines.retain(|(mid, ..)| *mid != m.mid);
        }
        match (published, receiving) {
            (Some(i), false) => {
                let (_, ti) = p.published.swap_remove(i);
                let touched = self.unpublish_track(ctx, ti);
                for s in touched {
                    self.offer_if_needed(ctx, s);
                }
            }
            (None, true) => {
                // A line turned (back) on: a new track of the kind and layers the line was offered with.
                let Some(&(_, kind, simulcast)) = p.publish_lines.iter().find(|(mid, ..)| *mid == m.mid) else {
                    return;
                };
                self.publish_track(ctx, slot, m.mid, kind, simulcast);
            }
            _ => {}
        }
    }

    /// A new track on publish line `mid` of `slot`, offered to everyone else in the room.
    fn publish_track(&mut self, ctx: &mut Ctx, slot: usize, mid: Mid, kind: MediaKind, simulcast: bool) {
        let Some(p) = self.parts[slot].as_mut() else {
            return;
        };
        if p.published.iter().any(|(m, _)| *m == mid) {
            return;
        }
        let kind = match kind {
            MediaKind::Audio => TrackKind::Audio,
            MediaKind::Video => TrackKind::Video,
        };
        let info =
            TrackInfo { track_id: TrackId(p.id.0 * 1000 + self.next_track), participant_id: p.id, kind, simulcast };
        self.next_track += 1;
        let ti = match self.tracks.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.tracks.push(None);
                self.tracks.len() - 1
            }
        };
        p.published.push((mid, ti));
        let codecs = negotiated_codecs(&p.publish, mid);
        let mut subs = Vec::new();
        for (i, o) in self.parts.iter_mut().enumerate() {
            if i == slot {
                continue;
            }
            if let Some(o) = o {
                subs.push(Subscription::new(i));
                o.renegotiate = true;
            }
        }
        self.tracks[ti] = Some(Track {
            info: info.clone(),
            owner: slot,
            mid,
            codecs,
            sending: None,
            layers: Default::default(),
            layers_on: [false; 3],
            last_keyframe_request: [None; 3],
            subs,
        });
        ctx.metrics.tracks.with_label_values(&[kind.as_str()]).inc();
        self.broadcast(None, &SfuEvent::TrackPublished(info));
        for i in 0..self.parts.len() {
            if i != slot {
                self.offer_if_needed(ctx, i);
            }
        }
    }

    /// Takes track `ti` away from its subscribers (their lines are stopped at the next offer) and tells
    /// the room; returns the subscribers that need a new offer. The publisher's own bookkeeping is the
    /// caller's.
    fn unpublish_track(&mut self, ctx: &mut Ctx, ti: usize) -> Vec<usize> {
        let Some(t) = self.tracks.get_mut(ti).and_then(Option::take) else {
            return Vec::new();
        };
        ctx.metrics.tracks.with_label_values(&[t.info.kind.as_str()]).dec();
        let mut touched = Vec::new();
        for s in t.subs {
            if let Some(o) = self.parts[s.slot].as_mut() {
                o.outgoing.retain(|(_, x)| *x != ti);
                if let Some(mid) = s.mid {
                    o.to_stop.push(mid);
                    o.renegotiate = true;
                    touched.push(s.slot);
                }
            }
        }
        let ev = SfuEvent::TrackUnpublished { track_id: t.info.track_id, participant_id: t.info.participant_id };
        self.broadcast(None, &ev);
        touched
    }

    /// The hot path: one incoming media frame to every subscriber of its track.
    fn forward(&mut self, ctx: &mut Ctx, slot: usize, data: MediaData) {
        let Some(p) = self.parts[slot].as_mut() else {
            return;
        };
        let Some(&(_, ti)) = p.published.iter().find(|(m, _)| *m == data.mid) else {
            return;
        };
        let Some(track) = self.tracks[ti].as_mut() else {
            return;
        };
        let kind = track.info.kind;
        let codec = data.params.spec().codec;
        let now = ctx.now;
        let mut layer = Layer::F;
        let keyframe = kind == TrackKind::Video && data.is_keyframe();
        let mut speaking_change = None;
        if kind == TrackKind::Audio {
            if !p.audible() {
                return;
            }
            if let Some(level) = data.ext_vals.audio_level {
                speaking_change = p.speaking.on_level(now, level.saturating_abs());
            }
        } else {
            if !p.rights.video {
                return;
            }
            let Some(l) = Layer::from_rid(data.rid.as_deref()) else {
                return;
            };
            layer = l;
            let dims = if keyframe { vp8_keyframe_size(&data.data) } else { None };
            track.layers[layer.index()].on_frame(now, data.data.len(), dims);
        }
        // Only media that is forwarded counts: a frame refused above must not mark the track as sending
        // (its waiting video lines would never be offered).
        let first_media = track.sending.is_none();
        if track.sending != Some(codec) {
            // First media, or the publisher changed codec: later offers list only this one (each
            // subscription finds its payload type for it in the fan-out below).
            track.sending = Some(codec);
            track.codecs.clear();
            track.codecs.push(codec);
        }
        let publisher = p.id;
        if let Some(speaking) = speaking_change {
            let ev = SfuEvent::Speaking { participant_id: publisher, speaking };
            for o in self.parts.iter_mut().flatten() {
                o.emit(ev.clone());
            }
        }

        let mut want_keyframe = false;
        for s in track.subs.iter_mut() {
            let Some(mid) = s.mid else { continue };
            if !s.negotiated || s.unsupported == Some(codec) {
                continue;
            }
            let Some(sub) = self.parts[s.slot].as_mut() else {
                continue;
            };
            let mut time = data.time;
            if kind == TrackKind::Audio {
                if sub.deafened || sub.server_deafened {
                    continue;
                }
            } else {
                let switched = match s.layers.on_frame(layer, keyframe) {
                    Decision::Drop => {
                        want_keyframe |= s.layers.wants_keyframe() == Some(layer);
                        continue;
                    }
                    Decision::Forward => false,
                    Decision::Switched { up: true } => {
                        ctx.counters.switches_up += 1;
                        true
                    }
                    Decision::Switched { up: false } => {
                        ctx.counters.switches_down += 1;
                        true
                    }
                };
                let mapped = s.timestamps.map(data.time.numer(), data.network_time, switched);
                time = MediaTime::new(mapped, data.time.frequency());
            }
            let pt = match s.pt {
                Some((c, pt)) if c == codec => pt,
                _ => {
                    let Some(pt) = sub.subscribe.codec_config().match_params(data.params).map(|p| p.pt()) else {
                        continue;
                    };
                    let Some(media) = sub.subscribe.media(mid) else { continue };
                    // str0m writes any configured payload type; only the answer says whether the
                    // subscriber can decode it. Told once per codec.
                    if !media.remote_pts().contains(&pt) {
                        s.unsupported = Some(codec);
                        let info = &track.info;
                        sub.emit(SfuEvent::TrackUnsupported {
                            track_id: info.track_id,
                            participant_id: info.participant_id,
                            codec: codec.to_string(),
                        });
                        continue;
                    }
                    s.pt = Some((codec, pt));
                    pt
                }
            };
            let Some(writer) = sub.subscribe.writer(mid) else {
                continue;
            };
            if writer.write(pt, data.network_time, time, data.data.clone()).is_err() {
                continue;
            }
            match kind {
                TrackKind::Audio => ctx.counters.forwarded_audio += 1,
                TrackKind::Video => ctx.counters.forwarded_video += 1,
            }
            // str0m queues a written packet for its pacer and releases it on a timeout pass: run one now, so the
            // packet leaves at once when the pacer allows, and drain once after it. (Draining before the pass
            // as well, only to learn whether the pass was due, cost a whole `poll_output` round per subscriber.)
            if !sub.dead && sub.subscribe.handle_input(Input::Timeout(now)).is_err() {
                sub.dead = true;
            }
            sub.drain(s.slot, Pc::Subscribe, ctx.out, &mut self.events);
            // Once a packet has left, str0m's pacer asks for another pass at once only to reopen its gate for the
            // next one. A listener with no video line has nothing else queued and nothing to probe for (audio lines
            // carry no transport-cc): its next packet's write runs that pass. Skipping it halves the timer passes
            // per forwarded audio packet.
            if kind == TrackKind::Audio
                && sub.video_lines == 0
                && sub.subscribe.last_timeout_reason() == Reason::Pacer(PacerReason::Immediate)
            {
                sub.subscribe_timeout = now + LISTENER_PASS_DEFER;
            }
            // If the pacer held the packet back, it wants a pass soon: ask the worker to wake then, not at its next 5 ms tick.
            self.wake = Some(self.wake.map_or(sub.subscribe_timeout, |w| w.min(sub.subscribe_timeout)));
        }
        if want_keyframe {
            self.request_keyframe(ctx, ti, layer, KeyframeRequestKind::Pli);
        }
        if first_media && kind == TrackKind::Video {
            self.offer_waiting_video(ctx, ti);
        }
    }

    /// A video track's codec is known (its first media arrived): its subscribers get its line now
    /// (their answer, then a keyframe request, starts the video).
    fn offer_waiting_video(&mut self, ctx: &mut Ctx, ti: usize) {
        let Some(track) = self.tracks[ti].as_ref() else { return };
        let waiting: Vec<usize> = track.subs.iter().filter(|s| s.mid.is_none()).map(|s| s.slot).collect();
        for slot in waiting {
            if let Some(p) = self.parts[slot].as_mut() {
                p.renegotiate = true;
            }
            self.offer_if_needed(ctx, slot);
        }
    }

    /// Ask the publisher for a keyframe on one layer, at most once per second.
    fn request_keyframe(&mut self, ctx: &mut Ctx, ti: usize, layer: Layer, kind: KeyframeRequestKind) {
        let Some(t) = self.tracks[ti].as_mut() else {
            return;
        };
        if t.info.kind != TrackKind::Video {
            return;
        }
        let last = &mut t.last_keyframe_request[layer.index()];
        if last.is_some_and(|l| ctx.now.saturating_duration_since(l) < KEYFRAME_REQUEST_INTERVAL) {
            return;
        }
        *last = Some(ctx.now);
        let owner = t.owner;
        let mid = t.mid;
        let rid = t.info.simulcast.then(|| layer.rid().into());
        let Some(p) = self.parts[owner].as_mut() else {
            return;
        };
        if let Some(mut w) = p.publish.writer(mid)
            && w.request_keyframe(rid, kind).is_ok()
        {
            match kind {
                KeyframeRequestKind::Pli => ctx.counters.pli += 1,
                KeyframeRequestKind::Fir => ctx.counters.fir += 1,
            }
        }
        p.drain(owner, Pc::Publish, ctx.out, &mut self.events);
    }

    /// How many video tracks each participant receives (its estimate is shared between them).
    /// And how many video lines each has negotiated, paused or not.
    fn count_video_out(&mut self) {
        for p in self.parts.iter_mut().flatten() {
            p.video_out = 0;
            p.video_lines = 0;
        }
        for t in self.tracks.iter().flatten().filter(|t| t.info.kind == TrackKind::Video) {
            for s in &t.subs {
                if let Some(p) = self.parts[s.slot].as_mut() {
                    p.video_out += usize::from(!s.pref.paused);
                    p.video_lines += usize::from(s.negotiated);
                }
            }
        }
    }

    /// Tells each subscriber's bandwidth estimator what its video would use at the sizes it asked for
    /// (while a hold stands, at the layers it is given: [`crate::forwarder::LayerForwarder::wanted`]), so
    /// that str0m probes for that capacity: without a desired rate it never probes above what is sent,
    /// and the estimate stays below the next layer for good.
    /// While the estimate keeps a subscriber under the layers it wants, its estimator probes again now and then
    /// ([`crate::forwarder::Reprobe`]).
    fn update_desired_bitrates(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        let mut want = vec![(0u64, false); self.parts.len()];
        for t in self.tracks.iter().flatten().filter(|t| t.info.kind == TrackKind::Video) {
            for s in &t.subs {
                let layer = s.layers.wanted(now, t.info.simulcast, &t.layers, &s.pref);
                if let Some(w) = want.get_mut(s.slot) {
                    w.0 += layer.map_or(0, |l| t.layers[l.index()].bitrate_bps);
                    w.1 |= s.layers.wants_more(now);
                }
            }
        }
        for (slot, (bps, wants_more)) in want.into_iter().enumerate() {
            let Some(p) = self.parts[slot].as_mut() else {
                continue;
            };
            // Half on top: the margin an up-switch needs, keyframes and bursts. Changes under a fifth are not worth a new
            // probe.
            let desired = bps + bps / 2;
            let (rate, always) = p.reprobe.desired(now, wants_more, p.bwe_bps, desired);
            if rate < desired {
                tracing::debug!(participant = p.id.0, estimate = rate, desired, "probing again for the layers wanted");
            }
            if !always && (rate.abs_diff(p.desired_bps) * 5 <= p.desired_bps || (rate == 0 && p.desired_bps == 0)) {
                continue;
            }
            p.desired_bps = rate;
            p.subscribe.bwe().set_bitrate(Bitrate::bps(0), Bitrate::bps(rate));
            p.drain(slot, Pc::Subscribe, ctx.out, &mut self.events);
        }
    }

    /// Recompute every subscriber's target layer of one video track.
    fn reselect_track(&mut self, ctx: &mut Ctx, ti: usize) {
        let Some(t) = self.tracks[ti].as_mut() else {
            return;
        };
        if t.info.kind != TrackKind::Video {
            return;
        }
        t.layers_on = active_layers(ctx.now, &t.layers);
        let mut need = None;
        for s in t.subs.iter_mut() {
            let budget = self.parts[s.slot].as_ref().and_then(|p| p.bwe_bps.map(|b| b / p.video_out.max(1) as u64));
            s.layers.retarget(ctx.now, t.info.simulcast, &t.layers, &s.pref, budget);
            if let Some(l) = s.layers.wants_keyframe() {
                need = Some(l);
            }
        }
        if let Some(l) = need {
            self.request_keyframe(ctx, ti, l, KeyframeRequestKind::Pli);
        }
    }

    /// Runs the str0m timeouts that are due, and notes in `wake` the earliest pacer timeout still to come
    /// within [`WAKE_HORIZON`]: a pacer sending a probe wants a pass every 2 ms, and waiting for the next
    /// regular tick would spread the probe out and make str0m measure the link at a fraction of its
    /// capacity. Other timers (reports, NACK and transport-cc feedback, statistics, the pacer's 40 ms
    /// budget refresh) keep to the tick: waking early for them, with the socket's 2 ms wait, woke the two workers
    /// ~1,050 times a second with two voice rooms (655 now).
    fn drive_timeouts(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        let mut earliest = now + WAKE_HORIZON;
        for slot in 0..self.parts.len() {
            let Some(p) = self.parts[slot].as_mut() else {
                continue;
            };
            for pc in [Pc::Publish, Pc::Subscribe] {
                // The pacer releases one packet per timeout and asks for the next "at once", 1 µs after the time
                // it was given: run those rounds in this pass too. (Waiting for the next pass let a probe send one
                // padding packet per wake — at most ~2 Mbit/s — so str0m's estimate never measured more.) The
                // rounds share `now`, so their packets carry one send time; the probe's result is bounded by the
                // receive rate the feedback reports, which this does not change.
                let mut rounds = 0;
                while p.timeout(pc) <= now + PACER_AT_ONCE && rounds < MAX_TIMEOUT_ROUNDS && !p.dead {
                    if p.rtc(pc).handle_input(Input::Timeout(now)).is_err() {
                        p.dead = true;
                    }
                    p.drain(slot, pc, ctx.out, &mut self.events);
                    rounds += 1;
                }
                if pc == Pc::Subscribe && paces(p.subscribe.last_timeout_reason()) {
                    earliest = earliest.min(p.subscribe_timeout);
                }
            }
        }
        if earliest < now + WAKE_HORIZON {
            self.wake = Some(self.wake.map_or(earliest, |w| w.min(earliest)));
        }
    }

    /// Between ticks: only the str0m timeouts that are due (the worker calls this when `wake` asked).
    pub fn drive_due(&mut self, ctx: &mut Ctx) {
        self.drive_timeouts(ctx);
        self.process_events(ctx);
    }

    /// Drive time: str0m timeouts, speaking decay, layer choices and peer timeouts.
    pub fn tick(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        let mut dead = Vec::new();
        self.drive_timeouts(ctx);
        for slot in 0..self.parts.len() {
            let Some(p) = self.parts[slot].as_mut() else {
                continue;
            };
            if let Some(speaking) = p.speaking.on_tick(now) {
                let ev = SfuEvent::Speaking { participant_id: p.id, speaking };
                self.broadcast(None, &ev);
            }
            let Some(p) = self.parts[slot].as_ref() else {
                continue;
            };
            if p.dead || !p.publish.is_alive() || !p.subscribe.is_alive() {
                dead.push((slot, LeaveReason::PeerClosed));
            } else if p.seen_traffic && now.saturating_duration_since(p.last_seen) > self.peer_timeout {
                dead.push((slot, LeaveReason::Timeout));
            }
        }
        self.process_events(ctx);
        if self.last_reselect.is_none_or(|t| now.saturating_duration_since(t) >= RESELECT_INTERVAL) {
            self.last_reselect = Some(now);
            self.count_video_out();
            for ti in 0..self.tracks.len() {
                self.reselect_track(ctx, ti);
            }
            self.update_desired_bitrates(ctx);
            self.process_events(ctx);
        } else {
            // A layer the publisher turned off since the last choice: its subscribers' pictures stand still until
            // they move to another layer, so they choose now rather than at the next interval.
            for ti in 0..self.tracks.len() {
                let turned_off = self.tracks[ti].as_ref().is_some_and(|t| {
                    t.info.simulcast && {
                        let on = active_layers(now, &t.layers);
                        (0..3).any(|i| t.layers_on[i] && !on[i])
                    }
                });
                if turned_off {
                    self.reselect_track(ctx, ti);
                    self.process_events(ctx);
                }
            }
        }
        for (slot, reason) in dead {
            self.remove(ctx, slot, reason);
        }
    }

    /// Remove a participant, its tracks, and its subscriptions.
    fn remove(&mut self, ctx: &mut Ctx, slot: usize, reason: LeaveReason) {
        let Some(mut p) = self.parts[slot].take() else {
            return;
        };
        self.index.remove(&p.id);
        ctx.metrics.participants.dec();
        ctx.router.remove_ufrag(&p.publish_ufrag);
        ctx.router.remove_ufrag(&p.subscribe_ufrag);
        for u in &p.retired_ufrags {
            ctx.router.remove_ufrag(u);
        }
        for pc in [Pc::Publish, Pc::Subscribe] {
            ctx.router.remove_peer(&PeerKey { room: self.id, participant: p.id, pc });
        }
        // Its subscriptions to others' tracks.
        for t in self.tracks.iter_mut().flatten() {
            t.subs.retain(|s| s.slot != slot);
        }
        // Its own tracks, for everyone.
        let mut touched = Vec::new();
        for &(_, ti) in &p.published {
            touched.extend(self.unpublish_track(ctx, ti));
        }
        let id = p.id;
        p.emit(SfuEvent::Closed { reason });
        drop(p);
        self.broadcast(None, &SfuEvent::ParticipantLeft { participant_id: id });
        for s in touched {
            self.offer_if_needed(ctx, s);
        }
        self.process_events(ctx);
    }

    /// Remove everyone (shutdown).
    pub fn close_all(&mut self, ctx: &mut Ctx) {
        for slot in 0..self.parts.len() {
            self.remove(ctx, slot, LeaveReason::Shutdown);
        }
    }
}

/// Ufrags kept routable after an ICE restart (packets in flight on the old path).
const RETIRED_UFRAGS: usize = 2;

/// A timeout of str0m's pacer that releases media, padding or a probe (not its periodic budget refresh).
fn paces(reason: Reason) -> bool {
    matches!(reason, Reason::Pacer(r) if r != PacerReason::Handle)
}

/// The codecs negotiated on a publisher's line, in its order of preference (retransmission aside:
/// it follows its codec).
fn negotiated_codecs(rtc: &str0m::Rtc, mid: Mid) -> Vec<str0m::format::Codec> {
    let mut codecs = Vec::new();
    let Some(media) = rtc.media(mid) else { return codecs };
    for pt in media.remote_pts() {
        if let Some(p) = rtc.codec_config().params().iter().find(|p| p.pt() == *pt) {
            let codec = p.spec().codec;
            if !codecs.contains(&codec) {
                codecs.push(codec);
            }
        }
    }
    codecs
}

fn retire_ufrag(router: &mut Router, retired: &mut Vec<String>, old: String) {
    retired.push(old);
    if retired.len() > RETIRED_UFRAGS {
        let gone = retired.remove(0);
        router.remove_ufrag(&gone);
    }
}

/// The `a=ice-ufrag` of an SDP.
fn sdp_ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

/// Which kinds the offer wants to send; refuse kinds the token does not allow.
pub fn check_publish_rights(sdp: &str, rights: Rights) -> Result<(), &'static str> {
    let mut kind: Option<&str> = None;
    // A section sends unless it says recvonly/inactive and nothing else: with several direction lines
    // str0m may take any of them (found by the `sfu_sdp` fuzz target: sendonly, then recvonly).
    let (mut says_send, mut says_not) = (false, false);
    let check = |kind: Option<&str>, says_send: bool, says_not: bool| match kind {
        Some("audio") if (says_send || !says_not) && !rights.speak => Err("audio (no SPEAK right)"),
        Some("video") if (says_send || !says_not) && !rights.video => Err("video (no VIDEO right)"),
        _ => Ok(()),
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            check(kind, says_send, says_not)?;
            kind = rest.split(' ').next();
            // A port of 0 does not count as "not sending": str0m ignores the port and accepts the line by
            // its direction (found by the `sfu_sdp` fuzz target: audio without SPEAK on port 0).
            (says_send, says_not) = (false, false);
        } else if kind.is_some() && (line == "a=recvonly" || line == "a=inactive") {
            says_not = true;
        } else if kind.is_some() && (line == "a=sendonly" || line == "a=sendrecv") {
            says_send = true;
        }
    }
    check(kind, says_send, says_not)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str =
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\n";

    #[test]
    fn rights_gate_what_an_offer_may_send() {
        let all = Rights { speak: true, video: true };
        assert!(check_publish_rights(OFFER, all).is_ok());
        let mute = Rights { speak: false, video: true };
        assert!(check_publish_rights(OFFER, mute).is_err());
        let novideo = Rights { speak: true, video: false };
        assert!(check_publish_rights(OFFER, novideo).is_err());
        let recv = OFFER.replace("a=sendonly", "a=recvonly").replace("a=sendrecv", "a=inactive");
        assert!(check_publish_rights(&recv, Rights { speak: false, video: false }).is_ok());
    }

    #[test]
    fn a_section_with_a_sending_and_a_receiving_direction_still_needs_its_right() {
        let both = OFFER.replace("a=sendonly", "a=sendonly\r\na=recvonly");
        assert!(check_publish_rights(&both, Rights { speak: false, video: true }).is_err());
        let reversed = OFFER.replace("a=sendonly", "a=recvonly\r\na=sendrecv");
        assert!(check_publish_rights(&reversed, Rights { speak: false, video: true }).is_err());
    }

    #[test]
    fn a_sending_line_on_port_0_still_needs_its_right() {
        let port0 = OFFER.replace("m=audio 9", "m=audio 0");
        assert!(check_publish_rights(&port0, Rights { speak: false, video: true }).is_err());
        let stopped = port0.replace("a=sendonly", "a=inactive");
        assert!(check_publish_rights(&stopped, Rights { speak: false, video: true }).is_ok());
    }
}
