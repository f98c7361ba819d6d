//! `/voice` client messages (`signaling::protocol::parse`), as a WebSocket text frame delivers them.
//!
//! Asserts: no panic; an accepted message agrees with a generic JSON reading (its `type`); an
//! accepted message re-encoded parses back equal; an unknown type is reported as a prefix of what
//! was sent, at most 64 bytes; the error reply the server sends for a refusal serializes and reads
//! back as the same `ServerMessage`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use signaling::protocol::{ClientMessage, ParseError, ServerMessage, parse};

fn type_name(m: &ClientMessage) -> &'static str {
    match m {
        ClientMessage::Join { .. } => "join",
        ClientMessage::Resume { .. } => "resume",
        ClientMessage::Offer { .. } => "offer",
        ClientMessage::Answer { .. } => "answer",
        ClientMessage::Subscribe { .. } => "subscribe",
        ClientMessage::Mute { .. } => "mute",
        ClientMessage::ServerMute { .. } => "server_mute",
        ClientMessage::IceRestart => "ice_restart",
        ClientMessage::Leave => "leave",
        ClientMessage::Ping => "ping",
    }
}

/// The message as a client would send it (optional fields left out when absent).
fn encode(m: &ClientMessage) -> String {
    let mut o = Map::new();
    o.insert("type".into(), json!(type_name(m)));
    let mut put = |k: &str, v: Value| {
        o.insert(k.into(), v);
    };
    match m {
        ClientMessage::Join { token, channel_id } => {
            put("token", json!(token));
            if let Some(c) = channel_id {
                put("channel_id", json!(c));
            }
        }
        ClientMessage::Resume { session_id } => put("session_id", json!(session_id)),
        ClientMessage::Offer { sdp } | ClientMessage::Answer { sdp } => put("sdp", json!(sdp)),
        ClientMessage::Subscribe { track_id, max_width, max_height, paused } => {
            put("track_id", json!(track_id));
            if let Some(w) = max_width {
                put("max_width", json!(w));
            }
            if let Some(h) = max_height {
                put("max_height", json!(h));
            }
            if let Some(p) = paused {
                put("paused", json!(p));
            }
        }
        ClientMessage::Mute { muted, deafened } => {
            put("muted", json!(muted));
            put("deafened", json!(deafened));
        }
        ClientMessage::ServerMute { participant_id, muted } => {
            put("participant_id", json!(participant_id));
            put("muted", json!(muted));
        }
        ClientMessage::IceRestart | ClientMessage::Leave | ClientMessage::Ping => {}
    }
    Value::Object(o).to_string()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(m) => {
            let v: Value = serde_json::from_str(text).expect("an accepted message is valid JSON");
            assert_eq!(v["type"].as_str(), Some(type_name(&m)));
            let again = encode(&m);
            assert_eq!(parse(&again), Ok(m), "re-encoded as {again}");
        }
        Err(e) => {
            if let ParseError::UnknownType(k) = &e {
                assert!(k.len() <= 64, "reported type is {} bytes", k.len());
                // (When serde_json reads the text as a `Value`: fields other than `type` are
                // skipped without converting their numbers or checking their `\u` escapes.)
                if let Ok(v) = serde_json::from_str::<Value>(text) {
                    let sent = v["type"].as_str().expect("type is a string");
                    assert!(sent.starts_with(k.as_str()), "{k:?} is not a prefix of {sent:?}");
                    assert!(!ClientMessage::TYPES.contains(&sent), "{sent} is a known type");
                }
            }
            if let ParseError::BadMessage { kind, .. } = &e {
                assert!(ClientMessage::TYPES.contains(&kind.as_str()), "{kind}");
            }
            let reply = ServerMessage::error(e.code(), e.to_string());
            let json = serde_json::to_string(&reply).expect("the error reply serializes");
            let back: ServerMessage = serde_json::from_str(&json).expect("the error reply reads back");
            assert_eq!(back, reply);
        }
    }
});
