//! `chorus admin`, `chorus backup` and `chorus restore` against the real binary and a real SQLite
//! store, on a stopped instance and beside a running one: each command's success and errors (with
//! their exit codes), registration modes over REST, a disabled user cut off, and a backup taken
//! while messages are being written.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn json_of(run: &Run) -> Value {
    assert_eq!(run.code, 0, "stdout {} stderr {}", run.stdout, run.stderr);
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[test]
fn user_commands_succeed_and_fail_with_their_exit_codes() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let listed = run_command(d, &["admin", "user", "list"], None);
    assert_eq!(listed.code, 1, "no database yet: {}", listed.stderr);
    assert!(listed.stderr.contains("no database"), "{}", listed.stderr);

    let created = json_of(&run_command(
        d,
        &["admin", "--json", "user", "create", "Root", "--password-stdin", "--admin"],
        Some("a long password\n"),
    ));
    assert_eq!((created["username"].clone(), created["admin"].clone()), (json!("Root"), json!(true)));
    let taken = run_command(d, &["admin", "user", "create", "root", "--password-stdin"], Some("another one\n"));
    assert_eq!(taken.code, 4, "a taken name, case-insensitively: {}", taken.stderr);
    let no_stdin = run_command(d, &["admin", "user", "create", "bob"], None);
    assert_eq!(no_stdin.code, 2, "a password never comes from the command line: {}", no_stdin.stderr);
    let short = run_command(d, &["admin", "user", "create", "bob", "--password-stdin"], Some("short\n"));
    assert_eq!(short.code, 2, "{}", short.stderr);
    assert!(short.stderr.contains("password"), "{}", short.stderr);
    let bad_name =
        run_command(d, &["admin", "user", "create", "no spaces", "--password-stdin"], Some("long enough!\n"));
    assert_eq!(bad_name.code, 2, "{}", bad_name.stderr);
    json_of(&run_command(
        d,
        &["admin", "--json", "user", "create", "bob", "--password-stdin"],
        Some("bobs password\n"),
    ));

    let users = json_of(&run_command(d, &["admin", "--json", "user", "list"], None));
    let names: Vec<&str> = users.as_array().expect("a list").iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["Root", "bob"]);
    let text = run_command(d, &["admin", "user", "list"], None);
    assert!(text.stdout.contains("Root  [admin]") && text.stdout.contains("bob"), "{}", text.stdout);

    let admin = json_of(&run_command(d, &["admin", "--json", "user", "set-admin", "bob"], None));
    assert_eq!(admin["admin"], true);
    let revoked = json_of(&run_command(d, &["admin", "--json", "user", "set-admin", "bob", "--revoke"], None));
    assert_eq!(revoked["admin"], false);
    let first = run_command(d, &["admin", "user", "set-admin", "Root", "--revoke"], None);
    assert!(first.stderr.contains("first registered user"), "the first user stays an admin: {}", first.stderr);
    for args in [
        &["admin", "user", "set-admin", "nobody"][..],
        &["admin", "user", "disable", "nobody"],
        &["admin", "user", "enable", "nobody"],
    ] {
        assert_eq!(run_command(d, args, None).code, 3, "{args:?}: an unknown user");
    }
    let missing =
        run_command(d, &["admin", "user", "reset-password", "nobody", "--password-stdin"], Some("whatever123\n"));
    assert_eq!(missing.code, 3);
    let reset = json_of(&run_command(
        d,
        &["admin", "--json", "user", "reset-password", "bob", "--password-stdin"],
        Some("a new password\n"),
    ));
    assert_eq!(reset["sessions_revoked"], 0);
    let disabled = json_of(&run_command(d, &["admin", "--json", "user", "disable", "bob"], None));
    assert_eq!(disabled["user"]["disabled"], true);
    let enabled = json_of(&run_command(d, &["admin", "--json", "user", "enable", "bob"], None));
    assert_eq!(enabled["disabled"], false);

    let invite =
        json_of(&run_command(d, &["admin", "--json", "invite", "create", "--uses", "3", "--expires", "60"], None));
    assert_eq!(invite["max_uses"], 3);
    assert_eq!(invite["code"].as_str().map(str::len), Some(10));
    assert_eq!(run_command(d, &["admin", "invite", "create", "--uses", "0"], None).code, 2);

    let guilds = json_of(&run_command(d, &["admin", "--json", "guild", "list"], None));
    assert_eq!(guilds, json!([]));
    assert_eq!(run_command(d, &["admin", "guild", "delete", "12345"], None).code, 3);
    assert_eq!(run_command(d, &["admin", "guild", "delete", "not-an-id"], None).code, 2);
}

async fn login(c: &Chorus, name: &str, password: &str) -> (u16, Value) {
    c.api(None, reqwest::Method::POST, "/auth/login", Some(json!({"username": name, "password": password}))).await
}

#[tokio::test]
async fn registration_invite_takes_a_code_from_the_cli_and_counts_its_uses() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start_with(dir.path(), free_port(), &["--registration", "invite"]).await;
    let (s, b) = c.api(None, reqwest::Method::GET, "/instance", None).await;
    assert_eq!((s, &b["registration"]), (200, &json!("invite")));
    assert_eq!(b["uploads"]["max_files"], 10, "the client also learns the upload limits: {b}");
    let body =
        |name: &str, code: Option<&str>| json!({"username": name, "password": "password123", "invite_code": code});
    let (s, b) = c.api(None, reqwest::Method::POST, "/auth/register", Some(body("ann", None))).await;
    assert_eq!((s, b["code"].clone()), (403, json!("invite_required")));
    let invite = json_of(&run_command(dir.path(), &["admin", "--json", "invite", "create", "--uses", "1"], None));
    let code = invite["code"].as_str().expect("code");
    let (s, b) = c.api(None, reqwest::Method::POST, "/auth/register", Some(body("ann", Some("wrong-code")))).await;
    assert_eq!((s, b["code"].clone()), (403, json!("invalid_invite_code")));
    let (s, _) = c.api(None, reqwest::Method::POST, "/auth/register", Some(body("ann", Some(code)))).await;
    assert_eq!(s, 201, "a valid code registers");
    let (s, b) = c.api(None, reqwest::Method::POST, "/auth/register", Some(body("ann", Some(code)))).await;
    assert_eq!((s, b["code"].clone()), (409, json!("username_taken")), "a taken name costs no use");
    let (s, b) = c.api(None, reqwest::Method::POST, "/auth/register", Some(body("bea", Some(code)))).await;
    assert_eq!((s, b["code"].clone()), (403, json!("invalid_invite_code")), "a single-use code is used up");
}

#[tokio::test]
async fn registration_closed_leaves_only_the_cli() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start_with(dir.path(), free_port(), &["--registration", "closed"]).await;
    let (s, b) = c
        .api(None, reqwest::Method::POST, "/auth/register", Some(json!({"username": "ann", "password": "password123"})))
        .await;
    assert_eq!((s, b["code"].clone()), (403, json!("registration_closed")));
    let made = run_command(dir.path(), &["admin", "user", "create", "ann", "--password-stdin"], Some("password123\n"));
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert_eq!(
        login(&c, "ann", "password123").await.0,
        200,
        "an account made by the CLI logs in on the running server"
    );
}

#[tokio::test]
async fn a_disabled_user_is_refused_and_its_open_gateway_closed() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start_with(dir.path(), free_port(), &["--heartbeat-ms", "1000"]).await;
    let token = register(&c, "mallory").await;
    let url = format!("{}/gateway", c.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    ws.send(WsMessage::Text(json!({"op": 2, "d": {"token": token}}).to_string().into())).await.expect("identify");
    // A session that is open and READY before the disable, so only the heartbeat check can close it.
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.to_text().unwrap_or_default().contains("\"READY\"") {
                return true;
            }
        }
        false
    });
    assert!(ready.await.unwrap_or(false), "READY before the disable");

    let disabled = run_command(dir.path(), &["admin", "--json", "user", "disable", "mallory"], None);
    assert_eq!(json_of(&disabled)["sessions_revoked"], 1);
    assert_eq!(c.api(Some(&token), reqwest::Method::GET, "/users/@me", None).await.0, 401, "the token is refused");
    let (s, b) = login(&c, "mallory", "password123").await;
    assert_eq!((s, b["code"].clone()), (403, json!("account_disabled")));
    assert_eq!(login(&c, "mallory", "wrong password").await.0, 401, "a wrong password learns nothing");

    // The client keeps heartbeating; at a heartbeat the server finds the login gone and closes.
    let deadline = Instant::now() + Duration::from_secs(20);
    // At the server's interval, as the web client does (no faster, which would hide a slow check).
    let mut heartbeat = tokio::time::interval(Duration::from_millis(1000));
    let code = loop {
        assert!(Instant::now() < deadline, "the gateway stayed open");
        tokio::select! {
            _ = heartbeat.tick() => {
                if ws.send(WsMessage::Text(json!({"op": 1, "d": null}).to_string().into())).await.is_err() {
                    break None;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(WsMessage::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                _ => break None,
            },
        }
    };
    assert_eq!(code, Some(4004), "closed as authentication failed");

    let enabled = run_command(dir.path(), &["admin", "user", "enable", "mallory"], None);
    assert_eq!(enabled.code, 0);
    assert_eq!(login(&c, "mallory", "password123").await.0, 200, "enabled again");
}

/// The next text frame of a WebSocket as JSON, or None when it closed or stayed silent for 15 s.
async fn next_json<S>(ws: &mut S) -> Option<Value>
where
    S: futures::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(WsMessage::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn a_disabled_users_voice_call_ends_and_the_guild_sees_them_leave() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start(dir.path(), free_port()).await;
    let owner = register(&c, "alice").await;
    let mallory = register(&c, "mallory").await;
    let (_, g) = c.api(Some(&owner), reqwest::Method::POST, "/guilds", Some(json!({"name": "G"}))).await;
    let guild = g["id"].as_str().expect("guild").to_string();
    let voice = voice_channel_id(&g);
    let (_, inv) =
        c.api(Some(&owner), reqwest::Method::POST, &format!("/guilds/{guild}/invites"), Some(json!({}))).await;
    let code = inv["code"].as_str().expect("code");
    assert_eq!(c.api(Some(&mallory), reqwest::Method::POST, &format!("/invites/{code}"), None).await.0, 200);

    // Alice watches the guild; Mallory joins the voice channel.
    let (mut gw, _) = tokio_tungstenite::connect_async(format!("{}/gateway", c.base.replace("http://", "ws://")))
        .await
        .expect("gateway");
    gw.send(WsMessage::Text(json!({"op": 2, "d": {"token": owner}}).to_string().into())).await.expect("identify");
    let (s, grant) = c.api(Some(&mallory), reqwest::Method::POST, &format!("/channels/{voice}/voice"), None).await;
    assert_eq!(s, 200, "{grant}");
    let (mut call, _) =
        tokio_tungstenite::connect_async(grant["endpoint"].as_str().expect("endpoint")).await.expect("voice");
    call.send(WsMessage::Text(json!({"type": "join", "token": grant["token"]}).to_string().into()))
        .await
        .expect("join");
    loop {
        let m = next_json(&mut call).await.expect("joined");
        assert_ne!(m["type"], "error", "{m}");
        if m["type"] == "joined" {
            break;
        }
    }
    let voice_state = |v: &Value, in_channel: bool| {
        v["t"] == "VOICE_STATE_UPDATE"
            && v["d"]["user_id"].as_str().is_some()
            && (v["d"]["channel_id"] == voice.as_str()) == in_channel
    };
    loop {
        let m = next_json(&mut gw).await.expect("alice sees mallory join");
        if voice_state(&m, true) {
            break;
        }
    }

    let disabled = run_command(dir.path(), &["admin", "user", "disable", "mallory"], None);
    assert_eq!(disabled.code, 0, "{}", disabled.stderr);
    // Within the account check's period (5 s) the call is told why and closed, with no further
    // message from the client.
    let started = Instant::now();
    let told = loop {
        match next_json(&mut call).await {
            Some(m) if m["type"] == "error" => break m,
            Some(_) => {}
            None => panic!("the call closed without saying why"),
        }
    };
    assert_eq!(told["code"], "account_disabled", "{told}");
    assert!(next_json(&mut call).await.is_none(), "the voice socket closes");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "ended within the check period (plus a loaded machine's slack)"
    );
    loop {
        let m = next_json(&mut gw).await.expect("alice sees mallory leave");
        if voice_state(&m, false) {
            assert!(m["d"]["channel_id"].is_null(), "{m}");
            break;
        }
    }
}

#[tokio::test]
async fn a_backup_taken_while_writing_holds_every_message_acknowledged_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Chorus::start(dir.path(), free_port()).await;
    let token = register(&c, "writer").await;
    let (_, guild) = c.api(Some(&token), reqwest::Method::POST, "/guilds", Some(json!({"name": "g"}))).await;
    let channel = guild["channels"][0]["id"].as_str().expect("channel").to_string();

    // ~100 messages a second, each id recorded once the server acknowledged it.
    let acked = std::sync::Arc::new(acked::Acked::default());
    let writer = {
        let (base, token, channel, acked) = (c.base.clone(), token.clone(), channel.clone(), acked.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for i in 0..600 {
                tick.tick().await;
                let r = http
                    .post(format!("{base}/api/v1/channels/{channel}/messages"))
                    .bearer_auth(&token)
                    .json(&json!({"content": format!("message {i}")}))
                    .send()
                    .await;
                if let Ok(r) = r
                    && r.status() == 201
                    && let Ok(v) = r.json::<Value>().await
                    && let Some(id) = v["id"].as_str()
                {
                    acked.push(id.to_string());
                }
                if acked.stop() {
                    break;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before: BTreeSet<String> = acked.snapshot();
    assert!(before.len() > 20, "the writer is writing ({} so far)", before.len());
    let file = dir.path().join("backup.db");
    let file_arg = file.to_str().expect("utf-8").to_string();
    let data = dir.path().to_path_buf();
    let made =
        tokio::task::spawn_blocking(move || run_command(&data, &["backup", &file_arg], None)).await.expect("run");
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(made.stdout.contains("integrity ok"), "{}", made.stdout);
    tokio::time::sleep(Duration::from_millis(300)).await;
    acked.set_stop();
    writer.await.expect("writer");
    assert!(acked.snapshot().len() > before.len(), "writes went on while the backup ran");

    let restored = tempfile::tempdir().expect("dir");
    let r = run_command(restored.path(), &["restore", file.to_str().expect("utf-8")], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(restored.path().join("voice-secret").exists(), "the voice secret comes back too");
    assert_eq!(
        std::fs::read(restored.path().join("voice-secret")).expect("secret"),
        std::fs::read(dir.path().join("voice-secret")).expect("secret")
    );
    let again = run_command(restored.path(), &["restore", file.to_str().expect("utf-8")], None);
    assert_eq!(again.code, 1, "restore never overwrites a data dir: {}", again.stderr);

    let db = rusqlite::Connection::open(restored.path().join("chorus.db")).expect("open");
    let integrity: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(integrity, "ok");
    let ids: BTreeSet<String> = db
        .prepare("SELECT id FROM messages")
        .expect("prepare")
        .query_map([], |r| r.get::<_, i64>(0))
        .expect("query")
        .map(|id| id.expect("id").to_string())
        .collect();
    let lost: Vec<&String> = before.difference(&ids).collect();
    assert!(lost.is_empty(), "{} acknowledged messages missing from the backup", lost.len());
    drop(db);

    let r2 = Chorus::start(restored.path(), free_port()).await;
    assert_eq!(login(&r2, "writer", "password123").await.0, 200, "the restored store serves");
}

/// The writer's record of acknowledged ids, shared with the test body.
mod acked {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Default)]
    pub struct Acked {
        ids: Mutex<BTreeSet<String>>,
        stop: AtomicBool,
    }

    impl Acked {
        pub fn push(&self, id: String) {
            self.ids.lock().expect("lock").insert(id);
        }
        pub fn snapshot(&self) -> BTreeSet<String> {
            self.ids.lock().expect("lock").clone()
        }
        pub fn stop(&self) -> bool {
            self.stop.load(Ordering::Relaxed)
        }
        pub fn set_stop(&self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}
