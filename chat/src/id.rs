//! Snowflake ids: 64-bit, time-ordered, serialized as decimal strings in JSON.
//!
//! Layout (like Discord's): 42 bits of milliseconds since [`EPOCH_MS`], 10 bits of node id,
//! 12 bits of per-millisecond sequence. Ordering ids orders creation times, which is what
//! message history pagination relies on.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 2025-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_735_689_600_000;

/// A snowflake id. The inner value is always positive as an `i64`, so it fits SQLite and BSON integers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(u64);

impl Id {
    pub const MAX: Id = Id(i64::MAX as u64);

    pub const fn from_raw(raw: u64) -> Self {
        Id(raw)
    }
    pub const fn get(self) -> u64 {
        self.0
    }
    pub fn as_i64(self) -> i64 {
        self.0 as i64
    }
    /// Builds an id from a stored signed integer. Negative values (never written by us) map to 0.
    pub fn from_i64(v: i64) -> Self {
        Id(v.max(0) as u64)
    }
    /// Milliseconds since the Unix epoch at which this id was minted.
    pub fn timestamp_ms(self) -> u64 {
        (self.0 >> 22) + EPOCH_MS
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}
impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid id")]
pub struct InvalidId;

impl FromStr for Id {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidId);
        }
        let v: u64 = s.parse().map_err(|_| InvalidId)?;
        if v > i64::MAX as u64 {
            return Err(InvalidId);
        }
        Ok(Id(v))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept the string form (the contract) and, leniently, a plain integer.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw<'a> {
            Str(std::borrow::Cow<'a, str>),
            Int(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Str(s) => s.parse().map_err(|_| serde::de::Error::custom("invalid id")),
            Raw::Int(v) if v <= i64::MAX as u64 => Ok(Id(v)),
            Raw::Int(_) => Err(serde::de::Error::custom("invalid id")),
        }
    }
}

/// Mints ids for one node. Lock-free; safe to share.
#[derive(Debug)]
pub struct Snowflakes {
    node: u64,
    /// Last minted value without the node bits: (ms << 12) | seq.
    last: AtomicU64,
}

impl Snowflakes {
    pub fn new(node: u16) -> Self {
        Snowflakes { node: u64::from(node & 0x3ff), last: AtomicU64::new(0) }
    }

    pub fn next(&self) -> Id {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(EPOCH_MS)
            .saturating_sub(EPOCH_MS);
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            // Never go backwards, even if the clock does: borrow from the sequence instead.
            let candidate = (now << 12).max(prev + 1);
            match self.last.compare_exchange_weak(prev, candidate, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    let ms = candidate >> 12;
                    let seq = candidate & 0xfff;
                    return Id((ms << 22) | (self.node << 12) | seq);
                }
                Err(actual) => prev = actual,
            }
        }
    }
}

impl Default for Snowflakes {
    fn default() -> Self {
        Self::new(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strictly_increasing() {
        let s = Snowflakes::new(3);
        let mut last = Id::default();
        for _ in 0..10_000 {
            let id = s.next();
            assert!(id > last);
            last = id;
        }
    }

    #[test]
    fn id_serializes_as_string_and_parses_back() {
        let id = Id::from_raw(1234567890123);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"1234567890123\"");
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in ["", "abc", "-1", "99999999999999999999", "1 2", "١٢"] {
            assert!(bad.parse::<Id>().is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamp_roughly_matches_now() {
        let id = Snowflakes::new(0).next();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(now.abs_diff(id.timestamp_ms()) < 5_000);
    }
}
