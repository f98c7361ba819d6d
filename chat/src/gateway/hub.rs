//! The gateway hub: every gateway session of this node, which guilds each follows, and delivery of
//! dispatches to the sessions allowed to see them.
//!
//! Delivery never blocks: each session has a bounded queue; when it is full the session is detached
//! (its socket closes with 4010) and keeps recording into its replay buffer, so the client can resume
//! without loss. Sessions without a socket stay resumable for the resume window, then are dropped.
//!
//! In a cluster every event comes off the shared stream with its position, and a frame's `s` is
//! derived from that position ([`seq_of`]), so every node numbers a session's events alike and a
//! RESUME on any node replays from the stream ([`Hub::resume_from_stream`]) instead of a buffer here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, mpsc};

use super::protocol::Status;
use super::replay::{ReplayBuffer, TooOld};
use crate::events::{Audience, Dispatch, Effect, Event, Payload};
use crate::id::Id;
use crate::model::Member;

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Frames queued per connection before it counts as too slow.
    pub queue_len: usize,
    /// Dispatches kept per session for RESUME.
    pub replay_len: usize,
    /// How long a session without a socket stays resumable.
    pub resume_window: Duration,
    /// Cluster mode: sequence numbers come from the stream's positions, RESUME replays from the
    /// stream, and a session without a socket is forgotten at once.
    pub stream_positions: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig { queue_len: 512, replay_len: 1000, resume_window: Duration::from_secs(300), stream_positions: false }
    }
}

/// Bits of a sequence number below the stream position: the index of a payload within one entry
/// (a permission change tells one member several things). Positions stay below 2^37, so sequence
/// numbers stay exact in JavaScript (< 2^53).
const SUB_BITS: u32 = 16;

/// The sequence number of the `index`-th payload of the stream entry at `position`.
pub fn seq_of(position: u64, index: usize) -> u64 {
    (position << SUB_BITS) | (index as u64).min((1 << SUB_BITS) - 1)
}

/// The stream position a sequence number was derived from.
pub fn position_of(seq: u64) -> u64 {
    seq >> SUB_BITS
}

/// What a socket task receives from its session.
#[derive(Debug)]
pub enum Outgoing {
    Dispatch(u64, Arc<Payload>),
}

/// Why a socket must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The queue overflowed; resumable.
    SlowConsumer,
    /// Another connection resumed this session.
    Replaced,
    /// The server is shutting down; reconnect and resume.
    Reconnect,
    /// The login (token) this session was opened with was logged out or revoked; not resumable.
    LoggedOut,
}

/// One gateway session (survives reconnects within the resume window).
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub user_id: Id,
    state: Mutex<SessionState>,
    /// Wakes the socket task when it must close; the reason is in `state.kick`.
    pub kick_signal: Notify,
}

#[derive(Debug)]
struct SessionState {
    /// The last sequence number handed out.
    seq: u64,
    /// Whether `seq` counts (1, 2, 3 …) or follows the stream's positions (cluster).
    numbering: Numbering,
    replay: ReplayBuffer,
    outbox: Option<mpsc::Sender<Outgoing>>,
    /// Dispatches that arrived before READY (or a stream replay) was sent, with their stream
    /// sequence number in a cluster; they follow it.
    pending: Option<Vec<(Option<u64>, Arc<Payload>)>>,
    /// The guilds this session follows, with the member's current state there.
    members: HashMap<Id, Member>,
    detached_at: Option<Instant>,
    status: Status,
    kick: Option<Kick>,
    /// The login session (bearer token) that identified or last resumed this gateway session.
    login: Option<Id>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbering {
    Counted,
    Stream,
}

impl Session {
    /// Records which login (bearer token) the socket authenticated with, so logging it out closes it.
    pub fn set_login(&self, login: Id) {
        self.state.lock().login = Some(login);
    }

    /// The REST session (login) this gateway session was opened with.
    pub fn login(&self) -> Option<Id> {
        self.state.lock().login
    }

    pub fn take_kick(&self) -> Option<Kick> {
        self.state.lock().kick.take()
    }

    pub fn guild_ids(&self) -> Vec<Id> {
        self.state.lock().members.keys().copied().collect()
    }

    /// Queues a dispatch (or records it while detached). `at` is its stream sequence number in a
    /// cluster. Returns false if the session became detached because its queue is full.
    fn deliver(&self, st: &mut SessionState, payload: &Arc<Payload>, at: Option<u64>) -> bool {
        if let Some(pending) = st.pending.as_mut() {
            pending.push((at, payload.clone()));
            return true;
        }
        self.deliver_now(st, payload, at, true)
    }

    /// `replayable: false` for READY: it is large and per-session, and a client that never saw it
    /// must IDENTIFY again anyway.
    fn deliver_now(&self, st: &mut SessionState, payload: &Arc<Payload>, at: Option<u64>, replayable: bool) -> bool {
        let seq = match (st.numbering, at) {
            (Numbering::Counted, _) => st.seq + 1,
            // Already sent by a stream replay that ran ahead of this node's reader.
            (Numbering::Stream, Some(s)) if s <= st.seq => return true,
            (Numbering::Stream, Some(s)) => s,
            // READY and RESUMED take no position of their own.
            (Numbering::Stream, None) => st.seq,
        };
        st.seq = seq;
        if replayable && st.numbering == Numbering::Counted {
            st.replay.push(seq, payload.clone());
        }
        if let Some(tx) = &st.outbox
            && tx.try_send(Outgoing::Dispatch(seq, payload.clone())).is_err()
        {
            st.outbox = None;
            st.detached_at = Some(Instant::now());
            st.kick = Some(Kick::SlowConsumer);
            self.kick_signal.notify_one();
            return false;
        }
        true
    }

    /// Sends READY as sequence 1 (in a cluster: the stream position the session starts from),
    /// then whatever arrived while it was being built.
    pub fn send_ready(&self, ready: Arc<Payload>) {
        let mut st = self.state.lock();
        let pending = st.pending.take().unwrap_or_default();
        self.deliver_now(&mut st, &ready, None, false);
        for (at, p) in &pending {
            self.deliver_now(&mut st, p, *at, true);
        }
    }

    /// Ends a stream resume whose replay (written by the socket itself) went up to `last`: sends
    /// whatever arrived live meanwhile, skipping what the replay already covered.
    pub fn finish_stream_resume(&self, last: u64) {
        let mut st = self.state.lock();
        st.seq = st.seq.max(last);
        let pending = st.pending.take().unwrap_or_default();
        for (at, p) in &pending {
            self.deliver_now(&mut st, p, *at, true);
        }
    }

    /// What this session hears of an entry replayed from the stream, by the member states it follows
    /// now. A member removed meanwhile still hears of their own removal.
    pub fn replayed(&self, position: u64, event: &Event) -> Vec<(u64, Arc<Payload>)> {
        let st = self.state.lock();
        let removed_me = matches!(event, Event::Dispatch(Dispatch { effect: Some(Effect::MemberRemove { user_id, .. }), .. }) if *user_id == self.user_id);
        let told = if removed_me {
            match event {
                Event::Dispatch(d) => vec![d.payload.clone()],
                Event::Sight(_) => vec![],
            }
        } else {
            told(event, self.user_id, &st.members, Utc::now())
        };
        told.into_iter().enumerate().map(|(i, p)| (seq_of(position, i), p)).collect()
    }
}

/// Whether a replayed entry changes which guilds the user follows in a way a replay cannot show
/// (a guild joined, one deleted): such a RESUME is refused and the client identifies again.
pub fn replay_needs_identify(event: &Event, user_id: Id) -> bool {
    match event {
        Event::Dispatch(Dispatch { effect: Some(Effect::MemberUpsert(m)), .. }) => m.user_id == user_id,
        Event::Dispatch(Dispatch { effect: Some(Effect::GuildRemove(_)), .. }) => true,
        _ => false,
    }
}

/// Whether a session of `user_id` following `members` is in the audience.
fn hears(audience: &Audience, user_id: Id, members: &HashMap<Id, Member>, now: chrono::DateTime<Utc>) -> bool {
    match audience {
        Audience::Guild(g) => members.contains_key(g),
        Audience::Channel(scope) => members.get(&scope.guild_id).is_some_and(|m| scope.visible_to(m, now)),
        Audience::Users(users) => users.contains(&user_id),
        Audience::ChannelUnless { scope, unless } => members.get(&scope.guild_id).is_some_and(|m| {
            scope.visible_to(m, now)
                && !unless.as_ref().is_some_and(|u| u.guild_id == scope.guild_id && u.visible_to(m, now))
        }),
    }
}

/// What a session of `user_id` following `members` hears of an event.
fn told(event: &Event, user_id: Id, members: &HashMap<Id, Member>, now: chrono::DateTime<Utc>) -> Vec<Arc<Payload>> {
    match event {
        Event::Dispatch(d) => {
            if hears(&d.audience, user_id, members, now) {
                vec![d.payload.clone()]
            } else {
                vec![]
            }
        }
        Event::Sight(change) => {
            if change.only_user().is_some_and(|u| u != user_id) {
                return vec![];
            }
            members.get(&change.guild_id()).map(|m| change.tell(m, now)).unwrap_or_default()
        }
    }
}

#[derive(Debug, Default)]
struct Indexes {
    sessions: HashMap<String, Arc<Session>>,
    by_guild: HashMap<Id, Vec<Arc<Session>>>,
    by_user: HashMap<Id, Vec<Arc<Session>>>,
}

/// The result of a successful RESUME.
#[derive(Debug)]
pub struct Resumed {
    pub session: Arc<Session>,
    pub replay: Vec<(u64, Arc<Payload>)>,
    pub receiver: mpsc::Receiver<Outgoing>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ResumeError {
    /// No such session, another user's, or expired: start over with IDENTIFY.
    Unknown,
    /// The missed events are no longer kept.
    TooOld,
}

#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    idx: RwLock<Indexes>,
    /// The newest stream position delivered (cluster); written under the index lock so that a
    /// session registered at the same time starts exactly there.
    position: std::sync::atomic::AtomicU64,
    /// Presence changes the hub wants broadcast (user, status); drained by the chat service.
    presence_tx: mpsc::UnboundedSender<(Id, Status)>,
    presence_rx: Mutex<Option<mpsc::UnboundedReceiver<(Id, Status)>>>,
    pub delivered: prometheus::IntCounter,
    pub slow_consumers: prometheus::IntCounter,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        let (presence_tx, presence_rx) = mpsc::unbounded_channel();
        Hub {
            config,
            idx: RwLock::new(Indexes::default()),
            position: std::sync::atomic::AtomicU64::new(0),
            presence_tx,
            presence_rx: Mutex::new(Some(presence_rx)),
            delivered: prometheus::IntCounter::new("chorus_gateway_dispatches_total", "Dispatches queued to sessions")
                .expect("static metric definition"),
            slow_consumers: prometheus::IntCounter::new(
                "chorus_gateway_slow_consumers_total",
                "Connections cut off because their send queue overflowed",
            )
            .expect("static metric definition"),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Takes the stream of presence changes (once).
    pub fn presence_changes(&self) -> Option<mpsc::UnboundedReceiver<(Id, Status)>> {
        self.presence_rx.lock().take()
    }

    /// Registers a new session that follows `members`' guilds. Dispatches are held until READY.
    pub fn register(&self, id: String, user_id: Id, members: Vec<Member>) -> (Arc<Session>, mpsc::Receiver<Outgoing>) {
        self.register_at(id, user_id, members, None)
    }

    /// Cluster RESUME: a session that continues after the client's `seq`. Any session of this id
    /// still here is replaced. Live dispatches are held until [`Session::finish_stream_resume`],
    /// which sends the caller's replay from the stream first.
    pub fn resume_from_stream(
        &self,
        id: String,
        user_id: Id,
        members: Vec<Member>,
        seq: u64,
    ) -> (Arc<Session>, mpsc::Receiver<Outgoing>) {
        let old = self.idx.read().sessions.get(&id).cloned();
        if let Some(old) = old {
            old.state.lock().kick = Some(Kick::Replaced);
            old.kick_signal.notify_one();
            self.remove(&old);
        }
        self.register_at(id, user_id, members, Some(seq))
    }

    /// Where this node's stream reader starts (cluster start-up, before any session): READY then
    /// stands for the stream as it is, not for position 0.
    pub fn start_stream_at(&self, position: u64) {
        self.position.fetch_max(position, std::sync::atomic::Ordering::AcqRel);
    }

    /// The newest stream position this node has delivered.
    pub fn stream_position(&self) -> u64 {
        self.position.load(std::sync::atomic::Ordering::Acquire)
    }

    fn register_at(
        &self,
        id: String,
        user_id: Id,
        members: Vec<Member>,
        resume_after: Option<u64>,
    ) -> (Arc<Session>, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(self.config.queue_len);
        let numbering = if self.config.stream_positions { Numbering::Stream } else { Numbering::Counted };
        let session = Arc::new(Session {
            id: id.clone(),
            user_id,
            state: Mutex::new(SessionState {
                seq: resume_after.unwrap_or(0),
                numbering,
                replay: ReplayBuffer::new(if numbering == Numbering::Counted { self.config.replay_len } else { 1 }),
                outbox: Some(tx),
                pending: Some(Vec::new()),
                members: members.iter().map(|m| (m.guild_id, m.clone())).collect(),
                detached_at: None,
                status: Status::Online,
                kick: None,
                login: None,
            }),
            kick_signal: Notify::new(),
        });
        let came_online = {
            let mut idx = self.idx.write();
            if numbering == Numbering::Stream && resume_after.is_none() {
                // Under the write lock, so no entry is half delivered: READY stands for everything
                // up to here, and everything after reaches this session.
                let at = self.position.load(std::sync::atomic::Ordering::Acquire);
                session.state.lock().seq = seq_of(at, usize::MAX);
            }
            for m in &members {
                idx.by_guild.entry(m.guild_id).or_default().push(session.clone());
            }
            let mine = idx.by_user.entry(user_id).or_default();
            let was_online = mine.iter().any(|s| s.state.lock().outbox.is_some());
            mine.push(session.clone());
            idx.sessions.insert(id, session.clone());
            !was_online
        };
        if came_online {
            let _ = self.presence_tx.send((user_id, Status::Online));
        }
        (session, rx)
    }

    /// Attaches a new socket to an existing session and returns what it missed after `seq`.
    pub fn resume(&self, session_id: &str, user_id: Id, seq: u64) -> Result<Resumed, ResumeError> {
        let session = self.idx.read().sessions.get(session_id).cloned().ok_or(ResumeError::Unknown)?;
        if session.user_id != user_id {
            return Err(ResumeError::Unknown);
        }
        let (tx, rx) = mpsc::channel(self.config.queue_len);
        let mut st = session.state.lock();
        if st.detached_at.is_some_and(|t| t.elapsed() > self.config.resume_window) {
            return Err(ResumeError::Unknown);
        }
        let replay = match st.replay.since(seq, st.seq) {
            Ok(r) => r,
            Err(TooOld) => {
                drop(st);
                self.remove(&session);
                return Err(ResumeError::TooOld);
            }
        };
        if st.outbox.is_some() {
            // Someone still holds the old socket: this connection takes the session over.
            st.kick = Some(Kick::Replaced);
            session.kick_signal.notify_one();
        }
        st.outbox = Some(tx);
        st.detached_at = None;
        st.pending = None;
        drop(st);
        Ok(Resumed { session, replay, receiver: rx })
    }

    /// Queues RESUMED (after the replay) with the next sequence number (in a cluster: the last).
    pub fn send_to_session(&self, session: &Session, payload: Arc<Payload>) {
        let mut st = session.state.lock();
        session.deliver(&mut st, &payload, None);
    }

    /// The socket of this session closed. The session stays resumable for the resume window.
    pub fn detach(&self, session: &Arc<Session>) {
        {
            let mut st = session.state.lock();
            st.outbox = None;
            st.pending = None;
            if st.detached_at.is_none() {
                st.detached_at = Some(Instant::now());
            }
        }
        if self.config.stream_positions {
            // A cluster resumes from the stream, on whichever node: nothing to keep here.
            self.remove(session);
        }
        let still_online = self
            .idx
            .read()
            .by_user
            .get(&session.user_id)
            .is_some_and(|v| v.iter().any(|s| s.state.lock().outbox.is_some()));
        if !still_online {
            let _ = self.presence_tx.send((session.user_id, Status::Offline));
        }
    }

    /// Sets the presence a session shows (op 3). Broadcast if the user's status changed.
    pub fn set_status(&self, session: &Session, status: Status) {
        let changed = {
            let mut st = session.state.lock();
            let changed = st.status != status;
            st.status = status.clone();
            changed
        };
        if changed {
            let _ = self.presence_tx.send((session.user_id, status));
        }
    }

    /// Tells every connected socket to close with RECONNECT (shutdown).
    pub fn reconnect_all(&self) {
        let sessions: Vec<_> = self.idx.read().sessions.values().cloned().collect();
        for s in sessions {
            s.state.lock().kick = Some(Kick::Reconnect);
            s.kick_signal.notify_one();
        }
    }

    /// The stream's positions start over at `position` (Redis lost its data) or skipped entries
    /// this node never read: every session here has a hole and is told to reconnect; its RESUME
    /// will fail and the client identifies again.
    pub fn reset_stream(&self, position: u64) {
        self.position.store(position, std::sync::atomic::Ordering::Release);
        self.reconnect_all();
    }

    /// Closes every session opened with this login (logout or session revoked) and forgets it.
    pub fn log_out(&self, login: Id) {
        let sessions: Vec<_> =
            self.idx.read().sessions.values().filter(|s| s.state.lock().login == Some(login)).cloned().collect();
        for s in sessions {
            s.state.lock().kick = Some(Kick::LoggedOut);
            s.kick_signal.notify_one();
            self.remove(&s);
        }
    }

    /// Whether any socket of the user is connected.
    pub fn is_online(&self, user_id: Id) -> bool {
        self.idx.read().by_user.get(&user_id).is_some_and(|v| v.iter().any(|s| s.state.lock().outbox.is_some()))
    }

    /// The status the user shows: the "most present" of their connected sessions.
    pub fn status_of(&self, user_id: Id) -> Status {
        let idx = self.idx.read();
        let mut best = Status::Offline;
        for s in idx.by_user.get(&user_id).into_iter().flatten() {
            let st = s.state.lock();
            if st.outbox.is_none() {
                continue;
            }
            best = match (&best, &st.status) {
                (_, Status::Online) => Status::Online,
                (Status::Offline, other) => other.clone(),
                (b, _) => b.clone(),
            };
        }
        best
    }

    /// Users following the guild with a connected socket, with their status (one entry per user).
    pub fn online_in_guild(&self, guild_id: Id) -> Vec<(Id, Status)> {
        let users: Vec<Id> = {
            let idx = self.idx.read();
            let mut u: Vec<Id> = idx
                .by_guild
                .get(&guild_id)
                .into_iter()
                .flatten()
                .filter(|s| s.state.lock().outbox.is_some())
                .map(|s| s.user_id)
                .collect();
            u.sort_unstable();
            u.dedup();
            u
        };
        users.into_iter().map(|u| (u, self.status_of(u))).collect()
    }

    /// Drops sessions detached for longer than the resume window.
    pub fn sweep(&self) {
        let expired: Vec<_> = self
            .idx
            .read()
            .sessions
            .values()
            .filter(|s| s.state.lock().detached_at.is_some_and(|t| t.elapsed() > self.config.resume_window))
            .cloned()
            .collect();
        for s in expired {
            self.remove(&s);
        }
    }

    fn remove(&self, session: &Arc<Session>) {
        let guilds = session.guild_ids();
        let mut idx = self.idx.write();
        // A session that took this id over (RESUME) is not this one's to remove.
        if idx.sessions.get(&session.id).is_some_and(|s| Arc::ptr_eq(s, session)) {
            idx.sessions.remove(&session.id);
        }
        for g in guilds {
            if let Some(v) = idx.by_guild.get_mut(&g) {
                v.retain(|s| !Arc::ptr_eq(s, session));
                if v.is_empty() {
                    idx.by_guild.remove(&g);
                }
            }
        }
        if let Some(v) = idx.by_user.get_mut(&session.user_id) {
            v.retain(|s| !Arc::ptr_eq(s, session));
            if v.is_empty() {
                idx.by_user.remove(&session.user_id);
            }
        }
    }

    fn apply(&self, effect: &Effect) {
        match effect {
            Effect::MemberUpsert(member) => {
                let sessions: Vec<_> = self.idx.read().by_user.get(&member.user_id).cloned().unwrap_or_default();
                for s in &sessions {
                    let newly = s.state.lock().members.insert(member.guild_id, member.clone()).is_none();
                    if newly {
                        self.idx.write().by_guild.entry(member.guild_id).or_default().push(s.clone());
                    }
                }
            }
            Effect::MemberRemove { guild_id, user_id } => {
                let sessions: Vec<_> = self.idx.read().by_user.get(user_id).cloned().unwrap_or_default();
                for s in &sessions {
                    s.state.lock().members.remove(guild_id);
                }
                let mut idx = self.idx.write();
                if let Some(v) = idx.by_guild.get_mut(guild_id) {
                    v.retain(|s| s.user_id != *user_id);
                }
            }
            Effect::GuildRemove(guild_id) => {
                let sessions = self.idx.write().by_guild.remove(guild_id).unwrap_or_default();
                for s in sessions {
                    s.state.lock().members.remove(guild_id);
                }
            }
            Effect::VoiceOrder(_) => {}
            Effect::RoleRemove { guild_id, role_id } => {
                let sessions: Vec<_> = self.idx.read().by_guild.get(guild_id).cloned().unwrap_or_default();
                for s in sessions {
                    if let Some(m) = s.state.lock().members.get_mut(guild_id) {
                        m.roles.retain(|r| r != role_id);
                    }
                }
            }
        }
    }

    /// Queues the event to every session allowed to see it, applying its effect on the way: a member
    /// who joins hears of it (applied before delivery), one who leaves still does (applied after).
    /// `position` is the event's place in the cluster's stream (None on a single node).
    pub fn publish(&self, event: &Event, position: Option<u64>) {
        let effect = match event {
            Event::Dispatch(d) => d.effect.as_ref(),
            Event::Sight(_) => None,
        };
        if let Some(effect @ Effect::MemberUpsert(_)) = effect {
            self.apply(effect);
        }
        match event {
            Event::Dispatch(d) => self.deliver(d, position),
            Event::Sight(change) => {
                self.publish_per_member(change.guild_id(), change.only_user(), position, |m| change.tell(m, Utc::now()))
            }
        }
        if let Some(effect @ (Effect::MemberRemove { .. } | Effect::GuildRemove(_) | Effect::RoleRemove { .. })) =
            effect
        {
            self.apply(effect);
        }
    }

    fn advance(&self, position: Option<u64>) {
        if let Some(p) = position {
            self.position.fetch_max(p, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// Delivers to each session following `guild_id` (only `only_user`'s sessions, when given) what
    /// `tell` returns for the member that session follows the guild as. Used after a permission
    /// change, where what a session must hear depends on what its member could see before and after.
    fn publish_per_member(
        &self,
        guild_id: Id,
        only_user: Option<Id>,
        position: Option<u64>,
        mut tell: impl FnMut(&Member) -> Vec<Arc<Payload>>,
    ) {
        let mut delivered = 0u64;
        let mut slow = 0u64;
        let idx = self.idx.read();
        self.advance(position);
        for s in idx.by_guild.get(&guild_id).into_iter().flatten() {
            if only_user.is_some_and(|u| u != s.user_id) {
                continue;
            }
            let mut st = s.state.lock();
            let Some(member) = st.members.get(&guild_id) else { continue };
            for (i, payload) in tell(member).iter().enumerate() {
                if s.deliver(&mut st, payload, position.map(|p| seq_of(p, i))) {
                    delivered += 1;
                } else {
                    slow += 1;
                }
            }
        }
        drop(idx);
        self.delivered.inc_by(delivered);
        self.slow_consumers.inc_by(slow);
    }

    fn deliver(&self, dispatch: &Dispatch, position: Option<u64>) {
        let now = Utc::now();
        let at = position.map(|p| seq_of(p, 0));
        let mut delivered = 0u64;
        let mut slow = 0u64;
        let mut send = |s: &Session, st: &mut SessionState| {
            if s.deliver(st, &dispatch.payload, at) {
                delivered += 1;
            } else {
                slow += 1;
            }
        };
        let idx = self.idx.read();
        self.advance(position);
        match &dispatch.audience {
            Audience::Users(users) => {
                for u in users {
                    for s in idx.by_user.get(u).into_iter().flatten() {
                        let mut st = s.state.lock();
                        send(s, &mut st);
                    }
                }
            }
            Audience::Guild(guild_id) => self.deliver_in_guild(&idx, *guild_id, &dispatch.audience, now, &mut send),
            Audience::Channel(scope) | Audience::ChannelUnless { scope, .. } => {
                self.deliver_in_guild(&idx, scope.guild_id, &dispatch.audience, now, &mut send)
            }
        }
        drop(idx);
        self.delivered.inc_by(delivered);
        self.slow_consumers.inc_by(slow);
    }

    fn deliver_in_guild(
        &self,
        idx: &Indexes,
        guild_id: Id,
        audience: &Audience,
        now: chrono::DateTime<Utc>,
        send: &mut impl FnMut(&Session, &mut SessionState),
    ) {
        for s in idx.by_guild.get(&guild_id).into_iter().flatten() {
            let mut st = s.state.lock();
            if hears(audience, s.user_id, &st.members, now) {
                send(s, &mut st);
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ChannelScope;
    use crate::model::{Channel, ChannelKind, Overwrite, OverwriteKind, Role};
    use crate::permissions::Permissions;

    const G: Id = Id::from_raw(10);

    fn member(user: u64) -> Member {
        Member {
            guild_id: G,
            user_id: Id::from_raw(user),
            nick: None,
            roles: vec![],
            joined_at: Utc::now(),
            timed_out_until: None,
            mute: false,
            deaf: false,
        }
    }

    fn event(n: u32) -> Event {
        Dispatch::new("TEST", &n, Audience::Guild(G)).into()
    }

    fn hub(queue_len: usize) -> Hub {
        Hub::new(HubConfig {
            queue_len,
            replay_len: 100,
            resume_window: Duration::from_secs(60),
            stream_positions: false,
        })
    }

    fn stream_hub() -> Hub {
        Hub::new(HubConfig { stream_positions: true, ..HubConfig::default() })
    }

    fn drain(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<(u64, String)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|Outgoing::Dispatch(seq, p)| (seq, format!("{}{}", p.name, p.data)))
            .collect()
    }

    fn ready(s: &Session) {
        s.send_ready(Arc::new(Payload { name: "READY", data: "{}".into() }));
    }

    #[test]
    fn events_held_back_until_ready_follow_it_in_order() {
        let h = hub(16);
        let (s, mut rx) = h.register("s".into(), Id::from_raw(1), vec![member(1)]);
        h.publish(&event(1), None);
        ready(&s);
        h.publish(&event(2), None);
        let got: Vec<(u64, String)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|Outgoing::Dispatch(seq, p)| (seq, format!("{}{}", p.name, p.data)))
            .collect();
        assert_eq!(got, vec![(1, "READY{}".into()), (2, "TEST1".into()), (3, "TEST2".into())]);
    }

    #[test]
    fn a_full_queue_detaches_the_session_and_keeps_recording_for_resume() {
        let h = hub(2);
        let (s, _rx) = h.register("s".into(), Id::from_raw(1), vec![member(1)]);
        ready(&s);
        for n in 0..10 {
            h.publish(&event(n), None);
        }
        assert_eq!(s.take_kick(), Some(Kick::SlowConsumer));
        assert_eq!(h.slow_consumers.get(), 1, "cut off once, not once per event");
        let resumed = h.resume("s", Id::from_raw(1), 1).expect("resumable");
        let seqs: Vec<u64> = resumed.replay.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (2..=11).collect::<Vec<_>>());
    }

    #[test]
    fn resume_by_another_user_is_refused() {
        let h = hub(8);
        let (s, _rx) = h.register("s".into(), Id::from_raw(1), vec![member(1)]);
        ready(&s);
        h.detach(&s);
        assert_eq!(h.resume("s", Id::from_raw(2), 0).err(), Some(ResumeError::Unknown));
        assert_eq!(h.resume("nope", Id::from_raw(1), 0).err(), Some(ResumeError::Unknown));
    }

    #[test]
    fn channel_events_reach_only_members_who_can_view() {
        let h = hub(8);
        let (a, mut rx_a) = h.register("a".into(), Id::from_raw(1), vec![member(1)]);
        let (b, mut rx_b) = h.register("b".into(), Id::from_raw(2), vec![member(2)]);
        ready(&a);
        ready(&b);
        let _ = (rx_a.try_recv(), rx_b.try_recv());
        let everyone = Role {
            id: G,
            guild_id: G,
            name: "@everyone".into(),
            permissions: Permissions::DEFAULT_EVERYONE,
            position: 0,
            color: 0,
            hoist: false,
            mentionable: false,
        };
        let channel = Channel {
            id: Id::from_raw(50),
            guild_id: Some(G),
            name: "secret".into(),
            kind: ChannelKind::Text,
            parent_id: None,
            position: 0,
            topic: None,
            overwrites: vec![
                Overwrite {
                    id: G,
                    kind: OverwriteKind::Role,
                    allow: Permissions::empty(),
                    deny: Permissions::VIEW_CHANNEL,
                },
                Overwrite {
                    id: Id::from_raw(1),
                    kind: OverwriteKind::Member,
                    allow: Permissions::VIEW_CHANNEL,
                    deny: Permissions::empty(),
                },
            ],
            recipients: vec![],
            last_message_id: None,
            rate_limit_per_user: 0,
        };
        let scope = Arc::new(ChannelScope { guild_id: G, owner_id: Id::from_raw(99), roles: vec![everyone], channel });
        h.publish(&Dispatch::new("MESSAGE_CREATE", &1, Audience::Channel(scope)).into(), None);
        assert!(rx_a.try_recv().is_ok(), "a may view");
        assert!(rx_b.try_recv().is_err(), "b may not");
    }

    #[test]
    fn a_member_who_leaves_hears_of_it_and_nothing_after() {
        let h = hub(8);
        let (s, mut rx) = h.register("s".into(), Id::from_raw(1), vec![member(1)]);
        ready(&s);
        let _ = rx.try_recv();
        let leave = Dispatch::new("TEST", &1, Audience::Guild(G))
            .with_effect(Effect::MemberRemove { guild_id: G, user_id: Id::from_raw(1) });
        h.publish(&leave.into(), None);
        assert!(rx.try_recv().is_ok(), "the removal itself is delivered");
        h.publish(&event(2), None);
        assert!(rx.try_recv().is_err(), "later guild events are not");
    }

    #[test]
    fn in_a_cluster_sequence_numbers_follow_the_stream_position() {
        let h = stream_hub();
        h.publish(&event(0), Some(7));
        let (s, mut rx) = h.register("s".into(), Id::from_raw(1), vec![member(1)]);
        ready(&s);
        h.publish(&event(1), Some(8));
        h.publish(&event(2), Some(11));
        assert_eq!(
            drain(&mut rx),
            vec![
                (seq_of(7, usize::MAX), "READY{}".into()),
                (seq_of(8, 0), "TEST1".into()),
                (seq_of(11, 0), "TEST2".into())
            ],
            "READY stands for position 7; gaps (entries for others) are allowed"
        );
        assert!(seq_of(1 << 36, usize::MAX) < 1 << 53, "exact in JavaScript");
    }

    #[test]
    fn a_stream_resume_sends_live_entries_the_replay_did_not_cover() {
        let h = stream_hub();
        let (s, mut rx) = h.resume_from_stream("s".into(), Id::from_raw(1), vec![member(1)], seq_of(3, 0));
        // The reader delivers 4 and 5 while the socket replays 4 from the stream.
        h.publish(&event(4), Some(4));
        h.publish(&event(5), Some(5));
        s.finish_stream_resume(seq_of(4, 0));
        assert_eq!(drain(&mut rx), vec![(seq_of(5, 0), "TEST5".into())]);
        h.publish(&event(5), Some(5));
        assert!(drain(&mut rx).is_empty(), "an entry is never sent twice");
    }

    #[test]
    fn a_stream_resume_replaces_the_session_still_held_here() {
        let h = stream_hub();
        let (old, _rx) = h.register("s".into(), Id::from_raw(1), vec![member(1)]);
        ready(&old);
        let (_new, _rx2) = h.resume_from_stream("s".into(), Id::from_raw(1), vec![member(1)], 0);
        assert_eq!(old.take_kick(), Some(Kick::Replaced));
    }

    #[test]
    fn a_replayed_removal_reaches_the_removed_member() {
        let h = stream_hub();
        let (s, _rx) = h.resume_from_stream("s".into(), Id::from_raw(1), vec![], 0);
        let leave = Dispatch::new("GUILD_MEMBER_REMOVE", &1, Audience::Guild(G))
            .with_effect(Effect::MemberRemove { guild_id: G, user_id: Id::from_raw(1) });
        assert_eq!(s.replayed(9, &leave.into()).len(), 1, "no longer a member, still told");
        assert!(s.replayed(10, &event(3)).is_empty(), "other events of that guild are not");
    }

    #[test]
    fn in_a_cluster_a_closed_session_is_forgotten_here() {
        let h = stream_hub();
        let (s, _rx) = h.register("s".into(), Id::from_raw(1), vec![member(1)]);
        ready(&s);
        h.detach(&s);
        assert_eq!(h.resume("s", Id::from_raw(1), 0).err(), Some(ResumeError::Unknown));
    }

    #[test]
    fn a_replaced_sessions_late_detach_leaves_its_successor_in_place() {
        let h = stream_hub();
        let (old, _rx) = h.register("s".into(), Id::from_raw(1), vec![member(1)]);
        ready(&old);
        let (new, _rx2) = h.resume_from_stream("s".into(), Id::from_raw(1), vec![member(1)], 0);
        // The old socket notices only now and detaches its (old) session.
        h.detach(&old);
        h.reconnect_all();
        assert_eq!(new.take_kick(), Some(Kick::Reconnect), "the successor is still known to the hub");
    }

    #[test]
    fn a_deleted_role_is_gone_from_the_members_who_held_it() {
        let h = hub(8);
        let role = Id::from_raw(77);
        let (s, mut rx) = h.register("s".into(), Id::from_raw(1), vec![Member { roles: vec![role], ..member(1) }]);
        ready(&s);
        let _ = rx.try_recv();
        let gone = Dispatch::new("GUILD_ROLE_DELETE", &1, Audience::Users(vec![]))
            .with_effect(Effect::RoleRemove { guild_id: G, role_id: role });
        h.publish(&gone.into(), None);
        assert!(s.state.lock().members[&G].roles.is_empty());
        assert!(rx.try_recv().is_err(), "nobody is told through this entry");
    }
}
