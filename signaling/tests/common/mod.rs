//! Test harness: a real `/voice` server on 127.0.0.1 and independent WebRTC clients
//! (webrtc-rs 0.21) that publish real Opus and decode what they receive.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::configuration::{RTCConfigurationBuilder, RTCIceServer, RTCIceTransportPolicy};
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use serde_json::{Value, json};
use signaling::{Rights, Signaling, SignalingConfig, VoiceEvents, VoiceGrant, VoiceStateChange};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};

pub const CHANNEL: u64 = 4242;
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Records voice states the server reports.
#[derive(Default)]
pub struct RecordedEvents(pub Mutex<Vec<VoiceStateChange>>);

impl VoiceEvents for RecordedEvents {
    fn voice_state(&self, s: VoiceStateChange) {
        if let Ok(mut v) = self.0.lock() {
            v.push(s);
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub signaling: Arc<Signaling>,
    pub registry: prometheus::Registry,
    pub events: Arc<RecordedEvents>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut SignalingConfig)) -> Server {
        let registry = prometheus::Registry::new();
        let events = Arc::new(RecordedEvents::default());
        let mut config = SignalingConfig::default();
        config.sfu.workers = 2;
        f(&mut config);
        let signaling = Signaling::in_process(config, b"test-secret", events.clone(), &registry).unwrap();
        let app = signaling::router(signaling.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { addr, signaling, registry, events }
    }

    pub fn token(&self, user_id: u64, rights: Rights) -> String {
        self.token_for(user_id, CHANNEL, rights)
    }

    pub fn token_for(&self, user_id: u64, channel_id: u64, rights: Rights) -> String {
        let grant = VoiceGrant { user_id, guild_id: Some(1), channel_id, rights };
        self.signaling.tokens().issue(&grant, Duration::from_secs(60)).unwrap().0
    }

    pub fn url(&self) -> String {
        format!("ws://{}/voice", self.addr)
    }

    /// Value of a metric family (summed over its label sets).
    pub fn metric(&self, name: &str) -> f64 {
        let mut total = 0.0;
        for fam in self.registry.gather() {
            if fam.name() != name {
                continue;
            }
            for m in fam.get_metric() {
                total += if m.get_gauge().get_value() != 0.0 {
                    m.get_gauge().get_value()
                } else {
                    m.get_counter().get_value()
                };
            }
        }
        total
    }
}

pub fn all_rights() -> Rights {
    Rights { speak: true, video: true, ..Rights::default() }
}

/// A bare WebSocket speaking JSON.
pub struct Ws {
    pub stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Ws { stream }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream.send(Message::Text(v.to_string().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, s: String) {
        self.stream.send(Message::Text(s.into())).await.unwrap();
    }

    /// Next JSON message, or None when the socket closed or 5 s passed.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), self.stream.next()).await.ok()??;
            match m {
                Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Skip messages until one of `type`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let m = self.recv().await.unwrap_or_else(|| panic!("socket ended waiting for {kind}"));
            if m["type"] == kind {
                return m;
            }
        }
    }
}

struct PcHandler {
    gathered: mpsc::Sender<()>,
    connected: mpsc::Sender<()>,
    tracks: Option<mpsc::UnboundedSender<Arc<dyn TrackRemote>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PcHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            let _ = self.connected.try_send(());
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(t) = &self.tracks {
            let _ = t.send(track);
        }
    }
}

pub struct Pc {
    pub pc: Arc<dyn PeerConnection>,
    gathered: tokio::sync::Mutex<mpsc::Receiver<()>>,
    pub connected: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

/// `relay`: the ICE servers of `joined`, used with the relay-only policy (a network that lets
/// nothing through but the TURN server).
/// `decodes_vp8: false` is a receiver whose only video codec is H.264.
async fn new_pc(
    tracks: Option<mpsc::UnboundedSender<Arc<dyn TrackRemote>>>,
    relay: Option<&Value>,
    decodes_vp8: bool,
) -> Pc {
    let mut media = MediaEngine::default();
    if decodes_vp8 {
        media.register_default_codecs().unwrap();
    } else {
        let codec = |mime: &str, clock_rate, channels, fmtp: &str, payload_type| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp.to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type,
        };
        media
            .register_codec(codec(MIME_TYPE_OPUS, 48000, 2, "minptime=10;useinbandfec=1", 111), RtpCodecKind::Audio)
            .unwrap();
        let h264 = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f";
        media.register_codec(codec(MIME_TYPE_H264, 90000, 0, h264, 102), RtpCodecKind::Video).unwrap();
    }
    media
        .register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
            RtpCodecKind::Audio,
            None,
        )
        .unwrap();
    rtc::peer_connection::configuration::interceptor_registry::configure_simulcast_extension_headers(&mut media)
        .unwrap();
    let (gtx, grx) = mpsc::channel(4);
    let (ctx, crx) = mpsc::channel(4);
    let mut builder = PeerConnectionBuilder::new();
    if let Some(servers) = relay {
        let servers = servers
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| RTCIceServer {
                urls: s["urls"].as_array().into_iter().flatten().filter_map(|u| u.as_str().map(String::from)).collect(),
                username: s["username"].as_str().unwrap_or_default().to_owned(),
                credential: s["credential"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        builder = builder.with_configuration(
            RTCConfigurationBuilder::new()
                .with_ice_servers(servers)
                .with_ice_transport_policy(RTCIceTransportPolicy::Relay)
                .build(),
        );
    }
    let pc = builder
        .with_media_engine(media)
        .with_handler(Arc::new(PcHandler { gathered: gtx, connected: ctx, tracks }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .unwrap();
    Pc { pc: Arc::new(pc), gathered: tokio::sync::Mutex::new(grx), connected: tokio::sync::Mutex::new(crx) }
}

impl Pc {
    async fn local_sdp_after_gathering(&self) -> String {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.gathered.lock().await.recv()).await;
        self.pc.local_description().await.unwrap().sdp
    }

    pub async fn wait_connected(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.connected.lock().await.recv()).await.is_ok()
    }
}

/// Decoded audio per publisher (stream id = participant id), and RTP counts.
#[derive(Default)]
pub struct Received {
    pub pcm: HashMap<String, Vec<i16>>,
    pub packets: HashMap<String, usize>,
    pub seqs: HashMap<String, Vec<u16>>,
    pub kinds: HashMap<String, String>,
    /// Frames rebuilt from Opus in-band FEC (the packet after a single loss).
    pub fec_seqs: HashMap<String, Vec<u16>>,
    /// Per video packet: (last payload byte = layer marker, starts a keyframe).
    pub video: HashMap<String, Vec<(u8, bool)>>,
}

/// Whether a VP8 RTP payload (RFC 7741) starts a keyframe.
pub fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = payload.get(1) else {
            return false;
        };
        i = 2;
        if x & 0x80 != 0 {
            let m = payload.get(i).is_some_and(|b| b & 0x80 != 0);
            i += if m { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    start && payload.get(i).is_some_and(|b| b & 1 == 0)
}

/// A voice client: one `/voice` socket, a publish and a subscribe peer connection.
pub struct Client {
    pub participant_id: String,
    pub joined: Value,
    out: mpsc::UnboundedSender<Value>,
    pub inbox: mpsc::UnboundedReceiver<Value>,
    pub publish: Arc<Pc>,
    pub subscribe: Arc<Pc>,
    pub received: Arc<Mutex<Received>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let a = self.publish.pc.clone();
        let b = self.subscribe.pc.clone();
        tokio::spawn(async move {
            let _ = a.close().await;
            let _ = b.close().await;
        });
    }
}

impl Client {
    pub async fn join(url: &str, token: &str) -> Client {
        Self::try_join(url, token).await.expect("joined")
    }

    /// Join; `Err` carries the first message when it is not `joined`.
    pub async fn try_join(url: &str, token: &str) -> Result<Client, Value> {
        Self::try_join_with(url, token, None).await
    }

    /// Join; server offers get `rewrite.0` replaced by `rewrite.1` (to put a relay
    /// in the media path).
    pub async fn try_join_with(url: &str, token: &str, rewrite: Option<(String, String)>) -> Result<Client, Value> {
        Self::join_inner(url, token, rewrite, false, true).await
    }

    /// Join as a receiver that cannot decode VP8 (H.264 is its only video codec).
    pub async fn join_without_vp8(url: &str, token: &str) -> Client {
        Self::join_inner(url, token, None, false, false).await.expect("joined")
    }

    /// Join with only relay candidates, through the TURN servers `joined` names.
    pub async fn join_relayed(url: &str, token: &str) -> Client {
        Self::join_inner(url, token, None, true, true).await.expect("joined")
    }

    async fn join_inner(
        url: &str,
        token: &str,
        rewrite: Option<(String, String)>,
        relay_only: bool,
        decodes_vp8: bool,
    ) -> Result<Client, Value> {
        let mut ws = Ws::connect(url).await;
        ws.send(json!({"type":"join","token":token})).await;
        let joined = ws.recv().await.unwrap_or(Value::Null);
        if joined["type"] != "joined" {
            return Err(joined);
        }
        let participant_id = joined["participant_id"].as_str().unwrap().to_owned();
        let (track_tx, mut track_rx) = mpsc::unbounded_channel::<Arc<dyn TrackRemote>>();
        let relay = relay_only.then_some(&joined["ice_servers"]);
        let publish = Arc::new(new_pc(None, relay, decodes_vp8).await);
        let subscribe = Arc::new(new_pc(Some(track_tx), relay, decodes_vp8).await);
        let received = Arc::new(Mutex::new(Received::default()));
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
        let (in_tx, inbox) = mpsc::unbounded_channel::<Value>();
        let (mut sink, mut stream) = ws.stream.split();
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(async move {
            while let Some(v) = out_rx.recv().await {
                if sink.send(Message::Text(v.to_string().into())).await.is_err() {
                    break;
                }
            }
        }));
        // Socket reader: negotiation is handled here, everything else goes to the inbox.
        let (pubc, subc, out2) = (publish.clone(), subscribe.clone(), out_tx.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("offer") => {
                        let mut sdp = v["sdp"].as_str().unwrap_or_default().to_owned();
                        if let Some((from, to)) = &rewrite {
                            sdp = sdp.replace(from.as_str(), to.as_str());
                        }
                        let Ok(offer) = RTCSessionDescription::offer(sdp) else {
                            continue;
                        };
                        if subc.pc.set_remote_description(offer).await.is_err() {
                            continue;
                        }
                        let Ok(answer) = subc.pc.create_answer(None).await else {
                            continue;
                        };
                        let _ = subc.pc.set_local_description(answer).await;
                        let sdp = subc.local_sdp_after_gathering().await;
                        let _ = out2.send(json!({"type":"answer","sdp":sdp}));
                    }
                    Some("answer") => {
                        let sdp = v["sdp"].as_str().unwrap_or_default().to_owned();
                        if let Ok(a) = RTCSessionDescription::answer(sdp) {
                            let _ = pubc.pc.set_remote_description(a).await;
                        }
                        let _ = in_tx.send(v);
                    }
                    _ => {
                        let _ = in_tx.send(v);
                    }
                }
            }
        }));
        // Remote tracks: count RTP and decode Opus per publisher.
        let rec = received.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(track) = track_rx.recv().await {
                let rec = rec.clone();
                tokio::spawn(async move {
                    let stream_id = track.stream_id().await.to_string();
                    let kind = track.kind().await;
                    let is_audio = kind == RtpCodecKind::Audio;
                    if let Ok(mut r) = rec.lock() {
                        r.kinds.insert(stream_id.clone(), format!("{kind:?}"));
                    }
                    let mut dec = opus::Decoder::new(48000, opus::Channels::Mono).ok();
                    let mut pcm = vec![0i16; 5760];
                    let mut last_seq: Option<u16> = None;
                    while let Some(ev) = track.poll().await {
                        match ev {
                            TrackRemoteEvent::OnRtpPacket(p) => {
                                let mut r = match rec.lock() {
                                    Ok(r) => r,
                                    Err(_) => break,
                                };
                                *r.packets.entry(stream_id.clone()).or_default() += 1;
                                r.seqs.entry(stream_id.clone()).or_default().push(p.header.sequence_number);
                                let seq = p.header.sequence_number;
                                let single_gap = last_seq.is_some_and(|l| seq == l.wrapping_add(2));
                                if seq.wrapping_sub(last_seq.unwrap_or(seq)) < 0x8000 {
                                    last_seq = Some(seq);
                                }
                                if !is_audio {
                                    let layer = p.payload.last().copied().unwrap_or(255);
                                    let kf = vp8_starts_keyframe(&p.payload);
                                    r.video.entry(stream_id.clone()).or_default().push((layer, kf));
                                }
                                if is_audio
                                    && single_gap
                                    && let Some(d) = dec.as_mut()
                                    && let Ok(n) = d.decode(&p.payload, &mut pcm, true)
                                    && n > 0
                                {
                                    r.fec_seqs.entry(stream_id.clone()).or_default().push(seq.wrapping_sub(1));
                                    r.pcm.entry(stream_id.clone()).or_default().extend_from_slice(&pcm[..n]);
                                }
                                if is_audio
                                    && let Some(d) = dec.as_mut()
                                    && let Ok(n) = d.decode(&p.payload, &mut pcm, false)
                                {
                                    r.pcm.entry(stream_id.clone()).or_default().extend_from_slice(&pcm[..n]);
                                }
                            }
                            TrackRemoteEvent::OnEnded => break,
                            _ => {}
                        }
                    }
                });
            }
        }));
        Ok(Client { participant_id, joined, out: out_tx, inbox, publish, subscribe, received, tasks })
    }

    pub fn send(&self, v: Value) {
        let _ = self.out.send(v);
    }

    /// Next inbox message of `kind` within `within`.
    pub async fn expect(&mut self, kind: &str, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = tokio::time::timeout_at(deadline, self.inbox.recv()).await.ok()??;
            if v["type"] == kind {
                return Some(v);
            }
        }
    }

    /// Offer the publish connection with the tracks added so far; returns the reply
    /// (`answer` or `error`).
    pub async fn offer_publish(&mut self) -> Value {
        let offer = self.publish.pc.create_offer(None).await.unwrap();
        self.publish.pc.set_local_description(offer).await.unwrap();
        let sdp = self.publish.local_sdp_after_gathering().await;
        self.send(json!({"type":"offer","sdp":sdp}));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let v = tokio::time::timeout_at(deadline, self.inbox.recv()).await.ok().flatten().expect("answer or error");
            if v["type"] == "answer" || v["type"] == "error" {
                return v;
            }
        }
    }

    /// Add an Opus track to the publish connection.
    pub async fn add_audio_track(&self) -> (Arc<TrackLocalStaticRTP>, u32) {
        let ssrc = rand::random::<u32>();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("s{ssrc}"),
            format!("a{ssrc}"),
            "mic".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                active: true,
                ..Default::default()
            }],
        )));
        self.publish.pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.unwrap();
        (track, ssrc)
    }

    /// Add a VP8 track to the publish connection.
    pub async fn add_video_track(&self) -> (Arc<TrackLocalStaticRTP>, u32) {
        let ssrc = rand::random::<u32>();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("s{ssrc}"),
            format!("v{ssrc}"),
            "camera".to_owned(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_VP8.to_owned(),
                    clock_rate: 90000,
                    channels: 0,
                    sdp_fmtp_line: String::new(),
                    rtcp_feedback: vec![],
                },
                active: true,
                ..Default::default()
            }],
        )));
        self.publish.pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.unwrap();
        (track, ssrc)
    }

    /// Sets the direction of the publish transceiver that sends `kind` (a camera turned off: inactive;
    /// on again: sendonly) and offers the change; returns the reply (`answer` or `error`).
    pub async fn set_publish_direction(&mut self, kind: RtpCodecKind, dir: RTCRtpTransceiverDirection) -> Value {
        let mut found = false;
        for t in self.publish.pc.get_transceivers().await {
            let Ok(Some(sender)) = t.sender().await else { continue };
            if sender.track().kind().await == kind {
                t.set_direction(dir).await.expect("direction set");
                found = true;
            }
        }
        assert!(found, "no {kind:?} transceiver to change");
        self.offer_publish().await
    }

    /// The SDP of the subscribe connection's current remote description (the SFU's last offer).
    pub async fn subscribe_remote_sdp(&self) -> String {
        self.subscribe.pc.remote_description().await.map(|d| d.sdp).unwrap_or_default()
    }

    /// Next `track_published` of `kind` within 5 s; its `track_id`.
    pub async fn expect_published(&mut self, kind: &str) -> String {
        loop {
            let v = self.expect("track_published", Duration::from_secs(5)).await.expect("track_published");
            if v["kind"] == kind {
                return v["track_id"].as_str().expect("track_id").to_owned();
            }
        }
    }

    pub fn video_packets_from(&self, participant_id: &str) -> usize {
        self.received.lock().map(|r| r.video.get(participant_id).map_or(0, Vec::len)).unwrap_or(0)
    }

    /// Publish a sine tone as real Opus (20 ms frames) until the task is aborted.
    pub async fn publish_tone(&mut self, freq: f64) -> tokio::task::JoinHandle<()> {
        let (track, ssrc) = self.add_audio_track().await;
        let answer = self.offer_publish().await;
        assert_eq!(answer["type"], "answer", "publish refused: {answer}");
        assert!(self.publish.wait_connected(Duration::from_secs(10)).await, "publish connection did not connect");
        tokio::spawn(send_tone(track, ssrc, freq, None))
    }

    /// Like `publish_tone`, with an RFC 6464 audio level (-dBov, 0 loud, 127 silent)
    /// in every packet, read from `level` as it changes.
    pub async fn publish_tone_with_level(
        &mut self,
        freq: f64,
        level: Arc<std::sync::atomic::AtomicU8>,
    ) -> tokio::task::JoinHandle<()> {
        let (track, ssrc) = self.add_audio_track().await;
        let answer = self.offer_publish().await;
        assert_eq!(answer["type"], "answer", "publish refused: {answer}");
        let sdp = answer["sdp"].as_str().unwrap_or_default();
        let id = sdp
            .lines()
            .find(|l| l.contains(AUDIO_LEVEL_URI))
            .and_then(|l| l.strip_prefix("a=extmap:"))
            .and_then(|l| l.split([' ', '/']).next())
            .and_then(|n| n.parse::<u8>().ok())
            .expect("audio level extension negotiated");
        assert!(self.publish.wait_connected(Duration::from_secs(10)).await);
        tokio::spawn(send_tone(track, ssrc, freq, Some((id, level))))
    }

    pub fn decoded_from(&self, participant_id: &str) -> Vec<i16> {
        self.received.lock().map(|r| r.pcm.get(participant_id).cloned().unwrap_or_default()).unwrap_or_default()
    }

    pub fn packets_from(&self, participant_id: &str) -> usize {
        self.received.lock().map(|r| r.packets.get(participant_id).copied().unwrap_or(0)).unwrap_or(0)
    }
}

/// Encode a tone with libopus and write it as RTP, 50 packets a second.
pub async fn send_tone(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    freq: f64,
    level: Option<(u8, Arc<std::sync::atomic::AtomicU8>)>,
) {
    let Ok(mut enc) = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip) else {
        return;
    };
    let _ = enc.set_inband_fec(true);
    let _ = enc.set_packet_loss_perc(10);
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    let mut phase = 0.0f64;
    let mut seq: u16 = rand::random();
    let mut ts: u32 = rand::random();
    let mut frame = [0i16; 960];
    let mut out = vec![0u8; 1500];
    loop {
        interval.tick().await;
        for s in frame.iter_mut() {
            *s = (phase.sin() * 12000.0) as i16;
            phase += 2.0 * std::f64::consts::PI * freq / 48000.0;
        }
        phase %= 2.0 * std::f64::consts::PI;
        let Ok(n) = enc.encode(&frame, &mut out) else {
            continue;
        };
        let mut header = rtc::rtp::header::Header {
            version: 2,
            payload_type: 111,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            marker: false,
            ..Default::default()
        };
        if let Some((id, level)) = &level {
            let l = level.load(std::sync::atomic::Ordering::Relaxed).min(127);
            let _ = header.set_extension(*id, bytes::Bytes::from(vec![0x80 | l]));
        }
        let pkt = rtc::rtp::packet::Packet { header, payload: bytes::Bytes::copy_from_slice(&out[..n]) };
        if track.write_rtp(pkt).await.is_err() {
            return;
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(960);
    }
}

/// A synthetic VP8 frame of `len` bytes (no payload descriptor): the frame tag, and on a keyframe the start
/// code and the size (`width`, `height`) the SFU reads a layer's size from; the rest is `fill`.
pub fn vp8_frame(keyframe: bool, (width, height): (u16, u16), len: usize, fill: u8) -> Vec<u8> {
    let mut frame = vec![if keyframe { 0x10 } else { 0x11 }, 0x02, 0x00];
    if keyframe {
        frame.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        frame.extend_from_slice(&width.to_le_bytes());
        frame.extend_from_slice(&height.to_le_bytes());
    }
    frame.resize(len, fill);
    frame
}

/// Write single-layer VP8 frames (320x180, 30 fps, a keyframe every 15) until the task is aborted. A failed
/// write (line not sending) is skipped, so the stream goes on when the line sends again.
pub async fn send_vp8(track: Arc<TrackLocalStaticRTP>, ssrc: u32) {
    let mut interval = tokio::time::interval(Duration::from_millis(33));
    let mut seq: u16 = rand::random();
    for n in 0u32.. {
        interval.tick().await;
        // Payload descriptor (start of partition), then the frame.
        let mut frame = vec![0x10u8];
        frame.extend(vp8_frame(n % 15 == 0, (320, 180), 599, 0x42));
        let header = rtc::rtp::header::Header {
            version: 2,
            payload_type: 96,
            sequence_number: seq,
            timestamp: n.wrapping_mul(3000),
            ssrc,
            marker: true,
            ..Default::default()
        };
        let _ = track.write_rtp(rtc::rtp::packet::Packet { header, payload: bytes::Bytes::from(frame) }).await;
        seq = seq.wrapping_add(1);
    }
}

/// The strongest frequency (Hz, 10 Hz steps between 100 and 2000) in the last
/// half second of `pcm` (48 kHz), by Goertzel.
pub fn dominant_frequency(pcm: &[i16]) -> Option<f64> {
    let n = 24000;
    if pcm.len() < n {
        return None;
    }
    let x = &pcm[pcm.len() - n..];
    let mut best = (0.0, 0.0);
    let mut f = 100.0;
    while f <= 2000.0 {
        let w = 2.0 * std::f64::consts::PI * f / 48000.0;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = v as f64 + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let p = s1 * s1 + s2 * s2 - c * s1 * s2;
        if p > best.1 {
            best = (f, p);
        }
        f += 10.0;
    }
    Some(best.0)
}

/// Poll `cond` every 50 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}
