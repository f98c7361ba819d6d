//! `floor`: what forwarding costs on this machine with no SFU at all — the yardstick `compare`
//! holds Chorus against. One thread receives each talker's packet on a real UDP socket on
//! loopback, decrypts it (AES-128-GCM with aws-lc-rs, as SRTP's GCM profile) and, for every other
//! participant of the room, encrypts it under that participant's key and sends it (one `sendto`
//! each, as an SFU that does not batch). Same rooms, talkers, fan-out and Opus packet sizes as the
//! voice scenario; CPU is the forwarding thread's own (`CLOCK_THREAD_CPUTIME_ID`), so the bench's
//! senders and receivers are not in it, and the kernel's loopback delivery, paid in the sending
//! thread, is — as it is for a server. It is a floor for this design of loop, not a strict lower
//! bound: Chorus batches its sends with `sendmmsg`, the floor pays one `sendto` per packet.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde_json::json;

use crate::cli::VoiceParams;
use crate::client::audio::OpusSource;
use crate::report::Report;

/// RTP header bytes before the encrypted payload.
const HEADER: usize = 12;
/// Opus's packet interval.
const FRAME: Duration = Duration::from_millis(20);

/// A key per participant index (a real SFU has one per peer; the cost is the same).
fn key(index: usize) -> LessSafeKey {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&(index as u64 + 1).to_le_bytes());
    // 16 bytes is AES-128's key length: this cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &raw).unwrap_or_else(|_| unreachable!("AES-128 key length")))
}

/// SRTP-GCM style nonce from SSRC and sequence number.
fn nonce(ssrc: u32, seq: u16) -> Nonce {
    let mut n = [0u8; 12];
    n[2..6].copy_from_slice(&ssrc.to_be_bytes());
    n[10..12].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// An RTP header; the timestamp field carries the sender's tick (20 ms frame number), by which the
/// forwarder and the receivers tell warm-up packets from measured ones.
fn header(ssrc: u32, tick: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = 0x80;
    h[1] = 111;
    h[2..4].copy_from_slice(&(tick as u16).to_be_bytes());
    h[4..8].copy_from_slice(&tick.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

/// The tick in a header written by [`header`].
fn tick_of(packet: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(packet.get(4..8)?.try_into().ok()?))
}

/// Frames sent before measuring starts (1 s).
const WARMUP: u32 = 50;

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What the forwarding thread did while measured.
struct Forwarded {
    cpu: Duration,
    sent: u64,
}

/// The loop: receive, decrypt, then encrypt and send once per other participant of the room.
/// SSRC = room × 1000 + participant index.
fn forward(socket: &UdpSocket, subscribers: &[SocketAddr], stop: &AtomicBool) -> Forwarded {
    let keys: Vec<LessSafeKey> = (0..subscribers.len()).map(key).collect();
    let mut buf = vec![0u8; 1500];
    let mut out = Vec::with_capacity(1500);
    let (mut sent, mut started) = (0u64, None);
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
        if n < HEADER {
            continue;
        }
        let Some(tick) = tick_of(&buf[..n]) else { continue };
        let measured = tick >= WARMUP;
        if measured && started.is_none() {
            started = Some(thread_cpu());
        }
        let (head, body) = buf[..n].split_at_mut(HEADER);
        let ssrc = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        let seq = u16::from_be_bytes([head[2], head[3]]);
        let talker = (ssrc % 1000) as usize;
        let Some(k) = keys.get(talker) else { continue };
        let Ok(plain) = k.open_in_place(nonce(ssrc, seq), Aad::from(&*head), body) else { continue };
        for (i, (to, key)) in subscribers.iter().zip(&keys).enumerate() {
            if i == talker {
                continue;
            }
            let out_ssrc = ssrc - talker as u32 + i as u32;
            let h = header(out_ssrc, tick);
            out.clear();
            out.extend_from_slice(&h);
            out.extend_from_slice(plain);
            let Ok(tag) = key.seal_in_place_separate_tag(nonce(out_ssrc, seq), Aad::from(h), &mut out[HEADER..]) else {
                continue;
            };
            out.extend_from_slice(tag.as_ref());
            if socket.send_to(&out, to).is_ok() && measured {
                sent += 1;
            }
        }
    }
    Forwarded { cpu: started.map_or(Duration::ZERO, |s| thread_cpu().saturating_sub(s)), sent }
}

/// Drains one subscriber socket, counting the packets sent after the warm-up.
fn receive(socket: UdpSocket, counted: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && tick_of(&buf[..n]).is_some_and(|t| t >= WARMUP)
        {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn bound() -> Result<UdpSocket> {
    let s = UdpSocket::bind("127.0.0.1:0").context("binding a UDP socket on loopback")?;
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(s)
}

/// Runs the floor for `p` (rooms × participants, `talkers` of them sending Opus every 20 ms).
pub fn run(p: &VoiceParams) -> Result<Report> {
    if p.rooms == 0 || p.participants < 2 || p.talkers == 0 || p.talkers > p.participants {
        bail!("the floor needs rooms ≥ 1, participants ≥ 2 and 1 ≤ talkers ≤ participants");
    }
    let mut report = Report::new("floor", serde_json::to_value(p)?);
    report.target = "floor".into();
    // Real Opus frame sizes, one source per talker.
    let mut frames = Vec::new();
    for t in 0..p.talkers {
        let mut src = OpusSource::new(t as u64)?;
        frames.push((0..50).map(|_| src.next_frame()).collect::<Result<Vec<_>>>()?);
    }
    // Subscriber index i of every room sends to receiver socket i: the fan-out of one room.
    let receivers: Vec<UdpSocket> = (0..p.participants).map(|_| bound()).collect::<Result<_>>()?;
    let addrs: Vec<SocketAddr> = receivers.iter().map(UdpSocket::local_addr).collect::<Result<_, _>>()?;
    let forwarder = bound()?;
    let to_forwarder = forwarder.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicU64::new(0));
    let mut drains = Vec::new();
    for r in receivers {
        let (c, s) = (counted.clone(), stop.clone());
        drains.push(std::thread::spawn(move || receive(r, c, s)));
    }
    let worker = {
        let s = stop.clone();
        std::thread::spawn(move || forward(&forwarder, &addrs, &s))
    };

    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let keys: Vec<LessSafeKey> = (0..p.talkers).map(key).collect();
    let total = WARMUP + p.duration as u32 * 50;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut packet = Vec::with_capacity(1500);
    for tick in 0..total {
        let seq = tick as u16;
        for room in 0..p.rooms {
            for (t, k) in keys.iter().enumerate() {
                let ssrc = (room * 1000 + t) as u32;
                let h = header(ssrc, tick);
                packet.clear();
                packet.extend_from_slice(&h);
                packet.extend_from_slice(&frames[t][tick as usize % frames[t].len()]);
                let tag = k
                    .seal_in_place_separate_tag(nonce(ssrc, seq), Aad::from(h), &mut packet[HEADER..])
                    .map_err(|_| anyhow::anyhow!("AES-GCM seal"))?;
                packet.extend_from_slice(tag.as_ref());
                sender.send_to(&packet, to_forwarder)?;
                sent += u64::from(tick >= WARMUP);
            }
        }
        let next = start + FRAME * (tick + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let measured = start.elapsed().saturating_sub(FRAME * WARMUP).as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let forwarded = worker.join().map_err(|_| anyhow::anyhow!("the forwarding thread panicked"))?;
    for d in drains {
        let _ = d.join();
    }
    let delivered = counted.load(Ordering::Relaxed);
    let expected = sent * (p.participants as u64 - 1);
    let per_packet = if delivered > 0 { forwarded.cpu.as_secs_f64() * 1e6 / delivered as f64 } else { 0.0 };
    report.metric("cpu_per_delivered_packet", per_packet, "µs");
    report.metric("server_cpu", forwarded.cpu.as_secs_f64() / measured * 100.0, "%");
    report.metric("delivered_per_s", delivered as f64 / measured, "/s");
    let loss = if expected > 0 { 1.0 - delivered.min(expected) as f64 / expected as f64 } else { 0.0 };
    report.metric("loss", loss * 100.0, "%");
    report.details = json!({"sent_by_talkers": sent, "sent_by_forwarder": forwarded.sent, "delivered": delivered});
    report.check(delivered > 0, "the floor's forwarding loop delivered nothing");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_sealed_by_a_talker_opens_with_its_key_only() {
        let (ssrc, seq) = (2001, 7);
        let h = header(ssrc, u32::from(seq));
        let mut body = b"opus frame".to_vec();
        key(1).seal_in_place_append_tag(nonce(ssrc, seq), Aad::from(h), &mut body).unwrap();
        let mut wrong = body.clone();
        assert!(key(2).open_in_place(nonce(ssrc, seq), Aad::from(h), &mut wrong).is_err());
        assert_eq!(key(1).open_in_place(nonce(ssrc, seq), Aad::from(h), &mut body).unwrap(), b"opus frame");
    }

    #[test]
    fn a_small_floor_delivers_every_packet_to_every_other_participant() {
        let p = VoiceParams {
            rooms: 2,
            participants: 3,
            talkers: 1,
            duration: 1,
            connect_timeout: 1,
            tcp: false,
            turn: false,
        };
        let r = run(&p).unwrap();
        let get = |n: &str| r.metrics.iter().find(|m| m.name == n).map(|m| m.value).unwrap();
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert!(get("cpu_per_delivered_packet") > 0.0);
        assert_eq!(r.details["sent_by_forwarder"], r.details["sent_by_talkers"].as_u64().unwrap() * 2);
    }
}
