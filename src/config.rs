//! Settings: flags win over `CHORUS_*` environment variables, which win over `chorus.toml`, which
//! wins over the defaults. `chorus --help` lists every setting.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::media_addr::{self, MediaAddresses};
use crate::tls::{CertFiles, RedirectTarget};
use chat::http::client_addr::{Cidr, TrustedProxies};
use chat::operator::Registration;

/// Self-hosted Discord-like chat with voice and video channels.
#[derive(Debug, Parser, Default)]
#[command(name = "chorus", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address for HTTP, the gateway, voice signaling, the web client and metrics [default: 127.0.0.1:8080]
    #[arg(long, global = true, env = "CHORUS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database and other state [default: ./data]
    #[arg(long, global = true, env = "CHORUS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Store: `sqlite` (in the data dir), `sqlite:PATH`, or `mongodb://...` [default: sqlite]
    #[arg(long, global = true, env = "CHORUS_STORE")]
    pub store: Option<String>,
    /// Configuration file [default: chorus.toml if present]
    #[arg(long, global = true, env = "CHORUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// First UDP port of the SFU workers (worker i listens on base + i) [default: 50000]
    #[arg(long, global = true, env = "CHORUS_UDP_PORT_BASE")]
    pub udp_port_base: Option<u16>,
    /// TCP port for ICE over TCP, the media path of clients whose network blocks UDP (0 = off) [default: 7881]
    #[arg(long, global = true, env = "CHORUS_RTC_TCP_PORT")]
    pub rtc_tcp_port: Option<u16>,
    /// Address the SFU's UDP workers bind to, independent of --listen [default: 0.0.0.0, all interfaces; 127.0.0.1
    /// when only loopback is advertised]
    #[arg(long, global = true, env = "CHORUS_RTC_BIND")]
    pub rtc_bind: Option<IpAddr>,
    /// Addresses put in ICE candidates (comma-separated, e.g. an IPv4 and an IPv6, or a private and a public
    /// one) [default: --rtc-bind if concrete; else 127.0.0.1 for a loopback public URL; else the address of
    /// the interface on the default route]
    #[arg(long, global = true, env = "CHORUS_PUBLIC_IP", value_delimiter = ',')]
    pub public_ip: Option<Vec<IpAddr>>,
    /// A STUN server (HOST:PORT) asked at start for this machine's public address, advertised first when
    /// --public-ip is not set (a server behind NAT) [default: none]
    #[arg(long, global = true, env = "CHORUS_STUN_SERVER")]
    pub stun_server: Option<String>,
    /// Reverse proxies whose Forwarded / X-Forwarded-For headers are believed (comma-separated CIDRs or
    /// addresses, e.g. 127.0.0.1,10.0.0.0/8) [default: none]
    #[arg(long, global = true, env = "CHORUS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<Cidr>>,
    /// TURN servers offered to voice clients (comma-separated `turn:`/`turns:` URLs), with credentials from
    /// --turn-secret in the TURN REST API scheme (coturn's use-auth-secret) [default: none]
    #[arg(long, global = true, env = "CHORUS_TURN_URL", value_delimiter = ',')]
    pub turn_url: Option<Vec<String>>,
    /// Secret shared with the TURN servers (coturn's static-auth-secret) [default: none]
    #[arg(long, global = true, env = "CHORUS_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Seconds a TURN credential stays valid after a join [default: 86400]
    #[arg(long, global = true, env = "CHORUS_TURN_TTL")]
    pub turn_ttl: Option<u64>,
    /// Embedded TURN over UDP on this address (e.g. 0.0.0.0:3478), relaying only to this node's SFU
    /// [default: none]
    #[arg(long, global = true, env = "CHORUS_TURN_LISTEN")]
    pub turn_listen: Option<SocketAddr>,
    /// Embedded TURN over TLS on this address (e.g. 0.0.0.0:5349, or :443 on an address of its own),
    /// with the HTTPS certificate (--tls-cert or --acme-domain) [default: none]
    #[arg(long, global = true, env = "CHORUS_TURN_TLS_LISTEN")]
    pub turn_tls_listen: Option<SocketAddr>,
    /// PEM certificate chain (leaf first): serve HTTPS on --listen; reloaded on SIGHUP or when the file
    /// changes [default: none, plain HTTP]
    #[arg(long, global = true, env = "CHORUS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [default: none]
    #[arg(long, global = true, env = "CHORUS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate from an ACME CA (Let's Encrypt) for these names (comma-separated),
    /// validated by TLS-ALPN-01 on --listen (which must be reachable on port 443) and cached in
    /// DATA_DIR/acme [default: none]
    #[arg(long, global = true, env = "CHORUS_ACME_DOMAIN", value_delimiter = ',')]
    pub acme_domain: Option<Vec<String>>,
    /// Contact address given to the ACME CA (expiry warnings) [default: none]
    #[arg(long, global = true, env = "CHORUS_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// ACME directory URL [default: Let's Encrypt production]
    #[arg(long, global = true, env = "CHORUS_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// PEM CA certificate the ACME directory is checked against instead of the web's roots (a private
    /// ACME CA) [default: none]
    #[arg(long, global = true, env = "CHORUS_ACME_CA_FILE")]
    pub acme_ca_file: Option<PathBuf>,
    /// With TLS: a plain-HTTP listener (e.g. 0.0.0.0:80) that redirects every request to HTTPS
    /// [default: none]
    #[arg(long, global = true, env = "CHORUS_REDIRECT_LISTEN")]
    pub redirect_listen: Option<SocketAddr>,
    /// SFU worker threads [default: one per core]
    #[arg(long, global = true, env = "CHORUS_SFU_WORKERS")]
    pub sfu_workers: Option<usize>,
    /// Public base URL clients use to reach this server, e.g. https://chat.example.org [default: http://LISTEN]
    #[arg(long, global = true, env = "CHORUS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Secret that signs voice tokens [default: generated once into DATA_DIR/voice-secret]
    #[arg(long, global = true, env = "CHORUS_VOICE_SECRET", hide_env_values = true)]
    pub voice_secret: Option<String>,
    /// Seconds a voice token stays valid for starting a session [default: 60]
    #[arg(long, global = true, env = "CHORUS_VOICE_TOKEN_TTL")]
    pub voice_token_ttl: Option<u64>,
    /// Node id for snowflake ids, distinct per node of a cluster (0-1022) [default: 0]
    #[arg(long, global = true, env = "CHORUS_NODE_ID")]
    pub node_id: Option<u16>,
    /// Gateway heartbeat interval in milliseconds [default: 41250]
    #[arg(long, global = true, env = "CHORUS_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Turn off REST and gateway rate limits (benchmarks only) [default: false]
    #[arg(long, global = true, env = "CHORUS_NO_RATE_LIMITS")]
    pub no_rate_limits: Option<bool>,
    /// Log filter, e.g. `info` or `chorus=debug,chat=debug` [default: info]
    #[arg(long, global = true, env = "CHORUS_LOG")]
    pub log: Option<String>,
    /// Usernames of instance admins (comma-separated), besides the first registered user [default: none]
    #[arg(long, global = true, env = "CHORUS_ADMINS", value_delimiter = ',')]
    pub admins: Option<Vec<String>>,
    /// Who may register: `open` (anyone), `invite` (with a code from `chorus admin invite create`) or
    /// `closed` (only `chorus admin user create`) [default: open]
    #[arg(long, global = true, env = "CHORUS_REGISTRATION")]
    pub registration: Option<Registration>,
    /// Run as one node of a cluster over this Redis, e.g. redis://10.0.0.5:6379 (needs
    /// --store mongodb://...; see docs/operations.md "Cluster") [default: single node]
    #[arg(long, global = true, env = "CHORUS_CLUSTER", hide_env_values = true)]
    pub cluster: Option<String>,
    /// What this node serves: `all`, or in a cluster `chat` (REST, gateway, web client; no SFU) or
    /// `sfu` (voice only: /voice and the SFU) [default: all]
    #[arg(long, global = true, env = "CHORUS_ROLE")]
    pub role: Option<Role>,
    /// Where attachments are stored: `local` (DATA_DIR/attachments), `local:DIR`, or
    /// `s3://BUCKET?endpoint=URL&region=R` (credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY; a cluster needs storage every node reaches) [default: local]
    #[arg(long, global = true, env = "CHORUS_UPLOAD_STORE", hide_env_values = true)]
    pub upload_store: Option<String>,
    /// Largest attachment, in MiB [default: 25]
    #[arg(long, global = true, env = "CHORUS_UPLOAD_MAX_FILE_MB")]
    pub upload_max_file_mb: Option<u64>,
    /// Largest total of one message's attachments, in MiB [default: 100]
    #[arg(long, global = true, env = "CHORUS_UPLOAD_MAX_MESSAGE_MB")]
    pub upload_max_message_mb: Option<u64>,
    /// Most attachments in one message [default: 10]
    #[arg(long, global = true, env = "CHORUS_UPLOAD_MAX_FILES")]
    pub upload_max_files: Option<u32>,
    /// Attachment bytes one user may have stored, in MiB; 0 = no quota [default: 1024]
    #[arg(long, global = true, env = "CHORUS_UPLOAD_QUOTA_MB")]
    pub upload_quota_mb: Option<u64>,
    /// Fetch previews of the links in messages (the server fetches them, never the viewers'
    /// browsers; only public addresses) [default: true]
    #[arg(long, global = true, env = "CHORUS_LINK_PREVIEWS")]
    pub link_previews: Option<bool>,
    /// Addresses (IP:PORT) link previews may fetch although they are not public — for tests and
    /// an intranet you trust [default: none]
    #[arg(long, global = true, env = "CHORUS_LINK_PREVIEW_ALLOW", value_delimiter = ',')]
    pub link_preview_allow: Option<Vec<SocketAddr>>,
}

/// What a node serves. A cluster may put media on machines of its own: `sfu` nodes hold the voice
/// rooms, `chat` nodes everything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    All,
    Chat,
    Sfu,
}

impl Role {
    /// Whether this node runs the SFU and serves `/voice`.
    pub fn serves_voice(self) -> bool {
        self != Role::Chat
    }

    /// Whether this node serves REST, the gateway, the web client and the dashboard.
    pub fn serves_chat(self) -> bool {
        self != Role::Sfu
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Chat => "chat",
            Role::Sfu => "sfu",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Role::All),
            "chat" => Ok(Role::Chat),
            "sfu" => Ok(Role::Sfu),
            other => Err(format!("role must be all, chat or sfu, not {other:?}")),
        }
    }
}

/// Subcommands besides running the server.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented chorus.toml (at --config, else ./chorus.toml) with fresh secrets; never overwrites
    Init {
        /// The server's domain: fills in the public URL, HTTPS with Let's Encrypt's paths, invite-only sign-up
        #[arg(long)]
        domain: Option<String>,
    },
    /// Print the TCP and UDP ports a firewall must open for the current settings, and what is advertised
    Ports,
    /// Manage users, instance invites and guilds in the configured store (while the server runs or not)
    Admin {
        /// Print results as JSON
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Copy the SQLite store and the voice secret into FILE, consistently, while the server runs
    Backup { file: PathBuf },
    /// Put a backup made by `chorus backup` into an empty data dir
    Restore { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Accounts: create, list, reset-password, set-admin, disable, enable
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Instance invites, for `--registration invite`
    Invite {
        #[command(subcommand)]
        command: InviteCommand,
    },
    /// Guilds: list, delete
    Guild {
        #[command(subcommand)]
        command: GuildCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (works whatever the registration mode)
    Create {
        name: String,
        /// Read the password from the first line of standard input (never from the command line)
        #[arg(long)]
        password_stdin: bool,
        /// Make the account an instance admin
        #[arg(long)]
        admin: bool,
    },
    /// List every account
    List,
    /// Set a new password and log the account out everywhere
    ResetPassword {
        name: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make an account an instance admin (it sees /admin), or with --revoke no longer
    SetAdmin {
        name: String,
        #[arg(long)]
        revoke: bool,
    },
    /// Refuse the account's logins and revoke its sessions; its open gateway closes within a heartbeat
    Disable { name: String },
    /// Let a disabled account log in again
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create an instance invite code
    Create {
        /// How many registrations it allows [default: unlimited]
        #[arg(long)]
        uses: Option<u32>,
        /// Seconds until it expires [default: never]
        #[arg(long)]
        expires: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GuildCommand {
    /// List every guild with its owner and member count
    List,
    /// Delete a guild and everything in it
    Delete { id: String },
}

/// One value or a list, so `public_ip = "203.0.113.5"` and `public_ip = ["203.0.113.5", "2001:db8::5"]`
/// both read.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The same settings as read from `chorus.toml` (snake_case keys).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub udp_port_base: Option<u16>,
    pub rtc_tcp_port: Option<u16>,
    pub rtc_bind: Option<IpAddr>,
    pub public_ip: Option<OneOrMany<IpAddr>>,
    pub stun_server: Option<String>,
    pub trusted_proxies: Option<OneOrMany<String>>,
    pub turn_url: Option<OneOrMany<String>>,
    pub turn_secret: Option<String>,
    pub turn_ttl: Option<u64>,
    pub turn_listen: Option<SocketAddr>,
    pub turn_tls_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub acme_domain: Option<OneOrMany<String>>,
    pub acme_email: Option<String>,
    pub acme_directory: Option<String>,
    pub acme_ca_file: Option<PathBuf>,
    pub redirect_listen: Option<SocketAddr>,
    pub sfu_workers: Option<usize>,
    pub public_url: Option<String>,
    pub voice_secret: Option<String>,
    pub voice_token_ttl: Option<u64>,
    pub node_id: Option<u16>,
    pub heartbeat_ms: Option<u64>,
    pub no_rate_limits: Option<bool>,
    pub log: Option<String>,
    pub admins: Option<Vec<String>>,
    pub registration: Option<String>,
    pub cluster: Option<String>,
    pub role: Option<Role>,
    pub upload_store: Option<String>,
    pub upload_max_file_mb: Option<u64>,
    pub upload_max_message_mb: Option<u64>,
    pub upload_max_files: Option<u32>,
    pub upload_quota_mb: Option<u64>,
    pub link_previews: Option<bool>,
    pub link_preview_allow: Option<Vec<SocketAddr>>,
}

/// External TURN servers (`--turn-url`, `--turn-secret`, `--turn-ttl`).
#[derive(Clone)]
pub struct Turn {
    pub urls: Vec<String>,
    pub secret: String,
    pub ttl_secs: u64,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").field("urls", &self.urls).field("ttl_secs", &self.ttl_secs).finish_non_exhaustive()
    }
}

/// The embedded TURN server's listeners (`--turn-listen`, `--turn-tls-listen`).
#[derive(Debug, Clone)]
pub struct EmbeddedTurn {
    pub udp_listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
}

/// Where the HTTPS certificate comes from.
#[derive(Debug, Clone)]
pub enum Certificates {
    /// `--tls-cert`, `--tls-key`: files the operator renews.
    Files(CertFiles),
    /// `--acme-domain`: ordered and renewed by Chorus.
    Acme(crate::acme::AcmeSettings),
}

/// HTTPS served by Chorus itself (`--tls-cert`/`--tls-key` or `--acme-domain`, `--redirect-listen`).
#[derive(Debug, Clone)]
pub struct Tls {
    pub certs: Certificates,
    /// The plain-HTTP listener that redirects to HTTPS, when set.
    pub redirect_listen: Option<SocketAddr>,
    pub redirect_to: RedirectTarget,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: String,
    pub udp_port_base: u16,
    /// The ICE-TCP port; None = off (`--rtc-tcp-port 0`).
    pub rtc_tcp_port: Option<u16>,
    /// Where the SFU listens and what it advertises.
    pub media: MediaAddresses,
    /// Asked at start for the public address (`--stun-server`).
    pub stun_server: Option<String>,
    pub trusted_proxies: TrustedProxies,
    /// TURN servers and their shared secret, when configured.
    pub turn: Option<Turn>,
    /// The embedded TURN server, when configured.
    pub embedded_turn: Option<EmbeddedTurn>,
    /// How long a TURN credential stays valid (`--turn-ttl`).
    pub turn_ttl_secs: u64,
    /// HTTPS on `listen`, when configured.
    pub tls: Option<Tls>,
    pub sfu_workers: usize,
    pub public_url: String,
    pub voice_secret: Option<String>,
    pub voice_token_ttl: u64,
    pub node_id: u16,
    /// The node id was given (`--node-id`); a cluster node otherwise claims a free one.
    pub node_id_explicit: bool,
    /// The cluster's Redis URL (`--cluster`); None on a single node.
    pub cluster: Option<String>,
    /// What this node serves (`--role`; only a cluster node may be less than `all`).
    pub role: Role,
    pub heartbeat_ms: u64,
    pub no_rate_limits: bool,
    pub log: String,
    /// Lower-cased usernames of instance admins named in the configuration.
    pub admins: Vec<String>,
    pub registration: Registration,
    /// Where attachments go (`--upload-store`).
    pub upload_store: String,
    pub upload_limits: chat::attachments::UploadLimits,
    pub previews: chat::service::previews::PreviewConfig,
}

impl Config {
    pub fn load(cli: Cli) -> Result<Config> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None if Path::new("chorus.toml").exists() => read_file(Path::new("chorus.toml"))?,
            None => FileConfig::default(),
        };
        let listen = cli.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = cli.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("./data"));
        let tls_files = match (cli.tls_cert.or(file.tls_cert), cli.tls_key.or(file.tls_key)) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(CertFiles { cert, key }),
            (Some(_), None) => anyhow::bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => anyhow::bail!("--tls-key needs --tls-cert"),
        };
        let acme_domains: Vec<String> = cli
            .acme_domain
            .or(file.acme_domain.map(OneOrMany::into_vec))
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        let acme_email = cli.acme_email.or(file.acme_email);
        let acme_directory = cli.acme_directory.or(file.acme_directory);
        let acme_ca_file = cli.acme_ca_file.or(file.acme_ca_file);
        let certs = match (tls_files, acme_domains.is_empty()) {
            (Some(_), false) => anyhow::bail!("--acme-domain and --tls-cert both supply the certificate: choose one"),
            (Some(files), true) => Some(Certificates::Files(files)),
            (None, true) => {
                if acme_email.is_some() || acme_directory.is_some() || acme_ca_file.is_some() {
                    anyhow::bail!("--acme-email, --acme-directory and --acme-ca-file need --acme-domain");
                }
                None
            }
            (None, false) => {
                if let Some(bad) = acme_domains.iter().find(|d| !crate::acme::valid_domain(d)) {
                    anyhow::bail!("--acme-domain {bad:?} is not a DNS name a CA can issue for (e.g. chat.example.org)");
                }
                if acme_email.as_ref().is_some_and(|e| !e.contains('@') || e.contains(char::is_whitespace)) {
                    anyhow::bail!("--acme-email must be an email address");
                }
                let directory = acme_directory.unwrap_or_else(|| crate::acme::LETS_ENCRYPT.to_string());
                if !directory.starts_with("https://") {
                    anyhow::bail!("--acme-directory must be an https:// URL");
                }
                Some(Certificates::Acme(crate::acme::AcmeSettings {
                    domains: acme_domains.clone(),
                    email: acme_email,
                    directory,
                    ca_file: acme_ca_file,
                    cache_dir: data_dir.join("acme"),
                }))
            }
        };
        let redirect_listen = cli.redirect_listen.or(file.redirect_listen);
        if redirect_listen.is_some() && certs.is_none() {
            anyhow::bail!(
                "--redirect-listen redirects to HTTPS, which needs --tls-cert and --tls-key or --acme-domain"
            );
        }
        let explicit_url = cli.public_url.or(file.public_url).map(|u| u.trim_end_matches('/').to_string());
        let scheme = if certs.is_some() { "https" } else { "http" };
        let default_url = match acme_domains.first() {
            Some(domain) if listen.port() == 443 => format!("https://{domain}"),
            Some(domain) => format!("https://{domain}:{}", listen.port()),
            None => format!("{scheme}://{listen}"),
        };
        let public_url = explicit_url.clone().unwrap_or(default_url);
        let tls = certs.map(|certs| Tls {
            certs,
            redirect_listen,
            redirect_to: match explicit_url.filter(|u| u.starts_with("https://")) {
                Some(origin) => RedirectTarget::Origin(origin),
                None => RedirectTarget::SameHost { https_port: listen.port() },
            },
        });
        let rtc_bind = cli.rtc_bind.or(file.rtc_bind);
        let public_ips = cli.public_ip.or(file.public_ip.map(OneOrMany::into_vec)).unwrap_or_default();
        let media = media_addr::resolve(rtc_bind, &public_ips, &public_url, media_addr::discover);
        let trusted: Vec<Cidr> = match cli.trusted_proxies {
            Some(list) => list,
            None => file
                .trusted_proxies
                .map(OneOrMany::into_vec)
                .unwrap_or_default()
                .iter()
                .map(|s| s.parse())
                .collect::<Result<_, _>>()
                .context("trusted_proxies in the configuration file")?,
        };
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let turn_urls: Vec<String> = cli.turn_url.or(file.turn_url.map(OneOrMany::into_vec)).unwrap_or_default();
        let turn_secret = cli.turn_secret.or(file.turn_secret);
        let turn_listen = cli.turn_listen.or(file.turn_listen);
        let turn_tls_listen = cli.turn_tls_listen.or(file.turn_tls_listen);
        if turn_tls_listen.is_some() && tls.is_none() {
            anyhow::bail!(
                "--turn-tls-listen needs --tls-cert and --tls-key or --acme-domain (browsers accept only a TURN \
                 certificate they trust)"
            );
        }
        let embedded_turn = (turn_listen.is_some() || turn_tls_listen.is_some())
            .then_some(EmbeddedTurn { udp_listen: turn_listen, tls_listen: turn_tls_listen });
        let turn_ttl_secs = cli.turn_ttl.or(file.turn_ttl).unwrap_or(86_400).clamp(60, 7 * 86_400);
        let turn = match (turn_urls.is_empty(), turn_secret) {
            (true, None) => None,
            // The embedded TURN server then uses it (a secret shared with other TURN servers).
            (true, Some(secret)) if embedded_turn.is_some() => {
                if secret.len() < 16 {
                    anyhow::bail!("--turn-secret must be at least 16 characters");
                }
                Some(Turn { urls: Vec::new(), secret, ttl_secs: turn_ttl_secs })
            }
            (true, Some(_)) => anyhow::bail!("--turn-secret is set but no --turn-url or --turn-listen"),
            (false, None) => anyhow::bail!("--turn-url needs --turn-secret (the TURN server's static-auth-secret)"),
            (false, Some(secret)) => {
                if let Some(bad) = turn_urls.iter().find(|u| !(u.starts_with("turn:") || u.starts_with("turns:"))) {
                    anyhow::bail!("--turn-url {bad:?} is not a turn: or turns: URL");
                }
                if secret.len() < 16 {
                    anyhow::bail!("--turn-secret must be at least 16 characters");
                }
                Some(Turn { urls: turn_urls, secret, ttl_secs: turn_ttl_secs })
            }
        };
        let registration = match cli.registration {
            Some(r) => r,
            None => match file.registration {
                Some(r) => {
                    r.parse().map_err(|e: String| anyhow::anyhow!("registration in the configuration file: {e}"))?
                }
                None => Registration::Open,
            },
        };
        let explicit_node_id = cli.node_id.or(file.node_id);
        let node_id = explicit_node_id.unwrap_or(0);
        if node_id > 1022 {
            anyhow::bail!("--node-id must be 0-1022 (1023 is the admin CLI's, so ids it mints never collide)");
        }
        let store = cli.store.or(file.store).unwrap_or_else(|| "sqlite".into());
        let cluster = cli.cluster.or(file.cluster).filter(|c| !c.trim().is_empty());
        if let Some(url) = &cluster {
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                anyhow::bail!("--cluster must be a redis:// or rediss:// URL");
            }
            if !store.starts_with("mongodb://") && !store.starts_with("mongodb+srv://") {
                anyhow::bail!(
                    "--cluster needs a shared store: --store mongodb://... (SQLite lives on one machine; \
                     see docs/operations.md \"Cluster\")"
                );
            }
        }
        let role = cli.role.or(file.role).unwrap_or_default();
        if role != Role::All && cluster.is_none() {
            anyhow::bail!("--role {} needs --cluster: a single node must serve both chat and voice", role.as_str());
        }
        if role == Role::Chat && embedded_turn.is_some() {
            anyhow::bail!("--turn-listen relays to this node's SFU, and --role chat runs none");
        }
        const MIB: u64 = 1 << 20;
        let defaults = chat::attachments::UploadLimits::default();
        let max_file_bytes = cli
            .upload_max_file_mb
            .or(file.upload_max_file_mb)
            .map_or(defaults.max_file_bytes, |m| m.clamp(1, 1 << 20) * MIB);
        let upload_limits = chat::attachments::UploadLimits {
            max_file_bytes,
            max_message_bytes: cli
                .upload_max_message_mb
                .or(file.upload_max_message_mb)
                .map_or(defaults.max_message_bytes, |m| m.clamp(1, 1 << 20) * MIB)
                .max(max_file_bytes),
            max_files: cli.upload_max_files.or(file.upload_max_files).unwrap_or(defaults.max_files).clamp(1, 100),
            quota_bytes: cli
                .upload_quota_mb
                .or(file.upload_quota_mb)
                .map_or(defaults.quota_bytes, |m| m.min(1 << 30).saturating_mul(MIB)),
            url_ttl: defaults.url_ttl,
        };
        let upload_store = cli.upload_store.or(file.upload_store).unwrap_or_else(|| "local".into());
        let previews = chat::service::previews::PreviewConfig {
            enabled: cli.link_previews.or(file.link_previews).unwrap_or(true),
            allowed: cli.link_preview_allow.or(file.link_preview_allow).unwrap_or_default(),
        };
        Ok(Config {
            previews,
            upload_store,
            upload_limits,
            node_id_explicit: explicit_node_id.is_some(),
            role,
            cluster,
            stun_server: cli.stun_server.or(file.stun_server),
            registration,
            turn,
            embedded_turn,
            turn_ttl_secs,
            tls,
            listen,
            data_dir,
            store,
            udp_port_base: cli.udp_port_base.or(file.udp_port_base).unwrap_or(50000),
            rtc_tcp_port: Some(cli.rtc_tcp_port.or(file.rtc_tcp_port).unwrap_or(7881)).filter(|p| *p != 0),
            media,
            trusted_proxies: TrustedProxies::new(&trusted),
            sfu_workers: cli.sfu_workers.or(file.sfu_workers).unwrap_or(cores).max(1),
            public_url,
            voice_secret: cli.voice_secret.or(file.voice_secret),
            voice_token_ttl: cli.voice_token_ttl.or(file.voice_token_ttl).unwrap_or(60).clamp(5, 3600),
            node_id,
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

    /// Asks the STUN server, if one is set, and adds what it saw to the advertised addresses. Blocking
    /// (3.5 s at most); a server that does not answer is logged and changes nothing.
    pub fn probe_stun(&mut self) {
        let Some(server) = self.stun_server.clone() else { return };
        match crate::stun::mapped_address(&server, self.media.bind) {
            Ok(seen) => {
                tracing::info!("STUN server {server} sees this machine as {seen}");
                self.media = self.media.clone().with_stun(seen);
            }
            Err(e) => tracing::warn!("--stun-server {server}: {e}; advertising without it"),
        }
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
    fn a_role_other_than_all_needs_a_cluster() {
        let err = Config::load(Cli { role: Some(Role::Sfu), ..Cli::default() }).unwrap_err();
        assert!(err.to_string().contains("--role sfu needs --cluster"), "{err}");
        let c = Config::load(Cli {
            role: Some(Role::Chat),
            cluster: Some("redis://127.0.0.1:6379".into()),
            store: Some("mongodb://127.0.0.1:27017/chorus".into()),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(c.role, Role::Chat);
        assert!(c.role.serves_chat() && !c.role.serves_voice());
        assert!("sfu".parse::<Role>().is_ok_and(|r| r.serves_voice() && !r.serves_chat()));
        assert!("media".parse::<Role>().is_err());
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let dir = std::env::temp_dir().join(format!("chorus-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        assert!(Config::load(Cli { config: Some(path), ..Cli::default() }).is_err());
    }

    #[test]
    fn public_ip_and_trusted_proxies_read_as_one_value_or_a_list() {
        let dir = std::env::temp_dir().join(format!("chorus-cfg3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "public_ip = \"203.0.113.5\"\ntrusted_proxies = \"10.0.0.0/8\"\n").unwrap();
        let c = Config::load(Cli { config: Some(path.clone()), ..Cli::default() }).unwrap();
        assert_eq!(c.media.advertised, vec!["203.0.113.5".parse::<IpAddr>().unwrap()]);
        assert!(!c.trusted_proxies.is_empty());
        std::fs::write(&path, "public_ip = [\"203.0.113.5\", \"2001:db8::5\"]\ntrusted_proxies = [\"nonsense\"]\n")
            .unwrap();
        assert!(Config::load(Cli { config: Some(path.clone()), ..Cli::default() }).is_err(), "a bad CIDR is an error");
        std::fs::write(&path, "public_ip = [\"203.0.113.5\", \"2001:db8::5\"]\n").unwrap();
        let c = Config::load(Cli { config: Some(path), ..Cli::default() }).unwrap();
        assert_eq!(c.media.advertised.len(), 2);
        assert_eq!(c.media.bind.to_string(), "0.0.0.0", "media listens on all interfaces by default");
    }

    #[test]
    fn tls_needs_both_files_and_makes_the_public_url_https() {
        let tls = |cert: Option<&str>, key: Option<&str>, redirect: Option<&str>| {
            Config::load(Cli {
                tls_cert: cert.map(PathBuf::from),
                tls_key: key.map(PathBuf::from),
                redirect_listen: redirect.map(|r| r.parse().unwrap()),
                listen: Some("0.0.0.0:8443".parse().unwrap()),
                ..Cli::default()
            })
        };
        let c = tls(Some("c.pem"), Some("k.pem"), Some("0.0.0.0:80")).unwrap();
        assert_eq!(c.public_url, "https://0.0.0.0:8443");
        assert_eq!(c.voice_endpoint(), "wss://0.0.0.0:8443/voice");
        let t = c.tls.unwrap();
        assert!(matches!(&t.certs, Certificates::Files(f) if f.cert.ends_with("c.pem")));
        assert_eq!(t.redirect_listen.map(|a| a.port()), Some(80));
        assert!(matches!(t.redirect_to, RedirectTarget::SameHost { https_port: 8443 }));
        assert!(tls(Some("c.pem"), None, None).is_err(), "a certificate without its key");
        assert!(tls(None, Some("k.pem"), None).is_err(), "a key without its certificate");
        assert!(tls(None, None, Some("0.0.0.0:80")).is_err(), "a redirect to an HTTPS that is not served");
        assert!(tls(None, None, None).unwrap().tls.is_none());
    }

    #[test]
    fn acme_takes_dns_names_and_makes_the_public_url_https() {
        let acme = |domains: &[&str], cert: Option<&str>| {
            Config::load(Cli {
                acme_domain: Some(domains.iter().map(|d| d.to_string()).collect()),
                tls_cert: cert.map(PathBuf::from),
                tls_key: cert.map(|_| PathBuf::from("k.pem")),
                listen: Some("0.0.0.0:443".parse().unwrap()),
                data_dir: Some(PathBuf::from("/var/lib/chorus")),
                ..Cli::default()
            })
        };
        let c = acme(&["Chat.Example.org"], None).unwrap();
        assert_eq!(c.public_url, "https://chat.example.org");
        match c.tls.map(|t| t.certs) {
            Some(Certificates::Acme(a)) => {
                assert_eq!(a.domains, ["chat.example.org"]);
                assert_eq!(a.directory, crate::acme::LETS_ENCRYPT);
                assert_eq!(a.cache_dir, PathBuf::from("/var/lib/chorus/acme"));
            }
            other => panic!("ACME settings expected: {other:?}"),
        }
        assert!(acme(&["chat.example.org"], Some("c.pem")).is_err(), "two sources of one certificate");
        assert!(acme(&["https://chat.example.org"], None).is_err(), "a URL is not a domain");
        let email_alone = Cli { acme_email: Some("ops@example.org".into()), ..Cli::default() };
        assert!(Config::load(email_alone).is_err(), "an email without a domain");
    }

    #[test]
    fn embedded_turn_over_tls_needs_a_certificate_and_may_share_the_turn_secret() {
        let tls_without_cert = Cli { turn_tls_listen: Some("0.0.0.0:5349".parse().unwrap()), ..Cli::default() };
        assert!(Config::load(tls_without_cert).is_err(), "browsers need a certificate they trust");
        let shared = Cli {
            turn_listen: Some("0.0.0.0:3478".parse().unwrap()),
            turn_secret: Some("0123456789abcdef".into()),
            ..Cli::default()
        };
        let config = Config::load(shared).unwrap();
        assert!(config.embedded_turn.is_some_and(|t| t.udp_listen.is_some()));
        assert_eq!(config.turn.map(|t| t.secret), Some("0123456789abcdef".to_string()));
    }

    #[test]
    fn turn_needs_urls_a_secret_and_turn_schemes() {
        let turn = |urls: Option<Vec<&str>>, secret: Option<&str>| {
            Config::load(Cli {
                turn_url: urls.map(|u| u.into_iter().map(String::from).collect()),
                turn_secret: secret.map(String::from),
                ..Cli::default()
            })
        };
        let ok =
            turn(Some(vec!["turn:turn.example.org:3478", "turns:turn.example.org:5349"]), Some("0123456789abcdef"));
        assert_eq!(ok.unwrap().turn.map(|t| (t.urls.len(), t.ttl_secs)), Some((2, 86_400)));
        assert!(turn(Some(vec!["turn:t.example.org"]), None).is_err(), "a URL without a secret");
        assert!(turn(None, Some("0123456789abcdef")).is_err(), "a secret without a URL");
        assert!(turn(Some(vec!["http://t.example.org"]), Some("0123456789abcdef")).is_err(), "not a TURN URL");
        assert!(turn(Some(vec!["turn:t.example.org"]), Some("short")).is_err(), "a guessable secret");
        assert!(turn(None, None).unwrap().turn.is_none());
    }
}
