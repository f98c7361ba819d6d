//! Where the SFU's UDP workers listen and which addresses they advertise in ICE candidates.
//!
//! The HTTP listen address says nothing about media: behind a reverse proxy Chorus listens on
//! 127.0.0.1 while remote browsers must reach the media ports on a public address. So the bind
//! address (`--rtc-bind`) and the advertised ones (`--public-ip`) are separate settings, and when
//! nothing is advertised explicitly the choice below is made, logged, and — when it would strand
//! remote users on loopback — warned about.
//!
//! Unset, `--rtc-bind` is all interfaces, except when only loopback is advertised: then 127.0.0.1.
//! A socket bound to all interfaces answers from the address the kernel routes by, so a browser on
//! this machine that sent from its interface address to 127.0.0.1 would get its answers from the
//! interface address and drop them (ICE wants the answer from where it sent).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The resolved media addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAddresses {
    /// What the worker sockets bind to.
    pub bind: IpAddr,
    /// What goes into the host candidates, never empty, never unspecified.
    pub advertised: Vec<IpAddr>,
    /// How `advertised` was chosen, for the start-up log.
    pub source: &'static str,
    /// Set when voice would fail for every remote user (advertising loopback for a public URL).
    pub warning: Option<String>,
}

/// Chooses what to advertise. `discovered` is asked only when neither `--public-ip` nor a concrete
/// `--rtc-bind` decides it and the public URL is not a loopback one.
pub fn resolve(
    rtc_bind: Option<IpAddr>,
    public_ips: &[IpAddr],
    public_url: &str,
    discovered: impl FnOnce() -> Vec<IpAddr>,
) -> MediaAddresses {
    let local_url = url_host_is_loopback(public_url);
    let bind = rtc_bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (advertised, source) = if !public_ips.is_empty() {
        (public_ips.to_vec(), "--public-ip")
    } else if !bind.is_unspecified() {
        (vec![bind], "--rtc-bind")
    } else if local_url {
        (vec![IpAddr::V4(Ipv4Addr::LOCALHOST)], "the loopback public URL")
    } else {
        let found: Vec<IpAddr> = discovered()
            .into_iter()
            .filter(|ip| !ip.is_loopback() && !ip.is_unspecified() && (bind.is_ipv6() || ip.is_ipv4()))
            .collect();
        if found.is_empty() { (vec![IpAddr::V4(Ipv4Addr::LOCALHOST)], NOTHING_FOUND) } else { (found, DISCOVERED) }
    };
    let warning = (!local_url && advertised.iter().all(|ip| ip.is_loopback())).then(|| {
        format!(
            "voice will fail for every remote user: the SFU advertises only loopback ({}) while the public URL is \
             {public_url}; set --public-ip to the address browsers reach this server on",
            join(&advertised)
        )
    });
    let bind = match rtc_bind {
        None if advertised.iter().all(|ip| ip.is_loopback()) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => bind,
    };
    MediaAddresses { bind, advertised, source, warning }
}

/// How `resolve` names the discovered choices, which a STUN answer may extend.
const DISCOVERED: &str = "the default route's interface";
const NOTHING_FOUND: &str = "no routable interface found";

impl MediaAddresses {
    /// Adds the address a STUN server saw (`--stun-server`), first, when nothing explicit chose the
    /// advertised addresses: behind NAT the interface address is private and the STUN one is what
    /// remote browsers reach. An explicit `--public-ip` or `--rtc-bind` is never overridden.
    pub fn with_stun(mut self, seen: IpAddr) -> MediaAddresses {
        if !(self.source == DISCOVERED || self.source == NOTHING_FOUND) || seen.is_loopback() || seen.is_unspecified() {
            return self;
        }
        if self.source == NOTHING_FOUND {
            // Only loopback had been found, so the sockets were narrowed to it; now they must take remote media.
            self.advertised.clear();
            self.bind = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        }
        self.advertised.retain(|ip| *ip != seen);
        self.advertised.insert(0, seen);
        self.source = "the STUN server (--stun-server) and the default route's interface";
        self.warning = None;
        self
    }
}

/// The source addresses the kernel would use toward the internet, IPv4 and IPv6. `connect` on a UDP
/// socket only picks a route: no packet is sent. The targets are documentation addresses (RFC 5737,
/// RFC 3849), which follow the default route like any public address.
pub fn discover() -> Vec<IpAddr> {
    let probe = |bind: IpAddr, target: IpAddr| -> Option<IpAddr> {
        let s = UdpSocket::bind(SocketAddr::new(bind, 0)).ok()?;
        s.connect(SocketAddr::new(target, 9)).ok()?;
        Some(s.local_addr().ok()?.ip())
    };
    [
        probe(Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::new(192, 0, 2, 1).into()),
        probe(Ipv6Addr::UNSPECIFIED.into(), "2001:db8::1".parse().unwrap_or(Ipv6Addr::LOCALHOST).into()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The host of `https://user@host:port/path` (IPv6 literals keep their brackets).
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// Whether the URL's host is `localhost` or a loopback address (then only this machine can use it).
pub fn url_host_is_loopback(url: &str) -> bool {
    let Some(host) = url_host(url) else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub fn join(ips: &[IpAddr]) -> String {
    ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_public_url() {
        assert_eq!(url_host("https://chat.example.org"), Some("chat.example.org"));
        assert_eq!(url_host("https://chat.example.org:8443/app"), Some("chat.example.org"));
        assert_eq!(url_host("http://[2001:db8::1]:8080"), Some("[2001:db8::1]"));
        assert_eq!(url_host("http://"), None);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    const ANY: Option<IpAddr> = None;

    #[test]
    fn a_stun_answer_comes_first_among_discovered_addresses() {
        let m = resolve(ANY, &[], "https://chat.example.org", || vec![ip("10.0.0.5")]).with_stun(ip("203.0.113.9"));
        assert_eq!(m.advertised, vec![ip("203.0.113.9"), ip("10.0.0.5")]);
        assert!(m.source.contains("STUN"));
    }

    #[test]
    fn a_stun_answer_never_overrides_explicit_settings() {
        let given = resolve(ANY, &[ip("198.51.100.4")], "https://chat.example.org", Vec::new);
        assert_eq!(given.clone().with_stun(ip("203.0.113.9")), given);
        let bound = resolve(Some(ip("10.0.0.5")), &[], "https://chat.example.org", Vec::new);
        assert_eq!(bound.clone().with_stun(ip("203.0.113.9")), bound);
    }

    #[test]
    fn a_stun_answer_rescues_a_machine_with_no_routable_interface() {
        let m = resolve(ANY, &[], "https://chat.example.org", Vec::new);
        assert!(m.warning.is_some() && m.bind.is_loopback());
        let m = m.with_stun(ip("203.0.113.9"));
        assert_eq!(m.advertised, vec![ip("203.0.113.9")]);
        assert!(m.warning.is_none() && m.bind.is_unspecified());
    }

    #[test]
    fn explicit_public_ips_are_advertised_as_given() {
        let m = resolve(ANY, &[ip("203.0.113.5"), ip("2001:db8::5")], "https://chat.example.org", || {
            panic!("no discovery when the addresses are given")
        });
        assert_eq!(m.advertised, vec![ip("203.0.113.5"), ip("2001:db8::5")]);
        assert_eq!(m.bind, ip("0.0.0.0"), "all interfaces: behind NAT the public address is not local");
        assert_eq!(m.warning, None);
    }

    #[test]
    fn a_concrete_bind_address_is_advertised_when_no_public_ip_is_set() {
        let m = resolve(Some(ip("10.1.2.3")), &[], "https://chat.example.org", Vec::new);
        assert_eq!(m.advertised, vec![ip("10.1.2.3")]);
    }

    #[test]
    fn a_loopback_public_url_advertises_loopback_without_a_warning() {
        let m = resolve(ANY, &[], "http://127.0.0.1:8080", || vec![ip("10.1.2.3")]);
        assert_eq!(m.advertised, vec![ip("127.0.0.1")]);
        assert_eq!(m.bind, ip("127.0.0.1"), "answers leave from the address a local browser sent to");
        assert_eq!(m.warning, None);
        let m = resolve(Some(ip("0.0.0.0")), &[], "http://127.0.0.1:8080", Vec::new);
        assert_eq!(m.bind, ip("0.0.0.0"), "an explicit --rtc-bind stays");
    }

    #[test]
    fn a_public_url_advertises_the_discovered_interface_addresses_of_the_bind_family() {
        let m = resolve(ANY, &[], "https://chat.example.org", || vec![ip("192.168.1.20"), ip("2001:db8::20")]);
        assert_eq!(m.advertised, vec![ip("192.168.1.20")], "an IPv4 socket cannot serve IPv6 candidates");
        let m =
            resolve(Some(ip("::")), &[], "https://chat.example.org", || vec![ip("192.168.1.20"), ip("2001:db8::20")]);
        assert_eq!(m.advertised, vec![ip("192.168.1.20"), ip("2001:db8::20")]);
        assert_eq!(m.warning, None);
    }

    #[test]
    fn advertising_only_loopback_for_a_public_url_is_warned_about() {
        let m = resolve(ANY, &[], "https://chat.example.org", || vec![ip("127.0.0.1")]);
        assert_eq!(m.advertised, vec![ip("127.0.0.1")]);
        assert!(m.warning.as_deref().is_some_and(|w| w.contains("--public-ip") && w.contains("chat.example.org")));
        let m = resolve(ANY, &[ip("127.0.0.1")], "http://192.0.2.7:8080", Vec::new);
        assert!(m.warning.is_some(), "also when loopback was set explicitly");
    }

    #[test]
    fn loopback_urls_are_recognised() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "https://LOCALHOST:8443/x",
            "http://[::1]:80",
            "app.localhost",
        ] {
            assert!(url_host_is_loopback(url), "{url}");
        }
        for url in
            ["https://chat.example.org", "http://10.0.0.1:8080", "http://[2001:db8::1]/", "http://127.0.0.1.example"]
        {
            assert!(!url_host_is_loopback(url), "{url}");
        }
    }
}
