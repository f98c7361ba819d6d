//! An event as it travels between nodes (the cluster's stream): JSON, with the payload embedded as
//! it will be sent, its audience and its effect. Whatever comes off the stream is untrusted: a
//! malformed entry or an unknown event name is an error here, and the reader skips and counts it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::sight::SightChange;
use super::{Audience, Dispatch, Effect, Event, Payload, known_name};

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed event: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unknown event name {0:?}")]
    UnknownEvent(String),
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Out<'a> {
    Dispatch { t: &'a str, d: &'a RawValue, audience: &'a Audience, effect: &'a Option<Effect> },
    Sight(&'a SightChange),
}

// Externally tagged: serde's internally tagged enums buffer their content, which a RawValue cannot pass.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum In {
    Dispatch { t: String, d: Box<RawValue>, audience: Audience, effect: Option<Effect> },
    Sight(SightChange),
}

/// The JSON of an event.
pub fn encode(event: &Event) -> Result<String, WireError> {
    match event {
        Event::Dispatch(dispatch) => {
            let d: &RawValue = serde_json::from_str(&dispatch.payload.data)?;
            Ok(serde_json::to_string(&Out::Dispatch {
                t: dispatch.payload.name,
                d,
                audience: &dispatch.audience,
                effect: &dispatch.effect,
            })?)
        }
        Event::Sight(change) => Ok(serde_json::to_string(&Out::Sight(change))?),
    }
}

/// An event from its JSON.
pub fn decode(json: &str) -> Result<Event, WireError> {
    Ok(match serde_json::from_str::<In>(json)? {
        In::Dispatch { t, d, audience, effect } => {
            let name = known_name(&t).ok_or(WireError::UnknownEvent(t))?;
            // A raw value is only checked for syntax: a lone surrogate escape (`"\ud800"`), which no
            // node writes, would reach clients as invalid JSON. Read it fully once (per node, not per
            // recipient).
            serde_json::from_str::<serde_json::Value>(d.get())?;
            let payload = Arc::new(Payload { name, data: String::from(Box::<str>::from(d)).into_boxed_str() });
            Event::Dispatch(Dispatch { payload, audience, effect })
        }
        In::Sight(change) => Event::Sight(Arc::new(change)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    #[test]
    fn a_dispatch_survives_the_round_trip() {
        let d = Dispatch::new(
            "MESSAGE_CREATE",
            &serde_json::json!({"id": "1", "content": "hé \"x\""}),
            Audience::Users(vec![Id::from_raw(7)]),
        );
        let sent = d.payload.data.clone();
        let back = decode(&encode(&d.into()).unwrap()).unwrap();
        let Event::Dispatch(back) = back else { panic!("a dispatch") };
        assert_eq!(back.payload.name, "MESSAGE_CREATE");
        assert_eq!(back.payload.data, sent, "the payload travels byte for byte");
        assert!(matches!(back.audience, Audience::Users(u) if u == vec![Id::from_raw(7)]));
    }

    #[test]
    fn an_unknown_event_name_is_refused() {
        let json = r#"{"dispatch":{"t":"EVIL","d":{},"audience":{"kind":"guild","of":"1"},"effect":null}}"#;
        assert!(matches!(decode(json), Err(WireError::UnknownEvent(n)) if n == "EVIL"));
    }

    #[test]
    fn a_payload_that_is_not_strict_json_is_refused() {
        // Found by the stream_entry fuzz target: a lone surrogate passes a raw value's syntax check.
        let json = r#"{"dispatch":{"t":"MESSAGE_CREATE","d":{"x":"\udafe"},"audience":{"kind":"guild","of":"1"},"effect":null}}"#;
        assert!(matches!(decode(json), Err(WireError::Malformed(_))));
    }

    #[test]
    fn garbage_is_refused() {
        for junk in ["", "null", "{}", "[1,2]", r#"{"dispatch":{"t":"MESSAGE_CREATE"}}"#, "\u{0}"] {
            assert!(matches!(decode(junk), Err(WireError::Malformed(_))), "{junk:?}");
        }
    }
}
