//! Every REST endpoint's success path, one behaviour per test, against a real server on a real
//! socket (SQLite in a temp dir).

mod common;

use chat::permissions::Permissions;
use common::{Guild, TestServer, User};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

// ---- small helpers local to this file

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap_or_else(|| panic!("not a list: {list}")).iter().map(id_of).collect()
}

#[track_caller]
fn assert_error(status: StatusCode, body: &Value, want: u16, code: &str) {
    assert_eq!(status.as_u16(), want, "status; body {body}");
    assert_eq!(body["code"], code, "code; body {body}");
    assert!(body["message"].is_string(), "message; body {body}");
}

/// Owner and one member in a fresh guild.
async fn guild_with_member(s: &TestServer) -> (User, User, Guild) {
    let owner = s.user("owner").await;
    let member = s.user("member").await;
    let g = s.guild(&owner, "Guild").await;
    s.join(&owner, &g, &member).await;
    (owner, member, g)
}

async fn create_role(s: &TestServer, owner: &User, g: &Guild, body: Value) -> String {
    let (st, r) = s.post(owner, &format!("/guilds/{}/roles", g.id), body).await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    id_of(&r)
}

async fn set_roles(s: &TestServer, owner: &User, g: &Guild, who: &User, roles: &[&str]) {
    let (st, m) = s.patch(owner, &format!("/guilds/{}/members/{}", g.id, who.id), json!({"roles": roles})).await;
    assert_eq!(st, StatusCode::OK, "{m}");
}

async fn hide_from_everyone(s: &TestServer, owner: &User, g: &Guild, channel: &str) {
    let (st, c) = s
        .put(
            owner,
            &format!("/channels/{channel}/permissions/{}", g.id),
            Some(json!({"kind": "role", "deny": Permissions::VIEW_CHANNEL.bits().to_string()})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
}

async fn create_channel(s: &TestServer, owner: &User, g: &Guild, body: Value) -> Value {
    let (st, c) = s.post(owner, &format!("/guilds/{}/channels", g.id), body).await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    c
}

fn in_future(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339()
}

// ---- accounts

#[tokio::test]
async fn register_returns_user_and_token() {
    let s = TestServer::start().await;
    let (st, body) = s
        .call(None, Method::POST, "/auth/register", Some(json!({"username": "alice", "password": "password123"})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["username"], "alice");
    assert!(body["user"]["id"].as_str().is_some_and(|id| id.parse::<u64>().is_ok()), "{body}");
    assert!(body["user"]["display_name"].is_null());
    assert!(body["user"].get("password_hash").is_none() && body["user"].get("password").is_none());
    let token = body["token"].as_str().expect("token");
    assert!(!token.is_empty());
    let (st, me) = s.call(Some(token), Method::GET, "/users/@me", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["id"], body["user"]["id"]);
}

#[tokio::test]
async fn register_with_taken_username_is_409_username_taken() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let (st, body) = s
        .call(None, Method::POST, "/auth/register", Some(json!({"username": "alice", "password": "password456"})))
        .await;
    assert_error(st, &body, 409, "username_taken");
}

#[tokio::test]
async fn login_returns_user_and_a_new_working_token() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let (st, body) =
        s.call(None, Method::POST, "/auth/login", Some(json!({"username": "alice", "password": "password123"}))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["id"], alice.id.as_str());
    let token = body["token"].as_str().expect("token");
    assert_ne!(token, alice.token);
    let (st, me) = s.call(Some(token), Method::GET, "/users/@me", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["username"], "alice");
}

#[tokio::test]
async fn changing_the_password_logs_out_every_other_session_and_keeps_this_one() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let login = json!({"username": "alice", "password": "password123"});
    let (_, other) = s.call(None, Method::POST, "/auth/login", Some(login.clone())).await;
    let other = other["token"].as_str().expect("token").to_string();

    let wrong = json!({"current_password": "not-it-at-all", "new_password": "a new password"});
    let (st, body) = s.call(Some(&alice.token), Method::POST, "/users/@me/password", Some(wrong)).await;
    assert_error(st, &body, 400, "invalid_credentials");
    let short = json!({"current_password": "password123", "new_password": "short"});
    let (st, body) = s.call(Some(&alice.token), Method::POST, "/users/@me/password", Some(short)).await;
    assert_error(st, &body, 400, "validation_failed");
    assert_eq!(s.call(Some(&other), Method::GET, "/users/@me", None).await.0, StatusCode::OK, "nothing changed yet");

    let change = json!({"current_password": "password123", "new_password": "a new password"});
    let (st, body) = s.call(Some(&alice.token), Method::POST, "/users/@me/password", Some(change)).await;
    assert_eq!((st, body["sessions_revoked"].clone()), (StatusCode::OK, json!(1)), "{body}");
    assert_eq!(s.call(Some(&other), Method::GET, "/users/@me", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.call(Some(&alice.token), Method::GET, "/users/@me", None).await.0,
        StatusCode::OK,
        "this session stays"
    );
    let (st, _) = s.call(None, Method::POST, "/auth/login", Some(login)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the old password is gone");
    let (st, _) = s
        .call(None, Method::POST, "/auth/login", Some(json!({"username": "alice", "password": "a new password"})))
        .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn login_with_wrong_password_is_401_invalid_credentials() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let (st, body) = s
        .call(None, Method::POST, "/auth/login", Some(json!({"username": "alice", "password": "wrong-password"})))
        .await;
    assert_error(st, &body, 401, "invalid_credentials");
}

#[tokio::test]
async fn login_with_unknown_user_is_401_invalid_credentials() {
    let s = TestServer::start().await;
    let (st, body) =
        s.call(None, Method::POST, "/auth/login", Some(json!({"username": "nobody", "password": "password123"}))).await;
    assert_error(st, &body, 401, "invalid_credentials");
}

#[tokio::test]
async fn logout_revokes_the_token() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let (_, other) =
        s.call(None, Method::POST, "/auth/login", Some(json!({"username": "alice", "password": "password123"}))).await;
    let other_token = other["token"].as_str().expect("token").to_string();
    let (st, body) = s.call(Some(&alice.token), Method::POST, "/auth/logout", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    let (st, body) = s.get(&alice, "/users/@me").await;
    assert_error(st, &body, 401, "unauthorized");
    let (st, _) = s.call(Some(&other_token), Method::GET, "/users/@me", None).await;
    assert_eq!(st, StatusCode::OK, "only the logged-out session ends");
}

#[tokio::test]
async fn get_me_returns_the_caller() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let (st, me) = s.get(&alice, "/users/@me").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["id"], alice.id.as_str());
    assert_eq!(me["username"], "alice");
    assert!(me.get("display_name").is_some());
}

#[tokio::test]
async fn patch_me_sets_display_name() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let (st, me) = s.patch(&alice, "/users/@me", json!({"display_name": "Alice A."})).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["display_name"], "Alice A.");
    let (_, me) = s.get(&alice, "/users/@me").await;
    assert_eq!(me["display_name"], "Alice A.");
    let (st, me) = s.patch(&alice, "/users/@me", json!({"display_name": null})).await;
    assert_eq!(st, StatusCode::OK);
    assert!(me["display_name"].is_null(), "null clears: {me}");
}

#[tokio::test]
async fn get_user_by_id_returns_public_profile() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let (st, u) = s.get(&alice, &format!("/users/{}", bob.id)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(u["username"], "bob");
}

#[tokio::test]
async fn sessions_list_marks_current_and_revoke_works() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let (_, second) =
        s.call(None, Method::POST, "/auth/login", Some(json!({"username": "alice", "password": "password123"}))).await;
    let second_token = second["token"].as_str().expect("token").to_string();

    let (st, list) = s.get(&alice, "/users/@me/sessions").await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let list = list.as_array().expect("list").clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list.iter().filter(|x| x["current"] == true).count(), 1);
    assert!(list.iter().all(|x| x.get("token_hash").is_none() && x.get("token").is_none()));
    let other = list.iter().find(|x| x["current"] == false).expect("other session");

    let (st, _) = s.delete(&alice, &format!("/users/@me/sessions/{}", id_of(other))).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = s.call(Some(&second_token), Method::GET, "/users/@me", None).await;
    assert_error(st, &body, 401, "unauthorized");
    let (st, _) = s.get(&alice, "/users/@me").await;
    assert_eq!(st, StatusCode::OK);
    let (st, body) = s.delete(&alice, &format!("/users/@me/sessions/{}", id_of(other))).await;
    assert_error(st, &body, 404, "not_found");
    let (_, list) = s.get(&alice, "/users/@me/sessions").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

// ---- guilds

#[tokio::test]
async fn create_guild_has_general_text_and_voice() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let (st, g) = s.post(&owner, "/guilds", json!({"name": "My Guild"})).await;
    assert_eq!(st, StatusCode::CREATED, "{g}");
    assert_eq!(g["name"], "My Guild");
    assert_eq!(g["owner_id"], owner.id.as_str());
    let channels = g["channels"].as_array().expect("channels");
    assert_eq!(channels.len(), 2, "{g}");
    assert!(channels.iter().any(|c| c["name"] == "general" && c["kind"] == "text"), "{g}");
    assert!(channels.iter().any(|c| c["name"] == "General" && c["kind"] == "voice"), "{g}");
    for c in channels {
        assert_eq!(c["guild_id"], g["id"]);
        assert!(c.get("parent_id").is_some() && c.get("position").is_some(), "{c}");
    }
    let roles = g["roles"].as_array().expect("roles");
    assert!(roles.iter().any(|r| r["id"] == g["id"] && r["name"] == "@everyone"), "@everyone has the guild id: {g}");
}

#[tokio::test]
async fn get_guild_returns_it_to_a_member() {
    let s = TestServer::start().await;
    let (_, member, g) = guild_with_member(&s).await;
    let (st, body) = s.get(&member, &format!("/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["id"], g.id.as_str());
    assert_eq!(body["member_count"], 2);
    assert_eq!(body["channels"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn my_guilds_lists_the_guilds_joined() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let other = s.guild(&owner, "Other").await;
    let (st, list) = s.get(&member, "/users/@me/guilds").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ids(&list), vec![g.id.clone()]);
    let (_, list) = s.get(&owner, "/users/@me/guilds").await;
    let mut got = ids(&list);
    got.sort();
    let mut want = vec![g.id.clone(), other.id];
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn rename_and_delete_guild() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let (st, body) = s.patch(&owner, &format!("/guilds/{}", g.id), json!({"name": "Renamed"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Renamed");
    let (_, body) = s.get(&member, &format!("/guilds/{}", g.id)).await;
    assert_eq!(body["name"], "Renamed");

    let (st, _) = s.delete(&owner, &format!("/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    for u in [&owner, &member] {
        let (st, body) = s.get(u, &format!("/guilds/{}", g.id)).await;
        assert_error(st, &body, 404, "not_found");
    }
    let (st, body) = s.get(&member, &format!("/channels/{}", g.text)).await;
    assert_error(st, &body, 404, "not_found");
}

#[tokio::test]
async fn leave_guild() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let (st, _) = s.delete(&member, &format!("/users/@me/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = s.get(&member, &format!("/guilds/{}", g.id)).await;
    assert_error(st, &body, 404, "not_found");
    let (_, body) = s.get(&owner, &format!("/guilds/{}", g.id)).await;
    assert_eq!(body["member_count"], 1);
    let (st, body) = s.delete(&owner, &format!("/users/@me/guilds/{}", g.id)).await;
    assert_error(st, &body, 400, "owner_cannot_leave");
}

// ---- channels

#[tokio::test]
async fn create_text_and_voice_channels() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let g = s.guild(&owner, "G").await;
    let text = create_channel(&s, &owner, &g, json!({"name": "Off Topic", "kind": "text", "topic": "anything"})).await;
    assert_eq!(text["name"], "off-topic", "text channel names are normalised");
    assert_eq!(text["kind"], "text");
    assert_eq!(text["guild_id"], g.id.as_str());
    assert_eq!(text["topic"], "anything");
    assert!(text["parent_id"].is_null());
    assert!(text["position"].is_i64());
    let voice = create_channel(&s, &owner, &g, json!({"name": "Gaming Room", "kind": "voice"})).await;
    assert_eq!(voice["name"], "Gaming Room");
    assert_eq!(voice["kind"], "voice");
    let (st, list) = s.get(&owner, &format!("/guilds/{}/channels", g.id)).await;
    assert_eq!(st, StatusCode::OK);
    let list = ids(&list);
    assert!(list.contains(&id_of(&text)) && list.contains(&id_of(&voice)));
    let (st, got) = s.get(&owner, &format!("/channels/{}", id_of(&text))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got["name"], "off-topic");
}

#[tokio::test]
async fn channel_kind_defaults_to_text() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let g = s.guild(&owner, "G").await;
    let c = create_channel(&s, &owner, &g, json!({"name": "plain"})).await;
    assert_eq!(c["kind"], "text");
}

#[tokio::test]
async fn update_channel_name_topic_and_position() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let g = s.guild(&owner, "G").await;
    let (st, c) = s
        .patch(&owner, &format!("/channels/{}", g.text), json!({"name": "Lobby Talk", "topic": "hello", "position": 7}))
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["name"], "lobby-talk");
    assert_eq!(c["topic"], "hello");
    assert_eq!(c["position"], 7);
    let (_, c) = s.patch(&owner, &format!("/channels/{}", g.text), json!({"topic": null})).await;
    assert!(c["topic"].is_null(), "{c}");
    assert_eq!(c["name"], "lobby-talk", "absent fields stay");
}

#[tokio::test]
async fn delete_channel() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let c = create_channel(&s, &owner, &g, json!({"name": "doomed"})).await;
    let (st, _) = s.delete(&owner, &format!("/channels/{}", id_of(&c))).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = s.get(&member, &format!("/channels/{}", id_of(&c))).await;
    assert_error(st, &body, 404, "not_found");
    let (_, list) = s.get(&member, &format!("/guilds/{}/channels", g.id)).await;
    assert!(!ids(&list).contains(&id_of(&c)));
}

#[tokio::test]
async fn channel_in_category_can_be_moved_out_and_category_delete_unparents() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let g = s.guild(&owner, "G").await;
    let cat = create_channel(&s, &owner, &g, json!({"name": "Projects", "kind": "category"})).await;
    assert_eq!(cat["kind"], "category");
    let child = create_channel(&s, &owner, &g, json!({"name": "alpha", "parent_id": id_of(&cat)})).await;
    assert_eq!(child["parent_id"], id_of(&cat).as_str());

    let (st, moved) = s.patch(&owner, &format!("/channels/{}", id_of(&child)), json!({"parent_id": null})).await;
    assert_eq!(st, StatusCode::OK, "{moved}");
    assert!(moved["parent_id"].is_null(), "{moved}");
    let (st, back) = s.patch(&owner, &format!("/channels/{}", id_of(&child)), json!({"parent_id": id_of(&cat)})).await;
    assert_eq!(st, StatusCode::OK, "{back}");
    assert_eq!(back["parent_id"], id_of(&cat).as_str());

    let (st, _) = s.delete(&owner, &format!("/channels/{}", id_of(&cat))).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, after) = s.get(&owner, &format!("/channels/{}", id_of(&child))).await;
    assert!(after["parent_id"].is_null(), "children of a deleted category lose their parent: {after}");
}

#[tokio::test]
async fn parent_must_be_a_category_of_the_guild() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let g = s.guild(&owner, "G").await;
    let (st, body) =
        s.post(&owner, &format!("/guilds/{}/channels", g.id), json!({"name": "x", "parent_id": g.text})).await;
    assert_error(st, &body, 400, "validation_failed");
    assert!(body["fields"]["parent_id"].is_string(), "{body}");
}

#[tokio::test]
async fn overwrites_put_and_delete_hide_a_channel_from_everyone() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let secret = id_of(&create_channel(&s, &owner, &g, json!({"name": "secret"})).await);

    let (st, c) = s
        .put(
            &owner,
            &format!("/channels/{secret}/permissions/{}", g.id),
            Some(json!({"kind": "role", "allow": "0", "deny": Permissions::VIEW_CHANNEL.bits().to_string()})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let ow = &c["overwrites"][0];
    assert_eq!(ow["id"], g.id.as_str());
    assert_eq!(ow["kind"], "role");
    assert_eq!(ow["deny"], Permissions::VIEW_CHANNEL.bits().to_string());

    let (st, body) = s.get(&member, &format!("/channels/{secret}")).await;
    assert_error(st, &body, 404, "not_found");
    let (_, guild) = s.get(&member, &format!("/guilds/{}", g.id)).await;
    assert!(!ids(&guild["channels"]).contains(&secret), "hidden from the guild view");
    let (_, list) = s.get(&member, &format!("/guilds/{}/channels", g.id)).await;
    assert!(!ids(&list).contains(&secret));
    let (st, _) = s.get(&owner, &format!("/channels/{secret}")).await;
    assert_eq!(st, StatusCode::OK, "the owner still sees it");

    // A member overwrite lets one member back in.
    let (st, c) = s
        .put(
            &owner,
            &format!("/channels/{secret}/permissions/{}", member.id),
            Some(json!({"kind": "member", "allow": Permissions::VIEW_CHANNEL.bits().to_string()})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let (st, _) = s.get(&member, &format!("/channels/{secret}")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.delete(&owner, &format!("/channels/{secret}/permissions/{}", member.id)).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.get(&member, &format!("/channels/{secret}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, c) = s.delete(&owner, &format!("/channels/{secret}/permissions/{}", g.id)).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["overwrites"].as_array().map(Vec::len), Some(0));
    let (st, _) = s.get(&member, &format!("/channels/{secret}")).await;
    assert_eq!(st, StatusCode::OK, "visible again");
    let (st, body) = s.delete(&owner, &format!("/channels/{secret}/permissions/{}", g.id)).await;
    assert_error(st, &body, 404, "not_found");
}

// ---- invites

#[tokio::test]
async fn invites_create_preview_join_list_revoke() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let joiner = s.user("joiner").await;
    let g = s.guild(&owner, "Invited").await;

    let (st, inv) =
        s.post(&owner, &format!("/guilds/{}/invites", g.id), json!({"max_uses": 5, "max_age_secs": 3600})).await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let code = inv["code"].as_str().expect("code").to_string();
    assert_eq!(inv["guild_id"], g.id.as_str());
    assert_eq!(inv["max_uses"], 5);
    assert_eq!(inv["uses"], 0);
    assert!(inv["expires_at"].is_string(), "{inv}");

    let (st, preview) = s.get(&joiner, &format!("/invites/{code}")).await;
    assert_eq!(st, StatusCode::OK, "{preview}");
    assert_eq!(preview["guild_id"], g.id.as_str());
    assert_eq!(preview["guild_name"], "Invited");
    assert_eq!(preview["member_count"], 1);
    assert_eq!(preview["inviter"]["id"], owner.id.as_str(), "{preview}");
    assert!(preview["online_count"].is_u64(), "{preview}");
    // Before sign-up too: the same answer without a token.
    let (st, anonymous) = s.call(None, Method::GET, &format!("/invites/{code}"), None).await;
    assert_eq!(st, StatusCode::OK, "{anonymous}");
    assert_eq!(anonymous["guild_name"], "Invited");
    assert_eq!(anonymous["inviter"]["username"], preview["inviter"]["username"]);
    let (st, _) = s.call(None, Method::GET, "/invites/nosuchcode", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "an unknown code reveals nothing");

    let (st, joined) = s.post(&joiner, &format!("/invites/{code}"), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{joined}");
    assert_eq!(joined["guild"]["id"], g.id.as_str());
    let (st, _) = s.get(&joiner, &format!("/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::OK, "the joiner is a member");

    let (st, list) = s.get(&owner, &format!("/guilds/{}/invites", g.id)).await;
    assert_eq!(st, StatusCode::OK);
    let listed = list.as_array().expect("list").iter().find(|i| i["code"] == code.as_str()).expect("listed").clone();
    assert_eq!(listed["uses"], 1);

    let (st, _) = s.delete(&owner, &format!("/invites/{code}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = s.get(&joiner, &format!("/invites/{code}")).await;
    assert_error(st, &body, 404, "not_found");
    let (_, list) = s.get(&owner, &format!("/guilds/{}/invites", g.id)).await;
    assert!(list.as_array().expect("list").iter().all(|i| i["code"] != code.as_str()));
}

#[tokio::test]
async fn invite_without_a_body_is_created() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let g = s.guild(&owner, "G").await;
    let (st, inv) = s.call(Some(&owner.token), Method::POST, &format!("/guilds/{}/invites", g.id), None).await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    assert!(inv["max_uses"].is_null() && inv["expires_at"].is_null(), "{inv}");
}

#[tokio::test]
async fn invite_with_max_uses_1_is_exhausted_after_one_join() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let first = s.user("first").await;
    let second = s.user("second").await;
    let g = s.guild(&owner, "G").await;
    let (_, inv) = s.post(&owner, &format!("/guilds/{}/invites", g.id), json!({"max_uses": 1})).await;
    let code = inv["code"].as_str().expect("code");
    let (st, _) = s.post(&first, &format!("/invites/{code}"), json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, body) = s.post(&second, &format!("/invites/{code}"), json!({})).await;
    assert_error(st, &body, 404, "not_found");
    let (st, body) = s.get(&second, &format!("/guilds/{}", g.id)).await;
    assert_error(st, &body, 404, "not_found");
    let (st, body) = s.get(&second, &format!("/invites/{code}")).await;
    assert_error(st, &body, 404, "not_found");
}

#[tokio::test]
async fn invite_expires_after_max_age_secs() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let late = s.user("late").await;
    let g = s.guild(&owner, "G").await;
    let (st, inv) = s.post(&owner, &format!("/guilds/{}/invites", g.id), json!({"max_age_secs": 1})).await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let code = inv["code"].as_str().expect("code");
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (st, body) = s.get(&late, &format!("/invites/{code}")).await;
    assert_error(st, &body, 404, "not_found");
    let (st, body) = s.post(&late, &format!("/invites/{code}"), json!({})).await;
    assert_error(st, &body, 404, "not_found");
}

// ---- members

#[tokio::test]
async fn members_pagination_with_after_and_limit() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let g = s.guild(&owner, "G").await;
    let mut all = vec![owner.id.clone()];
    for i in 0..4 {
        let u = s.user(&format!("m{i}")).await;
        s.join(&owner, &g, &u).await;
        all.push(u.id);
    }
    all.sort_by_key(|id| id.parse::<u64>().expect("numeric id"));
    let path = format!("/guilds/{}/members", g.id);

    let (st, full) = s.get(&owner, &path).await;
    assert_eq!(st, StatusCode::OK, "{full}");
    let got: Vec<String> =
        full.as_array().expect("list").iter().map(|m| m["user"]["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, all, "ordered by user id");
    let first = &full[0];
    assert!(first.get("nick").is_some() && first["roles"].is_array() && first["joined_at"].is_string(), "{first}");

    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let q = if after.is_empty() { format!("{path}?limit=2") } else { format!("{path}?limit=2&after={after}") };
        let (st, page) = s.get(&owner, &q).await;
        assert_eq!(st, StatusCode::OK, "{page}");
        let page: Vec<String> =
            page.as_array().expect("page").iter().map(|m| m["user"]["id"].as_str().unwrap().to_string()).collect();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = last.clone();
        paged.extend(page);
    }
    assert_eq!(paged, all);

    let (st, page) = s.get(&owner, &format!("{path}?limit=1000")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(page.as_array().map(Vec::len), Some(5));
    let (st, body) = s.get(&owner, &format!("{path}?limit=1001")).await;
    assert_error(st, &body, 400, "validation_failed");
    assert!(body["fields"]["limit"].is_string(), "{body}");
    let (st, body) = s.get(&owner, &format!("{path}?limit=0")).await;
    assert_error(st, &body, 400, "validation_failed");
}

#[tokio::test]
async fn get_member_by_id_and_at_me() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let (st, m) = s.get(&owner, &format!("/guilds/{}/members/{}", g.id, member.id)).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["user"]["id"], member.id.as_str());
    let (st, me) = s.get(&member, &format!("/guilds/{}/members/@me", g.id)).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["id"], member.id.as_str());
}

#[tokio::test]
async fn nick_change_by_self_and_by_owner() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let (st, m) = s.patch(&member, &format!("/guilds/{}/members/@me", g.id), json!({"nick": "Memb"})).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["nick"], "Memb");
    let (st, m) =
        s.patch(&owner, &format!("/guilds/{}/members/{}", g.id, member.id), json!({"nick": "Boss Given"})).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["nick"], "Boss Given");
    let (_, m) = s.get(&member, &format!("/guilds/{}/members/@me", g.id)).await;
    assert_eq!(m["nick"], "Boss Given");
    let (_, m) = s.patch(&member, &format!("/guilds/{}/members/@me", g.id), json!({"nick": null})).await;
    assert!(m["nick"].is_null(), "{m}");
}

#[tokio::test]
async fn roles_create_update_delete() {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let g = s.guild(&owner, "G").await;
    let perms = (Permissions::SEND_MESSAGES | Permissions::KICK_MEMBERS).bits().to_string();
    let (st, r) = s
        .post(
            &owner,
            &format!("/guilds/{}/roles", g.id),
            json!({"name": "Mods", "permissions": perms, "color": 0x00ff00, "hoist": true, "mentionable": true}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let role = id_of(&r);
    assert_eq!(r["name"], "Mods");
    assert_eq!(r["permissions"], perms.as_str());
    assert_eq!(r["color"], 0x00ff00);
    assert_eq!(r["hoist"], true);
    assert_eq!(r["mentionable"], true);
    assert_eq!(r["position"], 1, "new roles sit just above @everyone");

    let (st, r) = s
        .patch(&owner, &format!("/guilds/{}/roles/{role}", g.id), json!({"name": "Moderators", "permissions": "2048"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["name"], "Moderators");
    assert_eq!(r["permissions"], "2048");
    assert_eq!(r["hoist"], true, "absent fields stay");

    let (st, list) = s.get(&owner, &format!("/guilds/{}/roles", g.id)).await;
    assert_eq!(st, StatusCode::OK);
    let list_ids = ids(&list);
    assert!(list_ids.contains(&role) && list_ids.contains(&g.id));

    let (st, _) = s.delete(&owner, &format!("/guilds/{}/roles/{role}", g.id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, list) = s.get(&owner, &format!("/guilds/{}/roles", g.id)).await;
    assert!(!ids(&list).contains(&role));
}

#[tokio::test]
async fn role_assigned_to_a_member_grants_its_permissions_and_delete_removes_it() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    // @everyone may not send; the role may.
    let everyone = (Permissions::DEFAULT_EVERYONE - Permissions::SEND_MESSAGES).bits().to_string();
    let (st, body) =
        s.patch(&owner, &format!("/guilds/{}/roles/{}", g.id, g.id), json!({"permissions": everyone})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = s.post(&member, &format!("/channels/{}/messages", g.text), json!({"content": "hi"})).await;
    assert_error(st, &body, 403, "missing_permission");

    let role = create_role(
        &s,
        &owner,
        &g,
        json!({"name": "talkers", "permissions": Permissions::SEND_MESSAGES.bits().to_string()}),
    )
    .await;
    let (st, m) = s.patch(&owner, &format!("/guilds/{}/members/{}", g.id, member.id), json!({"roles": [role]})).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["roles"], json!([role]));
    s.send(&member, &g.text, "now I can talk").await;

    let (st, _) = s.delete(&owner, &format!("/guilds/{}/roles/{role}", g.id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, m) = s.get(&owner, &format!("/guilds/{}/members/{}", g.id, member.id)).await;
    assert_eq!(m["roles"], json!([]), "a deleted role leaves its members: {m}");
    let (st, _) = s.post(&member, &format!("/channels/{}/messages", g.text), json!({"content": "hi"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn kick_removes_a_member_who_may_rejoin() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let (st, _) = s.delete(&owner, &format!("/guilds/{}/members/{}", g.id, member.id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = s.get(&member, &format!("/guilds/{}", g.id)).await;
    assert_error(st, &body, 404, "not_found");
    let (_, list) = s.get(&owner, &format!("/guilds/{}/members", g.id)).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    s.join(&owner, &g, &member).await;
    let (st, _) = s.get(&member, &format!("/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn ban_blocks_rejoin_and_unban_allows_it() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let (_, inv) = s.post(&owner, &format!("/guilds/{}/invites", g.id), json!({})).await;
    let code = inv["code"].as_str().expect("code").to_string();

    let (st, body) =
        s.put(&owner, &format!("/guilds/{}/bans/{}", g.id, member.id), Some(json!({"reason": "spam"}))).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    let (st, body) = s.get(&member, &format!("/guilds/{}", g.id)).await;
    assert_error(st, &body, 404, "not_found");
    let (st, bans) = s.get(&owner, &format!("/guilds/{}/bans", g.id)).await;
    assert_eq!(st, StatusCode::OK);
    let bans = bans.as_array().expect("bans").clone();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0]["user_id"], member.id.as_str());
    assert_eq!(bans[0]["reason"], "spam");

    let (st, body) = s.post(&member, &format!("/invites/{code}"), json!({})).await;
    assert_error(st, &body, 403, "forbidden");
    let (st, _) = s.get(&member, &format!("/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "still not a member");

    let (st, _) = s.delete(&owner, &format!("/guilds/{}/bans/{}", g.id, member.id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, bans) = s.get(&owner, &format!("/guilds/{}/bans", g.id)).await;
    assert_eq!(bans.as_array().map(Vec::len), Some(0));
    let (st, body) = s.post(&member, &format!("/invites/{code}"), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = s.delete(&owner, &format!("/guilds/{}/bans/{}", g.id, member.id)).await;
    assert_error(st, &body, 404, "not_found");
}

#[tokio::test]
async fn ban_without_a_body_works() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let (st, body) = s.put(&owner, &format!("/guilds/{}/bans/{}", g.id, member.id), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    let (_, bans) = s.get(&owner, &format!("/guilds/{}/bans", g.id)).await;
    assert!(bans[0]["reason"].is_null(), "{bans}");
}

#[tokio::test]
async fn timeout_blocks_sending_but_reading_works() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let before = s.send(&owner, &g.text, "before the timeout").await;
    let until = in_future(600);
    let (st, m) =
        s.patch(&owner, &format!("/guilds/{}/members/{}", g.id, member.id), json!({"timed_out_until": until})).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert!(m["timed_out_until"].is_string(), "{m}");

    let (st, body) =
        s.post(&member, &format!("/channels/{}/messages", g.text), json!({"content": "let me talk"})).await;
    assert_error(st, &body, 403, "missing_permission");
    let (st, body) =
        s.put(&member, &format!("/channels/{}/messages/{}/reactions/👍", g.text, id_of(&before)), None).await;
    assert_error(st, &body, 403, "missing_permission");
    let (st, history) = s.get(&member, &format!("/channels/{}/messages", g.text)).await;
    assert_eq!(st, StatusCode::OK, "reading still works: {history}");
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    let (st, _) = s.get(&member, &format!("/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::OK);

    let (st, m) =
        s.patch(&owner, &format!("/guilds/{}/members/{}", g.id, member.id), json!({"timed_out_until": null})).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert!(m["timed_out_until"].is_null());
    s.send(&member, &g.text, "free again").await;
}

// ---- messages

#[tokio::test]
async fn message_send_get_edit_delete() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let m = s.send(&member, &g.text, "hello world").await;
    let mid = id_of(&m);
    assert_eq!(m["channel_id"], g.text.as_str());
    assert_eq!(m["author"]["id"], member.id.as_str());
    assert_eq!(m["author"]["username"], "member");
    assert_eq!(m["content"], "hello world");
    assert!(m["created_at"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{m}");
    assert!(m["edited_at"].is_null());
    assert!(m["reply_to"].is_null());
    assert_eq!(m["mentions"], json!([]));
    assert_eq!(m["reactions"], json!([]));

    let (st, got) = s.get(&owner, &format!("/channels/{}/messages/{mid}", g.text)).await;
    assert_eq!(st, StatusCode::OK, "{got}");
    assert_eq!(got["content"], "hello world");

    let (st, edited) =
        s.patch(&member, &format!("/channels/{}/messages/{mid}", g.text), json!({"content": "hello there"})).await;
    assert_eq!(st, StatusCode::OK, "{edited}");
    assert_eq!(edited["content"], "hello there");
    assert_eq!(edited["id"], mid.as_str());
    assert!(edited["edited_at"].is_string(), "{edited}");

    let (st, _) = s.delete(&member, &format!("/channels/{}/messages/{mid}", g.text)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = s.get(&owner, &format!("/channels/{}/messages/{mid}", g.text)).await;
    assert_error(st, &body, 404, "not_found");
}

#[tokio::test]
async fn moderator_deletes_someone_elses_message() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let m = s.send(&member, &g.text, "bad words").await;
    let (st, _) = s.delete(&owner, &format!("/channels/{}/messages/{}", g.text, id_of(&m))).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, history) = s.get(&member, &format!("/channels/{}/messages", g.text)).await;
    assert_eq!(history, json!([]));
}

#[tokio::test]
async fn reply_to_references_the_original() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let original = s.send(&owner, &g.text, "question?").await;
    let (st, reply) = s
        .post(
            &member,
            &format!("/channels/{}/messages", g.text),
            json!({"content": "answer", "reply_to": id_of(&original)}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["reply_to"], id_of(&original).as_str());
    let (_, got) = s.get(&owner, &format!("/channels/{}/messages/{}", g.text, id_of(&reply))).await;
    assert_eq!(got["reply_to"], id_of(&original).as_str());

    let (st, body) =
        s.post(&member, &format!("/channels/{}/messages", g.text), json!({"content": "x", "reply_to": "12345"})).await;
    assert_error(st, &body, 400, "validation_failed");
    assert!(body["fields"]["reply_to"].is_string(), "{body}");
}

#[tokio::test]
async fn mentions_are_parsed_for_users_mentionable_roles_and_everyone_with_permission() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let open = create_role(&s, &owner, &g, json!({"name": "open", "mentionable": true})).await;
    let closed = create_role(&s, &owner, &g, json!({"name": "closed", "mentionable": false})).await;
    let content = format!("hi <@{}> and <@!{}>, <@&{open}> <@&{closed}> @everyone", owner.id, member.id);

    let m = s.send(&member, &g.text, &content).await;
    let mut users: Vec<String> =
        m["mentions"].as_array().expect("mentions").iter().map(|v| v.as_str().unwrap().to_string()).collect();
    users.sort();
    let mut want = vec![owner.id.clone(), member.id.clone()];
    want.sort();
    assert_eq!(users, want, "{m}");
    assert_eq!(m["mention_roles"], json!([open]), "a member mentions only mentionable roles: {m}");
    assert_eq!(m["mention_everyone"], false, "@everyone needs MENTION_EVERYONE: {m}");

    let m = s.send(&owner, &g.text, &content).await;
    let mut roles: Vec<String> =
        m["mention_roles"].as_array().expect("roles").iter().map(|v| v.as_str().unwrap().to_string()).collect();
    roles.sort();
    let mut want = vec![open.clone(), closed.clone()];
    want.sort();
    assert_eq!(roles, want, "the owner may mention any role: {m}");
    assert_eq!(m["mention_everyone"], true, "{m}");

    // A role granting MENTION_EVERYONE lets a member ping everyone.
    let pinger = create_role(
        &s,
        &owner,
        &g,
        json!({"name": "pinger", "permissions": Permissions::MENTION_EVERYONE.bits().to_string()}),
    )
    .await;
    set_roles(&s, &owner, &g, &member, &[&pinger]).await;
    let m = s.send(&member, &g.text, "@everyone look").await;
    assert_eq!(m["mention_everyone"], true, "{m}");
}

#[tokio::test]
async fn editing_reparses_mentions_with_the_same_rules_as_sending() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let open = create_role(&s, &owner, &g, json!({"name": "open", "mentionable": true})).await;
    let closed = create_role(&s, &owner, &g, json!({"name": "closed", "mentionable": false})).await;
    let content = format!("<@{}> <@&{open}> <@&{closed}> <@&1234567890> @everyone", owner.id);
    let sent = s.send(&member, &g.text, &content).await;
    assert_eq!(sent["mention_roles"], json!([open]), "send: {sent}");

    let m = s.send(&member, &g.text, "nothing yet").await;
    let path = format!("/channels/{}/messages/{}", g.text, id_of(&m));
    let (st, edited) = s.patch(&member, &path, json!({"content": content})).await;
    assert_eq!(st, StatusCode::OK, "{edited}");
    assert_eq!(edited["mentions"], json!([owner.id]), "{edited}");
    assert_eq!(edited["mention_everyone"], false, "{edited}");
    assert_eq!(
        edited["mention_roles"],
        json!([open]),
        "an edit may not mention an unmentionable or unknown role when a send may not: {edited}"
    );
    let (_, got) = s.get(&owner, &path).await;
    assert_eq!(got["mention_roles"], json!([open]), "{got}");
}

#[tokio::test]
async fn reactions_add_remove_with_counts_and_me_per_viewer() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let m = s.send(&owner, &g.text, "react to me").await;
    let base = format!("/channels/{}/messages/{}", g.text, id_of(&m));
    for (u, e) in [(&owner, "👍"), (&member, "👍"), (&member, "🎉"), (&member, "👍")] {
        let (st, body) = s.put(u, &format!("{base}/reactions/{e}"), None).await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    }
    let view = |v: &Value, e: &str| -> Value {
        v["reactions"].as_array().expect("reactions").iter().find(|r| r["emoji"] == e).cloned().unwrap_or(Value::Null)
    };
    let (_, as_owner) = s.get(&owner, &base).await;
    assert_eq!(view(&as_owner, "👍"), json!({"emoji": "👍", "count": 2, "me": true}), "{as_owner}");
    assert_eq!(view(&as_owner, "🎉"), json!({"emoji": "🎉", "count": 1, "me": false}), "{as_owner}");
    let (_, as_member) = s.get(&member, &base).await;
    assert_eq!(view(&as_member, "🎉"), json!({"emoji": "🎉", "count": 1, "me": true}), "{as_member}");
    // History shows the same per-viewer counts.
    let (_, history) = s.get(&member, &format!("/channels/{}/messages", g.text)).await;
    assert_eq!(view(&history[0], "👍"), json!({"emoji": "👍", "count": 2, "me": true}));

    let (st, _) = s.delete(&member, &format!("{base}/reactions/👍")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, as_member) = s.get(&member, &base).await;
    assert_eq!(view(&as_member, "👍"), json!({"emoji": "👍", "count": 1, "me": false}));

    // The owner (MANAGE_MESSAGES) removes the member's other reaction.
    let (st, _) = s.delete(&owner, &format!("{base}/reactions/🎉/{}", member.id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.delete(&owner, &format!("{base}/reactions/👍/@me")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, after) = s.get(&owner, &base).await;
    assert_eq!(after["reactions"], json!([]), "{after}");
}

#[tokio::test]
async fn pins_add_list_remove() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let m = s.send(&member, &g.text, "pin me").await;
    s.send(&member, &g.text, "not me").await;
    let (st, _) = s.put(&owner, &format!("/channels/{}/pins/{}", g.text, id_of(&m)), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, pins) = s.get(&member, &format!("/channels/{}/pins", g.text)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ids(&pins), vec![id_of(&m)]);
    assert_eq!(pins[0]["pinned"], true);
    let (st, _) = s.delete(&owner, &format!("/channels/{}/pins/{}", g.text, id_of(&m))).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, pins) = s.get(&member, &format!("/channels/{}/pins", g.text)).await;
    assert_eq!(pins, json!([]));
}

#[tokio::test]
async fn typing_is_204() {
    let s = TestServer::start().await;
    let (_, member, g) = guild_with_member(&s).await;
    let (st, body) = s.post(&member, &format!("/channels/{}/typing", g.text), json!({})).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    assert!(body.is_null());
}

#[tokio::test]
async fn ack_is_204() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let m = s.send(&owner, &g.text, "read me").await;
    let (st, body) = s.post(&member, &format!("/channels/{}/messages/{}/ack", g.text, id_of(&m)), json!({})).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn history_before_after_around_ordering_and_limits() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let mut sent = Vec::new();
    for i in 0..12 {
        sent.push(id_of(&s.send(&owner, &g.text, &format!("message {i}")).await));
    }
    let path = format!("/channels/{}/messages", g.text);
    let rev =
        |range: std::ops::RangeInclusive<usize>| -> Vec<String> { range.rev().map(|i| sent[i].clone()).collect() };
    let fwd = |range: std::ops::RangeInclusive<usize>| -> Vec<String> { range.map(|i| sent[i].clone()).collect() };

    let (st, all) = s.get(&member, &path).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ids(&all), rev(0..=11), "newest first by default");
    let (_, page) = s.get(&member, &format!("{path}?limit=5")).await;
    assert_eq!(ids(&page), rev(7..=11));
    let (_, page) = s.get(&member, &format!("{path}?before={}&limit=3", sent[5])).await;
    assert_eq!(ids(&page), rev(2..=4), "before: older, newest first");
    let (_, page) = s.get(&member, &format!("{path}?before={}", sent[2])).await;
    assert_eq!(ids(&page), rev(0..=1));
    let (_, page) = s.get(&member, &format!("{path}?after={}&limit=3", sent[5])).await;
    assert_eq!(ids(&page), fwd(6..=8), "after: newer, oldest first");
    let (_, page) = s.get(&member, &format!("{path}?after={}", sent[9])).await;
    assert_eq!(ids(&page), fwd(10..=11));
    let (_, page) = s.get(&member, &format!("{path}?around={}&limit=4", sent[5])).await;
    assert_eq!(ids(&page), rev(4..=7), "around: both sides including the anchor");
    let (_, page) = s.get(&member, &format!("{path}?around={}&limit=5", sent[5])).await;
    let page = ids(&page);
    assert_eq!(page.len(), 5);
    assert!(page.contains(&sent[5]));
    let (_, page) = s.get(&member, &format!("{path}?limit=100")).await;
    assert_eq!(ids(&page).len(), 12);
    let (_, page) = s.get(&member, &format!("{path}?limit=1")).await;
    assert_eq!(ids(&page), rev(11..=11));

    for bad in ["0", "101"] {
        let (st, body) = s.get(&member, &format!("{path}?limit={bad}")).await;
        assert_error(st, &body, 400, "validation_failed");
        assert!(body["fields"]["limit"].is_string(), "{body}");
    }
    let (st, body) = s.get(&member, &format!("{path}?before={}&after={}", sent[1], sent[2])).await;
    assert_error(st, &body, 400, "invalid_query");
}

#[tokio::test]
async fn search_finds_only_messages_in_channels_the_caller_may_read() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let secret = id_of(&create_channel(&s, &owner, &g, json!({"name": "secret"})).await);
    let public = s.send(&owner, &g.text, "the pineapple pizza debate").await;
    let hidden = s.send(&owner, &secret, "secret pineapple plans").await;
    s.send(&owner, &g.text, "nothing to see").await;
    let path = format!("/guilds/{}/messages/search?q=pineapple", g.id);

    let (st, found) = s.get(&member, &path).await;
    assert_eq!(st, StatusCode::OK, "{found}");
    let mut got = ids(&found);
    got.sort();
    let mut both = vec![id_of(&public), id_of(&hidden)];
    both.sort();
    assert_eq!(got, both, "before hiding, both match");

    hide_from_everyone(&s, &owner, &g, &secret).await;
    let (st, found) = s.get(&member, &path).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ids(&found), vec![id_of(&public)], "hidden channel excluded");
    let (_, found) = s.get(&owner, &path).await;
    assert_eq!(ids(&found).len(), 2, "the owner still finds both");
    let (_, found) = s.get(&member, &format!("/guilds/{}/messages/search?q=nomatchword", g.id)).await;
    assert_eq!(found, json!([]));
}

#[tokio::test]
async fn dms_open_list_send_history_and_a_third_user_gets_404() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let eve = s.user("eve").await;
    let (st, dm) = s.post(&alice, "/users/@me/channels", json!({"recipient_id": bob.id})).await;
    assert!(st.is_success(), "{st} {dm}");
    assert_eq!(dm["kind"], "dm");
    assert!(dm["guild_id"].is_null());
    let mut recipients: Vec<String> =
        dm["recipients"].as_array().expect("recipients").iter().map(|v| v.as_str().unwrap().to_string()).collect();
    recipients.sort();
    let mut want = vec![alice.id.clone(), bob.id.clone()];
    want.sort();
    assert_eq!(recipients, want);
    let dm_id = id_of(&dm);

    let (_, again) = s.post(&bob, "/users/@me/channels", json!({"recipient_id": alice.id})).await;
    assert_eq!(id_of(&again), dm_id, "one DM channel per pair");
    for u in [&alice, &bob] {
        let (st, list) = s.get(u, "/users/@me/channels").await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(ids(&list), vec![dm_id.clone()]);
    }
    let (_, list) = s.get(&eve, "/users/@me/channels").await;
    assert_eq!(list, json!([]));

    let first = s.send(&alice, &dm_id, "hi bob").await;
    let second = s.send(&bob, &dm_id, "hi alice").await;
    let (st, history) = s.get(&bob, &format!("/channels/{dm_id}/messages")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ids(&history), vec![id_of(&second), id_of(&first)]);

    for (method, path) in [
        (Method::GET, format!("/channels/{dm_id}")),
        (Method::GET, format!("/channels/{dm_id}/messages")),
        (Method::POST, format!("/channels/{dm_id}/messages")),
        (Method::GET, format!("/channels/{dm_id}/messages/{}", id_of(&first))),
    ] {
        let (st, body) = s.call(Some(&eve.token), method.clone(), &path, Some(json!({"content": "let me in"}))).await;
        assert_error(st, &body, 404, "not_found");
    }
    let (st, body) = s.post(&alice, "/users/@me/channels", json!({"recipient_id": alice.id})).await;
    assert_error(st, &body, 400, "validation_failed");
}

#[tokio::test]
async fn voice_grant_returns_endpoint_token_and_expiry_with_the_rights_chat_decided() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let (st, grant) = s.post(&member, &format!("/channels/{}/voice", g.voice), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{grant}");
    assert!(grant["endpoint"].as_str().is_some_and(|e| e.starts_with("ws")), "{grant}");
    assert_eq!(grant["token"], format!("{}:{}:true:true:false:false", member.id, g.voice));
    let expires = grant["expires_at"].as_str().expect("expires_at");
    let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("RFC 3339");
    assert!(expires > chrono::Utc::now(), "expires in the future");

    // Deny VIDEO on the channel for @everyone: the grant carries speak but not video.
    let (st, body) = s
        .put(
            &owner,
            &format!("/channels/{}/permissions/{}", g.voice, g.id),
            Some(json!({"kind": "role", "deny": Permissions::VIDEO.bits().to_string()})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, grant) = s.post(&member, &format!("/channels/{}/voice", g.voice), json!({})).await;
    assert_eq!(grant["token"], format!("{}:{}:true:false:false:false", member.id, g.voice));

    let (st, body) = s.post(&member, &format!("/channels/{}/voice", g.text), json!({})).await;
    assert_error(st, &body, 400, "not_a_voice_channel");
}

#[tokio::test]
async fn nonce_makes_a_retried_send_idempotent() {
    let s = TestServer::start().await;
    let (owner, member, g) = guild_with_member(&s).await;
    let path = format!("/channels/{}/messages", g.text);
    let (st1, a) = s.post(&member, &path, json!({"content": "once", "nonce": "n-1"})).await;
    let (st2, b) = s.post(&member, &path, json!({"content": "once", "nonce": "n-1"})).await;
    assert_eq!(st1, StatusCode::CREATED, "{a}");
    assert!(st2.is_success(), "{st2} {b}");
    assert_eq!(id_of(&a), id_of(&b), "same nonce → same message");
    assert_eq!(a["nonce"], "n-1");
    let (_, history) = s.get(&member, &path).await;
    assert_eq!(ids(&history), vec![id_of(&a)], "one message in history");

    // Another author's nonce is theirs alone.
    let (_, c) = s.post(&owner, &path, json!({"content": "once", "nonce": "n-1"})).await;
    assert_ne!(id_of(&c), id_of(&a));
    let (_, history) = s.get(&member, &path).await;
    assert_eq!(ids(&history).len(), 2);
}
