//! The client's address behind trusted reverse proxies (`--trusted-proxies`).
//!
//! Behind a proxy every connection comes from the proxy, so per-IP rate limits would throttle all
//! users as one. Only when the TCP peer is a trusted proxy are `X-Forwarded-For` (or, without it,
//! `Forwarded`, RFC 7239) believed; the client is the right-most address in the chain that is not itself a
//! trusted proxy (each proxy appends the peer it saw, so everything left of an untrusted hop may be
//! made up). From anyone else the headers are ignored: a spoofed header buys no fresh rate-limit
//! bucket. The layer rewrites the connection's `ConnectInfo`, so every extractor, limit and log that
//! reads it sees the client.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The configured proxy networks. Empty: no header is ever believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `--trusted-proxies` entry that is neither a CIDR nor an address.
#[derive(Debug, thiserror::Error)]
#[error("not a CIDR or an IP address: {0:?}")]
pub struct BadCidr(String);

/// One entry: `10.0.0.0/8`, `2001:db8::/32`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl FromStr for Cidr {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Cidr, BadCidr> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(Cidr)
            .map_err(|_| BadCidr(s.to_string()))
    }
}

impl TrustedProxies {
    pub fn new(cidrs: &[Cidr]) -> TrustedProxies {
        TrustedProxies(cidrs.iter().map(|c| c.0).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a connection from `peer` carrying `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return unmap(peer);
        }
        let chain = forwarded_chain(headers);
        let mut client = peer;
        for hop in chain.iter().rev() {
            // A malformed, obfuscated or "unknown" hop ends what can be believed: the last trusted one stays.
            let Some(ip) = hop else {
                break;
            };
            client = *ip;
            if !self.trusts(*ip) {
                break;
            }
        }
        unmap(client)
    }
}

/// The hops named by `X-Forwarded-For` (what nginx, Caddy, Traefik and HAProxy append to) or, when there
/// is none, by `Forwarded` (RFC 7239), in order, across every instance of the header; `None` for a hop
/// that is not an address. X-Forwarded-For wins because those proxies pass a client's own `Forwarded`
/// on untouched: preferring it would let anyone name their own address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    if !xff.is_empty() {
        return xff.iter().flat_map(|v| v.split(',')).map(|hop| parse_node(hop.trim())).collect();
    }
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
        })
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711` or a bare IPv6 address.
/// A zone (`fe80::1%eth0`) is refused: RFC 7239 nodes carry none, and it names a link on the
/// proxy's host, not a client.
fn parse_node(s: &str) -> Option<IpAddr> {
    if s.contains('%') {
        return None;
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).and_then(|v6| v6.parse().ok())
}

/// An IPv4 client seen through an IPv6 socket counts as the IPv4 address (one rate-limit bucket).
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Middleware: replaces the connection's peer address by the client's, when a trusted proxy says so.
pub async fn layer(State(proxies): State<Arc<TrustedProxies>>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = proxies.client(peer.ip(), req.headers());
        if client != peer.ip() {
            req.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, 0)));
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(&list.iter().map(|c| c.parse().unwrap()).collect::<Vec<Cidr>>())
    }
    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_ipv4_mapped_peer_is_its_ipv4_address_too() {
        // Found by the forwarded_headers fuzz target: only the trusted path unmapped.
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(p.client(ip("::ffff:203.0.113.50"), &HeaderMap::new()), ip("203.0.113.50"));
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.9"), ("forwarded", "for=198.51.100.9")]);
        assert_eq!(p.client(ip("203.0.113.50"), &h), ip("203.0.113.50"));
        assert_eq!(proxies(&[]).client(ip("10.0.0.1"), &h), ip("10.0.0.1"), "nothing trusted by default");
    }

    #[test]
    fn a_trusted_proxy_names_the_client_in_x_forwarded_for() {
        let p = proxies(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(p.client(ip("127.0.0.1"), &h), ip("198.51.100.9"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client_and_spoofed_left_entries_are_skipped() {
        let p = proxies(&["10.0.0.0/8"]);
        // The client claimed 1.2.3.4 itself; the edge proxy 10.0.0.2 appended the real peer 198.51.100.9.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.9, 10.0.0.2")]);
        assert_eq!(p.client(ip("10.0.0.3"), &h), ip("198.51.100.9"));
        // The same chain spread over two header lines.
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "198.51.100.9, 10.0.0.2")]);
        assert_eq!(p.client(ip("10.0.0.3"), &h), ip("198.51.100.9"));
    }

    #[test]
    fn x_forwarded_for_wins_over_a_forwarded_header_the_proxy_passed_through() {
        // Caddy and nginx append to X-Forwarded-For and pass a client's own Forwarded on untouched.
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("forwarded", "for=192.0.2.60"), ("x-forwarded-for", "203.0.113.1")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("203.0.113.1"), "a made-up Forwarded buys no fresh bucket");
    }

    #[test]
    fn forwarded_alone_is_read_with_its_node_forms() {
        let p = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let h = headers(&[("forwarded", "for=192.0.2.60;proto=https;by=10.0.0.1, for=\"[2001:db8:cafe::17]:4711\"")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "proto=https;For=\"198.51.100.7:1234\"")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("198.51.100.7"));
    }

    #[test]
    fn malformed_unknown_or_obfuscated_hops_leave_the_proxy_as_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        for value in
            ["not-an-ip", "unknown", "", "999.1.1.1", "198.51.100.9:port", "[2001:db8::%7]:4711", "fe80::1%eth0"]
        {
            let h = headers(&[("x-forwarded-for", value)]);
            assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"), "{value:?}");
        }
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // A malformed hop stops the walk: addresses left of it are not believed.
        let h = headers(&[("x-forwarded-for", "198.51.100.9, garbage")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn a_chain_of_only_trusted_hops_gives_the_left_most() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.2")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.9.9.9"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let p = proxies(&["127.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.9")]);
        assert_eq!(p.client(ip("::ffff:127.0.0.1"), &h), ip("198.51.100.9"));
    }

    #[test]
    fn cidrs_and_bare_addresses_parse_and_garbage_does_not() {
        assert!("10.0.0.0/8".parse::<Cidr>().is_ok());
        assert!(" 2001:db8::/32 ".parse::<Cidr>().is_ok());
        assert!("192.0.2.1".parse::<Cidr>().is_ok());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy.local".parse::<Cidr>().is_err());
    }
}
