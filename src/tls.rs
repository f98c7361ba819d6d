//! HTTPS served by Chorus itself (`--tls-cert`, `--tls-key`): the certificate is swapped in place on
//! SIGHUP or when either file changes (certbot renewals, Kubernetes secret updates) without dropping a
//! connection, and handshakes run off the accept loop so a slow or silent client holds up nobody.
//! Also the plain-HTTP listener (`--redirect-listen`) that sends browsers to HTTPS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri, header, uri::Authority};
use axum::response::{IntoResponse, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake not finished by then is dropped (a client that connects and says nothing).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; connections beyond are closed at once rather than queued.
const MAX_HANDSHAKES: usize = 1024;
/// Handshakes in progress from one address: one client cannot take the whole budget above.
const MAX_HANDSHAKES_PER_IP: u32 = 16;
/// How often the certificate files are checked for a change (SIGHUP reloads at once).
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// `Strict-Transport-Security` on every HTTPS answer: one year, this host only (the operator's other
/// subdomains may not speak HTTPS).
pub const HSTS: &str = "max-age=31536000";

/// The PEM files named by `--tls-cert` (the chain, leaf first) and `--tls-key`.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// Reads and checks both files: at least one certificate, a key rustls can sign with, and the two
    /// belonging together.
    pub fn load(&self) -> Result<CertifiedKey> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .with_context(|| format!("reading {}", self.cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing {}", self.cert.display()))?;
        if chain.is_empty() {
            anyhow::bail!("{} holds no PEM certificate", self.cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).with_context(|| format!("reading {}", self.key.display()))?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        CertifiedKey::from_der(chain, key, &provider)
            .with_context(|| format!("{} and {} do not make a usable pair", self.cert.display(), self.key.display()))
    }

    /// What changes when either file is rewritten or its symlink is swapped.
    fn stamp(&self) -> Option<[(SystemTime, u64); 2]> {
        let one = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        Some([one(&self.cert)?, one(&self.key)?])
    }
}

/// Hands every handshake the certificate loaded last.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> CertResolver {
        CertResolver { current: RwLock::new(Arc::new(key)) }
    }

    fn set(&self, key: CertifiedKey) {
        // A poisoned lock only means a panic elsewhere while swapping; the value is still whole.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// The rustls server configuration for `files`, and the resolver a reloader swaps certificates in.
pub fn server_config(files: &CertFiles) -> Result<(Arc<rustls::ServerConfig>, Arc<CertResolver>)> {
    let resolver = Arc::new(CertResolver::new(files.load()?));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), resolver))
}

/// The same certificate for TURN over TLS: no ALPN (browsers offer none for TURN).
fn turn_server_config(resolver: Arc<CertResolver>) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    Ok(Arc::new(config))
}

/// Reloads the certificate on SIGHUP and when either file changes; a file that does not load (half
/// written, mismatched) is reported and the current certificate kept.
pub fn spawn_reloader(files: CertFiles, resolver: Arc<CertResolver>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut last = files.stamp();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            let why = tokio::select! {
                _ = tick.tick() => {
                    let now = files.stamp();
                    if now == last {
                        continue;
                    }
                    last = now;
                    "the files changed"
                }
                Some(()) = hangup => "SIGHUP",
            };
            match files.load() {
                Ok(key) => {
                    resolver.set(key);
                    tracing::info!("TLS certificate reloaded from {} ({why})", files.cert.display());
                }
                Err(e) => tracing::warn!("TLS certificate not reloaded ({why}); keeping the current one: {e:#}"),
            }
        }
    });
}

/// The HTTPS listener's certificates, wherever they come from.
pub enum Serving {
    Files(Arc<rustls::ServerConfig>, Arc<CertResolver>),
    Acme(crate::acme::AcmeTls),
}

impl Serving {
    /// Loads the files (and watches them) or starts ACME. A certificate that does not load stops the start.
    pub fn start(certs: &crate::config::Certificates) -> Result<Serving> {
        match certs {
            crate::config::Certificates::Files(files) => {
                let (config, resolver) = server_config(files)?;
                spawn_reloader(files.clone(), resolver.clone());
                tracing::info!("TLS: certificate {}, key {}", files.cert.display(), files.key.display());
                Ok(Serving::Files(config, resolver))
            }
            crate::config::Certificates::Acme(settings) => Ok(Serving::Acme(crate::acme::start(settings)?)),
        }
    }

    /// The same certificate for TURN over TLS (`--turn-tls-listen`), renewed with the HTTPS one.
    pub fn turn_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        match self {
            Serving::Files(_, resolver) => turn_server_config(resolver.clone()),
            Serving::Acme(acme) => Ok(acme.turn.clone()),
        }
    }

    pub fn listener(self, tcp: TcpListener) -> TlsListener {
        match self {
            Serving::Files(config, _) => TlsListener::new(tcp, config, None),
            Serving::Acme(acme) => TlsListener::new(tcp, acme.config, Some(acme.challenge)),
        }
    }
}

/// One handshake: with ACME, a ClientHello offering `acme-tls/1` is the CA validating the domain and
/// gets the challenge certificate, then the connection ends (None).
async fn handshake(
    config: Arc<rustls::ServerConfig>,
    challenge: Option<Arc<rustls::ServerConfig>>,
    tcp: TcpStream,
) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let Some(challenge) = challenge else {
        return TlsAcceptor::from(config).accept(tcp).await.map(Some);
    };
    let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
    let validating = start.client_hello().alpn().into_iter().flatten().any(|p| p == ACME_TLS_ALPN);
    if validating {
        start.into_stream(challenge).await?;
        return Ok(None);
    }
    start.into_stream(config).await.map(Some)
}

/// RFC 8737's ALPN protocol id.
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Accepts TCP connections and yields them once their TLS handshake is done. Handshakes run in their
/// own tasks, bounded in number and time, so the accept loop never waits on one client.
pub struct TlsListener {
    tcp: TcpListener,
    config: Arc<rustls::ServerConfig>,
    challenge: Option<Arc<rustls::ServerConfig>>,
    handshakes: Arc<Semaphore>,
    per_ip: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>,
    done_tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    done_rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        challenge: Option<Arc<rustls::ServerConfig>>,
    ) -> TlsListener {
        let (done_tx, done_rx) = mpsc::channel(64);
        TlsListener {
            tcp,
            config,
            challenge,
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            per_ip: Arc::default(),
            done_tx,
            done_rx,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                biased;
                Some(done) = self.done_rx.recv() => return done,
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let Some(slot) = PerIpSlot::take(&self.per_ip, peer.ip()) else {
                            continue; // this address has enough handshakes going: dropping `tcp` closes it
                        };
                        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
                            continue; // shed
                        };
                        let _ = tcp.set_nodelay(true);
                        let (config, challenge) = (self.config.clone(), self.challenge.clone());
                        let done = self.done_tx.clone();
                        tokio::spawn(async move {
                            let shake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(config, challenge, tcp)).await;
                            drop(permit);
                            drop(slot);
                            match shake {
                                Ok(Ok(Some(tls))) => {
                                    let _ = done.send((tls, peer)).await;
                                }
                                Ok(Ok(None)) => tracing::debug!(%peer, "answered an ACME TLS-ALPN-01 validation"),
                                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        });
                    }
                    // Out of descriptors and the like: back off instead of spinning.
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// One handshake counted against its address; the count drops with it.
struct PerIpSlot {
    map: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>,
    ip: std::net::IpAddr,
}

impl PerIpSlot {
    fn take(
        map: &Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>,
        ip: std::net::IpAddr,
    ) -> Option<PerIpSlot> {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= MAX_HANDSHAKES_PER_IP {
            return None;
        }
        *n += 1;
        Some(PerIpSlot { map: map.clone(), ip })
    }
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Where the redirect listener sends a plain-HTTP request.
#[derive(Debug, Clone)]
pub enum RedirectTarget {
    /// The configured https public URL's origin (e.g. when a port is forwarded: 443 outside, 8443 here).
    Origin(String),
    /// The host the browser asked for, on the HTTPS listener's port.
    SameHost { https_port: u16 },
}

impl RedirectTarget {
    /// The `Location` for a request, or `None` when its Host header is missing or not a host.
    pub fn location(&self, host: Option<&str>, uri: &Uri) -> Option<String> {
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        match self {
            RedirectTarget::Origin(origin) => Some(format!("{origin}{path}")),
            RedirectTarget::SameHost { https_port } => {
                let authority: Authority = host?.parse().ok()?;
                if authority.as_str().contains('@') {
                    return None;
                }
                let port = if *https_port == 443 { String::new() } else { format!(":{https_port}") };
                Some(format!("https://{}{port}{path}", authority.host()))
            }
        }
    }
}

/// The plain-HTTP listener's whole service: every request is redirected (308 keeps the method).
pub fn redirect_router(target: RedirectTarget) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: Uri| {
        let target = target.clone();
        async move { redirect(&target, &headers, &uri) }
    })
}

fn redirect(target: &RedirectTarget, headers: &HeaderMap, uri: &Uri) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match target.location(host, uri) {
        Some(location) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response(),
        None => {
            let body =
                serde_json::json!({"code": "bad_request", "message": "a Host header naming this server is required"});
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn redirects_keep_the_path_and_query_on_the_https_port() {
        let t = RedirectTarget::SameHost { https_port: 8443 };
        assert_eq!(
            t.location(Some("chat.example.org"), &uri("/channels/1?x=2")).as_deref(),
            Some("https://chat.example.org:8443/channels/1?x=2")
        );
        assert_eq!(
            t.location(Some("chat.example.org:80"), &uri("/")).as_deref(),
            Some("https://chat.example.org:8443/"),
            "the plain-HTTP port is dropped"
        );
        let t = RedirectTarget::SameHost { https_port: 443 };
        assert_eq!(t.location(Some("[2001:db8::5]:80"), &uri("/a")).as_deref(), Some("https://[2001:db8::5]/a"));
    }

    #[test]
    fn a_configured_public_url_wins_over_the_host_header() {
        let t = RedirectTarget::Origin("https://chat.example.org".into());
        assert_eq!(t.location(Some("evil.example"), &uri("/x")).as_deref(), Some("https://chat.example.org/x"));
    }

    #[test]
    fn a_missing_or_malformed_host_gets_no_redirect() {
        let t = RedirectTarget::SameHost { https_port: 443 };
        assert_eq!(t.location(None, &uri("/")), None);
        assert_eq!(t.location(Some("a b"), &uri("/")), None);
        assert_eq!(t.location(Some("user@evil.example"), &uri("/")), None);
    }

    fn write_pair(dir: &Path, name: &str) -> CertFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
        let files = CertFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "a.example");
        assert_eq!(files.load().unwrap().cert.len(), 1);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a.example");
        let b = write_pair(dir.path(), "b.example");
        let mixed = CertFiles { cert: a.cert, key: b.key };
        assert!(format!("{:#}", mixed.load().unwrap_err()).contains("usable pair"));
    }

    #[test]
    fn empty_or_missing_files_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a.example");
        std::fs::write(&a.cert, "").unwrap();
        assert!(format!("{:#}", a.load().unwrap_err()).contains("no PEM certificate"));
        let missing = CertFiles { cert: dir.path().join("nope.crt"), key: a.key };
        assert!(format!("{:#}", missing.load().unwrap_err()).contains("nope.crt"));
    }
}
