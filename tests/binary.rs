//! The real `chorus` binary: zero-configuration start, health and metrics, durability across
//! `kill -9`, graceful shutdown on SIGTERM, and voice grants the signaling side accepts.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

mod common;

use common::*;

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start(dir.path(), free_port()).await;
    let h: Value = reqwest::get(format!("{}/healthz", c.base)).await.expect("healthz").json().await.expect("json");
    assert_eq!(h, json!({"status": "ok"}));
    register(&c, "alice").await;
    let m = reqwest::get(format!("{}/metrics", c.base)).await.expect("metrics").text().await.expect("text");
    let rest = r#"chorus_chat_http_requests_total{method="POST",route="/api/v1/auth/register",status="2xx"} 1"#;
    assert!(m.contains(rest), "REST requests counted by route template");
    assert!(m.contains("process_resident_memory_bytes"), "process metrics");
    assert!(m.contains("chorus_gateway_connections"), "gateway metrics");
    assert!(m.contains("chorus_store_op_duration_seconds_bucket{backend=\"sqlite\",op=\"ping\""), "store metrics");
    assert!(dir.path().join("chorus.db").exists(), "SQLite file created in the data dir");
    let doc: Value =
        reqwest::get(format!("{}/api/openapi.json", c.base)).await.expect("openapi").json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/channels/{channel_id}/messages"]["post"].is_object(), "documents the routes");
}

#[tokio::test]
async fn wrong_methods_and_non_upgrades_get_the_contracts_json_errors_on_every_route() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start(dir.path(), free_port()).await;
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics", "/api/openapi.json", "/voice", "/gateway"] {
        let r = http.post(format!("{}{path}", c.base)).send().await.expect("post");
        assert_eq!(r.status(), 405, "{path}");
        let v: Value = r.json().await.unwrap_or_else(|e| panic!("{path}: 405 body is not JSON: {e}"));
        assert_eq!(v["code"], "method_not_allowed", "{path}: {v}");
    }
    for path in ["/voice", "/gateway"] {
        let r = http.get(format!("{}{path}", c.base)).send().await.expect("get");
        assert_eq!(r.status(), 400, "{path}");
        let v: Value = r.json().await.unwrap_or_else(|e| panic!("{path}: 400 body is not JSON: {e}"));
        assert_eq!(v["code"], "invalid_upgrade", "{path}: {v}");
    }
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut c = Chorus::start(dir.path(), port).await;
    let token = register(&c, "alice").await;
    let (_, g) = c.api(Some(&token), reqwest::Method::POST, "/guilds", Some(json!({"name": "G"}))).await;
    let channel = g["channels"][0]["id"].as_str().expect("channel").to_string();
    let mut acked = Vec::new();
    for i in 0..200 {
        let (s, m) = c
            .api(
                Some(&token),
                reqwest::Method::POST,
                &format!("/channels/{channel}/messages"),
                Some(json!({"content": format!("m{i}")})),
            )
            .await;
        assert_eq!(s, 201);
        acked.push(m["id"].as_str().expect("id").to_string());
    }
    c.kill9();

    let c = Chorus::start(dir.path(), port).await;
    let (s, _) = c
        .api(None, reqwest::Method::POST, "/auth/login", Some(json!({"username": "alice", "password": "password123"})))
        .await;
    assert_eq!(s, 200);
    let mut found = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let q = before.as_ref().map(|b| format!("&before={b}")).unwrap_or_default();
        let (s, page) = c
            .api(Some(&token), reqwest::Method::GET, &format!("/channels/{channel}/messages?limit=100{q}"), None)
            .await;
        assert_eq!(s, 200, "the old token still works after restart");
        let page = page.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        for m in &page {
            found.push(m["id"].as_str().expect("id").to_string());
        }
        before = page.last().and_then(|m| m["id"].as_str()).map(str::to_string);
    }
    found.reverse();
    assert_eq!(found, acked, "all 200 acknowledged messages, in order");
}

#[tokio::test]
async fn sigterm_tells_gateway_clients_to_reconnect_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = Chorus::start(dir.path(), free_port()).await;
    let token = register(&c, "alice").await;
    let url = format!("{}/gateway", c.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    use futures::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(json!({"op": 2, "d": {"token": token}}).to_string().into()))
        .await
        .expect("identify");
    let mut saw_ready = false;
    while let Some(Ok(msg)) = ws.next().await {
        if msg.to_text().unwrap_or_default().contains("\"READY\"") {
            saw_ready = true;
            break;
        }
    }
    assert!(saw_ready);
    let pid = c.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let mut saw_reconnect = false;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if msg.to_text().is_ok_and(|t| serde_json::from_str::<Value>(t).is_ok_and(|v| v["op"] == 7)) {
            saw_reconnect = true;
        }
    }
    assert!(saw_reconnect, "op 7 RECONNECT before the server went away");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = c.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "chorus did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn voice_grant_is_a_token_the_signaling_side_accepts_and_joined_carries_turn_credentials() {
    let dir = tempfile::tempdir().expect("dir");
    let turn = ["--turn-url", "turn:127.0.0.1:3478,turns:127.0.0.1:5349", "--turn-secret", "0123456789abcdef-turn"];
    let c = Chorus::start_with(dir.path(), free_port(), &turn).await;
    let token = register(&c, "alice").await;
    let (_, g) = c.api(Some(&token), reqwest::Method::POST, "/guilds", Some(json!({"name": "G"}))).await;
    let voice = voice_channel_id(&g);
    let (s, grant) = c.api(Some(&token), reqwest::Method::POST, &format!("/channels/{voice}/voice"), None).await;
    assert_eq!(s, 200, "{grant}");
    assert!(grant["endpoint"].as_str().is_some_and(|e| e.starts_with("ws://") && e.ends_with("/voice")));
    assert!(grant["expires_at"].as_str().is_some());
    let secret = std::fs::read(dir.path().join("voice-secret")).expect("secret");
    let tokens = signaling::token::VoiceTokens::new(&secret);
    let claims = tokens
        .verify(grant["token"].as_str().expect("token"), Some(voice.parse().expect("id")))
        .expect("signaling accepts chat's grant");
    assert!(claims.rights.speak && claims.rights.video, "the owner may speak and show video");

    // The same binary serves /voice: joining with the grant reaches the guild as a voice state.
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let gw_url = format!("{}/gateway", c.base.replace("http://", "ws://"));
    let (mut gw, _) = tokio_tungstenite::connect_async(gw_url).await.expect("gateway");
    gw.send(Message::Text(json!({"op": 2, "d": {"token": token}}).to_string().into())).await.expect("identify");
    let (mut voice_ws, _) =
        tokio_tungstenite::connect_async(grant["endpoint"].as_str().expect("endpoint")).await.expect("voice");
    voice_ws
        .send(Message::Text(json!({"type": "join", "token": grant["token"]}).to_string().into()))
        .await
        .expect("join");
    let joined = loop {
        match tokio::time::timeout(Duration::from_secs(10), voice_ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["type"] == "joined" {
                    break v;
                }
                assert_ne!(v["type"], "error", "{v}");
            }
            other => panic!("no joined: {other:?}"),
        }
    };
    assert!(joined["participant_id"].is_string() || joined["participant_id"].is_number());
    // TURN REST credentials: `expiry:participant`, checked with the shared secret alone (as coturn does).
    let ice = &joined["ice_servers"][0];
    assert_eq!(ice["urls"], json!(["turn:127.0.0.1:3478", "turns:127.0.0.1:5349"]));
    let username = ice["username"].as_str().expect("username");
    let (expiry, participant) = username.split_once(':').expect("expiry:participant");
    assert_eq!(participant, joined["participant_id"].as_str().expect("id"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let expiry: u64 = expiry.parse().expect("unix seconds");
    assert!(expiry > now + 86_000 && expiry <= now + 86_400 + 5, "a day by default: {expiry} vs {now}");
    let expected = signaling::ice::turn_rest_credential(b"0123456789abcdef-turn", username);
    assert_eq!(ice["credential"].as_str(), Some(expected.as_str()));
    let state = loop {
        match tokio::time::timeout(Duration::from_secs(10), gw.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["t"] == "VOICE_STATE_UPDATE" {
                    break v;
                }
            }
            other => panic!("no VOICE_STATE_UPDATE: {other:?}"),
        }
    };
    assert_eq!(state["d"]["channel_id"], voice.as_str());
}

#[tokio::test]
async fn web_client_pages_carry_a_csp_without_inline_scripts() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start(dir.path(), free_port()).await;
    for path in ["/", "/invite/abc123", "/channels/1/2"] {
        let r = reqwest::get(format!("{}{path}", c.base)).await.expect("page");
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(r.text().await.expect("html").contains("<html"), "{path} serves index.html");
    }
    let r = reqwest::get(format!("{}/assets/%2e%2e/Cargo.toml", c.base)).await.expect("asset");
    assert_eq!(r.status(), 404, "no path escapes web/assets");
    let r = reqwest::get(format!("{}/no/such/page", c.base)).await.expect("unknown");
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("json error body");
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn admin_dashboard_answers_only_the_first_user_and_named_admins() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start_with(dir.path(), free_port(), &["--admins", "Carol"]).await;
    let first = register(&c, "alice").await;
    let other = register(&c, "bob").await;
    let named = register(&c, "carol").await;
    for token in [&first, &named] {
        let (s, stats) = c.api(Some(token), reqwest::Method::GET, "/admin/stats", None).await;
        assert_eq!(s, 200, "{stats}");
        assert_eq!(stats["store"]["backend"], "sqlite");
        let ops = stats["store"]["ops"].as_array().expect("ops");
        assert!(ops.iter().any(|o| o["op"] == "insert_user" && o["count"].as_u64() >= Some(3)), "{ops:?}");
        assert!(stats["process"]["resident_memory_bytes"].as_f64() > Some(0.0));
        assert!(stats["rooms"].is_array() && stats["sfu"]["participants"].is_number());
    }
    let (s, body) = c.api(Some(&other), reqwest::Method::GET, "/admin/stats", None).await;
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")), "a member is not told the dashboard exists");
    let (s, _) = c.api(None, reqwest::Method::GET, "/admin/stats", None).await;
    assert_eq!(s, 404);
    let page = |token: String| {
        let url = format!("{}/admin", c.base);
        async move { reqwest::Client::new().get(url).header("cookie", format!("chorus_token={token}")).send().await }
    };
    assert_eq!(page(other.clone()).await.expect("page").status(), 404);
    let r = page(first.clone()).await.expect("page");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("html").contains("<html"));
}

/// `n` failed logins for "mallory" from the client the `X-Forwarded-For` header names; the statuses.
async fn logins_as(c: &Chorus, forwarded_for: &str, n: usize) -> Vec<u16> {
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..n {
        let r = http
            .post(format!("{}/api/v1/auth/login", c.base))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"username": "mallory", "password": "wrong-password"}))
            .send()
            .await
            .expect("login");
        statuses.push(r.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn behind_a_trusted_proxy_login_limits_count_per_forwarded_client() {
    let dir = tempfile::tempdir().expect("dir");
    let args = ["--no-rate-limits", "false", "--trusted-proxies", "127.0.0.1"];
    let c = Chorus::start_with(dir.path(), free_port(), &args).await;
    // The auth limit is a burst of 20 per client address, refilled at one a second.
    let first = logins_as(&c, "198.51.100.1", 30).await;
    assert!(first[..20].iter().all(|s| *s == 401), "{first:?}");
    assert!(first.contains(&429), "one client's burst of logins is limited: {first:?}");
    assert_eq!(logins_as(&c, "198.51.100.2", 1).await, vec![401], "another client behind the same proxy is not");
}

#[tokio::test]
async fn from_an_untrusted_peer_a_spoofed_forwarded_header_buys_no_fresh_bucket() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start_with(dir.path(), free_port(), &["--no-rate-limits", "false"]).await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.extend(logins_as(&c, &format!("198.51.100.{i}"), 1).await);
    }
    assert!(statuses.contains(&429), "every header named another client, all came from one peer: {statuses:?}");
}

#[tokio::test]
async fn text_answers_are_compressed_by_accept_encoding() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start(dir.path(), free_port()).await;
    let http = reqwest::Client::new();
    for (accept, expect) in [("br", "br"), ("gzip", "gzip")] {
        let r = http
            .get(format!("{}/assets/js/main.js", c.base))
            .header("accept-encoding", accept)
            .send()
            .await
            .expect("module");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers().get("content-encoding").and_then(|v| v.to_str().ok()), Some(expect));
        assert!(r.headers().get("etag").is_some(), "the ETag stays");
    }
    let plain = http.get(format!("{}/api/openapi.json", c.base)).send().await.expect("openapi");
    assert!(plain.headers().get("content-encoding").is_none(), "no Accept-Encoding, no compression");
    assert!(plain.json::<Value>().await.is_ok());
}

#[tokio::test]
async fn advertising_only_loopback_for_a_public_url_is_reported_by_readyz() {
    let dir = tempfile::tempdir().expect("dir");
    let args = ["--public-url", "https://chat.example.org", "--public-ip", "127.0.0.1"];
    let c = Chorus::start_with(dir.path(), free_port(), &args).await;
    let r: Value = reqwest::get(format!("{}/readyz", c.base)).await.expect("readyz").json().await.expect("json");
    assert_eq!(r["status"], "ready");
    let w = r["warnings"][0].as_str().unwrap_or_default();
    assert!(w.contains("advertises only loopback") && w.contains("--public-ip"), "{r}");
    // The same warning on the operator's dashboard (the first user is its admin).
    let admin = register(&c, "alice").await;
    let (s, stats) = c.api(Some(&admin), reqwest::Method::GET, "/admin/stats", None).await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["warnings"][0].as_str(), Some(w), "/admin shows what /readyz says");
    let dir2 = tempfile::tempdir().expect("dir");
    let ok = Chorus::start(dir2.path(), free_port()).await;
    let r: Value = reqwest::get(format!("{}/readyz", ok.base)).await.expect("readyz").json().await.expect("json");
    assert_eq!(r, json!({"status": "ready"}), "a local first run has nothing to warn about");
}

#[test]
fn advertising_only_loopback_for_a_public_url_is_logged_as_a_warning_at_start() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--public-url", "https://chat.example.org"])
        .args(["--public-ip", "127.0.0.1", "--rtc-tcp-port", "0", "--sfu-workers", "1"])
        .args(["--udp-port-base", &(20000 + port % 20000).to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .env("CHORUS_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // tracing writes to stdout; read both, whichever carries it.
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let found = (0..200).find_map(|_| {
        rx.recv_timeout(Duration::from_millis(100)).ok().filter(|l| l.contains("advertises only loopback"))
    });
    let _ = child.kill();
    let _ = child.wait();
    let line = found.expect("a warning line at start");
    assert!(line.contains("WARN") && line.contains("--public-ip"), "{line}");
}

/// A STUN server on loopback that says every binding request comes from `mapped` (a NAT's outside).
fn stun_server(mapped: &'static str) -> String {
    use str0m::ice::StunMessage;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            // str0m reads only ICE's requests; its transaction id's serde form is the header's twelve bytes.
            let Some(id) = buf[..n].get(8..20) else { continue };
            let Ok(id) = serde_json::from_value::<str0m::ice::TransId>(json!(id)) else { continue };
            let mut out = [0u8; 256];
            let reply = StunMessage::binding_reply(id, mapped.parse().expect("addr"));
            if let Ok(len) = reply.to_bytes(None, &mut out, |_, _| [0; 20]) {
                let _ = socket.send_to(&out[..len], from);
            }
        }
    });
    addr
}

#[test]
fn a_stun_server_supplies_the_public_address_when_none_is_given() {
    let dir = tempfile::tempdir().expect("dir");
    let stun = stun_server("203.0.113.77:41000");
    let r =
        run_command(dir.path(), &["ports", "--stun-server", &stun, "--public-url", "https://chat.example.org"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("advertised: 203.0.113.77") && r.stdout.contains("STUN"), "{}", r.stdout);
    let given = run_command(
        dir.path(),
        &["ports", "--stun-server", &stun, "--public-ip", "198.51.100.4", "--public-url", "https://chat.example.org"],
        None,
    );
    assert!(given.stdout.contains("advertised: 198.51.100.4 (chosen by --public-ip)"), "{}", given.stdout);
}

/// One request to a UDP TURN server and its answer.
fn turn_exchange(sock: &std::net::UdpSocket, to: &str, msg: &[u8]) -> Vec<u8> {
    sock.send_to(msg, to).expect("send");
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).expect("the TURN server answers");
    buf[..n].to_vec()
}

fn turn_error(raw: &[u8]) -> Option<u16> {
    let m = turn::wire::Message::parse(raw).expect("a STUN answer");
    m.get(turn::wire::ATTR_ERROR_CODE).map(|v| v[2] as u16 * 100 + v[3] as u16)
}

#[tokio::test]
async fn the_embedded_turn_server_accepts_joined_credentials_and_relays_nowhere_but_the_sfu() {
    use turn::wire::{self, Builder, Class, Message};
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start_with(dir.path(), free_port(), &["--turn-listen", "127.0.0.1:0"]).await;
    let token = register(&c, "alice").await;
    let (_, g) = c.api(Some(&token), reqwest::Method::POST, "/guilds", Some(json!({"name": "G"}))).await;
    let voice = voice_channel_id(&g);
    let (_, grant) = c.api(Some(&token), reqwest::Method::POST, &format!("/channels/{voice}/voice"), None).await;
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(grant["endpoint"].as_str().expect("endpoint")).await.expect("voice");
    ws.send(Ws::Text(json!({"type": "join", "token": grant["token"]}).to_string().into())).await.expect("join");
    let joined = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Ws::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["type"] == "joined" {
                    break v;
                }
            }
            other => panic!("no joined: {other:?}"),
        }
    };
    let ice = &joined["ice_servers"][0];
    let url = ice["urls"][0].as_str().expect("a TURN URL");
    let addr = url
        .strip_prefix("turn:")
        .and_then(|u| u.strip_suffix("?transport=udp"))
        .unwrap_or_else(|| panic!("turn:ADDR?transport=udp, got {url}"))
        .to_string();
    let (username, password) = (ice["username"].as_str().expect("u"), ice["credential"].as_str().expect("c"));

    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let transport = [17u8, 0, 0, 0];
    let challenge = turn_exchange(
        &sock,
        &addr,
        &Builder::new(wire::ALLOCATE, Class::Request, rand::random())
            .attr(wire::ATTR_REQUESTED_TRANSPORT, &transport)
            .finish(None),
    );
    assert_eq!(turn_error(&challenge), Some(401));
    let challenge = Message::parse(&challenge).expect("stun");
    let (realm, nonce) =
        (challenge.text(wire::ATTR_REALM).expect("realm"), challenge.text(wire::ATTR_NONCE).expect("nonce"));
    let key = turn::credentials::long_term_key(username, realm, password);
    let sign = |b: Builder| {
        b.attr(wire::ATTR_USERNAME, username.as_bytes())
            .attr(wire::ATTR_REALM, realm.as_bytes())
            .attr(wire::ATTR_NONCE, nonce.as_bytes())
            .finish(Some(&key))
    };
    let allocated = turn_exchange(
        &sock,
        &addr,
        &sign(
            Builder::new(wire::ALLOCATE, Class::Request, rand::random())
                .attr(wire::ATTR_REQUESTED_TRANSPORT, &transport),
        ),
    );
    assert_eq!(turn_error(&allocated), None, "joined's credential is accepted");
    assert!(Message::parse(&allocated).expect("stun").xor_address(wire::ATTR_XOR_RELAYED_ADDRESS).is_some());
    let foreign = turn_exchange(
        &sock,
        &addr,
        &sign(
            Builder::new(wire::CREATE_PERMISSION, Class::Request, rand::random())
                .xor_address(wire::ATTR_XOR_PEER_ADDRESS, "127.0.0.1:6379".parse().expect("addr")),
        ),
    );
    assert_eq!(turn_error(&foreign), Some(403), "a relay to anything but the SFU is refused");
    let metrics = reqwest::get(format!("{}/metrics", c.base)).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("chorus_turn_allocations"), "TURN metrics are exported");
}
