//! Participants join and leave at random; nothing leaks.

mod common;

use std::time::Duration;

use common::*;
use rand::Rng;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_participants_churning_leave_no_rooms_participants_or_tracks_behind() {
    let server = Server::start_with(|c| c.resume_window = Some(Duration::from_millis(500))).await;
    let url = server.url();
    let mut slots: Vec<Option<(Client, Option<tokio::task::JoinHandle<()>>)>> = (0..20).map(|_| None).collect();
    let start = std::time::Instant::now();
    let mut joins = 0;
    let mut rng = rand::rng();
    while start.elapsed() < Duration::from_secs(15) {
        let i = rng.random_range(0..slots.len());
        match slots[i].take() {
            None => {
                let channel = CHANNEL + rng.random_range(0..3);
                let token = server.token_for(i as u64 + 1, channel, all_rights());
                let mut c = Client::join(&url, &token).await;
                let tone =
                    if rng.random_bool(0.5) { Some(c.publish_tone(300.0 + 50.0 * i as f64).await) } else { None };
                joins += 1;
                slots[i] = Some((c, tone));
            }
            Some((c, tone)) => {
                if let Some(t) = tone {
                    t.abort();
                }
                if rng.random_bool(0.5) {
                    c.send(json!({"type":"leave"}));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                drop(c); // abrupt otherwise: the session is parked, then expires
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(10..120))).await;
    }
    assert!(joins >= 20, "only {joins} joins");
    for s in slots.iter_mut() {
        if let Some((c, tone)) = s.take() {
            if let Some(t) = tone {
                t.abort();
            }
            drop(c);
        }
    }
    let clean = eventually(Duration::from_secs(20), || {
        server.metric("chorus_sfu_participants") == 0.0
            && server.metric("chorus_sfu_rooms") == 0.0
            && server.metric("chorus_sfu_tracks") == 0.0
            && server.metric("chorus_voice_sessions") == 0.0
    })
    .await;
    assert!(
        clean,
        "leaked: participants {} rooms {} tracks {} sessions {}",
        server.metric("chorus_sfu_participants"),
        server.metric("chorus_sfu_rooms"),
        server.metric("chorus_sfu_tracks"),
        server.metric("chorus_voice_sessions"),
    );
    // Every join was matched by a leave towards chat.
    let counts = || {
        let events = server.events.0.lock().unwrap();
        let joined = events.iter().filter(|e| e.channel_id.is_some()).count();
        let left = events.iter().filter(|e| e.channel_id.is_none()).count();
        (joined, left)
    };
    let matched = eventually(Duration::from_secs(5), || {
        let (j, l) = counts();
        j >= joins && l >= joins
    })
    .await;
    let (joined, left) = counts();
    let per_user: Vec<(u64, bool)> =
        server.events.0.lock().unwrap().iter().map(|e| (e.user_id, e.channel_id.is_some())).collect();
    assert!(matched, "joined {joined} left {left} of {joins}: {per_user:?}");
}
