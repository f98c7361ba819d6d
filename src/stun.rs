//! `--stun-server`: the public address a STUN server sees this machine's media socket come from
//! (an RFC 8489 binding request), for a server behind NAT that was not given `--public-ip`.
//!
//! The two messages are written out here (a 20-byte request; the response's XOR-MAPPED-ADDRESS):
//! str0m's STUN parser is ICE's and refuses a binding response without MESSAGE-INTEGRITY, which a
//! plain STUN server never sends, and webrtc-rs's `rtc-stun` would bring its crypto stack into the
//! release binary for fifty lines.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use chat::http::client_addr::unmap;
use rand::RngCore;

/// Waits per attempt: a lost datagram is retried, a silent server costs 3.5 s at most.
const ATTEMPTS: [Duration; 3] = [Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2)];
const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

#[derive(Debug, thiserror::Error)]
pub enum StunError {
    #[error("cannot resolve {0:?} to an address")]
    Resolve(String),
    #[error("no binding response from {0} (3 tries)")]
    NoAnswer(SocketAddr),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// A binding request with no attributes.
fn request(trans_id: &[u8; 12]) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    m[4..8].copy_from_slice(&MAGIC);
    m[8..].copy_from_slice(trans_id);
    m
}

/// The address in a success response to `trans_id`; None for anything else (another transaction,
/// an error response, a truncated or malformed message).
fn mapped(msg: &[u8], trans_id: &[u8; 12]) -> Option<SocketAddr> {
    let header = msg.get(..20)?;
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    if u16::from_be_bytes([header[0], header[1]]) != BINDING_SUCCESS
        || header[4..8] != MAGIC
        || header[8..20] != trans_id[..]
    {
        return None;
    }
    let mut attrs = msg.get(20..20 + len)?;
    let mut plain = None;
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let size = u16::from_be_bytes([attrs[2], attrs[3]]) as usize;
        let value = attrs.get(4..4 + size)?;
        match kind {
            XOR_MAPPED_ADDRESS => return address(value, Some(trans_id)),
            MAPPED_ADDRESS => plain = address(value, None),
            _ => {}
        }
        // Values are padded to a multiple of 4.
        attrs = attrs.get((4 + size).next_multiple_of(4)..).unwrap_or_default();
    }
    plain
}

/// A (XOR-)MAPPED-ADDRESS value: 0, family, port, address; XORed with the magic cookie (and the
/// transaction id for IPv6) when `xor` carries the transaction id.
fn address(value: &[u8], xor: Option<&[u8; 12]>) -> Option<SocketAddr> {
    let mut key = [0u8; 16];
    if let Some(trans_id) = xor {
        key[..4].copy_from_slice(&MAGIC);
        key[4..].copy_from_slice(trans_id);
    }
    let port = u16::from_be_bytes([value.get(2)? ^ key[0], value.get(3)? ^ key[1]]);
    let ip = match value.get(1)? {
        0x01 => {
            let raw: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(std::array::from_fn::<u8, 4, _>(|i| raw[i] ^ key[i])))
        }
        0x02 => {
            let raw: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(std::array::from_fn::<u8, 16, _>(|i| raw[i] ^ key[i])))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The address `server` (`HOST:PORT`) reports for a socket bound to `bind`.
pub fn mapped_address(server: &str, bind: IpAddr) -> Result<IpAddr, StunError> {
    let target = server
        .to_socket_addrs()
        .map_err(|_| StunError::Resolve(server.to_string()))?
        // A socket on IPv4 reaches IPv4 servers only; one on IPv6 (dual-stack when unspecified) either.
        .find(|a| a.is_ipv4() || bind.is_ipv6())
        .ok_or_else(|| StunError::Resolve(server.to_string()))?;
    let target = match (bind, target) {
        (IpAddr::V6(_), SocketAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        _ => target,
    };
    let socket = UdpSocket::bind(SocketAddr::new(bind, 0))?;
    let mut trans_id = [0u8; 12];
    rand::rng().fill_bytes(&mut trans_id);
    let req = request(&trans_id);
    let mut buf = [0u8; 1500];
    for wait in ATTEMPTS {
        socket.send_to(&req, target)?;
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            socket.set_read_timeout(Some(left))?;
            let Ok((n, from)) = socket.recv_from(&mut buf) else { break };
            // Only our transaction's success answer, from the server asked, counts (a dual-stack socket
            // sees an IPv4 server as IPv4-mapped).
            if unmap(from.ip()) == unmap(target.ip())
                && from.port() == target.port()
                && let Some(seen) = mapped(&buf[..n], &trans_id)
            {
                return Ok(seen.ip());
            }
        }
    }
    Err(StunError::NoAnswer(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::ice::{StunMessage, TransId};

    /// A STUN server on loopback that answers each binding request as `answer` says.
    fn server(answer: impl Fn(TransId) -> Option<Vec<u8>> + Send + 'static) -> String {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                // str0m's parser wants ICE attributes in a request; read the id straight from the header
                // (str0m has no constructor from bytes, but its serde form is the twelve bytes).
                let Some(id) = buf[..n].get(8..20) else { continue };
                let Ok(id) = serde_json::from_value::<TransId>(serde_json::json!(id)) else { continue };
                if let Some(bytes) = answer(id) {
                    let _ = socket.send_to(&bytes, from);
                }
            }
        });
        addr.to_string()
    }

    fn reply(trans_id: TransId, mapped: &str) -> Vec<u8> {
        let mut out = vec![0u8; 256];
        let n = StunMessage::binding_reply(trans_id, mapped.parse().unwrap())
            .to_bytes(None, &mut out, |_, _| [0; 20])
            .unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn the_mapped_address_of_a_binding_response_is_the_public_address() {
        let s = server(|t| Some(reply(t, "203.0.113.77:40000")));
        assert_eq!(
            mapped_address(&s, "127.0.0.1".parse().unwrap()).unwrap(),
            "203.0.113.77".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn answers_to_another_transaction_and_garbage_are_ignored() {
        let s = server(|_| Some(reply(TransId::new(), "198.51.100.1:1")));
        assert!(matches!(mapped_address(&s, "127.0.0.1".parse().unwrap()), Err(StunError::NoAnswer(_))));
        let s = server(|_| Some(b"\x01\x01\x00\x00garbage".to_vec()));
        assert!(matches!(mapped_address(&s, "127.0.0.1".parse().unwrap()), Err(StunError::NoAnswer(_))));
    }

    #[test]
    fn ipv6_and_plain_mapped_addresses_decode() {
        let id = [7u8; 12];
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&MAGIC);
        key[4..].copy_from_slice(&id);
        let v6: Ipv6Addr = "2001:db8::77".parse().unwrap();
        let mut value = vec![0, 2, 0x12 ^ 0x21, 0x34 ^ 0x12];
        value.extend(v6.octets().iter().zip(key).map(|(b, k)| b ^ k));
        let mut msg = BINDING_SUCCESS.to_be_bytes().to_vec();
        msg.extend(((4 + value.len()) as u16).to_be_bytes());
        msg.extend(MAGIC);
        msg.extend(id);
        msg.extend(XOR_MAPPED_ADDRESS.to_be_bytes());
        msg.extend((value.len() as u16).to_be_bytes());
        msg.extend(&value);
        assert_eq!(mapped(&msg, &id), Some(SocketAddr::new(v6.into(), 0x1234)));
        assert_eq!(mapped(&msg, &[8u8; 12]), None, "another transaction");
        assert_eq!(mapped(&msg[..msg.len() - 3], &id), None, "truncated");
        let plain = [0, 1, 0x00, 0x50, 198, 51, 100, 1];
        assert_eq!(address(&plain, None), Some("198.51.100.1:80".parse().unwrap()));
    }

    #[test]
    fn an_unresolvable_server_is_an_error_not_a_wait() {
        assert!(matches!(
            mapped_address("no-such-host.invalid:3478", "0.0.0.0".parse().unwrap()),
            Err(StunError::Resolve(_))
        ));
    }
}
