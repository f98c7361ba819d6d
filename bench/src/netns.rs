//! A network namespace of the bench's own for runs against Janus: Janus skips loopback interfaces
//! when it gathers ICE candidates, so it gets a veth interface with a private address inside a
//! namespace this run creates, and the bench (with every server it starts) runs in there by
//! re-executing itself under `ip netns exec`. No traffic leaves the namespace.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// Set in the re-executed bench: the namespace's media address.
const ENV_IP: &str = "CHORUS_BENCH_NETNS_IP";
/// The interface Janus gathers candidates on.
pub const IFACE: &str = "cbench0";
const PEER_IFACE: &str = "cbench1";
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 254, 0, 1);

/// The media address when this process runs inside the bench's namespace.
pub fn inside() -> Option<IpAddr> {
    std::env::var(ENV_IP).ok().and_then(|v| v.parse().ok())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("running `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Deletes the namespace when the run ends, however it ends.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

/// Creates the namespace, runs this same command line inside it and returns its exit code.
pub fn rerun_inside() -> Result<ExitCode> {
    let name = format!("chorus-bench-{}", std::process::id());
    ip(&["netns", "add", &name]).context("creating a network namespace (run the bench as root)")?;
    let ns = Namespace(name);
    let n = ns.0.as_str();
    ip(&["-n", n, "link", "set", "lo", "up"])?;
    ip(&["-n", n, "link", "add", IFACE, "type", "veth", "peer", "name", PEER_IFACE])?;
    ip(&["-n", n, "addr", "add", &format!("{ADDR}/24"), "dev", IFACE])?;
    ip(&["-n", n, "link", "set", IFACE, "up"])?;
    ip(&["-n", n, "link", "set", PEER_IFACE, "up"])?;
    let exe = std::env::current_exe().context("finding the bench's own executable")?;
    let status = Command::new("ip")
        .args(["netns", "exec", n])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(ENV_IP, ADDR.to_string())
        .status()
        .context("running the bench inside its network namespace")?;
    drop(ns);
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
