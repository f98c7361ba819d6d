//! Moderation through the REST API on a real server: slow mode, the audit log (with
//! `X-Audit-Log-Reason`), and voice moderation (server mute and deafen, move, disconnect) as chat
//! decides it and hands it to the voice side.

mod common;

use std::time::Duration;

use chat::voice::{VoiceAction, VoiceState};
use common::{Guild, TestServer, User};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn id(s: &str) -> chat::Id {
    s.parse().expect("id")
}

async fn guild_with_member(s: &TestServer) -> (User, User, Guild) {
    let owner = s.user("owner").await;
    let alice = s.user("alice").await;
    let g = s.guild(&owner, "Mods").await;
    s.join(&owner, &g, &alice).await;
    (owner, alice, g)
}

/// A request with headers the harness does not set; returns status, Retry-After and body.
async fn raw(
    s: &TestServer,
    u: &User,
    method: Method,
    path: &str,
    body: Option<Value>,
    reason: Option<&str>,
) -> (StatusCode, Option<u64>, Value) {
    let mut req = s.http.request(method, format!("{}/api/v1{path}", s.base)).bearer_auth(&u.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(r) = reason {
        req = req.header("X-Audit-Log-Reason", r);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let text = resp.text().await.expect("body");
    (status, retry, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn sit_in_voice(s: &TestServer, g: &Guild, who: &User, channel: &str) {
    s.chat.voice_state(VoiceState {
        guild_id: Some(id(&g.id)),
        channel_id: Some(id(channel)),
        user_id: id(&who.id),
        self_mute: false,
        self_deaf: false,
        server_mute: false,
        server_deaf: false,
    });
}

// ---- slow mode

#[tokio::test]
async fn slow_mode_refuses_a_members_second_message_within_the_period_with_retry_after() {
    let s = TestServer::start().await;
    let (owner, alice, g) = guild_with_member(&s).await;
    let (st, c) = s.patch(&owner, &format!("/channels/{}", g.text), json!({"rate_limit_per_user": 30})).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["rate_limit_per_user"], 30);
    let (_, read) = s.get(&alice, &format!("/channels/{}", g.text)).await;
    assert_eq!(read["rate_limit_per_user"], 30, "members see the setting");

    s.send(&alice, &g.text, "first").await;
    let path = format!("/channels/{}/messages", g.text);
    let (st, retry, body) = raw(&s, &alice, Method::POST, &path, Some(json!({"content": "second"})), None).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "slow_mode");
    assert!(retry.is_some_and(|r| (1..=30).contains(&r)), "Retry-After {retry:?}");
    let (_, history) = s.get(&alice, &format!("/channels/{}/messages", g.text)).await;
    assert_eq!(history.as_array().map(Vec::len), Some(1), "the refused message was not stored: {history}");
}

#[tokio::test]
async fn a_retried_send_inside_slow_mode_answers_the_first_message() {
    let s = TestServer::start().await;
    let (owner, alice, g) = guild_with_member(&s).await;
    s.patch(&owner, &format!("/channels/{}", g.text), json!({"rate_limit_per_user": 60})).await;
    let path = format!("/channels/{}/messages", g.text);
    let (st, first) = s.post(&alice, &path, json!({"content": "once", "nonce": "retry-me"})).await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let (st, again) = s.post(&alice, &path, json!({"content": "once", "nonce": "retry-me"})).await;
    assert!(st.is_success(), "a retry is not a second message: {st} {again}");
    assert_eq!(again["id"], first["id"]);
    let (st, _) = s.post(&alice, &path, json!({"content": "a new one", "nonce": "other"})).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "a new message still waits");
}

#[tokio::test]
async fn slow_mode_spares_those_who_manage_messages_and_other_members() {
    let s = TestServer::start().await;
    let (owner, alice, g) = guild_with_member(&s).await;
    let bob = s.user("bob").await;
    s.join(&owner, &g, &bob).await;
    s.patch(&owner, &format!("/channels/{}", g.text), json!({"rate_limit_per_user": 600})).await;
    s.send(&owner, &g.text, "one").await;
    s.send(&owner, &g.text, "two: the owner manages messages").await;
    s.send(&alice, &g.text, "alice's one").await;
    s.send(&bob, &g.text, "bob has a budget of his own").await;
    let (st, _) = s.post(&alice, &format!("/channels/{}/messages", g.text), json!({"content": "again"})).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    s.patch(&owner, &format!("/channels/{}", g.text), json!({"rate_limit_per_user": 0})).await;
    s.send(&alice, &g.text, "slow mode is off again").await;
}

#[tokio::test]
async fn slow_mode_is_for_text_channels_and_at_most_six_hours() {
    let s = TestServer::start().await;
    let (owner, _, g) = guild_with_member(&s).await;
    let (st, body) = s.patch(&owner, &format!("/channels/{}", g.voice), json!({"rate_limit_per_user": 10})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("validation_failed")), "{body}");
    let (st, body) = s.patch(&owner, &format!("/channels/{}", g.text), json!({"rate_limit_per_user": 21_601})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["fields"]["rate_limit_per_user"].is_string(), "{body}");
    let (st, body) = s.patch(&owner, &format!("/channels/{}", g.text), json!({"rate_limit_per_user": -1})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let (st, c) = s
        .post(&owner, &format!("/guilds/{}/channels", g.id), json!({"name": "slow", "rate_limit_per_user": 21_600}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    assert_eq!(c["rate_limit_per_user"], 21_600);
}

// ---- audit log

#[tokio::test]
async fn moderation_actions_are_in_the_audit_log_newest_first_with_actor_target_reason_and_changes() {
    let s = TestServer::start().await;
    let (owner, alice, g) = guild_with_member(&s).await;
    let reason = "spam%20in%20%23general";
    let (st, _, body) = raw(
        &s,
        &owner,
        Method::PATCH,
        &format!("/channels/{}", g.text),
        Some(json!({"rate_limit_per_user": 5, "topic": "rules"})),
        Some(reason),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, _, body) =
        raw(&s, &owner, Method::PUT, &format!("/guilds/{}/bans/{}", g.id, alice.id), Some(json!({})), Some("bye"))
            .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");

    let (st, log) = s.get(&owner, &format!("/guilds/{}/audit-logs", g.id)).await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let entries = log["audit_log_entries"].as_array().expect("entries");
    assert_eq!(entries[0]["action_type"], "member_ban_add");
    assert_eq!(entries[0]["target_id"], alice.id.as_str());
    assert_eq!(entries[0]["user_id"], owner.id.as_str());
    assert_eq!(entries[0]["reason"], "bye");
    assert_eq!(entries[1]["action_type"], "channel_update");
    assert_eq!(entries[1]["reason"], "spam in #general", "the reason is percent-decoded");
    assert_eq!(entries[1]["target_id"], g.text.as_str());
    let changes = entries[1]["changes"].as_array().expect("changes");
    let change = |key: &str| changes.iter().find(|c| c["key"] == key).cloned().unwrap_or(Value::Null);
    assert_eq!(change("rate_limit_per_user")["old_value"], 0);
    assert_eq!(change("rate_limit_per_user")["new_value"], 5);
    assert_eq!(change("topic")["new_value"], "rules");
    assert!(change("name").is_null(), "only what changed is recorded: {changes:?}");
    let users = log["users"].as_array().expect("users");
    for who in [&owner, &alice] {
        assert!(users.iter().any(|u| u["id"] == who.id.as_str()), "{} missing from {users:?}", who.name);
    }
}

#[tokio::test]
async fn the_audit_log_pages_with_before_and_filters_by_actor_and_action() {
    let s = TestServer::start().await;
    let (owner, alice, g) = guild_with_member(&s).await;
    for name in ["one", "two", "three"] {
        let (st, _) = s.post(&owner, &format!("/guilds/{}/channels", g.id), json!({"name": name})).await;
        assert_eq!(st, StatusCode::CREATED);
    }
    s.delete(&owner, &format!("/guilds/{}/members/{}", g.id, alice.id)).await;
    let path = format!("/guilds/{}/audit-logs", g.id);
    let (_, first) = s.get(&owner, &format!("{path}?limit=2")).await;
    let first = first["audit_log_entries"].as_array().expect("entries").clone();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["action_type"], "member_kick");
    let oldest_seen = first[1]["id"].as_str().expect("id");
    let (_, rest) = s.get(&owner, &format!("{path}?before={oldest_seen}")).await;
    let rest = rest["audit_log_entries"].as_array().expect("entries").clone();
    // Older: two more channel creations, and the invite alice joined with.
    let kinds: Vec<&str> = rest.iter().filter_map(|e| e["action_type"].as_str()).collect();
    assert_eq!(kinds, ["channel_create", "channel_create", "invite_create"], "{rest:?}");
    let (_, kicks) = s.get(&owner, &format!("{path}?action_type=member_kick&user_id={}", owner.id)).await;
    assert_eq!(kicks["audit_log_entries"].as_array().map(Vec::len), Some(1));
    let (_, none) = s.get(&owner, &format!("{path}?user_id={}", alice.id)).await;
    assert_eq!(none["audit_log_entries"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn bad_audit_log_queries_are_refused_with_the_documented_errors() {
    let s = TestServer::start().await;
    let (owner, _, g) = guild_with_member(&s).await;
    let path = format!("/guilds/{}/audit-logs", g.id);
    for query in ["?limit=0", "?limit=101", "?action_type=launch_rockets"] {
        let (st, body) = s.get(&owner, &format!("{path}{query}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "validation_failed", "{query}: {body}");
    }
    let (st, body) = s.get(&owner, &format!("{path}?before=yesterday")).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")), "{body}");
    // An overlong reason is cut, never refused.
    let long = "x".repeat(2000);
    let (st, _, body) =
        raw(&s, &owner, Method::PATCH, &format!("/guilds/{}", g.id), Some(json!({"name": "Renamed"})), Some(&long))
            .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, log) = s.get(&owner, &path).await;
    assert_eq!(log["audit_log_entries"][0]["reason"].as_str().map(str::len), Some(512));
}

#[tokio::test]
async fn a_member_editing_their_own_nickname_is_not_a_moderation_action() {
    let s = TestServer::start().await;
    let (owner, alice, g) = guild_with_member(&s).await;
    let (st, _) = s.patch(&owner, &format!("/guilds/{}/members/@me", g.id), json!({"nick": "boss"})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.patch(&owner, &format!("/guilds/{}/members/{}", g.id, alice.id), json!({"nick": "al"})).await;
    assert_eq!(st, StatusCode::OK);
    let (_, log) = s.get(&owner, &format!("/guilds/{}/audit-logs?action_type=member_update", g.id)).await;
    let entries = log["audit_log_entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["target_id"], alice.id.as_str());
}

// ---- voice moderation

#[tokio::test]
async fn server_mute_is_stored_announced_handed_to_voice_and_starts_the_next_call_muted() {
    let s = TestServer::start().await;
    let (owner, alice, g) = guild_with_member(&s).await;
    let mut orders = s.chat.voice_orders();
    let mut gw = s.gateway(&owner).await;
    gw.expect("READY").await;
    let (st, m) =
        s.patch(&owner, &format!("/guilds/{}/members/{}", g.id, alice.id), json!({"mute": true, "deaf": true})).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!((m["mute"].as_bool(), m["deaf"].as_bool()), (Some(true), Some(true)));
    let ev = gw.expect("GUILD_MEMBER_UPDATE").await;
    assert_eq!(ev["d"]["mute"], true);
    let order = tokio::time::timeout(Duration::from_secs(5), orders.recv()).await.expect("an order").expect("open");
    assert_eq!(order.user_id, id(&alice.id));
    assert_eq!(order.action, VoiceAction::Mute { mute: true, deaf: true });
    let (_, grant) = s.post(&alice, &format!("/channels/{}/voice", g.voice), json!({})).await;
    assert_eq!(grant["token"], format!("{}:{}:true:true:true:true", alice.id, g.voice), "the call starts muted");
}

#[tokio::test]
async fn moving_a_member_needs_them_in_voice_and_a_voice_channel_they_may_join() {
    let s = TestServer::start().await;
    let (owner, alice, g) = guild_with_member(&s).await;
    let path = format!("/guilds/{}/members/{}", g.id, alice.id);
    let (st, body) = s.patch(&owner, &path, json!({"channel_id": g.voice})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("not_in_voice")), "{body}");

    sit_in_voice(&s, &g, &alice, &g.voice);
    let (st, body) = s.patch(&owner, &path, json!({"channel_id": g.text})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("validation_failed")), "{body}");
    let (_, locked) =
        s.post(&owner, &format!("/guilds/{}/channels", g.id), json!({"name": "Locked", "kind": "voice"})).await;
    let locked = locked["id"].as_str().expect("id").to_string();
    let connect = chat::permissions::Permissions::CONNECT.bits().to_string();
    let (st, _) = s
        .put(
            &owner,
            &format!("/channels/{locked}/permissions/{}", alice.id),
            Some(json!({"kind": "member", "deny": connect})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, body) = s.patch(&owner, &path, json!({"channel_id": locked})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{body}");
}

#[tokio::test]
async fn move_and_disconnect_are_handed_to_voice_and_audited() {
    let s = TestServer::start().await;
    let (owner, alice, g) = guild_with_member(&s).await;
    let (_, other) =
        s.post(&owner, &format!("/guilds/{}/channels", g.id), json!({"name": "Other", "kind": "voice"})).await;
    let other = other["id"].as_str().expect("id").to_string();
    let mut orders = s.chat.voice_orders();
    sit_in_voice(&s, &g, &alice, &g.voice);
    let path = format!("/guilds/{}/members/{}", g.id, alice.id);
    let (st, body) = s.patch(&owner, &path, json!({"channel_id": other})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let order = tokio::time::timeout(Duration::from_secs(5), orders.recv()).await.expect("order").expect("open");
    assert_eq!(order.action, VoiceAction::Move { channel_id: id(&other) });

    sit_in_voice(&s, &g, &alice, &other);
    let (st, body) = s.patch(&owner, &path, json!({"channel_id": null})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let order = tokio::time::timeout(Duration::from_secs(5), orders.recv()).await.expect("order").expect("open");
    assert_eq!(order.action, VoiceAction::Disconnect);

    let (_, log) = s.get(&owner, &format!("/guilds/{}/audit-logs", g.id)).await;
    let entries = log["audit_log_entries"].as_array().expect("entries");
    assert_eq!(entries[0]["action_type"], "member_disconnect");
    assert_eq!(entries[0]["changes"][0]["old_value"], other.as_str());
    assert_eq!(entries[1]["action_type"], "member_move");
    assert_eq!(entries[1]["changes"][0]["new_value"], other.as_str());
}
