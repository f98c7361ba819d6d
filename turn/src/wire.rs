//! The STUN/TURN wire format (RFC 8489, RFC 8656): message parsing into a borrowed view, a builder
//! that appends MESSAGE-INTEGRITY, ChannelData framing, and the length of the next frame on a stream.
//!
//! Only what a TURN server needs; every length is checked against the datagram before it is read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const MAGIC: u32 = 0x2112_a442;
pub const HEADER: usize = 20;

/// Methods.
pub const BINDING: u16 = 0x001;
pub const ALLOCATE: u16 = 0x003;
pub const REFRESH: u16 = 0x004;
pub const SEND: u16 = 0x006;
pub const DATA: u16 = 0x007;
pub const CREATE_PERMISSION: u16 = 0x008;
pub const CHANNEL_BIND: u16 = 0x009;

/// Attributes.
pub const ATTR_USERNAME: u16 = 0x0006;
pub const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ATTR_ERROR_CODE: u16 = 0x0009;
pub const ATTR_UNKNOWN_ATTRIBUTES: u16 = 0x000a;
pub const ATTR_CHANNEL_NUMBER: u16 = 0x000c;
pub const ATTR_LIFETIME: u16 = 0x000d;
pub const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
pub const ATTR_DATA: u16 = 0x0013;
pub const ATTR_REALM: u16 = 0x0014;
pub const ATTR_NONCE: u16 = 0x0015;
pub const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const ATTR_REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
pub const ATTR_EVEN_PORT: u16 = 0x0018;
pub const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;
pub const ATTR_DONT_FRAGMENT: u16 = 0x001a;
pub const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub const ATTR_FINGERPRINT: u16 = 0x8028;

/// Comprehension-required attributes this server understands (or may safely ignore); any other
/// below 0x8000 is answered with 420 Unknown Attribute, as RFC 8489 §14 requires.
const UNDERSTOOD: [u16; 14] = [
    ATTR_USERNAME,
    ATTR_MESSAGE_INTEGRITY,
    ATTR_ERROR_CODE,
    ATTR_CHANNEL_NUMBER,
    ATTR_LIFETIME,
    ATTR_XOR_PEER_ADDRESS,
    ATTR_DATA,
    ATTR_REALM,
    ATTR_NONCE,
    ATTR_REQUESTED_ADDRESS_FAMILY,
    ATTR_EVEN_PORT,
    ATTR_REQUESTED_TRANSPORT,
    ATTR_DONT_FRAGMENT,
    ATTR_XOR_MAPPED_ADDRESS,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

/// The 14-bit message type from a method and a class (RFC 8489 §5: the class bits sit at 4 and 8).
pub fn message_type(method: u16, class: Class) -> u16 {
    let c = match class {
        Class::Request => 0b00,
        Class::Indication => 0b01,
        Class::Success => 0b10,
        Class::Error => 0b11,
    };
    (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
}

fn split_type(t: u16) -> (u16, Class) {
    let method = (t & 0x000f) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0f80);
    let class = match ((t >> 4) & 1) | ((t >> 7) & 2) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    };
    (method, class)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shorter than its header or its declared length")]
    Truncated,
    #[error("not a STUN message (bad leading bits or magic cookie)")]
    NotStun,
    #[error("attribute lengths do not add up")]
    BadAttribute,
}

/// A parsed message borrowing the datagram; attributes are found by scanning, which for the
/// handful a TURN request carries beats building a map.
#[derive(Debug)]
pub struct Message<'a> {
    pub method: u16,
    pub class: Class,
    pub transaction: [u8; 12],
    raw: &'a [u8],
}

impl<'a> Message<'a> {
    pub fn parse(raw: &'a [u8]) -> Result<Message<'a>, WireError> {
        if raw.len() < HEADER {
            return Err(WireError::Truncated);
        }
        let t = u16::from_be_bytes([raw[0], raw[1]]);
        let len = u16::from_be_bytes([raw[2], raw[3]]) as usize;
        if t & 0xc000 != 0 || u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) != MAGIC || !len.is_multiple_of(4) {
            return Err(WireError::NotStun);
        }
        let raw = raw.get(..HEADER + len).ok_or(WireError::Truncated)?;
        let mut transaction = [0u8; 12];
        transaction.copy_from_slice(&raw[8..20]);
        let (method, class) = split_type(t);
        let m = Message { method, class, transaction, raw };
        // Walk once so later lookups can trust the layout.
        let mut it = m.attributes();
        for _ in it.by_ref() {}
        if !it.clean {
            return Err(WireError::BadAttribute);
        }
        Ok(m)
    }

    pub fn attributes(&self) -> Attributes<'a> {
        Attributes { rest: &self.raw[HEADER..], offset: HEADER, clean: true }
    }

    /// The first value of attribute `kind` before MESSAGE-INTEGRITY (later ones are not covered by
    /// the integrity check and must be ignored, RFC 8489 §14.5) — FINGERPRINT aside.
    pub fn get(&self, kind: u16) -> Option<&'a [u8]> {
        for (k, _, v) in self.attributes() {
            if k == kind {
                return Some(v);
            }
            if k == ATTR_MESSAGE_INTEGRITY {
                return None;
            }
        }
        None
    }

    /// Every value of `kind` (CreatePermission may name several peers).
    pub fn get_all(&self, kind: u16) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attributes()
            .take_while(|(k, _, _)| *k != ATTR_MESSAGE_INTEGRITY)
            .filter(move |(k, _, _)| *k == kind)
            .map(|(_, _, v)| v)
    }

    /// The first comprehension-required attribute this server does not know.
    pub fn unknown_required(&self) -> Vec<u16> {
        self.attributes().map(|(k, _, _)| k).filter(|k| *k < 0x8000 && !UNDERSTOOD.contains(k)).collect()
    }

    pub fn text(&self, kind: u16) -> Option<&'a str> {
        self.get(kind).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn u32(&self, kind: u16) -> Option<u32> {
        self.get(kind).and_then(|v| v.get(..4)).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        self.get(kind).and_then(|v| decode_xor_address(v, &self.transaction))
    }

    /// Whether MESSAGE-INTEGRITY is present and matches `key` (RFC 8489 §14.5: the HMAC covers the
    /// message up to the attribute, with the header length pointing just past it).
    pub fn integrity_ok(&self, key: &[u8]) -> bool {
        let Some((offset, value)) =
            self.attributes().find(|(k, _, _)| *k == ATTR_MESSAGE_INTEGRITY).map(|(_, off, v)| (off, v))
        else {
            return false;
        };
        if value.len() != 20 {
            return false;
        }
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else { return false };
        let covered_len = (offset + 24 - HEADER) as u16;
        mac.update(&self.raw[..2]);
        mac.update(&covered_len.to_be_bytes());
        mac.update(&self.raw[4..offset]);
        mac.verify_slice(value).is_ok()
    }
}

/// Iterates (type, offset of the attribute header, value).
pub struct Attributes<'a> {
    rest: &'a [u8],
    offset: usize,
    clean: bool,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (u16, usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < 4 {
            self.clean = false;
            return None;
        }
        let kind = u16::from_be_bytes([self.rest[0], self.rest[1]]);
        let len = u16::from_be_bytes([self.rest[2], self.rest[3]]) as usize;
        let padded = 4 + len.div_ceil(4) * 4;
        let (Some(value), true) = (self.rest.get(4..4 + len), self.rest.len() >= padded) else {
            self.clean = false;
            self.rest = &[];
            return None;
        };
        let at = self.offset;
        self.rest = &self.rest[padded..];
        self.offset += padded;
        Some((kind, at, value))
    }
}

pub fn decode_xor_address(v: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ (MAGIC >> 16) as u16;
    match v.get(1)? {
        0x01 => {
            let b = v.get(4..8)?;
            let ip = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) ^ MAGIC;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        0x02 => {
            let b = v.get(4..20)?;
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC.to_be_bytes());
            key[4..].copy_from_slice(transaction);
            let mut ip = [0u8; 16];
            for i in 0..16 {
                ip[i] = b[i] ^ key[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => None,
    }
}

fn encode_xor_address(addr: SocketAddr, transaction: &[u8; 12]) -> Vec<u8> {
    let port = addr.port() ^ (MAGIC >> 16) as u16;
    match addr.ip() {
        IpAddr::V4(ip) => {
            let mut v = vec![0, 0x01];
            v.extend_from_slice(&port.to_be_bytes());
            v.extend_from_slice(&(u32::from(ip) ^ MAGIC).to_be_bytes());
            v
        }
        IpAddr::V6(ip) => {
            let mut v = vec![0, 0x02];
            v.extend_from_slice(&port.to_be_bytes());
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC.to_be_bytes());
            key[4..].copy_from_slice(transaction);
            v.extend(ip.octets().iter().zip(key).map(|(a, k)| a ^ k));
            v
        }
    }
}

/// Builds one message; [`Builder::finish`] appends MESSAGE-INTEGRITY when given a key.
pub struct Builder {
    buf: Vec<u8>,
    transaction: [u8; 12],
}

impl Builder {
    pub fn new(method: u16, class: Class, transaction: [u8; 12]) -> Builder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&message_type(method, class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC.to_be_bytes());
        buf.extend_from_slice(&transaction);
        Builder { buf, transaction }
    }

    pub fn attr(mut self, kind: u16, value: &[u8]) -> Builder {
        self.buf.extend_from_slice(&kind.to_be_bytes());
        self.buf.extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        let pad = (4 - value.len() % 4) % 4;
        self.buf.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub fn xor_address(self, kind: u16, addr: SocketAddr) -> Builder {
        let v = encode_xor_address(addr, &self.transaction);
        self.attr(kind, &v)
    }

    pub fn u32(self, kind: u16, value: u32) -> Builder {
        self.attr(kind, &value.to_be_bytes())
    }

    pub fn error(self, code: u16, reason: &str) -> Builder {
        let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        v.extend_from_slice(reason.as_bytes());
        self.attr(ATTR_ERROR_CODE, &v)
    }

    pub fn finish(mut self, key: Option<&[u8]>) -> Vec<u8> {
        if let Some(key) = key {
            let covered = (self.buf.len() + 24 - HEADER) as u16;
            self.buf[2..4].copy_from_slice(&covered.to_be_bytes());
            let mac = Hmac::<Sha1>::new_from_slice(key).map(|mut m| {
                m.update(&self.buf);
                m.finalize().into_bytes()
            });
            if let Ok(mac) = mac {
                self = self.attr(ATTR_MESSAGE_INTEGRITY, &mac);
            }
        }
        let len = (self.buf.len() - HEADER) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}

/// RFC 8656 §12: channel numbers 0x4000–0x4FFF.
pub fn valid_channel(n: u16) -> bool {
    (0x4000..=0x4fff).contains(&n)
}

/// A ChannelData message's channel and payload (the declared length must fit; trailing padding,
/// which TCP carries, is ignored).
pub fn parse_channel_data(raw: &[u8]) -> Option<(u16, &[u8])> {
    let channel = u16::from_be_bytes([*raw.first()?, *raw.get(1)?]);
    let len = u16::from_be_bytes([*raw.get(2)?, *raw.get(3)?]) as usize;
    if !valid_channel(channel) {
        return None;
    }
    Some((channel, raw.get(4..4 + len)?))
}

/// Writes a ChannelData message into `out`; `pad` rounds it to 4 bytes as stream transports require.
pub fn write_channel_data(out: &mut Vec<u8>, channel: u16, payload: &[u8], pad: bool) {
    out.clear();
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    if pad {
        out.extend(std::iter::repeat_n(0, (4 - payload.len() % 4) % 4));
    }
}

/// The longest frame [`stream_frame_len`] can answer: a STUN message with a 65,535-byte body (a
/// ChannelData frame, 4 + 65,535 + 1 byte of padding, is shorter).
pub const MAX_STREAM_FRAME: usize = HEADER + u16::MAX as usize;

/// On a stream (TURN over TLS), how long the frame starting with these 4 bytes is (at most
/// [`MAX_STREAM_FRAME`]), or None when they begin neither a STUN message nor ChannelData (the
/// connection is then closed).
pub fn stream_frame_len(head: [u8; 4]) -> Option<usize> {
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    match head[0] >> 6 {
        0b00 => Some(HEADER + len),
        0b01 => Some(4 + len.div_ceil(4) * 4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    #[test]
    fn message_types_match_the_rfc_table() {
        assert_eq!(message_type(BINDING, Class::Request), 0x0001);
        assert_eq!(message_type(BINDING, Class::Success), 0x0101);
        assert_eq!(message_type(ALLOCATE, Class::Error), 0x0113);
        assert_eq!(message_type(SEND, Class::Indication), 0x0016);
        assert_eq!(message_type(DATA, Class::Indication), 0x0017);
        assert_eq!(message_type(CHANNEL_BIND, Class::Success), 0x0109);
        assert_eq!(split_type(0x0113), (ALLOCATE, Class::Error));
    }

    #[test]
    fn xor_addresses_round_trip_for_both_families() {
        for addr in ["192.0.2.7:3478", "[2001:db8::1]:50000"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let m =
                Builder::new(ALLOCATE, Class::Success, TID).xor_address(ATTR_XOR_RELAYED_ADDRESS, addr).finish(None);
            let parsed = Message::parse(&m).unwrap();
            assert_eq!(parsed.xor_address(ATTR_XOR_RELAYED_ADDRESS), Some(addr));
        }
    }

    #[test]
    fn integrity_is_verified_and_a_flipped_bit_fails_it() {
        let m = Builder::new(REFRESH, Class::Request, TID).u32(ATTR_LIFETIME, 600).finish(Some(b"key"));
        assert!(Message::parse(&m).unwrap().integrity_ok(b"key"));
        assert!(!Message::parse(&m).unwrap().integrity_ok(b"other"));
        let mut bad = m.clone();
        bad[27] ^= 1;
        assert!(!Message::parse(&bad).unwrap().integrity_ok(b"key"));
    }

    #[test]
    fn truncated_and_malformed_input_is_refused() {
        let m = Builder::new(BINDING, Class::Request, TID).u32(ATTR_LIFETIME, 1).finish(None);
        assert_eq!(Message::parse(&m[..19]).unwrap_err(), WireError::Truncated);
        assert_eq!(Message::parse(&m[..m.len() - 2]).unwrap_err(), WireError::Truncated);
        let mut bad_len = m.clone();
        bad_len[23] = 200; // attribute claims more than the message holds
        assert_eq!(Message::parse(&bad_len).unwrap_err(), WireError::BadAttribute);
        let mut no_magic = m.clone();
        no_magic[4] = 0;
        assert_eq!(Message::parse(&no_magic).unwrap_err(), WireError::NotStun);
        assert!(parse_channel_data(&[0x40, 0, 0, 9, 1, 2]).is_none(), "length past the end");
        assert!(parse_channel_data(&[0x50, 0, 0, 0]).is_none(), "channel outside 0x4000-0x4FFF");
    }

    #[test]
    fn stream_frames_are_sized_from_their_first_four_bytes() {
        assert_eq!(stream_frame_len([0x00, 0x03, 0x00, 0x08]), Some(28));
        assert_eq!(stream_frame_len([0x40, 0x00, 0x00, 0x05]), Some(12), "ChannelData padded to 4 on a stream");
        assert_eq!(stream_frame_len([0x80, 0, 0, 0]), None);
        assert_eq!(stream_frame_len([0x00, 0x01, 0xff, 0xff]), Some(MAX_STREAM_FRAME), "the longest frame");
        assert!(stream_frame_len([0x4f, 0xff, 0xff, 0xff]).is_some_and(|n| n <= MAX_STREAM_FRAME));
    }
}
