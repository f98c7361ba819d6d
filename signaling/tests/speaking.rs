//! RFC 6464 audio levels from a real client drive `speaking` events.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_levels_start_and_stop_speaking_with_hysteresis() {
    let server = Server::start().await;
    let url = server.url();
    let mut talker = Client::join(&url, &server.token(1, all_rights())).await;
    let mut listener = Client::join(&url, &server.token(2, all_rights())).await;
    let level = Arc::new(AtomicU8::new(127));
    let tone = talker.publish_tone_with_level(500.0, level.clone()).await;
    let id = talker.participant_id.clone();
    assert!(eventually(Duration::from_secs(10), || listener.packets_from(&id) >= 10).await);

    level.store(25, Ordering::Relaxed);
    let on = listener.expect("speaking", Duration::from_secs(5)).await.expect("speaking on");
    assert_eq!(on["participant_id"], id.as_str());
    assert_eq!(on["speaking"], true);

    level.store(127, Ordering::Relaxed);
    let off = listener.expect("speaking", Duration::from_secs(5)).await.expect("speaking off");
    assert_eq!(off["speaking"], false);
    tone.abort();
}
