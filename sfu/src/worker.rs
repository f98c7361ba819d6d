//! The media I/O loop: one thread, one UDP socket, the rooms pinned to it, and the ICE-TCP
//! connections its peers claimed (their frames arrive as messages from `tcp.rs`'s threads).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};

use crate::metrics::{LocalCounters, SfuMetrics};
use crate::room::{Ctx, Room};
use crate::router::{PeerKey, Router, stun_local_ufrag};
use crate::tcp::{Sent, TcpPeer};
use crate::udp_batch::SendBatch;
use crate::{Command, EventSink, ParticipantId, Rights, RoomId, Transmitter};

/// How often timers, speaking decay and peer timeouts are driven.
const TICK: Duration = Duration::from_millis(5);
/// The shortest interval between two passes over the due timeouts when a peer connection asks for one
/// before the next tick (a pacer sending a probe wants one every 2 ms).
const MIN_TICK: Duration = Duration::from_millis(1);
/// Longest a blocked `recv_from` waits: until the next tick, due pass or metrics flush, and no longer than
/// this, so commands from signaling are picked up within a tick. (A fixed 2 ms wait woke an idle worker
/// twice between ticks for nothing.)
const MAX_READ_WAIT: Duration = TICK;
/// The shortest wait set on the socket (a zero timeout would mean "block forever").
const MIN_READ_WAIT: Duration = Duration::from_micros(100);
/// The socket's timeout is set again only when the wait wanted differs by more than this (under load, when
/// datagrams come closer together, most of them then need no system call for it).
const READ_WAIT_SLACK: Duration = Duration::from_micros(250);
/// Channel messages handled before the worker turns to its socket and timers again.
const MAX_MESSAGES_PER_PASS: usize = 256;
/// Metrics are flushed from worker-local counters this often.
const FLUSH: Duration = Duration::from_millis(250);

pub(crate) enum WorkerMsg {
    Join {
        room: RoomId,
        id: ParticipantId,
        user_id: u64,
        rights: Rights,
        sink: EventSink,
    },
    Command {
        room: RoomId,
        id: ParticipantId,
        cmd: Command,
    },
    /// Reply with a snapshot of every room of this worker.
    Snapshot(std::sync::mpsc::Sender<Vec<crate::RoomSnapshot>>),
    /// A frame from an ICE-TCP connection (offered to every worker until one claims it).
    TcpDatagram {
        source: SocketAddr,
        data: Vec<u8>,
        peer: TcpPeer,
    },
    /// An ICE-TCP connection this worker claimed has closed.
    TcpClosed {
        source: SocketAddr,
    },
    Shutdown,
}

/// Where a handler's datagrams go: queued in the worker's batch, sent when the handler is done
/// (dropping the `UdpOut` flushes) or when the batch fills; ICE-TCP packets to their
/// connection's writer.
struct UdpOut<'a> {
    socket: &'a UdpSocket,
    batch: &'a mut SendBatch,
    tcp: &'a mut HashMap<SocketAddr, TcpPeer>,
}

impl Transmitter for UdpOut<'_> {
    #[inline]
    fn transmit(&mut self, to: SocketAddr, data: &[u8]) {
        self.batch.push(self.socket, to, data);
    }

    fn transmit_tcp(&mut self, to: SocketAddr, data: &[u8]) {
        let Some(peer) = self.tcp.get(&to) else { return };
        match peer.send(data) {
            Sent::Queued => {
                self.batch.packets += 1;
                self.batch.bytes += data.len() as u64;
            }
            Sent::Dropped => self.batch.tcp_dropped += 1,
            Sent::Closed => {
                self.tcp.remove(&to);
            }
        }
    }
}

impl Drop for UdpOut<'_> {
    fn drop(&mut self) {
        self.batch.flush(self.socket);
    }
}

/// Marks one frame of an ICE-TCP connection handled when dropped (whichever way the handler ends).
struct InFlight<'a>(&'a TcpPeer);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.handled();
    }
}

/// Moves the batch's send counts into the worker's counters.
fn count_sent(batch: &mut SendBatch, counters: &mut LocalCounters) {
    counters.packets_out += std::mem::take(&mut batch.packets);
    counters.bytes_out += std::mem::take(&mut batch.bytes);
    counters.dropped_tcp_queue += std::mem::take(&mut batch.tcp_dropped);
}

pub(crate) struct Worker {
    pub index: usize,
    pub socket: UdpSocket,
    /// The advertised addresses of this worker's socket (see `SfuConfig::public_ips`).
    pub public: Vec<SocketAddr>,
    /// The advertised ICE-TCP addresses (the SFU's one TCP port on each public address); empty: off.
    pub tcp_public: Vec<SocketAddr>,
    /// Set when an ICE-TCP connection rang the doorbell; cleared here before the channel is drained,
    /// so frames queued after that ring again.
    pub tcp_rung: Arc<std::sync::atomic::AtomicBool>,
    pub rx: Receiver<WorkerMsg>,
    pub metrics: SfuMetrics,
    pub load: Arc<AtomicUsize>,
    pub peer_timeout: Duration,
    pub initial_bps: u64,
    pub relay_sources: crate::config::RelaySources,
}

impl Worker {
    pub fn run(self) {
        let Worker {
            index,
            socket,
            public,
            tcp_public,
            tcp_rung,
            rx,
            metrics,
            load,
            peer_timeout,
            initial_bps,
            relay_sources,
        } = self;
        let mut read_wait = MAX_READ_WAIT;
        if let Err(e) = socket.set_read_timeout(Some(read_wait)) {
            tracing::error!(error = %e, "cannot set socket read timeout");
            return;
        }
        // str0m pairs a datagram with the local candidate it was sent to. The socket cannot tell which
        // advertised address that was (behind NAT it saw a private one), so the first of the sender's family.
        let first_of = |v4: bool| public.iter().copied().find(|a| a.is_ipv4() == v4).or(public.first().copied());
        let (Some(dest_v4), Some(dest_v6)) = (first_of(true), first_of(false)) else {
            tracing::error!("worker {index} has no advertised address");
            return;
        };
        let tcp_of = |v4: bool| tcp_public.iter().copied().find(|a| a.is_ipv4() == v4).or(tcp_public.first().copied());
        let (tcp_v4, tcp_v6) = (tcp_of(true), tcp_of(false));
        let mut rooms: HashMap<RoomId, Room> = HashMap::new();
        let mut router = Router::default();
        let mut counters = LocalCounters::default();
        let mut buf = vec![0u8; 2048];
        let mut batch = SendBatch::default();
        let mut tcp: HashMap<SocketAddr, TcpPeer> = HashMap::new();
        let mut next_tick = Instant::now();
        // Between ticks, a pass over only the timeouts that are due, when a peer connection asked for one.
        let mut next_due = next_tick;
        let mut last_due = Instant::now();
        let mut next_flush = Instant::now() + FLUSH;
        loop {
            // Commands from signaling, and ICE-TCP frames; a bounded number per pass, so UDP and the
            // rooms' timers keep their turn whatever arrives on the channel.
            tcp_rung.store(false, Ordering::Release);
            for _ in 0..MAX_MESSAGES_PER_PASS {
                let msg = match rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => break,
                    // The SFU handle is gone: the same as being told to stop.
                    Err(TryRecvError::Disconnected) => WorkerMsg::Shutdown,
                };
                let now = Instant::now();
                let mut out = UdpOut { socket: &socket, batch: &mut batch, tcp: &mut tcp };
                match msg {
                    WorkerMsg::Shutdown => {
                        drop(out);
                        return shutdown(
                            &mut rooms,
                            &socket,
                            &mut batch,
                            &mut tcp,
                            &mut router,
                            &mut counters,
                            &metrics,
                        );
                    }
                    WorkerMsg::Join { room, id, user_id, rights, sink } => {
                        let r = rooms.entry(room).or_insert_with(|| {
                            metrics.rooms.inc();
                            Room::new(room, &public, peer_timeout, initial_bps)
                                .with_tcp(&tcp_public)
                                .with_relay_sources(relay_sources.clone())
                        });
                        let mut ctx =
                            Ctx { now, out: &mut out, router: &mut router, counters: &mut counters, metrics: &metrics };
                        r.join(&mut ctx, id, user_id, rights, sink);
                        load.fetch_add(1, Ordering::Relaxed);
                    }
                    WorkerMsg::Snapshot(reply) => {
                        let _ = reply.send(rooms.values().map(|r| r.snapshot(index)).collect());
                    }
                    WorkerMsg::TcpDatagram { source, data, peer } => {
                        let _handled = InFlight(&peer);
                        let (Some(destination), true) =
                            (if source.is_ipv4() { tcp_v4 } else { tcp_v6 }, data.len() <= buf.len())
                        else {
                            continue;
                        };
                        // An unclaimed connection is offered to every worker: the one whose peer accepts
                        // its STUN request claims it. Until then its answers need a way back: provisional.
                        let ours = out.tcp.contains_key(&source);
                        if !ours {
                            let here = stun_local_ufrag(&data).and_then(|u| router.by_ufrag(u)).is_some();
                            if !here || peer.is_closed() {
                                continue;
                            }
                            out.tcp.insert(source, peer.clone());
                        }
                        counters.packets_in += 1;
                        counters.bytes_in += data.len() as u64;
                        let mut ctx =
                            Ctx { now, out: &mut out, router: &mut router, counters: &mut counters, metrics: &metrics };
                        if let Some(due) = receive(&mut rooms, &mut ctx, Protocol::Tcp, source, destination, &data) {
                            next_due = next_due.min(due.max(last_due + MIN_TICK));
                        }
                        // Claimed once its STUN request was accepted (the router then knows the path).
                        let claimed = ours || (router.by_addr(&source).is_some() && peer.claim(index));
                        if !claimed {
                            out.tcp.remove(&source);
                        }
                    }
                    WorkerMsg::TcpClosed { source } => {
                        out.tcp.remove(&source);
                    }
                    WorkerMsg::Command { room, id, cmd } => {
                        if let Some(r) = rooms.get_mut(&room) {
                            let mut ctx = Ctx {
                                now,
                                out: &mut out,
                                router: &mut router,
                                counters: &mut counters,
                                metrics: &metrics,
                            };
                            let before = r.participant_count();
                            r.command(&mut ctx, id, cmd);
                            let gone = before.saturating_sub(r.participant_count());
                            if gone > 0 {
                                load.fetch_sub(gone, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }

            // One datagram, or the next thing due.
            let wait = next_tick
                .min(next_due)
                .min(next_flush)
                .saturating_duration_since(Instant::now())
                .clamp(MIN_READ_WAIT, MAX_READ_WAIT);
            if wait.abs_diff(read_wait) > READ_WAIT_SLACK && socket.set_read_timeout(Some(wait)).is_ok() {
                read_wait = wait;
            }
            match socket.recv_from(&mut buf) {
                // An empty datagram is no WebRTC packet: it is the ICE-TCP doorbell (a frame is queued).
                Ok((0, _)) => {}
                Ok((n, source)) => {
                    counters.packets_in += 1;
                    counters.bytes_in += n as u64;
                    let destination = if source.is_ipv4() { dest_v4 } else { dest_v6 };
                    let mut out = UdpOut { socket: &socket, batch: &mut batch, tcp: &mut tcp };
                    let mut ctx = Ctx {
                        now: Instant::now(),
                        out: &mut out,
                        router: &mut router,
                        counters: &mut counters,
                        metrics: &metrics,
                    };
                    if let Some(due) = receive(&mut rooms, &mut ctx, Protocol::Udp, source, destination, &buf[..n]) {
                        // Never more often than MIN_TICK: a pass visits every peer.
                        next_due = next_due.min(due.max(last_due + MIN_TICK));
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    tracing::warn!(error = %e, "udp receive failed");
                    std::thread::sleep(MAX_READ_WAIT);
                }
            }

            let now = Instant::now();
            if now >= next_due && now < next_tick {
                let mut out = UdpOut { socket: &socket, batch: &mut batch, tcp: &mut tcp };
                next_due = next_tick;
                for r in rooms.values_mut() {
                    let mut ctx =
                        Ctx { now, out: &mut out, router: &mut router, counters: &mut counters, metrics: &metrics };
                    r.drive_due(&mut ctx);
                    if let Some(due) = r.take_wake() {
                        next_due = next_due.min(due);
                    }
                }
                // Counted from the end of the pass, so a slow pass cannot leave the socket unread.
                last_due = Instant::now();
                next_due = next_due.max(last_due + MIN_TICK);
            }
            if now >= next_tick {
                next_tick = now + TICK;
                next_due = next_tick;
                let mut out = UdpOut { socket: &socket, batch: &mut batch, tcp: &mut tcp };
                let mut emptied = Vec::new();
                for (id, r) in rooms.iter_mut() {
                    let before = r.participant_count();
                    let mut ctx =
                        Ctx { now, out: &mut out, router: &mut router, counters: &mut counters, metrics: &metrics };
                    r.tick(&mut ctx);
                    if let Some(due) = r.take_wake() {
                        next_due = next_due.min(due);
                    }
                    let gone = before - r.participant_count();
                    if gone > 0 {
                        load.fetch_sub(gone, Ordering::Relaxed);
                    }
                    if r.is_empty() {
                        emptied.push(*id);
                    }
                }
                drop(out);
                for id in emptied {
                    rooms.remove(&id);
                    metrics.rooms.dec();
                }
                last_due = Instant::now();
                next_due = next_due.max(last_due + MIN_TICK);
            }
            if now >= next_flush {
                next_flush = now + FLUSH;
                count_sent(&mut batch, &mut counters);
                counters.flush(&metrics);
            }
        }
    }
}

/// Hands one datagram (UDP, or a frame of an ICE-TCP connection) to the peer connection that owns
/// it, found by its source address or, on a new path, by its STUN ufrag. Returns when the room
/// wants its next tick.
fn receive(
    rooms: &mut HashMap<RoomId, Room>,
    ctx: &mut Ctx<'_>,
    proto: Protocol,
    source: SocketAddr,
    destination: SocketAddr,
    data: &[u8],
) -> Option<Instant> {
    let (key, known): (Option<PeerKey>, bool) = match ctx.router.by_addr(&source) {
        Some(k) => (Some(k), true),
        None => (stun_local_ufrag(data).and_then(|u| ctx.router.by_ufrag(u)), false),
    };
    let Some(key) = key else {
        ctx.counters.dropped_unknown += 1;
        return None;
    };
    let Ok(contents) = data.try_into() else {
        ctx.counters.dropped_malformed += 1;
        return None;
    };
    let r = rooms.get_mut(&key.room)?;
    r.receive(ctx, key, Receive { proto, source, destination, contents }, known);
    r.take_wake()
}

fn shutdown(
    rooms: &mut HashMap<RoomId, Room>,
    socket: &UdpSocket,
    batch: &mut SendBatch,
    tcp: &mut HashMap<SocketAddr, TcpPeer>,
    router: &mut Router,
    counters: &mut LocalCounters,
    metrics: &SfuMetrics,
) {
    let mut out = UdpOut { socket, batch, tcp };
    for (_, mut r) in rooms.drain() {
        let mut ctx = Ctx { now: Instant::now(), out: &mut out, router, counters, metrics };
        r.close_all(&mut ctx);
        metrics.rooms.dec();
    }
    drop(out);
    count_sent(batch, counters);
    counters.flush(metrics);
}
