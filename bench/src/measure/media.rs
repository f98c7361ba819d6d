//! Per-packet media accounting across the SFU: the sender registers each Opus payload's key and
//! send time; the receiver looks the key up on the same clock. That yields forwarding latency,
//! per talker → listener loss and jitter without touching RTP headers, which the SFU rewrites.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::latency::Histogram;

/// Registered sends are forgotten after this long; later arrivals count as lost.
pub const KEEP: Duration = Duration::from_secs(5);

/// A key for a payload that survives forwarding (the SFU forwards Opus payloads unchanged).
pub fn payload_key(payload: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut h);
    h.finish()
}

#[derive(Clone, Copy)]
struct Sent {
    at: Instant,
    talker: u32,
    /// Sent inside the measurement window.
    counted: bool,
}

/// What every client of one run shares: the send registry and the measurement window.
#[derive(Default)]
pub struct MediaLedger {
    sent: Mutex<HashMap<u64, Sent>>,
    measuring: AtomicBool,
    /// Payloads whose key was already registered (ignored for latency and loss).
    pub collisions: AtomicU64,
}

/// A receiver's view of one talker.
#[derive(Default, Clone)]
pub struct PairStats {
    /// Packets sent inside the window and received.
    pub received: u64,
    /// RFC 3550 interarrival jitter, µs.
    pub jitter_us: f64,
    last: Option<(Instant, Instant)>,
}

/// A receiver's counters (one per client; merged at the end).
#[derive(Default, Clone)]
pub struct ReceiverStats {
    pub latency: Histogram,
    pub pairs: HashMap<u32, PairStats>,
    /// Packets whose key was unknown (too late, or not ours).
    pub unknown: u64,
}

impl MediaLedger {
    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Ordering::SeqCst);
    }

    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    /// Registers a payload about to be sent; returns whether it counts for loss (sent inside
    /// the window and its key is unique).
    pub fn register(&self, key: u64, talker: u32, at: Instant) -> bool {
        let counted = self.measuring();
        let Ok(mut sent) = self.sent.lock() else { return false };
        match sent.entry(key) {
            Entry::Occupied(e) => {
                // Ambiguous from now on: drop both.
                e.remove();
                self.collisions.fetch_add(1, Ordering::Relaxed);
                false
            }
            Entry::Vacant(v) => {
                v.insert(Sent { at, talker, counted });
                counted
            }
        }
    }

    /// Forgets sends older than [`KEEP`] (each talker passes its own keys in send order).
    pub fn expire(&self, keys: &mut VecDeque<(u64, Instant)>, now: Instant) {
        let mut old = Vec::new();
        while let Some(&(k, at)) = keys.front() {
            if now.saturating_duration_since(at) < KEEP {
                break;
            }
            old.push(k);
            keys.pop_front();
        }
        if old.is_empty() {
            return;
        }
        if let Ok(mut sent) = self.sent.lock() {
            for k in old {
                sent.remove(&k);
            }
        }
    }

    /// A payload arrived at `at`; records latency (window only), the pair count and jitter.
    /// Returns the talker, if the payload is known.
    pub fn received(&self, stats: &mut ReceiverStats, key: u64, at: Instant) -> Option<u32> {
        let sent = self.sent.lock().ok().and_then(|m| m.get(&key).copied());
        let Some(sent) = sent else {
            stats.unknown += 1;
            return None;
        };
        let pair = stats.pairs.entry(sent.talker).or_default();
        if sent.counted {
            pair.received += 1;
            stats.latency.record(at.saturating_duration_since(sent.at));
        }
        if let Some((s0, r0)) = pair.last {
            let transit_change = signed_us(r0, at) - signed_us(s0, sent.at);
            pair.jitter_us += (transit_change.abs() - pair.jitter_us) / 16.0;
        }
        pair.last = Some((sent.at, at));
        Some(sent.talker)
    }
}

/// `b - a` in µs, signed.
fn signed_us(a: Instant, b: Instant) -> f64 {
    if b >= a { (b - a).as_secs_f64() * 1e6 } else { -((a - b).as_secs_f64() * 1e6) }
}

/// Expected vs received packets over all talker → listener pairs of a run.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct LossSummary {
    pub expected: u64,
    pub received: u64,
    pub loss: f64,
    /// The worst single pair.
    pub worst_pair_loss: f64,
    pub pairs: u64,
}

/// `sent[t]`: packets talker t sent in the window; `listeners[t]`: the receivers that should
/// get them, each with its counters.
pub fn loss(sent: &HashMap<u32, u64>, receivers: &[(Vec<u32>, &ReceiverStats)]) -> LossSummary {
    let mut s = LossSummary::default();
    for (talkers, stats) in receivers {
        for t in talkers {
            let expected = sent.get(t).copied().unwrap_or(0);
            let got = stats.pairs.get(t).map(|p| p.received).unwrap_or(0).min(expected);
            s.expected += expected;
            s.received += got;
            s.pairs += 1;
            if expected > 0 {
                s.worst_pair_loss = s.worst_pair_loss.max(1.0 - got as f64 / expected as f64);
            }
        }
    }
    s.loss = if s.expected == 0 { 0.0 } else { 1.0 - s.received as f64 / s.expected as f64 };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_content_only() {
        assert_eq!(payload_key(b"abc"), payload_key(&b"xabc"[1..]));
        assert_ne!(payload_key(b"abc"), payload_key(b"abd"));
        assert_ne!(payload_key(b""), payload_key(b"\0"));
    }

    #[test]
    fn latency_loss_and_jitter() {
        let ledger = MediaLedger::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Before the window: not counted, but known.
        assert!(!ledger.register(1, 7, t0));
        ledger.set_measuring(true);
        for i in 2..=5u64 {
            assert!(ledger.register(i, 7, t0 + ms(20 * i)));
        }
        let mut rx = ReceiverStats::default();
        assert_eq!(ledger.received(&mut rx, 1, t0 + ms(3)), Some(7));
        // Packets 2 and 3 arrive 3 ms after sending, packet 4 8 ms after (5 ms jitter), 5 is lost.
        ledger.received(&mut rx, 2, t0 + ms(43));
        ledger.received(&mut rx, 3, t0 + ms(63));
        ledger.received(&mut rx, 4, t0 + ms(88));
        assert_eq!(ledger.received(&mut rx, 99, t0), None);
        assert_eq!(rx.unknown, 1);
        assert_eq!(rx.latency.summary().count, 3);
        assert_eq!(rx.latency.quantile_us(0.5), 3000);
        let pair = &rx.pairs[&7];
        assert_eq!(pair.received, 3);
        assert!((pair.jitter_us - 5000.0 / 16.0).abs() < 1.0, "{}", pair.jitter_us);

        let sent = HashMap::from([(7u32, 4u64), (8, 10)]);
        let other = ReceiverStats::default();
        let l = loss(&sent, &[(vec![7], &rx), (vec![7, 8], &other)]);
        assert_eq!((l.expected, l.received, l.pairs), (18, 3, 3));
        assert_eq!(l.worst_pair_loss, 1.0);
        assert!((l.loss - 15.0 / 18.0).abs() < 1e-9);
    }

    #[test]
    fn duplicate_keys_are_dropped() {
        let ledger = MediaLedger::default();
        ledger.set_measuring(true);
        let now = Instant::now();
        assert!(ledger.register(5, 1, now));
        assert!(!ledger.register(5, 2, now));
        assert_eq!(ledger.collisions.load(Ordering::Relaxed), 1);
        let mut rx = ReceiverStats::default();
        assert_eq!(ledger.received(&mut rx, 5, now), None);
    }

    #[test]
    fn expiry_forgets_old_sends() {
        let ledger = MediaLedger::default();
        let t0 = Instant::now();
        let mut keys = VecDeque::new();
        for (k, dt) in [(1u64, 0u64), (2, 1), (3, 6)] {
            ledger.register(k, 1, t0 + Duration::from_secs(dt));
            keys.push_back((k, t0 + Duration::from_secs(dt)));
        }
        ledger.expire(&mut keys, t0 + Duration::from_secs(6));
        assert_eq!(keys.len(), 1);
        let mut rx = ReceiverStats::default();
        assert_eq!(ledger.received(&mut rx, 1, t0), None);
        assert_eq!(ledger.received(&mut rx, 3, t0), Some(1));
    }
}
