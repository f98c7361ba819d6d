//! ICE over TCP (RFC 6544): the fallback for clients whose network lets no UDP through.
//!
//! The SFU offers one passive TCP candidate per advertised address on one port; a client connects
//! and sends what it would have sent as datagrams, each framed by a 16-bit length (RFC 4571). This
//! file holds the framing (pure, fuzzed) and the socket handling around the workers:
//!
//! - one accept thread; per connection a reader thread and a writer thread, so a slow or silent
//!   client blocks only its own threads — never a worker;
//! - the first frames of a connection go to every worker, and the worker whose router knows the
//!   STUN ufrag claims the connection; later frames go to that worker only;
//! - a worker sends by `try_send` into the connection's bounded queue: when the client reads too
//!   slowly, packets are dropped (as UDP would), never buffered without bound;
//! - limits: connections in all and per address, frame size, idle time, write time.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::metrics::SfuMetrics;
use crate::worker::WorkerMsg;

/// Largest frame accepted or sent: what the UDP path reads too (a WebRTC datagram stays under
/// the path MTU; a client that frames more is not speaking WebRTC).
pub const MAX_FRAME: usize = 2048;
/// Connections open at once, in all and from one address. A participant holds two; an office or a
/// household behind one NAT shares an address, so the per-address cap only stops one host from
/// taking every slot.
const MAX_CONNECTIONS: usize = 1024;
const MAX_PER_ADDRESS: usize = 128;
/// A connection that sends nothing for this long is closed (ICE consent checks come every few
/// seconds on a live one).
const IDLE: Duration = Duration::from_secs(30);
/// A write that cannot finish within this closes the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames waiting for a connection's writer; more are dropped.
const QUEUE: usize = 256;
/// Stack of the per-connection threads (they hold a 4 KiB buffer and little else).
const THREAD_STACK: usize = 64 * 1024;
/// Frames of one connection handed to workers and not yet handled: the reader stops reading above
/// this, so TCP's own flow control holds the client back instead of a queue growing in a worker.
const IN_FLIGHT: usize = 64;
/// A connection that no worker claimed (no STUN request a peer accepted) within this time or this
/// many frames is closed: only a peer's connection may hold a slot.
const CLAIM_WITHIN: Duration = Duration::from_secs(5);
const CLAIM_FRAMES: usize = 16;

/// A frame that cannot be media: the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("an empty frame")]
    Empty,
    #[error("a frame of {0} bytes (at most {MAX_FRAME})")]
    TooLarge(usize),
}

/// Splits a TCP byte stream into RFC 4571 frames. Holds at most one partial frame.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
}

impl Deframer {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > MAX_FRAME {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if there is one; an error for a length no media frame has.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let rest = &self.buf[self.start..];
        let [hi, lo, ..] = *rest else { return Ok(None) };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if rest.len() < 2 + len {
            return Ok(None);
        }
        let frame = self.start + 2..self.start + 2 + len;
        self.start = frame.end;
        Ok(Some(&self.buf[frame]))
    }

    /// Bytes held that are not yet a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// One datagram framed for the stream; None if it is too large to send.
pub fn frame(data: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(data.len()).ok().filter(|l| *l > 0 && usize::from(*l) <= MAX_FRAME)?;
    let mut out = Vec::with_capacity(2 + data.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Some(out)
}

/// One ICE-TCP connection as the workers see it: where its packets go (its writer), who owns it,
/// and its frames in flight.
#[derive(Debug, Clone)]
pub(crate) struct TcpPeer {
    tx: SyncSender<Vec<u8>>,
    state: Arc<ConnState>,
}

#[derive(Debug)]
struct ConnState {
    /// The worker that claimed the connection (`usize::MAX` until one did).
    owner: AtomicUsize,
    /// Frames handed to workers and not handled yet.
    in_flight: AtomicUsize,
    /// The reader has ended: a worker must not keep (or take) the connection.
    closed: AtomicBool,
}

/// What a send to a TCP peer came to.
pub(crate) enum Sent {
    Queued,
    /// The client reads too slowly: dropped, as UDP would.
    Dropped,
    /// The connection is gone.
    Closed,
}

impl TcpPeer {
    /// Queues a datagram without blocking.
    pub(crate) fn send(&self, data: &[u8]) -> Sent {
        let Some(framed) = frame(data) else { return Sent::Dropped };
        match self.tx.try_send(framed) {
            Ok(()) => Sent::Queued,
            Err(TrySendError::Full(_)) => Sent::Dropped,
            Err(TrySendError::Disconnected(_)) => Sent::Closed,
        }
    }

    /// This worker takes the connection: its later frames come here only. False when the
    /// connection closed meanwhile (then nobody keeps it).
    pub(crate) fn claim(&self, worker: usize) -> bool {
        self.state.owner.store(worker, Ordering::Release);
        !self.state.closed.load(Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.closed.load(Ordering::Acquire)
    }

    /// A worker handled one frame of this connection.
    pub(crate) fn handled(&self) {
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The workers a connection's frames go to. Each frame is a message on the worker's channel plus an
/// empty datagram to its UDP socket (the doorbell): a worker blocks in `recv_from`, and the empty
/// datagram wakes it at once instead of after its read timeout.
pub(crate) struct Workers {
    senders: Vec<Sender<WorkerMsg>>,
    sockets: Vec<SocketAddr>,
    doorbell: Option<UdpSocket>,
    /// Per worker: a doorbell is on its way and the worker has not drained its channel since (one
    /// ring per drain, however many frames).
    rung: Vec<Arc<AtomicBool>>,
}

impl Workers {
    /// `workers`: each worker's channel, the address its UDP socket is bound to, and its doorbell flag.
    pub(crate) fn new(workers: Vec<(Sender<WorkerMsg>, SocketAddr, Arc<AtomicBool>)>) -> Workers {
        let sockets: Vec<SocketAddr> = workers.iter().map(|(_, a, _)| reachable(*a)).collect();
        let any = if sockets.first().is_some_and(SocketAddr::is_ipv6) {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 0))
        };
        let doorbell = UdpSocket::bind(any).ok();
        let (mut senders, mut rung) = (Vec::new(), Vec::new());
        for (tx, _, flag) in workers {
            senders.push(tx);
            rung.push(flag);
        }
        Workers { senders, sockets, doorbell, rung }
    }

    /// Hands `msg` to worker `i` and wakes it; false if that worker is gone.
    fn deliver(&self, i: usize, msg: WorkerMsg) -> bool {
        let Some(tx) = self.senders.get(i) else { return false };
        if tx.send(msg).is_err() {
            return false;
        }
        let first_since_drain = self.rung.get(i).is_some_and(|r| !r.swap(true, Ordering::AcqRel));
        if first_since_drain && let (Some(bell), Some(to)) = (&self.doorbell, self.sockets.get(i)) {
            let _ = bell.send_to(&[], to);
        }
        true
    }

    fn len(&self) -> usize {
        self.senders.len()
    }
}

/// Where a socket bound to `addr` is reached from this host (an unspecified address is loopback).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}

/// The running ICE-TCP listener.
pub(crate) struct Listening {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Listening {
    /// Accepts ICE-TCP connections on `listener` and feeds their frames to the workers.
    pub(crate) fn start(listener: TcpListener, workers: Workers, metrics: SfuMetrics) -> std::io::Result<Listening> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let workers = Arc::new(workers);
        let thread = std::thread::Builder::new()
            .name("sfu-tcp-accept".into())
            .spawn(move || accept(listener, workers, metrics, &flag))?;
        Ok(Listening { addr, stop, thread })
    }

    /// Stops accepting (open connections end when their workers stop).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the blocking accept so it sees the flag.
        let wake = if self.addr.ip().is_unspecified() {
            SocketAddr::new(
                if self.addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() },
                self.addr.port(),
            )
        } else {
            self.addr
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let _ = self.thread.join();
    }
}

fn accept(listener: TcpListener, workers: Arc<Workers>, metrics: SfuMetrics, stop: &AtomicBool) {
    let open: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors, or the client went away meanwhile: wait a little.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let Ok(peer) = stream.peer_addr() else { continue };
        if !admit(&open, slot_key(peer.ip())) {
            metrics.tcp_refused.inc();
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        metrics.tcp_connections.inc();
        let (workers, m, open2) = (workers.clone(), metrics.clone(), open.clone());
        let spawned = std::thread::Builder::new().name("sfu-tcp".into()).stack_size(THREAD_STACK).spawn(move || {
            serve(stream, peer, &workers, &m);
            m.tcp_connections.dec();
            release(&open2, slot_key(peer.ip()));
        });
        if spawned.is_err() {
            tracing::warn!("ICE-TCP: cannot start a connection thread");
            metrics.tcp_connections.dec();
            release(&open, slot_key(peer.ip()));
        }
    }
}

/// Whose share a connection counts against: its IPv4 address, or its IPv6 /64 (one host usually
/// holds a whole /64, so counting each address would give it every slot).
fn slot_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)),
        v4 => v4,
    }
}

/// Counts a new connection from `ip` if the limits allow it.
fn admit(open: &Mutex<HashMap<IpAddr, usize>>, ip: IpAddr) -> bool {
    let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
    let total: usize = open.values().sum();
    if total >= MAX_CONNECTIONS || open.get(&ip).is_some_and(|n| *n >= MAX_PER_ADDRESS) {
        return false;
    }
    *open.entry(ip).or_default() += 1;
    true
}

fn release(open: &Mutex<HashMap<IpAddr, usize>>, ip: IpAddr) {
    let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = open.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            open.remove(&ip);
        }
    }
}

/// One connection: frames in to the workers until it closes, idles, misbehaves or is not claimed.
fn serve(stream: TcpStream, peer: SocketAddr, workers: &Workers, metrics: &SfuMetrics) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(IDLE)).is_err() || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else { return };
    let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
    let state = Arc::new(ConnState {
        owner: AtomicUsize::new(usize::MAX),
        in_flight: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
    });
    let handle = TcpPeer { tx, state: state.clone() };
    let wrote = std::thread::Builder::new().name("sfu-tcp-write".into()).stack_size(THREAD_STACK).spawn(move || {
        for framed in rx {
            if writer.write_all(&framed).is_err() {
                // Unblocks the reader too.
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        }
    });
    if wrote.is_err() {
        return;
    }
    // Until the connection is claimed, it must be claimed soon.
    let _ = stream.set_read_timeout(Some(CLAIM_WITHIN));
    let opened = std::time::Instant::now();
    let mut unclaimed_frames = 0usize;
    let mut reader = &stream;
    let mut deframer = Deframer::default();
    let mut buf = [0u8; 4096];
    'read: loop {
        // Back-pressure: the client waits while the workers catch up with this connection.
        while state.in_flight.load(Ordering::Acquire) >= IN_FLIGHT {
            if state.closed.load(Ordering::Acquire) {
                break 'read;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        deframer.push(&buf[..n]);
        loop {
            let data = match deframer.next_frame() {
                Ok(Some(d)) => d.to_vec(),
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("ICE-TCP: closing {peer}: {e}");
                    metrics.dropped_datagrams.with_label_values(&["tcp_bad_frame"]).inc();
                    break 'read;
                }
            };
            let owner = state.owner.load(Ordering::Acquire);
            if owner != usize::MAX {
                state.in_flight.fetch_add(1, Ordering::AcqRel);
                if !workers.deliver(owner, WorkerMsg::TcpDatagram { source: peer, data, peer: handle.clone() }) {
                    break 'read;
                }
                continue;
            }
            // Not claimed yet: only STUN may open a connection, and only for a while.
            unclaimed_frames += 1;
            if unclaimed_frames > CLAIM_FRAMES || opened.elapsed() > CLAIM_WITHIN {
                metrics.dropped_datagrams.with_label_values(&["tcp_unclaimed"]).inc();
                break 'read;
            }
            if crate::router::stun_local_ufrag(&data).is_none() {
                continue;
            }
            // Every worker looks (the one whose router knows the ufrag claims it).
            let mut delivered = false;
            for i in 0..workers.len() {
                state.in_flight.fetch_add(1, Ordering::AcqRel);
                let msg = WorkerMsg::TcpDatagram { source: peer, data: data.clone(), peer: handle.clone() };
                if workers.deliver(i, msg) {
                    delivered = true;
                } else {
                    state.in_flight.fetch_sub(1, Ordering::AcqRel);
                }
            }
            if !delivered {
                break 'read; // the SFU has stopped
            }
        }
        if state.owner.load(Ordering::Acquire) != usize::MAX {
            let _ = stream.set_read_timeout(Some(IDLE));
        }
    }
    state.closed.store(true, Ordering::Release);
    let _ = stream.shutdown(Shutdown::Both);
    // The owner drops its handle (and so the writer ends); a claim that races with this close sees
    // `closed` and keeps nothing.
    workers.deliver(state.owner.load(Ordering::Acquire), WorkerMsg::TcpClosed { source: peer });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut Deframer) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame()? {
            out.push(f.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn frames_come_out_whole_however_the_stream_is_cut() {
        let stream: Vec<u8> = [frame(b"hello").unwrap(), frame(&[7; 1200]).unwrap(), frame(b"x").unwrap()].concat();
        for cut in [1, 2, 3, 7, 100, stream.len()] {
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(cut) {
                d.push(chunk);
                got.extend(frames(&mut d).unwrap());
            }
            assert_eq!(got, vec![b"hello".to_vec(), vec![7; 1200], b"x".to_vec()], "cut every {cut} bytes");
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn a_length_no_datagram_has_is_refused() {
        let mut d = Deframer::default();
        d.push(&[0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::Empty));
        let mut d = Deframer::default();
        d.push(&[0xff, 0xff, 1, 2, 3]);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge(65535)), "refused at the header, before the body");
    }

    #[test]
    fn a_partial_frame_is_held_and_memory_stays_bounded() {
        let mut d = Deframer::default();
        for _ in 0..10_000 {
            d.push(&frame(&[1; 1000]).unwrap());
            assert_eq!(frames(&mut d).unwrap().len(), 1);
        }
        d.push(&[0x04, 0x00, 9]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.pending(), 3);
        assert!(d.buf.capacity() < 4 * MAX_FRAME, "the buffer is reused, not grown: {}", d.buf.capacity());
    }

    #[test]
    fn one_address_cannot_hold_more_than_its_share_of_connections() {
        let open = Mutex::new(HashMap::new());
        let (a, b): (IpAddr, IpAddr) = ([192, 0, 2, 1].into(), [192, 0, 2, 2].into());
        assert_eq!((0..200).filter(|_| admit(&open, a)).count(), MAX_PER_ADDRESS);
        assert!(admit(&open, b), "another address still gets in");
        release(&open, a);
        assert!(admit(&open, a), "a closed connection frees its slot");
        for _ in 0..=MAX_PER_ADDRESS {
            release(&open, a);
        }
        assert!(!open.lock().unwrap().contains_key(&a), "no entry is left for an address with nothing open");
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(slot_key(a), slot_key(b));
        assert_ne!(slot_key(a), slot_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(slot_key("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn only_datagrams_that_fit_a_frame_are_framed() {
        assert_eq!(frame(b"ab"), Some(vec![0, 2, b'a', b'b']));
        assert_eq!(frame(b""), None);
        assert_eq!(frame(&[0; MAX_FRAME + 1]), None);
    }
}
