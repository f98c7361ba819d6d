//! The server under test: a `chorus` binary the bench spawns (free TCP and UDP ports on
//! 127.0.0.1, a temporary data dir, rate limits off), one already running at a URL, or the peer
//! SFU Janus, which the bench starts inside its own network namespace (see [`crate::netns`]).

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::client::api::Api;
use crate::client::janus_signal::JanusApi;
use crate::client::voice::SfuClient;
use crate::janus::JanusServer;

/// Where the load goes and which PID to watch.
pub struct Target {
    server: Server,
    pub pid: Option<u32>,
    spawned: Option<Spawned>,
}

enum Server {
    Chorus(Api),
    Janus(Box<JanusServer>),
}

struct Spawned {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    udp_base: u16,
    extra: Vec<String>,
    child: Child,
}

/// How to reach the server.
#[derive(Clone, Debug)]
pub enum Spec {
    Spawn {
        bin: PathBuf,
        extra: Vec<String>,
    },
    Url {
        url: String,
        pid: Option<u32>,
    },
    /// Janus VideoRoom (the `janus` binary), started inside the bench's network namespace.
    Janus {
        bin: PathBuf,
    },
}

fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A base port with `n` free consecutive UDP ports after it.
fn free_udp_base(n: u16) -> Result<u16> {
    for _ in 0..50 {
        let first = UdpSocket::bind("127.0.0.1:0")?;
        let base = first.local_addr()?.port();
        if base.checked_add(n).is_none() {
            continue;
        }
        let rest: std::io::Result<Vec<UdpSocket>> = (1..n).map(|i| UdpSocket::bind(("127.0.0.1", base + i))).collect();
        if rest.is_ok() {
            return Ok(base);
        }
    }
    bail!("no {n} consecutive free UDP ports")
}

impl Target {
    pub async fn open(spec: &Spec) -> Result<Target> {
        match spec {
            Spec::Url { url, pid } => {
                let api = Api::new(url)?;
                api.wait_ready(Duration::from_secs(10)).await?;
                Ok(Target { server: Server::Chorus(api), pid: *pid, spawned: None })
            }
            Spec::Janus { bin } => {
                let Some(ip) = crate::netns::inside() else {
                    bail!("Janus runs only inside the bench's network namespace");
                };
                let janus = JanusServer::start(bin, ip, crate::netns::IFACE).await?;
                Ok(Target { pid: janus.pid(), server: Server::Janus(Box::new(janus)), spawned: None })
            }
            Spec::Spawn { bin, extra } => {
                let dir = tempfile::Builder::new().prefix("chorus-bench-").tempdir().context("temp data dir")?;
                let port = free_tcp_port()?;
                let udp_base = free_udp_base(8)?;
                // The server runs in its data dir: resolve a relative binary path first.
                let bin = std::fs::canonicalize(bin).with_context(|| format!("{} (build it first)", bin.display()))?;
                let child = start(&bin, dir.path(), port, udp_base, extra)?;
                let api = Api::new(&format!("http://127.0.0.1:{port}"))?;
                let pid = child.id();
                let mut t = Target {
                    server: Server::Chorus(api),
                    pid,
                    spawned: Some(Spawned { bin, dir, port, udp_base, extra: extra.clone(), child }),
                };
                t.wait_ready().await?;
                Ok(t)
            }
        }
    }

    pub fn is_spawned(&self) -> bool {
        self.spawned.is_some()
    }

    /// "chorus" or "janus".
    pub fn name(&self) -> &'static str {
        match self.server {
            Server::Chorus(_) => "chorus",
            Server::Janus(_) => "janus",
        }
    }

    /// Chorus's REST API; an error for Janus, which has no accounts, guilds or chat.
    pub fn chorus(&self) -> Result<&Api> {
        match &self.server {
            Server::Chorus(api) => Ok(api),
            Server::Janus(_) => bail!("this scenario needs a Chorus target (against Janus: voice, video and compare)"),
        }
    }

    pub fn janus(&self) -> Option<&JanusApi> {
        match &self.server {
            Server::Chorus(_) => None,
            Server::Janus(j) => Some(&j.api),
        }
    }

    /// How voice participants reach the SFU.
    pub fn sfu(&self) -> SfuClient {
        match &self.server {
            Server::Chorus(api) => SfuClient::Chorus(api.clone()),
            Server::Janus(j) => SfuClient::Janus(j.api.clone()),
        }
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let ready = match &self.server {
            Server::Chorus(api) => api.wait_ready(Duration::from_secs(30)).await,
            Server::Janus(_) => Ok(()),
        };
        ready.map_err(|e| e.context(self.log_tail()))
    }

    /// Restarts a spawned server on the same ports and data (no-op for a URL target).
    pub async fn restart(&mut self) -> Result<()> {
        let Some(s) = self.spawned.as_mut() else { return Ok(()) };
        stop_child(&mut s.child).await;
        s.child = start(&s.bin, s.dir.path(), s.port, s.udp_base, &s.extra)?;
        self.pid = s.child.id();
        self.wait_ready().await
    }

    /// Kills a spawned server with SIGKILL, as a crash would (no-op for a URL target).
    pub async fn kill9(&mut self) {
        if let Some(s) = self.spawned.as_mut() {
            let _ = s.child.kill().await;
        }
    }

    /// The last lines of a spawned server's log, for error messages.
    pub fn log_tail(&self) -> String {
        if let Server::Janus(j) = &self.server {
            return j.log_tail();
        }
        let Some(s) = &self.spawned else { return String::new() };
        let log = std::fs::read_to_string(s.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!("server log (last lines):\n{}", lines[lines.len().saturating_sub(20)..].join("\n"))
    }

    /// Stops a spawned server (SIGTERM, then SIGKILL after 5 s).
    pub async fn shutdown(mut self) {
        if let Some(s) = self.spawned.as_mut() {
            stop_child(&mut s.child).await;
        }
        if let Server::Janus(j) = self.server {
            j.shutdown().await;
        }
    }
}

fn start(bin: &Path, dir: &Path, port: u16, udp_base: u16, extra: &[String]) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .context("server log file")?;
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-ip", "127.0.0.1"])
        .args(["--udp-port-base", &udp_base.to_string()])
        // Several spawned nodes must not fight over the default ICE-TCP port: off unless asked for.
        .args(if extra.iter().any(|a| a.starts_with("--rtc-tcp-port")) {
            &[][..]
        } else {
            &["--rtc-tcp-port", "0"][..]
        })
        .args(["--no-rate-limits", "true"])
        .args(["--log", "warn"])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("server log file")?)
        .stderr(log)
        .kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {} (build it first)", bin.display()))
}

async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SIGTERM lets the server flush its store; it is our own child.
        let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
        if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}
