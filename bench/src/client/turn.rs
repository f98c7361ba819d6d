//! A bench participant's TURN client (`--turn`): one UDP allocation on the server named in `joined`,
//! then everything to the SFU goes through it — ChannelData once a channel is bound, as browsers do.
//! Allocations, permissions and channels outlive any bench run (10 and 5 minutes), so nothing is
//! refreshed. Encoding uses the `turn` crate's wire format; the server under test is the binary.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::net::UdpSocket;
use turn::wire::{self, Builder, Class, Message};

/// A TURN server and the REST credential `joined` handed out for it.
#[derive(Clone, Debug)]
pub struct TurnServer {
    pub addr: SocketAddr,
    pub username: String,
    pub password: String,
}

impl TurnServer {
    /// The first `turn:IP:PORT?transport=udp` server among `joined.ice_servers`.
    pub fn from_joined(ice_servers: &serde_json::Value) -> Option<TurnServer> {
        ice_servers.as_array()?.iter().find_map(|s| {
            let url = s["urls"].as_array()?.iter().filter_map(|u| u.as_str()).find(|u| u.starts_with("turn:"))?;
            let addr = url.strip_prefix("turn:")?.split('?').next()?.parse().ok()?;
            Some(TurnServer {
                addr,
                username: s["username"].as_str()?.to_owned(),
                password: s["credential"].as_str()?.to_owned(),
            })
        })
    }
}

pub struct TurnLink {
    sock: UdpSocket,
    server: SocketAddr,
    pub relay: SocketAddr,
    username: String,
    realm: String,
    nonce: String,
    key: [u8; 16],
    /// Peer → channel, once asked for; `bound` once the server said yes.
    channels: HashMap<SocketAddr, (u16, bool)>,
    by_channel: HashMap<u16, SocketAddr>,
    pending: HashMap<[u8; 12], SocketAddr>,
    next_channel: u16,
}

impl TurnLink {
    /// Allocates a relay (401 challenge, then the signed request).
    pub async fn allocate(server: &TurnServer, ip: IpAddr) -> Result<TurnLink> {
        let sock = UdpSocket::bind((ip, 0)).await.context("binding the TURN client's socket")?;
        let transport = [17u8, 0, 0, 0];
        let bare = Builder::new(wire::ALLOCATE, Class::Request, rand::random())
            .attr(wire::ATTR_REQUESTED_TRANSPORT, &transport)
            .finish(None);
        let challenge = exchange(&sock, server.addr, &bare).await?;
        let challenge = Message::parse(&challenge).map_err(|e| anyhow!("TURN answer: {e}"))?;
        let (Some(realm), Some(nonce)) = (challenge.text(wire::ATTR_REALM), challenge.text(wire::ATTR_NONCE)) else {
            bail!("the TURN server sent no realm and nonce");
        };
        let key = turn::credentials::long_term_key(&server.username, realm, &server.password);
        let mut link = TurnLink {
            sock,
            server: server.addr,
            relay: server.addr,
            username: server.username.clone(),
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            key,
            channels: HashMap::new(),
            by_channel: HashMap::new(),
            pending: HashMap::new(),
            next_channel: 0x4000,
        };
        let signed = link.sign(
            Builder::new(wire::ALLOCATE, Class::Request, rand::random())
                .attr(wire::ATTR_REQUESTED_TRANSPORT, &transport),
        );
        let answer = exchange(&link.sock, server.addr, &signed).await?;
        let answer = Message::parse(&answer).map_err(|e| anyhow!("TURN answer: {e}"))?;
        link.relay = answer.xor_address(wire::ATTR_XOR_RELAYED_ADDRESS).ok_or_else(|| {
            anyhow!("the TURN server refused the allocation ({:?})", answer.get(wire::ATTR_ERROR_CODE))
        })?;
        Ok(link)
    }

    /// The client's own address (the relay candidate's base).
    pub fn local(&self) -> Result<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }

    fn sign(&self, b: Builder) -> Vec<u8> {
        b.attr(wire::ATTR_USERNAME, self.username.as_bytes())
            .attr(wire::ATTR_REALM, self.realm.as_bytes())
            .attr(wire::ATTR_NONCE, self.nonce.as_bytes())
            .finish(Some(&self.key))
    }

    /// Relays `data` to `to`: ChannelData on a bound channel; before that the channel is asked for
    /// and the datagram dropped (ICE retransmits its checks, as over a lossy path).
    pub fn send(&mut self, to: SocketAddr, data: &[u8]) {
        match self.channels.get(&to) {
            Some(&(channel, true)) => {
                let mut frame = Vec::with_capacity(4 + data.len());
                wire::write_channel_data(&mut frame, channel, data, false);
                let _ = self.sock.try_send_to(&frame, self.server);
            }
            Some(&(_, false)) => {}
            None => {
                let channel = self.next_channel;
                self.next_channel += 1;
                let tid: [u8; 12] = rand::random();
                let bind = self.sign(
                    Builder::new(wire::CHANNEL_BIND, Class::Request, tid)
                        .attr(wire::ATTR_CHANNEL_NUMBER, &[(channel >> 8) as u8, channel as u8, 0, 0])
                        .xor_address(wire::ATTR_XOR_PEER_ADDRESS, to),
                );
                self.channels.insert(to, (channel, false));
                self.by_channel.insert(channel, to);
                self.pending.insert(tid, to);
                let _ = self.sock.try_send_to(&bind, self.server);
            }
        }
    }

    /// The next relayed datagram and the peer it came from (TURN's own answers are consumed here).
    pub async fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        let mut raw = vec![0u8; 2048];
        loop {
            let (n, from) = self.sock.recv_from(&mut raw).await?;
            if from != self.server {
                continue;
            }
            let frame = &raw[..n];
            if let Some((channel, payload)) = wire::parse_channel_data(frame) {
                let Some(&peer) = self.by_channel.get(&channel) else { continue };
                let len = payload.len().min(buf.len());
                buf[..len].copy_from_slice(&payload[..len]);
                return Ok((len, peer));
            }
            let Ok(msg) = Message::parse(frame) else { continue };
            match (msg.method, msg.class) {
                (wire::CHANNEL_BIND, Class::Success) => {
                    if let Some(peer) = self.pending.remove(&msg.transaction)
                        && let Some(entry) = self.channels.get_mut(&peer)
                    {
                        entry.1 = true;
                    }
                }
                (wire::DATA, Class::Indication) => {
                    let (Some(peer), Some(data)) =
                        (msg.xor_address(wire::ATTR_XOR_PEER_ADDRESS), msg.get(wire::ATTR_DATA))
                    else {
                        continue;
                    };
                    let len = data.len().min(buf.len());
                    buf[..len].copy_from_slice(&data[..len]);
                    return Ok((len, peer));
                }
                _ => {}
            }
        }
    }
}

/// One request, its answer (three tries, 1 s each).
async fn exchange(sock: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    for _ in 0..3 {
        sock.send_to(msg, to).await?;
        if let Ok(Ok((n, from))) = tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await
            && from == to
        {
            return Ok(buf[..n].to_vec());
        }
    }
    bail!("no answer from the TURN server at {to}")
}
