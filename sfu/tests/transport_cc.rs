//! Transport-cc, the feedback of the send-side bandwidth estimate, is negotiated on the subscribe
//! connection's video lines only: audio is never layer-switched, so a listener without video costs
//! no estimator work, and its link quality comes from its receiver reports instead.

#[path = "support/mesh.rs"]
mod mesh;

use mesh::Mesh;
use str0m::media::MediaKind;

const TRANSPORT_CC: &str = "transport-wide-cc-extensions";

/// The media sections (`m=` to the next `m=`) of `kind` in `sdp`.
fn sections<'a>(sdp: &'a str, kind: &str) -> Vec<&'a str> {
    sdp.split("\nm=").skip(1).filter(|s| s.starts_with(kind)).collect()
}

/// Peer 0 talks, peer 1 listens, peer 2 publishes a simulcast camera; all connected.
fn audio_and_video_room() -> Mesh {
    let mut m = Mesh::new(2, 1);
    m.add_simulcast_publisher();
    assert!(m.connect_all(2000), "peers did not connect");
    assert!(
        m.run_until(200, |m| m.peers[1].last_offer().is_some_and(|o| o.contains("\nm=video"))),
        "the listener was offered the camera"
    );
    m
}

/// `frames` rounds of 20 ms: one audio frame from peer 0 and a video frame from peer 2 (keyframes
/// every 15 and when asked).
fn send_audio_and_video(m: &mut Mesh, frames: usize) {
    for n in 0..frames {
        m.send_video_frame(2, n % 15 == 0);
        m.talk(1, &[]);
    }
}

#[test]
fn subscribe_offers_carry_transport_cc_on_video_lines_only() {
    let m = audio_and_video_room();
    let offer = m.peers[1].last_offer().expect("an offer");
    let (audio, video) = (sections(offer, "audio"), sections(offer, "video"));
    assert_eq!((audio.len(), video.len()), (1, 1), "{offer}");
    assert!(!audio[0].contains(TRANSPORT_CC), "audio line: {}", audio[0]);
    assert!(audio[0].contains("ssrc-audio-level"), "the audio line keeps its other extensions: {}", audio[0]);
    assert!(video[0].contains(TRANSPORT_CC), "video line: {}", video[0]);
}

#[test]
fn forwarded_audio_carries_no_transport_sequence_number_and_video_does() {
    let mut m = audio_and_video_room();
    send_audio_and_video(&mut m, 100);
    let seen = &m.peers[1].transport_cc;
    assert!(seen.contains(&(MediaKind::Audio, false)), "audio received without it: {seen:?}");
    assert!(!seen.contains(&(MediaKind::Audio, true)), "no audio packet with it: {seen:?}");
    assert!(seen.contains(&(MediaKind::Video, true)), "video received with it: {seen:?}");
}

#[test]
fn an_audio_only_listener_reports_loss_and_round_trip_from_its_receiver_reports() {
    let mut m = Mesh::new(2, 1);
    m.uplink_delay = true; // a round trip above 0
    assert!(m.connect_all(2000), "peers did not connect");
    // Receivers report on audio every 5 s (str0m's and Chrome's interval): 12 s of talk.
    m.talk(600, &[]);
    let listener = m.peers[1].id;
    let snap = m.room.snapshot(0);
    let q = snap.participants.iter().find(|p| p.id == listener).expect("listener listed").quality;
    assert_eq!(q.loss_out, Some(0.0), "{q:?}");
    assert!(q.rtt_ms.is_some(), "{q:?}");
}
