//! Tracks going away and coming back with independent peers (webrtc-rs): the subscribe
//! connection's BUNDLE-tag line survives its track, and a publish line turned off and on
//! unpublishes and publishes again.

mod common;

use std::time::Duration;

use common::*;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::json;

/// The first media section (`m=` line on) of an SDP.
fn first_section(sdp: &str) -> &str {
    sdp.split_once("\nm=").map_or("", |(_, rest)| rest.split("\nm=").next().unwrap_or(rest))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_joiner_leaving_keeps_the_other_two_hearing_each_other_and_new_tracks_coming() {
    let server = Server::start().await;
    let url = server.url();
    let mut clients = Vec::new();
    for user in 1..=3 {
        clients.push(Client::join(&url, &server.token(user, all_rights())).await);
    }
    let mut tones = Vec::new();
    // In this order the first joiner's track is the first line (the BUNDLE tag) of the others' subscribe connections.
    for (c, f) in clients.iter_mut().zip([440.0, 660.0, 990.0]) {
        tones.push(c.publish_tone(f).await);
    }
    let ids: Vec<String> = clients.iter().map(|c| c.participant_id.clone()).collect();
    let all_heard = eventually(Duration::from_secs(10), || {
        (0..3).all(|i| (0..3).filter(|&j| j != i).all(|j| clients[i].packets_from(&ids[j]) >= 25))
    })
    .await;
    assert!(all_heard, "three participants did not hear each other");

    clients[0].send(json!({"type":"leave"}));
    tones.remove(0).abort();
    for c in &mut clients[1..] {
        let left = c.expect("participant_left", Duration::from_secs(5)).await.expect("participant_left");
        assert_eq!(left["participant_id"], ids[0].as_str());
    }
    // The renegotiation that takes the first joiner's track away: applied when the tag line turned inactive.
    for c in &clients[1..] {
        let mut sdp = String::new();
        for _ in 0..100 {
            sdp = c.subscribe_remote_sdp().await;
            if first_section(&sdp).contains("a=inactive") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let tag = first_section(&sdp);
        assert!(tag.contains("a=inactive"), "the departed track's line did not turn inactive:\n{sdp}");
        assert!(!tag.starts_with("audio 0 "), "the BUNDLE tag line was rejected:\n{sdp}");
        assert!(tag.contains("a=candidate"), "the SFU's candidate left the tag line:\n{sdp}");
    }
    let (b, c) = (clients[1].packets_from(&ids[2]), clients[2].packets_from(&ids[1]));
    let still = eventually(Duration::from_secs(5), || {
        clients[1].packets_from(&ids[2]) >= b + 50 && clients[2].packets_from(&ids[1]) >= c + 50
    })
    .await;
    assert!(still, "the remaining two stopped hearing each other");

    // A later renegotiation adds a line after the inactive tag; both still take it.
    let mut newcomer = Client::join(&url, &server.token(4, all_rights())).await;
    tones.push(newcomer.publish_tone(1320.0).await);
    let new_id = newcomer.participant_id.clone();
    let heard_new =
        eventually(Duration::from_secs(10), || clients[1..].iter().all(|c| c.packets_from(&new_id) >= 25)).await;
    assert!(heard_new, "a track published after the leave did not reach the remaining two");
    assert_eq!(server.metric("chorus_sfu_participants"), 3.0, "nobody else was dropped");
    assert_eq!(server.metric("chorus_sfu_tracks"), 3.0);
    for t in tones {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn camera_turned_inactive_unpublishes_its_track_and_turned_on_publishes_a_new_one() {
    let server = Server::start().await;
    let url = server.url();
    let mut publisher = Client::join(&url, &server.token(1, all_rights())).await;
    let mut watchers = vec![
        Client::join(&url, &server.token(2, all_rights())).await,
        Client::join(&url, &server.token(3, all_rights())).await,
    ];
    let (mic, mic_ssrc) = publisher.add_audio_track().await;
    let (camera, camera_ssrc) = publisher.add_video_track().await;
    let answer = publisher.offer_publish().await;
    assert_eq!(answer["type"], "answer", "publish refused: {answer}");
    assert!(publisher.publish.wait_connected(Duration::from_secs(10)).await, "publish connection did not connect");
    let senders = [tokio::spawn(send_tone(mic, mic_ssrc, 440.0, None)), tokio::spawn(send_vp8(camera, camera_ssrc))];
    let id = publisher.participant_id.clone();

    let mut first_video = Vec::new();
    for w in &mut watchers {
        first_video.push(w.expect_published("video").await);
    }
    let seeing = eventually(Duration::from_secs(10), || watchers.iter().all(|w| w.video_packets_from(&id) >= 10)).await;
    assert!(seeing, "the camera never reached the watchers");
    assert_eq!(server.metric("chorus_sfu_tracks"), 2.0);

    // Camera off: the transceiver goes inactive and the client offers again.
    let answer = publisher.set_publish_direction(RtpCodecKind::Video, RTCRtpTransceiverDirection::Inactive).await;
    assert_eq!(answer["type"], "answer", "{answer}");
    for (w, track) in watchers.iter_mut().zip(&first_video) {
        let gone = w.expect("track_unpublished", Duration::from_secs(5)).await.expect("track_unpublished");
        assert_eq!(gone["track_id"], track.as_str());
        assert_eq!(gone["participant_id"], id.as_str());
    }
    assert!(eventually(Duration::from_secs(5), || server.metric("chorus_sfu_tracks") == 1.0).await, "tracks gauge");
    assert_eq!(server.metric("chorus_sfu_participants"), 3.0, "a camera turned off is not a leave");
    let heard: Vec<usize> = watchers.iter().map(|w| w.packets_from(&id)).collect();
    let still =
        eventually(Duration::from_secs(5), || watchers.iter().zip(&heard).all(|(w, &h)| w.packets_from(&id) >= h + 25))
            .await;
    assert!(still, "the microphone stopped with the camera");

    // Camera on again: the same line sends, a new track is published and reaches the watchers.
    let seen: Vec<usize> = watchers.iter().map(|w| w.video_packets_from(&id)).collect();
    let answer = publisher.set_publish_direction(RtpCodecKind::Video, RTCRtpTransceiverDirection::Sendonly).await;
    assert_eq!(answer["type"], "answer", "{answer}");
    for (w, old) in watchers.iter_mut().zip(&first_video) {
        let track = w.expect_published("video").await;
        assert_ne!(&track, old, "turning the camera on publishes a new track");
    }
    assert!(eventually(Duration::from_secs(5), || server.metric("chorus_sfu_tracks") == 2.0).await, "tracks gauge");
    let again = eventually(Duration::from_secs(10), || {
        watchers.iter().zip(&seen).all(|(w, &s)| w.video_packets_from(&id) >= s + 10)
    })
    .await;
    assert!(again, "the camera did not reach the watchers again");
    for s in senders {
        s.abort();
    }
}
