//! The per-session record of sent dispatches that RESUME replays from.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::events::Payload;

/// Keeps the newest `capacity` dispatches with their sequence numbers. Payloads are shared with the
/// other recipients, so an entry costs a pointer and a number.
#[derive(Debug)]
pub struct ReplayBuffer {
    entries: VecDeque<(u64, Arc<Payload>)>,
    capacity: usize,
}

/// A resume asked for events that are no longer kept.
#[derive(Debug, PartialEq, Eq)]
pub struct TooOld;

impl ReplayBuffer {
    pub fn new(capacity: usize) -> Self {
        ReplayBuffer { entries: VecDeque::new(), capacity: capacity.max(1) }
    }

    pub fn push(&mut self, seq: u64, payload: Arc<Payload>) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((seq, payload));
    }

    /// Everything after `seq`, provided nothing after it was dropped. `last` is the newest sequence
    /// number handed out; a client claiming to have seen more than that is refused too.
    pub fn since(&self, seq: u64, last: u64) -> Result<Vec<(u64, Arc<Payload>)>, TooOld> {
        if seq > last {
            return Err(TooOld);
        }
        if seq == last {
            return Ok(Vec::new());
        }
        match self.entries.front() {
            Some((first, _)) if *first <= seq + 1 => {
                Ok(self.entries.iter().filter(|(s, _)| *s > seq).cloned().collect())
            }
            _ => Err(TooOld),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Arc<Payload> {
        Arc::new(Payload { name: "X", data: "{}".into() })
    }

    #[test]
    fn replays_exactly_the_missed_sequence() {
        let mut b = ReplayBuffer::new(10);
        for s in 1..=5 {
            b.push(s, p());
        }
        let got: Vec<u64> = b.since(2, 5).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(got, vec![3, 4, 5]);
        assert!(b.since(5, 5).unwrap().is_empty());
    }

    #[test]
    fn refuses_when_events_were_dropped() {
        let mut b = ReplayBuffer::new(3);
        for s in 1..=6 {
            b.push(s, p());
        }
        assert_eq!(b.since(2, 6).err(), Some(TooOld));
        assert_eq!(b.since(3, 6).unwrap().len(), 3);
    }

    #[test]
    fn refuses_a_sequence_from_the_future() {
        let b = ReplayBuffer::new(3);
        assert_eq!(b.since(7, 0).err(), Some(TooOld));
        assert!(b.since(0, 0).unwrap().is_empty());
    }
}
