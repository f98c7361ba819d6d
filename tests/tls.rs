//! The real `chorus` binary serving HTTPS itself: a certificate from a test CA that the client trusts,
//! HSTS, the gateway over wss, renewal on SIGHUP and on a file change without a restart, the
//! plain-HTTP redirect listener, and handshakes that cannot hold the listener up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A test CA and the client configuration that trusts it (and nothing else).
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    client: Arc<rustls::ClientConfig>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).expect("trust the CA");
        let mut client =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        // A resumed session reports the certificate of the session it resumes, not the one served now.
        client.resumption = rustls::client::Resumption::disabled();
        Pki { ca, client: Arc::new(client) }
    }

    /// A leaf for `localhost` signed by the CA: (certificate PEM, key PEM, certificate DER).
    fn issue(&self) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .signed_by(&key, &self.ca)
            .expect("leaf");
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }
}

/// Files padded to one length and stamped with one time, so that only SIGHUP can tell a rewrite apart.
const PADDED_LEN: usize = 8192;
fn fixed_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn write_padded(path: &Path, pem: &str, modified: SystemTime) {
    let mut text = pem.to_string();
    text.push_str(&"\n".repeat(PADDED_LEN.saturating_sub(text.len())));
    // Written beside and renamed over, as certbot and Kubernetes do: a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::File::options().write(true).open(&tmp).and_then(|f| f.set_modified(modified)).expect("mtime");
    std::fs::rename(&tmp, path).expect("rename");
}

struct Chorus {
    child: Child,
    port: u16,
    redirect_port: u16,
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl Chorus {
    async fn start(pki: &Pki, leaf: &(String, String, CertificateDer<'static>)) -> Chorus {
        let dir = tempfile::tempdir().expect("dir");
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        write_padded(&cert, &leaf.0, fixed_time());
        write_padded(&key, &leaf.1, fixed_time());
        let (port, redirect_port) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--redirect-listen", &format!("127.0.0.1:{redirect_port}")])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--udp-port-base", &(20000 + port % 20000).to_string(), "--sfu-workers", "1"])
            .args(["--rtc-tcp-port", "0"])
            .env("CHORUS_NO_RATE_LIMITS", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chorus");
        let c = Chorus { child, port, redirect_port, cert, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if c.get(pki, "/readyz").await.is_ok_and(|r| r.status == 200) {
                return c;
            }
            assert!(Instant::now() < deadline, "chorus did not answer over HTTPS");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn tls(&self, pki: &Pki) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let name = ServerName::try_from("localhost").expect("name");
        tokio_rustls::TlsConnector::from(pki.client.clone()).connect(name, tcp).await
    }

    /// One HTTP/1.1 GET over a fresh TLS connection.
    async fn get(&self, pki: &Pki, path: &str) -> std::io::Result<Answer> {
        let mut tls = self.tls(pki).await?;
        let served = tls.get_ref().1.peer_certificates().and_then(|c| c.first().cloned()).expect("a certificate");
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        // A peer that closes without close_notify still gave a whole answer (Connection: close).
        match tls.read_to_end(&mut raw).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e),
        }
        let text = String::from_utf8_lossy(&raw).to_string();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok(Answer { status, head: text.split("\r\n\r\n").next().unwrap_or_default().to_lowercase(), served })
    }

    /// Polls until a new connection is served `want`.
    async fn wait_for_certificate(&self, pki: &Pki, want: &CertificateDer<'static>, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.get(pki, "/healthz").await.is_ok_and(|a| a.served == *want && a.status == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "the new certificate was not served within {within:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Chorus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    head: String,
    served: CertificateDer<'static>,
}

#[tokio::test]
async fn serves_https_with_the_given_certificate_hsts_and_the_gateway_over_wss() {
    let pki = Pki::new();
    let leaf = pki.issue();
    let c = Chorus::start(&pki, &leaf).await;
    let a = c.get(&pki, "/readyz").await.expect("GET /readyz");
    assert_eq!(a.status, 200, "{}", a.head);
    assert_eq!(a.served, leaf.2, "the configured certificate is served");
    assert!(a.head.contains("strict-transport-security: max-age=31536000"), "{}", a.head);

    let tls = c.tls(&pki).await.expect("TLS");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{}/gateway", c.port), tls)
        .await
        .expect("gateway upgrade over TLS");
    let hello = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("HELLO in time");
    let hello = hello.expect("a frame").expect("a frame").into_text().expect("text");
    assert!(hello.contains("heartbeat_interval_ms"), "{hello}");
}

#[tokio::test]
async fn sighup_serves_a_renewed_certificate_without_a_restart() {
    let pki = Pki::new();
    let c = Chorus::start(&pki, &pki.issue()).await;
    // Same length, same mtime: the file watcher cannot see it, only the signal can.
    let renewed = pki.issue();
    write_padded(&c.cert, &renewed.0, fixed_time());
    write_padded(&c.cert.with_file_name("tls.key"), &renewed.1, fixed_time());
    let open = c.tls(&pki).await.expect("a connection open across the reload");
    let status = Command::new("kill").args(["-HUP", &c.child.id().to_string()]).status().expect("kill -HUP");
    assert!(status.success());
    c.wait_for_certificate(&pki, &renewed.2, Duration::from_secs(20)).await;
    let mut open = open;
    open.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = Vec::new();
    let _ = open.read_to_end(&mut answer).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "a connection made before the reload still works");
}

#[tokio::test]
async fn a_changed_certificate_file_is_picked_up_and_a_broken_one_keeps_the_current() {
    let pki = Pki::new();
    let first = pki.issue();
    let c = Chorus::start(&pki, &first).await;
    write_padded(&c.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n", SystemTime::now());
    // Several polls of the files go by; the broken file is refused each time.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let a = c.get(&pki, "/healthz").await.expect("still serving");
    assert_eq!((a.status, a.served), (200, first.2), "the current certificate is kept");

    let renewed = pki.issue();
    write_padded(&c.cert.with_file_name("tls.key"), &renewed.1, SystemTime::now());
    write_padded(&c.cert, &renewed.0, SystemTime::now());
    c.wait_for_certificate(&pki, &renewed.2, Duration::from_secs(20)).await;
}

#[tokio::test]
async fn plain_http_on_the_redirect_listener_is_sent_to_https() {
    let pki = Pki::new();
    let c = Chorus::start(&pki, &pki.issue()).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r = http.get(format!("http://127.0.0.1:{}/channels/1?x=2", c.redirect_port)).send().await.expect("GET");
    assert_eq!(r.status(), 308, "permanent, and the method is kept");
    let location = r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default();
    assert_eq!(location, format!("https://127.0.0.1:{}/channels/1?x=2", c.port));
    let r = http.post(format!("http://127.0.0.1:{}/api/v1/auth/login", c.redirect_port)).send().await.expect("POST");
    assert_eq!(r.status(), 308, "an API call is redirected too, never answered in plain text");
}

#[tokio::test]
async fn clients_that_stall_or_speak_plain_http_hold_up_nobody() {
    let pki = Pki::new();
    let c = Chorus::start(&pki, &pki.issue()).await;
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(("127.0.0.1", c.port)).await.expect("connect"));
    }
    // Half a ClientHello record, then nothing.
    let mut half = TcpStream::connect(("127.0.0.1", c.port)).await.expect("connect");
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.expect("write");
    let a = c.get(&pki, "/healthz").await.expect("a real client is served");
    assert_eq!(a.status, 200);

    let mut plain = TcpStream::connect(("127.0.0.1", c.port)).await.expect("connect");
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "plain HTTP on the TLS port is closed, not left hanging");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "and never answered in plain text");
    drop(silent);
    drop(half);
}

#[tokio::test]
async fn one_address_cannot_hold_every_handshake_slot() {
    let pki = Pki::new();
    let c = Chorus::start(&pki, &pki.issue()).await;
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(TcpStream::connect(("127.0.0.1", c.port)).await.expect("connect"));
    }
    // Past the per-address budget the server closes at once instead of holding the connection.
    let mut closed = 0;
    for s in silent.iter_mut() {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(300), s.read(&mut byte)).await {
            closed += 1;
        }
    }
    assert!(closed >= 20, "only {closed} of 40 stalled connections from one address were refused");
    drop(silent);
    // Their slots come back when they go away.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if c.get(&pki, "/healthz").await.is_ok_and(|a| a.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the address never got a slot back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
