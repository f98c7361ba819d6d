//! Untrusted input on the `/voice` socket and at the SFU's UDP ports.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn joined_ws(server: &Server) -> Ws {
    let mut ws = Ws::connect(&server.url()).await;
    ws.send(json!({"type":"join","token": server.token(1, all_rights())})).await;
    ws.expect("joined").await;
    ws
}

async fn error_code(ws: &mut Ws) -> String {
    let m = ws.expect("error").await;
    assert!(m["message"].as_str().is_some_and(|s| !s.is_empty()));
    m["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn too_many_connections_from_one_address_get_429_with_retry_after() {
    let server =
        Server::start_with(|c| c.connect_limit = Some(signaling::ConnectLimit { per_second: 1, burst: 2 })).await;
    let _a = Ws::connect(&server.url()).await;
    let _b = Ws::connect(&server.url()).await;
    let refused = tokio_tungstenite::connect_async(server.url()).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(resp)) = refused else {
        panic!("the third connection within a second must be refused");
    };
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    let body: serde_json::Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["code"], "rate_limited");
}

#[tokio::test]
async fn malformed_sdp_gets_bad_sdp_error() {
    let server = Server::start().await;
    let mut ws = joined_ws(&server).await;
    ws.send(json!({"type":"offer","sdp":"this is not sdp"})).await;
    assert_eq!(error_code(&mut ws).await, "bad_sdp");
    ws.send(json!({"type":"answer","sdp":"v=0\r\nnonsense"})).await;
    assert_eq!(error_code(&mut ws).await, "bad_sdp");
    // The session survives bad input.
    ws.send(json!({"type":"ping"})).await;
    ws.expect("pong").await;
}

#[tokio::test]
async fn unknown_type_and_broken_json_get_clear_errors() {
    let server = Server::start().await;
    let mut ws = joined_ws(&server).await;
    ws.send(json!({"type":"teleport"})).await;
    assert_eq!(error_code(&mut ws).await, "unknown_type");
    ws.send_raw("{not json".into()).await;
    assert_eq!(error_code(&mut ws).await, "bad_json");
    ws.send(json!({"type":"subscribe"})).await;
    assert_eq!(error_code(&mut ws).await, "bad_message");
}

#[tokio::test]
async fn oversized_frame_gets_frame_too_large_error() {
    let server = Server::start().await;
    let mut ws = joined_ws(&server).await;
    let big = "x".repeat(200 * 1024);
    ws.send(json!({"type":"offer","sdp":big})).await;
    assert_eq!(error_code(&mut ws).await, "frame_too_large");
}

#[tokio::test]
async fn messages_before_join_get_not_joined_error() {
    let server = Server::start().await;
    let mut ws = Ws::connect(&server.url()).await;
    ws.send(json!({"type":"offer","sdp":"v=0"})).await;
    assert_eq!(error_code(&mut ws).await, "not_joined");
}

async fn join_error(server: &Server, msg: serde_json::Value) -> String {
    let mut ws = Ws::connect(&server.url()).await;
    ws.send(msg).await;
    let code = error_code(&mut ws).await;
    // The server closes the socket after refusing a token.
    assert!(ws.recv().await.is_none(), "socket should close");
    code
}

#[tokio::test]
async fn invalid_expired_forged_and_wrong_channel_tokens_are_refused() {
    let server = Server::start().await;
    assert_eq!(join_error(&server, json!({"type":"join","token":"garbage"})).await, "invalid_token");
    let forger = signaling::VoiceTokens::new(b"not-the-secret");
    let grant = signaling::VoiceGrant { user_id: 1, guild_id: None, channel_id: CHANNEL, rights: all_rights() };
    let (forged, _) = forger.issue(&grant, Duration::from_secs(60)).unwrap();
    assert_eq!(join_error(&server, json!({"type":"join","token":forged})).await, "invalid_token");
    let (expired, _) = server.signaling.tokens().issue(&grant, Duration::ZERO).unwrap();
    assert_eq!(join_error(&server, json!({"type":"join","token":expired})).await, "token_expired");
    let token = server.token(1, all_rights());
    assert_eq!(join_error(&server, json!({"type":"join","token":token,"channel_id":"999"})).await, "wrong_channel");
    assert_eq!(server.metric("chorus_sfu_participants"), 0.0);
}

/// Random bytes, truncated STUN/DTLS/RTP, and well-formed STUN with unknown ufrags.
fn garbage(i: usize) -> Vec<u8> {
    let mut r: Vec<u8> = (0..(i % 300) + 1).map(|_| rand::random()).collect();
    match i % 5 {
        0 => {}
        1 => r[0] = 0x00, // STUN-ish, truncated
        2 => r[0] = 22,   // DTLS handshake byte
        3 => r[0] = 0x80, // RTP version 2
        _ => {
            let user = format!("nobody{i}:x");
            let mut v = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
            v.extend((0..12).map(|_| rand::random::<u8>()));
            let mut attr = vec![0x00, 0x06, 0, user.len() as u8];
            attr.extend(user.as_bytes());
            while attr.len() % 4 != 0 {
                attr.push(0);
            }
            v[3] = attr.len() as u8;
            v.extend(attr);
            r = v;
        }
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_datagram_flood_does_not_disturb_a_live_call() {
    let server = Server::start().await;
    let url = server.url();
    let mut talker = Client::join(&url, &server.token(1, all_rights())).await;
    let listener = Client::join(&url, &server.token(2, all_rights())).await;
    let tone = talker.publish_tone(550.0).await;
    let id = talker.participant_id.clone();
    assert!(eventually(Duration::from_secs(10), || listener.packets_from(&id) >= 25).await);

    let before = listener.packets_from(&id);
    let ports = server.signaling.sfu().udp_addrs();
    assert!(!ports.is_empty());
    let flood = tokio::task::spawn_blocking(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = std::time::Instant::now();
        let mut i = 0;
        while start.elapsed() < Duration::from_secs(2) {
            for p in &ports {
                let _ = sock.send_to(&garbage(i), p);
            }
            i += 1;
            if i % 200 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        i
    });
    let sent = flood.await.unwrap();
    let during = listener.packets_from(&id) - before;
    // 2 s of 20 ms packets = 100; allow scheduling slack, not a disturbed call.
    assert!(sent > 10_000, "flood too small: {sent}");
    assert!(during >= 90, "only {during} audio packets arrived during the flood");
    let pcm = listener.decoded_from(&id);
    let f = dominant_frequency(&pcm).unwrap();
    assert!((f - 550.0).abs() <= 20.0, "tone became {f} Hz");
    assert!(server.metric("chorus_sfu_dropped_datagrams_total") > 10_000.0);
    tone.abort();
}
