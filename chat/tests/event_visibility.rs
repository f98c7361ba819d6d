//! The permission matrix over events: every dispatch, READY field and GUILD_CREATE field that names
//! a channel reaches exactly the sessions whose member may view that channel, and permission
//! changes move a member in and out of that audience.
//!
//! The world: alice owns the guild; carol holds the role `staff`; bob does not. A text channel and
//! a voice channel are hidden from @everyone (VIEW_CHANNEL and CONNECT denied) and shown to `staff`.
//! "Receives nothing of it" is checked strictly: no frame bob receives contains the hidden
//! channels' ids (or the hidden message's id) anywhere.

mod common;

use std::time::Duration;

use common::{Gateway, Guild, Next, TestServer, User};
use serde_json::{Value, json};

const VIEW_AND_CONNECT: &str = "1049600"; // VIEW_CHANNEL (1 << 10) | CONNECT (1 << 20)

struct World {
    srv: TestServer,
    alice: User,
    bob: User,
    carol: User,
    g: Guild,
    staff_role: String,
    hidden_text: String,
    hidden_voice: String,
}

async fn hidden_channel(srv: &TestServer, alice: &User, g: &Guild, role: &str, name: &str, kind: &str) -> String {
    let (s, c) = srv.post(alice, &format!("/guilds/{}/channels", g.id), json!({"name": name, "kind": kind})).await;
    assert!(s.is_success(), "{c}");
    let id = c["id"].as_str().expect("id").to_string();
    let deny = json!({"kind": "role", "deny": VIEW_AND_CONNECT});
    let (s, b) = srv.put(alice, &format!("/channels/{id}/permissions/{}", g.id), Some(deny)).await;
    assert!(s.is_success(), "{b}");
    let allow = json!({"kind": "role", "allow": VIEW_AND_CONNECT});
    let (s, b) = srv.put(alice, &format!("/channels/{id}/permissions/{role}"), Some(allow)).await;
    assert!(s.is_success(), "{b}");
    id
}

async fn world() -> World {
    let srv = TestServer::start().await;
    let alice = srv.user("alice").await;
    let bob = srv.user("bob").await;
    let carol = srv.user("carol").await;
    let g = srv.guild(&alice, "Guild").await;
    srv.join(&alice, &g, &bob).await;
    srv.join(&alice, &g, &carol).await;
    let (s, role) = srv.post(&alice, &format!("/guilds/{}/roles", g.id), json!({"name": "staff"})).await;
    assert!(s.is_success(), "{role}");
    let staff_role = role["id"].as_str().expect("id").to_string();
    let (s, m) =
        srv.patch(&alice, &format!("/guilds/{}/members/{}", g.id, carol.id), json!({"roles": [staff_role]})).await;
    assert!(s.is_success(), "{m}");
    let hidden_text = hidden_channel(&srv, &alice, &g, &staff_role, "staff", "text").await;
    let hidden_voice = hidden_channel(&srv, &alice, &g, &staff_role, "staff-voice", "voice").await;
    World { srv, alice, bob, carol, g, staff_role, hidden_text, hidden_voice }
}

fn id(s: &str) -> chat::Id {
    s.parse().expect("id")
}

impl World {
    fn voice(&self, who: &User, channel: Option<&str>, self_mute: bool) {
        self.srv.chat.voice_state(chat::voice::VoiceState {
            guild_id: Some(id(&self.g.id)),
            channel_id: channel.map(id),
            user_id: id(&who.id),
            self_mute,
            self_deaf: false,
            server_mute: false,
            server_deaf: false,
        });
    }

    async fn ready(&self, who: &User) -> (Gateway, Value) {
        let mut gw = self.srv.gateway(who).await;
        let ready = gw.expect("READY").await;
        (gw, ready)
    }

    /// A public message: once a gateway has it, everything published before it has been delivered.
    async fn marker(&self) -> String {
        self.srv.send(&self.alice, &self.g.text, "marker").await["id"].as_str().expect("id").to_string()
    }
}

/// Every dispatch up to and including the MESSAGE_CREATE of `marker`, less presence (which names
/// no channel and comes and goes with the test's own connections).
async fn frames_until(gw: &mut Gateway, marker: &str) -> Vec<Value> {
    frames_through(gw, |v| v["t"] == "MESSAGE_CREATE" && v["d"]["id"] == marker).await
}

/// Every dispatch (less presence) up to and including the first that `last` accepts.
async fn frames_through(gw: &mut Gateway, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        match gw.next(Duration::from_secs(5)).await {
            Next::Frame(v) if v["op"] == 0 && v["t"] != "PRESENCE_UPDATE" => {
                let done = last(&v);
                got.push(v);
                if done {
                    return got;
                }
            }
            Next::Frame(_) => {}
            other => panic!("waiting for the marker: {other:?} after {got:?}"),
        }
    }
}

fn names(frames: &[Value]) -> Vec<String> {
    frames.iter().map(|f| f["t"].as_str().unwrap_or_default().to_string()).collect()
}

fn mentions_any(frames: &[Value], ids: &[&str]) -> Option<String> {
    frames.iter().map(|f| f.to_string()).find(|text| ids.iter().any(|i| text.contains(i)))
}

#[tokio::test]
async fn no_event_of_a_hidden_channel_reaches_a_member_who_cannot_view_it() {
    let w = world().await;
    let (mut bob, _) = w.ready(&w.bob).await;
    let (mut carol, _) = w.ready(&w.carol).await;
    let (ht, hv) = (w.hidden_text.clone(), w.hidden_voice.clone());
    let mut hidden_message = String::new();

    // (what happens in a hidden channel, the dispatch carol must receive for it)
    type Step = (&'static str, &'static str);
    let steps: [Step; 12] = [
        ("message", "MESSAGE_CREATE"),
        ("edit", "MESSAGE_UPDATE"),
        ("react", "MESSAGE_REACTION_ADD"),
        ("unreact", "MESSAGE_REACTION_REMOVE"),
        ("pin", "CHANNEL_PINS_UPDATE"),
        ("typing", "TYPING_START"),
        ("rename", "CHANNEL_UPDATE"),
        ("voice join", "VOICE_STATE_UPDATE"),
        ("voice mute", "VOICE_STATE_UPDATE"),
        ("voice leave", "VOICE_STATE_UPDATE"),
        ("delete message", "MESSAGE_DELETE"),
        ("delete channel", "CHANNEL_DELETE"),
    ];
    for (step, expected) in steps {
        let msg = |m: &str| format!("/channels/{ht}/messages/{m}");
        match step {
            "message" => {
                let m = w.srv.send(&w.alice, &ht, &format!("secret for <@{}>", w.bob.id)).await;
                hidden_message = m["id"].as_str().expect("id").to_string();
            }
            "edit" => drop(w.srv.patch(&w.alice, &msg(&hidden_message), json!({"content": "edited"})).await),
            "react" => {
                drop(w.srv.put(&w.alice, &format!("{}/reactions/%F0%9F%91%8D", msg(&hidden_message)), None).await)
            }
            "unreact" => {
                drop(w.srv.delete(&w.alice, &format!("{}/reactions/%F0%9F%91%8D", msg(&hidden_message))).await)
            }
            "pin" => drop(w.srv.put(&w.alice, &format!("/channels/{ht}/pins/{hidden_message}"), None).await),
            "typing" => {
                w.srv.call(Some(&w.alice.token), reqwest::Method::POST, &format!("/channels/{ht}/typing"), None).await;
            }
            "rename" => drop(w.srv.patch(&w.alice, &format!("/channels/{ht}"), json!({"name": "still-secret"})).await),
            "voice join" => w.voice(&w.alice, Some(&hv), false),
            "voice mute" => w.voice(&w.alice, Some(&hv), true),
            "voice leave" => w.voice(&w.alice, None, true),
            "delete message" => drop(w.srv.delete(&w.alice, &msg(&hidden_message)).await),
            "delete channel" => drop(w.srv.delete(&w.alice, &format!("/channels/{hv}")).await),
            _ => unreachable!(),
        }
        // A voice report is announced by a task of its own, so a marker sent at once could overtake
        // it: wait until carol has it (the same publish reaches bob, so bob's frames stay ordered).
        let mut seen = if step.starts_with("voice") {
            frames_through(&mut carol, |v| v["t"] == expected).await
        } else {
            Vec::new()
        };
        let marker = w.marker().await;
        seen.extend(frames_until(&mut carol, &marker).await);
        assert!(names(&seen).contains(&expected.to_string()), "{step}: carol (staff) must get {expected}: {seen:?}");
        let got = frames_until(&mut bob, &marker).await;
        let leak = mentions_any(&got, &[&ht, &hv, &hidden_message]);
        assert!(leak.is_none(), "{step}: bob learnt of the hidden channel: {leak:?}");
        assert_eq!(names(&got), vec!["MESSAGE_CREATE"], "{step}: bob gets only the public marker");
    }
}

#[tokio::test]
async fn ready_and_guild_create_name_no_hidden_channel_voice_state_or_read_state() {
    let w = world().await;
    w.srv.send(&w.alice, &w.hidden_text, &format!("unread mention of <@{}>", w.bob.id)).await;
    w.voice(&w.carol, Some(&w.hidden_voice), false);
    w.voice(&w.alice, Some(&w.g.voice), false);
    let hidden = [w.hidden_text.as_str(), w.hidden_voice.as_str()];

    let (_gw, ready) = w.ready(&w.bob).await;
    let text = ready.to_string();
    assert!(!hidden.iter().any(|h| text.contains(h)), "bob's READY names a hidden channel: {text}");
    assert!(!text.contains(&format!("\"user_id\":\"{}\"", w.carol.id)), "nor carol's hidden voice state");
    let states = ready["d"]["guilds"][0]["voice_states"].as_array().expect("voice_states");
    assert_eq!(states.len(), 1, "alice in the public voice channel is listed: {states:?}");

    let (_gw, ready) = w.ready(&w.carol).await;
    let states = ready["d"]["guilds"][0]["voice_states"].as_array().expect("voice_states");
    assert_eq!(states.len(), 2, "carol sees both voice states: {states:?}");

    // A newcomer's GUILD_CREATE follows the same rule.
    let dave = w.srv.user("dave").await;
    let (mut gd, _) = w.ready(&dave).await;
    w.srv.join(&w.alice, &w.g, &dave).await;
    let created = gd.expect("GUILD_CREATE").await.to_string();
    assert!(!hidden.iter().any(|h| created.contains(h)), "dave's GUILD_CREATE names a hidden channel: {created}");
    assert!(created.contains(&w.g.voice), "the public voice state is there");
}

/// Waits for dispatch `t` about `channel` (a channel id in `d.id` or `d.channel_id`), skipping others.
async fn expect_about(gw: &mut Gateway, t: &str, channel: &str) -> Value {
    loop {
        let v = gw.expect(t).await;
        if v["d"]["id"] == channel || v["d"]["channel_id"] == channel {
            return v;
        }
    }
}

#[tokio::test]
async fn an_overwrite_that_reveals_a_voice_channel_brings_it_and_its_voice_states_and_hiding_takes_them_back() {
    let w = world().await;
    w.voice(&w.carol, Some(&w.hidden_voice), false);
    let (mut bob, _) = w.ready(&w.bob).await;
    let path = format!("/channels/{}/permissions/{}", w.hidden_voice, w.bob.id);
    let (s, b) = w.srv.put(&w.alice, &path, Some(json!({"kind": "member", "allow": VIEW_AND_CONNECT}))).await;
    assert!(s.is_success(), "{b}");
    let marker = w.marker().await;
    let got = frames_until(&mut bob, &marker).await;
    assert_eq!(names(&got), vec!["CHANNEL_CREATE", "VOICE_STATE_UPDATE", "MESSAGE_CREATE"], "{got:?}");
    assert_eq!(got[0]["d"]["id"], w.hidden_voice.as_str());
    assert_eq!(got[1]["d"]["user_id"], w.carol.id.as_str());
    assert_eq!(got[1]["d"]["channel_id"], w.hidden_voice.as_str());

    let (s, b) = w.srv.delete(&w.alice, &path).await;
    assert!(s.is_success(), "{b}");
    let marker = w.marker().await;
    let got = frames_until(&mut bob, &marker).await;
    assert_eq!(names(&got), vec!["VOICE_STATE_UPDATE", "CHANNEL_DELETE", "MESSAGE_CREATE"], "{got:?}");
    assert_eq!(got[0]["d"]["user_id"], w.carol.id.as_str());
    assert_eq!(got[0]["d"]["channel_id"], Value::Null, "carol is gone from bob's view");
    assert_eq!(got[1]["d"]["id"], w.hidden_voice.as_str());
    // Carol, who kept her sight, only saw the channel change.
    let (mut carol, _) = w.ready(&w.carol).await;
    w.srv.put(&w.alice, &path, Some(json!({"kind": "member", "deny": "0"}))).await;
    expect_about(&mut carol, "CHANNEL_UPDATE", &w.hidden_voice).await;
}

#[tokio::test]
async fn gaining_and_losing_a_role_moves_a_member_in_and_out_of_the_hidden_channels() {
    let w = world().await;
    w.voice(&w.carol, Some(&w.hidden_voice), false);
    let (mut bob, _) = w.ready(&w.bob).await;
    let member = format!("/guilds/{}/members/{}", w.g.id, w.bob.id);
    w.srv.patch(&w.alice, &member, json!({"roles": [w.staff_role]})).await;
    expect_about(&mut bob, "CHANNEL_CREATE", &w.hidden_text).await;
    let state = expect_about(&mut bob, "VOICE_STATE_UPDATE", &w.hidden_voice).await;
    assert_eq!(state["d"]["user_id"], w.carol.id.as_str());
    // Now bob is in the audience: a voice change there reaches him.
    w.voice(&w.carol, Some(&w.hidden_voice), true);
    assert_eq!(expect_about(&mut bob, "VOICE_STATE_UPDATE", &w.hidden_voice).await["d"]["self_mute"], true);

    w.srv.patch(&w.alice, &member, json!({"roles": []})).await;
    let marker = w.marker().await;
    let got = frames_until(&mut bob, &marker).await;
    let deleted: Vec<&Value> = got.iter().filter(|f| f["t"] == "CHANNEL_DELETE").map(|f| &f["d"]["id"]).collect();
    assert_eq!(deleted.len(), 2, "both hidden channels go: {got:?}");
    assert!(got.iter().any(|f| f["t"] == "VOICE_STATE_UPDATE" && f["d"]["channel_id"].is_null()), "{got:?}");
    // And he is out of the audience again.
    w.voice(&w.carol, None, true);
    let marker = w.marker().await;
    let got = frames_until(&mut bob, &marker).await;
    assert!(mentions_any(&got, &[&w.hidden_voice]).is_none(), "{got:?}");
    assert!(!names(&got).contains(&"VOICE_STATE_UPDATE".to_string()), "carol leaving a hidden channel: {got:?}");
}

#[tokio::test]
async fn role_permission_changes_and_role_deletion_change_who_sees_a_channel() {
    let w = world().await;
    w.voice(&w.carol, Some(&w.hidden_voice), false);
    let (mut bob, _) = w.ready(&w.bob).await;
    let (mut carol, _) = w.ready(&w.carol).await;
    // @everyone becomes administrator: bob now sees everything, with who sits where.
    let everyone = format!("/guilds/{}/roles/{}", w.g.id, w.g.id);
    let (s, b) = w.srv.patch(&w.alice, &everyone, json!({"permissions": "8"})).await;
    assert!(s.is_success(), "{b}");
    expect_about(&mut bob, "CHANNEL_CREATE", &w.hidden_voice).await;
    expect_about(&mut bob, "VOICE_STATE_UPDATE", &w.hidden_voice).await;
    let (s, b) = w.srv.patch(&w.alice, &everyone, json!({"permissions": "3214913"})).await;
    assert!(s.is_success(), "{b}");
    expect_about(&mut bob, "CHANNEL_DELETE", &w.hidden_voice).await;

    // Deleting `staff` takes the hidden channels from carol, who saw them only through it.
    let (s, b) = w.srv.delete(&w.alice, &format!("/guilds/{}/roles/{}", w.g.id, w.staff_role)).await;
    assert!(s.is_success(), "{b}");
    expect_about(&mut carol, "CHANNEL_DELETE", &w.hidden_text).await;
    let marker = w.marker().await;
    let got = frames_until(&mut carol, &marker).await;
    assert!(got.iter().any(|f| f["t"] == "CHANNEL_DELETE" && f["d"]["id"] == w.hidden_voice.as_str()), "{got:?}");
    // Bob saw neither before nor after: nothing about them.
    let got = frames_until(&mut bob, &marker).await;
    assert!(mentions_any(&got, &[&w.hidden_text, &w.hidden_voice]).is_none(), "{got:?}");
}
