//! A cluster stream entry as another node (or anyone with Redis access) may have written it
//! (`chat::events::wire::decode`).
//!
//! Asserts: no panic; an accepted entry names a known event; it re-encodes, and the re-encoding
//! decodes to the same event name, payload bytes and audience/effect JSON (what every node would
//! deliver is the same whichever node encoded it).
#![no_main]

use chat::events::wire::{decode, encode};
use chat::events::{EVENT_NAMES, Event};
use libfuzzer_sys::fuzz_target;

/// The parts of an event that decide what a session receives.
fn shape(e: &Event) -> String {
    encode(e).unwrap_or_else(|err| panic!("an accepted entry must re-encode: {err}"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(event) = decode(text) else { return };
    if let Event::Dispatch(d) = &event {
        assert!(EVENT_NAMES.contains(&d.payload.name), "unknown name accepted: {}", d.payload.name);
        assert!(serde_json::from_str::<serde_json::Value>(&d.payload.data).is_ok(), "the payload is JSON");
    }
    let once = shape(&event);
    let again = decode(&once).unwrap_or_else(|err| panic!("a re-encoded entry must decode: {err}\n{once}"));
    assert_eq!(shape(&again), once, "encoding is stable");
});
