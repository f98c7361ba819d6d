//! `/voice` message shapes: JSON text frames with a `type` field, parsed at the edge.
//!
//! Ids are strings in JSON (64-bit integers do not survive JavaScript numbers).
//! Who offers: each participant has two peer connections. The **publish** connection
//! carries the client's media to the SFU; only the client offers on it (`offer` from
//! client, `answer` from server). The **subscribe** connection carries everyone else's
//! media to the client; only the server offers on it (`offer` from server, `answer`
//! from client). The direction of a message therefore names the connection, and since
//! each connection has a single offerer, glare cannot happen.

use serde::{Deserialize, Serialize};

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message: the voice token from `POST /api/v1/channels/{id}/voice`.
    Join {
        token: String,
        /// The channel the client means to join; checked against the token.
        #[serde(default)]
        channel_id: Option<String>,
    },
    /// Re-attach to a session whose socket dropped less than 30 s ago.
    Resume {
        session_id: String,
    },
    /// SDP offer for the publish connection.
    Offer {
        sdp: String,
    },
    /// SDP answer for the subscribe connection.
    Answer {
        sdp: String,
    },
    Subscribe {
        track_id: String,
        #[serde(default)]
        max_width: Option<u32>,
        #[serde(default)]
        max_height: Option<u32>,
        #[serde(default)]
        paused: Option<bool>,
    },
    /// Self mute / deafen.
    Mute {
        muted: bool,
        #[serde(default)]
        deafened: bool,
    },
    /// Server mute of another participant (needs MUTE_MEMBERS).
    ServerMute {
        participant_id: String,
        muted: bool,
    },
    /// Ask the server to restart ICE on the subscribe connection (new `offer` follows).
    IceRestart,
    Leave,
    Ping,
}

impl ClientMessage {
    pub const TYPES: &'static [&'static str] =
        &["join", "resume", "offer", "answer", "subscribe", "mute", "server_mute", "ice_restart", "leave", "ping"];
}

/// Why a frame could not become a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("frame is not a JSON object with a string \"type\"")]
    BadJson,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid {kind} message: {detail}")]
    BadMessage { kind: String, detail: String },
}

impl ParseError {
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::BadJson => "bad_json",
            ParseError::UnknownType(_) => "unknown_type",
            ParseError::BadMessage { .. } => "bad_message",
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

/// Parse one text frame.
pub fn parse(text: &str) -> Result<ClientMessage, ParseError> {
    // serde reads a struct, and an internally tagged enum, from a JSON array too (`["ping"]`).
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return Err(ParseError::BadJson);
    }
    let env: Envelope = serde_json::from_str(text).map_err(|_| ParseError::BadJson)?;
    if !ClientMessage::TYPES.contains(&env.kind.as_str()) {
        // At most 64 bytes of it go back to the client, cut at a character boundary.
        let mut k = env.kind;
        let mut end = k.len().min(64);
        while !k.is_char_boundary(end) {
            end -= 1;
        }
        k.truncate(end);
        return Err(ParseError::UnknownType(k));
    }
    serde_json::from_str(text).map_err(|e| ParseError::BadMessage { kind: env.kind, detail: e.to_string() })
}

/// An ICE server for the client's peer connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackJson {
    pub track_id: String,
    pub participant_id: String,
    /// "audio" or "video".
    pub kind: String,
    pub simulcast: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantJson {
    pub participant_id: String,
    pub user_id: String,
    pub tracks: Vec<TrackJson>,
    pub muted: bool,
    pub deafened: bool,
    pub server_muted: bool,
    pub server_deafened: bool,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        participant_id: String,
        /// Give it to `resume` after a dropped socket.
        session_id: String,
        participants: Vec<ParticipantJson>,
        ice_servers: Vec<IceServer>,
    },
    Resumed {
        participant_id: String,
    },
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    ParticipantJoined {
        #[serde(flatten)]
        participant: ParticipantJson,
    },
    ParticipantLeft {
        participant_id: String,
    },
    TrackPublished {
        #[serde(flatten)]
        track: TrackJson,
    },
    TrackUnpublished {
        track_id: String,
        participant_id: String,
    },
    /// Your subscribe answer left out the codec this track is sent in: you get nothing of it
    /// (the rest of the call goes on).
    TrackUnsupported {
        track_id: String,
        participant_id: String,
        codec: String,
    },
    Speaking {
        participant_id: String,
        speaking: bool,
    },
    Mute {
        participant_id: String,
        muted: bool,
        deafened: bool,
        server_muted: bool,
        server_deafened: bool,
    },
    /// A moderator moved this user to another voice channel: this call ends (the socket closes
    /// next); ask for a grant for `channel_id` and join there.
    Moved {
        channel_id: String,
    },
    Pong,
    Error {
        code: String,
        message: String,
    },
}

impl ServerMessage {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerMessage::Error { code: code.into(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_or_name_their_problem() {
        assert_eq!(parse(r#"{"type":"offer","sdp":"v=0"}"#), Ok(ClientMessage::Offer { sdp: "v=0".into() }));
        assert_eq!(parse("not json"), Err(ParseError::BadJson));
        assert_eq!(parse(r#"{"sdp":"x"}"#), Err(ParseError::BadJson));
        assert!(matches!(parse(r#"{"type":"dance"}"#), Err(ParseError::UnknownType(_))));
        assert!(matches!(parse(r#"{"type":"join"}"#), Err(ParseError::BadMessage { .. })));
    }

    #[test]
    fn a_long_unknown_type_is_cut_at_a_character_boundary() {
        // Found with the `voice_message` fuzz target: byte 64 fell inside `é`, and `String::truncate`
        // panicked (the connection's task died before answering).
        let frame = format!(r#"{{"type":"{}é"}}"#, "a".repeat(63));
        assert_eq!(parse(&frame), Err(ParseError::UnknownType("a".repeat(63))));
        let frame = format!(r#"{{"type":"{}"}}"#, "é".repeat(40));
        assert_eq!(parse(&frame), Err(ParseError::UnknownType("é".repeat(32))));
    }

    #[test]
    fn messages_in_array_form_are_refused() {
        // Found with the `voice_message` fuzz target: serde reads `["ping"]` as a ping.
        assert_eq!(parse(r#"["ping"]"#), Err(ParseError::BadJson));
        assert_eq!(parse(r#"["offer","v=0"]"#), Err(ParseError::BadJson));
        assert_eq!(parse(" \n{\"type\":\"ping\"}"), Ok(ClientMessage::Ping));
    }
}
