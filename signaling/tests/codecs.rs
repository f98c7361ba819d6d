//! Codecs on the subscribe side, with independent peers (webrtc-rs): each subscribe media line offers
//! only the codecs its publisher negotiated (this publisher offers VP8 alone), and a receiver that
//! cannot decode the track's codec is told so while the rest of its call goes on.

mod common;

use std::time::Duration;

use common::*;

/// The media sections of one kind (`audio`, `video`), each from its `m=` line on.
fn sections_of<'a>(sdp: &'a str, kind: &str) -> Vec<&'a str> {
    sdp.split("\nm=").skip(1).filter(|s| s.starts_with(kind)).collect()
}

/// The codec names of a section's `a=rtpmap` lines.
fn codecs_in(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|r| r.split_once(' ').and_then(|(_, c)| c.split('/').next()).map(str::to_owned))
        .collect()
}

/// A publisher sending a 440 Hz tone and VP8 video; returns it with its sender tasks.
async fn publisher_with_camera(server: &Server) -> (Client, Vec<tokio::task::JoinHandle<()>>) {
    let mut publisher = Client::join(&server.url(), &server.token(1, all_rights())).await;
    let (mic, mic_ssrc) = publisher.add_audio_track().await;
    let (camera, camera_ssrc) = publisher.add_video_track().await;
    let answer = publisher.offer_publish().await;
    assert_eq!(answer["type"], "answer", "publish refused: {answer}");
    assert!(publisher.publish.wait_connected(Duration::from_secs(10)).await, "publish connection did not connect");
    let senders =
        vec![tokio::spawn(send_tone(mic, mic_ssrc, 440.0, None)), tokio::spawn(send_vp8(camera, camera_ssrc))];
    (publisher, senders)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscribe_line_offers_only_the_codec_its_publisher_negotiated() {
    let server = Server::start().await;
    let mut watcher = Client::join(&server.url(), &server.token(2, all_rights())).await;
    let (publisher, senders) = publisher_with_camera(&server).await;
    watcher.expect_published("video").await;
    let id = publisher.participant_id.clone();
    assert!(
        eventually(Duration::from_secs(10), || watcher.video_packets_from(&id) >= 10).await,
        "the camera never reached the watcher"
    );
    let sdp = watcher.subscribe_remote_sdp().await;
    let video = sections_of(&sdp, "video");
    assert_eq!(video.len(), 1, "{sdp}");
    assert_eq!(codecs_in(video[0]), ["VP8", "rtx"], "the VP8 track's line offers VP8 and its retransmission:\n{sdp}");
    let audio = sections_of(&sdp, "audio");
    assert_eq!(audio.len(), 1, "{sdp}");
    assert_eq!(codecs_in(audio[0]), ["opus"], "{sdp}");
    for s in senders {
        s.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_cannot_decode_the_tracks_codec_is_told_and_still_hears_the_call() {
    let server = Server::start().await;
    let mut watcher = Client::join_without_vp8(&server.url(), &server.token(2, all_rights())).await;
    let (publisher, senders) = publisher_with_camera(&server).await;
    let video_track = watcher.expect_published("video").await;
    let told = watcher.expect("track_unsupported", Duration::from_secs(10)).await.expect("track_unsupported");
    assert_eq!(told["track_id"], video_track.as_str(), "{told}");
    assert_eq!(told["participant_id"], publisher.participant_id.as_str(), "{told}");
    assert_eq!(told["codec"], "VP8", "{told}");

    let id = publisher.participant_id.clone();
    let heard = eventually(Duration::from_secs(10), || {
        dominant_frequency(&watcher.decoded_from(&id)).is_some_and(|f| (f - 440.0).abs() <= 10.0)
    })
    .await;
    assert!(heard, "the publisher's tone did not decode at the receiver without VP8");
    assert_eq!(watcher.video_packets_from(&id), 0, "video it cannot decode was sent anyway");
    assert!(
        watcher.expect("track_unsupported", Duration::from_millis(500)).await.is_none(),
        "told once per track, not per packet"
    );
    for s in senders {
        s.abort();
    }
}
