//! Account security through the REST API: TOTP two-factor authentication (enrol, log in with a
//! code or a recovery code, brute force limited, disable), changing the username, and deleting the
//! account (messages kept as a deleted user's).

mod common;

use common::{TestServer, User};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// RFC 6238 with SHA-1, 6 digits, 30 s steps, from a base32 secret (an independent implementation:
/// what an authenticator app computes).
fn totp_at(secret_b32: &str, unix: u64) -> String {
    let key = base32_decode(secret_b32);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).expect("key");
    mac.update(&(unix / 30).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[offset] & 0x7f) << 24)
        | (u32::from(h[offset + 1]) << 16)
        | (u32::from(h[offset + 2]) << 8)
        | u32::from(h[offset + 3]);
    format!("{:06}", bin % 1_000_000)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// The app's next code (one step ahead, inside the server's skew): the current one was spent by
/// `enable`, and a code is good once.
fn next_code(secret_b32: &str) -> String {
    totp_at(secret_b32, now() + 30)
}

fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase()).expect("base32") as u32;
        value = (value << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((value >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

async fn login(s: &TestServer, name: &str, password: &str) -> (StatusCode, Value) {
    s.call(None, Method::POST, "/auth/login", Some(json!({"username": name, "password": password}))).await
}

/// Enables 2FA for `u`; returns the secret, the recovery codes and the time whose code enabled it.
async fn enable(s: &TestServer, u: &User) -> (String, Vec<String>, u64) {
    let (st, setup) = s.post(u, "/users/@me/mfa/totp/setup", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{setup}");
    assert!(setup["qr_svg"].as_str().unwrap().starts_with("data:image/svg+xml;base64,"));
    assert!(setup["otpauth_url"].as_str().unwrap().starts_with("otpauth://totp/Chorus:"));
    let secret = setup["secret"].as_str().expect("secret").to_string();
    let at = now();
    let code = totp_at(&secret, at);
    let (st, body) = s
        .post(u, "/users/@me/mfa/totp/enable", json!({"secret": secret, "code": code, "password": "password123"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let codes: Vec<String> =
        body["recovery_codes"].as_array().expect("codes").iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(codes.len(), 10);
    (secret, codes, at)
}

#[tokio::test]
async fn with_totp_on_a_login_needs_a_code_from_the_app_after_the_password() {
    let s = TestServer::start().await;
    let u = s.user("alice").await;
    let (secret, _, _) = enable(&s, &u).await;
    let (st, first) = login(&s, "alice", "password123").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(first["mfa"], true);
    assert!(first["token"].is_null(), "no session before the second factor: {first}");
    let ticket = first["ticket"].as_str().expect("ticket");
    let (st, body) =
        s.call(None, Method::POST, "/auth/mfa/totp", Some(json!({"ticket": ticket, "code": "000000"}))).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_mfa_code")), "{body}");
    let code = next_code(&secret);
    let (st, body) = s.call(None, Method::POST, "/auth/mfa/totp", Some(json!({"ticket": ticket, "code": code}))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token");
    let (st, me) = s.call(Some(token), Method::GET, "/users/@me", None).await;
    assert_eq!((st, me["username"].as_str()), (StatusCode::OK, Some("alice")));
    // A wrong password still says only that.
    let (st, body) = login(&s, "alice", "wrong-password").await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")));
}

#[tokio::test]
async fn a_totp_code_is_good_once() {
    let s = TestServer::start().await;
    let u = s.user("alice").await;
    let (secret, _, enabled_at) = enable(&s, &u).await;
    let mfa = |code: String| {
        let s = &s;
        async move {
            let (_, first) = login(s, "alice", "password123").await;
            let ticket = first["ticket"].as_str().expect("ticket").to_string();
            s.call(None, Method::POST, "/auth/mfa/totp", Some(json!({"ticket": ticket, "code": code}))).await
        }
    };
    let (st, body) = mfa(totp_at(&secret, enabled_at)).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_mfa_code")),
        "the code that enabled 2FA is spent: {body}"
    );
    let code = next_code(&secret);
    let (st, body) = mfa(code.clone()).await;
    assert_eq!(st, StatusCode::OK, "a later code logs in: {body}");
    let (st, body) = mfa(code).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_mfa_code")), "replayed: {body}");
}

#[tokio::test]
async fn a_recovery_code_logs_in_once_and_a_forged_ticket_never() {
    let s = TestServer::start().await;
    let u = s.user("alice").await;
    let (_, codes, _) = enable(&s, &u).await;
    let ticket = |v: &Value| v["ticket"].as_str().expect("ticket").to_string();
    let (_, first) = login(&s, "alice", "password123").await;
    let typed = codes[0].to_uppercase().replace('-', " ");
    let (st, body) =
        s.call(None, Method::POST, "/auth/mfa/totp", Some(json!({"ticket": ticket(&first), "code": typed}))).await;
    assert_eq!(st, StatusCode::OK, "a recovery code, however typed: {body}");
    let (_, again) = login(&s, "alice", "password123").await;
    let (st, _) =
        s.call(None, Method::POST, "/auth/mfa/totp", Some(json!({"ticket": ticket(&again), "code": codes[0]}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a recovery code works once");
    // A real ticket with one digit of its signature changed (always a change, whatever the ticket).
    let tampered = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut raw = b64.decode(ticket(&again)).expect("a ticket is base64");
        let last = raw.last_mut().expect("not empty");
        *last = if *last == b'0' { b'1' } else { b'0' };
        b64.encode(raw)
    };
    for forged in ["", "bm90IGEgdGlja2V0", &tampered] {
        let (st, body) =
            s.call(None, Method::POST, "/auth/mfa/totp", Some(json!({"ticket": forged, "code": codes[1]}))).await;
        assert_eq!(
            (st, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_ticket")),
            "{forged:?}: {body}"
        );
    }
}

#[tokio::test]
async fn guessing_codes_is_limited_per_account_whatever_the_address() {
    let s = TestServer::start().await;
    let u = s.user("alice").await;
    let (secret, _, _) = enable(&s, &u).await;
    let (_, first) = login(&s, "alice", "password123").await;
    let ticket = first["ticket"].as_str().expect("ticket");
    let mut limited = false;
    for guess in 0..12 {
        let (st, _) = s
            .call(None, Method::POST, "/auth/mfa/totp", Some(json!({"ticket": ticket, "code": format!("{guess:06}")})))
            .await;
        if st == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "a run of wrong codes is cut off");
    let code = next_code(&secret);
    let (st, _) = s.call(None, Method::POST, "/auth/mfa/totp", Some(json!({"ticket": ticket, "code": code}))).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "even the right code waits out the limit");
}

#[tokio::test]
async fn enabling_needs_the_password_and_a_code_from_the_secret_and_disabling_needs_both_again() {
    let s = TestServer::start().await;
    let u = s.user("alice").await;
    let (_, setup) = s.post(&u, "/users/@me/mfa/totp/setup", json!({})).await;
    let secret = setup["secret"].as_str().unwrap().to_string();
    let code = totp_at(&secret, now());
    let (st, body) = s
        .post(&u, "/users/@me/mfa/totp/enable", json!({"secret": secret, "code": code, "password": "nope-nope"}))
        .await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_credentials")),
        "not a dead session"
    );
    let (st, body) = s
        .post(&u, "/users/@me/mfa/totp/enable", json!({"secret": "JBSWY3DP", "code": code, "password": "password123"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a too-short secret: {body}");
    let (_, login_plain) = login(&s, "alice", "password123").await;
    assert!(login_plain["token"].is_string(), "2FA is still off");

    let (secret, _, _) = enable(&s, &u).await;
    let (st, body) =
        s.post(&u, "/users/@me/mfa/totp/disable", json!({"password": "password123", "code": "123456"})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_mfa_code")));
    let code = next_code(&secret);
    let (st, _) = s.post(&u, "/users/@me/mfa/totp/disable", json!({"password": "password123", "code": code})).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, plain) = login(&s, "alice", "password123").await;
    assert!(plain["token"].is_string(), "2FA is off again: {plain}");
}

#[tokio::test]
async fn a_username_change_needs_the_password_and_a_free_name_and_is_announced() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let g = s.guild(&alice, "G").await;
    s.join(&alice, &g, &bob).await;
    let mut gb = s.gateway(&bob).await;
    gb.expect("READY").await;
    let (st, body) = s.patch(&alice, "/users/@me", json!({"username": "alicia"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let (st, body) = s.patch(&alice, "/users/@me", json!({"username": "BOB", "password": "password123"})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::CONFLICT, Some("username_taken")));
    let (st, body) = s.patch(&alice, "/users/@me", json!({"username": "alicia", "password": "wrong"})).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_credentials")), "{body}");
    let (st, user) = s.patch(&alice, "/users/@me", json!({"username": "alicia", "password": "password123"})).await;
    assert_eq!((st, user["username"].as_str()), (StatusCode::OK, Some("alicia")));
    let ev = gb.expect("USER_UPDATE").await;
    assert_eq!(ev["d"]["username"], "alicia");
    assert_eq!(login(&s, "alicia", "password123").await.0, StatusCode::OK);
    assert_eq!(login(&s, "alice", "password123").await.0, StatusCode::UNAUTHORIZED, "the old name is gone");
}

#[tokio::test]
async fn a_deleted_account_leaves_its_guilds_keeps_its_messages_as_a_deleted_users_and_frees_its_name() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let g = s.guild(&alice, "G").await;
    s.join(&alice, &g, &bob).await;
    s.send(&bob, &g.text, "bob was here").await;
    let mut ga = s.gateway(&alice).await;
    ga.expect("READY").await;
    // An owner must give the guild away first.
    let (st, body) =
        s.call(Some(&alice.token), Method::DELETE, "/users/@me", Some(json!({"password": "password123"}))).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("owns_guilds")), "{body}");
    let (st, body) = s.call(Some(&bob.token), Method::DELETE, "/users/@me", Some(json!({"password": "nope"}))).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_credentials")),
        "a wrong password, not a dead session"
    );
    let (st, body) =
        s.call(Some(&bob.token), Method::DELETE, "/users/@me", Some(json!({"password": "password123"}))).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    let gone = ga.expect("GUILD_MEMBER_REMOVE").await;
    assert_eq!(gone["d"]["user"]["id"], bob.id.as_str());
    assert_eq!(s.get(&bob, "/users/@me").await.0, StatusCode::UNAUTHORIZED, "its sessions are gone");
    let (_, history) = s.get(&alice, &format!("/channels/{}/messages", g.text)).await;
    let kept = history.as_array().unwrap().iter().find(|m| m["content"] == "bob was here").expect("kept");
    assert_eq!(kept["author"]["username"], "deleted-user");
    assert_eq!(login(&s, "bob", "password123").await.0, StatusCode::UNAUTHORIZED);
    let again = s.user("bob").await;
    assert_ne!(again.id, bob.id, "the name is free for a new account");
}

#[tokio::test]
async fn with_totp_on_deleting_the_account_also_needs_a_code() {
    let s = TestServer::start().await;
    let u = s.user("alice").await;
    let (secret, _, _) = enable(&s, &u).await;
    let (st, body) =
        s.call(Some(&u.token), Method::DELETE, "/users/@me", Some(json!({"password": "password123"}))).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_mfa_code")), "{body}");
    let code = next_code(&secret);
    let (st, _) = s
        .call(Some(&u.token), Method::DELETE, "/users/@me", Some(json!({"password": "password123", "code": code})))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}
