//! The preview fetcher. It resolves every name itself, refuses a URL unless every address the name
//! has is permitted ([`super::address::Policy`]), and pins the connection to the address it checked
//! (so a second lookup cannot rebind it). Redirects are followed by hand, at most 3, each checked
//! the same way. A fetch takes at most 5 s, reads at most its size limit, takes only the content
//! type asked for, sends no cookies and no credentials, and goes through no proxy.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, LOCATION};

use super::address::Policy;

const MAX_REDIRECTS: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(5);
/// Enough for any page's `<head>`; the rest is not read.
pub const MAX_PAGE_BYTES: usize = 512 << 10;
pub const MAX_IMAGE_BYTES: usize = 5 << 20;
const USER_AGENT: &str = concat!("ChorusBot/", env!("CARGO_PKG_VERSION"), " (link previews)");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("failed: {0}")]
    Failed(String),
    #[error("not the kind of content asked for")]
    WrongType,
    #[error("larger than allowed")]
    TooLarge,
}

/// What to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// An HTML page (its head is enough).
    Page,
    /// An image, whole.
    Image,
}

#[derive(Debug)]
pub struct Fetched {
    /// Where the content came from, after redirects.
    pub url: Url,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Fetcher {
    pub policy: Policy,
}

impl Fetcher {
    /// The permitted address to connect to for `url`, after checking every address of its host.
    async fn resolve(&self, url: &Url, deadline: Instant) -> Result<SocketAddr, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Refused(format!("scheme {}", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::Refused("credentials in the URL".into()));
        }
        let port = url.port_or_known_default().ok_or_else(|| FetchError::Refused("no port".into()))?;
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
            Some(url::Host::Domain(name)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::timeout(left, tokio::net::lookup_host((name, port)))
                    .await
                    .map_err(|_| FetchError::Failed(format!("resolving {name}: no answer in time")))?
                    .map_err(|e| FetchError::Failed(format!("resolving {name}: {e}")))?
                    .collect()
            }
            None => return Err(FetchError::Refused("no host".into())),
        };
        if addrs.is_empty() {
            return Err(FetchError::Failed("the name has no address".into()));
        }
        // Every record must pass: a name with one public and one internal address is refused.
        if let Some(bad) = addrs.iter().find(|a| !self.policy.permits(**a)) {
            return Err(FetchError::Refused(format!("address {bad} is not public")));
        }
        Ok(addrs[0])
    }

    pub async fn fetch(&self, url: &str, want: Want) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + TIMEOUT;
        let mut url = Url::parse(url).map_err(|e| FetchError::Refused(format!("not a URL: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let addr = self.resolve(&url, deadline).await?;
            let host = url.host_str().unwrap_or_default().to_owned();
            let left = deadline.saturating_duration_since(Instant::now());
            let client = reqwest::Client::builder()
                .resolve(&host, addr)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .timeout(left)
                .user_agent(USER_AGENT)
                .build()
                .map_err(|e| FetchError::Failed(e.to_string()))?;
            let accept = match want {
                Want::Page => "text/html,application/xhtml+xml;q=0.9",
                Want::Image => "image/png,image/jpeg,image/gif,image/webp",
            };
            let resp = client
                .get(url.clone())
                .header(reqwest::header::ACCEPT, accept)
                .send()
                .await
                .map_err(|e| FetchError::Failed(e.to_string()))?;
            if resp.status().is_redirection() {
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| FetchError::Failed("a redirect without Location".into()))?;
                url = url.join(location).map_err(|e| FetchError::Refused(format!("redirect: {e}")))?;
                continue;
            }
            if !resp.status().is_success() {
                return Err(FetchError::Failed(format!("status {}", resp.status())));
            }
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let (ok, limit) = match want {
                Want::Page => (
                    content_type.starts_with("text/html") || content_type.starts_with("application/xhtml"),
                    MAX_PAGE_BYTES,
                ),
                Want::Image => (content_type.starts_with("image/"), MAX_IMAGE_BYTES),
            };
            if !ok {
                return Err(FetchError::WrongType);
            }
            let mut body = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| FetchError::Failed(e.to_string()))?;
                if body.len() + chunk.len() > limit {
                    if want == Want::Image {
                        return Err(FetchError::TooLarge);
                    }
                    // A page's head comes first: what fits is enough.
                    body.extend_from_slice(&chunk[..limit - body.len()]);
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(Fetched { url, content_type, body });
        }
        Err(FetchError::Refused("too many redirects".into()))
    }
}
