//! The axum WebSocket loop around [`Session`]: frames in, actions out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::protocol::ServerMessage;
use crate::session::{Action, RESUME_WINDOW, Session};
use crate::{ModeratorOrder, Order, Signaling};

/// Frames above this are cut by the WebSocket layer itself (the session refuses
/// anything above `MAX_FRAME_BYTES` with a clear `frame_too_large` error first).
const WS_HARD_LIMIT: usize = 1024 * 1024;
/// A socket that has not joined within this time is closed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A joined session whose socket dropped, waiting for `resume`.
pub(crate) struct Parked {
    session: Session,
    rx: Option<UnboundedReceiver<sfu::SfuEvent>>,
}

impl Parked {
    pub(crate) fn user_id(&self) -> Option<u64> {
        self.session.user_id()
    }

    /// The channel whose room the parked session's participant is in.
    pub(crate) fn channel_id(&self) -> Option<u64> {
        self.session.participant().map(|(room, _)| room)
    }
}

/// The TCP peer's address when the server runs with connect info (the binary does); loopback otherwise.
pub(crate) struct PeerIp(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(PeerIp(ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))))
    }
}

pub(crate) async fn upgrade(
    PeerIp(ip): PeerIp,
    State(s): State<Arc<Signaling>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // Not a WebSocket upgrade: the contract's JSON error instead of axum's plain-text 400.
    let ws = match ws {
        Ok(ws) => ws,
        Err(why) => return http_error(why.status(), "invalid_upgrade", &format!("not a WebSocket upgrade: {why}")),
    };
    if let Some(limiter) = &s.connects
        && let Err(not_until) = {
            // Keeps the per-IP map small under a spread-out flood.
            if limiter.len() > 10_000 {
                limiter.retain_recent();
            }
            limiter.check_key(&ip)
        }
    {
        s.metrics.errors.with_label_values(&["rate_limited"]).inc();
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        let body =
            serde_json::json!({"code": "rate_limited", "message": "too many voice connections from this address"});
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], axum::Json(body))
            .into_response();
    }
    ws.max_message_size(WS_HARD_LIMIT).max_frame_size(WS_HARD_LIMIT).on_upgrade(move |socket| serve(socket, s))
}

fn new_session_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

async fn next_event(rx: &mut Option<UnboundedReceiver<sfu::SfuEvent>>) -> Option<sfu::SfuEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_order(orders: &mut Option<broadcast::Receiver<Order>>) -> Result<Order, RecvError> {
    match orders {
        Some(k) => k.recv().await,
        None => std::future::pending().await,
    }
}

async fn serve(socket: WebSocket, s: Arc<Signaling>) {
    s.metrics.sessions.inc();
    let (mut tx, mut frames) = socket.split();
    let ice = crate::ice::IceServers { fixed: s.config.ice_servers.clone(), turn: s.config.turn.clone() };
    let mut session = Session::new(Instant::now(), new_session_id(), ice);
    let mut rx: Option<UnboundedReceiver<sfu::SfuEvent>> = None;
    let join_deadline = tokio::time::sleep(JOIN_TIMEOUT);
    tokio::pin!(join_deadline);
    let mut join_started: Option<Instant> = None;
    let mut queue: VecDeque<Action> = VecDeque::new();
    let mut orders = Some(s.orders.subscribe());
    'conn: loop {
        let joined = session.is_joined();
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let now = Instant::now();
                    let actions = session.on_text(now, t.as_str(), &s.tokens);
                    if actions.iter().any(|a| matches!(a, Action::Join { .. })) {
                        join_started = Some(now);
                    }
                    queue.extend(actions);
                }
                Some(Ok(Message::Binary(_))) => queue.extend(session.on_binary()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break 'conn,
                Some(Ok(_)) => {}
            },
            ev = next_event(&mut rx) => match ev {
                Some(ev) => queue.extend(session.on_sfu_event(ev)),
                None => rx = None,
            },
            order = next_order(&mut orders) => match order {
                Ok(o) if o.concerns(&session) => match o {
                    Order::Kick(k) => queue.extend(session.kick(k.code, k.message)),
                    Order::CloseRoom { code, message, .. } => queue.extend(session.kick(code, message)),
                    Order::Moderate(m) => queue.extend(session.moderate(m.guild_id, m.action)),
                },
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "voice: a socket missed moderation orders"),
                Err(RecvError::Closed) => orders = None,
            },
            _ = &mut join_deadline, if !joined && join_started.is_none() => {
                let msg = ServerMessage::error("join_timeout", "send join within 10 seconds");
                s.metrics.errors.with_label_values(&["join_timeout"]).inc();
                if let Ok(text) = serde_json::to_string(&msg) {
                    let _ = tx.send(Message::Text(text.into())).await;
                }
                break 'conn;
            }
        }
        // Carry out every action even when the socket is gone, so that a voice
        // state or an SFU command queued behind a failed send is never lost.
        let mut socket_gone = false;
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Send(_) if socket_gone => {}
                Action::Send(msg) => {
                    match &msg {
                        ServerMessage::Error { code, .. } => {
                            s.metrics.errors.with_label_values(&[code.as_str()]).inc();
                        }
                        ServerMessage::Joined { .. } => {
                            s.metrics.joins.inc();
                            if let Some(t) = join_started.take() {
                                s.metrics.join_latency.observe(t.elapsed().as_secs_f64());
                            }
                        }
                        _ => {}
                    }
                    let Ok(text) = serde_json::to_string(&msg) else {
                        continue;
                    };
                    if tx.send(Message::Text(text.into())).await.is_err() {
                        socket_gone = true;
                    }
                }
                Action::Join { claims } => {
                    let (etx, erx) = unbounded_channel();
                    let sink: sfu::EventSink = Box::new(move |ev| {
                        let _ = etx.send(ev);
                    });
                    let rights = sfu::Rights { speak: claims.rights.speak, video: claims.rights.video };
                    match s.link.join(claims.channel_id, claims.user_id, rights, sink) {
                        Ok(p) => {
                            rx = Some(erx);
                            queue.extend(session.joined(Some(p)));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "voice join failed");
                            queue.extend(session.joined(None));
                        }
                    }
                }
                Action::Resume { session_id } => {
                    let parked = s.parked.lock().ok().and_then(|mut p| p.remove(&session_id));
                    match parked {
                        Some(p) => {
                            session = p.session;
                            rx = p.rx;
                            if let Some((_, pid)) = session.participant() {
                                queue.push_back(Action::Send(ServerMessage::Resumed {
                                    participant_id: pid.0.to_string(),
                                }));
                            }
                        }
                        None => queue.push_back(Action::Send(ServerMessage::error(
                            "unknown_session",
                            "no session to resume; join again",
                        ))),
                    }
                }
                Action::Sfu(cmd) => {
                    if let Some((room, pid)) = session.participant()
                        && let Err(e) = s.link.command(room, pid, cmd)
                    {
                        tracing::warn!(error = %e, "sfu command failed");
                    }
                }
                Action::VoiceState(change) => s.events.voice_state(change),
                Action::Close => {
                    if !socket_gone {
                        let _ = tx.send(Message::Close(None)).await;
                    }
                    socket_gone = true;
                }
            }
        }
        if socket_gone {
            break 'conn;
        }
    }
    s.metrics.sessions.dec();
    if session.is_joined() {
        park(&s, session, rx);
    }
}

/// Keep a dropped session for [`RESUME_WINDOW`], then leave the room.
fn park(s: &Arc<Signaling>, session: Session, rx: Option<UnboundedReceiver<sfu::SfuEvent>>) {
    let id = session.session_id().to_owned();
    if let Ok(mut p) = s.parked.lock() {
        p.insert(id.clone(), Parked { session, rx });
    }
    let s = s.clone();
    let window = s.config.resume_window.unwrap_or(RESUME_WINDOW);
    tokio::spawn(async move {
        tokio::time::sleep(window).await;
        let parked = s.parked.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(p) = parked {
            end_parked(&s, p);
        }
    });
}

/// A parked session's participant leaves the room and its voice state says "left".
pub(crate) fn end_parked(s: &Signaling, mut p: Parked) {
    let target = p.session.participant();
    for a in p.session.expire() {
        match a {
            Action::Sfu(cmd) => {
                if let Some((room, pid)) = target {
                    let _ = s.link.command(room, pid, cmd);
                }
            }
            Action::VoiceState(c) => s.events.voice_state(c),
            _ => {}
        }
    }
}

/// A moderator's order to a session parked for resume: the SFU applies a mute now (the session
/// learns it from the room's event when its client comes back); a move or a disconnect ends the
/// session (its voice state says "left"). Returns whether the session ended.
pub(crate) fn moderate_parked(s: &Signaling, p: &mut Parked, order: ModeratorOrder) -> bool {
    let target = p.session.participant();
    let mut ended = false;
    for a in p.session.moderate(order.guild_id, order.action) {
        match a {
            Action::Sfu(cmd) => {
                if let Some((room, pid)) = target {
                    let _ = s.link.command(room, pid, cmd);
                }
            }
            Action::VoiceState(change) => s.events.voice_state(change),
            Action::Close => ended = true,
            Action::Send(_) | Action::Join { .. } | Action::Resume { .. } => {}
        }
    }
    ended
}

/// An HTTP error in the shape of the API contract (`{code, message}`).
pub(crate) fn http_error(status: axum::http::StatusCode, code: &str, message: &str) -> Response {
    use axum::response::IntoResponse;
    (status, axum::Json(serde_json::json!({ "code": code, "message": message }))).into_response()
}
