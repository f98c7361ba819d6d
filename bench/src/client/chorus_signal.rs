//! Chorus's `/voice` signaling for a bench participant: voice grant over REST, the WebSocket
//! `join`, SDP both ways, and `subscribe` size hints for video tiles, bridged to the media loop's
//! [`Signaling`] channels.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::api::{Account, Api};
use super::turn::TurnServer;
use super::voice::{Plan, SigIn, SigOut, Signaling};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Asks for a grant and joins the channel; returns the signaling, how long the grant took, and
/// (with `plan.turn`, which waits for `joined` here) the TURN server `joined` names.
pub async fn start(api: &Api, account: &Account, plan: &Plan) -> Result<(Signaling, Duration, Option<TurnServer>)> {
    let t0 = Instant::now();
    let grant = api.voice_grant(account, &plan.channel).await?;
    let grant_time = t0.elapsed();
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(&grant.endpoint))
        .await
        .map_err(|_| anyhow!("connecting to {} timed out", grant.endpoint))?
        .with_context(|| format!("connecting to {}", grant.endpoint))?;
    send(&mut ws, json!({"type": "join", "token": grant.token, "channel_id": plan.channel})).await?;
    let (in_tx, in_rx) = mpsc::channel(16);
    let turn = if plan.turn {
        let joined = joined(&mut ws).await?;
        let turn = TurnServer::from_joined(&joined["ice_servers"])
            .ok_or_else(|| anyhow!("--turn: joined names no turn: server (start Chorus with --turn-listen)"))?;
        in_tx.send(SigIn::Joined).await.map_err(|_| anyhow!("the media loop is gone"))?;
        Some(turn)
    } else {
        None
    };
    let (out_tx, out_rx) = mpsc::channel(16);
    let task = tokio::spawn(bridge(ws, plan.tile, in_tx, out_rx));
    Ok((Signaling { rx: in_rx, tx: out_tx, task }, grant_time, turn))
}

/// Reads the socket until `joined` (10 s at most).
async fn joined(ws: &mut Ws) -> Result<Value> {
    let wait = async {
        while let Some(m) = ws.next().await {
            let Ok(Message::Text(t)) = m else { continue };
            let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
            match v["type"].as_str() {
                Some("joined") => return Ok(v),
                Some("error") => bail!("/voice refused the join: {v}"),
                _ => {}
            }
        }
        bail!("the /voice socket closed before joined")
    };
    tokio::time::timeout(Duration::from_secs(10), wait).await.map_err(|_| anyhow!("no joined within 10 s"))?
}

async fn send(ws: &mut Ws, v: Value) -> Result<()> {
    ws.send(Message::Text(v.to_string().into())).await.context("sending on /voice")
}

/// Carries messages between the socket and the media loop until the loop drops its sender
/// (then says `leave`) or the socket fails (then tells the loop).
async fn bridge(
    mut ws: Ws,
    tile: Option<(u32, u32)>,
    to_loop: mpsc::Sender<SigIn>,
    mut from_loop: mpsc::Receiver<SigOut>,
) {
    let failure = loop {
        tokio::select! {
            m = from_loop.recv() => {
                let msg = match m {
                    Some(SigOut::PublishOffer(sdp)) => json!({"type": "offer", "sdp": sdp}),
                    Some(SigOut::SubscribeAnswer(sdp)) => json!({"type": "answer", "sdp": sdp}),
                    None => {
                        let _ = send(&mut ws, json!({"type": "leave"})).await;
                        let _ = ws.close(None).await;
                        return;
                    }
                };
                if let Err(e) = send(&mut ws, msg).await {
                    break format!("{e:#}");
                }
            }
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => break "the /voice socket closed".to_owned(),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break format!("/voice: {e}"),
                };
                let Ok(msg) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                if let Some((w, h)) = tile
                    && let Err(e) = send_tile_hints(&mut ws, &msg, w, h).await
                {
                    break format!("{e:#}");
                }
                let sdp = || msg["sdp"].as_str().unwrap_or("").to_owned();
                let event = match msg["type"].as_str().unwrap_or("") {
                    "joined" => SigIn::Joined,
                    "answer" => SigIn::PublishAnswer(sdp()),
                    "offer" => SigIn::SubscribeOffer(sdp()),
                    "error" => {
                        let code = msg["code"].as_str().unwrap_or("?");
                        if matches!(code, "rate_limited" | "unknown_track") {
                            continue;
                        }
                        SigIn::Failed(format!("/voice error {code}: {}", msg["message"].as_str().unwrap_or("")))
                    }
                    _ => continue,
                };
                if to_loop.send(event).await.is_err() {
                    return;
                }
            }
        }
    };
    let _ = to_loop.send(SigIn::Failed(failure)).await;
}

/// Asks for at most `w`×`h` of every video track `msg` announces.
async fn send_tile_hints(ws: &mut Ws, msg: &Value, w: u32, h: u32) -> Result<()> {
    for track in video_tracks(msg) {
        send(ws, json!({"type": "subscribe", "track_id": track, "max_width": w, "max_height": h})).await?;
    }
    Ok(())
}

/// Video track ids a signaling message announces (`joined`, `participant_joined`, `track_published`).
fn video_tracks(msg: &Value) -> Vec<String> {
    let tracks: Vec<&Value> = match msg["type"].as_str() {
        Some("joined") => msg["participants"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["tracks"].as_array()).flatten().collect())
            .unwrap_or_default(),
        Some("participant_joined") => msg["tracks"].as_array().map(|t| t.iter().collect()).unwrap_or_default(),
        Some("track_published") => vec![msg],
        _ => Vec::new(),
    };
    tracks
        .into_iter()
        .filter(|t| t["kind"] == "video")
        .filter_map(|t| t["track_id"].as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_announced_video_tracks() {
        let joined = json!({"type": "joined", "participants": [
            {"participant_id": "1", "tracks": [{"track_id": "10", "kind": "audio"}, {"track_id": "11", "kind": "video"}]},
            {"participant_id": "2", "tracks": []}]});
        assert_eq!(video_tracks(&joined), vec!["11"]);
        let published = json!({"type": "track_published", "track_id": "12", "participant_id": "2", "kind": "video"});
        assert_eq!(video_tracks(&published), vec!["12"]);
        let pj = json!({"type": "participant_joined", "participant_id": "3", "tracks": [{"track_id": "13", "kind": "video"}]});
        assert_eq!(video_tracks(&pj), vec!["13"]);
        assert!(video_tracks(&json!({"type": "offer", "sdp": ""})).is_empty());
    }
}
