//! Forwarding cost per forwarded packet, for rooms of 2, 10 and 50 participants.
//!
//! `forward_with_srtp`: the whole Sans-IO receive path — hash-map routing, SRTP decrypt
//! of the publisher's packet, fan-out, per subscriber str0m packetizing + SRTP encrypt
//! into a collecting transmitter (no syscall), plus the subscribers' RTCP feedback.
//! `forward_with_srtp_and_timers` also times one timer pass of the whole room per packet
//! (an upper bound: the worker runs it every 5 ms). Neither includes the
//! `recvfrom`/`sendto` syscalls (see stack-notes for their cost). Time per incoming packet is divided by
//! the number of subscribers.
//! `without_srtp`: Chorus's own per-packet work only — the router lookup and the
//! per-subscriber layer decision (str0m cannot forward without SRTP).

#[path = "../tests/support/mesh.rs"]
mod mesh;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh::Mesh;
use sfu::ParticipantId;
use sfu::forwarder::{Layer, LayerForwarder};
use sfu::router::{Pc, PeerKey, Router};

fn srtp_group(c: &mut Criterion, name: &str, timers_timed: bool) {
    let mut g = c.benchmark_group(name);
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);
    for n in [2usize, 10, 50] {
        let mut m = Mesh::new(n, 1);
        assert!(m.run_until(5000, Mesh::all_connected), "room of {n} did not connect");
        for _ in 0..100 {
            m.step(Duration::from_millis(5));
        }
        let subscribers = (n - 1) as u64;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let before = m.counters.forwarded_audio;
                for _ in 0..iters {
                    let mut dgrams = m.publish_frame(0, &[0xfc; 100]);
                    dgrams.extend(m.client_round());
                    m.now += Duration::from_millis(20);
                    let start = Instant::now();
                    for (src, d) in &dgrams {
                        m.sfu_receive(*src, d);
                    }
                    if timers_timed {
                        // The worker's timer pass (pacer, RTCP) once per packet: an upper
                        // bound, the worker runs it every 5 ms for all packets together.
                        m.tick();
                        total += start.elapsed();
                    } else {
                        total += start.elapsed();
                        m.tick();
                    }
                    m.deliver_to_clients();
                }
                let forwarded = m.counters.forwarded_audio - before;
                if iters >= 50 {
                    assert!(
                        forwarded >= iters * subscribers * 9 / 10,
                        "forwarded {forwarded} of {}",
                        iters * subscribers
                    );
                }
                total / subscribers as u32
            })
        });
    }
    g.finish();
}

fn with_srtp(c: &mut Criterion) {
    srtp_group(c, "forward_with_srtp", false);
    srtp_group(c, "forward_with_srtp_and_timers", true);
}

fn without_srtp(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward_without_srtp");
    for n in [2usize, 10, 50] {
        let mut router = Router::default();
        let addrs: Vec<SocketAddr> =
            (0..n).map(|i| SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8], 7000))).collect();
        for (i, a) in addrs.iter().enumerate() {
            router.add_path(*a, PeerKey { room: 1, participant: ParticipantId(i as u64), pc: Pc::Publish });
        }
        let mut subs: Vec<LayerForwarder> = (1..n)
            .map(|_| {
                let mut f = LayerForwarder::default();
                f.set_target(Some(Layer::H));
                f.on_frame(Layer::H, true);
                f
            })
            .collect();
        let subscribers = (n - 1) as u32;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let key = router.by_addr(black_box(&addrs[0]));
                    black_box(key);
                    for s in subs.iter_mut() {
                        black_box(s.on_frame(black_box(Layer::H), false));
                    }
                }
                start.elapsed() / subscribers
            })
        });
    }
    g.finish();
}

criterion_group!(benches, with_srtp, without_srtp);
criterion_main!(benches);
