//! Settings: flags win over `CHORUS_*` environment variables, which win over `chorus.toml`, which
//! wins over the defaults. `chorus --help` lists every setting.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use serde::Deserialize;

/// Self-hosted Discord-like chat with voice and video channels.
#[derive(Debug, Parser, Default)]
#[command(name = "chorus", version, about, long_about = None)]
pub struct Cli {
    /// Address for HTTP, the gateway, voice signaling, the web client and metrics [default: 127.0.0.1:8080]
    #[arg(long, env = "CHORUS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database and other state [default: ./data]
    #[arg(long, env = "CHORUS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Store: `sqlite` (in the data dir), `sqlite:PATH`, or `mongodb://...` [default: sqlite]
    #[arg(long, env = "CHORUS_STORE")]
    pub store: Option<String>,
    /// Configuration file [default: chorus.toml if present]
    #[arg(long, env = "CHORUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// First UDP port of the SFU workers (worker i listens on base + i) [default: 50000]
    #[arg(long, env = "CHORUS_UDP_PORT_BASE")]
    pub udp_port_base: Option<u16>,
    /// Address put in ICE candidates [default: the listen address's IP, or 127.0.0.1 if unspecified]
    #[arg(long, env = "CHORUS_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,
    /// SFU worker threads [default: one per core]
    #[arg(long, env = "CHORUS_SFU_WORKERS")]
    pub sfu_workers: Option<usize>,
    /// Public base URL clients use to reach this server, e.g. https://chat.example.org [default: http://LISTEN]
    #[arg(long, env = "CHORUS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Secret that signs voice tokens [default: generated once into DATA_DIR/voice-secret]
    #[arg(long, env = "CHORUS_VOICE_SECRET", hide_env_values = true)]
    pub voice_secret: Option<String>,
    /// Seconds a voice token stays valid for starting a session [default: 60]
    #[arg(long, env = "CHORUS_VOICE_TOKEN_TTL")]
    pub voice_token_ttl: Option<u64>,
    /// Node id for snowflake ids, distinct per node of a cluster (0-1023) [default: 0]
    #[arg(long, env = "CHORUS_NODE_ID")]
    pub node_id: Option<u16>,
    /// Gateway heartbeat interval in milliseconds [default: 41250]
    #[arg(long, env = "CHORUS_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Turn off REST and gateway rate limits (benchmarks only) [default: false]
    #[arg(long, env = "CHORUS_NO_RATE_LIMITS")]
    pub no_rate_limits: Option<bool>,
    /// Log filter, e.g. `info` or `chorus=debug,chat=debug` [default: info]
    #[arg(long, env = "CHORUS_LOG")]
    pub log: Option<String>,
    /// Usernames of instance admins (comma-separated), besides the first registered user [default: none]
    #[arg(long, env = "CHORUS_ADMINS", value_delimiter = ',')]
    pub admins: Option<Vec<String>>,
}

/// The same settings as read from `chorus.toml` (snake_case keys).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub udp_port_base: Option<u16>,
    pub public_ip: Option<IpAddr>,
    pub sfu_workers: Option<usize>,
    pub public_url: Option<String>,
    pub voice_secret: Option<String>,
    pub voice_token_ttl: Option<u64>,
    pub node_id: Option<u16>,
    pub heartbeat_ms: Option<u64>,
    pub no_rate_limits: Option<bool>,
    pub log: Option<String>,
    pub admins: Option<Vec<String>>,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: String,
    pub udp_port_base: u16,
    pub public_ip: IpAddr,
    pub sfu_workers: usize,
    pub public_url: String,
    pub voice_secret: Option<String>,
    pub voice_token_ttl: u64,
    pub node_id: u16,
    pub heartbeat_ms: u64,
    pub no_rate_limits: bool,
    pub log: String,
    /// Lower-cased usernames of instance admins named in the configuration.
    pub admins: Vec<String>,
}

impl Config {
    pub fn load(cli: Cli) -> Result<Config> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None if Path::new("chorus.toml").exists() => read_file(Path::new("chorus.toml"))?,
            None => FileConfig::default(),
        };
        let listen = cli.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_ip = cli
            .public_ip
            .or(file.public_ip)
            .unwrap_or_else(|| if listen.ip().is_unspecified() { IpAddr::from([127, 0, 0, 1]) } else { listen.ip() });
        let public_url = cli.public_url.or(file.public_url).unwrap_or_else(|| format!("http://{listen}"));
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Ok(Config {
            listen,
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./data")),
            store: cli.store.or(file.store).unwrap_or_else(|| "sqlite".into()),
            udp_port_base: cli.udp_port_base.or(file.udp_port_base).unwrap_or(50000),
            public_ip,
            sfu_workers: cli.sfu_workers.or(file.sfu_workers).unwrap_or(cores).max(1),
            public_url: public_url.trim_end_matches('/').to_string(),
            voice_secret: cli.voice_secret.or(file.voice_secret),
            voice_token_ttl: cli.voice_token_ttl.or(file.voice_token_ttl).unwrap_or(60).clamp(5, 3600),
            node_id: cli.node_id.or(file.node_id).unwrap_or(0).min(1023),
            heartbeat_ms: cli.heartbeat_ms.or(file.heartbeat_ms).unwrap_or(41_250).clamp(1_000, 120_000),
            no_rate_limits: cli.no_rate_limits.or(file.no_rate_limits).unwrap_or(false),
            log: cli.log.or(file.log).unwrap_or_else(|| "info".into()),
            admins: cli
                .admins
                .or(file.admins)
                .unwrap_or_default()
                .iter()
                .map(|a| a.trim().to_lowercase())
                .filter(|a| !a.is_empty())
                .collect(),
        })
    }

    /// The `/voice` WebSocket URL handed out with voice grants.
    pub fn voice_endpoint(&self) -> String {
        let ws = self.public_url.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        format!("{ws}/voice")
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::load(Cli::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.store, "sqlite");
        assert_eq!(c.voice_endpoint(), "ws://127.0.0.1:8080/voice");
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("chorus-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nstore = \"sqlite:/tmp/x.db\"\n").unwrap();
        let cli = Cli { config: Some(path), listen: Some("127.0.0.1:9100".parse().unwrap()), ..Cli::default() };
        let c = Config::load(cli).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.store, "sqlite:/tmp/x.db");
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let dir = std::env::temp_dir().join(format!("chorus-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        assert!(Config::load(Cli { config: Some(path), ..Cli::default() }).is_err());
    }
}
