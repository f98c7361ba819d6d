//! What the media scenarios share: start participants, wait until every receiver has media,
//! measure a window (the server's counters at both ends), stop everyone and collect outcomes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::ServerSnapshot;
use crate::client::api::Account;
use crate::client::voice::{self, Outcome, Plan, VoiceShared};
use crate::target::Target;

pub struct Window {
    pub outcomes: Vec<Outcome>,
    /// Measurement window, seconds.
    pub seconds: f64,
    /// Start of the first join → every receiver has media (or the timeout).
    pub connect_secs: f64,
    pub before: ServerSnapshot,
    pub after: ServerSnapshot,
    pub collisions: u64,
}

/// `receivers`: how many participants should receive media (the wait ends when they all do).
pub async fn run(
    target: &Target,
    participants: Vec<(Account, Plan)>,
    receivers: u64,
    duration: u64,
    connect_timeout: u64,
) -> Window {
    let shared = VoiceShared::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let connect_start = Instant::now();
    for (account, plan) in participants {
        tasks.push(tokio::spawn(voice::run(target.sfu(), account, plan, shared.clone(), stop_rx.clone())));
        // Joins spread a little, as real people's are.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pb = crate::progress::bar(receivers, "joining");
    while shared.first_media.load(Ordering::Relaxed) < receivers
        && shared.failed.load(Ordering::Relaxed) == 0
        && connect_start.elapsed() < Duration::from_secs(connect_timeout)
    {
        pb.set_position(shared.first_media.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pb.finish_and_clear();
    let connect_secs = connect_start.elapsed().as_secs_f64();
    // Let the media settle (and simulcast layers be chosen) before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let before = ServerSnapshot::take(target).await;
    shared.ledger.set_measuring(true);
    let window_start = Instant::now();
    let pb = crate::progress::timed(duration, "measuring");
    let mut last_rx = shared.media_rx.load(Ordering::Relaxed);
    for s in 1..=duration {
        tokio::time::sleep_until(tokio::time::Instant::from_std(window_start + Duration::from_secs(s))).await;
        let rx = shared.media_rx.load(Ordering::Relaxed);
        pb.set_position(s);
        pb.set_message(format!("{} frames/s received", rx - last_rx));
        last_rx = rx;
    }
    shared.ledger.set_measuring(false);
    let seconds = window_start.elapsed().as_secs_f64();
    let after = ServerSnapshot::take(target).await;
    pb.finish_and_clear();
    // Packets sent at the end of the window are still in flight.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let _ = stop_tx.send(true);
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap_or_else(|e| Outcome { error: Some(format!("task: {e}")), ..Default::default() }));
    }
    Window {
        outcomes,
        seconds,
        connect_secs,
        before,
        after,
        collisions: shared.ledger.collisions.load(Ordering::Relaxed),
    }
}
