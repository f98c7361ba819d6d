//! Voice through the embedded TURN server: two webrtc-rs clients allowed only relay candidates
//! (a network that reaches nothing but the TURN port) join with the credentials `joined` carries,
//! and each decodes the other's tone — every packet crossed the relay both ways.

mod common;

use std::time::Duration;

use common::*;
use signaling::ice::TurnRest;

const SECRET: &str = "0123456789abcdef-relay";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_only_clients_hear_each_other_through_the_embedded_turn_server() {
    let turn_registry = prometheus::Registry::new();
    let relays = sfu::RelaySources::default();
    let turn = turn::io::start(
        turn::TurnConfig {
            realm: "chorus.test".into(),
            secret: SECRET.as_bytes().to_vec(),
            udp_listen: Some("127.0.0.1:0".parse().unwrap()),
            tls_listen: None,
            tls: None,
            targets: turn::Targets::default(),
            limits: turn::Limits::default(),
            open_relays: relays.clone(),
        },
        &turn_registry,
    )
    .await
    .unwrap();
    let url = format!("turn:{}?transport=udp", turn.udp_addr.unwrap());
    let server = Server::start_with(|c| {
        c.turn = Some(TurnRest::new(vec![url], SECRET, Duration::from_secs(600)));
        c.sfu.relay_sources = relays.clone();
    })
    .await;
    let sfu = server.signaling.sfu().udp_addrs();
    turn.set_targets(turn::Targets::new(sfu.iter().map(|a| (*a, *a))));

    let mut a = Client::join_relayed(&server.url(), &server.token(1, all_rights())).await;
    let mut b = Client::join_relayed(&server.url(), &server.token(2, all_rights())).await;
    let tones = [a.publish_tone(440.0).await, b.publish_tone(660.0).await];
    let heard = eventually(Duration::from_secs(20), || {
        a.decoded_from(&b.participant_id).len() >= 48000 && b.decoded_from(&a.participant_id).len() >= 48000
    })
    .await;
    assert!(
        heard,
        "decoded {} and {} samples",
        a.decoded_from(&b.participant_id).len(),
        b.decoded_from(&a.participant_id).len()
    );
    let fa = dominant_frequency(&b.decoded_from(&a.participant_id)).unwrap();
    let fb = dominant_frequency(&a.decoded_from(&b.participant_id)).unwrap();
    assert!((fa - 440.0).abs() <= 20.0 && (fb - 660.0).abs() <= 20.0, "heard {fa} Hz and {fb} Hz");
    for t in tones {
        t.abort();
    }

    // Each client's two peer connections hold an allocation, and media went both ways through them.
    assert!(turn.allocations() >= 4, "{} allocations", turn.allocations());
    tokio::time::sleep(Duration::from_millis(1100)).await; // the metrics tick
    let relayed = |direction: &str| {
        turn_registry
            .gather()
            .iter()
            .filter(|f| f.name() == "chorus_turn_relayed_bytes_total")
            .flat_map(|f| f.get_metric().to_vec())
            .filter(|m| m.get_label().iter().any(|l| l.value() == direction))
            .map(|m| m.get_counter().get_value())
            .sum::<f64>()
    };
    assert!(relayed("to_peer") > 20_000.0, "to the SFU: {} bytes", relayed("to_peer"));
    assert!(relayed("to_client") > 20_000.0, "to the clients: {} bytes", relayed("to_client"));
    let joins = |path: &str| {
        server
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "chorus_sfu_joins_by_path_total")
            .flat_map(|f| f.get_metric().to_vec())
            .filter(|m| m.get_label().iter().any(|l| l.value() == path))
            .map(|m| m.get_counter().get_value())
            .sum::<f64>()
    };
    assert_eq!((joins("relay"), joins("udp")), (2.0, 0.0), "the SFU counts both joins as relayed");
    let connected = server
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == "chorus_sfu_join_latency_seconds")
        .flat_map(|f| f.get_metric().to_vec())
        .map(|m| m.get_histogram().get_sample_count())
        .sum::<u64>();
    assert_eq!(connected, 2, "and times both joins");
}
