//! SDP from clients as the SFU takes it (`sfu::room::Room`, Sans-IO, no sockets): a publish offer
//! (`Command::PublishOffer`) or an answer to the SFU's subscribe offer (`Command::SubscribeAnswer`).
//!
//! Input: the first byte chooses (bit 0: SPEAK right, bit 1: VIDEO right, bit 2: answer instead of
//! offer); the rest is the SDP text.
//!
//! Asserts: no panic; an SDP that str0m cannot parse is answered with `bad_sdp` and nothing else
//! happens; an offer the token's rights forbid (by the SFU's own check) is refused with `forbidden`;
//! whatever was accepted, **no track of a kind the rights forbid is published** (the text check and
//! str0m's reading of the offer agree); every SDP the SFU sends parses, and its subscribe offers
//! carry no transport-cc on audio lines. (str0m's printing of a client's SDP is not checked: it is
//! not always SDP str0m parses again, and Chorus never re-parses it; see docs/fuzzing.md.)
//! "What the text check sees" is compared with str0m's own printing of the parsed offer, and the
//! SFU's answer must not receive a forbidden kind: the text check and str0m must not disagree in
//! the client's favour.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sfu::metrics::{LocalCounters, SfuMetrics};
use sfu::room::{Ctx, Room};
use sfu::router::Router;
use sfu::{Command, ParticipantId, Rights, SfuEvent, TrackKind, Transmitter};
use str0m::change::{SdpAnswer, SdpOffer};

struct Discard;
impl Transmitter for Discard {
    fn transmit(&mut self, _: SocketAddr, _: &[u8]) {}
}

fn metrics() -> &'static SfuMetrics {
    static M: OnceLock<SfuMetrics> = OnceLock::new();
    M.get_or_init(|| SfuMetrics::new(&prometheus::Registry::new()).unwrap())
}

type Events = Arc<Mutex<Vec<SfuEvent>>>;

struct World {
    room: Room,
    router: Router,
    counters: LocalCounters,
    now: Instant,
}

impl World {
    fn new() -> World {
        let sfu: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        World {
            room: Room::new(1, &[sfu], Duration::from_secs(30), 1_000_000),
            router: Router::default(),
            counters: LocalCounters::default(),
            now: Instant::now(),
        }
    }

    fn ctx<'a>(&'a mut self, out: &'a mut Discard) -> (&'a mut Room, Ctx<'a>) {
        let ctx =
            Ctx { now: self.now, out, router: &mut self.router, counters: &mut self.counters, metrics: metrics() };
        (&mut self.room, ctx)
    }

    fn join(&mut self, id: u64, rights: Rights) -> Events {
        let events: Events = Arc::default();
        let sink = events.clone();
        let mut out = Discard;
        let (room, mut ctx) = self.ctx(&mut out);
        room.join(&mut ctx, ParticipantId(id), id, rights, Box::new(move |e| sink.lock().unwrap().push(e)));
        events
    }

    fn command(&mut self, id: u64, cmd: Command) {
        let mut out = Discard;
        let (room, mut ctx) = self.ctx(&mut out);
        room.command(&mut ctx, ParticipantId(id), cmd);
    }
}

fn take(events: &Events) -> Vec<SfuEvent> {
    std::mem::take(&mut *events.lock().unwrap())
}

/// What the SFU sends must itself parse; subscribe offers have no transport-cc on audio lines.
fn check_outgoing(events: &[SfuEvent]) {
    for e in events {
        match e {
            SfuEvent::Offer { sdp } => {
                SdpOffer::from_sdp_string(sdp).expect("the SFU's offer parses");
                assert_eq!(sfu::fuzzing::without_audio_transport_cc(sdp), *sdp, "transport-cc on an audio line");
            }
            SfuEvent::Answer { sdp } => {
                SdpAnswer::from_sdp_string(sdp).expect("the SFU's answer parses");
            }
            _ => {}
        }
    }
}

/// Each media section of an SDP the SFU wrote: its kind, and whether the SFU receives on it (port not
/// 0 and the direction `recvonly` or `sendrecv`).
fn sections(sdp: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool, bool, bool)> = Vec::new();
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split(' ');
            let kind = f.next().unwrap_or("").to_owned();
            let open = f.next() != Some("0");
            out.push((kind, open, false, false));
        } else if let Some(last) = out.last_mut() {
            match line {
                "a=recvonly" | "a=sendrecv" => last.2 = true,
                "a=sendonly" | "a=inactive" => last.3 = true,
                _ => {}
            }
        }
    }
    out.into_iter().map(|(kind, open, recv, _)| (kind, open && recv)).collect()
}

fn errors(events: &[SfuEvent]) -> Vec<&'static str> {
    events.iter().filter_map(|e| if let SfuEvent::Error { code, .. } = e { Some(*code) } else { None }).collect()
}

/// A room with participant 1 (the publisher) and 2 (the subscriber), kept between runs while a run
/// changed nothing in it: joining builds four str0m peer connections (each with a new DTLS
/// certificate), far more work than most inputs, which str0m's parser refuses.
struct Cached {
    w: World,
    a: Events,
    b: Events,
    /// The subscriber has an offer from the SFU to answer.
    pending: bool,
}

thread_local! {
    static WORLDS: RefCell<HashMap<u8, Cached>> = RefCell::new(HashMap::new());
}

fn fresh(publisher: Rights, subscriber: Rights) -> Cached {
    let mut w = World::new();
    let a = w.join(1, publisher);
    let b = w.join(2, subscriber);
    check_outgoing(&take(&a));
    check_outgoing(&take(&b));
    Cached { w, a, b, pending: false }
}

/// A publish offer from 1; true when the room is as it was (the offer was refused before any change).
fn offer(c: &mut Cached, sdp: &str, rights: Rights) -> bool {
    c.w.command(1, Command::PublishOffer(sdp.to_owned()));
    let mine = take(&c.a);
    let theirs = take(&c.b);
    check_outgoing(&mine);
    check_outgoing(&theirs);
    let answered = mine.iter().any(|e| matches!(e, SfuEvent::Answer { .. }));
    let errs = errors(&mine);
    let parsed = SdpOffer::from_sdp_string(sdp);
    let allowed = sfu::fuzzing::check_publish_rights(sdp, rights);
    match (&parsed, allowed) {
        (Err(_), _) => {
            assert_eq!(errs, ["bad_sdp"], "an unparsable offer: {mine:?}");
            assert!(!answered && theirs.is_empty(), "an unparsable offer changed something: {mine:?} {theirs:?}");
        }
        (Ok(_), Err(_)) => {
            assert_eq!(errs, ["forbidden"], "a forbidden offer: {mine:?}");
            assert!(!answered && theirs.is_empty(), "a forbidden offer changed something: {mine:?} {theirs:?}");
        }
        (Ok(o), Ok(())) => {
            // The text check must see at least what str0m reads: str0m's own printing of the parsed
            // offer (one direction per line) passes whenever the raw text passed.
            let normalized = o.to_sdp_string();
            assert!(
                sfu::fuzzing::check_publish_rights(&normalized, rights).is_ok(),
                "the text check passed an offer that str0m reads as sending a forbidden kind: {sdp:?} -> {normalized:?}"
            );
        }
    }
    // The SFU's answer receives only kinds the rights allow.
    for e in &mine {
        if let SfuEvent::Answer { sdp: answer } = e {
            for (kind, receives) in sections(answer) {
                let allowed = match kind.as_str() {
                    "audio" => rights.speak,
                    "video" => rights.video,
                    _ => true,
                };
                assert!(allowed || !receives, "the answer receives {kind} without the right: {sdp:?} -> {answer:?}");
            }
        }
    }
    // Tracks are published once media flows (after ICE/DTLS), so none should appear here; any that
    // does must be of an allowed kind.
    for e in &theirs {
        if let SfuEvent::TrackPublished(t) = e {
            assert_eq!(t.participant_id, ParticipantId(1));
            match t.kind {
                TrackKind::Audio => assert!(rights.speak, "audio published without SPEAK: {sdp:?}"),
                TrackKind::Video => assert!(rights.video, "video published without VIDEO: {sdp:?}"),
            }
        }
    }
    parsed.is_err() || allowed.is_err()
}

/// An answer from 2 to the SFU's subscribe offer (made by an ICE restart); true when the room is as
/// it was.
fn answer(c: &mut Cached, sdp: &str) -> bool {
    if !c.pending {
        c.w.command(2, Command::IceRestart);
        let offered = take(&c.b);
        check_outgoing(&offered);
        c.pending = offered.iter().any(|e| matches!(e, SfuEvent::Offer { .. }));
    }
    c.w.command(2, Command::SubscribeAnswer(sdp.to_owned()));
    let mine = take(&c.b);
    check_outgoing(&mine);
    let errs = errors(&mine);
    if SdpAnswer::from_sdp_string(sdp).is_err() {
        assert_eq!(errs, ["bad_sdp"], "an unparsable answer: {mine:?}");
        return true;
    }
    if !c.pending {
        assert_eq!(errs, ["no_pending_offer"], "an answer without an offer: {mine:?}");
        return true;
    }
    false
}

/// The SFU catches str0m's panics on SDP (a panic must not take a worker down), but libfuzzer-sys's
/// panic hook aborts on every panic, caught or not. The standard hook is put back once: a panic the
/// SFU catches then passes, and one it does not still reaches libfuzzer-sys's `catch_unwind`, which
/// aborts — a crash, as before.
fn let_caught_panics_pass() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| eprintln!("panic (caught unless libFuzzer reports a crash next): {info}")));
    });
}

fuzz_target!(|data: &[u8]| {
    let_caught_panics_pass();
    let Some((&flags, rest)) = data.split_first() else { return };
    let Ok(sdp) = std::str::from_utf8(rest) else { return };
    let flags = flags & 7;
    let rights = Rights { speak: flags & 1 != 0, video: flags & 2 != 0 };
    let answer_mode = flags & 4 != 0;

    let all = Rights { speak: true, video: true };
    let mut c = WORLDS
        .with(|m| m.borrow_mut().remove(&flags))
        .unwrap_or_else(|| if answer_mode { fresh(all, rights) } else { fresh(rights, all) });
    let unchanged = if answer_mode { answer(&mut c, sdp) } else { offer(&mut c, sdp, rights) };
    if unchanged {
        WORLDS.with(|m| m.borrow_mut().insert(flags, c));
        return;
    }
    // Whatever happened, the subscriber can be offered again, and both can leave.
    c.w.command(2, Command::IceRestart);
    check_outgoing(&take(&c.b));
    c.w.command(1, Command::Leave);
    c.w.command(2, Command::Leave);
    assert!(c.w.room.is_empty());
});
