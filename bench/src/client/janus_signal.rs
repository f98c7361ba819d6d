//! Janus VideoRoom signaling for a bench participant, over Janus's HTTP API (the peer SFU the
//! bench compares Chorus with): one Janus session per participant; a talker joins as a publisher
//! with its talker id as feed id and publishes with its own offer; everyone subscribes to the
//! feeds of the room's other talkers with one subscriber handle (Janus offers). Events arrive by
//! long polling the session, as Janus's own HTTP clients do.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::voice::{Plan, SigIn, SigOut, Signaling};

/// VideoRoom's "No such feed": the publisher has not published yet.
const NO_SUCH_FEED: i64 = 428;
/// How often a subscriber asks again while a talker has not published yet: short, so that join latency
/// measures Janus and not this wait (Chorus pushes new tracks to subscribers by itself).
const FEED_RETRY: Duration = Duration::from_millis(20);
/// How long a subscriber waits for the room's talkers to publish.
const FEED_WAIT: Duration = Duration::from_secs(30);
/// How long an asynchronous request may take to produce its event.
const EVENT_WAIT: Duration = Duration::from_secs(15);

/// A Janus server's HTTP API and the address its media is reached on.
#[derive(Clone)]
pub struct JanusApi {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/janus`
    base: String,
    media_ip: IpAddr,
}

/// The feed id of a talker (VideoRoom ids must not be 0).
pub fn feed_of(talker: u32) -> u64 {
    u64::from(talker) + 1
}

fn transaction() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An error a VideoRoom request answered with.
fn plugin_error(v: &Value) -> Option<(i64, String)> {
    let data = &v["plugindata"]["data"];
    data["error_code"].as_i64().map(|c| (c, data["error"].as_str().unwrap_or("").to_owned()))
}

impl JanusApi {
    pub fn new(base: &str, media_ip: IpAddr) -> Result<JanusApi> {
        // Long polls wait up to 30 s on the server side.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(45))
            .pool_max_idle_per_host(256)
            .build()
            .context("building the HTTP client")?;
        Ok(JanusApi { http, base: base.trim_end_matches('/').to_owned(), media_ip })
    }

    pub fn media_ip(&self) -> IpAddr {
        self.media_ip
    }

    /// Posts a Janus request to `path` (below the base); fails on a Janus-level error.
    async fn post(&self, path: &str, mut body: Value) -> Result<Value> {
        body["transaction"] = json!(transaction());
        let url = format!("{}{path}", self.base);
        let what = body["janus"].as_str().unwrap_or("request").to_owned();
        let v: Value = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("Janus {what}"))?
            .json()
            .await
            .with_context(|| format!("Janus {what}: answer is not JSON"))?;
        if v["janus"] == "error" {
            bail!("Janus {what}: {}", v["error"]["reason"].as_str().unwrap_or("error"));
        }
        Ok(v)
    }

    /// Waits until the HTTP API answers `info`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        super::wait_until_ok(&self.http, &format!("{}/info", self.base), "Janus", timeout).await
    }

    async fn create_session(&self) -> Result<u64> {
        let v = self.post("", json!({"janus": "create"})).await?;
        v["data"]["id"].as_u64().ok_or_else(|| anyhow!("Janus create: no session id in {v}"))
    }

    async fn attach(&self, session: u64) -> Result<u64> {
        let v =
            self.post(&format!("/{session}"), json!({"janus": "attach", "plugin": "janus.plugin.videoroom"})).await?;
        v["data"]["id"].as_u64().ok_or_else(|| anyhow!("Janus attach: no handle id in {v}"))
    }

    /// A VideoRoom request; synchronous ones answer here, asynchronous ones with an event.
    async fn message(&self, session: u64, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value> {
        let mut msg = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        let v = self.post(&format!("/{session}/{handle}"), msg).await?;
        match plugin_error(&v) {
            Some((code, error)) => Err(videoroom_error(code, &error)),
            None => Ok(v),
        }
    }

    async fn destroy(&self, session: u64) {
        let _ = self.post(&format!("/{session}"), json!({"janus": "destroy"})).await;
    }

    /// Events of a session (a long poll; empty on keepalive).
    async fn poll(&self, session: u64) -> Result<Vec<Value>> {
        let v: Value = self
            .http
            .get(format!("{}/{session}?maxev=16", self.base))
            .send()
            .await
            .context("Janus long poll")?
            .json()
            .await
            .context("Janus long poll: answer is not JSON")?;
        Ok(match v {
            Value::Array(events) => events,
            Value::Object(_) if v["janus"] == "keepalive" => Vec::new(),
            Value::Object(_) if v["janus"] == "error" => {
                bail!("Janus session {session}: {}", v["error"]["reason"].as_str().unwrap_or("error"))
            }
            other => vec![other],
        })
    }

    /// Creates VideoRoom room `room` for up to `publishers` publishers (Opus audio, VP8 video).
    pub async fn create_room(&self, room: u64, publishers: usize) -> Result<()> {
        let session = self.create_session().await?;
        let result = async {
            let handle = self.attach(session).await?;
            let body = json!({
                "request": "create",
                "room": room,
                "publishers": publishers.max(1),
                "audiocodec": "opus",
                "videocodec": "vp8",
                "bitrate": 0,
                "notify_joining": false,
                "audiolevel_event": false,
            });
            self.message(session, handle, body, None).await.map(|_| ())
        }
        .await;
        self.destroy(session).await;
        result.with_context(|| format!("creating Janus room {room}"))
    }
}

/// Opens a Janus session for `plan` and starts its signaling task.
pub async fn start(janus: JanusApi, plan: &Plan) -> Result<Signaling> {
    let room: u64 = plan.channel.parse().with_context(|| format!("Janus room id {:?}", plan.channel))?;
    let session = janus.create_session().await?;
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(poll_events(janus.clone(), session, ev_tx));
    let (in_tx, in_rx) = mpsc::channel(16);
    let (out_tx, out_rx) = mpsc::channel(16);
    let job =
        Job { janus, session, room, talker: plan.talker, hears: plan.hears.clone(), tile: plan.tile, events: ev_rx };
    let task = tokio::spawn(job.run(in_tx, out_rx));
    Ok(Signaling { rx: in_rx, tx: out_tx, task })
}

/// Forwards a session's events until the session is gone or nobody listens.
async fn poll_events(janus: JanusApi, session: u64, to: mpsc::UnboundedSender<Result<Value, String>>) {
    while !to.is_closed() {
        match janus.poll(session).await {
            Ok(events) => {
                for e in events {
                    if to.send(Ok(e)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = to.send(Err(format!("{e:#}")));
                return;
            }
        }
    }
}

struct Job {
    janus: JanusApi,
    session: u64,
    room: u64,
    talker: Option<u32>,
    hears: Vec<u32>,
    /// Ask for the simulcast layer that fits this size (Janus forwards the highest by default).
    tile: Option<(u32, u32)>,
    events: mpsc::UnboundedReceiver<Result<Value, String>>,
}

impl Job {
    async fn run(mut self, to_loop: mpsc::Sender<SigIn>, mut from_loop: mpsc::Receiver<SigOut>) {
        match self.negotiate(&to_loop, &mut from_loop).await {
            // Stay until the media loop drops its sender (it is leaving).
            Ok(()) => while from_loop.recv().await.is_some() {},
            Err(e) => {
                let _ = to_loop.send(SigIn::Failed(format!("{e:#}"))).await;
            }
        }
        // Destroying the session hangs up its handles: the participant leaves the room.
        self.janus.destroy(self.session).await;
    }

    async fn negotiate(&mut self, to_loop: &mpsc::Sender<SigIn>, from_loop: &mut mpsc::Receiver<SigOut>) -> Result<()> {
        let (janus, session, room) = (self.janus.clone(), self.session, self.room);
        if let Some(talker) = self.talker {
            let handle = janus.attach(session).await?;
            let join = json!({"request": "join", "ptype": "publisher", "room": room, "id": feed_of(talker)});
            janus.message(session, handle, join, None).await?;
            self.event_of(handle).await?;
            to_loop.send(SigIn::Joined).await?;
            let Some(SigOut::PublishOffer(sdp)) = from_loop.recv().await else {
                bail!("expected the publish offer");
            };
            let jsep = json!({"type": "offer", "sdp": sdp, "trickle": false});
            janus.message(session, handle, json!({"request": "publish"}), Some(jsep)).await?;
            let answer = self.event_of(handle).await?;
            let sdp = answer["jsep"]["sdp"].as_str().ok_or_else(|| anyhow!("Janus publish: no answer in {answer}"))?;
            to_loop.send(SigIn::PublishAnswer(sdp.to_owned())).await?;
        } else {
            to_loop.send(SigIn::Joined).await?;
        }
        if self.hears.is_empty() {
            return Ok(());
        }
        let handle = janus.attach(session).await?;
        let streams: Vec<Value> = self.hears.iter().map(|t| json!({"feed": feed_of(*t)})).collect();
        let join = json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams});
        let waited = tokio::time::Instant::now();
        let offer = loop {
            let asked = match janus.message(session, handle, join.clone(), None).await {
                Ok(_) => self.event_of(handle).await,
                Err(e) => Err(e),
            };
            match asked {
                Ok(ev) => break ev,
                // A talker of the room has not published yet: ask again shortly.
                Err(e) if e.downcast_ref::<FeedMissing>().is_some() && waited.elapsed() < FEED_WAIT => {
                    tokio::time::sleep(FEED_RETRY).await;
                }
                Err(e) => return Err(e),
            }
        };
        let sdp = offer["jsep"]["sdp"].as_str().ok_or_else(|| anyhow!("Janus subscribe: no offer in {offer}"))?;
        to_loop.send(SigIn::SubscribeOffer(sdp.to_owned())).await?;
        let Some(SigOut::SubscribeAnswer(sdp)) = from_loop.recv().await else {
            bail!("expected the subscribe answer");
        };
        let jsep = json!({"type": "answer", "sdp": sdp, "trickle": false});
        janus.message(session, handle, json!({"request": "start"}), Some(jsep)).await?;
        let offer_sdp = offer["jsep"]["sdp"].as_str().unwrap_or("");
        let substream = janus_substream(self.tile.map(|(_, h)| h));
        let streams: Vec<Value> =
            video_mids(offer_sdp).into_iter().map(|mid| json!({"mid": mid, "substream": substream})).collect();
        if !streams.is_empty() {
            janus.message(session, handle, json!({"request": "configure", "streams": streams}), None).await?;
        }
        Ok(())
    }

    /// The next plugin event for `handle` (other events — webrtcup, media, slowlink — are skipped).
    async fn event_of(&mut self, handle: u64) -> Result<Value> {
        let until = tokio::time::Instant::now() + EVENT_WAIT;
        loop {
            let ev = tokio::time::timeout_at(until, self.events.recv())
                .await
                .map_err(|_| anyhow!("no answer from Janus within {EVENT_WAIT:?}"))?
                .ok_or_else(|| anyhow!("Janus session events ended"))?
                .map_err(|e| anyhow!(e))?;
            if ev["janus"] != "event" || ev["sender"].as_u64() != Some(handle) {
                continue;
            }
            return match plugin_error(&ev) {
                Some((code, error)) => Err(videoroom_error(code, &error)),
                None => Ok(ev),
            };
        }
    }
}

/// The VideoRoom substream to ask for: the layer whose height fits a tile `height` pixels high, or
/// the full layer without a tile (as Janus itself prefers). Janus reads the rids of the publisher's
/// `a=simulcast` line as highest first, and the bench's publishers list them `q;h;f`, so Janus's
/// substream 0 is our `f` (measured: substream 0 delivered only `f` frames, 2 only `q`).
fn janus_substream(height: Option<u32>) -> u8 {
    match height {
        Some(0..=180) => 2,
        Some(181..=360) => 1,
        _ => 0,
    }
}

/// The mids of the video m-lines of an SDP.
fn video_mids(sdp: &str) -> Vec<String> {
    let mut mids = Vec::new();
    let mut in_video = false;
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            in_video = m.starts_with("video");
        } else if in_video && let Some(mid) = line.strip_prefix("a=mid:") {
            mids.push(mid.trim().to_owned());
        }
    }
    mids
}

fn videoroom_error(code: i64, error: &str) -> anyhow::Error {
    if code == NO_SUCH_FEED { FeedMissing.into() } else { anyhow!("Janus VideoRoom error {code}: {error}") }
}

/// A subscription named a feed that is not published yet.
#[derive(Debug)]
struct FeedMissing;

impl std::fmt::Display for FeedMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a talker's feed is not published yet")
    }
}

impl std::error::Error for FeedMissing {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_videoroom_errors_from_plugin_data() {
        let ev = json!({"janus": "event", "plugindata": {"data": {"videoroom": "event", "error_code": 428, "error": "No such feed (2)"}}});
        assert_eq!(plugin_error(&ev), Some((428, "No such feed (2)".to_owned())));
        assert_eq!(plugin_error(&json!({"janus": "event", "plugindata": {"data": {"videoroom": "joined"}}})), None);
    }

    #[test]
    fn finds_the_mids_of_video_lines_only() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v2\r\n";
        assert_eq!(video_mids(sdp), vec!["1".to_owned(), "v2".to_owned()]);
    }

    #[test]
    fn tiles_pick_the_layer_that_fits_in_janus_order() {
        assert_eq!(janus_substream(Some(180)), 2);
        assert_eq!(janus_substream(Some(360)), 1);
        assert_eq!(janus_substream(Some(720)), 0);
        assert_eq!(janus_substream(None), 0);
    }

    #[test]
    fn feed_ids_are_never_zero() {
        assert_eq!(feed_of(0), 1);
        assert_ne!(feed_of(41), feed_of(42));
    }
}
