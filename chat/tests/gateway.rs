//! The gateway over a real socket: READY, visibility, resume, heartbeats, slow consumers and bad
//! frames.

mod common;

use std::time::Duration;

use chat::ChatConfig;
use common::{Gateway, Next, TestServer, User};
use futures::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const QUIET: Duration = Duration::from_millis(300);

fn fast_heartbeat() -> ChatConfig {
    ChatConfig {
        heartbeat_interval: Duration::from_millis(1000),
        limits: chat::ratelimit::RateLimitConfig::unlimited(),
        ..ChatConfig::default()
    }
}

#[tokio::test]
async fn hello_announces_the_heartbeat_interval() {
    let srv = TestServer::start().await;
    let gw = Gateway::connect(&srv.ws_url()).await;
    assert_eq!(gw.hello["op"], 10);
    assert_eq!(gw.hello["d"]["heartbeat_interval_ms"], 41250);
}

#[tokio::test]
async fn ready_carries_user_guilds_channels_roles_and_read_states() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let g = srv.guild(&alice, "Guild").await;
    srv.join(&alice, &g, &bob).await;
    srv.send(&alice, &g.text, &format!("hi <@{}>", bob.id)).await;
    srv.send(&alice, &g.text, "second").await;

    let mut gw = srv.gateway(&bob).await;
    let ready = gw.expect("READY").await;
    assert_eq!(ready["s"], 1, "READY is the first dispatch");
    let d = &ready["d"];
    assert!(d["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(d["user"]["id"], bob.id.as_str());
    let guild = &d["guilds"][0];
    assert_eq!(guild["id"], g.id.as_str());
    assert_eq!(guild["member_count"], 2);
    assert_eq!(guild["channels"].as_array().map(Vec::len), Some(2));
    assert_eq!(guild["roles"][0]["name"], "@everyone");
    let rs =
        d["read_states"].as_array().expect("read states").iter().find(|r| r["channel_id"] == g.text.as_str()).cloned();
    let rs = rs.expect("read state of #general");
    assert_eq!(rs["unread_count"], 2);
    assert_eq!(rs["mention_count"], 1);
}

#[tokio::test]
async fn bad_token_closes_with_4004() {
    let srv = TestServer::start().await;
    let mut gw = Gateway::connect(&srv.ws_url()).await;
    gw.send(json!({"op": 2, "d": {"token": "nope"}})).await;
    assert_eq!(gw.closed().await, Some(4004));
}

#[tokio::test]
async fn logging_out_closes_the_gateway_sessions_of_that_token_only() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let (s, body) = srv
        .call(None, Method::POST, "/auth/login", Some(json!({"username": "alice", "password": "password123"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let other_login = User { token: body["token"].as_str().expect("token").to_string(), ..alice.clone() };
    let mut gw = srv.gateway(&alice).await;
    let ready = gw.expect("READY").await;
    let mut kept = srv.gateway(&other_login).await;
    kept.expect("READY").await;

    let (s, _) = srv.call(Some(&alice.token), Method::POST, "/auth/logout", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(gw.closed().await, Some(4004), "the logged-out token's socket is closed");

    // The session cannot be resumed, not even with the user's other token.
    let mut again = Gateway::connect(&srv.ws_url()).await;
    let session_id = ready["d"]["session_id"].clone();
    again.send(json!({"op": 6, "d": {"token": other_login.token, "session_id": session_id, "seq": 1}})).await;
    match again.next(Duration::from_secs(5)).await {
        Next::Frame(v) => assert_eq!(v["op"], 9, "INVALID_SESSION, got {v}"),
        other => panic!("expected INVALID_SESSION, got {other:?}"),
    }
    // The other login's socket still works.
    kept.send(json!({"op": 1, "d": {"seq": 1}})).await;
    match kept.next(Duration::from_secs(5)).await {
        Next::Frame(v) => assert_eq!(v["op"], 11, "heartbeat ack, got {v}"),
        other => panic!("other login's socket should stay open: {other:?}"),
    }
}

#[tokio::test]
async fn message_events_reach_members_but_not_strangers() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let carol = srv.user("carol").await;
    let g = srv.guild(&alice, "Guild").await;
    srv.join(&alice, &g, &bob).await;
    let mut gb = srv.gateway(&bob).await;
    gb.expect("READY").await;
    let mut gc = srv.gateway(&carol).await;
    gc.expect("READY").await;
    let m = srv.send(&alice, &g.text, "hello").await;
    let ev = gb.expect("MESSAGE_CREATE").await;
    assert_eq!(ev["d"]["id"], m["id"]);
    assert_eq!(ev["d"]["author"]["username"], "alice");
    assert!(!gc.drain(QUIET).await.contains(&"MESSAGE_CREATE".to_string()));
}

#[tokio::test]
async fn a_member_who_cannot_see_a_channel_gets_none_of_its_events() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let g = srv.guild(&alice, "Guild").await;
    srv.join(&alice, &g, &bob).await;
    let (_, secret) = srv.post(&alice, &format!("/guilds/{}/channels", g.id), json!({"name": "staff"})).await;
    let secret = secret["id"].as_str().expect("id").to_string();
    let (s, _) = srv
        .put(&alice, &format!("/channels/{secret}/permissions/{}", g.id), Some(json!({"kind": "role", "deny": "1024"})))
        .await;
    assert!(s.is_success());
    let mut gb = srv.gateway(&bob).await;
    gb.expect("READY").await;
    let m = srv.send(&alice, &secret, "secret plans").await;
    let mid = m["id"].as_str().expect("id");
    srv.put(&alice, &format!("/channels/{secret}/messages/{mid}/reactions/%F0%9F%91%8D"), None).await;
    srv.patch(&alice, &format!("/channels/{secret}/messages/{mid}"), json!({"content": "edited"})).await;
    srv.call(Some(&alice.token), reqwest::Method::POST, &format!("/channels/{secret}/typing"), None).await;
    srv.delete(&alice, &format!("/channels/{secret}/messages/{mid}")).await;
    // A visible event afterwards proves the connection was live the whole time.
    srv.send(&alice, &g.text, "public").await;
    let names: Vec<String> = gb.drain(QUIET).await.into_iter().filter(|n| n != "PRESENCE_UPDATE").collect();
    assert_eq!(names, vec!["MESSAGE_CREATE"], "only the public message");
}

#[tokio::test]
async fn hiding_a_channel_sends_channel_delete_to_those_who_lost_it() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let g = srv.guild(&alice, "Guild").await;
    srv.join(&alice, &g, &bob).await;
    let mut gb = srv.gateway(&bob).await;
    gb.expect("READY").await;
    srv.put(
        &alice,
        &format!("/channels/{}/permissions/{}", g.text, g.id),
        Some(json!({"kind": "role", "deny": "1024"})),
    )
    .await;
    let ev = gb.expect("CHANNEL_DELETE").await;
    assert_eq!(ev["d"]["id"], g.text.as_str());
}

#[tokio::test]
async fn resume_after_a_dropped_connection_replays_exactly_the_missed_events() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let g = srv.guild(&alice, "Guild").await;
    srv.join(&alice, &g, &bob).await;
    let mut gb = srv.gateway(&bob).await;
    let ready = gb.expect("READY").await;
    let session_id = ready["d"]["session_id"].as_str().expect("session").to_string();
    srv.send(&alice, &g.text, "before").await;
    gb.expect("MESSAGE_CREATE").await;
    let seen = gb.last_seq;
    drop(gb);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(srv.send(&alice, &g.text, &format!("missed {i}")).await["id"].clone());
    }
    let mut gb = Gateway::connect(&srv.ws_url()).await;
    gb.send(json!({"op": 6, "d": {"token": bob.token, "session_id": session_id, "seq": seen}})).await;
    let mut replayed = Vec::new();
    let mut seqs = Vec::new();
    let resumed_seq = loop {
        match gb.next(Duration::from_secs(5)).await {
            Next::Frame(v) if v["t"] == "RESUMED" => break v["s"].as_u64().expect("seq"),
            Next::Frame(v) => {
                seqs.push(v["s"].as_u64().expect("replayed frames are dispatches"));
                if v["t"] == "MESSAGE_CREATE" {
                    replayed.push(v["d"]["id"].clone());
                }
            }
            other => panic!("resume: {other:?}"),
        }
    };
    assert_eq!(replayed, missed, "every missed message, in order, nothing else");
    let expected: Vec<u64> = (seen + 1..resumed_seq).collect();
    assert_eq!(seqs, expected, "the replay starts right after the last seen sequence and has no gaps");
    // And the resumed connection is live.
    srv.send(&alice, &g.text, "after").await;
    assert_eq!(gb.expect("MESSAGE_CREATE").await["s"].as_u64(), Some(resumed_seq + 1));
}

#[tokio::test]
async fn resume_of_an_unknown_session_is_invalid_session_and_identify_still_works() {
    let srv = TestServer::start().await;
    let bob = srv.user("bob").await;
    let mut gw = Gateway::connect(&srv.ws_url()).await;
    gw.send(json!({"op": 6, "d": {"token": bob.token, "session_id": "nope", "seq": 3}})).await;
    match gw.next(Duration::from_secs(5)).await {
        Next::Frame(v) => {
            assert_eq!(v["op"], 9);
            assert_eq!(v["d"]["resumable"], false);
        }
        other => panic!("{other:?}"),
    }
    gw.send(json!({"op": 2, "d": {"token": bob.token}})).await;
    gw.expect("READY").await;
}

#[tokio::test]
async fn heartbeats_are_acknowledged() {
    let srv = TestServer::start().await;
    let bob = srv.user("bob").await;
    let mut gw = srv.gateway(&bob).await;
    gw.expect("READY").await;
    gw.send(json!({"op": 1, "d": {"seq": 1}})).await;
    match gw.next(Duration::from_secs(5)).await {
        Next::Frame(v) => assert_eq!(v["op"], 11),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_silent_client_is_closed_with_4009() {
    let srv = TestServer::with_config(fast_heartbeat()).await;
    let bob = srv.user("bob").await;
    let mut gw = srv.gateway(&bob).await;
    gw.expect("READY").await;
    assert_eq!(gw.closed().await, Some(4009));
}

#[tokio::test]
async fn unknown_opcode_closes_with_4001_and_garbage_with_4002() {
    let srv = TestServer::start().await;
    let bob = srv.user("bob").await;
    let mut gw = srv.gateway(&bob).await;
    gw.expect("READY").await;
    gw.send(json!({"op": 42, "d": {}})).await;
    assert_eq!(gw.closed().await, Some(4001));

    let mut gw = Gateway::connect(&srv.ws_url()).await;
    gw.ws.send(WsMessage::Text("{not json".into())).await.expect("send");
    assert_eq!(gw.closed().await, Some(4002));
}

#[tokio::test]
async fn oversized_frames_and_invalid_utf8_are_refused_and_others_keep_working() {
    let srv = TestServer::start().await;
    let bob = srv.user("bob").await;
    let mut big = Gateway::connect(&srv.ws_url()).await;
    let huge = json!({"op": 2, "d": {"token": "x".repeat(64 * 1024)}}).to_string();
    let _ = big.ws.send(WsMessage::Text(huge.into())).await;
    assert!(matches!(big.closed().await, Some(4002) | Some(1009) | None));

    let mut bad = Gateway::connect(&srv.ws_url()).await;
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xff, 0xfe, 0xfd],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    let _ = bad.ws.send(WsMessage::Frame(frame)).await;
    assert!(matches!(bad.closed().await, Some(4002) | Some(1007) | None));

    let mut ok = srv.gateway(&bob).await;
    ok.expect("READY").await;
}

#[tokio::test]
async fn too_many_frames_close_with_4008() {
    let mut config = ChatConfig { limits: chat::ratelimit::RateLimitConfig::unlimited(), ..ChatConfig::default() };
    config.limits.gateway_frames = chat::ratelimit::Rate { per_minute: 60, burst: 5 };
    let srv = TestServer::with_config(config).await;
    let bob = srv.user("bob").await;
    let mut gw = srv.gateway(&bob).await;
    gw.expect("READY").await;
    for _ in 0..10 {
        gw.send(json!({"op": 1, "d": null})).await;
    }
    assert_eq!(gw.closed().await, Some(4008));
}

#[tokio::test]
async fn presence_goes_online_and_offline_with_connections() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let g = srv.guild(&alice, "Guild").await;
    srv.join(&alice, &g, &bob).await;
    let mut ga = srv.gateway(&alice).await;
    ga.expect("READY").await;
    let mut gb = srv.gateway(&bob).await;
    gb.expect("READY").await;
    assert_eq!(presence_of(&mut ga, &bob.id).await, "online");
    gb.send(json!({"op": 3, "d": {"status": "dnd"}})).await;
    assert_eq!(presence_of(&mut ga, &bob.id).await, "dnd");
    drop(gb);
    assert_eq!(presence_of(&mut ga, &bob.id).await, "offline");
}

#[tokio::test]
async fn voice_states_reported_by_the_voice_side_reach_the_guild() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let g = srv.guild(&alice, "Guild").await;
    srv.join(&alice, &g, &bob).await;
    let mut gb = srv.gateway(&bob).await;
    gb.expect("READY").await;
    let id = |s: &str| s.parse::<chat::Id>().expect("id");
    srv.chat.voice_state(chat::voice::VoiceState {
        guild_id: Some(id(&g.id)),
        channel_id: Some(id(&g.voice)),
        user_id: id(&alice.id),
        self_mute: true,
        self_deaf: false,
        server_mute: false,
        server_deaf: false,
    });
    let ev = gb.expect("VOICE_STATE_UPDATE").await;
    assert_eq!(ev["d"]["channel_id"], g.voice.as_str());
    assert_eq!(ev["d"]["self_mute"], true);
    // A new connection sees it in READY.
    let mut again = srv.gateway(&bob).await;
    let ready: Value = again.expect("READY").await;
    assert_eq!(ready["d"]["guilds"][0]["voice_states"][0]["user_id"], alice.id.as_str());
}

#[tokio::test]
async fn joining_a_guild_delivers_guild_create_and_member_add() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let g = srv.guild(&alice, "Guild").await;
    let mut ga = srv.gateway(&alice).await;
    ga.expect("READY").await;
    let mut gb = srv.gateway(&bob).await;
    gb.expect("READY").await;
    srv.join(&alice, &g, &bob).await;
    assert_eq!(ga.expect("GUILD_MEMBER_ADD").await["d"]["user"]["id"], bob.id.as_str());
    let created = gb.expect("GUILD_CREATE").await;
    assert_eq!(created["d"]["id"], g.id.as_str());
    let presences = created["d"]["presences"].as_array().expect("presences, as in READY");
    assert!(presences.iter().any(|p| p["user_id"] == alice.id.as_str() && p["status"] == "online"), "{presences:?}");
    assert!(created["d"]["voice_states"].is_array());
    // Bob now follows the guild.
    srv.send(&alice, &g.text, "welcome").await;
    gb.expect("MESSAGE_CREATE").await;
}

/// The status in the next PRESENCE_UPDATE about `user`.
async fn presence_of(gw: &mut Gateway, user: &str) -> String {
    loop {
        let ev = gw.expect("PRESENCE_UPDATE").await;
        if ev["d"]["user_id"] == user {
            return ev["d"]["status"].as_str().unwrap_or_default().to_string();
        }
    }
}

#[tokio::test]
async fn a_member_who_joins_while_online_is_seen_online_by_the_guild_at_once() {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let g = srv.guild(&alice, "Guild").await;
    let mut ga = srv.gateway(&alice).await;
    ga.expect("READY").await;
    // Bob is online (in no guild of Alice's yet), then joins hers.
    let mut gb = srv.gateway(&bob).await;
    gb.expect("READY").await;
    srv.join(&alice, &g, &bob).await;
    assert_eq!(presence_of(&mut ga, &bob.id).await, "online");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_resumes_without_loss() {
    let config = ChatConfig {
        limits: chat::ratelimit::RateLimitConfig::unlimited(),
        gateway_write_timeout: Duration::from_millis(500),
        hub: chat::gateway::hub::HubConfig { queue_len: 8, replay_len: 5000, ..Default::default() },
        ..ChatConfig::default()
    };
    let srv = TestServer::with_socket_send_buffer(config, Some(8192)).await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let g = srv.guild(&alice, "Guild").await;
    srv.join(&alice, &g, &bob).await;

    // Bob's socket has a tiny receive buffer and Bob stops reading after READY.
    let addr = srv.base.trim_start_matches("http://").parse().expect("addr");
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = sock.connect(addr).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(srv.ws_url(), tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
        .expect("handshake");
    let mut gb = Gateway { ws, hello: Value::Null, last_seq: 0 };
    gb.next(Duration::from_secs(5)).await; // HELLO
    gb.send(json!({"op": 2, "d": {"token": bob.token}})).await;
    let ready = gb.expect("READY").await;
    let session_id = ready["d"]["session_id"].as_str().expect("session").to_string();

    const N: usize = 200;
    let body = "x".repeat(3990);
    let mut sent = Vec::new();
    for chunk in 0..N / 20 {
        let posts = (0..20).map(|i| {
            let content = format!("{} {body}", chunk * 20 + i);
            let srv = &srv;
            let alice = &alice;
            let g = &g;
            async move { srv.send(alice, &g.text, &content).await["id"].as_str().map(str::to_string) }
        });
        sent.extend(futures::future::join_all(posts).await.into_iter().flatten());
    }
    assert_eq!(sent.len(), N);

    // Now Bob reads what reached him before the cut-off; the connection must end.
    let mut received = std::collections::BTreeMap::new();
    loop {
        match gb.next(Duration::from_secs(10)).await {
            Next::Frame(v) if v["t"] == "MESSAGE_CREATE" => {
                received.insert(v["s"].as_u64().expect("seq"), v["d"]["id"].as_str().expect("id").to_string());
            }
            Next::Frame(_) => {}
            Next::Closed(_) => break,
            Next::Timeout => panic!("a client that stopped reading was never cut off"),
        }
    }
    assert!(received.len() < N, "the cut-off happened before everything was delivered");
    let last = gb.last_seq;

    // The replay can itself outrun a slow reader on a loaded machine: cut off again (4010), the client
    // resumes again from the last sequence it saw, as a real client does.
    let mut last = last;
    'resume: for attempt in 0..5 {
        let mut again = Gateway::connect(&srv.ws_url()).await;
        again.send(json!({"op": 6, "d": {"token": bob.token, "session_id": session_id, "seq": last}})).await;
        loop {
            match again.next(Duration::from_secs(10)).await {
                Next::Frame(v) if v["t"] == "RESUMED" => break 'resume,
                Next::Frame(v) if v["t"] == "MESSAGE_CREATE" => {
                    let seq = v["s"].as_u64().expect("seq");
                    received.insert(seq, v["d"]["id"].as_str().expect("id").to_string());
                    last = last.max(seq);
                }
                Next::Frame(_) => {}
                Next::Closed(Some(4010)) if attempt < 4 => continue 'resume,
                other => panic!("resume after cut-off: {other:?}"),
            }
        }
    }
    let mut got: Vec<String> = received.into_values().collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "every message arrived exactly once across the cut-off");
}
