//! The Janus server the bench starts as the peer SFU: Debian's `janus` with a configuration of
//! our own (HTTP API on 127.0.0.1, only the VideoRoom plugin and the HTTP transport, ICE on the
//! bench namespace's interface, warnings-only logging like the spawned Chorus), in a temporary
//! directory that also holds its log.

use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::process::{Child, Command};

use crate::client::janus_signal::JanusApi;

const LIB: &str = "/usr/lib/x86_64-linux-gnu/janus";
const PLUGINS_OFF: &str = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,\
libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,\
libjanus_videocall.so,libjanus_voicemail.so";
const TRANSPORTS_OFF: &str =
    "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so";

pub struct JanusServer {
    pub api: JanusApi,
    child: Child,
    dir: tempfile::TempDir,
}

fn write_config(dir: &Path, http_port: u16, iface: &str) -> Result<()> {
    let d = dir.display();
    let main = format!(
        "general: {{\n  configs_folder = \"{d}\"\n  plugins_folder = \"{LIB}/plugins\"\n  transports_folder = \"{LIB}/transports\"\n  \
         events_folder = \"{LIB}/events\"\n  loggers_folder = \"{LIB}/loggers\"\n  debug_level = 3\n}}\n\
         media: {{\n  ipv6 = false\n  rtp_port_range = \"20000-60000\"\n}}\n\
         nat: {{\n  ice_enforce_list = \"{iface}\"\n  ignore_mdns = true\n}}\n\
         plugins: {{\n  disable = \"{PLUGINS_OFF}\"\n}}\n\
         transports: {{\n  disable = \"{TRANSPORTS_OFF}\"\n}}\n\
         events: {{\n  broadcast = false\n}}\n"
    );
    let http = format!(
        "general: {{\n  json = \"plain\"\n  base_path = \"/janus\"\n  http = true\n  port = {http_port}\n  ip = \"127.0.0.1\"\n  https = false\n}}\n\
         admin: {{\n  admin_http = false\n}}\n"
    );
    std::fs::write(dir.join("janus.jcfg"), main)?;
    std::fs::write(dir.join("janus.transport.http.jcfg"), http)?;
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
    Ok(())
}

impl JanusServer {
    /// Starts `janus` with media on `media_ip` (an address of `iface`) and waits for its API.
    pub async fn start(bin: &Path, media_ip: IpAddr, iface: &str) -> Result<JanusServer> {
        let dir = tempfile::Builder::new().prefix("chorus-bench-janus-").tempdir().context("temp config dir")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        write_config(dir.path(), port, iface).context("writing Janus's configuration")?;
        let log = std::fs::File::create(dir.path().join("janus.log")).context("Janus log file")?;
        let child = Command::new(bin)
            .arg("-C")
            .arg(dir.path().join("janus.jcfg"))
            .arg("-F")
            .arg(dir.path())
            .args(["--disable-colors", "-i", &media_ip.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("Janus log file")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (apt-get install janus)", bin.display()))?;
        let api = JanusApi::new(&format!("http://127.0.0.1:{port}/janus"), media_ip)?;
        let server = JanusServer { api, child, dir };
        if let Err(e) = server.api.wait_ready(Duration::from_secs(20)).await {
            return Err(e.context(server.log_tail()));
        }
        Ok(server)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("janus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!("Janus log (last lines):\n{}", lines[lines.len().saturating_sub(20)..].join("\n"))
    }

    /// SIGTERM, then SIGKILL after 10 s (Janus takes a few seconds to exit).
    pub async fn shutdown(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}
