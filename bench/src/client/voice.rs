//! A voice participant as the web client does it: a publish connection it offers (talkers only)
//! and a subscribe connection the SFU offers, both str0m `Rtc`s on their own UDP socket (or, for a
//! client whose network blocks UDP, their own ICE-TCP connection), driven
//! by this participant's task. The signaling that carries the SDP is a separate task behind
//! [`Signaling`]: Chorus's `/voice` WebSocket ([`chorus_signal`]) or Janus VideoRoom
//! ([`janus_signal`]), so the same media code measures both SFUs.
//! Talkers send real Opus every 20 ms, or (video runs) synthetic VP8 in three simulcast layers at
//! 30 fps; every participant accounts what it receives in the run's [`MediaLedger`].

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use super::api::{Account, Api};
use super::audio::{OpusCheck, OpusSource};
use super::chorus_signal;
use super::janus_signal::{self, JanusApi};
use super::video::{self, VideoSource};
use crate::measure::media::{MediaLedger, ReceiverStats, payload_key};

/// Received frames each participant checks (Opus decodes; video carries its marker).
const DECODE_CHECKS: u64 = 10;

/// What all participants of a run share.
pub struct VoiceShared {
    pub ledger: MediaLedger,
    /// Participants that received their first remote media packet.
    pub first_media: AtomicU64,
    /// Media packets received, all participants.
    pub media_rx: AtomicU64,
    /// Frames sent, all talkers.
    pub media_tx: AtomicU64,
    pub failed: AtomicU64,
}

impl VoiceShared {
    pub fn new() -> Arc<VoiceShared> {
        Arc::new(VoiceShared {
            ledger: MediaLedger::default(),
            first_media: AtomicU64::new(0),
            media_rx: AtomicU64::new(0),
            media_tx: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }
}

/// What one participant does.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The voice channel (Chorus) or VideoRoom room id (Janus).
    pub channel: String,
    /// Talker ids of the others in the room who publish (Janus subscribes to their feeds by id;
    /// Chorus's SFU offers them by itself).
    pub hears: Vec<u32>,
    /// Publish with this talker id: Opus, or VP8 simulcast when `video`.
    pub talker: Option<u32>,
    /// Video run: publish and receive VP8 (ledger ids are talker × 4 + layer).
    pub video: bool,
    /// Ask the SFU for at most this size of every video track (`subscribe` message).
    pub tile: Option<(u32, u32)>,
    /// Leave this long after the first remote media packet (join storms); None: stay until stopped.
    pub leave_after_media: Option<Duration>,
    /// Give up when no remote media arrived this long after the grant request (None: never).
    pub media_deadline: Option<Duration>,
    /// Reach the SFU over ICE-TCP only (a network that blocks UDP); the server needs `--rtc-tcp-port`.
    pub tcp: bool,
    /// Reach the SFU only through the TURN server `joined` names (Chorus's `--turn-listen`).
    pub turn: bool,
}

/// What one participant saw.
#[derive(Default)]
pub struct Outcome {
    /// Grant request → grant answer.
    pub grant: Option<Duration>,
    /// Grant request → `joined`.
    pub joined: Option<Duration>,
    /// Grant request → subscribe connection up (ICE and DTLS done).
    pub subscribed: Option<Duration>,
    /// Grant request → first remote media packet (join latency).
    pub first_media: Option<Duration>,
    pub stats: ReceiverStats,
    /// Frames sent inside the measurement window (talkers).
    pub sent_in_window: u64,
    pub sent_total: u64,
    /// UDP bytes received on the subscribe connection inside the window.
    pub rx_bytes_in_window: u64,
    pub decoded: u64,
    pub decode_failures: u64,
    /// Keyframe requests the publisher got from the SFU.
    pub keyframe_requests: u64,
    pub error: Option<String>,
}

/// How a peer connection reaches the SFU.
enum Link {
    Udp(UdpSocket),
    /// ICE-TCP: one connection, opened at the first packet str0m sends; a task of its own reads
    /// and writes it (RFC 4571 frames), so the media loop never waits on the stream.
    Tcp {
        out: Option<mpsc::UnboundedSender<Vec<u8>>>,
        inbox: mpsc::UnboundedReceiver<Vec<u8>>,
        /// Handed to the connection's task when it starts.
        inbox_tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
        remote: Option<SocketAddr>,
    },
    /// Through a TURN relay: the only candidate is the relayed address.
    Turn(Box<super::turn::TurnLink>),
}

impl Link {
    fn send(&mut self, to: SocketAddr, data: &[u8]) {
        match self {
            // A full socket buffer drops the datagram, as a real network would.
            Link::Udp(sock) => {
                let _ = sock.try_send_to(data, to);
            }
            Link::Tcp { out, inbox_tx, remote, .. } => {
                let tx = out.get_or_insert_with(|| {
                    *remote = Some(to);
                    let (tx, rx) = mpsc::unbounded_channel();
                    // The task holds the only sender of the inbox: when the connection ends (or never
                    // opens), `recv` says so instead of waiting forever.
                    if let Some(inbox) = inbox_tx.take() {
                        tokio::spawn(tcp_connection(to, rx, inbox));
                    }
                    tx
                });
                if let Some(framed) = sfu::tcp::frame(data) {
                    let _ = tx.send(framed);
                }
            }
            Link::Turn(turn) => turn.send(to, data),
        }
    }

    /// The next datagram (or frame) and where it came from.
    async fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match self {
            Link::Udp(sock) => sock.recv_from(buf).await,
            Link::Tcp { inbox, remote, .. } => {
                let frame = inbox.recv().await.ok_or_else(|| std::io::Error::other("the ICE-TCP connection closed"))?;
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                Ok((n, remote.unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))))
            }
            Link::Turn(turn) => turn.recv(buf).await,
        }
    }
}

/// One ICE-TCP connection: frames from `out` written in order, frames read handed to `inbox`.
async fn tcp_connection(
    to: SocketAddr,
    mut out: mpsc::UnboundedReceiver<Vec<u8>>,
    inbox: mpsc::UnboundedSender<Vec<u8>>,
) {
    let Ok(stream) = TcpStream::connect(to).await else { return };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut deframer = sfu::tcp::Deframer::default();
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            deframer.push(&buf[..n]);
            loop {
                match deframer.next_frame() {
                    Ok(Some(f)) => {
                        if inbox.send(f.to_vec()).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    // Not RFC 4571 from the SFU: the connection is over (its end fails the participant).
                    Err(_) => return,
                }
            }
        }
    });
    while let Some(framed) = out.recv().await {
        if wr.write_all(&framed).await.is_err() {
            break;
        }
    }
    reader.abort();
}

/// One str0m peer connection on its own socket (or ICE-TCP connection).
struct Peer {
    rtc: Rtc,
    link: Link,
    local: SocketAddr,
    timeout: Instant,
    connected: bool,
}

impl Peer {
    async fn new(video: bool, ip: IpAddr, tcp: bool, turn: Option<&super::turn::TurnServer>) -> Result<Peer> {
        let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).enable_vp8(video).build(Instant::now());
        let (link, local, candidate) = if let Some(server) = turn {
            let link = super::turn::TurnLink::allocate(server, ip).await?;
            let (relay, base) = (link.relay, link.local()?);
            (Link::Turn(Box::new(link)), relay, Candidate::relayed(relay, base, "udp"))
        } else if tcp {
            // An active TCP candidate (port 9 by convention: the real port is the connection's).
            let local = SocketAddr::new(ip, 9);
            let c = Candidate::builder().tcp().host(local).tcptype(TcpType::Active).build();
            let (inbox_tx, inbox) = mpsc::unbounded_channel();
            (Link::Tcp { out: None, inbox, inbox_tx: Some(inbox_tx), remote: None }, local, c)
        } else {
            let sock = UdpSocket::bind((ip, 0)).await.context("binding a UDP socket")?;
            let local = sock.local_addr()?;
            (Link::Udp(sock), local, Candidate::host(local, "udp"))
        };
        rtc.add_local_candidate(candidate.map_err(|e| anyhow!("host candidate: {e}"))?);
        Ok(Peer { rtc, link, local, timeout: Instant::now(), connected: false })
    }

    /// Drains `poll_output` until a timeout (the single-mutation invariant), sending what str0m
    /// transmits and returning its events.
    fn drain(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        loop {
            match self.rtc.poll_output().map_err(|e| anyhow!("str0m: {e}"))? {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return Ok(events);
                }
                Output::Transmit(t) => self.link.send(t.destination, &t.contents),
                Output::Event(Event::Connected) => {
                    self.connected = true;
                }
                Output::Event(e) => events.push(e),
            }
        }
    }

    fn input(&mut self, input: Input) -> Result<Vec<Event>> {
        if let Err(e) = self.rtc.handle_input(input) {
            // A packet str0m refuses is not fatal for the participant.
            if !self.rtc.is_alive() {
                bail!("str0m: {e}");
            }
        }
        self.drain()
    }

    fn receive(&mut self, data: &[u8], source: SocketAddr, at: Instant) -> Result<Vec<Event>> {
        let Ok(contents) = data.try_into() else {
            return Ok(Vec::new());
        };
        let proto = if matches!(self.link, Link::Tcp { .. }) { Protocol::Tcp } else { Protocol::Udp };
        let recv = Receive { proto, source, destination: self.local, contents };
        self.input(Input::Receive(at, recv))
    }

    fn tick(&mut self) -> Result<Vec<Event>> {
        self.input(Input::Timeout(Instant::now()))
    }

    /// Timeout passes while one is due (a pacer releases a burst per pass), at most `max`.
    fn flush(&mut self, max: usize) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        for _ in 0..max {
            events.extend(self.tick()?);
            if self.timeout > Instant::now() {
                break;
            }
        }
        Ok(events)
    }
}

enum Source {
    Audio(OpusSource),
    Video(VideoSource),
}

/// A talker's outgoing media.
struct Talk {
    id: u32,
    source: Source,
    mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    rtp_time: u64,
    keys: VecDeque<(u64, Instant)>,
}

/// What a participant's signaling tells its media loop.
#[derive(Debug)]
pub enum SigIn {
    /// In the room: a talker may offer its publish connection now.
    Joined,
    /// The SFU's answer to the publish offer.
    PublishAnswer(String),
    /// The SFU offers (or renegotiates) the subscribe connection.
    SubscribeOffer(String),
    /// The signaling failed; the participant ends with this error.
    Failed(String),
}

/// What the media loop asks its signaling to send.
#[derive(Debug)]
pub enum SigOut {
    PublishOffer(String),
    SubscribeAnswer(String),
}

/// The media loop's end of a participant's signaling (Chorus's `/voice` socket or Janus's
/// VideoRoom over HTTP); dropping `tx` makes the signaling leave and end its task.
pub struct Signaling {
    pub rx: mpsc::Receiver<SigIn>,
    pub tx: mpsc::Sender<SigOut>,
    pub task: tokio::task::JoinHandle<()>,
}

/// The SFU a participant joins through.
#[derive(Clone)]
pub enum SfuClient {
    Chorus(Api),
    Janus(JanusApi),
}

impl SfuClient {
    /// The address the participant's peer connections bind to.
    fn media_ip(&self) -> IpAddr {
        match self {
            SfuClient::Chorus(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            SfuClient::Janus(j) => j.media_ip(),
        }
    }
}

/// Runs one participant until `stop` turns true (or its plan says leave); never panics on
/// network data, returns what it measured with the first error if any.
pub async fn run(
    sfu: SfuClient,
    account: Account,
    plan: Plan,
    shared: Arc<VoiceShared>,
    stop: watch::Receiver<bool>,
) -> Outcome {
    let mut out = Outcome::default();
    if let Err(e) = participate(&sfu, &account, &plan, &shared, stop, &mut out).await {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        out.error = Some(format!("{e:#}"));
    }
    out
}

async fn participate(
    sfu: &SfuClient,
    account: &Account,
    plan: &Plan,
    shared: &VoiceShared,
    mut stop: watch::Receiver<bool>,
    out: &mut Outcome,
) -> Result<()> {
    let t0 = Instant::now();
    let (mut sig, turn) = match sfu {
        SfuClient::Chorus(api) => {
            let (sig, grant, turn) = chorus_signal::start(api, account, plan).await?;
            out.grant = Some(grant);
            (sig, turn)
        }
        SfuClient::Janus(janus) => (janus_signal::start(janus.clone(), plan).await?, None),
    };
    let ip = sfu.media_ip();
    let mut sub = Peer::new(plan.video, ip, plan.tcp, turn.as_ref()).await?;
    let mut publ = match plan.talker {
        Some(_) => Some(Peer::new(plan.video, ip, plan.tcp, turn.as_ref()).await?),
        None => None,
    };
    let mut talk = match plan.talker {
        Some(id) => Some(Talk {
            id,
            source: if plan.video {
                Source::Video(VideoSource::new(id))
            } else {
                Source::Audio(OpusSource::new(u64::from(id))?)
            },
            mid: None,
            pending: None,
            rtp_time: 0,
            keys: VecDeque::new(),
        }),
        None => None,
    };
    let mut check = OpusCheck::new()?;
    let period = if plan.video { Duration::from_nanos(1_000_000_000 / video::FPS) } else { Duration::from_millis(20) };
    let mut frame_tick = tokio::time::interval(period);
    frame_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut leave_at: Option<Instant> = None;
    let deadline = plan.media_deadline.map(|d| t0 + d);
    let mut sub_buf = vec![0u8; 2048];
    let mut pub_buf = vec![0u8; 2048];

    loop {
        let mut wake = sub.timeout;
        if let Some(p) = &publ {
            wake = wake.min(p.timeout);
        }
        if let Some(t) = leave_at {
            wake = wake.min(t);
        }
        if out.first_media.is_none()
            && let Some(d) = deadline
        {
            wake = wake.min(d);
        }
        let talking = publ.as_ref().is_some_and(|p| p.connected) && talk.as_ref().is_some_and(|t| t.mid.is_some());

        let mut sub_events = Vec::new();
        let mut pub_events = Vec::new();
        // When the events' input arrived: a frame is complete at its last packet.
        let mut events_at = Instant::now();
        tokio::select! {
            _ = stop.changed() => break,
            m = sig.rx.recv() => {
                match m {
                    None => bail!("the signaling ended"),
                    Some(SigIn::Failed(e)) => bail!("{e}"),
                    Some(SigIn::Joined) => {
                        out.joined = Some(t0.elapsed());
                        if let (Some(p), Some(t)) = (publ.as_mut(), talk.as_mut()) {
                            let mut sdp = p.rtc.sdp_api();
                            let mid = if plan.video {
                                let mut simulcast = Simulcast::new();
                                for (rid, ..) in video::LAYERS {
                                    simulcast.add_send_layer(SimulcastLayer::new(rid));
                                }
                                sdp.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(simulcast))
                            } else {
                                sdp.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None)
                            };
                            let (offer, pending) = sdp.apply().ok_or_else(|| anyhow!("no publish offer"))?;
                            t.mid = Some(mid);
                            t.pending = Some(pending);
                            pub_events = p.drain()?;
                            sig.tx.send(SigOut::PublishOffer(offer.to_sdp_string())).await.context("signaling gone")?;
                        }
                    }
                    Some(SigIn::PublishAnswer(sdp)) => {
                        if let (Some(p), Some(t)) = (publ.as_mut(), talk.as_mut())
                            && let Some(pending) = t.pending.take()
                        {
                            let answer = SdpAnswer::from_sdp_string(&sdp).context("parsing the SFU's answer")?;
                            p.rtc.sdp_api().accept_answer(pending, answer).context("applying the SFU's answer")?;
                            pub_events = p.drain()?;
                        }
                    }
                    Some(SigIn::SubscribeOffer(sdp)) => {
                        let offer = SdpOffer::from_sdp_string(&sdp).context("parsing the SFU's offer")?;
                        let answer = sub.rtc.sdp_api().accept_offer(offer).context("answering the SFU's offer")?;
                        sub_events = sub.drain()?;
                        sig.tx.send(SigOut::SubscribeAnswer(answer.to_sdp_string())).await.context("signaling gone")?;
                    }
                }
            }
            r = sub.link.recv(&mut sub_buf) => {
                let (n, from) = r.context("subscribe socket")?;
                events_at = Instant::now();
                if shared.ledger.measuring() {
                    out.rx_bytes_in_window += n as u64;
                }
                sub_events = sub.receive(&sub_buf[..n], from, events_at)?;
            }
            r = async {
                match publ.as_mut() {
                    Some(p) => p.link.recv(&mut pub_buf).await,
                    None => std::future::pending().await,
                }
            } => {
                let (n, from) = r.context("publish socket")?;
                if let Some(p) = publ.as_mut() {
                    pub_events = p.receive(&pub_buf[..n], from, Instant::now())?;
                }
            }
            _ = frame_tick.tick(), if talking => {
                if let (Some(p), Some(t)) = (publ.as_mut(), talk.as_mut()) {
                    pub_events = send_frame(p, t, shared, out)?;
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                if leave_at.is_some_and(|t| now >= t) {
                    break;
                }
                if out.first_media.is_none() && deadline.is_some_and(|d| now >= d) {
                    bail!("no remote media within {:?} of the grant request", plan.media_deadline.unwrap_or_default());
                }
                if now >= sub.timeout {
                    sub_events = sub.tick()?;
                }
                if let Some(p) = publ.as_mut()
                    && now >= p.timeout
                {
                    pub_events = p.tick()?;
                }
            }
        }
        for e in pub_events {
            if let (Event::KeyframeRequest(req), Some(Talk { source: Source::Video(v), .. })) = (e, talk.as_mut()) {
                out.keyframe_requests += 1;
                let layer = video::LAYERS.iter().position(|l| req.rid.as_deref() == Some(l.0)).unwrap_or(2);
                v.request_keyframe(layer);
            }
        }
        if out.subscribed.is_none() && sub.connected {
            out.subscribed = Some(t0.elapsed());
        }
        for e in sub_events {
            if let Event::MediaData(d) = e {
                shared.media_rx.fetch_add(1, Ordering::Relaxed);
                if out.first_media.is_none() {
                    out.first_media = Some(events_at.saturating_duration_since(t0));
                    shared.first_media.fetch_add(1, Ordering::Relaxed);
                    leave_at = plan.leave_after_media.map(|hold| Instant::now() + hold);
                }
                shared.ledger.received(&mut out.stats, payload_key(&d.data), events_at);
                if out.decoded + out.decode_failures < DECODE_CHECKS {
                    let valid = if plan.video { video::decode(&d.data).is_some() } else { check.decodes(&d.data) };
                    if valid {
                        out.decoded += 1;
                    } else {
                        out.decode_failures += 1;
                    }
                }
            }
        }
    }
    // Dropping our end makes the signaling leave; give it a moment to say so.
    drop(sig.tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), &mut sig.task).await;
    Ok(())
}

/// Sends one frame time: an Opus frame, or one VP8 frame per simulcast layer; registers each
/// payload's key first. Returns the publish side's events.
fn send_frame(p: &mut Peer, t: &mut Talk, shared: &VoiceShared, out: &mut Outcome) -> Result<Vec<Event>> {
    let Some(mid) = t.mid else { return Ok(Vec::new()) };
    let codec = match t.source {
        Source::Audio(_) => Codec::Opus,
        Source::Video(_) => Codec::Vp8,
    };
    let Some(pt) =
        p.rtc.writer(mid).and_then(|w| w.payload_params().find(|pp| pp.spec().codec == codec).map(|pp| pp.pt()))
    else {
        return Ok(Vec::new());
    };
    let now = Instant::now();
    let mut events = Vec::new();
    match &mut t.source {
        Source::Audio(src) => {
            let frame = src.next_frame()?;
            let key = payload_key(&frame);
            if shared.ledger.register(key, t.id, now) {
                out.sent_in_window += 1;
            }
            t.keys.push_back((key, now));
            t.rtp_time += super::audio::FRAME as u64;
            let time = MediaTime::new(t.rtp_time, Frequency::FORTY_EIGHT_KHZ);
            let Some(writer) = p.rtc.writer(mid) else { return Ok(events) };
            writer.write(pt, now, time, frame).map_err(|e| anyhow!("writing audio: {e}"))?;
            events.extend(p.drain()?);
        }
        Source::Video(src) => {
            t.rtp_time += 90_000 / video::FPS;
            let time = MediaTime::new(t.rtp_time, Frequency::NINETY_KHZ);
            for (layer, frame) in src.next_frames().into_iter().enumerate() {
                let key = payload_key(&frame);
                if shared.ledger.register(key, t.id * 4 + layer as u32, now) {
                    out.sent_in_window += 1;
                }
                t.keys.push_back((key, now));
                let Some(writer) = p.rtc.writer(mid) else { return Ok(events) };
                writer
                    .rid(video::LAYERS[layer].0.into())
                    .write(pt, now, time, frame)
                    .map_err(|e| anyhow!("writing video: {e}"))?;
                events.extend(p.drain()?);
            }
        }
    }
    out.sent_total += 1;
    shared.media_tx.fetch_add(1, Ordering::Relaxed);
    // str0m queues written media until its next timeout (the null pacer's "handle" timeout at
    // the write time): run it now, or the frame waits for the task's next timer wake-up.
    events.extend(p.flush(8)?);
    shared.ledger.expire(&mut t.keys, now);
    Ok(events)
}
