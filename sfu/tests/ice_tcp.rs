//! ICE over TCP against the real SFU (worker threads, the TCP listener, real sockets): two str0m
//! clients that have only TCP candidates — a network that blocks UDP — publish and receive Opus
//! frames through it, and hostile connections are closed without disturbing them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use sfu::tcp::{Deframer, frame};
use sfu::{Command, Rights, Sfu, SfuConfig, SfuEvent};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// One client peer connection over one TCP connection to the SFU.
struct Link {
    rtc: Rtc,
    /// The client's (active) candidate: what str0m believes it sends from.
    local: SocketAddr,
    stream: Option<TcpStream>,
    deframer: Deframer,
    connected: bool,
    received: Vec<Vec<u8>>,
}

impl Link {
    fn new(now: Instant, port: u16) -> Link {
        let mut rtc = Rtc::builder().build(now);
        // Only a TCP candidate: this client's network lets no UDP through.
        let local = SocketAddr::from(([127, 0, 0, 1], port));
        let c = Candidate::builder().tcp().host(local).tcptype(TcpType::Active).build().expect("candidate");
        rtc.add_local_candidate(c);
        Link { rtc, local, stream: None, deframer: Deframer::default(), connected: false, received: Vec::new() }
    }

    /// Runs str0m's timers, sends what it transmits (connecting on first use), reads what came.
    fn pump(&mut self) {
        let now = Instant::now();
        let _ = self.rtc.handle_input(Input::Timeout(now));
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    assert_eq!(t.proto, Protocol::Tcp, "a TCP-only client sends over TCP");
                    if self.stream.is_none() {
                        let s = TcpStream::connect(t.destination).expect("connect to the SFU's TCP port");
                        s.set_nonblocking(true).expect("nonblocking");
                        s.set_nodelay(true).expect("nodelay");
                        self.stream = Some(s);
                    }
                    let framed = frame(&t.contents).expect("a datagram fits a frame");
                    let s = self.stream.as_mut().expect("stream");
                    write_all_nonblocking(s, &framed);
                }
                Ok(Output::Timeout(_)) | Err(_) => break,
                // A controlling agent may go from checking straight to completed.
                Ok(Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Connected | IceConnectionState::Completed,
                ))) => {
                    self.connected = true;
                }
                Ok(Output::Event(Event::MediaData(d))) => self.received.push(d.data.to_vec()),
                Ok(Output::Event(_)) => {}
            }
        }
        let Some(s) = self.stream.as_mut() else { return };
        let source = s.peer_addr().expect("peer");
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => panic!("the SFU closed a client's connection"),
                Ok(n) => self.deframer.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        let mut frames = Vec::new();
        while let Some(f) = self.deframer.next_frame().expect("the SFU frames correctly") {
            frames.push(f.to_vec());
        }
        for f in frames {
            let contents = f.as_slice().try_into().expect("datagram");
            let input = Input::Receive(
                Instant::now(),
                Receive { proto: Protocol::Tcp, source, destination: self.local, contents },
            );
            let _ = self.rtc.handle_input(input);
        }
    }
}

fn write_all_nonblocking(s: &mut TcpStream, mut data: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !data.is_empty() {
        match s.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the SFU stopped reading");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
}

struct Client {
    events: Receiver<SfuEvent>,
    id: sfu::ParticipantId,
    publish: Link,
    subscribe: Link,
    pending: Option<SdpPendingOffer>,
    audio: Option<Mid>,
    offers: Vec<String>,
}

impl Client {
    fn join(sfu: &Sfu, user: u64, port: u16) -> Client {
        let (tx, events) = channel();
        let sink: sfu::EventSink = Box::new(move |ev| {
            let _ = tx.send(ev);
        });
        let id = sfu.join(7, user, Rights { speak: true, video: false }, sink).expect("join");
        let now = Instant::now();
        Client {
            events,
            id,
            publish: Link::new(now, port),
            subscribe: Link::new(now, port + 1),
            pending: None,
            audio: None,
            offers: Vec::new(),
        }
    }

    fn offer_audio(&mut self, sfu: &Sfu) {
        let mut api = self.publish.rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        self.audio = Some(mid);
        self.pending = Some(pending);
        sfu.command(7, self.id, Command::PublishOffer(offer.to_sdp_string())).expect("offer");
    }

    fn step(&mut self, sfu: &Sfu) {
        while let Ok(ev) = self.events.try_recv() {
            match ev {
                SfuEvent::Offer { sdp } => {
                    self.offers.push(sdp.clone());
                    let offer = SdpOffer::from_sdp_string(&sdp).expect("the SFU's offer parses");
                    let answer = self.subscribe.rtc.sdp_api().accept_offer(offer).expect("answer");
                    sfu.command(7, self.id, Command::SubscribeAnswer(answer.to_sdp_string())).expect("answer");
                }
                SfuEvent::Answer { sdp } => {
                    self.offers.push(sdp.clone());
                    let answer = SdpAnswer::from_sdp_string(&sdp).expect("the SFU's answer parses");
                    let pending = self.pending.take().expect("an offer was pending");
                    self.publish.rtc.sdp_api().accept_answer(pending, answer).expect("accept");
                }
                _ => {}
            }
        }
        self.publish.pump();
        self.subscribe.pump();
    }
}

/// The server closed the connection (end of stream or reset) before the read timeout ran out.
fn closed_by_server(conn: &mut TcpStream) -> bool {
    let mut b = [0u8; 8];
    match conn.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

fn start_sfu() -> (Sfu, SocketAddr) {
    let config = SfuConfig {
        workers: 2, // the connection must find the worker that holds its peer
        tcp_port: Some(0),
        ..SfuConfig::default()
    };
    let sfu = Sfu::start(config, &prometheus::Registry::new()).expect("sfu");
    let tcp = sfu.tcp_addr().expect("ICE-TCP is on");
    (sfu, tcp)
}

/// Steps both clients until `cond` holds or `within` passes.
fn run(
    sfu: &Sfu,
    clients: &mut [&mut Client],
    within: Duration,
    mut cond: impl FnMut(&mut [&mut Client]) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for c in clients.iter_mut() {
            c.step(sfu);
        }
        if cond(clients) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

#[test]
fn clients_without_udp_publish_and_receive_audio_over_ice_tcp() {
    let (sfu, tcp) = start_sfu();
    // Hostile neighbours first: idle connections and one that claims a 64 KiB frame.
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(tcp).expect("idle")).collect();
    let mut liar = TcpStream::connect(tcp).expect("liar");
    liar.write_all(&[0xff, 0xff, 1, 2, 3]).expect("write");
    liar.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    assert!(closed_by_server(&mut liar), "an oversized length prefix closes the connection");
    // Well-framed garbage that is not a STUN request of any peer: no worker claims it, it is closed.
    let mut chatter = TcpStream::connect(tcp).expect("chatter");
    chatter.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut garbage = Vec::new();
    for i in 0..20u8 {
        garbage.extend(frame(&[i; 40]).expect("frame"));
    }
    chatter.write_all(&garbage).expect("write");
    assert!(closed_by_server(&mut chatter), "an unclaimed connection is closed");

    let mut alice = Client::join(&sfu, 1, 9);
    let mut bob = Client::join(&sfu, 2, 19);
    alice.offer_audio(&sfu);
    let connected = run(&sfu, &mut [&mut alice, &mut bob], Duration::from_secs(20), |c| {
        c[0].publish.connected && c[1].subscribe.connected
    });
    assert!(
        connected,
        "ICE over TCP connects (alice publish {}, bob subscribe {})",
        alice.publish.connected, bob.subscribe.connected
    );
    let passive = format!("{} {} typ host tcptype passive", tcp.ip(), tcp.port());
    assert!(alice.offers.iter().any(|sdp| sdp.contains(&passive)), "the SFU offers its passive TCP candidate");

    // Wait until bob's subscription to alice's track is negotiated, then talk.
    let mid = alice.audio.expect("audio mid");
    let mut sent = Vec::new();
    let start = Instant::now();
    let delivered = run(&sfu, &mut [&mut alice, &mut bob], Duration::from_secs(20), |c| {
        // ~50 frames a second, each a distinct payload.
        let n = sent.len() as u64;
        if start.elapsed() > Duration::from_millis(20 * n) && n < 150 {
            let payload: Vec<u8> = (0..80).map(|i| (n as u8).wrapping_mul(31).wrapping_add(i)).collect();
            let now = Instant::now();
            if let Some(w) = c[0].publish.rtc.writer(mid) {
                let pt = w.payload_params().next().map(|p| p.pt()).expect("opus");
                let t = MediaTime::new(960 * (n + 1), Frequency::FORTY_EIGHT_KHZ);
                w.write(pt, now, t, payload.clone()).expect("write");
                sent.push(payload);
            }
        }
        c[1].subscribe.received.len() >= 100
    });
    assert!(delivered, "bob received {} of {} frames over TCP", bob.subscribe.received.len(), sent.len());
    for got in &bob.subscribe.received {
        assert!(sent.contains(got), "every frame arrives intact");
    }
    let sfu_metrics = sfu.metrics();
    assert!(sfu_metrics.tcp_connections.get() >= 2, "the clients' connections are open");
    // A connection that never sends a STUN request holds its slot only until the claim deadline (5 s).
    for mut conn in idle {
        conn.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        assert!(closed_by_server(&mut conn), "an idle, unclaimed connection is closed");
    }
}
