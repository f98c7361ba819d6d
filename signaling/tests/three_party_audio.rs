//! Three participants publish Opus tones of different frequencies through the real
//! `/voice` socket and the SFU; each decodes the other two and finds their frequency.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_participants_each_decode_the_other_two_tones() {
    let server = Server::start().await;
    let url = server.url();
    let freqs = [440.0, 660.0, 990.0];
    let mut clients = Vec::new();
    for (i, _) in freqs.iter().enumerate() {
        clients.push(Client::join(&url, &server.token(100 + i as u64, all_rights())).await);
    }
    let mut tones = Vec::new();
    for (c, f) in clients.iter_mut().zip(freqs) {
        tones.push(c.publish_tone(f).await);
    }
    // Every client hears both others for long enough to analyse.
    let ids: Vec<String> = clients.iter().map(|c| c.participant_id.clone()).collect();
    let heard_all = eventually(Duration::from_secs(15), || {
        clients.iter().enumerate().all(|(i, c)| {
            ids.iter().enumerate().filter(|(j, _)| *j != i).all(|(_, id)| c.decoded_from(id).len() >= 48000)
        })
    })
    .await;
    for (i, c) in clients.iter().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            let pcm = c.decoded_from(id);
            if i == j {
                assert!(pcm.is_empty(), "client {i} must not receive itself");
                continue;
            }
            assert!(heard_all, "client {i} decoded {} samples from {j}", pcm.len());
            let f = dominant_frequency(&pcm).expect("enough audio");
            assert!((f - freqs[j]).abs() <= 20.0, "client {i} hears participant {j} at {f} Hz, expected {}", freqs[j]);
        }
    }
    for t in tones {
        t.abort();
    }
    assert_eq!(server.metric("chorus_sfu_participants"), 3.0);
    assert_eq!(server.metric("chorus_sfu_tracks"), 3.0);
    assert!(server.metric("chorus_sfu_forwarded_frames_total") > 100.0);
}
