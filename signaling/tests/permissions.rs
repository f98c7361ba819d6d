//! Rights in the voice token decide what a participant may publish.

mod common;

use common::*;
use signaling::Rights;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_without_speak_cannot_publish_audio() {
    let server = Server::start().await;
    let rights = Rights { speak: false, ..all_rights() };
    let mut c = Client::join(&server.url(), &server.token(1, rights)).await;
    c.add_audio_track().await;
    let reply = c.offer_publish().await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "forbidden");
    assert_eq!(server.metric("chorus_sfu_tracks"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_without_video_cannot_publish_video() {
    let server = Server::start().await;
    let rights = Rights { video: false, ..all_rights() };
    let mut c = Client::join(&server.url(), &server.token(1, rights)).await;
    c.add_video_track().await;
    let reply = c.offer_publish().await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "forbidden");
    assert_eq!(server.metric("chorus_sfu_tracks"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_without_video_may_still_publish_audio() {
    let server = Server::start().await;
    let rights = Rights { video: false, ..all_rights() };
    let mut c = Client::join(&server.url(), &server.token(1, rights)).await;
    c.add_audio_track().await;
    let reply = c.offer_publish().await;
    assert_eq!(reply["type"], "answer", "{reply}");
}
