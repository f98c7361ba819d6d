//! `smoke`: every scenario for a few seconds against one server; any failed check fails the run.

use anyhow::Result;

use crate::cli::{ChatParams, JoinParams, VideoParams, VoiceParams};
use crate::report::Report;
use crate::target::Target;

pub async fn run(target: &mut Target, seconds: u64) -> Result<Vec<Report>> {
    let seconds = seconds.clamp(1, 10);
    let mut reports = Vec::new();
    let voice = VoiceParams {
        rooms: 2,
        participants: 3,
        talkers: 2,
        duration: seconds,
        connect_timeout: 10,
        tcp: false,
        turn: false,
    };
    reports.push(super::voice::run(target, false, &voice).await?);
    let video =
        VideoParams { rooms: 1, participants: 3, publishers: 1, tile: None, duration: seconds, connect_timeout: 10 };
    reports.push(super::video::run(target, false, &video).await?);
    let join = JoinParams { rate: 5.0, duration: seconds, rooms: 2, hold: 0.5, accounts: 5, media_timeout: 5 };
    reports.push(super::join::run(target, false, &join).await?);
    let chat = ChatParams { clients: 50, per_account: 10, rate: 20, duration: seconds, restart: false };
    reports.push(super::chat::run(target, &chat).await?);
    Ok(reports)
}
