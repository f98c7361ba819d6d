//! Snowflake ids (`chat::id::Id`): `FromStr` (path segments, query values, mentions) and the JSON
//! forms (`"123"` as the contract says, a bare integer leniently).
//!
//! Asserts: no panic; a parsed id formats back to the same digits (leading zeros aside), is at most
//! 2^63−1 and survives `as_i64`/`from_i64`; a string parses iff it is 1–19 ASCII digits of a value
//! that fits an `i64`; the JSON string form and `FromStr` agree; an integer in JSON is accepted iff
//! it fits; every id serializes to a JSON string that reads back equal.
#![no_main]

use chat::Id;
use libfuzzer_sys::fuzz_target;

fn check_str(s: &str) {
    let expected = (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse::<u64>().unwrap())
        .filter(|&v| v <= i64::MAX as u64);
    let parsed = s.parse::<Id>().ok();
    assert_eq!(parsed.map(Id::get), expected, "{s:?}");
    if let Some(id) = parsed {
        let text = id.to_string();
        let trimmed = s.trim_start_matches('0');
        assert_eq!(text, if trimmed.is_empty() { "0" } else { trimmed });
        assert_eq!(text.parse::<Id>(), Ok(id));
        assert_eq!(Id::from_i64(id.as_i64()), id);
        assert!(id <= Id::MAX);
        let _ = id.timestamp_ms();
    }
    // The same text as a JSON string (escaped by serde_json) and as raw JSON.
    let json = serde_json::to_string(s).unwrap();
    assert_eq!(serde_json::from_str::<Id>(&json).ok(), parsed, "{json}");
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(s) {
        let got = serde_json::from_str::<Id>(s).ok();
        match v {
            serde_json::Value::String(inner) => assert_eq!(got, inner.parse::<Id>().ok(), "{s}"),
            serde_json::Value::Number(n) => {
                assert_eq!(got.map(Id::get), n.as_u64().filter(|&v| v <= i64::MAX as u64), "{s}")
            }
            _ => assert_eq!(got, None, "{s}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check_str(s);
    }
    // Every value an id can hold, from the bytes.
    for chunk in data.chunks_exact(8) {
        let id = Id::from_raw(u64::from_le_bytes(chunk.try_into().unwrap()) & i64::MAX as u64);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.get()));
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
        assert_eq!(id.to_string().parse::<Id>(), Ok(id));
    }
});
