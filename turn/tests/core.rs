//! The TURN state machine without sockets: what it answers, what it relays, what it refuses.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use turn::credentials::{Secret, long_term_key};
use turn::server::{Client, Limits, RelayBinder, Reply, Server, Targets, Transport};
use turn::wire::{self, Builder, Class, Message};

const SECRET: &[u8] = b"0123456789abcdef-test";
const REALM: &str = "chorus.test";
const NOW_UNIX: u64 = 1_800_000_000;

fn sfu_name() -> SocketAddr {
    "203.0.113.5:50000".parse().unwrap()
}
fn sfu_local() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}
fn client() -> Client {
    Client { transport: Transport::Udp, addr: "198.51.100.9:40000".parse().unwrap() }
}

struct Ports(u16);
impl RelayBinder for Ports {
    fn bind(&mut self, ip: IpAddr) -> std::io::Result<SocketAddr> {
        self.0 += 1;
        Ok(SocketAddr::new(ip, 60000 + self.0))
    }
}

fn server(limits: Limits) -> Server {
    Server::new(REALM, SECRET, Targets::new([(sfu_name(), sfu_local())]), limits)
}

struct User {
    username: String,
    key: [u8; 16],
    nonce: String,
}

fn user(participant: &str) -> User {
    let username = format!("{}:{participant}", NOW_UNIX + 3600);
    let password = Secret::new(SECRET).password(&username);
    User { key: long_term_key(&username, REALM, &password), username, nonce: String::new() }
}

fn tid() -> [u8; 12] {
    rand::random()
}

fn reply_bytes(r: Reply) -> Vec<u8> {
    match r {
        Reply::ToClient(b) => b,
        other => panic!("expected a reply to the client, got {other:?}"),
    }
}

fn error_code(raw: &[u8]) -> Option<u16> {
    let m = Message::parse(raw).unwrap();
    let v = m.get(wire::ATTR_ERROR_CODE)?;
    Some(v[2] as u16 * 100 + v[3] as u16)
}

fn signed(u: &User, method: u16, b: Builder) -> Vec<u8> {
    let _ = method;
    b.attr(wire::ATTR_USERNAME, u.username.as_bytes())
        .attr(wire::ATTR_REALM, REALM.as_bytes())
        .attr(wire::ATTR_NONCE, u.nonce.as_bytes())
        .finish(Some(&u.key))
}

/// Challenge, then an authenticated Allocate; returns the relay address.
fn allocate(s: &mut Server, c: Client, u: &mut User, ports: &mut Ports) -> Result<SocketAddr, u16> {
    let now = Instant::now();
    let bare = Builder::new(wire::ALLOCATE, Class::Request, tid()).attr(wire::ATTR_REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    let challenge = reply_bytes(s.on_client(now, NOW_UNIX, c, &bare.finish(None), ports));
    assert_eq!(error_code(&challenge), Some(401));
    u.nonce = Message::parse(&challenge).unwrap().text(wire::ATTR_NONCE).unwrap().to_string();
    let req = Builder::new(wire::ALLOCATE, Class::Request, tid()).attr(wire::ATTR_REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    let raw = reply_bytes(s.on_client(now, NOW_UNIX, c, &signed(u, wire::ALLOCATE, req), ports));
    let m = Message::parse(&raw).unwrap();
    if let Some(code) = error_code(&raw) {
        return Err(code);
    }
    assert!(m.integrity_ok(&u.key), "the success response is signed with the user's key");
    Ok(m.xor_address(wire::ATTR_XOR_RELAYED_ADDRESS).unwrap())
}

fn permission(s: &mut Server, c: Client, u: &User, peer: SocketAddr) -> Option<u16> {
    let req =
        Builder::new(wire::CREATE_PERMISSION, Class::Request, tid()).xor_address(wire::ATTR_XOR_PEER_ADDRESS, peer);
    error_code(&reply_bytes(s.on_client(Instant::now(), NOW_UNIX, c, &signed(u, 0, req), &mut Ports(0))))
}

#[test]
fn an_allocate_without_credentials_is_challenged_and_a_signed_one_gets_a_relay() {
    let mut s = server(Limits::default());
    let relay = allocate(&mut s, client(), &mut user("7"), &mut Ports(0)).unwrap();
    assert_eq!(relay, "127.0.0.1:60001".parse().unwrap(), "relay sockets open beside the SFU's local address");
    assert_eq!(s.allocations(), 1);
}

#[test]
fn a_wrong_password_or_an_expired_username_gets_401() {
    let mut s = server(Limits::default());
    let mut wrong = user("7");
    wrong.key = long_term_key(&wrong.username, REALM, "guessed");
    assert_eq!(allocate(&mut s, client(), &mut wrong, &mut Ports(0)), Err(401));
    let username = format!("{}:7", NOW_UNIX - 1);
    let password = Secret::new(SECRET).password(&username);
    let mut expired = User { key: long_term_key(&username, REALM, &password), username, nonce: String::new() };
    assert_eq!(allocate(&mut s, client(), &mut expired, &mut Ports(0)), Err(401));
    assert_eq!(s.allocations(), 0);
}

#[test]
fn a_permission_for_any_address_but_the_sfu_is_forbidden() {
    let mut s = server(Limits::default());
    let mut u = user("7");
    allocate(&mut s, client(), &mut u, &mut Ports(0)).unwrap();
    assert_eq!(permission(&mut s, client(), &u, "192.0.2.80:53".parse().unwrap()), Some(403));
    assert_eq!(permission(&mut s, client(), &u, "127.0.0.1:6379".parse().unwrap()), Some(403), "not even a local port");
    assert_eq!(permission(&mut s, client(), &u, sfu_name()), None);
    assert_eq!(s.counters.refused[turn::server::Refusal::ForeignPeer as usize], 2);
}

#[test]
fn a_send_indication_to_a_foreign_address_is_dropped() {
    let mut s = server(Limits::default());
    let mut u = user("7");
    allocate(&mut s, client(), &mut u, &mut Ports(0)).unwrap();
    let send = Builder::new(wire::SEND, Class::Indication, tid())
        .xor_address(wire::ATTR_XOR_PEER_ADDRESS, "192.0.2.80:53".parse().unwrap())
        .attr(wire::ATTR_DATA, b"hello")
        .finish(None);
    assert_eq!(s.on_client(Instant::now(), NOW_UNIX, client(), &send, &mut Ports(0)), Reply::None);
}

#[test]
fn data_to_the_sfu_goes_out_of_the_relay_to_its_local_address_and_answers_come_back_framed() {
    let mut s = server(Limits::default());
    let mut u = user("7");
    let relay = allocate(&mut s, client(), &mut u, &mut Ports(0)).unwrap();
    let bind = Builder::new(wire::CHANNEL_BIND, Class::Request, tid())
        .attr(wire::ATTR_CHANNEL_NUMBER, &[0x40, 0x01, 0, 0])
        .xor_address(wire::ATTR_XOR_PEER_ADDRESS, sfu_name());
    let ok = reply_bytes(s.on_client(Instant::now(), NOW_UNIX, client(), &signed(&u, 0, bind), &mut Ports(0)));
    assert_eq!(error_code(&ok), None);

    let mut frame = vec![0x40, 0x01, 0, 5];
    frame.extend_from_slice(b"media");
    match s.on_client(Instant::now(), NOW_UNIX, client(), &frame, &mut Ports(0)) {
        Reply::ToPeer { relay: r, to, payload } => {
            assert_eq!((r, to), (relay, sfu_local()));
            assert_eq!(&frame[payload], b"media");
        }
        other => panic!("expected a forward, got {other:?}"),
    }

    let mut out = Vec::new();
    assert_eq!(s.on_peer(Instant::now(), relay, sfu_local(), b"reply", &mut out), Some(client()));
    assert_eq!(out, [&[0x40, 0x01, 0, 5][..], b"reply"].concat(), "ChannelData on the bound channel");
    assert_eq!(
        s.on_peer(Instant::now(), relay, "127.0.0.1:9".parse().unwrap(), b"x", &mut out),
        None,
        "another sender"
    );
}

#[test]
fn without_a_channel_peer_data_arrives_as_a_data_indication_naming_the_advertised_address() {
    let mut s = server(Limits::default());
    let mut u = user("7");
    let relay = allocate(&mut s, client(), &mut u, &mut Ports(0)).unwrap();
    assert_eq!(permission(&mut s, client(), &u, sfu_name()), None);
    let mut out = Vec::new();
    s.on_peer(Instant::now(), relay, sfu_local(), b"stun", &mut out).unwrap();
    let m = Message::parse(&out).unwrap();
    assert_eq!((m.method, m.class), (wire::DATA, Class::Indication));
    assert_eq!(m.xor_address(wire::ATTR_XOR_PEER_ADDRESS), Some(sfu_name()));
    assert_eq!(m.get(wire::ATTR_DATA), Some(&b"stun"[..]));
}

#[test]
fn one_participant_may_hold_only_so_many_allocations() {
    let mut s = server(Limits { allocations_per_participant: 2, ..Limits::default() });
    let mut ports = Ports(0);
    for i in 0..2 {
        let c = Client { transport: Transport::Udp, addr: SocketAddr::new(client().addr.ip(), 40000 + i) };
        allocate(&mut s, c, &mut user("7"), &mut ports).unwrap();
    }
    let third = Client { transport: Transport::Udp, addr: SocketAddr::new(client().addr.ip(), 40009) };
    assert_eq!(allocate(&mut s, third, &mut user("7"), &mut ports), Err(486));
    allocate(&mut s, third, &mut user("8"), &mut ports).expect("another participant is not affected");
}

#[test]
fn relaying_past_the_bandwidth_limit_drops_packets() {
    let mut s = server(Limits { bytes_per_sec: 1000, burst_bytes: 3000, ..Limits::default() });
    let mut u = user("7");
    let relay = allocate(&mut s, client(), &mut u, &mut Ports(0)).unwrap();
    assert_eq!(permission(&mut s, client(), &u, sfu_name()), None);
    let now = Instant::now();
    let mut out = Vec::new();
    let delivered = (0..10).filter(|_| s.on_peer(now, relay, sfu_local(), &[0u8; 1000], &mut out).is_some()).count();
    assert_eq!(delivered, 3, "the burst, then nothing until the bucket refills");
    assert!(s.on_peer(now + Duration::from_secs(1), relay, sfu_local(), &[0u8; 1000], &mut out).is_some());
}

#[test]
fn an_allocation_expires_and_its_relay_is_released() {
    let mut s = server(Limits::default());
    let relay = allocate(&mut s, client(), &mut user("7"), &mut Ports(0)).unwrap();
    assert!(s.expire(Instant::now()).is_empty());
    assert_eq!(s.expire(Instant::now() + Duration::from_secs(601)), vec![relay]);
    assert_eq!(s.allocations(), 0);
}

#[test]
fn garbage_and_truncated_messages_are_ignored_without_a_reply() {
    let mut s = server(Limits::default());
    for junk in
        [&b""[..], b"\x00\x01\x00", b"GET / HTTP/1.1\r\n\r\n", &[0x40, 0x01, 0xff, 0xff, 1][..], &[0xff; 64][..]]
    {
        assert_eq!(s.on_client(Instant::now(), NOW_UNIX, client(), junk, &mut Ports(0)), Reply::None);
    }
    assert!(s.counters.refused[turn::server::Refusal::Malformed as usize] >= 4);
}

#[test]
fn an_unknown_required_attribute_gets_420() {
    let mut s = server(Limits::default());
    let req = Builder::new(wire::ALLOCATE, Class::Request, tid()).attr(0x0022, &[0; 8]).finish(None);
    let raw = reply_bytes(s.on_client(Instant::now(), NOW_UNIX, client(), &req, &mut Ports(0)));
    assert_eq!(error_code(&raw), Some(420));
}

#[test]
fn a_refresh_with_lifetime_zero_deallocates_and_names_the_relay_to_close() {
    let mut s = server(Limits::default());
    let mut u = user("7");
    let relay = allocate(&mut s, client(), &mut u, &mut Ports(0)).unwrap();
    let refresh = Builder::new(wire::REFRESH, Class::Request, tid()).u32(wire::ATTR_LIFETIME, 0);
    match s.on_client(Instant::now(), NOW_UNIX, client(), &signed(&u, 0, refresh), &mut Ports(0)) {
        Reply::ToClientAndRelease(answer, closed) => {
            assert_eq!(error_code(&answer), None);
            assert_eq!(closed, relay, "the I/O layer is told which socket to close");
        }
        other => panic!("expected a deallocation, got {other:?}"),
    }
    assert_eq!(s.allocations(), 0);
}

#[test]
fn an_allocation_lives_at_least_the_default_lifetime_whatever_is_asked() {
    let mut s = server(Limits::default());
    let mut u = user("7");
    let now = Instant::now();
    let bare = Builder::new(wire::ALLOCATE, Class::Request, tid()).attr(wire::ATTR_REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    let challenge = reply_bytes(s.on_client(now, NOW_UNIX, client(), &bare.finish(None), &mut Ports(0)));
    u.nonce = Message::parse(&challenge).unwrap().text(wire::ATTR_NONCE).unwrap().to_string();
    let req = Builder::new(wire::ALLOCATE, Class::Request, tid())
        .attr(wire::ATTR_REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .u32(wire::ATTR_LIFETIME, 0);
    let raw = reply_bytes(s.on_client(now, NOW_UNIX, client(), &signed(&u, 0, req), &mut Ports(0)));
    assert_eq!(Message::parse(&raw).unwrap().u32(wire::ATTR_LIFETIME), Some(600), "RFC 8656 §7.2");
    assert!(s.expire(now + Duration::from_secs(5)).is_empty());
}

#[test]
fn the_first_challenge_is_not_counted_as_a_refusal_but_a_wrong_password_is() {
    let mut s = server(Limits::default());
    allocate(&mut s, client(), &mut user("7"), &mut Ports(0)).unwrap();
    assert_eq!(s.counters.refused[turn::server::Refusal::Auth as usize], 0, "every client meets the first 401");
    let mut wrong = user("8");
    wrong.key = long_term_key(&wrong.username, REALM, "guessed");
    let other = Client { transport: Transport::Udp, addr: "198.51.100.9:40001".parse().unwrap() };
    assert_eq!(allocate(&mut s, other, &mut wrong, &mut Ports(0)), Err(401));
    assert_eq!(s.counters.refused[turn::server::Refusal::Auth as usize], 1);
}
