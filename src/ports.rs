//! `chorus ports`: what a firewall must let in for the current settings, and what media advertises.

use std::fmt::Write;

use crate::config::Config;
use crate::media_addr;

/// The report `chorus ports` prints: one line per port range, then the advertised addresses.
pub fn report(config: &Config) -> String {
    let mut out = String::new();
    let http = config.listen;
    let behind_proxy = http.ip().is_loopback() && !media_addr::url_host_is_loopback(&config.public_url);
    let _ = writeln!(
        out,
        "TCP {:<12} {}: web client, API, gateway, voice signaling (listening on {http}){}",
        http.port(),
        if config.tls.is_some() { "HTTPS" } else { "HTTP" },
        if behind_proxy { "; open your reverse proxy's 80/443 instead, this one is local" } else { "" }
    );
    if let Some(redirect) = config.tls.as_ref().and_then(|t| t.redirect_listen) {
        let _ = writeln!(out, "TCP {:<12} plain HTTP, redirected to HTTPS (listening on {redirect})", redirect.port());
    }
    let workers = config.sfu_workers.max(1) as u32;
    let udp = if config.udp_port_base == 0 {
        "ephemeral".to_string()
    } else {
        let last = (config.udp_port_base as u32 + workers - 1).min(u16::MAX as u32);
        if workers == 1 { config.udp_port_base.to_string() } else { format!("{}-{last}", config.udp_port_base) }
    };
    let _ = writeln!(out, "UDP {udp:<12} media: {workers} SFU worker(s), bound to {}", config.media.bind);
    if let Some(tcp) = config.rtc_tcp_port {
        let _ = writeln!(out, "TCP {tcp:<12} media over ICE-TCP, for clients whose network blocks UDP");
    }
    if let Some(turn) = &config.embedded_turn {
        if let Some(udp) = turn.udp_listen {
            let _ = writeln!(out, "UDP {:<12} TURN (embedded; relays only to this node's SFU)", udp.port());
        }
        if let Some(tls) = turn.tls_listen {
            let _ = writeln!(out, "TCP {:<12} TURN over TLS (embedded), for networks that allow only TLS", tls.port());
        }
    }
    let _ = writeln!(
        out,
        "advertised: {} (chosen by {}); public URL {}",
        media_addr::join(&config.media.advertised),
        config.media.source,
        config.public_url
    );
    if let Some(w) = &config.media.warning {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_the_embedded_turn_ports() {
        let cli = Cli { turn_listen: Some("0.0.0.0:3478".parse().unwrap()), ..Cli::default() };
        let out = report(&Config::load(cli).unwrap());
        assert!(out.contains("UDP 3478"), "{out}");
        assert!(out.contains("TURN (embedded"), "{out}");
    }

    use super::*;
    use crate::config::Cli;

    #[test]
    fn lists_the_http_port_and_one_udp_port_per_worker() {
        let cli = Cli {
            listen: Some("127.0.0.1:8080".parse().unwrap()),
            public_url: Some("https://chat.example.org".into()),
            public_ip: Some(vec!["203.0.113.5".parse().unwrap()]),
            udp_port_base: Some(50000),
            sfu_workers: Some(4),
            ..Cli::default()
        };
        let r = report(&Config::load(cli).unwrap());
        assert!(r.contains("TCP 8080"), "{r}");
        assert!(r.contains("reverse proxy"), "a loopback listener behind a public URL is a proxied one: {r}");
        assert!(r.contains("UDP 50000-50003"), "{r}");
        assert!(r.contains("TCP 7881") && r.contains("ICE-TCP"), "ICE-TCP is on by default: {r}");
        assert!(r.contains("advertised: 203.0.113.5"), "{r}");
        assert!(!r.contains("warning"), "{r}");
    }

    #[test]
    fn with_tls_lists_https_and_the_redirect_port() {
        let cli = Cli {
            listen: Some("0.0.0.0:443".parse().unwrap()),
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            redirect_listen: Some("0.0.0.0:80".parse().unwrap()),
            public_ip: Some(vec!["203.0.113.5".parse().unwrap()]),
            ..Cli::default()
        };
        let r = report(&Config::load(cli).unwrap());
        assert!(r.contains("TCP 443") && r.contains("HTTPS"), "{r}");
        assert!(r.contains("TCP 80") && r.contains("redirected to HTTPS"), "{r}");
    }

    #[test]
    fn ice_tcp_is_left_out_when_turned_off() {
        let cli =
            Cli { public_ip: Some(vec!["203.0.113.5".parse().unwrap()]), rtc_tcp_port: Some(0), ..Cli::default() };
        assert!(!report(&Config::load(cli).unwrap()).contains("ICE-TCP"));
    }

    #[test]
    fn warns_when_only_loopback_would_be_advertised_for_a_public_url() {
        let cli = Cli {
            public_url: Some("https://chat.example.org".into()),
            public_ip: Some(vec!["127.0.0.1".parse().unwrap()]),
            ..Cli::default()
        };
        assert!(report(&Config::load(cli).unwrap()).contains("warning: voice will fail"));
    }
}
