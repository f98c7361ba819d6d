//! The embedded TURN server (`--turn-listen`, `--turn-tls-listen`) wired to this node: the ICE
//! server URLs `joined` carries for it, and the SFU addresses it may relay to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::{Config, EmbeddedTurn};
use crate::media_addr::url_host;

/// A started embedded TURN server and what signaling hands out for it.
pub struct Embedded {
    pub server: turn::TurnServer,
    pub urls: Vec<String>,
    pub secret: String,
}

/// Binds the listeners. Relaying is allowed nowhere until [`allow_sfu`] names the SFU's sockets.
pub async fn start(
    config: &Config,
    embedded: &EmbeddedTurn,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
    open_relays: turn::OpenRelays,
    registry: &prometheus::Registry,
) -> Result<Embedded> {
    // Credentials are made and checked on this node only (the node that hosts a call hands out
    // its own TURN), so a secret made at start is enough unless an external TURN shares one.
    let secret = match &config.turn {
        Some(t) => t.secret.clone(),
        None => (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect(),
    };
    let tls = tls.filter(|_| embedded.tls_listen.is_some());
    let server = turn::io::start(
        turn::TurnConfig {
            realm: url_host(&config.public_url).unwrap_or("chorus").to_string(),
            secret: secret.as_bytes().to_vec(),
            udp_listen: embedded.udp_listen,
            tls_listen: embedded.tls_listen,
            tls,
            targets: turn::Targets::default(),
            limits: turn::Limits::default(),
            open_relays,
        },
        registry,
    )
    .await
    .context("starting the embedded TURN server")?;
    let urls = urls(server.udp_addr, server.tls_addr, &config.media.advertised, &config.public_url);
    tracing::info!(
        "TURN (embedded): UDP {}, TLS {}; offered as {}",
        server.udp_addr.map_or("off".into(), |a| a.to_string()),
        server.tls_addr.map_or("off".into(), |a| a.to_string()),
        urls.join(", ")
    );
    Ok(Embedded { server, urls, secret })
}

/// Lets the TURN server relay to the SFU's UDP sockets, under every address clients know them by.
pub fn allow_sfu(embedded: &Embedded, sfu_udp: &[SocketAddr], advertised: &[IpAddr]) {
    embedded.server.set_targets(targets(sfu_udp, advertised));
}

/// The ICE server entry for `joined`: external TURN URLs and the embedded ones, one secret.
pub fn ice_turn(config: &Config, embedded: Option<&Embedded>) -> Option<signaling::ice::TurnRest> {
    let ttl = Duration::from_secs(config.turn.as_ref().map_or(config.turn_ttl_secs, |t| t.ttl_secs));
    let mut urls: Vec<String> = config.turn.iter().flat_map(|t| t.urls.clone()).collect();
    urls.extend(embedded.iter().flat_map(|e| e.urls.clone()));
    let secret = embedded.map(|e| e.secret.clone()).or_else(|| config.turn.as_ref().map(|t| t.secret.clone()))?;
    Some(signaling::ice::TurnRest::new(urls, &secret, ttl))
}

/// `(name a client uses, where this node sends)` for each SFU socket: the advertised addresses and
/// the bound one, sent to over loopback when the socket is bound to all interfaces.
pub fn targets(sfu_udp: &[SocketAddr], advertised: &[IpAddr]) -> turn::Targets {
    let mut pairs = Vec::new();
    for bound in sfu_udp {
        let local = match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port()),
            IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound.port()),
            _ => *bound,
        };
        pairs.push((local, local));
        pairs.extend(advertised.iter().map(|ip| (SocketAddr::new(*ip, bound.port()), local)));
    }
    turn::Targets::new(pairs)
}

/// `turn:` URLs for each advertised address (UDP), and a `turns:` URL on the public URL's host
/// (TLS: the certificate names the host, not an address).
fn urls(udp: Option<SocketAddr>, tls: Option<SocketAddr>, advertised: &[IpAddr], public_url: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(udp) = udp {
        out.extend(advertised.iter().map(|ip| format!("turn:{}?transport=udp", SocketAddr::new(*ip, udp.port()))));
    }
    if let (Some(tls), Some(host)) = (tls, url_host(public_url)) {
        out.push(format!("turns:{host}:{}?transport=tcp", tls.port()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_name_each_advertised_address_and_the_tls_host() {
        let adv: Vec<IpAddr> = vec!["203.0.113.5".parse().unwrap(), "2001:db8::5".parse().unwrap()];
        let got = urls(
            Some("0.0.0.0:3478".parse().unwrap()),
            Some("0.0.0.0:443".parse().unwrap()),
            &adv,
            "https://chat.example.org",
        );
        assert_eq!(
            got,
            [
                "turn:203.0.113.5:3478?transport=udp",
                "turn:[2001:db8::5]:3478?transport=udp",
                "turns:chat.example.org:443?transport=tcp"
            ]
        );
    }

    #[test]
    fn an_sfu_bound_to_all_interfaces_is_reached_over_loopback_under_its_advertised_names() {
        let t = targets(&["0.0.0.0:50000".parse().unwrap()], &["203.0.113.5".parse().unwrap()]);
        let local: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        assert_eq!(t.local(&"203.0.113.5:50000".parse().unwrap()), Some(local));
        assert_eq!(t.local(&local), Some(local));
        assert_eq!(t.local(&"203.0.113.5:50001".parse().unwrap()), None, "another port of the same host");
    }
}
