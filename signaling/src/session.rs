//! One `/voice` connection as a Sans-IO state machine.
//!
//! The socket loop feeds it text frames, SFU events and the time, and carries out the
//! [`Action`]s it returns. It holds no socket and spawns nothing, so every rule here
//! (join first, rights, rate limits, error codes) is testable without a network.

use std::time::{Duration, Instant};

use sfu::{Command, LeaveReason, ParticipantId, ParticipantInfo, Preference, SfuEvent, TrackId, TrackInfo};

use crate::ice::IceServers;
use crate::protocol::{self, ClientMessage, ParticipantJson, ServerMessage, TrackJson};
use crate::token::{VoiceClaims, VoiceTokens};
use crate::{Moderation, VoiceStateChange};

/// Largest text frame accepted, in bytes (an SDP with simulcast is ~10 KiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Sustained messages per second per connection, and the burst above it.
const RATE_PER_SEC: f64 = 20.0;
const RATE_BURST: f64 = 60.0;

/// What the socket loop must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send(ServerMessage),
    /// Put the participant in the SFU room; report the id with [`Session::joined`].
    Join {
        claims: VoiceClaims,
    },
    /// Re-attach the parked session with this id.
    Resume {
        session_id: String,
    },
    Sfu(Command),
    VoiceState(VoiceStateChange),
    /// Close the socket (after sending what came before).
    Close,
}

#[derive(Debug)]
enum State {
    AwaitingJoin,
    Joining { claims: VoiceClaims },
    Joined { claims: VoiceClaims, participant: ParticipantId },
    Closed,
}

#[derive(Debug)]
pub struct Session {
    state: State,
    session_id: String,
    ice_servers: IceServers,
    tokens: f64,
    last_refill: Instant,
    muted: bool,
    deafened: bool,
    server_muted: bool,
    server_deafened: bool,
    /// Room and participant once joined; kept after closing so a final `leave`
    /// still reaches the SFU.
    target: Option<(u64, ParticipantId)>,
}

fn id(p: ParticipantId) -> String {
    p.0.to_string()
}

fn track_json(t: &TrackInfo) -> TrackJson {
    TrackJson {
        track_id: t.track_id.0.to_string(),
        participant_id: id(t.participant_id),
        kind: t.kind.as_str().into(),
        simulcast: t.simulcast,
    }
}

fn participant_json(p: &ParticipantInfo) -> ParticipantJson {
    ParticipantJson {
        participant_id: id(p.participant_id),
        user_id: p.user_id.to_string(),
        tracks: p.tracks.iter().map(track_json).collect(),
        muted: p.muted,
        deafened: p.deafened,
        server_muted: p.server_muted,
        server_deafened: p.server_deafened,
    }
}

fn err(code: &str, message: impl Into<String>) -> Action {
    Action::Send(ServerMessage::error(code, message))
}

impl Session {
    pub fn new(now: Instant, session_id: String, ice_servers: IceServers) -> Self {
        Session {
            state: State::AwaitingJoin,
            session_id,
            ice_servers,
            tokens: RATE_BURST,
            last_refill: now,
            muted: false,
            deafened: false,
            server_muted: false,
            server_deafened: false,
            target: None,
        }
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The room and participant, once joined (also after leaving).
    pub fn participant(&self) -> Option<(u64, ParticipantId)> {
        self.target
    }

    pub fn is_joined(&self) -> bool {
        matches!(self.state, State::Joined { .. })
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The user the token named, once `join` was accepted (also after leaving).
    pub fn user_id(&self) -> Option<u64> {
        match &self.state {
            State::Joining { claims } | State::Joined { claims, .. } => Some(claims.user_id),
            State::AwaitingJoin | State::Closed => None,
        }
    }

    /// The operator ended this user's voice (an account disabled): the client is told why, the
    /// participant leaves the room, and the socket closes. Only a joined session has anything to
    /// end (the socket loop completes a join before it looks at anything else).
    pub fn kick(&mut self, code: &str, message: &str) -> Vec<Action> {
        let State::Joined { claims, .. } = self.state else {
            return Vec::new();
        };
        let change = self.state_change(&claims, false);
        self.state = State::Closed;
        vec![err(code, message), Action::Sfu(Command::Leave), Action::VoiceState(change), Action::Close]
    }

    /// A moderator's order about this user's call in `guild_id` (other guilds' orders do nothing).
    pub fn moderate(&mut self, guild_id: u64, action: Moderation) -> Vec<Action> {
        let State::Joined { claims, participant } = self.state else {
            return Vec::new();
        };
        if claims.guild_id != Some(guild_id) {
            return Vec::new();
        }
        match action {
            Moderation::Mute { muted, deafened } => vec![
                Action::Sfu(Command::ServerMute { target: participant, muted }),
                Action::Sfu(Command::ServerDeafen { target: participant, deafened }),
            ],
            Moderation::Move { channel_id } if channel_id == claims.channel_id => Vec::new(),
            Moderation::Move { channel_id } => {
                let change = self.state_change(&claims, false);
                self.state = State::Closed;
                vec![
                    Action::Send(ServerMessage::Moved { channel_id: channel_id.to_string() }),
                    Action::Sfu(Command::Leave),
                    Action::VoiceState(change),
                    Action::Close,
                ]
            }
            Moderation::Disconnect => self.kick("disconnected", "a moderator disconnected you from voice"),
        }
    }

    fn rate_ok(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last_refill).as_secs_f64();
        self.last_refill = now;
        self.tokens = (self.tokens + dt * RATE_PER_SEC).min(RATE_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn state_change(&self, claims: &VoiceClaims, in_channel: bool) -> VoiceStateChange {
        VoiceStateChange {
            user_id: claims.user_id,
            guild_id: claims.guild_id,
            channel_id: in_channel.then_some(claims.channel_id),
            self_mute: self.muted,
            self_deaf: self.deafened,
            server_mute: self.server_muted,
            server_deaf: self.server_deafened,
        }
    }

    /// A binary frame: not part of the protocol.
    pub fn on_binary(&mut self) -> Vec<Action> {
        vec![err("binary_not_supported", "send JSON text frames")]
    }

    /// A text frame from the client.
    pub fn on_text(&mut self, now: Instant, text: &str, tokens: &VoiceTokens) -> Vec<Action> {
        if self.is_closed() {
            return Vec::new();
        }
        if text.len() > MAX_FRAME_BYTES {
            return vec![err("frame_too_large", format!("frames are limited to {MAX_FRAME_BYTES} bytes"))];
        }
        if !self.rate_ok(now) {
            return vec![err("rate_limited", "too many messages; slow down")];
        }
        let msg = match protocol::parse(text) {
            Ok(m) => m,
            Err(e) => return vec![err(e.code(), e.to_string())],
        };
        match (&self.state, msg) {
            (_, ClientMessage::Ping) => vec![Action::Send(ServerMessage::Pong)],
            (State::AwaitingJoin, ClientMessage::Join { token, channel_id }) => {
                let expected = match channel_id.map(|c| c.parse::<u64>()).transpose() {
                    Ok(c) => c,
                    Err(_) => return vec![err("bad_message", "channel_id is not an id")],
                };
                match tokens.verify(&token, expected) {
                    Ok(claims) => {
                        self.state = State::Joining { claims };
                        vec![Action::Join { claims }]
                    }
                    Err(e) => {
                        self.state = State::Closed;
                        vec![err(e.code(), e.to_string()), Action::Close]
                    }
                }
            }
            (State::AwaitingJoin, ClientMessage::Resume { session_id }) => {
                vec![Action::Resume { session_id }]
            }
            (State::AwaitingJoin, _) => vec![err("not_joined", "send join first")],
            (State::Joining { .. }, _) => vec![err("not_joined", "join in progress")],
            (State::Joined { .. }, ClientMessage::Join { .. } | ClientMessage::Resume { .. }) => {
                vec![err("already_joined", "this socket already joined")]
            }
            (State::Joined { .. }, ClientMessage::Offer { sdp }) => {
                vec![Action::Sfu(Command::PublishOffer(sdp))]
            }
            (State::Joined { .. }, ClientMessage::Answer { sdp }) => {
                vec![Action::Sfu(Command::SubscribeAnswer(sdp))]
            }
            (State::Joined { .. }, ClientMessage::Subscribe { track_id, max_width, max_height, paused }) => {
                match track_id.parse::<u64>() {
                    Ok(t) => vec![Action::Sfu(Command::Subscribe {
                        track_id: TrackId(t),
                        pref: Preference { max_width, max_height, paused: paused.unwrap_or(false) },
                    })],
                    Err(_) => vec![err("bad_message", "track_id is not an id")],
                }
            }
            (State::Joined { .. }, ClientMessage::Mute { muted, deafened }) => {
                vec![Action::Sfu(Command::SetMute { muted, deafened })]
            }
            (State::Joined { claims, .. }, ClientMessage::ServerMute { participant_id, muted }) => {
                if !claims.rights.mute_members {
                    return vec![err("forbidden", "MUTE_MEMBERS is required")];
                }
                match participant_id.parse::<u64>() {
                    Ok(p) => vec![Action::Sfu(Command::ServerMute { target: ParticipantId(p), muted })],
                    Err(_) => vec![err("bad_message", "participant_id is not an id")],
                }
            }
            (State::Joined { .. }, ClientMessage::IceRestart) => {
                vec![Action::Sfu(Command::IceRestart)]
            }
            (State::Joined { claims, .. }, ClientMessage::Leave) => {
                let change = self.state_change(claims, false);
                self.state = State::Closed;
                vec![Action::Sfu(Command::Leave), Action::VoiceState(change), Action::Close]
            }
            (State::Closed, _) => Vec::new(),
        }
    }

    /// The SFU accepted the join (or refused it with `None`).
    pub fn joined(&mut self, participant: Option<ParticipantId>) -> Vec<Action> {
        let State::Joining { claims } = self.state else {
            return Vec::new();
        };
        match participant {
            Some(participant) => {
                self.target = Some((claims.channel_id, participant));
                self.state = State::Joined { claims, participant };
                // A member a moderator muted or deafened stays so in every call they join.
                let mut standing = Vec::new();
                if claims.rights.server_muted {
                    standing.push(Action::Sfu(Command::ServerMute { target: participant, muted: true }));
                }
                if claims.rights.server_deafened {
                    standing.push(Action::Sfu(Command::ServerDeafen { target: participant, deafened: true }));
                }
                standing
            }
            None => {
                self.state = State::Closed;
                vec![err("sfu_unavailable", "no media server is available"), Action::Close]
            }
        }
    }

    /// The socket dropped; the SFU participant is kept for a resume.
    /// Returns what to do when the resume window passes.
    pub fn expire(&mut self) -> Vec<Action> {
        let State::Joined { claims, .. } = self.state else {
            return Vec::new();
        };
        let change = self.state_change(&claims, false);
        self.state = State::Closed;
        vec![Action::Sfu(Command::Leave), Action::VoiceState(change)]
    }

    /// An event from the SFU for this participant.
    pub fn on_sfu_event(&mut self, ev: SfuEvent) -> Vec<Action> {
        let (claims, me) = match &self.state {
            State::Joined { claims, participant } => (*claims, *participant),
            _ => return Vec::new(),
        };
        let msg = match ev {
            SfuEvent::Joined { participant_id, participants } => {
                let joined = ServerMessage::Joined {
                    participant_id: id(participant_id),
                    session_id: self.session_id.clone(),
                    participants: participants.iter().map(participant_json).collect(),
                    ice_servers: self.ice_servers.for_participant(crate::ice::unix_now(), &id(participant_id)),
                };
                return vec![Action::Send(joined), Action::VoiceState(self.state_change(&claims, true))];
            }
            SfuEvent::Offer { sdp } => ServerMessage::Offer { sdp },
            SfuEvent::Answer { sdp } => ServerMessage::Answer { sdp },
            SfuEvent::ParticipantJoined(p) => {
                if p.participant_id == me {
                    return Vec::new();
                }
                ServerMessage::ParticipantJoined { participant: participant_json(&p) }
            }
            SfuEvent::ParticipantLeft { participant_id } => {
                ServerMessage::ParticipantLeft { participant_id: id(participant_id) }
            }
            SfuEvent::TrackPublished(t) => ServerMessage::TrackPublished { track: track_json(&t) },
            SfuEvent::TrackUnpublished { track_id, participant_id } => {
                ServerMessage::TrackUnpublished { track_id: track_id.0.to_string(), participant_id: id(participant_id) }
            }
            SfuEvent::TrackUnsupported { track_id, participant_id, codec } => ServerMessage::TrackUnsupported {
                track_id: track_id.0.to_string(),
                participant_id: id(participant_id),
                codec,
            },
            SfuEvent::Speaking { participant_id, speaking } => {
                ServerMessage::Speaking { participant_id: id(participant_id), speaking }
            }
            SfuEvent::MuteChanged { participant_id, muted, deafened, server_muted, server_deafened } => {
                let msg = ServerMessage::Mute {
                    participant_id: id(participant_id),
                    muted,
                    deafened,
                    server_muted,
                    server_deafened,
                };
                if participant_id == me {
                    self.muted = muted;
                    self.deafened = deafened;
                    self.server_muted = server_muted;
                    self.server_deafened = server_deafened;
                    return vec![Action::Send(msg), Action::VoiceState(self.state_change(&claims, true))];
                }
                msg
            }
            SfuEvent::Error { code, message } => ServerMessage::error(code, message),
            SfuEvent::Closed { reason } => {
                let change = self.state_change(&claims, false);
                self.state = State::Closed;
                let (code, message) = match reason {
                    LeaveReason::Left => return vec![Action::VoiceState(change), Action::Close],
                    LeaveReason::Timeout => {
                        ("peer_timeout", "no media traffic for the peer timeout; removed from the room")
                    }
                    LeaveReason::PeerClosed => {
                        ("peer_closed", "a peer connection was closed or failed; removed from the room")
                    }
                    LeaveReason::Shutdown => ("shutdown", "the media server is shutting down"),
                };
                return vec![err(code, message), Action::VoiceState(change), Action::Close];
            }
        };
        vec![Action::Send(msg)]
    }
}

/// How long a joined session waits for its client after the socket dropped.
pub const RESUME_WINDOW: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Rights, VoiceGrant};

    fn setup() -> (Session, VoiceTokens, String) {
        let tokens = VoiceTokens::new(b"k");
        let (tok, _) = tokens
            .issue(
                &VoiceGrant { user_id: 1, guild_id: None, channel_id: 5, rights: Rights::default() },
                Duration::from_secs(60),
            )
            .unwrap();
        (Session::new(Instant::now(), "s".into(), IceServers::default()), tokens, tok)
    }

    #[test]
    fn messages_before_join_are_refused() {
        let (mut s, tokens, _) = setup();
        let a = s.on_text(Instant::now(), r#"{"type":"offer","sdp":"x"}"#, &tokens);
        assert!(matches!(&a[0], Action::Send(ServerMessage::Error { code, .. }) if code == "not_joined"));
    }

    #[test]
    fn join_with_a_valid_token_asks_the_sfu() {
        let (mut s, tokens, tok) = setup();
        let a = s.on_text(Instant::now(), &format!(r#"{{"type":"join","token":"{tok}","channel_id":"5"}}"#), &tokens);
        assert!(matches!(a[0], Action::Join { .. }));
        assert!(s.joined(Some(ParticipantId(3))).is_empty());
        assert!(s.is_joined());
        let a = s.on_text(Instant::now(), r#"{"type":"server_mute","participant_id":"4","muted":true}"#, &tokens);
        assert!(matches!(&a[0], Action::Send(ServerMessage::Error { code, .. }) if code == "forbidden"));
    }

    #[test]
    fn a_kicked_session_is_told_why_leaves_the_room_and_closes() {
        let (mut s, tokens, tok) = setup();
        assert!(s.kick("account_disabled", "x").is_empty(), "nothing to end before join");
        s.on_text(Instant::now(), &format!(r#"{{"type":"join","token":"{tok}","channel_id":"5"}}"#), &tokens);
        s.joined(Some(ParticipantId(3)));
        assert_eq!(s.user_id(), Some(1));
        let a = s.kick("account_disabled", "this account is disabled");
        assert!(matches!(&a[0], Action::Send(ServerMessage::Error { code, .. }) if code == "account_disabled"));
        assert_eq!(a[1], Action::Sfu(Command::Leave));
        assert!(matches!(&a[2], Action::VoiceState(c) if c.user_id == 1 && c.channel_id.is_none()));
        assert_eq!(a[3], Action::Close);
        assert!(s.is_closed());
        assert!(s.kick("account_disabled", "x").is_empty(), "a second kick does nothing");
    }

    fn joined_session(rights: Rights) -> (Session, VoiceTokens) {
        let tokens = VoiceTokens::new(b"k");
        let grant = VoiceGrant { user_id: 1, guild_id: Some(9), channel_id: 5, rights };
        let (tok, _) = tokens.issue(&grant, Duration::from_secs(60)).unwrap();
        let mut s = Session::new(Instant::now(), "s".into(), IceServers::default());
        s.on_text(Instant::now(), &format!(r#"{{"type":"join","token":"{tok}","channel_id":"5"}}"#), &tokens);
        (s, tokens)
    }

    #[test]
    fn a_member_muted_by_a_moderator_starts_the_call_muted_and_deaf() {
        let (mut s, _) = joined_session(Rights { server_muted: true, server_deafened: true, ..Rights::default() });
        let a = s.joined(Some(ParticipantId(3)));
        assert_eq!(
            a,
            vec![
                Action::Sfu(Command::ServerMute { target: ParticipantId(3), muted: true }),
                Action::Sfu(Command::ServerDeafen { target: ParticipantId(3), deafened: true }),
            ]
        );
    }

    #[test]
    fn a_moderators_mute_reaches_the_sfu_for_this_participant_only_in_its_guild() {
        let (mut s, _) = joined_session(Rights::default());
        s.joined(Some(ParticipantId(3)));
        assert!(s.moderate(8, Moderation::Mute { muted: true, deafened: false }).is_empty(), "another guild");
        let a = s.moderate(9, Moderation::Mute { muted: true, deafened: false });
        assert_eq!(a[0], Action::Sfu(Command::ServerMute { target: ParticipantId(3), muted: true }));
        assert_eq!(a[1], Action::Sfu(Command::ServerDeafen { target: ParticipantId(3), deafened: false }));
        assert!(s.is_joined());
    }

    #[test]
    fn a_moved_session_is_told_where_to_leaves_the_room_and_closes() {
        let (mut s, _) = joined_session(Rights::default());
        s.joined(Some(ParticipantId(3)));
        assert!(s.moderate(9, Moderation::Move { channel_id: 5 }).is_empty(), "already there");
        let a = s.moderate(9, Moderation::Move { channel_id: 6 });
        assert_eq!(a[0], Action::Send(ServerMessage::Moved { channel_id: "6".into() }));
        assert_eq!(a[1], Action::Sfu(Command::Leave));
        assert!(matches!(&a[2], Action::VoiceState(c) if c.channel_id.is_none()));
        assert_eq!(a[3], Action::Close);
        assert!(s.is_closed());
    }

    #[test]
    fn a_disconnected_session_is_told_why_and_closes() {
        let (mut s, _) = joined_session(Rights::default());
        s.joined(Some(ParticipantId(3)));
        let a = s.moderate(9, Moderation::Disconnect);
        assert!(matches!(&a[0], Action::Send(ServerMessage::Error { code, .. }) if code == "disconnected"));
        assert_eq!(a[1], Action::Sfu(Command::Leave));
        assert!(s.is_closed());
    }

    #[test]
    fn floods_are_rate_limited() {
        let (mut s, tokens, _) = setup();
        let now = Instant::now();
        let limited = (0..200)
            .filter(|_| {
                let a = s.on_text(now, r#"{"type":"ping"}"#, &tokens);
                matches!(&a[0], Action::Send(ServerMessage::Error { code, .. }) if code == "rate_limited")
            })
            .count();
        assert!(limited >= 100);
    }
}
