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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_moderators_server_deafen_stops_media_to_the_member_and_mute_silences_them() {
    let server = Server::start().await;
    let url = server.url();
    let mut talker = Client::join(&url, &server.token(1, all_rights())).await;
    let mut listener = Client::join(&url, &server.token(2, all_rights())).await;
    let tone = talker.publish_tone(500.0).await;
    let id = talker.participant_id.clone();
    assert!(eventually(Duration::from_secs(10), || listener.packets_from(&id) >= 20).await);

    // Deafen the listener (guild 1 is the tokens' guild): nothing reaches it any more.
    let order = |user_id, action| signaling::ModeratorOrder { user_id, guild_id: 1, action };
    server.signaling.moderate(order(2, signaling::Moderation::Mute { muted: false, deafened: true }));
    let listener_id = listener.participant_id.clone();
    let deafened = |m: &serde_json::Value| m["participant_id"] == listener_id.as_str() && m["server_deafened"] == true;
    assert!(mute_event(&mut listener, deafened).await, "the deafen is announced");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frozen = listener.packets_from(&id);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(listener.packets_from(&id) <= frozen + 1, "a deafened member still receives audio");
    let deaf = server.events.0.lock().unwrap().iter().any(|s| s.user_id == 2 && s.server_deaf);
    assert!(deaf, "chat hears of the deafen as a voice state");

    // An order about another guild's call changes nothing; then undeafen, and mute the talker.
    server.signaling.moderate(signaling::ModeratorOrder {
        user_id: 2,
        guild_id: 99,
        action: signaling::Moderation::Disconnect,
    });
    server.signaling.moderate(order(2, signaling::Moderation::Mute { muted: false, deafened: false }));
    server.signaling.moderate(order(1, signaling::Moderation::Mute { muted: true, deafened: false }));
    let talker_muted = |m: &serde_json::Value| m["participant_id"] == id.as_str() && m["server_muted"] == true;
    assert!(mute_event(&mut listener, talker_muted).await, "the room hears of the talker's server mute");
    assert!(
        eventually(Duration::from_secs(5), || server
            .events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.user_id == 1 && s.server_mute))
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = listener.packets_from(&id);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(listener.packets_from(&id) <= frozen + 1, "a server-muted talker is still forwarded");
    tone.abort();
}

/// Waits for a `mute` message that `wanted` accepts (an order may announce a step before it).
async fn mute_event(client: &mut Client, wanted: impl Fn(&serde_json::Value) -> bool) -> bool {
    while let Some(m) = client.expect("mute", Duration::from_secs(5)).await {
        if wanted(&m) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_moved_member_is_told_the_channel_and_leaves_the_room() {
    let server = Server::start().await;
    let url = server.url();
    let mut moved = Client::join(&url, &server.token(1, all_rights())).await;
    let mut stays = Client::join(&url, &server.token(2, all_rights())).await;
    let moved_id = moved.participant_id.clone();
    server.signaling.moderate(signaling::ModeratorOrder {
        user_id: 1,
        guild_id: 1,
        action: signaling::Moderation::Move { channel_id: 777 },
    });
    let m = moved.expect("moved", Duration::from_secs(5)).await.expect("the client hears where to go");
    assert_eq!(m["channel_id"], "777");
    let left = stays.expect("participant_left", Duration::from_secs(5)).await.expect("the room sees them leave");
    assert_eq!(left["participant_id"], moved_id.as_str());
    let states = server.events.0.lock().unwrap().clone();
    assert!(states.iter().any(|s| s.user_id == 1 && s.channel_id.is_none()), "{states:?}");
}
