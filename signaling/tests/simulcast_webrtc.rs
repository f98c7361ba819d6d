//! Simulcast with an independent publisher (webrtc-rs): three VP8 layers with correct
//! payload descriptors and keyframes; each subscriber gets the layer its tile needs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_VP8;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use serde_json::json;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

const LAYERS: [(&str, u16, u16, usize); 3] = [("q", 320, 180, 300), ("h", 640, 360, 1500), ("f", 1280, 720, 3000)];

fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines()
        .find(|l| l.ends_with(uri))
        .and_then(|l| l.strip_prefix("a=extmap:"))
        .and_then(|l| l.split([' ', '/']).next())
        .and_then(|n| n.parse().ok())
}

/// Send VP8 frames on three layers at 30 fps; a keyframe every 15 frames.
async fn send_layers(track: Arc<TrackLocalStaticRTP>, ssrcs: [u32; 3], mid: String, mid_id: u8, rid_id: u8) {
    let mut interval = tokio::time::interval(Duration::from_millis(33));
    let mut seq = [0u16; 3];
    for n in 0u32.. {
        interval.tick().await;
        let keyframe = n % 15 == 0;
        for (l, (rid, w, h, size)) in LAYERS.into_iter().enumerate() {
            let frame = vp8_frame(keyframe, (w, h), size, l as u8);
            let chunks: Vec<&[u8]> = frame.chunks(1000).collect();
            for (c, chunk) in chunks.iter().enumerate() {
                let mut payload = vec![if c == 0 { 0x10 } else { 0x00 }];
                payload.extend_from_slice(chunk);
                let mut header = rtc::rtp::header::Header {
                    version: 2,
                    payload_type: 96,
                    sequence_number: seq[l],
                    timestamp: n * 3000,
                    ssrc: ssrcs[l],
                    marker: c + 1 == chunks.len(),
                    ..Default::default()
                };
                let _ = header.set_extension(mid_id, bytes::Bytes::from(mid.clone().into_bytes()));
                let _ = header.set_extension(rid_id, bytes::Bytes::from(rid.as_bytes().to_vec()));
                seq[l] = seq[l].wrapping_add(1);
                let pkt = rtc::rtp::packet::Packet { header, payload: bytes::Bytes::from(payload) };
                if track.write_rtp(pkt).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn video_from(c: &Client, id: &str) -> Vec<(u8, bool)> {
    c.received.lock().map(|r| r.video.get(id).cloned().unwrap_or_default()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_tile_gets_low_layer_large_tile_gets_high_layer_switching_up_at_a_keyframe() {
    let server = Server::start().await;
    let url = server.url();
    let mut publisher = Client::join(&url, &server.token(1, all_rights())).await;
    let mut small = Client::join(&url, &server.token(2, all_rights())).await;
    let large = Client::join(&url, &server.token(3, all_rights())).await;

    let ssrcs: [u32; 3] = [rand::random(), rand::random(), rand::random()];
    let encodings = LAYERS
        .iter()
        .zip(ssrcs)
        .map(|((rid, ..), ssrc)| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: rid.to_string(),
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            active: true,
            ..Default::default()
        })
        .collect();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "cam".to_owned(),
        "cam-track".to_owned(),
        "camera".to_owned(),
        RtpCodecKind::Video,
        encodings,
    )));
    publisher.publish.pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.unwrap();
    let answer = publisher.offer_publish().await;
    assert_eq!(answer["type"], "answer", "{answer}");
    let sdp = answer["sdp"].as_str().unwrap();
    assert!(sdp.contains("a=simulcast"), "simulcast not negotiated:\n{sdp}");
    let mid = sdp.lines().find_map(|l| l.strip_prefix("a=mid:")).unwrap().to_owned();
    let mid_id = extmap_id(sdp, "urn:ietf:params:rtp-hdrext:sdes:mid").expect("mid ext");
    let rid_id = extmap_id(sdp, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id").expect("rid ext");
    assert!(publisher.publish.wait_connected(Duration::from_secs(10)).await);
    let sender = tokio::spawn(send_layers(track, ssrcs, mid, mid_id, rid_id));

    let published = small.expect("track_published", Duration::from_secs(5)).await.expect("track published");
    assert_eq!(published["simulcast"], true);
    let track_id = published["track_id"].as_str().unwrap().to_owned();
    let pid = publisher.participant_id.clone();
    small.send(json!({"type":"subscribe","track_id":track_id,"max_width":320,"max_height":180}));
    large.send(json!({"type":"subscribe","track_id":track_id,"max_width":1280,"max_height":720}));

    assert!(
        eventually(Duration::from_secs(10), || {
            video_from(&small, &pid).len() >= 40 && video_from(&large, &pid).len() >= 40
        })
        .await,
        "small got {} packets, large {}",
        video_from(&small, &pid).len(),
        video_from(&large, &pid).len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = video_from(&small, &pid);
    let l = video_from(&large, &pid);
    // Ignore the first second (layers come up); after that the choice is stable.
    let settled = |v: &[(u8, bool)]| v[v.len() / 2..].to_vec();
    assert!(settled(&s).iter().all(|(layer, _)| *layer == 0), "small tile: {:?}", settled(&s));
    assert!(settled(&l).iter().all(|(layer, _)| *layer == 2), "large tile: {:?}", settled(&l));
    assert!(s[0].1 && l[0].1, "each stream starts at a keyframe");

    // Large tile shrinks (down at once), then grows again (up at a keyframe).
    large.send(json!({"type":"subscribe","track_id":track_id,"max_width":320,"max_height":180}));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mark = video_from(&large, &pid).len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let down = video_from(&large, &pid)[mark..].to_vec();
    assert!(!down.is_empty() && down.iter().all(|(layer, _)| *layer == 0), "after shrinking: {down:?}");

    let mark = video_from(&large, &pid).len();
    large.send(json!({"type":"subscribe","track_id":track_id,"max_width":1280,"max_height":720}));
    assert!(
        eventually(Duration::from_secs(5), || video_from(&large, &pid)[mark..].iter().any(|(l, _)| *l == 2)).await,
        "never switched up"
    );
    let up = video_from(&large, &pid)[mark..].to_vec();
    let first = up.iter().position(|(l, _)| *l == 2).unwrap();
    assert!(up[first].1, "switch up must start at a keyframe: {up:?}");
    assert!(server.metric("chorus_sfu_layer_switches_total") >= 2.0);
    sender.abort();
}
