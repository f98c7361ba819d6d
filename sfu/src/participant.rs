//! One participant: two peer connections (publish, subscribe) and its state.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::change::SdpPendingOffer;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, MediaKind, Mid};
use str0m::net::TcpType;
use str0m::{Candidate, Event, IceCreds, Output, Rtc};

use crate::link::LinkReports;
use crate::router::Pc;
use crate::speaking::SpeakingDetector;
use crate::{EventSink, ParticipantId, ParticipantInfo, Rights, SfuEvent, Transmitter};

pub(crate) struct Participant {
    pub id: ParticipantId,
    pub user_id: u64,
    pub rights: Rights,
    sink: EventSink,
    pub publish: Rtc,
    pub subscribe: Rtc,
    pub publish_ufrag: String,
    pub subscribe_ufrag: String,
    /// Ufrags replaced by ICE restarts, still routed until the participant leaves.
    pub retired_ufrags: Vec<String>,
    /// The client asked for an ICE restart of the subscribe connection.
    pub restart_ice: bool,
    pub publish_timeout: Instant,
    pub subscribe_timeout: Instant,
    pub joined_at: Instant,
    pub last_seen: Instant,
    /// Peer timeouts apply once the client has sent anything (a listener alone in a
    /// room has no media path; its signaling socket decides when it is gone).
    pub seen_traffic: bool,
    pub connected: bool,
    /// Where the last datagram before connecting came from (the path ICE is completing on).
    pub path: Option<(str0m::net::Protocol, std::net::SocketAddr)>,
    pub muted: bool,
    pub deafened: bool,
    pub server_muted: bool,
    /// Server-deafened by a moderator: no media is forwarded to this participant.
    pub server_deafened: bool,
    /// Publish-side media lines and the room's track slot for each.
    pub published: Vec<(Mid, usize)>,
    /// Subscribe-side media lines and the room's track slot for each.
    pub outgoing: Vec<(Mid, usize)>,
    pub pending_offer: Option<SdpPendingOffer>,
    /// Subscriptions were added or removed since the last offer.
    pub renegotiate: bool,
    pub to_stop: Vec<Mid>,
    pub bwe_bps: Option<u64>,
    /// Every publish line the client offered and has not stopped: (mid, kind, simulcast), to publish it
    /// (again) when the client turns it on.
    pub publish_lines: Vec<(Mid, MediaKind, bool)>,
    /// The first media line of the subscribe connection: the BUNDLE tag, where the SFU's candidate is
    /// written. It is never rejected (a browser would move the BUNDLE to a new transport); when its
    /// track goes away it turns inactive instead.
    pub bundle_mid: Option<Mid>,
    /// Video tracks it receives (not paused), counted at each layer reselection.
    pub video_out: usize,
    /// Video lines negotiated on its subscribe connection, paused or not (counted at each answer and layer
    /// choice): while there are none, its pacer never holds anything but audio, nor probes.
    pub video_lines: usize,
    /// The rate last given to the subscribe connection's estimator as the one to probe for.
    pub desired_bps: u64,
    /// Has its estimator probe again while the estimate keeps it under the layers it wants.
    pub reprobe: crate::forwarder::Reprobe,
    pub quality: crate::Quality,
    pub link: LinkReports,
    pub speaking: SpeakingDetector,
    pub dead: bool,
}

/// Build one ICE-lite peer connection that advertises each of `public` as a host candidate.
/// Where a participant's peer connections are reached: host candidates over UDP (one per advertised
/// address) and, when ICE-TCP is on, passive TCP candidates.
#[derive(Debug, Clone, Default)]
pub(crate) struct Addresses {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
}

pub(crate) fn new_rtc(now: Instant, addrs: &Addresses, subscriber: bool, initial_bps: u64) -> (Rtc, String) {
    let creds = IceCreds::new();
    let ufrag = creds.ufrag.clone();
    let mut cfg = Rtc::builder().set_ice_lite(true).set_local_ice_credentials(creds).clear_codecs();
    // Opus with in-band FEC and DTX (silence costs nothing).
    cfg.codec_config().add_config(
        111.into(),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), use_dtx: Some(true), ..Default::default() },
    );
    // VP8 first (simulcast layers are sized from its keyframes); H.264 when negotiated.
    // Statistics once a second on both connections: the publish side gives loss and jitter of what the
    // client sends, the subscribe side loss and round trip of what it receives (the operator dashboard).
    let mut cfg = cfg.enable_vp8(true).enable_h264(true).set_stats_interval(Some(std::time::Duration::from_secs(1)));
    if subscriber {
        cfg = cfg.enable_bwe(Some(Bitrate::bps(initial_bps)));
    }
    let mut rtc = cfg.build(now);
    for addr in &addrs.udp {
        if let Ok(c) = Candidate::host(*addr, "udp") {
            rtc.add_local_candidate(c);
        }
    }
    // Passive: the client connects to us (RFC 6544); UDP stays preferred by the candidates' priority.
    for addr in &addrs.tcp {
        if let Ok(c) = Candidate::builder().tcp().host(*addr).tcptype(TcpType::Passive).build() {
            rtc.add_local_candidate(c);
        }
    }
    (rtc, ufrag)
}

impl Participant {
    pub fn new(
        now: Instant,
        id: ParticipantId,
        user_id: u64,
        rights: Rights,
        sink: EventSink,
        addrs: &Addresses,
        initial_bps: u64,
    ) -> Self {
        let (publish, publish_ufrag) = new_rtc(now, addrs, false, initial_bps);
        let (subscribe, subscribe_ufrag) = new_rtc(now, addrs, true, initial_bps);
        Participant {
            id,
            user_id,
            rights,
            sink,
            publish,
            subscribe,
            publish_ufrag,
            subscribe_ufrag,
            retired_ufrags: Vec::new(),
            restart_ice: false,
            publish_timeout: now,
            subscribe_timeout: now,
            joined_at: now,
            last_seen: now,
            seen_traffic: false,
            connected: false,
            path: None,
            muted: false,
            deafened: false,
            server_muted: false,
            server_deafened: false,
            published: Vec::new(),
            outgoing: Vec::new(),
            pending_offer: None,
            renegotiate: false,
            to_stop: Vec::new(),
            bwe_bps: None,
            desired_bps: 0,
            reprobe: Default::default(),
            video_out: 0,
            video_lines: 0,
            bundle_mid: None,
            publish_lines: Vec::new(),
            quality: crate::Quality::default(),
            link: LinkReports::default(),
            speaking: SpeakingDetector::default(),
            dead: false,
        }
    }

    pub fn rtc(&mut self, pc: Pc) -> &mut Rtc {
        match pc {
            Pc::Publish => &mut self.publish,
            Pc::Subscribe => &mut self.subscribe,
        }
    }

    pub fn timeout(&self, pc: Pc) -> Instant {
        match pc {
            Pc::Publish => self.publish_timeout,
            Pc::Subscribe => self.subscribe_timeout,
        }
    }

    pub fn emit(&mut self, ev: SfuEvent) {
        (self.sink)(ev);
    }

    /// Audio from this participant is forwarded.
    pub fn audible(&self) -> bool {
        !self.muted && !self.server_muted && self.rights.speak
    }

    pub fn info(&self, tracks: Vec<crate::TrackInfo>) -> ParticipantInfo {
        ParticipantInfo {
            participant_id: self.id,
            user_id: self.user_id,
            tracks,
            muted: self.muted,
            deafened: self.deafened,
            server_muted: self.server_muted,
            server_deafened: self.server_deafened,
        }
    }

    /// Drain one peer connection until it asks for a timeout (str0m's invariant):
    /// datagrams go out at once, events are queued for the room.
    pub fn drain(&mut self, slot: usize, pc: Pc, out: &mut dyn Transmitter, events: &mut VecDeque<(usize, Pc, Event)>) {
        let rtc = match pc {
            Pc::Publish => &mut self.publish,
            Pc::Subscribe => &mut self.subscribe,
        };
        loop {
            match rtc.poll_output() {
                Ok(Output::Transmit(t)) => match t.proto {
                    str0m::net::Protocol::Udp => out.transmit(t.destination, &t.contents),
                    _ => out.transmit_tcp(t.destination, &t.contents),
                },
                Ok(Output::Timeout(t)) => {
                    match pc {
                        Pc::Publish => self.publish_timeout = t,
                        Pc::Subscribe => self.subscribe_timeout = t,
                    }
                    return;
                }
                Ok(Output::Event(e)) => events.push_back((slot, pc, e)),
                Err(e) => {
                    tracing::debug!(participant = self.id.0, ?pc, error = %e, "peer connection failed");
                    self.dead = true;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::change::SdpOffer;
    use str0m::media::Direction;

    #[test]
    fn every_advertised_address_becomes_a_host_candidate_in_the_answer() {
        let now = Instant::now();
        let udp: Vec<SocketAddr> = vec!["203.0.113.5:50000".parse().unwrap(), "[2001:db8::5]:50000".parse().unwrap()];
        let tcp: Vec<SocketAddr> = vec!["203.0.113.5:7881".parse().unwrap()];
        let (mut sfu, _) = new_rtc(now, &Addresses { udp: udp.clone(), tcp }, false, 1_000_000);
        let mut client = Rtc::builder().build(now);
        let mut change = client.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let Some((offer, _pending)) = change.apply() else {
            panic!("the client has a change to offer");
        };
        let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).unwrap();
        let answer = sfu.sdp_api().accept_offer(offer).unwrap().to_sdp_string();
        for a in &udp {
            let line = format!("{} {} typ host", a.ip(), a.port());
            assert!(answer.contains(&line), "missing {line} in {answer}");
        }
        let tcp_line = answer.lines().find(|l| l.contains(" tcp ")).expect("a TCP candidate");
        assert!(tcp_line.contains("203.0.113.5 7881 typ host tcptype passive"), "{tcp_line}");
    }
}
