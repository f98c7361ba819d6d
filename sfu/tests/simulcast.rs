//! Simulcast layer selection per subscriber, over the Sans-IO room with a str0m
//! publisher sending three VP8 layers (q 320x180, h 640x360, f 1280x720).

#[path = "support/mesh.rs"]
mod mesh;

use std::time::Duration;

use mesh::Mesh;
use sfu::{Command, Preference, SfuEvent, TrackId};

fn layer_of(frame: &[u8]) -> u8 {
    *frame.last().unwrap_or(&255)
}

fn is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

/// Send `frames` frames at 30 fps; keyframes every 30 frames and when asked.
fn send(m: &mut Mesh, frames: usize) {
    send_from(m, 0, frames);
}

/// As `send`, counting from frame `first` (so a first frame that is not a multiple of 30 is a delta frame).
fn send_from(m: &mut Mesh, first: usize, frames: usize) {
    for n in first..first + frames {
        m.send_video_frame(0, n % 30 == 0);
        for _ in 0..6 {
            m.step(Duration::from_micros(5500));
        }
    }
}

/// A simulcast publisher and two subscribers, connected; returns the published track.
fn simulcast_room(m: &mut Mesh) -> TrackId {
    m.add_simulcast_publisher();
    m.add_peer(false, 1);
    m.add_peer(false, 2);
    assert!(m.connect_all(2000), "peers did not connect");
    m.peers[1]
        .seen
        .iter()
        .find_map(|e| match e {
            SfuEvent::TrackPublished(t) if t.simulcast => Some(t.track_id),
            _ => None,
        })
        .expect("simulcast track published")
}

fn tile(w: u32, h: u32) -> Preference {
    Preference { max_width: Some(w), max_height: Some(h), paused: false }
}

#[test]
fn small_tile_gets_low_layer_large_tile_high_layer_and_every_switch_waits_for_a_keyframe() {
    let mut m = Mesh::new(0, 0);
    m.record = true;
    let track = simulcast_room(&mut m);
    let (small, large) = (m.peers[1].id, m.peers[2].id);
    m.command(small, Command::Subscribe { track_id: track, pref: tile(320, 180) });
    m.command(large, Command::Subscribe { track_id: track, pref: tile(1280, 720) });
    send(&mut m, 90);

    let got_small = m.peers[1].frames.clone();
    let got_large = m.peers[2].frames.clone();
    assert!(got_small.len() >= 40, "small tile got {} frames", got_small.len());
    assert!(got_large.len() >= 40, "large tile got {} frames", got_large.len());
    assert!(got_small.iter().all(|f| layer_of(f) == 0), "small tile must get only q");
    assert!(got_large.iter().all(|f| layer_of(f) == 2), "large tile must get only f");
    assert!(is_keyframe(&got_large[0]) && is_keyframe(&got_small[0]), "streams start at a keyframe");

    // Down at a keyframe of q (asked for), f until then: a decoder never gets q's delta frames first.
    let mark = m.peers[2].frames.len();
    m.command(large, Command::Subscribe { track_id: track, pref: tile(320, 180) });
    send_from(&mut m, 1, 20);
    let after_down = &m.peers[2].frames[mark..];
    let first_q = after_down.iter().position(|f| layer_of(f) == 0).expect("switched down");
    assert!(first_q > 0, "f went on while the keyframe of q was asked for");
    assert!(is_keyframe(&after_down[first_q]), "switch down must start at a keyframe");
    assert!(after_down[..first_q].iter().all(|f| layer_of(f) == 2), "f goes on until then");
    assert!(after_down[first_q..].iter().all(|f| layer_of(f) == 0));

    // Up only at a keyframe of f.
    let mark = m.peers[2].frames.len();
    m.command(large, Command::Subscribe { track_id: track, pref: tile(1280, 720) });
    send(&mut m, 60);
    let after_up = &m.peers[2].frames[mark..];
    let first_f = after_up.iter().position(|f| layer_of(f) == 2).expect("switched up");
    assert!(is_keyframe(&after_up[first_f]), "switch up must start at a keyframe");
    assert!(after_up[first_f..].iter().all(|f| layer_of(f) == 2));
    assert!(m.peers[0].keyframe_requests >= 1, "the SFU asked for a keyframe");

    // Paused: nothing more arrives.
    m.command(
        large,
        Command::Subscribe { track_id: track, pref: Preference { paused: true, ..Preference::default() } },
    );
    m.step(Duration::from_millis(5));
    let mark = m.peers[2].frames.len();
    send(&mut m, 15);
    assert_eq!(m.peers[2].frames.len(), mark, "a paused subscription receives nothing");
}

#[test]
fn a_subscriber_of_a_layer_the_publisher_turns_off_moves_down_within_400_ms() {
    let mut m = Mesh::new(0, 0);
    m.record = true;
    let track = simulcast_room(&mut m);
    let large = m.peers[2].id;
    m.command(large, Command::Subscribe { track_id: track, pref: tile(1280, 720) });
    send(&mut m, 60);
    assert!(m.peers[2].frames.last().is_some_and(|f| layer_of(f) == 2), "the large tile gets f");

    // The publisher's uplink cannot carry f any more: it sends q and h only (frames every 33 ms).
    m.video_layers = 2;
    let mark = m.peers[2].frames.len();
    send_from(&mut m, 61, 12);
    let after = &m.peers[2].frames[mark..];
    let first_h = after.iter().position(|f| layer_of(f) == 1).expect("moved to h within 12 frames (400 ms)");
    assert!(is_keyframe(&after[first_h]), "the move starts at a keyframe of h");
    assert!(after[first_h..].iter().all(|f| layer_of(f) == 1));
}

#[test]
fn each_subscriber_asks_its_estimator_to_probe_for_the_layer_its_tile_wants() {
    let mut m = Mesh::new(0, 0);
    let track = simulcast_room(&mut m);
    let (small, large) = (m.peers[1].id, m.peers[2].id);
    m.command(small, Command::Subscribe { track_id: track, pref: tile(320, 180) });
    m.command(large, Command::Subscribe { track_id: track, pref: tile(1280, 720) });
    send(&mut m, 60);
    let snap = m.room.snapshot(0);
    let target = |id| {
        snap.participants.iter().find(|p| p.id == id).and_then(|p| p.quality.bwe_target_bps).expect("a probe target")
    };
    let publisher = snap.participants.iter().find(|p| p.id == m.peers[0].id).expect("publisher listed");
    assert_eq!(publisher.quality.bwe_target_bps, None, "no video to receive, nothing to probe for");
    assert!(
        target(large) > target(small) * 2,
        "the full layer needs far more than the quarter one: {} vs {}",
        target(large),
        target(small)
    );
}
