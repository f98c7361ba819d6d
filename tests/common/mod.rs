//! The harness the binary's tests share: the real `chorus` on a free port with its own data dir.
#![allow(dead_code)] // each test crate uses part of it

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Chorus {
    pub child: Child,
    pub base: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl Chorus {
    /// Starts the binary on a free port with the given data dir and waits until /readyz answers.
    pub async fn start(data_dir: &std::path::Path, port: u16) -> Chorus {
        Chorus::start_with(data_dir, port, &[]).await
    }

    pub async fn start_with(data_dir: &std::path::Path, port: u16, extra: &[&str]) -> Chorus {
        // ICE-TCP is on by default on one fixed port; tests that run side by side turn it off unless
        // they name a port of their own.
        let tcp_off: &[&str] = if extra.contains(&"--rtc-tcp-port") { &[] } else { &["--rtc-tcp-port", "0"] };
        let child = Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args(extra)
            .args(tcp_off)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--udp-port-base", &(20000 + port % 20000).to_string(), "--sfu-workers", "1"])
            .env("CHORUS_NO_RATE_LIMITS", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chorus");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "chorus did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Chorus { child, base }
    }

    pub async fn api(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Chorus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn register(c: &Chorus, name: &str) -> String {
    let (s, b) = c
        .api(None, reqwest::Method::POST, "/auth/register", Some(json!({"username": name, "password": "password123"})))
        .await;
    assert_eq!(s, 201, "{b}");
    b["token"].as_str().expect("token").to_string()
}

/// What one run of a `chorus` subcommand printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `chorus ARGS --data-dir DIR` to completion, with `stdin` on its standard input.
pub fn run_command(data_dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chorus");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The id of the first voice channel of a guild as `POST /guilds` answers it.
pub fn voice_channel_id(guild: &serde_json::Value) -> String {
    let channels = guild["channels"].as_array().expect("channels");
    let voice = channels.iter().find(|c| c["kind"] == "voice").expect("a voice channel");
    voice["id"].as_str().expect("id").to_string()
}
