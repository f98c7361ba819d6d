//! The permission table: every permission-checked endpoint × {stranger, member without the
//! permission, member with it (through a role granting exactly that permission), owner}, each cell
//! on a fresh guild so cells cannot interfere. Plus the role hierarchy rules.

mod common;

use std::fmt::Write as _;

use chat::permissions::Permissions;
use common::{Guild, TestServer, User};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

// ---- helpers

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

fn bits(p: Permissions) -> String {
    p.bits().to_string()
}

#[track_caller]
fn assert_error(status: StatusCode, body: &Value, want: u16, code: &str) {
    assert_eq!(status.as_u16(), want, "status; body {body}");
    assert_eq!(body["code"], code, "code; body {body}");
}

/// Joins every user through one invite of the owner.
async fn join_all(s: &TestServer, owner: &User, g: &Guild, who: &[&User]) {
    let (st, inv) = s.post(owner, &format!("/guilds/{}/invites", g.id), json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let code = inv["code"].as_str().expect("code");
    for u in who {
        let (st, body) = s.post(u, &format!("/invites/{code}"), json!({})).await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
}

async fn create_role(s: &TestServer, actor: &User, g: &Guild, name: &str, perms: Permissions) -> String {
    let (st, r) =
        s.post(actor, &format!("/guilds/{}/roles", g.id), json!({"name": name, "permissions": bits(perms)})).await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    id_of(&r)
}

async fn set_roles(s: &TestServer, actor: &User, g: &Guild, who: &User, roles: &[&str]) {
    let (st, m) = s.patch(actor, &format!("/guilds/{}/members/{}", g.id, who.id), json!({"roles": roles})).await;
    assert_eq!(st, StatusCode::OK, "{m}");
}

async fn set_everyone(s: &TestServer, owner: &User, g: &Guild, perms: Permissions) {
    let (st, r) =
        s.patch(owner, &format!("/guilds/{}/roles/{}", g.id, g.id), json!({"permissions": bits(perms)})).await;
    assert_eq!(st, StatusCode::OK, "{r}");
}

fn in_future(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339()
}

// ---- the table

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Actor {
    Stranger,
    Without,
    With,
    Owner,
}

const ACTORS: [Actor; 4] = [Actor::Stranger, Actor::Without, Actor::With, Actor::Owner];

/// What a cell expects: any 2xx, or this status with this error code.
#[derive(Clone, Copy, Debug)]
enum Want {
    Ok,
    Err(u16, &'static str),
}

const OK: Want = Want::Ok;
const NOT_FOUND: Want = Want::Err(404, "not_found");
const MISSING: Want = Want::Err(403, "missing_permission");
const FORBIDDEN: Want = Want::Err(403, "forbidden");

#[derive(Clone, Copy, Debug)]
enum Op {
    GetGuild,
    ListMembers,
    ListRoles,
    GetChannel,
    RenameGuild,
    DeleteGuild,
    CreateChannel,
    UpdateChannel,
    DeleteChannel,
    PutOverwrite,
    DeleteOverwrite,
    CreateInvite,
    ListInvites,
    RevokeOthersInvite,
    Kick,
    Ban,
    Unban,
    ListBans,
    Timeout,
    SetOthersNick,
    CreateRole,
    UpdateRole,
    DeleteRole,
    AssignRole,
    Send,
    Typing,
    React,
    History,
    GetMessage,
    ListPins,
    DeleteOthersMessage,
    EditOthersMessage,
    Pin,
    Unpin,
    RemoveOthersReaction,
    VoiceGrant,
    AuditLog,
    ServerMute,
    ServerDeafen,
    MoveMember,
    DisconnectMember,
}

struct Row {
    op: Op,
    /// What the "with" member's role grants.
    perm: Permissions,
    /// Take `perm` away from @everyone (for permissions @everyone has by default).
    strip: bool,
    want: [Want; 4],
}

const fn row(op: Op, perm: Permissions, strip: bool, want: [Want; 4]) -> Row {
    Row { op, perm, strip, want }
}

/// The usual shape: strangers see nothing, members without get 403, members with and owners succeed.
const fn std_row(op: Op, perm: Permissions, strip: bool) -> Row {
    row(op, perm, strip, [NOT_FOUND, MISSING, OK, OK])
}

/// Registered once per table run; every cell builds a fresh guild with them.
struct People {
    owner: User,
    without: User,
    with: User,
    stranger: User,
    victim: User,
}

impl People {
    async fn new(s: &TestServer) -> People {
        People {
            owner: s.user("owner").await,
            without: s.user("without").await,
            with: s.user("with").await,
            stranger: s.user("stranger").await,
            victim: s.user("victim").await,
        }
    }
    fn actor(&self, a: Actor) -> &User {
        match a {
            Actor::Stranger => &self.stranger,
            Actor::Without => &self.without,
            Actor::With => &self.with,
            Actor::Owner => &self.owner,
        }
    }
}

type Request = (Method, String, Option<Value>);

/// Builds the cell's guild and targets (as the owner, or the victim), then the request to try.
async fn prepare(s: &TestServer, p: &People, r: &Row) -> Request {
    let owner = &p.owner;
    let g = s.guild(owner, "Cell").await;
    join_all(s, owner, &g, &[&p.without, &p.with, &p.victim]).await;
    let grant = create_role(s, owner, &g, "grant", r.perm).await;
    set_roles(s, owner, &g, &p.with, &[&grant]).await;

    let victim_message = |content: &'static str| {
        let g = g.clone();
        async move { id_of(&s.send(&p.victim, &g.text, content).await) }
    };
    let req = match r.op {
        Op::GetGuild => (Method::GET, format!("/guilds/{}", g.id), None),
        Op::ListMembers => (Method::GET, format!("/guilds/{}/members", g.id), None),
        Op::ListRoles => (Method::GET, format!("/guilds/{}/roles", g.id), None),
        Op::GetChannel => (Method::GET, format!("/channels/{}", g.text), None),
        Op::RenameGuild => (Method::PATCH, format!("/guilds/{}", g.id), Some(json!({"name": "renamed"}))),
        Op::DeleteGuild => (Method::DELETE, format!("/guilds/{}", g.id), None),
        Op::CreateChannel => {
            (Method::POST, format!("/guilds/{}/channels", g.id), Some(json!({"name": "new-one", "kind": "text"})))
        }
        Op::UpdateChannel => (Method::PATCH, format!("/channels/{}", g.text), Some(json!({"topic": "changed"}))),
        Op::DeleteChannel => {
            let (st, c) = s.post(owner, &format!("/guilds/{}/channels", g.id), json!({"name": "doomed"})).await;
            assert_eq!(st, StatusCode::CREATED, "{c}");
            (Method::DELETE, format!("/channels/{}", id_of(&c)), None)
        }
        Op::PutOverwrite => (
            Method::PUT,
            format!("/channels/{}/permissions/{}", g.text, g.id),
            Some(json!({"kind": "role", "deny": bits(Permissions::ADD_REACTIONS)})),
        ),
        Op::DeleteOverwrite => {
            let path = format!("/channels/{}/permissions/{}", g.text, p.victim.id);
            let (st, c) =
                s.put(owner, &path, Some(json!({"kind": "member", "deny": bits(Permissions::ADD_REACTIONS)}))).await;
            assert_eq!(st, StatusCode::OK, "{c}");
            (Method::DELETE, path, None)
        }
        Op::CreateInvite => (Method::POST, format!("/guilds/{}/invites", g.id), Some(json!({"max_uses": 3}))),
        Op::ListInvites => (Method::GET, format!("/guilds/{}/invites", g.id), None),
        Op::RevokeOthersInvite => {
            let (st, inv) = s.post(owner, &format!("/guilds/{}/invites", g.id), json!({})).await;
            assert_eq!(st, StatusCode::CREATED, "{inv}");
            (Method::DELETE, format!("/invites/{}", inv["code"].as_str().expect("code")), None)
        }
        Op::Kick => (Method::DELETE, format!("/guilds/{}/members/{}", g.id, p.victim.id), None),
        Op::Ban => (Method::PUT, format!("/guilds/{}/bans/{}", g.id, p.victim.id), Some(json!({"reason": "table"}))),
        Op::Unban => {
            let path = format!("/guilds/{}/bans/{}", g.id, p.victim.id);
            let (st, body) = s.put(owner, &path, None).await;
            assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
            (Method::DELETE, path, None)
        }
        Op::ListBans => (Method::GET, format!("/guilds/{}/bans", g.id), None),
        Op::Timeout => (
            Method::PATCH,
            format!("/guilds/{}/members/{}", g.id, p.victim.id),
            Some(json!({"timed_out_until": in_future(600)})),
        ),
        Op::SetOthersNick => {
            (Method::PATCH, format!("/guilds/{}/members/{}", g.id, p.victim.id), Some(json!({"nick": "renamed"})))
        }
        Op::CreateRole => (Method::POST, format!("/guilds/{}/roles", g.id), Some(json!({"name": "fresh"}))),
        Op::UpdateRole => {
            // Created after "grant", so it sits below it.
            let target = create_role(s, owner, &g, "target", Permissions::empty()).await;
            (Method::PATCH, format!("/guilds/{}/roles/{target}", g.id), Some(json!({"name": "edited", "color": 255})))
        }
        Op::DeleteRole => {
            let target = create_role(s, owner, &g, "target", Permissions::empty()).await;
            (Method::DELETE, format!("/guilds/{}/roles/{target}", g.id), None)
        }
        Op::AssignRole => {
            let target = create_role(s, owner, &g, "target", Permissions::empty()).await;
            (Method::PATCH, format!("/guilds/{}/members/{}", g.id, p.victim.id), Some(json!({"roles": [target]})))
        }
        Op::Send => (Method::POST, format!("/channels/{}/messages", g.text), Some(json!({"content": "hello"}))),
        Op::Typing => (Method::POST, format!("/channels/{}/typing", g.text), None),
        Op::React => {
            let m = victim_message("react here").await;
            (Method::PUT, format!("/channels/{}/messages/{m}/reactions/👍", g.text), None)
        }
        Op::History => (Method::GET, format!("/channels/{}/messages?limit=10", g.text), None),
        Op::GetMessage => {
            let m = victim_message("read me").await;
            (Method::GET, format!("/channels/{}/messages/{m}", g.text), None)
        }
        Op::ListPins => (Method::GET, format!("/channels/{}/pins", g.text), None),
        Op::DeleteOthersMessage => {
            let m = victim_message("delete me").await;
            (Method::DELETE, format!("/channels/{}/messages/{m}", g.text), None)
        }
        Op::EditOthersMessage => {
            let m = victim_message("edit me").await;
            (Method::PATCH, format!("/channels/{}/messages/{m}", g.text), Some(json!({"content": "edited"})))
        }
        Op::Pin => {
            let m = victim_message("pin me").await;
            (Method::PUT, format!("/channels/{}/pins/{m}", g.text), None)
        }
        Op::Unpin => {
            let m = victim_message("unpin me").await;
            let (st, body) = s.put(owner, &format!("/channels/{}/pins/{m}", g.text), None).await;
            assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
            (Method::DELETE, format!("/channels/{}/pins/{m}", g.text), None)
        }
        Op::RemoveOthersReaction => {
            let m = victim_message("reacted").await;
            let (st, body) = s.put(&p.victim, &format!("/channels/{}/messages/{m}/reactions/👍", g.text), None).await;
            assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
            (Method::DELETE, format!("/channels/{}/messages/{m}/reactions/👍/{}", g.text, p.victim.id), None)
        }
        Op::VoiceGrant => (Method::POST, format!("/channels/{}/voice", g.voice), None),
        Op::AuditLog => (Method::GET, format!("/guilds/{}/audit-logs", g.id), None),
        Op::ServerMute => {
            (Method::PATCH, format!("/guilds/{}/members/{}", g.id, p.victim.id), Some(json!({"mute": true})))
        }
        Op::ServerDeafen => {
            (Method::PATCH, format!("/guilds/{}/members/{}", g.id, p.victim.id), Some(json!({"deaf": true})))
        }
        Op::MoveMember | Op::DisconnectMember => {
            // The victim sits in the guild's voice channel (as the voice side would report it).
            let id = |v: &str| v.parse::<chat::Id>().expect("id");
            s.chat.voice_state(chat::voice::VoiceState {
                guild_id: Some(id(&g.id)),
                channel_id: Some(id(&g.voice)),
                user_id: id(&p.victim.id),
                self_mute: false,
                self_deaf: false,
                server_mute: false,
                server_deaf: false,
            });
            let to = match r.op {
                Op::MoveMember => {
                    let (st, c) = s
                        .post(owner, &format!("/guilds/{}/channels", g.id), json!({"name": "Other", "kind": "voice"}))
                        .await;
                    assert_eq!(st, StatusCode::CREATED, "{c}");
                    json!(id_of(&c))
                }
                _ => Value::Null,
            };
            (Method::PATCH, format!("/guilds/{}/members/{}", g.id, p.victim.id), Some(json!({"channel_id": to})))
        }
    };
    if r.strip {
        set_everyone(s, owner, &g, Permissions::DEFAULT_EVERYONE - r.perm).await;
    }
    req
}

fn matches(want: Want, status: StatusCode, body: &Value) -> bool {
    match want {
        Want::Ok => status.is_success(),
        Want::Err(code, name) => status.as_u16() == code && body["code"] == name && body["message"].is_string(),
    }
}

fn describe(want: Want) -> String {
    match want {
        Want::Ok => "2xx".into(),
        Want::Err(code, name) => format!("{code} {name}"),
    }
}

/// Runs every cell and panics with the whole table if any cell is wrong.
async fn run_table(rows: &[Row]) {
    let s = TestServer::start().await;
    let people = People::new(&s).await;
    let mut failures = 0;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<22} | {:^10} | {:^10} | {:^10} | {:^10}",
        "endpoint", "stranger", "without", "with", "owner"
    );
    let mut details = String::new();
    for r in rows {
        let mut cells = Vec::new();
        for (i, actor) in ACTORS.iter().enumerate() {
            let (method, path, body) = prepare(&s, &people, r).await;
            let (status, answer) = s.call(Some(&people.actor(*actor).token), method.clone(), &path, body).await;
            if matches(r.want[i], status, &answer) {
                cells.push("ok".to_string());
            } else {
                failures += 1;
                cells.push("FAIL".to_string());
                let _ = writeln!(
                    details,
                    "{:?} as {actor:?}: {method} {path}: want {}, got {} {}",
                    r.op,
                    describe(r.want[i]),
                    status.as_u16(),
                    answer
                );
            }
        }
        let _ = writeln!(
            table,
            "{:<22} | {:^10} | {:^10} | {:^10} | {:^10}",
            format!("{:?}", r.op),
            cells[0],
            cells[1],
            cells[2],
            cells[3]
        );
    }
    assert!(failures == 0, "{failures} permission cell(s) wrong:\n{table}\n{details}");
}

#[tokio::test]
async fn permission_table_guilds_channels_and_invites() {
    run_table(&[
        row(Op::GetGuild, Permissions::empty(), false, [NOT_FOUND, OK, OK, OK]),
        row(Op::ListMembers, Permissions::empty(), false, [NOT_FOUND, OK, OK, OK]),
        row(Op::ListRoles, Permissions::empty(), false, [NOT_FOUND, OK, OK, OK]),
        row(Op::GetChannel, Permissions::VIEW_CHANNEL, true, [NOT_FOUND, NOT_FOUND, OK, OK]),
        std_row(Op::RenameGuild, Permissions::MANAGE_GUILD, false),
        // Owner only: not even ADMINISTRATOR may delete the guild.
        row(Op::DeleteGuild, Permissions::ADMINISTRATOR, false, [NOT_FOUND, FORBIDDEN, FORBIDDEN, OK]),
        std_row(Op::CreateChannel, Permissions::MANAGE_CHANNELS, false),
        std_row(Op::UpdateChannel, Permissions::MANAGE_CHANNELS, false),
        std_row(Op::DeleteChannel, Permissions::MANAGE_CHANNELS, false),
        std_row(Op::PutOverwrite, Permissions::MANAGE_ROLES, false),
        std_row(Op::DeleteOverwrite, Permissions::MANAGE_ROLES, false),
        std_row(Op::CreateInvite, Permissions::CREATE_INVITE, true),
        std_row(Op::ListInvites, Permissions::MANAGE_GUILD, false),
        std_row(Op::RevokeOthersInvite, Permissions::MANAGE_GUILD, false),
    ])
    .await;
}

#[tokio::test]
async fn permission_table_members_and_roles() {
    run_table(&[
        std_row(Op::Kick, Permissions::KICK_MEMBERS, false),
        std_row(Op::Ban, Permissions::BAN_MEMBERS, false),
        std_row(Op::Unban, Permissions::BAN_MEMBERS, false),
        std_row(Op::ListBans, Permissions::BAN_MEMBERS, false),
        std_row(Op::Timeout, Permissions::MODERATE_MEMBERS, false),
        std_row(Op::SetOthersNick, Permissions::MANAGE_GUILD, false),
        std_row(Op::CreateRole, Permissions::MANAGE_ROLES, false),
        std_row(Op::UpdateRole, Permissions::MANAGE_ROLES, false),
        std_row(Op::DeleteRole, Permissions::MANAGE_ROLES, false),
        std_row(Op::AssignRole, Permissions::MANAGE_ROLES, false),
    ])
    .await;
}

#[tokio::test]
async fn permission_table_messages_and_voice() {
    run_table(&[
        std_row(Op::Send, Permissions::SEND_MESSAGES, true),
        std_row(Op::Typing, Permissions::SEND_MESSAGES, true),
        std_row(Op::React, Permissions::ADD_REACTIONS, true),
        std_row(Op::History, Permissions::READ_MESSAGE_HISTORY, true),
        std_row(Op::GetMessage, Permissions::READ_MESSAGE_HISTORY, true),
        std_row(Op::ListPins, Permissions::READ_MESSAGE_HISTORY, true),
        std_row(Op::DeleteOthersMessage, Permissions::MANAGE_MESSAGES, false),
        // Only the author edits a message, whatever anyone's permissions.
        row(Op::EditOthersMessage, Permissions::MANAGE_MESSAGES, false, [NOT_FOUND, FORBIDDEN, FORBIDDEN, FORBIDDEN]),
        std_row(Op::Pin, Permissions::MANAGE_MESSAGES, false),
        std_row(Op::Unpin, Permissions::MANAGE_MESSAGES, false),
        std_row(Op::RemoveOthersReaction, Permissions::MANAGE_MESSAGES, false),
        std_row(Op::VoiceGrant, Permissions::CONNECT, true),
    ])
    .await;
}

#[tokio::test]
async fn permission_table_audit_log_and_voice_moderation() {
    run_table(&[
        std_row(Op::AuditLog, Permissions::VIEW_AUDIT_LOG, false),
        std_row(Op::ServerMute, Permissions::MUTE_MEMBERS, false),
        std_row(Op::ServerDeafen, Permissions::DEAFEN_MEMBERS, false),
        std_row(Op::MoveMember, Permissions::MOVE_MEMBERS, false),
        std_row(Op::DisconnectMember, Permissions::MOVE_MEMBERS, false),
    ])
    .await;
}

// ---- role hierarchy and moderation limits

/// Owner, a moderator holding `mod_perms` through role "mod", and a plain member, in one guild.
/// Role "high" (no permissions) is created first, so it sits above "mod".
struct Hierarchy {
    s: TestServer,
    owner: User,
    moderator: User,
    plain: User,
    g: Guild,
    high: String,
    mod_role: String,
}

async fn hierarchy(mod_perms: Permissions) -> Hierarchy {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let moderator = s.user("moderator").await;
    let plain = s.user("plain").await;
    let g = s.guild(&owner, "H").await;
    join_all(&s, &owner, &g, &[&moderator, &plain]).await;
    let high = create_role(&s, &owner, &g, "high", Permissions::empty()).await;
    let mod_role = create_role(&s, &owner, &g, "mod", mod_perms).await;
    set_roles(&s, &owner, &g, &moderator, &[&mod_role]).await;
    let (_, roles) = s.get(&owner, &format!("/guilds/{}/roles", g.id)).await;
    let pos =
        |id: &str| roles.as_array().expect("roles").iter().find(|r| r["id"] == id).expect("role")["position"].as_i64();
    assert!(pos(&high) > pos(&mod_role), "fixture: high above mod: {roles}");
    Hierarchy { s, owner, moderator, plain, g, high, mod_role }
}

#[tokio::test]
async fn manage_roles_cannot_touch_a_role_at_or_above_the_actors_highest() {
    let h = hierarchy(Permissions::MANAGE_ROLES).await;
    let (s, m, g) = (&h.s, &h.moderator, &h.g);
    for target in [&h.high, &h.mod_role] {
        let (st, body) = s.patch(m, &format!("/guilds/{}/roles/{target}", g.id), json!({"name": "mine now"})).await;
        assert_error(st, &body, 403, "forbidden");
        let (st, body) = s.delete(m, &format!("/guilds/{}/roles/{target}", g.id)).await;
        assert_error(st, &body, 403, "forbidden");
        let (st, body) =
            s.patch(m, &format!("/guilds/{}/members/{}", g.id, h.plain.id), json!({"roles": [target]})).await;
        assert_error(st, &body, 403, "forbidden");
    }
    let (_, member) = s.get(&h.owner, &format!("/guilds/{}/members/{}", g.id, h.plain.id)).await;
    assert_eq!(member["roles"], json!([]), "nothing was assigned: {member}");
    let (_, roles) = s.get(&h.owner, &format!("/guilds/{}/roles", g.id)).await;
    assert!(roles.as_array().expect("roles").iter().any(|r| r["id"] == h.high.as_str() && r["name"] == "high"));
}

#[tokio::test]
async fn manage_roles_may_manage_roles_below_its_highest() {
    let h = hierarchy(Permissions::MANAGE_ROLES).await;
    let (s, m, g) = (&h.s, &h.moderator, &h.g);
    let low = create_role(s, m, g, "low", Permissions::empty()).await;
    let (st, body) = s.patch(m, &format!("/guilds/{}/roles/{low}", g.id), json!({"name": "lower"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    set_roles(s, m, g, &h.plain, &[&low]).await;
    let (st, body) = s.patch(m, &format!("/guilds/{}/members/{}", g.id, h.plain.id), json!({"roles": []})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // Moving it up to (or past) the actor's own highest role is refused.
    let (_, roles) = s.get(m, &format!("/guilds/{}/roles", g.id)).await;
    let mod_pos =
        roles.as_array().expect("roles").iter().find(|r| r["id"] == h.mod_role.as_str()).expect("mod")["position"]
            .as_i64()
            .expect("position");
    let (st, body) = s.patch(m, &format!("/guilds/{}/roles/{low}", g.id), json!({"position": mod_pos})).await;
    assert_error(st, &body, 403, "forbidden");
    let (st, _) = s.delete(m, &format!("/guilds/{}/roles/{low}", g.id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn nobody_grants_a_permission_they_do_not_have() {
    let h = hierarchy(Permissions::MANAGE_ROLES).await;
    let (s, m, g) = (&h.s, &h.moderator, &h.g);
    let (st, body) = s
        .post(
            m,
            &format!("/guilds/{}/roles", g.id),
            json!({"name": "admin", "permissions": bits(Permissions::ADMINISTRATOR)}),
        )
        .await;
    assert_error(st, &body, 403, "forbidden");
    let low = create_role(s, m, g, "low", Permissions::empty()).await;
    let (st, body) = s
        .patch(m, &format!("/guilds/{}/roles/{low}", g.id), json!({"permissions": bits(Permissions::BAN_MEMBERS)}))
        .await;
    assert_error(st, &body, 403, "forbidden");
    let (st, body) = s
        .put(
            m,
            &format!("/channels/{}/permissions/{}", g.text, g.id),
            Some(json!({"kind": "role", "allow": bits(Permissions::MANAGE_MESSAGES)})),
        )
        .await;
    assert_error(st, &body, 403, "forbidden");
}

#[tokio::test]
async fn no_one_can_kick_ban_or_time_out_the_owner() {
    let h = hierarchy(Permissions::KICK_MEMBERS | Permissions::BAN_MEMBERS | Permissions::MODERATE_MEMBERS).await;
    let (s, g) = (&h.s, &h.g);
    // An administrator as well as a moderator.
    let admin_role = create_role(s, &h.owner, g, "admin", Permissions::ADMINISTRATOR).await;
    set_roles(s, &h.owner, g, &h.plain, &[&admin_role]).await;
    for actor in [&h.moderator, &h.plain] {
        let (st, body) = s.delete(actor, &format!("/guilds/{}/members/{}", g.id, h.owner.id)).await;
        assert_error(st, &body, 403, "forbidden");
        let (st, body) = s.put(actor, &format!("/guilds/{}/bans/{}", g.id, h.owner.id), None).await;
        assert_error(st, &body, 403, "forbidden");
        let (st, body) = s
            .patch(
                actor,
                &format!("/guilds/{}/members/{}", g.id, h.owner.id),
                json!({"timed_out_until": in_future(600)}),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    }
    let (st, body) = s.delete(&h.owner, &format!("/guilds/{}/members/{}", g.id, h.owner.id)).await;
    assert_error(st, &body, 403, "forbidden");
    let (st, _) = s.get(&h.owner, &format!("/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::OK, "the owner is still there");
    let (_, bans) = s.get(&h.owner, &format!("/guilds/{}/bans", g.id)).await;
    assert_eq!(bans, json!([]));
}

#[tokio::test]
async fn moderators_cannot_act_on_peers_or_higher_members() {
    let h = hierarchy(Permissions::KICK_MEMBERS | Permissions::BAN_MEMBERS).await;
    let (s, g) = (&h.s, &h.g);
    // "plain" gets the same role: a peer.
    set_roles(s, &h.owner, g, &h.plain, &[&h.mod_role]).await;
    let (st, body) = s.delete(&h.moderator, &format!("/guilds/{}/members/{}", g.id, h.plain.id)).await;
    assert_error(st, &body, 403, "forbidden");
    // Now above the moderator.
    set_roles(s, &h.owner, g, &h.plain, &[&h.high]).await;
    let (st, body) = s.put(&h.moderator, &format!("/guilds/{}/bans/{}", g.id, h.plain.id), None).await;
    assert_error(st, &body, 403, "forbidden");
    let (st, _) = s.get(&h.plain, &format!("/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::OK, "still a member");
}

#[tokio::test]
async fn an_overwrite_can_take_a_permission_away_in_one_channel() {
    // The channel-level path of the calculation through the API: a member with MANAGE_MESSAGES
    // from a role loses it in one channel through a role overwrite.
    let h = hierarchy(Permissions::MANAGE_MESSAGES).await;
    let (s, g) = (&h.s, &h.g);
    let (st, body) = s
        .put(
            &h.owner,
            &format!("/channels/{}/permissions/{}", g.text, h.mod_role),
            Some(json!({"kind": "role", "deny": bits(Permissions::MANAGE_MESSAGES)})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let m = s.send(&h.plain, &g.text, "mine").await;
    let (st, body) = s.delete(&h.moderator, &format!("/channels/{}/messages/{}", g.text, id_of(&m))).await;
    assert_error(st, &body, 403, "missing_permission");
    let (st, _) = s.delete(&h.owner, &format!("/channels/{}/messages/{}", g.text, id_of(&m))).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}
