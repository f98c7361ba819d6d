//! Self mute, server mute, voice states to chat, and removal of a silent peer.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use signaling::Rights;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn self_mute_stops_forwarding_and_reaches_chat_as_voice_state() {
    let server = Server::start().await;
    let url = server.url();
    let mut talker = Client::join(&url, &server.token(1, all_rights())).await;
    let mut listener = Client::join(&url, &server.token(2, all_rights())).await;
    let tone = talker.publish_tone(500.0).await;
    let id = talker.participant_id.clone();
    assert!(eventually(Duration::from_secs(10), || listener.packets_from(&id) >= 20).await);

    talker.send(json!({"type":"mute","muted":true}));
    let m = listener.expect("mute", Duration::from_secs(5)).await.expect("mute event");
    assert_eq!(m["participant_id"], id.as_str());
    assert_eq!(m["muted"], true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frozen = listener.packets_from(&id);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(listener.packets_from(&id) <= frozen + 1, "muted audio still forwarded");
    let states = server.events.0.lock().unwrap().clone();
    assert!(
        states.iter().any(|s| s.user_id == 1 && s.self_mute && s.channel_id == Some(CHANNEL)),
        "chat never heard of the mute: {states:?}"
    );

    talker.send(json!({"type":"mute","muted":false}));
    listener.expect("mute", Duration::from_secs(5)).await.expect("unmute event");
    let resumed = listener.packets_from(&id);
    assert!(eventually(Duration::from_secs(5), || listener.packets_from(&id) >= resumed + 20).await);
    tone.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_mute_needs_the_right_and_silences_the_target() {
    let server = Server::start().await;
    let url = server.url();
    let mut talker = Client::join(&url, &server.token(1, all_rights())).await;
    let mut plain = Client::join(&url, &server.token(2, all_rights())).await;
    let moderator_rights = Rights { mute_members: true, ..all_rights() };
    let moderator = Client::join(&url, &server.token(3, moderator_rights)).await;
    let tone = talker.publish_tone(500.0).await;
    let id = talker.participant_id.clone();
    assert!(eventually(Duration::from_secs(10), || plain.packets_from(&id) >= 20).await);

    plain.send(json!({"type":"server_mute","participant_id":id,"muted":true}));
    let e = plain.expect("error", Duration::from_secs(5)).await.unwrap();
    assert_eq!(e["code"], "forbidden");

    moderator.send(json!({"type":"server_mute","participant_id":id,"muted":true}));
    let m = plain.expect("mute", Duration::from_secs(5)).await.unwrap();
    assert_eq!(m["server_muted"], true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frozen = moderator.packets_from(&id);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(moderator.packets_from(&id) <= frozen + 1);
    tone.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_that_closes_its_connections_is_removed_at_once_as_peer_closed() {
    // A long peer timeout: the removal must come from the closed connections, not from silence.
    let server = Server::start_with(|c| c.sfu.peer_timeout = Duration::from_secs(60)).await;
    let url = server.url();
    let mut gone = Client::join(&url, &server.token(1, all_rights())).await;
    let mut stays = Client::join(&url, &server.token(2, all_rights())).await;
    let tone = gone.publish_tone(500.0).await;
    let gone_id = gone.participant_id.clone();
    assert!(eventually(Duration::from_secs(10), || stays.packets_from(&gone_id) >= 10).await);
    // The client closes its peer connections without `leave`; the signaling socket stays.
    tone.abort();
    gone.publish.pc.close().await.unwrap();
    gone.subscribe.pc.close().await.unwrap();
    let e = gone.expect("error", Duration::from_secs(10)).await.expect("told");
    assert_eq!(e["code"], "peer_closed", "{e}");
    let left = stays.expect("participant_left", Duration::from_secs(5)).await.expect("others told");
    assert_eq!(left["participant_id"], gone_id.as_str());
    assert!(eventually(Duration::from_secs(3), || server.metric("chorus_sfu_tracks") == 0.0).await);
    assert!(
        eventually(Duration::from_secs(2), || {
            server.events.0.lock().unwrap().iter().any(|s| s.user_id == 1 && s.channel_id.is_none())
        })
        .await,
        "chat must hear that the user left"
    );
}
