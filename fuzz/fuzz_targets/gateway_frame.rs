//! Gateway client frames (`chat::gateway::protocol::parse_client_frame`), as a WebSocket text
//! frame delivers them (valid UTF-8, any content).
//!
//! Asserts: no panic; a refusal is one of the two documented close codes; an accepted frame agrees
//! with a generic JSON reading of the same text (same `op`, same fields); an accepted frame
//! re-encoded in the contract's form (and, for heartbeats, in Discord's bare-number form) parses
//! back equal; the server's own frames are valid JSON carrying what was put in.
#![no_main]

use chat::gateway::protocol::{
    ClientFrame, Status, close, heartbeat_ack_frame, hello_frame, invalid_session_frame, op, parse_client_frame,
    reconnect_frame,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn status_str(s: &Status) -> &'static str {
    s.as_str()
}

/// The frame in the contract's JSON form.
fn encode(frame: &ClientFrame) -> Vec<String> {
    match frame {
        ClientFrame::Heartbeat { seq: Some(s) } => {
            vec![
                json!({"op": op::HEARTBEAT, "d": {"seq": s}}).to_string(),
                json!({"op": op::HEARTBEAT, "d": s}).to_string(),
            ]
        }
        ClientFrame::Heartbeat { seq: None } => {
            vec![json!({"op": op::HEARTBEAT, "d": null}).to_string(), json!({"op": op::HEARTBEAT}).to_string()]
        }
        ClientFrame::Identify { token } => vec![json!({"op": op::IDENTIFY, "d": {"token": token}}).to_string()],
        ClientFrame::Resume { token, session_id, seq } => {
            vec![json!({"op": op::RESUME, "d": {"token": token, "session_id": session_id, "seq": seq}}).to_string()]
        }
        ClientFrame::PresenceUpdate { status } => {
            vec![json!({"op": op::PRESENCE_UPDATE, "d": {"status": status_str(status)}}).to_string()]
        }
    }
}

/// The text as a `serde_json::Value`, when serde_json reads it as one. Not always when the frame
/// parser did: it skips the fields it does not read without converting their numbers or checking
/// their `\u` escapes (a number out of range, a lone surrogate, a short escape all pass there).
fn generic(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// What a generic JSON reading of the text says about an accepted frame.
fn agrees_with_json(text: &str, frame: &ClientFrame) {
    let Some(v) = generic(text) else { return };
    let d = &v["d"];
    match frame {
        ClientFrame::Heartbeat { seq } => {
            assert_eq!(v["op"], op::HEARTBEAT);
            assert_eq!(*seq, d.as_u64().or_else(|| d["seq"].as_u64()), "heartbeat seq");
        }
        ClientFrame::Identify { token } => {
            assert_eq!(v["op"], op::IDENTIFY);
            assert_eq!(d["token"].as_str(), Some(token.as_str()));
        }
        ClientFrame::Resume { token, session_id, seq } => {
            assert_eq!(v["op"], op::RESUME);
            assert_eq!(d["token"].as_str(), Some(token.as_str()));
            assert_eq!(d["session_id"].as_str(), Some(session_id.as_str()));
            assert_eq!(d["seq"].as_u64(), Some(*seq));
        }
        ClientFrame::PresenceUpdate { status } => {
            assert_eq!(v["op"], op::PRESENCE_UPDATE);
            let s = d["status"].as_str().expect("status is a string");
            match status {
                Status::Offline => assert!(s == "offline" || s == "invisible", "{s}"),
                other => assert_eq!(s, other.as_str()),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The server's own frames, from the first bytes as numbers.
    if data.len() >= 8 {
        let n = u64::from_le_bytes(data[..8].try_into().unwrap());
        let hello: Value = serde_json::from_str(&hello_frame(n)).unwrap();
        assert_eq!(hello["op"], op::HELLO);
        assert_eq!(hello["d"]["heartbeat_interval_ms"].as_u64(), Some(n));
        let invalid: Value = serde_json::from_str(&invalid_session_frame(n & 1 == 1)).unwrap();
        assert_eq!(invalid["d"]["resumable"].as_bool(), Some(n & 1 == 1));
    }
    let ack: Value = serde_json::from_str(&heartbeat_ack_frame()).unwrap();
    assert_eq!(ack["op"], op::HEARTBEAT_ACK);
    let reconnect: Value = serde_json::from_str(&reconnect_frame()).unwrap();
    assert_eq!(reconnect["op"], op::RECONNECT);

    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_client_frame(text) {
        Ok(frame) => {
            agrees_with_json(text, &frame);
            for again in encode(&frame) {
                assert_eq!(parse_client_frame(&again), Ok(frame.clone()), "re-encoded as {again}");
            }
        }
        Err(e) => {
            assert!(e.code == close::DECODE_ERROR || e.code == close::UNKNOWN_OPCODE, "close code {}", e.code);
            if e.code == close::UNKNOWN_OPCODE {
                if let Some(v) = generic(text) {
                    let op = v["op"].as_u64().expect("op is a number");
                    assert!(op <= 255 && ![1, 2, 3, 6].contains(&op), "op {op} is known");
                }
            }
        }
    }
});
