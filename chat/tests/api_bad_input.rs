//! Bad input over real HTTP: every mistake gets its documented JSON error (`{code, message}`,
//! `fields` for validation errors), and the server keeps serving everyone else.

mod common;

use chat::ChatConfig;
use chat::ratelimit::{Rate, RateLimitConfig};
use common::{Guild, TestServer, User};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A request with full control over headers and body bytes.
async fn raw(
    s: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = s.http.request(method, format!("{}/api/v1{}", s.base, path));
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: body is not JSON: {text:?}"));
    (status, headers, value)
}

/// An error answer: this status, this code, a human message, and a JSON content type.
#[track_caller]
fn assert_error(status: StatusCode, body: &Value, want: u16, code: &str) {
    assert_eq!(status.as_u16(), want, "status; body {body}");
    assert_eq!(body["code"], code, "code; body {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "message; body {body}");
}

#[track_caller]
fn assert_field(status: StatusCode, body: &Value, field: &str) {
    assert_error(status, body, 400, "validation_failed");
    assert!(body["fields"][field].as_str().is_some_and(|m| !m.is_empty()), "fields.{field}; body {body}");
}

#[track_caller]
fn assert_json_type(headers: &HeaderMap) {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content type {ct:?}");
}

async fn setup(s: &TestServer) -> (User, Guild) {
    let owner = s.user("owner").await;
    let g = s.guild(&owner, "G").await;
    (owner, g)
}

async fn still_serving(s: &TestServer, u: &User, g: &Guild) {
    let (st, me) = s.get(u, "/users/@me").await;
    assert_eq!(st, StatusCode::OK, "{me}");
    s.send(u, &g.text, "still here").await;
    let (st, _) = s
        .call(None, Method::POST, "/auth/register", Some(json!({"username": "late-comer", "password": "password123"})))
        .await;
    assert_eq!(st, StatusCode::CREATED);
}

// ---- JSON bodies

#[tokio::test]
async fn malformed_json_is_400_malformed_json() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    for body in [&b"{\"name\": "[..], b"{name: 'x'}", b"not json at all", b"{\"name\": \"x\"} trailing", b""] {
        let (st, h, v) =
            raw(&s, Method::POST, "/guilds", Some(&owner.token), Some("application/json"), Some(body.to_vec())).await;
        assert_eq!(v["code"], "malformed_json", "{:?}: {v}", String::from_utf8_lossy(body));
        assert_error(st, &v, 400, "malformed_json");
        assert_json_type(&h);
    }
    let (st, _, v) = raw(
        &s,
        Method::POST,
        &format!("/channels/{}/messages", g.text),
        Some(&owner.token),
        Some("application/json"),
        Some(b"{\"content\": \"unterminated".to_vec()),
    )
    .await;
    assert_error(st, &v, 400, "malformed_json");
    let (st, _, v) =
        raw(&s, Method::POST, "/auth/register", None, Some("application/json"), Some(b"{\"username\":".to_vec())).await;
    assert_error(st, &v, 400, "malformed_json");
    still_serving(&s, &owner, &g).await;
}

#[tokio::test]
async fn wrong_types_and_missing_fields_are_400_invalid_body() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let messages = format!("/channels/{}/messages", g.text);
    let cases: Vec<(Method, String, Value)> = vec![
        (Method::POST, "/guilds".into(), json!({"name": 5})),
        (Method::POST, "/guilds".into(), json!({"nmae": "typo"})),
        (Method::POST, "/guilds".into(), json!("name")),
        (Method::POST, messages.clone(), json!({"content": 123})),
        (Method::POST, messages.clone(), json!({"content": "x", "nonce": 5})),
        (Method::POST, messages.clone(), json!({"content": "x", "reply_to": "not-an-id"})),
        (Method::POST, messages.clone(), json!({"content": null})),
        (Method::POST, "/users/@me/channels".into(), json!({"recipient_id": "abc"})),
        (Method::POST, "/users/@me/channels".into(), json!({"recipient_id": -4})),
        (Method::POST, format!("/guilds/{}/channels", g.id), json!({"name": "x", "position": "top"})),
        (Method::POST, format!("/guilds/{}/roles", g.id), json!({"permissions": "lots"})),
        (Method::POST, format!("/guilds/{}/roles", g.id), json!({"color": -1})),
        (Method::PATCH, format!("/guilds/{}/members/{}", g.id, owner.id), json!({"timed_out_until": "tomorrow"})),
        (Method::PATCH, format!("/guilds/{}/members/{}", g.id, owner.id), json!({"roles": "all"})),
        (Method::PUT, format!("/channels/{}/permissions/{}", g.text, g.id), json!({"kind": "planet"})),
        (Method::POST, format!("/guilds/{}/invites", g.id), json!({"max_uses": -1})),
    ];
    for (method, path, body) in cases {
        let (st, v) = s.call(Some(&owner.token), method.clone(), &path, Some(body.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{method} {path} {body}: {v}");
        assert_eq!(v["code"], "invalid_body", "{method} {path} {body}: {v}");
        assert!(v["message"].is_string(), "{v}");
    }
    let (st, v) =
        s.call(None, Method::POST, "/auth/register", Some(json!({"username": ["a"], "password": "password123"}))).await;
    assert_error(st, &v, 400, "invalid_body");
    let (st, v) = s.call(None, Method::POST, "/auth/login", Some(json!({"username": "owner"}))).await;
    assert_error(st, &v, 400, "invalid_body");
    still_serving(&s, &owner, &g).await;
}

#[tokio::test]
async fn body_without_a_json_content_type_is_rejected() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let (st, h, v) =
            raw(&s, Method::POST, "/guilds", Some(&owner.token), ct, Some(br#"{"name":"x"}"#.to_vec())).await;
        assert!(st == StatusCode::UNSUPPORTED_MEDIA_TYPE || st == StatusCode::BAD_REQUEST, "{ct:?}: {st} {v}");
        assert_eq!(v["code"], "unsupported_content_type", "{ct:?}: {v}");
        assert!(v["message"].is_string());
        assert_json_type(&h);
    }
    // A JSON content type with parameters is fine.
    let (st, _, v) = raw(
        &s,
        Method::POST,
        "/guilds",
        Some(&owner.token),
        Some("application/json; charset=utf-8"),
        Some(br#"{"name":"x"}"#.to_vec()),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    still_serving(&s, &owner, &g).await;
}

#[tokio::test]
async fn invalid_utf8_and_deeply_nested_json_are_rejected_cleanly() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let mut bad_utf8 = b"{\"content\": \"".to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    bad_utf8.extend_from_slice(b"\"}");
    let path = format!("/channels/{}/messages", g.text);
    let (st, _, v) = raw(&s, Method::POST, &path, Some(&owner.token), Some("application/json"), Some(bad_utf8)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["code"] == "malformed_json" || v["code"] == "invalid_body", "{v}");

    let nested = format!("{{\"content\": {}{}}}", "[".repeat(5000), "]".repeat(5000));
    let (st, _, v) =
        raw(&s, Method::POST, &path, Some(&owner.token), Some("application/json"), Some(nested.into_bytes())).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["code"] == "malformed_json" || v["code"] == "invalid_body", "{v}");
    still_serving(&s, &owner, &g).await;
}

// ---- sizes

#[tokio::test]
async fn body_over_64_kib_is_413_payload_too_large() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let big = "x".repeat(70 * 1024);
    let (st, v) = s.post(&owner, &format!("/channels/{}/messages", g.text), json!({"content": big})).await;
    assert_error(st, &v, 413, "payload_too_large");
    let (st, v) = s.post(&owner, "/guilds", json!({"name": "x", "padding": "y".repeat(100 * 1024)})).await;
    assert_error(st, &v, 413, "payload_too_large");
    let (st, v) = s
        .call(None, Method::POST, "/auth/register", Some(json!({"username": "big", "password": "p".repeat(80 * 1024)})))
        .await;
    assert_error(st, &v, 413, "payload_too_large");
    // Just under the limit is parsed (and then judged on its merits).
    let (st, v) = s.post(&owner, "/guilds", json!({"name": "x", "padding": "y".repeat(60 * 1024)})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    still_serving(&s, &owner, &g).await;
}

#[tokio::test]
async fn message_content_of_4001_characters_is_400_with_fields_content() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let path = format!("/channels/{}/messages", g.text);
    let (st, v) = s.post(&owner, &path, json!({"content": "a".repeat(4001)})).await;
    assert_field(st, &v, "content");
    let (st, v) = s.post(&owner, &path, json!({"content": "é".repeat(4001)})).await;
    assert_field(st, &v, "content");
    // 4000 characters is fine, counted as characters not bytes.
    let (st, v) = s.post(&owner, &path, json!({"content": "a".repeat(4000)})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s.post(&owner, &path, json!({"content": "é".repeat(4000)})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // Editing is held to the same limit.
    let m = s.send(&owner, &g.text, "short").await;
    let (st, v) =
        s.patch(&owner, &format!("{path}/{}", m["id"].as_str().unwrap()), json!({"content": "b".repeat(4001)})).await;
    assert_field(st, &v, "content");
}

#[tokio::test]
async fn empty_or_blank_content_is_400_with_fields_content() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let path = format!("/channels/{}/messages", g.text);
    for content in ["", "   ", "\n\t "] {
        let (st, v) = s.post(&owner, &path, json!({"content": content})).await;
        assert_field(st, &v, "content");
    }
    let (_, history) = s.get(&owner, &path).await;
    assert_eq!(history, json!([]), "nothing was stored");
}

#[tokio::test]
async fn other_field_limits_are_validation_errors() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let member = s.user("member").await;
    s.join(&owner, &g, &member).await;
    let m = s.send(&owner, &g.text, "x").await;
    let mid = m["id"].as_str().unwrap().to_string();
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::POST, "/guilds".into(), json!({"name": ""}), "name"),
        (Method::POST, "/guilds".into(), json!({"name": "g".repeat(101)}), "name"),
        (Method::PATCH, format!("/guilds/{}", g.id), json!({"name": "   "}), "name"),
        (Method::POST, format!("/guilds/{}/channels", g.id), json!({"name": ""}), "name"),
        (Method::POST, format!("/guilds/{}/channels", g.id), json!({"name": "x", "kind": "dm"}), "kind"),
        (Method::POST, format!("/guilds/{}/channels", g.id), json!({"name": "x", "kind": "stage"}), "kind"),
        (Method::POST, format!("/guilds/{}/channels", g.id), json!({"name": "x", "topic": "t".repeat(1025)}), "topic"),
        (Method::PATCH, "/users/@me".into(), json!({"display_name": "d".repeat(33)}), "display_name"),
        (Method::PATCH, format!("/guilds/{}/members/@me", g.id), json!({"nick": "n".repeat(33)}), "nick"),
        (Method::PATCH, format!("/guilds/{}/members/@me", g.id), json!({"roles": ["123"]}), "roles"),
        (
            Method::PATCH,
            format!("/guilds/{}/members/{}", g.id, member.id),
            json!({"timed_out_until": (chrono::Utc::now() + chrono::Duration::days(29)).to_rfc3339()}),
            "timed_out_until",
        ),
        (Method::POST, format!("/guilds/{}/invites", g.id), json!({"max_uses": 10_001}), "max_uses"),
        (Method::POST, format!("/guilds/{}/invites", g.id), json!({"max_age_secs": 604_801}), "max_age_secs"),
        (Method::POST, format!("/guilds/{}/roles", g.id), json!({"name": "r".repeat(101)}), "name"),
        (Method::PATCH, format!("/guilds/{}/roles/{}", g.id, g.id), json!({"name": "everybody"}), "name"),
        (
            Method::POST,
            format!("/channels/{}/messages", g.text),
            json!({"content": "x", "nonce": "n".repeat(65)}),
            "nonce",
        ),
        (Method::POST, format!("/channels/{}/messages", g.text), json!({"content": "x", "nonce": ""}), "nonce"),
        (Method::GET, format!("/guilds/{}/messages/search?q=", g.id), Value::Null, "q"),
        (Method::GET, format!("/guilds/{}/messages/search?q=x&limit=0", g.id), Value::Null, "limit"),
    ];
    for (method, path, body, field) in cases {
        let body = (!body.is_null()).then_some(body);
        let (st, v) = s.call(Some(&owner.token), method.clone(), &path, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{method} {path}: {v}");
        assert_eq!(v["code"], "validation_failed", "{method} {path}: {v}");
        assert!(v["fields"][field].is_string(), "{method} {path}: fields.{field} in {v}");
    }
    let (st, v) = s.put(&owner, &format!("/channels/{}/messages/{mid}/reactions/hello", g.text), None).await;
    assert_error(st, &v, 400, "invalid_emoji");
    let (st, v) = s.post(&owner, &format!("/channels/{}/messages", g.voice), json!({"content": "x"})).await;
    assert_error(st, &v, 400, "not_a_text_channel");
    let (st, v) = s.post(&owner, &format!("/channels/{}/voice", g.text), json!({})).await;
    assert_error(st, &v, 400, "not_a_voice_channel");
}

// ---- accounts

#[tokio::test]
async fn bad_username_or_short_password_is_400_with_fields() {
    let s = TestServer::start().await;
    let long_name = "x".repeat(33);
    let long_password = "p".repeat(129);
    for (username, password, field) in [
        ("a", "password123", "username"),
        ("", "password123", "username"),
        ("has space", "password123", "username"),
        ("émile", "password123", "username"),
        (long_name.as_str(), "password123", "username"),
        ("bob", "short", "password"),
        ("bob", "", "password"),
        ("bob", long_password.as_str(), "password"),
    ] {
        let (st, v) = s
            .call(None, Method::POST, "/auth/register", Some(json!({"username": username, "password": password})))
            .await;
        assert_field(st, &v, field);
    }
    // Usernames are unique regardless of case.
    s.user("carol").await;
    let (st, v) = s
        .call(None, Method::POST, "/auth/register", Some(json!({"username": "CAROL", "password": "password123"})))
        .await;
    assert_error(st, &v, 409, "username_taken");
}

#[tokio::test]
async fn missing_or_invalid_bearer_token_is_401_unauthorized() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let long = format!("Bearer {}", "t".repeat(500));
    let headers: [Option<&str>; 6] = [
        None,
        Some("Bearer not-a-real-token"),
        Some("Bearer "),
        Some("Basic b3duZXI6cGFzc3dvcmQxMjM="),
        Some(owner.token.as_str()),
        Some(long.as_str()),
    ];
    for path in ["/users/@me".to_string(), format!("/guilds/{}", g.id), format!("/channels/{}/messages", g.text)] {
        for h in headers {
            let mut req = s.http.get(format!("{}/api/v1{path}", s.base));
            if let Some(h) = h {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = req.send().await.expect("request");
            let status = resp.status();
            let v: Value = resp.json().await.expect("JSON error body");
            assert_error(status, &v, 401, "unauthorized");
        }
    }
    // Auth comes before anything else: a bad id without a token is still 401.
    let (st, v) = s.call(None, Method::GET, "/guilds/not-an-id", None).await;
    assert_error(st, &v, 401, "unauthorized");
    let (st, v) = s.call(None, Method::POST, "/auth/logout", None).await;
    assert_error(st, &v, 401, "unauthorized");
    still_serving(&s, &owner, &g).await;
}

// ---- ids and routes

#[tokio::test]
async fn malformed_ids_in_paths_are_400_invalid_id() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    for path in [
        "/guilds/abc".to_string(),
        "/guilds/-1".into(),
        "/guilds/1.5".into(),
        "/guilds/99999999999999999999".into(),
        "/guilds/9223372036854775808".into(),
        "/channels/0x10".into(),
        "/users/abc".into(),
        format!("/channels/{}/messages/abc", g.text),
        format!("/guilds/{}/members/not-a-user", g.id),
        format!("/guilds/{}/roles/%20", g.id),
    ] {
        let method = if path.contains("/roles/") { Method::DELETE } else { Method::GET };
        let (st, v) = s.call(Some(&owner.token), method, &path, None).await;
        assert_error(st, &v, 400, "invalid_id");
    }
    still_serving(&s, &owner, &g).await;
}

#[tokio::test]
async fn unknown_ids_are_404_not_found() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let ghost = "1234567890123";
    let cases: Vec<(Method, String)> = vec![
        (Method::GET, format!("/guilds/{ghost}")),
        (Method::GET, format!("/guilds/{ghost}/members")),
        (Method::GET, format!("/channels/{ghost}")),
        (Method::GET, format!("/channels/{ghost}/messages")),
        (Method::GET, format!("/channels/{}/messages/{ghost}", g.text)),
        (Method::DELETE, format!("/channels/{}/messages/{ghost}", g.text)),
        (Method::PATCH, format!("/channels/{}/messages/{ghost}", g.text)),
        (Method::PUT, format!("/channels/{}/pins/{ghost}", g.text)),
        (Method::GET, format!("/guilds/{}/members/{ghost}", g.id)),
        (Method::DELETE, format!("/guilds/{}/members/{ghost}", g.id)),
        (Method::DELETE, format!("/guilds/{}/roles/{ghost}", g.id)),
        (Method::DELETE, format!("/guilds/{}/bans/{ghost}", g.id)),
        (Method::PUT, format!("/guilds/{}/bans/{ghost}", g.id)),
        (Method::GET, format!("/users/{ghost}")),
        (Method::DELETE, format!("/users/@me/sessions/{ghost}")),
        (Method::GET, "/invites/no-such-code".into()),
        (Method::POST, "/invites/no-such-code".into()),
        (Method::DELETE, "/invites/no-such-code".into()),
    ];
    for (method, path) in cases {
        let body = matches!(method, Method::PATCH).then(|| json!({"content": "x"}));
        let (st, v) = s.call(Some(&owner.token), method.clone(), &path, body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        assert_eq!(v["code"], "not_found", "{method} {path}: {v}");
        assert!(v["message"].is_string());
    }
    let (st, v) = s.post(&owner, "/users/@me/channels", json!({"recipient_id": ghost})).await;
    assert_error(st, &v, 404, "not_found");
    let (st, v) = s
        .put(
            &owner,
            &format!("/channels/{}/permissions/{ghost}", g.text),
            Some(json!({"kind": "role", "deny": "2048"})),
        )
        .await;
    assert_error(st, &v, 404, "not_found");
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    for path in ["/nope", "/guilds", "/users/@me/nope", &format!("/guilds/{}/nope", g.id)] {
        let (st, h, v) = raw(&s, Method::GET, path, Some(&owner.token), None, None).await;
        if path == "/guilds" {
            // GET on a POST-only route is a method error, covered below.
            assert!(st.is_client_error(), "{path}: {st} {v}");
            continue;
        }
        assert_error(st, &v, 404, "not_found");
        assert_json_type(&h);
    }
    // Unknown routes answer the same way without a token.
    let (st, _, v) = raw(&s, Method::GET, "/definitely/not/here", None, None, None).await;
    assert_error(st, &v, 404, "not_found");
}

#[tokio::test]
async fn wrong_method_is_a_405_json_error() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    for (method, path) in [
        (Method::GET, "/guilds".to_string()),
        (Method::DELETE, "/auth/register".into()),
        (Method::PUT, format!("/guilds/{}", g.id)),
        (Method::POST, format!("/channels/{}", g.text)),
    ] {
        let (st, h, v) = raw(&s, method.clone(), &path, Some(&owner.token), None, None).await;
        assert_error(st, &v, 405, "method_not_allowed");
        assert_json_type(&h);
    }
}

#[tokio::test]
async fn bad_query_strings_are_400_invalid_query() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    for path in [
        format!("/channels/{}/messages?limit=abc", g.text),
        format!("/channels/{}/messages?limit=-1", g.text),
        format!("/channels/{}/messages?limit=99999999999", g.text),
        format!("/channels/{}/messages?before=xyz", g.text),
        format!("/guilds/{}/members?after=me", g.id),
        format!("/guilds/{}/messages/search", g.id),
    ] {
        let (st, v) = s.get(&owner, &path).await;
        assert_error(st, &v, 400, "invalid_query");
    }
}

#[tokio::test]
async fn control_characters_in_a_search_query_are_search_text_not_a_500() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let hit = s.send(&owner, &g.text, "needle in a haystack").await;
    for q in ["%00", "a%00b", "%00%00", "%01%1F%7F", "%22%00%22"] {
        let (st, v) = s.get(&owner, &format!("/guilds/{}/messages/search?q={q}", g.id)).await;
        assert_eq!(st, StatusCode::OK, "q={q}: {v}");
        assert!(v.as_array().is_some_and(|a| a.is_empty()), "q={q}: {v}");
    }
    let (st, v) = s.get(&owner, &format!("/guilds/{}/messages/search?q=needle%00haystack", g.id)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v[0]["id"], hit["id"], "a NUL separates words like a space");
    still_serving(&s, &owner, &g).await;
}

#[tokio::test]
async fn channel_positions_stay_within_0_to_10000_whatever_is_asked() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let path = format!("/guilds/{}/channels", g.id);
    let (st, far) = s.post(&owner, &path, json!({"name": "far", "position": 99999})).await;
    assert_eq!(st, StatusCode::CREATED, "{far}");
    assert_eq!(far["position"], 10000, "clamped");
    for n in 0..3 {
        let (st, c) = s.post(&owner, &path, json!({"name": format!("next{n}")})).await;
        assert_eq!(st, StatusCode::CREATED, "{c}");
        assert_eq!(c["position"], 10000, "the default (after the last) stays at the maximum");
    }
    let (st, c) = s.patch(&owner, &format!("/channels/{}", g.text), json!({"position": 123456})).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["position"], 10000);
    let (st, c) = s.patch(&owner, &format!("/channels/{}", g.text), json!({"position": -5})).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["position"], 0);
    // Every answer that lists channels stays in the documented range.
    let (_, list) = s.get(&owner, &path).await;
    let (_, guilds) = s.get(&owner, "/users/@me/guilds").await;
    let (_, guild) = s.get(&owner, &format!("/guilds/{}", g.id)).await;
    let mut positions: Vec<i64> =
        list.as_array().expect("channels").iter().filter_map(|c| c["position"].as_i64()).collect();
    for gv in guilds.as_array().expect("guilds").iter().chain([&guild]) {
        positions.extend(gv["channels"].as_array().into_iter().flatten().filter_map(|c| c["position"].as_i64()));
    }
    assert!(positions.len() > 6, "{positions:?}");
    assert!(positions.iter().all(|p| (0..=10000).contains(p)), "{positions:?}");
}

#[tokio::test]
async fn a_role_at_the_largest_position_does_not_break_creating_roles() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let path = format!("/guilds/{}/roles", g.id);
    let (st, r) = s.post(&owner, &path, json!({"name": "top"})).await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let top = r["id"].as_str().expect("id");
    let (st, r) = s.patch(&owner, &format!("{path}/{top}"), json!({"position": i32::MAX})).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    // Creating a role moves the others up by one: at the largest position it stays there.
    for n in 0..2 {
        let (st, r) = s.post(&owner, &path, json!({"name": format!("next{n}")})).await;
        assert_eq!(st, StatusCode::CREATED, "{r}");
    }
    let (_, roles) = s.get(&owner, &path).await;
    assert!(roles.as_array().expect("roles").iter().any(|r| r["id"] == top && r["position"] == i32::MAX), "{roles}");
    still_serving(&s, &owner, &g).await;
}

#[tokio::test]
async fn after_a_barrage_of_bad_requests_the_server_still_answers() {
    let s = TestServer::start().await;
    let (owner, g) = setup(&s).await;
    let t = Some(owner.token.as_str());
    let path = format!("/channels/{}/messages", g.text);
    let mut bad = Vec::new();
    for i in 0..20 {
        bad.push(raw(&s, Method::POST, &path, t, Some("application/json"), Some(b"{{{{".to_vec())));
        bad.push(raw(&s, Method::POST, &path, t, Some("application/json"), Some(vec![b'a'; 80 * 1024])));
        bad.push(raw(&s, Method::GET, "/guilds/zzz", t, None, None));
        bad.push(raw(&s, Method::GET, "/users/@me", None, None, None));
        bad.push(raw(&s, Method::PATCH, "/nowhere", t, None, Some(vec![i; 10])));
    }
    for (st, _, v) in futures::future::join_all(bad).await {
        assert!(st.is_client_error(), "{st} {v}");
        assert!(v["code"].is_string() && v["message"].is_string(), "{v}");
    }
    still_serving(&s, &owner, &g).await;
    let (_, history) = s.get(&owner, &path).await;
    assert_eq!(history.as_array().map(Vec::len), Some(1), "only the good message was stored: {history}");
}

// ---- rate limits

#[tokio::test]
async fn third_register_within_a_tiny_auth_limit_is_429_with_retry_after() {
    let s = TestServer::with_config(ChatConfig {
        limits: RateLimitConfig { auth_per_ip: Rate { per_minute: 1, burst: 2 }, ..RateLimitConfig::unlimited() },
        ..ChatConfig::default()
    })
    .await;
    for name in ["first", "second"] {
        let (st, v) = s
            .call(None, Method::POST, "/auth/register", Some(json!({"username": name, "password": "password123"})))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let resp = s
        .http
        .post(format!("{}/api/v1/auth/register", s.base))
        .json(&json!({"username": "third", "password": "password123"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let v: Value = resp.json().await.expect("JSON");
    assert_error(StatusCode::TOO_MANY_REQUESTS, &v, 429, "rate_limited");
    // Login shares the limit; authenticated calls do not.
    let (st, v) =
        s.call(None, Method::POST, "/auth/login", Some(json!({"username": "first", "password": "password123"}))).await;
    assert_error(st, &v, 429, "rate_limited");
}

#[tokio::test]
async fn message_sends_beyond_the_per_user_limit_are_429() {
    let s = TestServer::with_config(ChatConfig {
        limits: RateLimitConfig { messages_per_user: Rate { per_minute: 1, burst: 2 }, ..RateLimitConfig::unlimited() },
        ..ChatConfig::default()
    })
    .await;
    let (owner, g) = setup(&s).await;
    let other = s.user("other").await;
    s.join(&owner, &g, &other).await;
    let path = format!("/channels/{}/messages", g.text);
    s.send(&owner, &g.text, "one").await;
    s.send(&owner, &g.text, "two").await;
    let (st, v) = s.post(&owner, &path, json!({"content": "three"})).await;
    assert_error(st, &v, 429, "rate_limited");
    s.send(&other, &g.text, "someone else may still talk").await;
    let (st, _) = s.get(&owner, &path).await;
    assert_eq!(st, StatusCode::OK, "reading is not limited by the send limit");
}
