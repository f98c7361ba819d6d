//! Datagram demultiplexing: which peer connection owns a datagram.
//!
//! Two hash maps, never a scan over peers: the remote address of a known path, and
//! the local ICE ufrag (from the STUN USERNAME attribute) for a path not seen yet.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::{ParticipantId, RoomId};

/// Which of a participant's two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pc {
    /// Client → SFU media; the client offers.
    Publish,
    /// SFU → client media; the SFU offers.
    Subscribe,
}

/// The owner of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerKey {
    pub room: RoomId,
    pub participant: ParticipantId,
    pub pc: Pc,
}

/// Most paths remembered per peer connection; older ones are forgotten.
const MAX_PATHS_PER_PEER: usize = 4;

#[derive(Default)]
pub struct Router {
    by_addr: HashMap<SocketAddr, PeerKey>,
    by_ufrag: HashMap<String, PeerKey>,
    paths: HashMap<PeerKey, Vec<SocketAddr>>,
}

impl Router {
    pub fn add_ufrag(&mut self, ufrag: String, key: PeerKey) {
        self.by_ufrag.insert(ufrag, key);
    }

    pub fn remove_ufrag(&mut self, ufrag: &str) {
        self.by_ufrag.remove(ufrag);
    }

    /// Owner of a datagram from a known path.
    #[inline]
    pub fn by_addr(&self, addr: &SocketAddr) -> Option<PeerKey> {
        self.by_addr.get(addr).copied()
    }

    /// Owner of a STUN request by its USERNAME's local part.
    pub fn by_ufrag(&self, ufrag: &[u8]) -> Option<PeerKey> {
        let s = std::str::from_utf8(ufrag).ok()?;
        self.by_ufrag.get(s).copied()
    }

    /// Remember a path once the owner accepted a datagram from it.
    pub fn add_path(&mut self, addr: SocketAddr, key: PeerKey) {
        if let Some(old) = self.by_addr.insert(addr, key)
            && old != key
            && let Some(p) = self.paths.get_mut(&old)
        {
            p.retain(|a| *a != addr);
        }
        let paths = self.paths.entry(key).or_default();
        if paths.contains(&addr) {
            return;
        }
        if paths.len() >= MAX_PATHS_PER_PEER {
            let gone = paths.remove(0);
            self.by_addr.remove(&gone);
        }
        paths.push(addr);
    }

    /// Forget every path of a peer connection.
    pub fn remove_peer(&mut self, key: &PeerKey) {
        if let Some(paths) = self.paths.remove(key) {
            for a in paths {
                if self.by_addr.get(&a) == Some(key) {
                    self.by_addr.remove(&a);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_addr.len() + self.by_ufrag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The local ufrag of a STUN binding request: the part of USERNAME before ':'.
/// Returns `None` for anything that is not a well-formed STUN message with USERNAME.
pub fn stun_local_ufrag(buf: &[u8]) -> Option<&[u8]> {
    const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    if buf.len() < 20 || buf[0] & 0xc0 != 0 || buf[4..8] != MAGIC {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let body = buf.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        let val = body.get(i + 4..i + 4 + alen)?;
        if typ == 0x0006 {
            let end = val.iter().position(|b| *b == b':').unwrap_or(val.len());
            return Some(&val[..end]);
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(u: &[u8]) -> Vec<u8> {
        let mut v = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        v.extend_from_slice(&[7; 12]);
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(u.len() as u16).to_be_bytes());
        attr.extend_from_slice(u);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let len = attr.len() as u16;
        v[2..4].copy_from_slice(&len.to_be_bytes());
        v.extend(attr);
        v
    }

    #[test]
    fn stun_username_local_part_is_found() {
        let p = stun_with_username(b"abcd:wxyz");
        assert_eq!(stun_local_ufrag(&p), Some(&b"abcd"[..]));
    }

    #[test]
    fn truncated_or_foreign_datagrams_have_no_ufrag() {
        let p = stun_with_username(b"abcd:wxyz");
        assert_eq!(stun_local_ufrag(&p[..p.len() - 3]), None);
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        assert_eq!(stun_local_ufrag(&[]), None);
    }

    #[test]
    fn paths_per_peer_are_bounded() {
        let mut r = Router::default();
        let key = PeerKey { room: 1, participant: ParticipantId(1), pc: Pc::Publish };
        for port in 0..10u16 {
            r.add_path(SocketAddr::from(([127, 0, 0, 1], 1000 + port)), key);
        }
        assert_eq!(r.len(), MAX_PATHS_PER_PEER);
        r.remove_peer(&key);
        assert!(r.is_empty());
    }
}
