//! `--acme-domain` end to end against Debian's `pebble`, the ACME test CA: the real binary orders a
//! certificate for `chat.chorus.test`, pebble validates it by TLS-ALPN-01 on Chorus's HTTPS port
//! (its DNS answered by `pebble-challtestsrv` with 127.0.0.1), and a client that trusts only
//! pebble's root gets the page, and TURN over TLS serves the same certificate. Restarted with pebble
//! gone, Chorus serves the cached certificate.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DOMAIN: &str = "chat.chorus.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Kills the process when the test ends, however it ends.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client_trusting(roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(config)
}

/// One HTTP/1.1 GET over TLS to 127.0.0.1:`port` with SNI `name`: (status, body).
async fn https_get(
    port: u16,
    name: &str,
    client: Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let server_name = ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
    let mut tls = tokio_rustls::TlsConnector::from(client).connect(server_name, tcp).await?;
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()))
}

/// Pebble with its own API certificate (from a CA the test makes) and a DNS that answers 127.0.0.1.
struct Pebble {
    _pebble: Proc,
    _dns: Proc,
    directory: String,
    api_ca: std::path::PathBuf,
    management: u16,
    api_client: Arc<rustls::ClientConfig>,
}

fn start_pebble(dir: &Path, tls_port: u16) -> Pebble {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("leaf");
    let api_ca = dir.join("pebble-api-ca.pem");
    std::fs::write(&api_ca, ca.pem()).expect("write");
    std::fs::write(dir.join("pebble-cert.pem"), leaf.pem()).expect("write");
    std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).expect("write");
    let (listen, management, dns, dns_management) = (free_port(), free_port(), free_port(), free_port());
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{listen}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": dir.join("pebble-cert.pem"),
        "privateKey": dir.join("pebble-key.pem"),
        "httpPort": free_port(),
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    }});
    std::fs::write(dir.join("pebble.json"), config.to_string()).expect("write");
    let dns_proc = Command::new("pebble-challtestsrv")
        .args(["-dns01", &format!("127.0.0.1:{dns}"), "-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-management", &format!("127.0.0.1:{dns_management}"), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble-challtestsrv (Debian package pebble; scripts/test.sh installs it)");
    let pebble = Command::new("pebble")
        .arg("-config")
        .arg(dir.join("pebble.json"))
        .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
        // No random wait before validating, and no deliberately rejected nonces: a deterministic CA.
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble (Debian package pebble; scripts/test.sh installs it)");
    Pebble {
        _pebble: Proc(pebble),
        _dns: Proc(dns_proc),
        directory: format!("https://127.0.0.1:{listen}/dir"),
        api_ca,
        management,
        api_client: client_trusting(&[ca.der().clone()]),
    }
}

impl Pebble {
    /// The root pebble issues under (made fresh at each start).
    async fn root(&self) -> CertificateDer<'static> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, pem)) = https_get(self.management, "127.0.0.1", self.api_client.clone(), "/roots/0").await {
                return CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM root");
            }
            assert!(Instant::now() < deadline, "pebble's management API did not answer");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn start_chorus(data: &Path, port: u16, turn_tls: u16, directory: &str, api_ca: &Path) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--acme-domain", DOMAIN, "--acme-email", "ops@chorus.test"])
        .args(["--acme-directory", directory])
        .args(["--turn-tls-listen", &format!("127.0.0.1:{turn_tls}")])
        .arg("--acme-ca-file")
        .arg(api_ca)
        .arg("--data-dir")
        .arg(data)
        .args(["--udp-port-base", &(20000 + port % 20000).to_string(), "--sfu-workers", "1", "--rtc-tcp-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chorus");
    Proc(child)
}

async fn wait_for_https(port: u16, client: Arc<rustls::ClientConfig>, within: Duration) -> Result<u16, String> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match https_get(port, DOMAIN, client.clone(), "/healthz").await {
            Ok((status, _)) => return Ok(status),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(last)
}

#[tokio::test]
async fn a_certificate_is_ordered_from_the_acme_ca_served_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let pebble = start_pebble(dir.path(), port);
    let root = pebble.root().await;
    let trusts_pebble = client_trusting(&[root]);
    let data = dir.path().join("data");

    let turn_tls = free_port();
    let chorus = start_chorus(&data, port, turn_tls, &pebble.directory, &pebble.api_ca);
    let status = wait_for_https(port, trusts_pebble.clone(), Duration::from_secs(90)).await;
    assert_eq!(status, Ok(200), "HTTPS with pebble's certificate for {DOMAIN}");
    // TURN over TLS serves the same certificate: a STUN binding over it is answered.
    let tcp = TcpStream::connect(("127.0.0.1", turn_tls)).await.expect("TURN/TLS port");
    let name = ServerName::try_from(DOMAIN).expect("name");
    let mut tls =
        tokio_rustls::TlsConnector::from(trusts_pebble.clone()).connect(name, tcp).await.expect("TURN TLS handshake");
    let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    binding.extend_from_slice(&[7u8; 12]);
    tls.write_all(&binding).await.expect("write");
    let mut head = [0u8; 20];
    tls.read_exact(&mut head).await.expect("a STUN answer");
    assert_eq!(&head[..2], &[0x01, 0x01], "binding success");
    let cached = std::fs::read_dir(data.join("acme")).map(|d| d.count()).unwrap_or(0);
    assert!(cached >= 2, "the account and the certificate are cached in DATA_DIR/acme ({cached} files)");

    // Without the CA, a restart serves what it cached.
    let (directory, api_ca) = (pebble.directory.clone(), pebble.api_ca.clone());
    drop(chorus);
    drop(pebble);
    let _chorus = start_chorus(&data, port, turn_tls, &directory, &api_ca);
    let status = wait_for_https(port, trusts_pebble, Duration::from_secs(30)).await;
    assert_eq!(status, Ok(200), "the cached certificate is served with the CA unreachable");
}
