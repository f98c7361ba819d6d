//! ICE restarts on both connections keep a call going (the reconnect path after a
//! network change).

mod common;

use std::time::Duration;

use common::*;
use rtc::peer_connection::configuration::RTCOfferOptions;
use serde_json::json;

fn ufrag(sdp: &str) -> String {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).unwrap_or_default().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ice_restart_on_both_connections_keeps_audio_flowing() {
    let server = Server::start().await;
    let url = server.url();
    let mut talker = Client::join(&url, &server.token(1, all_rights())).await;
    let listener = Client::join(&url, &server.token(2, all_rights())).await;
    let tone = talker.publish_tone(600.0).await;
    let id = talker.participant_id.clone();
    assert!(eventually(Duration::from_secs(10), || listener.packets_from(&id) >= 20).await);

    // Subscribe side: the client asks, the server offers with new credentials.
    let before = ufrag(&listener.subscribe.pc.remote_description().await.unwrap().sdp);
    listener.send(json!({"type":"ice_restart"}));
    let mut renewed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = ufrag(&listener.subscribe.pc.remote_description().await.unwrap().sdp);
        if now != before {
            renewed = true;
            break;
        }
    }
    assert!(renewed, "the server did not restart ICE on the subscribe connection");

    // Publish side: the client offers with new credentials.
    let offer = talker.publish.pc.create_offer(Some(RTCOfferOptions { ice_restart: true })).await.unwrap();
    talker.publish.pc.set_local_description(offer).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sdp = talker.publish.pc.local_description().await.unwrap().sdp;
    let old_answer_ufrag = ufrag(&talker.publish.pc.remote_description().await.unwrap().sdp);
    talker.send(json!({"type":"offer","sdp":sdp}));
    let answer = talker.expect("answer", Duration::from_secs(5)).await.expect("answer to the restart");
    assert_ne!(ufrag(answer["sdp"].as_str().unwrap()), old_answer_ufrag);

    let mark = listener.packets_from(&id);
    assert!(
        eventually(Duration::from_secs(10), || listener.packets_from(&id) >= mark + 50).await,
        "audio stopped after the ICE restarts ({} packets since)",
        listener.packets_from(&id) - mark
    );
    tone.abort();
}
