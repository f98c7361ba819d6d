//! The SFU's edits of subscribe SDP as text: two to str0m's offers — each line offers only the
//! codecs its track's publisher negotiated (the one it sends, once its media has arrived), and audio
//! lines carry no transport-wide sequence numbers — and one to the subscriber's answer: a rejected
//! line without a direction is read as inactive.
//!
//! Why only the publisher's codecs: str0m offers every codec the session is configured for (VP8 and
//! H.264) on every video line. A receiver that answers with H.264 alone for a VP8 track would be
//! accepted and then sent VP8 it cannot decode — no picture and no error. Offering only what can
//! be forwarded makes the answer say whether the receiver can take it (the room tells it when not).
//!
//! Why no transport-cc on audio: the bandwidth estimate exists to pick video layers. Audio (Opus, tens of kbit/s) is never
//! switched, yet with transport-cc negotiated on its lines every forwarded audio packet carries a
//! sequence number, every receiver sends feedback about it, and str0m's pacer sends padding and
//! probes towards subscribers that only hear audio. Without the extension on audio lines the
//! estimator sees video only, and a subscriber without video costs no estimator work at all. The
//! client's answer mirrors the offer's extensions per line (RFC 8285), and str0m writes the sequence
//! number only on lines whose answer carries it (as for Firefox, which never uses it for audio).
//!
//! str0m builds the extension list per media kind and does not expose its SDP types for editing, so
//! this works on the offer's text.

/// The transport-wide congestion control header extension (draft-holmer-rmcat-transport-wide-cc).
const TRANSPORT_CC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// `sdp` without `a=extmap` lines for transport-cc inside `m=audio` sections; everything else,
/// including the line endings, unchanged.
pub fn without_audio_transport_cc(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    let mut in_audio = false;
    for line in sdp.split_inclusive('\n') {
        let text = line.trim_end_matches(['\r', '\n']);
        if let Some(media) = text.strip_prefix("m=") {
            in_audio = media.starts_with("audio ");
        } else if in_audio && is_transport_cc_extmap(text) {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// The codecs one outgoing line may offer: `mid` and codec names as SDP writes them (`VP8`, `opus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineCodecs {
    pub mid: String,
    pub codecs: Vec<String>,
}

/// `sdp` where each section named in `lines` keeps only the payload types of its codecs and their
/// retransmission (`rtx` with `apt=` a kept type): the `m=` format list and the `a=rtpmap`, `a=fmtp`
/// and `a=rtcp-fb` lines of the others go. A section that would be left with nothing is unchanged.
pub fn only_codecs(sdp: &str, lines: &[LineCodecs]) -> String {
    let mut out = String::with_capacity(sdp.len());
    for section in sections(sdp) {
        narrow_section(&section, lines, &mut out);
    }
    out
}

/// The session part, then each media section from its `m=` line; lines keep their endings.
fn sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut all: Vec<Vec<&str>> = vec![Vec::new()];
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            all.push(Vec::new());
        }
        if let Some(last) = all.last_mut() {
            last.push(line);
        }
    }
    all
}

/// A line without its ending.
fn text(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Appends one section (the session part, or `m=` and its attributes) to `out`, narrowed.
fn narrow_section(section: &[&str], lines: &[LineCodecs], out: &mut String) {
    let mid = section.iter().find_map(|l| text(l).strip_prefix("a=mid:").map(str::to_string));
    let Some(codecs) = mid.and_then(|m| lines.iter().find(|l| l.mid == m)).map(|l| &l.codecs) else {
        section.iter().for_each(|l| out.push_str(l));
        return;
    };
    let mut keep: Vec<&str> = Vec::new();
    for l in section.iter().map(|l| text(l)) {
        if let Some((pt, name)) = l.strip_prefix("a=rtpmap:").and_then(|r| r.split_once(' '))
            && codecs.iter().any(|c| name.split('/').next().is_some_and(|n| n.eq_ignore_ascii_case(c)))
        {
            keep.push(pt);
        }
    }
    if keep.is_empty() {
        section.iter().for_each(|l| out.push_str(l));
        return;
    }
    for l in section.iter().map(|l| text(l)) {
        if let Some((pt, params)) = l.strip_prefix("a=fmtp:").and_then(|r| r.split_once(' '))
            && params.split(';').any(|p| p.trim().strip_prefix("apt=").is_some_and(|apt| keep.contains(&apt)))
            && !keep.contains(&pt)
        {
            keep.push(pt);
        }
    }
    for line in section {
        let l = text(line);
        let ending = &line[l.len()..];
        if let Some(m) = l.strip_prefix("m=") {
            let fields: Vec<&str> = m.split(' ').collect();
            let formats = fields.iter().skip(3).filter(|pt| keep.contains(pt));
            let kept: Vec<&str> = fields.iter().take(3).copied().chain(formats.copied()).collect();
            out.push_str("m=");
            out.push_str(&kept.join(" "));
            out.push_str(ending);
            continue;
        }
        let pt = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
            .iter()
            .find_map(|prefix| l.strip_prefix(prefix))
            .and_then(|r| r.split(' ').next());
        if pt.is_some_and(|pt| pt != "*" && !keep.contains(&pt)) {
            continue;
        }
        out.push_str(line);
    }
}

/// `sdp` (a subscriber's answer) where each rejected media line (port 0) that names no direction gets
/// `a=inactive`. RFC 3264 lets an answer reject a line it cannot take (no common codec) with port 0
/// and no other attribute, as webrtc-rs does; str0m refuses a line without a direction, and with it
/// the whole answer.
pub fn rejected_lines_inactive(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 16);
    for section in sections(sdp) {
        close_section(&section, &mut out);
    }
    out
}

fn close_section(section: &[&str], out: &mut String) {
    let Some(first) = section.first() else { return };
    let rejected = text(first).strip_prefix("m=").is_some_and(|m| m.split(' ').nth(1) == Some("0"));
    let directed = section.iter().any(|l| matches!(text(l), "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"));
    section.iter().for_each(|l| out.push_str(l));
    if rejected && !directed {
        // Attributes come last in a media section (after `c=`, `b=`): append.
        let last = section.last().copied().unwrap_or(first);
        if last.ends_with("\r\n") {
            out.push_str("a=inactive\r\n");
        } else if last.ends_with('\n') {
            out.push_str("a=inactive\n");
        } else {
            out.push_str("\r\na=inactive");
        }
    }
}

/// `a=extmap:<id>[/<direction>] <uri> [attributes]` naming transport-cc.
fn is_transport_cc_extmap(line: &str) -> bool {
    line.strip_prefix("a=extmap:")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .is_some_and(|uri| uri == TRANSPORT_CC_URI)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=mid:0\r\n\
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
        a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
        a=sendonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
        a=mid:1\r\n\
        a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
        a=sendonly\r\n";

    #[test]
    fn audio_lines_lose_transport_cc_and_keep_their_other_extensions() {
        let out = without_audio_transport_cc(OFFER);
        let audio = &out[out.find("m=audio").unwrap()..out.find("m=video").unwrap()];
        assert!(!audio.contains("transport-wide-cc"), "{audio}");
        assert!(audio.contains("a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"), "{audio}");
    }

    #[test]
    fn video_lines_keep_transport_cc() {
        let out = without_audio_transport_cc(OFFER);
        let video = &out[out.find("m=video").unwrap()..];
        assert!(
            video.contains("a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n")
        );
    }

    #[test]
    fn only_that_line_goes_and_line_endings_stay() {
        let out = without_audio_transport_cc(OFFER);
        let removed = "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n";
        assert_eq!(out.len(), OFFER.len() - removed.len());
        assert!(out.split('\n').all(|l| l.is_empty() || l.ends_with('\r')));
        let lf = OFFER.replace("\r\n", "\n");
        assert_eq!(without_audio_transport_cc(&lf), out.replace("\r\n", "\n"));
    }

    #[test]
    fn an_offer_without_audio_is_unchanged() {
        let video_only = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=extmap:3 ".to_string() + TRANSPORT_CC_URI + "\r\n";
        assert_eq!(without_audio_transport_cc(&video_only), video_only);
    }

    const VIDEO: &str = "v=0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=mid:0\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
        a=mid:1\r\n\
        a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtcp-fb:96 nack pli\r\n\
        a=rtpmap:97 rtx/90000\r\n\
        a=fmtp:97 apt=96\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=rtcp-fb:102 nack pli\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:103 rtx/90000\r\n\
        a=fmtp:103 apt=102\r\n\
        a=rtcp-fb:* transport-cc\r\n\
        a=sendonly\r\n";

    fn vp8_on(mid: &str) -> Vec<LineCodecs> {
        vec![LineCodecs { mid: mid.into(), codecs: vec!["VP8".into()] }]
    }

    #[test]
    fn a_vp8_line_offers_vp8_and_its_retransmission_only() {
        let out = only_codecs(VIDEO, &vp8_on("1"));
        let video = &out[out.find("m=video").unwrap()..];
        assert!(video.starts_with("m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"), "{video}");
        assert!(!video.contains("H264") && !video.contains(":102") && !video.contains(":103"), "{video}");
        for kept in ["a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack pli", "a=fmtp:97 apt=96", "a=rtcp-fb:* transport-cc"] {
            assert!(video.contains(kept), "{kept} in {video}");
        }
        assert!(video.contains("a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"), "extensions stay");
    }

    #[test]
    fn lines_not_named_and_the_session_part_are_unchanged() {
        let out = only_codecs(VIDEO, &vp8_on("0"));
        assert_eq!(out, VIDEO, "mid 0 has no VP8: left as it was; mid 1 is not named");
        assert_eq!(only_codecs(VIDEO, &[]), VIDEO);
    }

    #[test]
    fn an_h264_line_keeps_every_h264_payload_type_and_its_rtx() {
        let out = only_codecs(VIDEO, &[LineCodecs { mid: "1".into(), codecs: vec!["h264".into()] }]);
        assert!(out.contains("m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\n"), "{out}");
        assert!(!out.contains("VP8") && !out.contains("apt=96"), "{out}");
    }

    #[test]
    fn a_rejected_line_without_a_direction_is_read_as_inactive() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
                      m=video 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n";
        assert_eq!(rejected_lines_inactive(answer), format!("{answer}a=inactive\r\n"));
    }

    #[test]
    fn lines_with_a_direction_or_a_port_are_left_alone() {
        let answer = "v=0\nm=video 0 UDP/TLS/RTP/SAVPF 96\na=inactive\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:1\n";
        assert_eq!(rejected_lines_inactive(answer), answer);
        assert_eq!(rejected_lines_inactive(""), "");
    }

    #[test]
    fn a_rejected_last_line_without_an_ending_gets_its_direction_on_a_line_of_its_own() {
        assert_eq!(rejected_lines_inactive("m=video 0"), "m=video 0\r\na=inactive");
    }

    #[test]
    fn an_extmap_with_a_direction_is_recognised() {
        assert!(is_transport_cc_extmap(&format!("a=extmap:5/sendonly {TRANSPORT_CC_URI}")));
        assert!(!is_transport_cc_extmap("a=extmap:5 urn:ietf:params:rtp-hdrext:sdes:mid"));
        assert!(!is_transport_cc_extmap("a=extmap:"));
    }
}
