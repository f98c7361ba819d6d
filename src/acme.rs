//! `--acme-domain`: certificates from an ACME CA (Let's Encrypt unless `--acme-directory` names
//! another), obtained and renewed by `rustls-acme` with the TLS-ALPN-01 challenge on the HTTPS
//! listener itself — no port 80 needed — and cached in `DATA_DIR/acme`, so a restart serves the
//! certificate it has instead of asking again.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::StreamExt;
use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls_acme::AcmeConfig;
use rustls_acme::caches::DirCache;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// What `--acme-*` asks for.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub directory: String,
    /// A CA certificate (PEM) the ACME directory's HTTPS is checked against instead of the web PKI:
    /// a private ACME CA (step-ca, an internal one), or pebble in the tests.
    pub ca_file: Option<PathBuf>,
    pub cache_dir: PathBuf,
}

/// The two server configurations: certificates for browsers, and the one that answers the CA's
/// TLS-ALPN-01 validation handshakes (`acme-tls/1`).
pub struct AcmeTls {
    pub config: Arc<ServerConfig>,
    pub challenge: Arc<ServerConfig>,
    /// For TURN over TLS: the same certificates, no ALPN.
    pub turn: Arc<ServerConfig>,
}

/// Starts ordering (or loads the cached certificate) in the background; handshakes before the first
/// certificate arrives fail, as they must.
pub fn start(settings: &AcmeSettings) -> Result<AcmeTls> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let acme = match &settings.ca_file {
        Some(file) => AcmeConfig::new_with_client_config(&settings.domains, client_config(file, provider.clone())?),
        None => AcmeConfig::new_with_provider(&settings.domains, provider.clone()),
    };
    std::fs::create_dir_all(&settings.cache_dir)
        .with_context(|| format!("creating {}", settings.cache_dir.display()))?;
    let mut state = acme
        .contact(settings.email.iter().map(|e| format!("mailto:{e}")))
        .cache(DirCache::new(settings.cache_dir.clone()))
        .directory(&settings.directory)
        .state();
    let challenge = state.challenge_rustls_config_with_provider(provider.clone());
    let turn = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(state.resolver());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(state.resolver());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tracing::info!("ACME: certificate for {} from {}", settings.domains.join(", "), settings.directory);
    tokio::spawn(async move {
        while let Some(event) = state.next().await {
            match event {
                Ok(ok) => tracing::info!("ACME: {ok:?}"),
                Err(err) => tracing::warn!("ACME: {err}"),
            }
        }
    });
    Ok(AcmeTls { config: Arc::new(config), challenge, turn: Arc::new(turn) })
}

/// The ACME client's TLS, trusting only `file`.
fn client_config(
    file: &std::path::Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(file).with_context(|| format!("reading {}", file.display()))? {
        roots.add(cert.with_context(|| format!("parsing {}", file.display()))?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A DNS name a CA can issue for: letters, digits, hyphens and dots, no scheme, port or wildcard.
pub fn valid_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && name.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_dns_names_are_accepted() {
        assert!(valid_domain("chat.example.org"));
        assert!(valid_domain("a-b.example.org"));
        for bad in
            ["", "localhost", "https://chat.example.org", "chat.example.org:443", "*.example.org", "-a.org", "a..org"]
        {
            assert!(!valid_domain(bad), "{bad:?}");
        }
    }
}
