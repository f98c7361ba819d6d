//! The client address behind trusted proxies (`chat::http::client_addr::TrustedProxies::client`), from
//! `Forwarded` and `X-Forwarded-For` headers as any client may send them.
//!
//! Input: byte 0 picks the TCP peer (trusted or not) and the proxy list; the rest is header lines
//! `name: value` split on newlines. Asserts: no panic; from an untrusted peer the headers change
//! nothing; from a trusted peer the answer is the peer or an address named in the headers (never one
//! made up); an IPv4-mapped answer never comes back (one rate-limit bucket per IPv4 client).
#![no_main]

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chat::http::client_addr::{Cidr, TrustedProxies};
use libfuzzer_sys::fuzz_target;

const PEERS: [&str; 4] = ["10.0.0.1", "203.0.113.7", "::ffff:10.0.0.2", "2001:db8::1"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let proxies: Vec<Cidr> = match pick >> 4 & 3 {
        0 => vec![],
        1 => vec!["10.0.0.0/8".parse().unwrap()],
        2 => vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()],
        _ => vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
    };
    let trusted = TrustedProxies::new(&proxies);
    let peer: IpAddr = PEERS[(pick & 3) as usize].parse().unwrap();

    let mut headers = HeaderMap::new();
    let text = String::from_utf8_lossy(rest);
    for line in text.split('\n') {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = match name.trim().to_ascii_lowercase().as_str() {
            "f" | "forwarded" => HeaderName::from_static("forwarded"),
            "x" | "x-forwarded-for" => HeaderName::from_static("x-forwarded-for"),
            other => match HeaderName::from_bytes(other.as_bytes()) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Ok(v) = HeaderValue::from_str(value.trim()) {
            headers.append(name, v);
        }
    }

    let client = trusted.client(peer, &headers);
    let unmapped = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if let IpAddr::V6(v6) = client {
        assert!(v6.to_ipv4_mapped().is_none(), "a mapped address came back: {client}");
    }
    let untrusted = TrustedProxies::new(&[]);
    assert_eq!(untrusted.client(peer, &headers), unmapped(peer), "no proxies configured, no header believed");
    if proxies.is_empty() {
        assert_eq!(client, unmapped(peer));
    }
    if client != unmapped(peer) {
        // Whatever came back was written in a header, in some spelling.
        let named = headers.iter().any(|(_, v)| {
            String::from_utf8_lossy(v.as_bytes())
                .split([',', ';', '=', '"', ' ', '\t', '[', ']'])
                .filter_map(|t| t.parse::<IpAddr>().ok().or_else(|| t.parse::<SocketAddr>().ok().map(|a| a.ip())))
                .any(|ip| unmapped(ip) == client)
        });
        assert!(named, "{client} is not in the headers {headers:?}");
    }
});
