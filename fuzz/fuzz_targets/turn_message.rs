//! What reaches the embedded TURN server from strangers: a sequence of client messages (UDP
//! datagrams or TLS frames) into `turn::server::Server`, and datagrams arriving at a relay socket.
//!
//! Asserts: no panic; nothing is ever forwarded to an address that is not the SFU's; a forwarded
//! payload range lies inside the message; every reply to the client parses as STUN; a stream frame
//! length, when one is read, lies between the 4 bytes it was read from and the TLS reader's buffer.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use turn::server::{Client, Limits, RelayBinder, Reply, Server, Targets, Transport};

struct Ports(u16);
impl RelayBinder for Ports {
    fn bind(&mut self, ip: IpAddr) -> std::io::Result<SocketAddr> {
        self.0 = self.0.wrapping_add(1);
        Ok(SocketAddr::new(ip, 40000 + self.0 % 1000))
    }
}

fuzz_target!(|data: &[u8]| {
    let sfu: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let mut server = Server::new("fuzz", b"0123456789abcdef", Targets::new([(sfu, sfu)]), Limits::default());
    let start = Instant::now();
    let mut ports = Ports(0);
    let mut out = Vec::new();
    // Messages separated by the byte 0xA5 0x5A; the first byte of each picks the sender.
    for (i, chunk) in data.split(|b| *b == 0xa5).enumerate() {
        let Some((&who, msg)) = chunk.split_first() else { continue };
        let now = start + Duration::from_millis(i as u64 * 50);
        if msg.len() >= 4 {
            if let Some(len) = turn::wire::stream_frame_len([msg[0], msg[1], msg[2], msg[3]]) {
                assert!((4..=turn::wire::MAX_STREAM_FRAME).contains(&len), "a frame the TLS reader cannot hold");
            }
        }
        if who & 0x80 != 0 {
            // A datagram at a relay socket from the SFU or elsewhere.
            let from = if who & 1 == 0 { sfu } else { "127.0.0.1:9".parse().unwrap() };
            let relay = SocketAddr::new("127.0.0.1".parse().unwrap(), 40000 + (who as u16 & 7));
            let _ = server.on_peer(now, relay, from, msg, &mut out);
            continue;
        }
        let transport = if who & 1 == 0 { Transport::Udp } else { Transport::Tls };
        let client = Client { transport, addr: SocketAddr::new("192.0.2.1".parse().unwrap(), 1000 + (who as u16 & 3)) };
        match server.on_client(now, 1_800_000_000, client, msg, &mut ports) {
            Reply::None => {}
            Reply::ToClient(bytes) | Reply::ToClientAndRelease(bytes, _) => {
                assert!(turn::wire::Message::parse(&bytes).is_ok(), "a reply that is not STUN");
            }
            Reply::ToPeer { to, payload, .. } => {
                assert_eq!(to, sfu, "forwarded to a foreign address");
                assert!(payload.end <= msg.len() && payload.start <= payload.end);
            }
        }
    }
    let _ = server.expire(start + Duration::from_secs(3600));
});
