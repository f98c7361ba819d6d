//! Gateway wire format: opcodes, close codes, parsing client frames, building server frames.
//! Pure; tested without sockets.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::events::Payload;

pub mod op {
    pub const DISPATCH: u8 = 0;
    pub const HEARTBEAT: u8 = 1;
    pub const IDENTIFY: u8 = 2;
    pub const PRESENCE_UPDATE: u8 = 3;
    pub const RESUME: u8 = 6;
    pub const RECONNECT: u8 = 7;
    pub const INVALID_SESSION: u8 = 9;
    pub const HELLO: u8 = 10;
    pub const HEARTBEAT_ACK: u8 = 11;
}

/// WebSocket close codes (the contract's, plus 4010 for a consumer too slow to keep up).
pub mod close {
    pub const UNKNOWN_ERROR: u16 = 4000;
    pub const UNKNOWN_OPCODE: u16 = 4001;
    pub const DECODE_ERROR: u16 = 4002;
    pub const NOT_AUTHENTICATED: u16 = 4003;
    pub const AUTHENTICATION_FAILED: u16 = 4004;
    pub const ALREADY_AUTHENTICATED: u16 = 4005;
    pub const RATE_LIMITED: u16 = 4008;
    pub const SESSION_TIMED_OUT: u16 = 4009;
    /// The send queue overflowed. The session is kept: resume it.
    pub const SLOW_CONSUMER: u16 = 4010;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Online,
    Idle,
    Dnd,
    Offline,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Idle => "idle",
            Status::Dnd => "dnd",
            Status::Offline => "offline",
        }
    }
}

/// A frame from the client, parsed into something that cannot be invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    Heartbeat {
        seq: Option<u64>,
    },
    Identify {
        token: String,
    },
    Resume {
        token: String,
        session_id: String,
        seq: u64,
    },
    /// `online`, `idle` or `dnd` (invisible is shown as offline).
    PresenceUpdate {
        status: Status,
    },
}

/// Why a client frame was refused, with the close code to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: u16,
    pub reason: &'static str,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    op: u8,
    #[serde(borrow)]
    d: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct IdentifyData {
    token: String,
}
#[derive(Deserialize)]
struct ResumeData {
    token: String,
    session_id: String,
    seq: u64,
}
#[derive(Deserialize)]
struct PresenceData {
    status: String,
}

const DECODE: FrameError = FrameError { code: close::DECODE_ERROR, reason: "decode error" };

/// serde reads a struct from a JSON array too (`[2, {"token": "t"}]` as IDENTIFY); the contract's
/// frames and their `d` are objects.
fn is_object(json: &str) -> bool {
    json.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{')
}

pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    if !is_object(text) {
        return Err(DECODE);
    }
    let env: Envelope = serde_json::from_str(text).map_err(|_| DECODE)?;
    let data = |raw: Option<&RawValue>| raw.map(RawValue::get).unwrap_or("null").to_owned();
    let object = |raw: Option<&RawValue>| {
        let d = data(raw);
        if is_object(&d) { Ok(d) } else { Err(DECODE) }
    };
    match env.op {
        op::HEARTBEAT => {
            // Discord sends the bare sequence number; the contract says `{seq}`. Accept both.
            let raw = data(env.d);
            let seq = match serde_json::from_str::<serde_json::Value>(&raw).map_err(|_| DECODE)? {
                serde_json::Value::Null => None,
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::Object(o) => o.get("seq").and_then(serde_json::Value::as_u64),
                _ => return Err(DECODE),
            };
            Ok(ClientFrame::Heartbeat { seq })
        }
        op::IDENTIFY => {
            let d: IdentifyData = serde_json::from_str(&object(env.d)?).map_err(|_| DECODE)?;
            Ok(ClientFrame::Identify { token: d.token })
        }
        op::RESUME => {
            let d: ResumeData = serde_json::from_str(&object(env.d)?).map_err(|_| DECODE)?;
            Ok(ClientFrame::Resume { token: d.token, session_id: d.session_id, seq: d.seq })
        }
        op::PRESENCE_UPDATE => {
            let d: PresenceData = serde_json::from_str(&object(env.d)?).map_err(|_| DECODE)?;
            let status = match d.status.as_str() {
                "online" => Status::Online,
                "idle" => Status::Idle,
                "dnd" => Status::Dnd,
                "invisible" | "offline" => Status::Offline,
                _ => return Err(DECODE),
            };
            Ok(ClientFrame::PresenceUpdate { status })
        }
        _ => Err(FrameError { code: close::UNKNOWN_OPCODE, reason: "unknown opcode" }),
    }
}

/// `{"op":0,"s":seq,"t":name,"d":data}` — formatted directly; `data` is already JSON.
pub fn dispatch_frame(seq: u64, payload: &Payload) -> String {
    let mut s = String::with_capacity(payload.data.len() + payload.name.len() + 32);
    s.push_str("{\"op\":0,\"s\":");
    s.push_str(&seq.to_string());
    s.push_str(",\"t\":\"");
    s.push_str(payload.name);
    s.push_str("\",\"d\":");
    s.push_str(&payload.data);
    s.push('}');
    s
}

pub fn hello_frame(heartbeat_interval_ms: u64) -> String {
    format!("{{\"op\":{},\"d\":{{\"heartbeat_interval_ms\":{heartbeat_interval_ms}}}}}", op::HELLO)
}

pub fn heartbeat_ack_frame() -> String {
    format!("{{\"op\":{},\"d\":{{}}}}", op::HEARTBEAT_ACK)
}

pub fn invalid_session_frame(resumable: bool) -> String {
    format!("{{\"op\":{},\"d\":{{\"resumable\":{resumable}}}}}", op::INVALID_SESSION)
}

pub fn reconnect_frame() -> String {
    format!("{{\"op\":{},\"d\":{{}}}}", op::RECONNECT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_identify_resume_and_heartbeat_forms() {
        assert_eq!(
            parse_client_frame(r#"{"op":2,"d":{"token":"t"}}"#),
            Ok(ClientFrame::Identify { token: "t".into() })
        );
        assert_eq!(
            parse_client_frame(r#"{"op":6,"d":{"token":"t","session_id":"s","seq":4}}"#),
            Ok(ClientFrame::Resume { token: "t".into(), session_id: "s".into(), seq: 4 })
        );
        assert_eq!(parse_client_frame(r#"{"op":1,"d":{"seq":3}}"#), Ok(ClientFrame::Heartbeat { seq: Some(3) }));
        assert_eq!(parse_client_frame(r#"{"op":1,"d":7}"#), Ok(ClientFrame::Heartbeat { seq: Some(7) }));
        assert_eq!(parse_client_frame(r#"{"op":1,"d":null}"#), Ok(ClientFrame::Heartbeat { seq: None }));
    }

    #[test]
    fn unknown_opcode_and_garbage_get_their_close_codes() {
        assert_eq!(parse_client_frame(r#"{"op":99,"d":{}}"#).unwrap_err().code, close::UNKNOWN_OPCODE);
        assert_eq!(parse_client_frame("not json").unwrap_err().code, close::DECODE_ERROR);
        assert_eq!(parse_client_frame(r#"{"op":2,"d":{"tok":1}}"#).unwrap_err().code, close::DECODE_ERROR);
        assert_eq!(parse_client_frame(r#"{"op":3,"d":{"status":"away"}}"#).unwrap_err().code, close::DECODE_ERROR);
    }

    #[test]
    fn frames_and_their_data_in_array_form_are_refused() {
        // Found with the `gateway_frame` fuzz target: serde reads a struct from a JSON array as well.
        for text in [
            r#"[1, 5]"#,
            r#"[2, {"token":"t"}]"#,
            r#"{"op":2,"d":["t"]}"#,
            r#"{"op":6,"d":["t","s",4]}"#,
            r#"{"op":3,"d":["dnd"]}"#,
        ] {
            assert_eq!(parse_client_frame(text).unwrap_err().code, close::DECODE_ERROR, "{text}");
        }
        assert_eq!(
            parse_client_frame(" \r\n\t{\"op\":2,\"d\": {\"token\":\"t\"}}"),
            Ok(ClientFrame::Identify { token: "t".into() })
        );
    }

    #[test]
    fn dispatch_frame_is_valid_json() {
        let p = Payload { name: "MESSAGE_CREATE", data: r#"{"a":1}"#.into() };
        let v: serde_json::Value = serde_json::from_str(&dispatch_frame(42, &p)).unwrap();
        assert_eq!(v["op"], 0);
        assert_eq!(v["s"], 42);
        assert_eq!(v["t"], "MESSAGE_CREATE");
        assert_eq!(v["d"]["a"], 1);
    }
}
