//! A dropped `/voice` socket resumes within the window; later it must join again.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_socket_resumes_its_session_and_gets_queued_events() {
    let server = Server::start().await;
    let mut ws = Ws::connect(&server.url()).await;
    ws.send(json!({"type":"join","token":server.token(1, all_rights())})).await;
    let joined = ws.expect("joined").await;
    let session = joined["session_id"].as_str().unwrap().to_owned();
    let me = joined["participant_id"].clone();
    drop(ws);

    // Someone joins while the socket is down.
    let mut other = Ws::connect(&server.url()).await;
    other.send(json!({"type":"join","token":server.token(2, all_rights())})).await;
    let other_joined = other.expect("joined").await;
    assert_eq!(
        other_joined["participants"].as_array().unwrap().len(),
        1,
        "the parked participant is still in the room"
    );

    let mut ws = Ws::connect(&server.url()).await;
    ws.send(json!({"type":"resume","session_id":session})).await;
    let resumed = ws.expect("resumed").await;
    assert_eq!(resumed["participant_id"], me);
    let queued = ws.expect("participant_joined").await;
    assert_eq!(queued["participant_id"], other_joined["participant_id"]);
    ws.send(json!({"type":"ping"})).await;
    ws.expect("pong").await;
    assert_eq!(server.metric("chorus_sfu_participants"), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_window_the_session_is_gone_and_a_fresh_join_works() {
    let server = Server::start_with(|c| c.resume_window = Some(Duration::from_millis(300))).await;
    let mut ws = Ws::connect(&server.url()).await;
    ws.send(json!({"type":"join","token":server.token(1, all_rights())})).await;
    let session = ws.expect("joined").await["session_id"].as_str().unwrap().to_owned();
    drop(ws);
    assert!(eventually(Duration::from_secs(5), || server.metric("chorus_sfu_participants") == 0.0).await);
    let left = eventually(Duration::from_secs(2), || {
        server.events.0.lock().unwrap().iter().any(|s| s.user_id == 1 && s.channel_id.is_none())
    })
    .await;
    assert!(left, "chat must hear that the user left");

    let mut ws = Ws::connect(&server.url()).await;
    ws.send(json!({"type":"resume","session_id":session})).await;
    assert_eq!(ws.expect("error").await["code"], "unknown_session");
    ws.send(json!({"type":"join","token":server.token(1, all_rights())})).await;
    ws.expect("joined").await;
}
