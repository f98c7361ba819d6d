//! The Sans-IO room with str0m client peers over an in-memory network: no sockets,
//! simulated time, deterministic.

#[path = "support/mesh.rs"]
mod mesh;

use std::time::Duration;

use mesh::Mesh;
use sfu::{LeaveReason, SfuEvent, TrackKind};
use str0m::media::{Direction, MediaKind};

#[test]
fn audio_from_one_publisher_reaches_every_other_participant_once() {
    let mut m = Mesh::new(4, 1);
    assert!(m.run_until(2000, Mesh::all_connected), "peers did not connect");
    m.talk(50, &[]);
    assert!(m.run_until(200, |m| m.peers[1..].iter().all(|p| p.media_in >= 45)));
    assert_eq!(m.peers[0].media_in, 0, "a publisher never hears itself");
}

#[test]
fn a_listener_without_video_is_not_woken_again_right_after_each_audio_packet() {
    let mut m = Mesh::new(4, 1);
    assert!(m.run_until(2000, Mesh::all_connected), "peers did not connect");
    m.talk(10, &[]);
    let _ = m.room.take_wake();
    let sent = m.wire.count;
    let dgrams = m.publish_frame(0, &[0xfc; 80]);
    m.deliver(dgrams);
    assert!(m.wire.count >= sent + 3, "the packet left for the three listeners at once");
    // str0m's pacer asks for a pass at once after each packet; for an audio-only listener the next packet's
    // write runs it.
    let wake = m.room.take_wake();
    assert!(
        wake.is_none_or(|w| w >= m.now + Duration::from_millis(10)),
        "the room asked to be woken {:?} after the packet",
        wake.map(|w| w.saturating_duration_since(m.now))
    );
    m.talk(50, &[]);
    assert!(m.run_until(200, |m| m.peers[1..].iter().all(|p| p.media_in >= 55)), "every packet still arrives");
}

#[test]
fn leaving_participant_unpublishes_its_track_for_everyone() {
    let mut m = Mesh::new(3, 1);
    assert!(m.run_until(2000, Mesh::all_connected));
    let id = m.peers[0].id;
    m.command(id, sfu::Command::Leave);
    m.step(Duration::from_millis(5));
    for p in &m.peers[1..] {
        assert!(
            p.seen
                .iter()
                .any(|e| matches!(e, SfuEvent::TrackUnpublished { participant_id, .. } if *participant_id == id))
        );
        assert!(
            p.seen.iter().any(|e| matches!(e, SfuEvent::ParticipantLeft { participant_id } if *participant_id == id))
        );
    }
    assert_eq!(m.room.participant_count(), 2);
}

#[test]
fn a_participant_whose_network_goes_silent_is_removed_after_the_peer_timeout_as_timeout() {
    let mut m = Mesh::new(3, 1);
    assert!(m.run_until(2000, Mesh::all_connected));
    // A client counts as connected once it has the SFU's last DTLS flight; let its own answer reach
    // the SFU too, or the SFU's handshake times out instead (a str0m error, not the peer timeout).
    for _ in 0..5 {
        m.step(Duration::from_millis(20));
    }
    let gone = m.peers[2].id;
    m.silenced = vec![m.peers[2].pub_addr, m.peers[2].sub_addr];
    let closed = |m: &Mesh| {
        m.peers[2].seen.iter().find_map(|e| match e {
            SfuEvent::Closed { reason } => Some(*reason),
            _ => None,
        })
    };
    // The mesh's room has a 30 s peer timeout: still there well before it, removed after it.
    for _ in 0..25 {
        m.step(Duration::from_secs(1));
    }
    assert_eq!(closed(&m), None, "removed before the peer timeout");
    assert_eq!(m.room.participant_count(), 3);
    for _ in 0..10 {
        m.step(Duration::from_secs(1));
    }
    m.step(Duration::from_millis(5));
    assert_eq!(closed(&m), Some(LeaveReason::Timeout));
    assert_eq!(m.room.participant_count(), 2);
    assert!(
        m.peers[0]
            .seen
            .iter()
            .any(|e| matches!(e, SfuEvent::ParticipantLeft { participant_id } if *participant_id == gone))
    );
}

#[test]
fn snapshot_lists_every_participant_with_its_publications_and_link_quality() {
    let mut m = Mesh::new(3, 1);
    m.uplink_delay = true; // a round trip above 0
    assert!(m.run_until(2000, Mesh::all_connected));
    // Receivers report on audio every 5 s (str0m's and Chrome's interval): 12 s of talk.
    m.talk(600, &[]);
    let snap = m.room.snapshot(7);
    assert_eq!(snap.worker, 7);
    assert_eq!(snap.participants.len(), 3);
    let publisher = snap.participants.iter().find(|p| p.id == m.peers[0].id).expect("publisher listed");
    assert_eq!(publisher.published_tracks, 1);
    assert!(publisher.subscriptions.is_empty(), "a publisher does not subscribe to itself");
    for p in snap.participants.iter().filter(|p| p.id != m.peers[0].id) {
        assert_eq!(p.published_tracks, 0);
        assert_eq!(p.subscriptions.len(), 1, "each listener subscribes to the one audio track");
    }
    // Link quality: what the publisher sends as the SFU receives it, what each listener receives as it reports.
    assert_eq!(publisher.quality.loss_in, Some(0.0), "{:?}", publisher.quality);
    assert!(publisher.quality.jitter_ms.is_some(), "{:?}", publisher.quality);
    for p in snap.participants.iter().filter(|p| p.id != m.peers[0].id) {
        assert_eq!(p.quality.loss_out, Some(0.0), "{:?}", p.quality);
        assert!(p.quality.rtt_ms.is_some(), "{:?}", p.quality);
    }
}

/// Three participants talking; the first to join leaves and the other two talk on for 100 ms.
fn three_talkers_then_the_first_leaves() -> Mesh {
    let mut m = Mesh::new(3, 3);
    assert!(m.run_until(2000, Mesh::all_connected), "peers did not connect");
    m.talk(20, &[]);
    let first = m.peers[0].id;
    m.command(first, sfu::Command::Leave);
    m.talk(5, &[0]);
    m
}

/// The SDP of the last offer the SFU sent this peer.
#[test]
fn first_joiner_leaving_keeps_the_bundle_tag_line_of_everyone_elses_subscribe_connection() {
    let mut m = three_talkers_then_the_first_leaves();
    for p in &m.peers[1..] {
        let sdp = p.last_offer().expect("a renegotiation after the leave");
        let first_line = sdp.lines().find(|l| l.starts_with("m=")).expect("a media line");
        assert!(!first_line.starts_with("m=audio 0 "), "the BUNDLE tag line must not be rejected: {first_line}");
        let first_section = sdp.split("\r\nm=").nth(1).expect("first media section");
        assert!(first_section.contains("a=inactive"), "the departed track's line goes inactive");
        assert!(first_section.contains("a=candidate"), "the candidate stays on the tag line");
    }
    let before: Vec<usize> = m.peers.iter().map(|p| p.media_in).collect();
    m.talk(50, &[0]);
    assert_eq!(m.room.participant_count(), 2, "nobody else was dropped");
    for i in [1, 2] {
        assert!(m.peers[i].media_in >= before[i] + 45, "peer {i} still hears the other one");
    }
}

#[test]
fn turning_a_publish_line_off_unpublishes_its_track_and_on_again_publishes_a_new_one() {
    let mut m = Mesh::new(3, 1);
    assert!(m.run_until(2000, Mesh::all_connected), "peers did not connect");
    let audio_tracks = || m.metrics.tracks.with_label_values(&["audio"]).get();
    assert_eq!(audio_tracks(), 1);
    let publisher = m.peers[0].id;
    let mid = m.peers[0].audio_mid.expect("publishing audio");

    m.set_publish_direction(0, mid, Direction::Inactive);
    m.talk(3, &[]);
    for p in &m.peers[1..] {
        assert!(
            p.seen.iter().any(
                |e| matches!(e, SfuEvent::TrackUnpublished { participant_id, .. } if *participant_id == publisher)
            ),
            "track_unpublished when the line goes inactive"
        );
    }
    assert_eq!(m.metrics.tracks.with_label_values(&["audio"]).get(), 0);
    assert_eq!(m.room.participant_count(), 3, "turning a camera off is not leaving");

    m.set_publish_direction(0, mid, Direction::SendOnly);
    m.talk(3, &[]);
    let republished = m.peers[1]
        .seen
        .iter()
        .filter(|e| matches!(e, SfuEvent::TrackPublished(t) if t.participant_id == publisher))
        .count();
    assert_eq!(republished, 2, "published at the start and again when turned back on");
    assert_eq!(m.metrics.tracks.with_label_values(&["audio"]).get(), 1);
    let before: Vec<usize> = m.peers.iter().map(|p| p.media_in).collect();
    m.talk(50, &[]);
    for i in [1, 2] {
        assert!(m.peers[i].media_in >= before[i] + 45, "peer {i} hears the track again");
    }
}

/// How many times `p` heard of a track of `kind` published by `who`.
fn published(p: &mesh::Peer, who: sfu::ParticipantId, kind: TrackKind) -> usize {
    p.seen
        .iter()
        .filter(|e| matches!(e, SfuEvent::TrackPublished(t) if t.participant_id == who && t.kind == kind))
        .count()
}

/// The track ids `p` heard unpublished.
fn unpublished(p: &mesh::Peer) -> Vec<sfu::TrackId> {
    p.seen
        .iter()
        .filter_map(|e| match e {
            SfuEvent::TrackUnpublished { track_id, .. } => Some(*track_id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_track_published_after_the_bundle_tag_went_inactive_reaches_the_remaining_subscribers() {
    let mut m = three_talkers_then_the_first_leaves();

    // A newcomer publishes: peers 1 and 2 get a new line after their inactive tag line.
    m.add_peer(true, 3);
    let newcomer = m.peers[3].id;
    assert!(m.run_until(2000, |m| m.peers[3].publish.is_connected()), "newcomer did not connect");
    let before: Vec<usize> = m.peers.iter().map(|p| p.media_in).collect();
    let mut heard = false;
    for _ in 0..100 {
        m.talk(1, &[0, 1, 2]);
        heard = [1, 2].iter().all(|&i| m.peers[i].media_in >= before[i] + 20);
        if heard {
            break;
        }
    }
    assert!(heard, "peers 1 and 2 hear the newcomer's track");
    for p in &m.peers[1..3] {
        let sdp = p.last_offer().expect("an offer for the newcomer's track");
        let first_line = sdp.lines().find(|l| l.starts_with("m=")).expect("a media line");
        assert!(!first_line.starts_with("m=audio 0 "), "the tag line stays: {first_line}");
        let first_section = sdp.split("\r\nm=").nth(1).expect("first media section");
        assert!(first_section.contains("a=inactive") && first_section.contains("a=candidate"));
        assert!(sdp.contains(&format!("a=msid:{} ", newcomer.0)), "the newcomer's line is offered");
    }
    assert_eq!(m.room.participant_count(), 3);
}

#[test]
fn a_publish_line_stopped_or_turned_recvonly_unpublishes_its_track() {
    let mut m = Mesh::new(3, 1);
    assert!(m.run_until(2000, Mesh::all_connected), "peers did not connect");
    let publisher = m.peers[0].id;
    let audio = m.peers[0].audio_mid.expect("publishing audio");
    let tracks = |m: &Mesh, kind: &str| m.metrics.tracks.with_label_values(&[kind]).get();

    // A camera line next to the microphone, then stopped (RTCRtpTransceiver.stop(): port 0).
    let video = m.add_publish_line(0, MediaKind::Video, Direction::SendOnly).expect("video line offered");
    m.talk(3, &[]);
    assert_eq!(tracks(&m, "video"), 1);
    assert!(m.peers[1..].iter().all(|p| published(p, publisher, TrackKind::Video) == 1));
    // Its first frame puts the camera's line in the subscribers' offers.
    m.send_camera_keyframe(0, video);
    m.talk(3, &[]);
    assert!(m.peers[1..].iter().all(|p| p.last_offer().is_some_and(|sdp| sdp.contains("m=video 9 "))));
    m.stop_publish_line(0, video);
    m.talk(3, &[]);
    assert_eq!(tracks(&m, "video"), 0, "the stopped line's track is gone");
    assert_eq!(tracks(&m, "audio"), 1, "the microphone stays");
    for p in &m.peers[1..] {
        assert_eq!(unpublished(p).len(), 1, "track_unpublished for the camera only");
        let sdp = p.last_offer().expect("an offer without the camera");
        assert!(sdp.contains("m=video 0 "), "a line that is not the tag is rejected: {sdp}");
        assert!(!sdp.lines().find(|l| l.starts_with("m=")).is_some_and(|l| l.starts_with("m=audio 0 ")));
    }
    let before: Vec<usize> = m.peers.iter().map(|p| p.media_in).collect();
    m.talk(50, &[]);
    for i in [1, 2] {
        assert!(m.peers[i].media_in >= before[i] + 45, "peer {i} still hears the microphone");
    }

    // The client keeps the microphone line but only receives on it.
    m.set_publish_direction(0, audio, Direction::RecvOnly);
    m.talk(3, &[]);
    assert_eq!(tracks(&m, "audio"), 0);
    assert!(m.peers[1..].iter().all(|p| unpublished(p).len() == 2));
    assert_eq!(m.room.participant_count(), 3);
}

#[test]
fn a_publish_line_offered_inactive_publishes_when_turned_on() {
    let mut m = Mesh::new(2, 1);
    assert!(m.run_until(2000, Mesh::all_connected), "peers did not connect");
    let publisher = m.peers[0].id;
    let video = m.add_publish_line(0, MediaKind::Video, Direction::Inactive).expect("video line offered");
    m.talk(3, &[]);
    assert_eq!(published(&m.peers[1], publisher, TrackKind::Video), 0, "an inactive line publishes nothing");
    m.set_publish_direction(0, video, Direction::SendOnly);
    m.talk(3, &[]);
    assert_eq!(published(&m.peers[1], publisher, TrackKind::Video), 1);
    assert_eq!(m.metrics.tracks.with_label_values(&["video"]).get(), 1);
}

#[test]
fn an_offer_that_makes_str0m_panic_removes_only_its_sender_and_the_room_goes_on() {
    // Found by the sfu_sdp fuzz target: str0m 0.25 panics ("Pt locked multiple times") applying this
    // offer; uncaught, the panic took down the worker thread and every room on it.
    let mut m = Mesh::new(3, 1);
    assert!(m.run_until(2000, Mesh::all_connected), "peers did not connect");
    let sdp = String::from_utf8_lossy(include_bytes!("data/offer-pt-claimed-twice.sdp")).into_owned();
    let id = m.peers[2].id;
    m.command(id, sfu::Command::PublishOffer(sdp));
    m.step(Duration::from_millis(5));
    let seen = &m.peers[2].seen;
    assert!(seen.iter().any(|e| matches!(e, SfuEvent::Error { code: "bad_sdp", .. })), "{seen:?}");
    assert!(seen.iter().any(|e| matches!(e, SfuEvent::Closed { reason: LeaveReason::PeerClosed })), "{seen:?}");
    assert_eq!(m.room.participant_count(), 2);
    m.talk(50, &[]);
    assert!(m.run_until(200, |m| m.peers[1].media_in >= 45), "the others still hear each other");
}

#[test]
fn a_camera_is_offered_once_its_first_frame_names_the_one_codec_it_sends() {
    let mut m = Mesh::new(2, 1);
    assert!(m.run_until(2000, Mesh::all_connected), "peers did not connect");
    // A str0m client, like a browser, negotiates VP8 and H.264 on its camera line.
    let video = m.add_publish_line(0, MediaKind::Video, Direction::SendOnly).expect("video line offered");
    m.talk(3, &[]);
    assert_eq!(published(&m.peers[1], m.peers[0].id, TrackKind::Video), 1, "the track is announced at once");
    let offer = m.peers[1].last_offer().unwrap_or_default().to_owned();
    assert!(!offer.contains("m=video"), "no camera line before its media says which codec: {offer}");

    m.send_camera_keyframe(0, video);
    m.talk(3, &[]);
    let offer = m.peers[1].last_offer().expect("an offer with the camera");
    let section = offer.split("\nm=").find(|s| s.starts_with("video")).expect("the camera's line");
    let codecs: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|r| r.split_once(' ').and_then(|(_, c)| c.split('/').next()))
        .collect();
    assert_eq!(codecs, ["VP8", "rtx"], "only the codec it sends, with its retransmission: {offer}");
}
