//! Command line: a subcommand per scenario, shared target and output options.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::target::Spec;

/// Load benchmark for Chorus: real WebRTC voice peers, join storms and gateway fan-out against
/// a running server or one the bench starts.
#[derive(Debug, Parser)]
#[command(name = "chorus-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Voice rooms: talkers send Opus, everyone else listens; latency, loss, jitter, server CPU.
    Voice(VoiceArgs),
    /// Video rooms: publishers send VP8 simulcast (3 layers), everyone else subscribes.
    Video(VideoArgs),
    /// A join storm: listeners join rooms with a talker at a set rate; join latency percentiles.
    Join(JoinArgs),
    /// Chat fan-out: gateway clients in one channel, messages posted at a set rate.
    Chat(ChatArgs),
    /// Voice rooms added step by step until p99 forwarding latency or loss passes its limit.
    Ramp(RampArgs),
    /// A few seconds of every scenario; exits non-zero when something is broken (for CI).
    Smoke(SmokeArgs),
    /// Chat and voice load with joins and leaves for a long time (default 30 minutes), the
    /// server's RSS, descriptors, threads and CPU sampled; fails when memory or descriptors keep
    /// growing after the warm-up.
    Soak(SoakArgs),
    /// Attachments: N uploads of a file at once (throughput, server CPU per MB, the server's
    /// memory while they run), then images one by one (time to check, clean and thumbnail each).
    Upload(UploadArgs),
    /// The voice scenario against Chorus and against Janus VideoRoom, side by side (needs root
    /// for a network namespace, and Debian's `janus`).
    Compare(CompareArgs),
    /// The forwarding floor of this machine: a bare receive → decrypt → encrypt-and-send loop on
    /// loopback UDP with the voice scenario's rooms, fan-out and packet sizes (no server).
    Floor(FloorArgs),
    /// Gateway fan-out over N cluster nodes the bench starts (with a redis-server of its own and
    /// the MongoDB named by --store): same-node vs cross-node latency, Redis work per message.
    Cluster(ClusterArgs),
}

#[derive(Debug, Args, Clone)]
pub struct FloorArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub voice: VoiceParams,
}

#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    /// Path of the `chorus` binary to start as every node
    #[arg(long)]
    pub spawn: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub cluster: ClusterParams,
}

#[derive(Debug, Args, Clone, serde::Serialize)]
pub struct ClusterParams {
    /// Nodes to start
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// MongoDB every node uses (the run adds a database of its own)
    #[arg(long, default_value = "mongodb://127.0.0.1:27117/?directConnection=true")]
    pub store: String,
    /// Gateway connections, all in one channel, spread round-robin over the nodes
    #[arg(long, default_value_t = 300)]
    pub clients: usize,
    /// Connections per account (accounts cost an argon2 hash each)
    #[arg(long, default_value_t = 10)]
    pub per_account: usize,
    /// Messages posted per second (through node 0)
    #[arg(long, default_value_t = 50)]
    pub rate: u64,
    /// Seconds of posting
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// kill -9 the last node halfway through the posting: its clients resume on the others, and the
    /// run reports the time from the kill to RESUMED and checks that no client lost or doubled a message
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub failover: bool,
}

#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// URL of a running Chorus (start it with `--no-rate-limits true`), or `janus` to start
    /// Janus VideoRoom in a network namespace of the bench's own (voice and video only)
    #[arg(long, conflicts_with = "spawn")]
    pub target: Option<String>,
    /// PID of the --target server, for its CPU time and memory
    #[arg(long, requires = "target")]
    pub pid: Option<u32>,
    /// Path of a `chorus` binary to start on free ports with a temporary data dir
    #[arg(long)]
    pub spawn: Option<PathBuf>,
    /// Extra argument for the spawned server (repeat for several), e.g. --server-arg=--sfu-workers=1
    #[arg(long = "server-arg", requires = "spawn", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
}

impl TargetArgs {
    pub fn spec(&self) -> Result<Spec> {
        match (&self.target, &self.spawn) {
            (Some(t), None) if t == "janus" => Ok(Spec::Janus { bin: PathBuf::from("janus") }),
            (Some(url), None) => Ok(Spec::Url { url: url.clone(), pid: self.pid }),
            (None, Some(bin)) => Ok(Spec::Spawn { bin: bin.clone(), extra: self.server_args.clone() }),
            _ => bail!("give either --target URL or --spawn PATH_TO_CHORUS"),
        }
    }

    /// Whether the run needs the bench's network namespace.
    pub fn is_janus(&self) -> bool {
        self.target.as_deref() == Some("janus")
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct OutputArgs {
    /// Write the results as JSON
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a Markdown report
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write plots (SVG) into this directory: latency CDFs, CPU against load, the soak's
    /// resources over time
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct VoiceArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub voice: VoiceParams,
}

#[derive(Debug, Args, Clone, serde::Serialize)]
pub struct VoiceParams {
    /// Voice rooms (channels)
    #[arg(long, default_value_t = 5)]
    pub rooms: usize,
    /// Participants per room
    #[arg(long, default_value_t = 10)]
    pub participants: usize,
    /// Talkers per room (the others only listen)
    #[arg(long, default_value_t = 2)]
    pub talkers: usize,
    /// Seconds of measurement once every participant receives media
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds to wait for every participant to receive media before measuring anyway
    #[arg(long, default_value_t = 30)]
    pub connect_timeout: u64,
    /// Participants reach the SFU over ICE-TCP only, as behind a network that blocks UDP (start
    /// the server with --server-arg=--rtc-tcp-port=N)
    #[arg(long)]
    pub tcp: bool,
    /// Participants reach the SFU only through the TURN server `joined` names, as behind a network
    /// that reaches nothing else (start the server with --server-arg=--turn-listen=127.0.0.1:PORT)
    #[arg(long)]
    pub turn: bool,
}

#[derive(Debug, Args, Clone)]
pub struct JoinArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub join: JoinParams,
}

#[derive(Debug, Args, Clone, serde::Serialize)]
pub struct JoinParams {
    /// Joins per second
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds the storm lasts
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Rooms joined round-robin, each with one talker already in it
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Seconds a joiner stays after its first media packet
    #[arg(long, default_value_t = 2.0)]
    pub hold: f64,
    /// Accounts the joiners cycle through
    #[arg(long, default_value_t = 60)]
    pub accounts: usize,
    /// Seconds a joiner waits for media before it counts as failed
    #[arg(long, default_value_t = 10)]
    pub media_timeout: u64,
}

#[derive(Debug, Args, Clone)]
pub struct ChatArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub chat: ChatParams,
}

#[derive(Debug, Args, Clone, serde::Serialize)]
pub struct ChatParams {
    /// Gateway connections, all in one channel
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Connections per account (accounts cost an argon2 hash each)
    #[arg(long, default_value_t = 10)]
    pub per_account: usize,
    /// Messages posted per second
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// Seconds of posting
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Restart a spawned server after registration so argon2's memory does not hide the
    /// connections' (true by default)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub restart: bool,
}

#[derive(Debug, Args, Clone)]
pub struct SmokeArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seconds of measurement per scenario
    #[arg(long, default_value_t = 4)]
    pub seconds: u64,
}

#[derive(Debug, Args, Clone)]
pub struct UploadArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub upload: UploadParams,
}

#[derive(Debug, Args, Clone, serde::Serialize)]
pub struct UploadParams {
    /// Uploads running at once
    #[arg(long, default_value_t = 20)]
    pub concurrent: usize,
    /// Rounds of `--concurrent` uploads
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Size of each uploaded file, MiB
    #[arg(long, default_value_t = 10)]
    pub file_mb: usize,
    /// Images uploaded one by one afterwards (each is checked, re-encoded and thumbnailed)
    #[arg(long, default_value_t = 10)]
    pub images: usize,
    /// Their size in pixels, WIDTHxHEIGHT
    #[arg(long, default_value = "3000x2000")]
    pub image_size: String,
}

#[derive(Debug, Args, Clone)]
pub struct SoakArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub soak: SoakParams,
}

/// Durations take seconds (`90`) or units (`90s`, `15m`, `1h30m`).
#[derive(Debug, Args, Clone, serde::Serialize)]
pub struct SoakParams {
    /// How long the load runs after it is set up, in seconds or e.g. 30m, 1h
    #[arg(long, default_value = "30m", value_parser = parse_secs)]
    pub duration: u64,
    /// Seconds between samples of the server's RSS, descriptors, threads and CPU (or e.g. 1m)
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub interval: u64,
    /// Samples before this are not judged (default: a third of --duration, at most 6m, which
    /// covers the gateway's 5-minute resume window for disconnected clients)
    #[arg(long, value_parser = parse_secs)]
    pub warmup: Option<u64>,
    /// Voice rooms
    #[arg(long, default_value_t = 2)]
    pub rooms: usize,
    /// Voice participants per room (talkers, listeners that stay, listeners that churn)
    #[arg(long, default_value_t = 5)]
    pub participants: usize,
    /// Talkers per room (they stay for the whole run)
    #[arg(long, default_value_t = 1)]
    pub talkers: usize,
    /// Listeners per room that leave and rejoin all the time
    #[arg(long, default_value_t = 2)]
    pub voice_churn: usize,
    /// Seconds a churning listener stays after its first media packet before it leaves
    #[arg(long, default_value_t = 10.0)]
    pub voice_hold: f64,
    /// Gateway clients connected for the whole run (they count every message's delivery)
    #[arg(long, default_value_t = 40)]
    pub clients: usize,
    /// Gateway clients that disconnect and reconnect (a fresh IDENTIFY each time)
    #[arg(long, default_value_t = 10)]
    pub churn_clients: usize,
    /// Seconds a churning gateway client stays connected
    #[arg(long, default_value_t = 10.0)]
    pub gateway_hold: f64,
    /// Messages posted per second (REST), all through the run
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// RSS growth that is noise: the larger of this (MiB) and --rss-tolerance-percent
    #[arg(long, default_value_t = 8.0)]
    pub rss_tolerance_mib: f64,
    /// RSS growth that is noise, % of the first third's median
    #[arg(long, default_value_t = 10.0)]
    pub rss_tolerance_percent: f64,
    /// Open-descriptor growth that is noise: the larger of this and 5 % of the first third's median
    #[arg(long, default_value_t = 8)]
    pub fd_tolerance: u64,
    /// Restart a spawned server after registration so argon2's memory does not count (true by default)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub restart: bool,
}

impl SoakParams {
    /// The warm-up in seconds: --warmup, else a third of the duration, at most 6 minutes.
    pub fn warmup_secs(&self) -> u64 {
        self.warmup.unwrap_or((self.duration / 3).min(360))
    }
}

/// Seconds from `90`, `90s`, `15m`, `1h`, `1h30m` or `2m30s`.
pub fn parse_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let usage = || format!("`{s}` is not a duration (seconds, or with units: 90s, 15m, 1h30m)");
    let (mut total, mut number) = (0u64, String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(usage()),
        };
        let n: u64 = number.parse().map_err(|_| usage())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(usage)?;
        number.clear();
    }
    if !number.is_empty() || s.is_empty() {
        return Err(usage());
    }
    Ok(total)
}

#[derive(Debug, Args, Clone)]
pub struct RampArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub ramp: RampParams,
}

#[derive(Debug, Args, Clone, serde::Serialize)]
pub struct RampParams {
    /// Participants per room
    #[arg(long, default_value_t = 10)]
    pub participants: usize,
    /// Talkers per room
    #[arg(long, default_value_t = 2)]
    pub talkers: usize,
    /// Rooms in the first step
    #[arg(long, default_value_t = 5)]
    pub start_rooms: usize,
    /// Rooms added per step
    #[arg(long, default_value_t = 5)]
    pub step_rooms: usize,
    /// Stop after this many rooms even if the limits hold
    #[arg(long, default_value_t = 100)]
    pub max_rooms: usize,
    /// Seconds of measurement per step
    #[arg(long, default_value_t = 15)]
    pub step_duration: u64,
    /// A step fails when p99 forwarding latency passes this (ms)
    #[arg(long, default_value_t = 50.0)]
    pub p99_limit_ms: f64,
    /// A step fails when loss passes this (%)
    #[arg(long, default_value_t = 1.0)]
    pub loss_limit_percent: f64,
}

#[derive(Debug, Args, Clone)]
pub struct VideoArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub video: VideoParams,
}

#[derive(Debug, Args, Clone, serde::Serialize)]
pub struct VideoParams {
    /// Rooms (voice channels)
    #[arg(long, default_value_t = 2)]
    pub rooms: usize,
    /// Participants per room
    #[arg(long, default_value_t = 5)]
    pub participants: usize,
    /// Publishers per room (the others only subscribe)
    #[arg(long, default_value_t = 2)]
    pub publishers: usize,
    /// Tile size every subscriber asks for, e.g. 640x360 (default: no preference, the SFU decides)
    #[arg(long)]
    pub tile: Option<String>,
    /// Seconds of measurement once every subscriber receives video
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds to wait for every subscriber to receive video before measuring anyway
    #[arg(long, default_value_t = 30)]
    pub connect_timeout: u64,
}

#[derive(Debug, Args, Clone)]
pub struct CompareArgs {
    /// Path of the `chorus` binary to start
    #[arg(long)]
    pub spawn: PathBuf,
    /// Extra argument for the spawned Chorus (repeat for several)
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// The Janus binary (Debian package `janus`)
    #[arg(long, default_value = "janus")]
    pub janus: PathBuf,
    /// Rounds of (Chorus, Janus) per step; medians are compared
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Load steps as numbers of rooms, e.g. 2,5,10 (default: --rooms); the table shows the
    /// largest, the CPU-against-load plot all of them
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<usize>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub voice: VoiceParams,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_seconds_or_with_units() {
        assert_eq!(parse_secs("60"), Ok(60));
        assert_eq!(parse_secs("90s"), Ok(90));
        assert_eq!(parse_secs("30m"), Ok(1800));
        assert_eq!(parse_secs("1h30m"), Ok(5400));
        assert_eq!(parse_secs("2m30s"), Ok(150));
        for bad in ["", "m", "1h30", "5x", "-3", "1.5m"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn soak_defaults_and_warm_up() {
        let cli = Cli::try_parse_from(["chorus-bench", "soak", "--spawn", "chorus"]).unwrap();
        let Command::Soak(a) = cli.command else { panic!("not soak") };
        assert_eq!((a.soak.duration, a.soak.interval, a.soak.warmup_secs()), (1800, 10, 360));
        let cli = Cli::try_parse_from(["chorus-bench", "soak", "--spawn", "c", "--duration", "60", "--interval", "5"])
            .unwrap();
        let Command::Soak(a) = cli.command else { panic!("not soak") };
        assert_eq!((a.soak.duration, a.soak.interval, a.soak.warmup_secs()), (60, 5, 20));
    }
}
