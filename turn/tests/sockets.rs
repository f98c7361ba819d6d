//! The embedded TURN server on real sockets, driven by an independent client (webrtc-rs's
//! `rtc-turn`) over UDP, and by hand over TLS: it relays to the SFU address it was given and to
//! nothing else, and bad input on either listener closes or is dropped without disturbing others.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::sansio::Protocol;
use rtc::shared::{TransportContext, TransportMessage, TransportProtocol};
use rtc::turn::client::{Client as TurnClient, ClientConfig, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turn::credentials::{Secret, long_term_key};
use turn::wire::{self, Builder, Class, Message};
use turn::{Limits, Targets, TurnConfig, TurnServer};

const SECRET: &[u8] = b"0123456789abcdef-sockets";
const REALM: &str = "chorus.test";

fn rest_user(participant: &str) -> (String, String) {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let username = format!("{}:{participant}", unix + 600);
    let password = Secret::new(SECRET).password(&username);
    (username, password)
}

/// A stand-in for the SFU's media socket: the one address the relay may reach.
fn sfu_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

async fn start(sfu: SocketAddr, tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>) -> TurnServer {
    let config = TurnConfig {
        realm: REALM.into(),
        secret: SECRET.to_vec(),
        udp_listen: Some("127.0.0.1:0".parse().unwrap()),
        tls_listen: tls.is_some().then(|| "127.0.0.1:0".parse().unwrap()),
        tls,
        targets: Targets::new([(sfu, sfu)]),
        limits: Limits::default(),
        open_relays: Default::default(),
    };
    turn::io::start(config, &prometheus::Registry::new()).await.unwrap()
}

/// Runs the rtc-turn client until `done` says so, or fails the test after 10 s.
fn drive(client: &mut TurnClient, socket: &UdpSocket, mut done: impl FnMut(&Event, &mut TurnClient) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 2048];
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    while Instant::now() < deadline {
        while let Some(t) = client.poll_write() {
            socket.send_to(&t.message, t.transport.peer_addr).unwrap();
        }
        while let Some(event) = client.poll_event() {
            if done(&event, client) {
                return;
            }
        }
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            client.handle_read(inbound(socket, from, &buf[..n])).unwrap();
        }
        client.handle_timeout(Instant::now()).unwrap();
    }
    panic!("the TURN client did not finish in 10 s");
}

fn udp_client(server: SocketAddr, participant: &str) -> (TurnClient, UdpSocket) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (username, password) = rest_user(participant);
    let config = ClientConfig {
        stun_serv_addr: String::new(),
        turn_serv_addr: server.to_string(),
        local_addr: socket.local_addr().unwrap(),
        transport_protocol: TransportProtocol::UDP,
        username,
        password,
        realm: REALM.into(),
        software: String::new(),
        rto_in_ms: 0,
        allocation_refresh_interval_cap: None,
    };
    (TurnClient::new(config, rtc::crypto::default_provider().unwrap()).unwrap(), socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_client_relays_to_the_sfu_and_back_over_udp() {
    let sfu = sfu_socket();
    let sfu_addr = sfu.local_addr().unwrap();
    let server = start(sfu_addr, None).await;
    let turn_addr = server.udp_addr.unwrap();
    tokio::task::spawn_blocking(move || {
        let (mut client, socket) = udp_client(turn_addr, "7");
        client.allocate(Instant::now()).unwrap();
        let mut relay = None;
        drive(&mut client, &socket, |e, c| match e {
            Event::AllocateResponse(_, addr) => {
                relay = Some(*addr);
                c.relay(*addr).unwrap().create_permission(Instant::now(), sfu_addr).unwrap();
                false
            }
            Event::CreatePermissionResponse(..) => true,
            other => panic!("unexpected {other:?}"),
        });
        let relay = relay.unwrap();

        // Several sends: the first goes as a Send indication, later ones over the bound channel.
        let mut buf = [0u8; 64];
        for i in 0..5u8 {
            client.relay(relay).unwrap().send_to(Instant::now(), &[i; 10], sfu_addr).unwrap();
            pump(&mut client, &socket, Duration::from_millis(100));
            let (n, from) = sfu.recv_from(&mut buf).expect("the SFU receives the relayed datagram");
            assert_eq!(&buf[..n], &[i; 10]);
            assert_eq!(from, relay, "it comes from the allocation's relay address");
        }
        sfu.send_to(b"from the sfu", relay).unwrap();
        let mut got = None;
        drive(&mut client, &socket, |e, _| match e {
            Event::DataIndicationOrChannelData(_, from, data) => {
                got = Some((*from, data.to_vec()));
                true
            }
            _ => false,
        });
        assert_eq!(got, Some((sfu_addr, b"from the sfu".to_vec())));
    })
    .await
    .unwrap();
    assert_eq!(server.allocations(), 1);
}

/// Sends what the client has queued and handles what comes back for `time` (the ChannelBind
/// answer, refreshes), ignoring events.
fn pump(client: &mut TurnClient, socket: &UdpSocket, time: Duration) {
    let end = Instant::now() + time;
    let mut buf = vec![0u8; 2048];
    socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    while Instant::now() < end {
        while let Some(t) = client.poll_write() {
            socket.send_to(&t.message, t.transport.peer_addr).unwrap();
        }
        while client.poll_event().is_some() {}
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            client.handle_read(inbound(socket, from, &buf[..n])).unwrap();
        }
        client.handle_timeout(Instant::now()).unwrap();
    }
}

fn inbound(socket: &UdpSocket, from: SocketAddr, data: &[u8]) -> TransportMessage<BytesMut> {
    TransportMessage {
        now: Instant::now(),
        transport: TransportContext {
            local_addr: socket.local_addr().unwrap(),
            peer_addr: from,
            transport_protocol: TransportProtocol::UDP,
            ecn: None,
        },
        message: BytesMut::from(data),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_for_a_foreign_address_is_refused_and_nothing_reaches_it() {
    let sfu = sfu_socket();
    let server = start(sfu.local_addr().unwrap(), None).await;
    let turn_addr = server.udp_addr.unwrap();
    let victim = sfu_socket();
    let victim_addr = victim.local_addr().unwrap();
    tokio::task::spawn_blocking(move || {
        let (mut client, socket) = udp_client(turn_addr, "7");
        client.allocate(Instant::now()).unwrap();
        let mut refused = false;
        drive(&mut client, &socket, |e, c| match e {
            Event::AllocateResponse(_, addr) => {
                c.relay(*addr).unwrap().create_permission(Instant::now(), victim_addr).unwrap();
                false
            }
            Event::CreatePermissionError(..) => {
                refused = true;
                true
            }
            Event::CreatePermissionResponse(..) => true,
            _ => false,
        });
        assert!(refused, "403 for an address that is not the SFU");
        victim.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        assert!(victim.recv_from(&mut [0u8; 64]).is_err(), "nothing was sent to it");
    })
    .await
    .unwrap();
}

fn tls_config() -> (Arc<tokio_rustls::rustls::ServerConfig>, tokio_rustls::rustls::pki_types::CertificateDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["turn.chorus.test".into()]).unwrap();
    let der = cert.cert.der().clone();
    let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    (Arc::new(config), der)
}

async fn tls_connect(
    addr: SocketAddr,
    ca: &tokio_rustls::rustls::pki_types::CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector.connect("turn.chorus.test".try_into().unwrap(), tcp).await.unwrap()
}

async fn read_frame(s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    let mut head = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head)).await.unwrap().unwrap();
    let len = wire::stream_frame_len(head).unwrap();
    let mut frame = vec![0u8; len];
    frame[..4].copy_from_slice(&head);
    s.read_exact(&mut frame[4..]).await.unwrap();
    frame
}

/// Allocates over TLS for `participant` (challenge, then the signed request); the relay address and
/// a signer for later requests under the same credential.
async fn tls_allocate(
    s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    participant: &str,
) -> (SocketAddr, impl Fn(Builder) -> Vec<u8> + use<>) {
    let (username, password) = rest_user(participant);
    let key = long_term_key(&username, REALM, &password);
    let allocate = || {
        Builder::new(wire::ALLOCATE, Class::Request, rand::random())
            .attr(wire::ATTR_REQUESTED_TRANSPORT, &[17, 0, 0, 0])
    };
    s.write_all(&allocate().finish(None)).await.unwrap();
    let challenge = read_frame(s).await;
    let nonce = Message::parse(&challenge).unwrap().text(wire::ATTR_NONCE).unwrap().to_string();
    let sign = move |b: Builder| {
        b.attr(wire::ATTR_USERNAME, username.as_bytes())
            .attr(wire::ATTR_REALM, REALM.as_bytes())
            .attr(wire::ATTR_NONCE, nonce.as_bytes())
            .finish(Some(&key))
    };
    s.write_all(&sign(allocate())).await.unwrap();
    let ok = read_frame(s).await;
    let relay = Message::parse(&ok).unwrap().xor_address(wire::ATTR_XOR_RELAYED_ADDRESS).expect("allocated");
    (relay, sign)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_an_allocation_relays_channel_data_both_ways() {
    let sfu = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sfu_addr = sfu.local_addr().unwrap();
    let (tls, ca) = tls_config();
    let server = start(sfu_addr, Some(tls)).await;
    let mut s = tls_connect(server.tls_addr.unwrap(), &ca).await;

    let (relay, sign) = tls_allocate(&mut s, "9").await;
    s.write_all(&sign(
        Builder::new(wire::CHANNEL_BIND, Class::Request, rand::random())
            .attr(wire::ATTR_CHANNEL_NUMBER, &[0x40, 0x00, 0, 0])
            .xor_address(wire::ATTR_XOR_PEER_ADDRESS, sfu_addr),
    ))
    .await
    .unwrap();
    let bound = read_frame(&mut s).await;
    assert_eq!(Message::parse(&bound).unwrap().class, Class::Success);

    // 5 bytes of payload: padded to 8 on the stream.
    s.write_all(&[0x40, 0x00, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), sfu.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!((&buf[..n], from), (&b"hello"[..], relay));
    sfu.send_to(b"back", relay).await.unwrap();
    assert_eq!(read_frame(&mut s).await, [0x40, 0x00, 0x00, 0x04, b'b', b'a', b'c', b'k']);

    // Deallocating (Refresh, LIFETIME 0: what browsers send when a call ends) closes the relay socket.
    assert_eq!(server.relay_sockets(), 1);
    s.write_all(&sign(Builder::new(wire::REFRESH, Class::Request, rand::random()).u32(wire::ATTR_LIFETIME, 0)))
        .await
        .unwrap();
    let refreshed = read_frame(&mut s).await;
    assert_eq!(Message::parse(&refreshed).unwrap().class, Class::Success);
    assert_eq!((server.allocations(), server.relay_sockets()), (0, 0), "nothing outlives the allocation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_tls_connection_releases_its_allocation_and_its_place() {
    let sfu = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (tls, ca) = tls_config();
    let server = start(sfu.local_addr().unwrap(), Some(tls)).await;
    let mut s = tls_connect(server.tls_addr.unwrap(), &ca).await;
    let _ = tls_allocate(&mut s, "9").await;
    assert_eq!((server.allocations(), server.relay_sockets(), server.tls_connections()), (1, 1, 1));
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.tls_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((server.allocations(), server.relay_sockets(), server.tls_connections()), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_frame_header_a_client_can_send_costs_it_only_its_connection() {
    let sfu = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (tls, ca) = tls_config();
    let server = start(sfu.local_addr().unwrap(), Some(tls)).await;
    for _ in 0..3 {
        let mut s = tls_connect(server.tls_addr.unwrap(), &ca).await;
        // A STUN header declaring 65,535 bytes of attributes, then the connection ends.
        s.write_all(&[0x00, 0x01, 0xff, 0xff]).await.unwrap();
        s.write_all(&[0u8; 100]).await.unwrap();
        drop(s);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.tls_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.tls_connections(), 0, "every place is given back");
    let mut good = tls_connect(server.tls_addr.unwrap(), &ca).await;
    let tid: [u8; 12] = rand::random();
    good.write_all(&Builder::new(wire::BINDING, Class::Request, tid).finish(None)).await.unwrap();
    assert_eq!(Message::parse(&read_frame(&mut good).await).unwrap().transaction, tid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_tls_listener_closes_that_connection_only() {
    let sfu = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (tls, ca) = tls_config();
    let server = start(sfu.local_addr().unwrap(), Some(tls)).await;
    let tls_addr = server.tls_addr.unwrap();

    // Not a TURN frame (top bits 11): the server hangs up.
    let mut bad = tls_connect(tls_addr, &ca).await;
    bad.write_all(&[0xff; 32]).await.unwrap();
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), bad.read(&mut byte)).await.unwrap();
    assert!(matches!(closed, Ok(0) | Err(_)), "the connection is closed: {closed:?}");

    // A frame that declares more than it sends, then stops: the others are still served.
    let mut truncated = tls_connect(tls_addr, &ca).await;
    truncated.write_all(&[0x00, 0x01, 0xff, 0xfc, 0x21, 0x12]).await.unwrap();

    // Plain TCP that never finishes a handshake does not block the listener either.
    let _silent = tokio::net::TcpStream::connect(tls_addr).await.unwrap();

    let mut good = tls_connect(tls_addr, &ca).await;
    let tid: [u8; 12] = rand::random();
    good.write_all(&Builder::new(wire::BINDING, Class::Request, tid).finish(None)).await.unwrap();
    let reply = read_frame(&mut good).await;
    let m = Message::parse(&reply).unwrap();
    assert_eq!((m.class, m.transaction), (Class::Success, tid));
    assert!(m.xor_address(wire::ATTR_XOR_MAPPED_ADDRESS).is_some());
}
