//! The sockets around [`Server`]: a UDP listener, a TLS listener, one UDP relay socket per
//! allocation, and a tick that expires allocations and publishes metrics.
//!
//! The core sits behind one mutex, taken once per message and never across an await: TURN is the
//! fallback path (a few users on restrictive networks), and one uncontended lock costs less than
//! the channel hop a dedicated task would.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::metrics::TurnMetrics;
use crate::server::{Client, Counters, Limits, RelayBinder, Reply, Server, Targets, Transport};
use crate::wire;

/// A TLS handshake must finish in this time, and a connection that sends nothing for
/// [`TLS_IDLE`] is closed (a live client refreshes and checks consent every few seconds).
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
const TLS_IDLE: Duration = Duration::from_secs(60);
/// Browsers open one TLS connection per allocation (two peer connections each), and networks that
/// allow only TLS are mostly offices behind one NAT.
const TLS_PER_IP: usize = 64;
const TLS_TOTAL: usize = 2048;
/// Frames queued to one TLS client; past this they are dropped, never waited for.
const TLS_QUEUE: usize = 256;
const MAX_DATAGRAM: usize = 65_536;

#[derive(Clone)]
pub struct TurnConfig {
    pub realm: String,
    /// The TURN REST API secret the credentials in `joined` are made with.
    pub secret: Vec<u8>,
    pub udp_listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
    pub tls: Option<Arc<ServerConfig>>,
    pub targets: Targets,
    pub limits: Limits,
    /// The relay addresses open now are kept in this set, for a caller that must tell relayed
    /// traffic from direct (the SFU's join-path metric).
    pub open_relays: OpenRelays,
}

/// See [`TurnConfig::open_relays`].
pub type OpenRelays = Arc<std::sync::RwLock<std::collections::HashSet<SocketAddr>>>;

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("TURN: cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("TURN over TLS needs a certificate (--tls-cert and --tls-key, or --acme-domain)")]
    NoCertificate,
    #[error("TURN metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The running server; dropping it stops every task.
pub struct TurnServer {
    pub udp_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl TurnServer {
    pub fn allocations(&self) -> usize {
        self.shared.state.lock().core.allocations()
    }

    /// Relay sockets open now (one per allocation; none may outlive its allocation).
    pub fn relay_sockets(&self) -> usize {
        self.shared.state.lock().relays.len()
    }

    /// TLS connections counted against their addresses now.
    pub fn tls_connections(&self) -> usize {
        self.shared.state.lock().tls_per_ip.values().sum()
    }

    /// Replaces the addresses relaying may reach (the SFU binds after the TURN listeners, whose
    /// ports the ICE server URLs need first).
    pub fn set_targets(&self, targets: Targets) {
        self.shared.state.lock().core.set_targets(targets);
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let mut state = self.shared.state.lock();
        for (_, relay) in state.relays.drain() {
            relay.task.abort();
        }
    }
}

struct Relay {
    socket: Arc<UdpSocket>,
    task: JoinHandle<()>,
}

struct State {
    core: Server,
    relays: HashMap<SocketAddr, Relay>,
    tls_clients: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    tls_per_ip: HashMap<IpAddr, usize>,
}

struct Shared {
    state: Mutex<State>,
    udp: Option<Arc<UdpSocket>>,
    open_relays: OpenRelays,
}

pub async fn start(config: TurnConfig, registry: &prometheus::Registry) -> Result<TurnServer, TurnError> {
    let metrics = TurnMetrics::new(registry)?;
    let udp = match config.udp_listen {
        Some(addr) => Some(Arc::new(UdpSocket::bind(addr).await.map_err(|e| TurnError::Listen(addr, e))?)),
        None => None,
    };
    let tls = match config.tls_listen {
        Some(addr) => {
            let tls = config.tls.clone().ok_or(TurnError::NoCertificate)?;
            Some((TcpListener::bind(addr).await.map_err(|e| TurnError::Listen(addr, e))?, TlsAcceptor::from(tls)))
        }
        None => None,
    };
    let udp_addr = udp.as_ref().and_then(|s| s.local_addr().ok());
    let tls_addr = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            core: Server::new(&config.realm, &config.secret, config.targets, config.limits),
            relays: HashMap::new(),
            tls_clients: HashMap::new(),
            tls_per_ip: HashMap::new(),
        }),
        udp: udp.clone(),
        open_relays: config.open_relays.clone(),
    });
    let mut tasks = vec![tokio::spawn(tick(shared.clone(), metrics.clone()))];
    if let Some(udp) = udp {
        tasks.push(tokio::spawn(serve_udp(shared.clone(), udp)));
    }
    if let Some((listener, acceptor)) = tls {
        tasks.push(tokio::spawn(serve_tls(shared.clone(), listener, acceptor, metrics)));
    }
    Ok(TurnServer { udp_addr, tls_addr, shared, tasks })
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Binds relay sockets while the core decides; they are wired up once it has.
#[derive(Default)]
struct Binder {
    opened: Vec<(SocketAddr, std::net::UdpSocket)>,
}

impl RelayBinder for Binder {
    fn bind(&mut self, ip: IpAddr) -> std::io::Result<SocketAddr> {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        self.opened.push((addr, socket));
        Ok(addr)
    }
}

/// What to send once the lock is released.
enum Outgoing {
    Nothing,
    Client(Vec<u8>),
    Peer(Arc<UdpSocket>, SocketAddr),
}

/// One client message through the core; new relay sockets start reading before the lock drops.
fn dispatch(shared: &Arc<Shared>, client: Client, input: &[u8]) -> (Outgoing, std::ops::Range<usize>) {
    let mut binder = Binder::default();
    let mut state = shared.state.lock();
    let reply = state.core.on_client(Instant::now(), unix_now(), client, input, &mut binder);
    for (addr, socket) in binder.opened {
        match UdpSocket::from_std(socket) {
            Ok(socket) => {
                let socket = Arc::new(socket);
                let task = tokio::spawn(relay_reader(shared.clone(), addr, socket.clone()));
                state.relays.insert(addr, Relay { socket, task });
                if let Ok(mut open) = shared.open_relays.write() {
                    open.insert(addr);
                }
            }
            Err(e) => {
                tracing::warn!("TURN: relay socket {addr}: {e}");
                state.core.remove(&client);
            }
        }
    }
    match reply {
        Reply::None => (Outgoing::Nothing, 0..0),
        Reply::ToClient(bytes) => (Outgoing::Client(bytes), 0..0),
        Reply::ToClientAndRelease(bytes, relay) => {
            release_locked(&mut state, shared, relay);
            (Outgoing::Client(bytes), 0..0)
        }
        Reply::ToPeer { relay, to, payload } => match state.relays.get(&relay) {
            Some(r) => (Outgoing::Peer(r.socket.clone(), to), payload),
            None => (Outgoing::Nothing, 0..0),
        },
    }
}

async fn serve_udp(shared: Arc<Shared>, udp: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match udp.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors surface here on some systems; the socket itself is fine.
            Err(_) => continue,
        };
        let client = Client { transport: Transport::Udp, addr: from };
        match dispatch(&shared, client, &buf[..n]) {
            (Outgoing::Client(bytes), _) => {
                let _ = udp.send_to(&bytes, from).await;
            }
            (Outgoing::Peer(socket, to), payload) => {
                let _ = socket.send_to(&buf[payload], to).await;
            }
            (Outgoing::Nothing, _) => {}
        }
    }
}

async fn relay_reader(shared: Arc<Shared>, relay: SocketAddr, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::with_capacity(2048);
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
        let (client, tls) = {
            let mut state = shared.state.lock();
            let Some(client) = state.core.on_peer(Instant::now(), relay, from, &buf[..n], &mut out) else {
                continue;
            };
            (client, state.tls_clients.get(&client.addr).cloned())
        };
        match client.transport {
            Transport::Udp => {
                if let Some(udp) = &shared.udp {
                    let _ = udp.send_to(&out, client.addr).await;
                }
            }
            Transport::Tls => {
                if let Some(tx) = tls {
                    // A full queue means a stalled client: drop, as UDP would.
                    let _ = tx.try_send(out.clone());
                }
            }
        }
    }
}

fn release(shared: &Shared, relays: Vec<SocketAddr>) {
    let mut state = shared.state.lock();
    for addr in relays {
        release_locked(&mut state, shared, addr);
    }
}

/// Closes a relay socket (its reader task ends) and forgets it.
fn release_locked(state: &mut State, shared: &Shared, addr: SocketAddr) {
    if let Some(r) = state.relays.remove(&addr) {
        r.task.abort();
    }
    if let Ok(mut open) = shared.open_relays.write() {
        open.remove(&addr);
    }
}

async fn tick(shared: Arc<Shared>, metrics: TurnMetrics) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Counters::default();
    loop {
        every.tick().await;
        let (gone, counters, open) = {
            let mut state = shared.state.lock();
            let gone = state.core.expire(Instant::now());
            (gone, state.core.counters.clone(), state.core.allocations())
        };
        release(&shared, gone);
        metrics.flush(&counters, &mut last, open);
    }
}

async fn serve_tls(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor, metrics: TurnMetrics) {
    loop {
        let Ok((stream, from)) = listener.accept().await else { continue };
        {
            let mut state = shared.state.lock();
            let total: usize = state.tls_per_ip.values().sum();
            let mine = state.tls_per_ip.get(&from.ip()).copied().unwrap_or(0);
            if mine >= TLS_PER_IP || total >= TLS_TOTAL {
                state.core.counters.refused[crate::server::Refusal::Quota as usize] += 1;
                continue; // dropping the stream closes it
            }
            state.tls_per_ip.insert(from.ip(), mine + 1);
        }
        metrics.tls_connections.inc();
        let (shared, acceptor, metrics) = (shared.clone(), acceptor.clone(), metrics.clone());
        tokio::spawn(async move {
            let client = Client { transport: Transport::Tls, addr: from };
            // Whatever ends the connection — its end, an error, a panic — gives its slot back.
            let _slot = TlsSlot { shared: shared.clone(), client, metrics };
            if let Ok(Ok(tls)) = tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                tls_connection(&shared, client, tls).await;
            }
        });
    }
}

/// One TLS connection's place in the per-address count, its sender and its allocation.
struct TlsSlot {
    shared: Arc<Shared>,
    client: Client,
    metrics: TurnMetrics,
}

impl Drop for TlsSlot {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        let ip = self.client.addr.ip();
        state.tls_clients.remove(&self.client.addr);
        if let Some(n) = state.tls_per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                state.tls_per_ip.remove(&ip);
            }
        }
        if let Some(relay) = state.core.remove(&self.client) {
            release_locked(&mut state, &self.shared, relay);
        }
        self.metrics.tls_connections.dec();
    }
}

/// Reads framed STUN/ChannelData from one TLS client until it closes, goes idle or sends garbage.
async fn tls_connection(shared: &Arc<Shared>, client: Client, tls: tokio_rustls::server::TlsStream<TcpStream>) {
    let (mut read, mut write) = tokio::io::split(tls);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(TLS_QUEUE);
    shared.state.lock().tls_clients.insert(client.addr, tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; wire::MAX_STREAM_FRAME];
    loop {
        let mut head = [0u8; 4];
        match tokio::time::timeout(TLS_IDLE, read.read_exact(&mut head)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        // `stream_frame_len` answers at most MAX_STREAM_FRAME, the buffer's size.
        let Some(len) = wire::stream_frame_len(head).filter(|n| *n <= buf.len()) else { break };
        buf[..4].copy_from_slice(&head);
        match tokio::time::timeout(TLS_IDLE, read.read_exact(&mut buf[4..len])).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        match dispatch(shared, client, &buf[..len]) {
            (Outgoing::Client(bytes), _) => {
                if tx.try_send(bytes).is_err() {
                    break;
                }
            }
            (Outgoing::Peer(socket, to), payload) => {
                let _ = socket.send_to(&buf[payload], to).await;
            }
            (Outgoing::Nothing, _) => {}
        }
    }
    writer.abort();
}
