//! The forwarding path in fixed, repeatable work, for counting instructions under valgrind's
//! callgrind (`scripts/callgrind_check.sh`): a Sans-IO room (the mesh of the room tests: str0m
//! client peers, simulated time, no sockets) is connected and warmed up, then one case runs.
//!
//! Cases: `room2`, `room10`, `room50` — one publisher's Opus packets (100-byte payloads) handed to
//! the room, each decrypted, fanned out, packetised and encrypted for every subscriber (inside
//! `measured_receive`); `timers10` — the worker's timer pass over a room of 10 with one talker
//! (inside `measured_tick`). The script counts only inside the `measured_*` functions, so setup
//! (DTLS handshakes, the clients' own work) is not in the counts.

#[path = "../tests/support/mesh.rs"]
mod mesh;

use std::net::SocketAddr;
use std::time::Duration;

use mesh::Mesh;

/// Packets (or timer passes) per measured case.
const ROUNDS: usize = 200;

#[inline(never)]
fn measured_receive(m: &mut Mesh, dgrams: &[(SocketAddr, Vec<u8>)]) {
    for (src, d) in dgrams {
        m.sfu_receive(*src, d);
    }
}

#[inline(never)]
fn measured_tick(m: &mut Mesh) {
    m.tick();
}

fn connected_room(n: usize) -> Mesh {
    let mut m = Mesh::new(n, 1);
    assert!(m.run_until(5000, Mesh::all_connected), "room of {n} did not connect");
    for _ in 0..100 {
        m.step(Duration::from_millis(5));
    }
    m
}

/// One 20 ms audio frame from the publisher through the room; the room's output is counted, not kept.
fn forward_one(m: &mut Mesh) {
    let dgrams = m.publish_frame(0, &[0xfc; 100]);
    m.wire.keep = false;
    measured_receive(m, &dgrams);
    m.wire.keep = true;
    for _ in 0..4 {
        m.step(Duration::from_millis(5));
    }
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    let room = |n: usize| {
        let mut m = connected_room(n);
        let before = m.counters.forwarded_audio;
        for _ in 0..ROUNDS {
            forward_one(&mut m);
        }
        let forwarded = m.counters.forwarded_audio - before;
        assert_eq!(forwarded, (ROUNDS * (n - 1)) as u64, "every packet reached every subscriber");
        // What the script divides the count by.
        println!("units {forwarded}");
    };
    match case.as_str() {
        "room2" => room(2),
        "room10" => room(10),
        "room50" => room(50),
        "timers10" => {
            let mut m = connected_room(10);
            for i in 0..ROUNDS {
                if i % 4 == 0 {
                    let dgrams = m.publish_frame(0, &[0xfc; 100]);
                    m.deliver(dgrams);
                }
                m.now += Duration::from_millis(5);
                let feedback = m.client_round();
                m.deliver(feedback);
                measured_tick(&mut m);
                m.deliver_to_clients();
            }
            println!("units {ROUNDS}");
        }
        other => {
            eprintln!("forward_count: unknown case {other:?}; one of room2 room10 room50 timers10");
            std::process::exit(2);
        }
    }
}
