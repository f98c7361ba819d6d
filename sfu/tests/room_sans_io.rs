//! The Sans-IO room with str0m client peers over an in-memory network: no sockets,
//! simulated time, deterministic.

#[path = "support/mesh.rs"]
mod mesh;

use std::time::Duration;

use mesh::Mesh;
use sfu::SfuEvent;

#[test]
fn audio_from_one_publisher_reaches_every_other_participant_once() {
    let mut m = Mesh::new(4, 1);
    assert!(m.run_until(2000, Mesh::all_connected), "peers did not connect");
    for _ in 0..50 {
        let dgrams = m.publish_frame(0, &[0xfc; 80]);
        for (src, d) in dgrams {
            m.sfu_receive(src, &d);
        }
        m.step(Duration::from_millis(20));
    }
    assert!(m.run_until(200, |m| m.peers[1..].iter().all(|p| p.media_in >= 45)));
    assert_eq!(m.peers[0].media_in, 0, "a publisher never hears itself");
}

#[test]
fn leaving_participant_unpublishes_its_track_for_everyone() {
    let mut m = Mesh::new(3, 1);
    assert!(m.run_until(2000, Mesh::all_connected));
    let id = m.peers[0].id;
    m.command(id, sfu::Command::Leave);
    m.step(Duration::from_millis(5));
    for p in &m.peers[1..] {
        assert!(
            p.seen
                .iter()
                .any(|e| matches!(e, SfuEvent::TrackUnpublished { participant_id, .. } if *participant_id == id))
        );
        assert!(
            p.seen.iter().any(|e| matches!(e, SfuEvent::ParticipantLeft { participant_id } if *participant_id == id))
        );
    }
    assert_eq!(m.room.participant_count(), 2);
}

#[test]
fn snapshot_lists_every_participant_with_its_publications_and_link_quality() {
    let mut m = Mesh::new(3, 1);
    assert!(m.run_until(2000, Mesh::all_connected));
    for _ in 0..150 {
        let dgrams = m.publish_frame(0, &[0xfc; 80]);
        for (src, d) in dgrams {
            m.sfu_receive(src, &d);
        }
        m.step(Duration::from_millis(20));
    }
    let snap = m.room.snapshot(7);
    assert_eq!(snap.worker, 7);
    assert_eq!(snap.participants.len(), 3);
    let publisher = snap.participants.iter().find(|p| p.id == m.peers[0].id).expect("publisher listed");
    assert_eq!(publisher.published_tracks, 1);
    assert!(publisher.subscriptions.is_empty(), "a publisher does not subscribe to itself");
    for p in snap.participants.iter().filter(|p| p.id != m.peers[0].id) {
        assert_eq!(p.published_tracks, 0);
        assert_eq!(p.subscriptions.len(), 1, "each listener subscribes to the one audio track");
    }
    // str0m reports statistics once a second; three seconds of media produce link quality.
    assert!(snap.participants.iter().any(|p| p.quality.rtt_ms.is_some() || p.quality.loss_in.is_some()));
}
