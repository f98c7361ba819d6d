//! One gateway connection: HELLO, then IDENTIFY or RESUME, then heartbeats in and dispatches out.
//! Every wait has a deadline and every write a timeout, so no connection can hang the server.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use super::hub::{Kick, Outgoing, ResumeError, Session};
use super::protocol::{self, ClientFrame, close};
use crate::Chat;
use crate::credentials::new_token;
use crate::error::Error;
use crate::events::Payload;
use crate::http::extract::ClientIp;
use crate::service::accounts::Caller;

/// Frames written per flush when a backlog is queued.
const BATCH: usize = 64;

pub async fn handler(
    State(chat): State<Arc<Chat>>,
    ClientIp(ip): ClientIp,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Not a WebSocket upgrade: the contract's JSON error instead of axum's plain-text 400.
    let ws = match ws {
        Ok(ws) => ws,
        Err(why) => {
            return Error::bad_request("invalid_upgrade", format!("not a WebSocket upgrade: {why}")).into_response();
        }
    };
    if let Err(l) = chat.limits.gateway_connect(ip).await {
        return Error::RateLimited(l.0).into_response();
    }
    let max = chat.config.max_frame_bytes;
    // The read buffer is allocated up front for every connection and clients send small frames
    // (heartbeats); a larger frame grows it and is read 1 KiB per call. 1 KiB instead of 4 saved
    // ~3.6 KiB per idle connection.
    ws.max_message_size(max).max_frame_size(max).read_buffer_size(1024).write_buffer_size(4 * 1024).on_upgrade(
        move |socket| async move {
            chat.metrics.gateway_connections.inc();
            let code = Connection { chat: chat.clone(), socket, replaced: false }.run().await;
            chat.metrics.gateway_closes.with_label_values(&[&code.to_string()]).inc();
            chat.metrics.gateway_connections.dec();
        },
    )
}

struct Connection {
    chat: Arc<Chat>,
    socket: WebSocket,
    /// Set when another connection resumed this session: it is theirs now, do not detach it.
    replaced: bool,
}

/// How the connection ended (for the log and the metrics label).
type CloseCode = u16;

enum Start {
    Ready(Arc<Session>, mpsc::Receiver<Outgoing>),
    Closed(CloseCode),
}

impl Connection {
    async fn run(mut self) -> CloseCode {
        let interval = self.chat.config.heartbeat_interval;
        if self.send_text(protocol::hello_frame(interval.as_millis() as u64)).await.is_err() {
            return 1006;
        }
        // Boxed: the identify path's state (READY being built) would otherwise stay in this task's
        // future for the connection's whole life, ~0.9 KiB per idle connection.
        let (session, rx) = match Box::pin(self.authenticate()).await {
            Start::Ready(s, rx) => (s, rx),
            Start::Closed(code) => return code,
        };
        let code = self.serve(&session, rx).await;
        if !self.replaced {
            self.chat.hub.detach(&session);
        }
        code
    }

    /// Waits for IDENTIFY or RESUME (one heartbeat interval at most).
    async fn authenticate(&mut self) -> Start {
        let deadline = Instant::now() + self.chat.config.heartbeat_interval;
        loop {
            let text = match timeout(deadline.saturating_duration_since(Instant::now()), self.socket.recv()).await {
                Err(_) => return Start::Closed(self.close(close::SESSION_TIMED_OUT, "identify timed out").await),
                Ok(None) => return Start::Closed(1006),
                // Invalid UTF-8, an oversized frame or a protocol violation.
                Ok(Some(Err(_))) => return Start::Closed(self.close(close::DECODE_ERROR, "invalid frame").await),
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(Message::Binary(_)))) => {
                    return Start::Closed(self.close(close::DECODE_ERROR, "binary frames are not supported").await);
                }
                Ok(Some(Ok(Message::Close(_)))) => return Start::Closed(1000),
                Ok(Some(Ok(_))) => continue,
            };
            let frame = match protocol::parse_client_frame(text.as_str()) {
                Ok(f) => f,
                Err(e) => return Start::Closed(self.close(e.code, e.reason).await),
            };
            match frame {
                ClientFrame::Identify { token } => {
                    let Ok(caller) = self.chat.authenticate(&token).await else {
                        return Start::Closed(self.close(close::AUTHENTICATION_FAILED, "authentication failed").await);
                    };
                    return match self.identify(caller).await {
                        Ok(start) => start,
                        Err(e) => {
                            tracing::warn!(error = %e, "identify failed");
                            Start::Closed(self.close(close::UNKNOWN_ERROR, "could not load your state").await)
                        }
                    };
                }
                ClientFrame::Resume { token, session_id, seq } => {
                    let Ok(caller) = self.chat.authenticate(&token).await else {
                        return Start::Closed(self.close(close::AUTHENTICATION_FAILED, "authentication failed").await);
                    };
                    if let Some(bus) = self.chat.bus().cloned() {
                        match self.resume_from_stream(bus.as_ref(), &caller, session_id, seq).await {
                            Ok(Some(start)) => return start,
                            Ok(None) => {
                                if self.send_text(protocol::invalid_session_frame(false)).await.is_err() {
                                    return Start::Closed(1006);
                                }
                            }
                            Err(()) => return Start::Closed(1006),
                        }
                        continue;
                    }
                    match self.chat.hub.resume(&session_id, caller.user.id, seq) {
                        Ok(resumed) => {
                            resumed.session.set_login(caller.session_id);
                            for (s, payload) in &resumed.replay {
                                if self.send_text(protocol::dispatch_frame(*s, payload)).await.is_err() {
                                    return Start::Closed(1006);
                                }
                            }
                            #[derive(Serialize)]
                            struct Empty {}
                            self.chat.hub.send_to_session(&resumed.session, Payload::new("RESUMED", &Empty {}));
                            return Start::Ready(resumed.session, resumed.receiver);
                        }
                        Err(ResumeError::Unknown | ResumeError::TooOld) => {
                            // The client may IDENTIFY again on this connection.
                            if self.send_text(protocol::invalid_session_frame(false)).await.is_err() {
                                return Start::Closed(1006);
                            }
                        }
                    }
                }
                ClientFrame::Heartbeat { .. } => {
                    if self.send_text(protocol::heartbeat_ack_frame()).await.is_err() {
                        return Start::Closed(1006);
                    }
                }
                ClientFrame::PresenceUpdate { .. } => {
                    return Start::Closed(self.close(close::NOT_AUTHENTICATED, "identify first").await);
                }
            }
        }
    }

    async fn identify(&mut self, caller: Caller) -> Result<Start, Error> {
        let session_id = new_token();
        // Follow the guilds before building READY so nothing that happens meanwhile is lost; it is
        // held back and sent right after READY.
        let memberships = self.chat.memberships(caller.user.id).await?;
        let (session, rx) = self.chat.hub.register(session_id.clone(), caller.user.id, memberships);
        session.set_login(caller.session_id);
        if let Some(bus) = self.chat.bus()
            && let Err(e) = bus.remember_session(&session_id, caller.user.id).await
        {
            // The session works; only a RESUME on another node will not find it.
            tracing::warn!(error = %e, "could not record the gateway session in the cluster");
        }
        let ready = match self.chat.ready(&caller, session_id).await {
            Ok(ready) => ready,
            Err(e) => {
                self.chat.hub.detach(&session);
                return Err(e);
            }
        };
        session.send_ready(Payload::new("READY", &ready));
        Ok(Start::Ready(session, rx))
    }

    /// RESUME in a cluster, on whichever node: the session is known cluster-wide, the missed
    /// entries come from the stream, filtered by what the member may see now. Ok(None): the client
    /// must IDENTIFY again (unknown session, events no longer kept, stream unavailable); Err: the
    /// socket failed.
    async fn resume_from_stream(
        &mut self,
        bus: &dyn crate::bus::EventBus,
        caller: &Caller,
        session_id: String,
        seq: u64,
    ) -> Result<Option<Start>, ()> {
        match bus.session_user(&session_id).await {
            Ok(Some(user)) if user == caller.user.id => {}
            Ok(_) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "resume: the cluster does not answer");
                return Ok(None);
            }
        }
        let Ok(memberships) = self.chat.memberships(caller.user.id).await else { return Ok(None) };
        // Live entries are held from here on, so nothing falls between the replay and them.
        let (session, rx) = self.chat.hub.resume_from_stream(session_id.clone(), caller.user.id, memberships, seq);
        session.set_login(caller.session_id);
        let entries = match bus.since(super::hub::position_of(seq).saturating_sub(1)).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::info!(error = %e, "resume: cannot replay from the stream");
                self.chat.hub.detach(&session);
                return Ok(None);
            }
        };
        if entries.iter().any(|(_, e)| super::hub::replay_needs_identify(e, caller.user.id)) {
            // A guild joined or deleted meanwhile: only a fresh READY shows it right.
            self.chat.hub.detach(&session);
            return Ok(None);
        }
        let mut last = seq;
        for (position, event) in &entries {
            for (s, payload) in session.replayed(*position, event) {
                if s <= last {
                    continue;
                }
                last = s;
                if self.send_text(protocol::dispatch_frame(s, &payload)).await.is_err() {
                    self.chat.hub.detach(&session);
                    return Err(());
                }
            }
        }
        session.finish_stream_resume(last);
        if let Err(e) = bus.remember_session(&session_id, caller.user.id).await {
            tracing::warn!(error = %e, "could not refresh the gateway session in the cluster");
        }
        #[derive(Serialize)]
        struct Empty {}
        self.chat.hub.send_to_session(&session, Payload::new("RESUMED", &Empty {}));
        Ok(Some(Start::Ready(session, rx)))
    }

    async fn serve(&mut self, session: &Arc<Session>, mut rx: mpsc::Receiver<Outgoing>) -> CloseCode {
        let interval = self.chat.config.heartbeat_interval;
        // Clients heartbeat every interval; allow half an interval of jitter plus network delay.
        let grace = interval + interval / 2 + Duration::from_secs(2);
        let mut deadline = Instant::now() + grace;
        let mut last_check = Instant::now();
        let limiter = self.chat.limits.gateway_frame_limiter();
        loop {
            tokio::select! {
                biased;
                _ = session.kick_signal.notified() => {
                    if let Some(code) = self.on_kick(session).await { return code; }
                }
                out = rx.recv() => match out {
                    Some(first) => {
                        if self.write_batch(first, &mut rx).await.is_err() { return 1006; }
                    }
                    None => {
                        // The hub dropped our queue: slow consumer or replaced; the kick says which.
                        if let Some(code) = self.on_kick(session).await { return code; }
                        return self.close(close::SLOW_CONSUMER, "send queue overflow; resume").await;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return self.close(close::SESSION_TIMED_OUT, "heartbeat timed out").await;
                }
                msg = self.socket.recv() => {
                    let text = match msg {
                        None => return 1006,
                        Some(Err(_)) => return self.close(close::DECODE_ERROR, "invalid frame").await,
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Binary(_))) => return self.close(close::DECODE_ERROR, "binary frames are not supported").await,
                        Some(Ok(Message::Close(_))) => return 1000,
                        Some(Ok(_)) => continue,
                    };
                    if limiter.check().is_err() {
                        return self.close(close::RATE_LIMITED, "too many frames").await;
                    }
                    match protocol::parse_client_frame(text.as_str()) {
                        Ok(ClientFrame::Heartbeat { .. }) => {
                            deadline = Instant::now() + grace;
                            // About once per interval (a client heartbeating on time passes half an interval
                            // at every beat), however fast it heartbeats.
                            if last_check.elapsed() >= interval / 2 {
                                last_check = Instant::now();
                                if !login_still_valid(&self.chat, session).await {
                                    return self.close(close::AUTHENTICATION_FAILED, "session revoked").await;
                                }
                            }
                            if self.send_text(protocol::heartbeat_ack_frame()).await.is_err() { return 1006; }
                        }
                        Ok(ClientFrame::PresenceUpdate { status }) => self.chat.hub.set_status(session, status),
                        Ok(ClientFrame::Identify { .. } | ClientFrame::Resume { .. }) => {
                            return self.close(close::ALREADY_AUTHENTICATED, "already authenticated").await;
                        }
                        Err(e) => return self.close(e.code, e.reason).await,
                    }
                }
            }
        }
    }

    /// Acts on a kick; None if there was none (spurious wake-up).
    async fn on_kick(&mut self, session: &Session) -> Option<CloseCode> {
        Some(match session.take_kick()? {
            Kick::SlowConsumer => self.close(close::SLOW_CONSUMER, "send queue overflow; resume").await,
            Kick::Replaced => {
                self.replaced = true;
                self.close(close::UNKNOWN_ERROR, "session resumed elsewhere").await
            }
            Kick::Reconnect => {
                let _ = self.send_text(protocol::reconnect_frame()).await;
                self.close(1012, "server restarting; resume").await
            }
            Kick::LoggedOut => self.close(close::AUTHENTICATION_FAILED, "logged out").await,
        })
    }

    async fn write_batch(&mut self, first: Outgoing, rx: &mut mpsc::Receiver<Outgoing>) -> Result<(), ()> {
        let mut next = Some(first);
        let mut n = 0;
        while let Some(Outgoing::Dispatch(seq, payload)) = next.take() {
            let frame = Message::Text(protocol::dispatch_frame(seq, &payload).into());
            match timeout(self.chat.config.gateway_write_timeout, self.socket.feed(frame)).await {
                Ok(Ok(())) => {}
                _ => return Err(()),
            }
            n += 1;
            if n < BATCH {
                next = rx.try_recv().ok();
            }
        }
        match timeout(self.chat.config.gateway_write_timeout, self.socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    async fn send_text(&mut self, text: String) -> Result<(), ()> {
        match timeout(self.chat.config.gateway_write_timeout, self.socket.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> CloseCode {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = timeout(self.chat.config.gateway_write_timeout, self.socket.send(Message::Close(Some(frame)))).await;
        code
    }
}

/// Whether the login behind a session still stands (not revoked, user not disabled). A store that
/// does not answer is no reason to drop a working connection: it counts as valid.
async fn login_still_valid(chat: &Chat, session: &Session) -> bool {
    let Some(login) = session.login() else { return true };
    !matches!(chat.login_still_valid(session.user_id, login).await, Ok(false))
}
