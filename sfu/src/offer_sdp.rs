//! The one edit the SFU makes to str0m's subscribe offers: no transport-wide sequence numbers on
//! audio lines.
//!
//! Why: the bandwidth estimate exists to pick video layers. Audio (Opus, tens of kbit/s) is never
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

    #[test]
    fn an_extmap_with_a_direction_is_recognised() {
        assert!(is_transport_cc_extmap(&format!("a=extmap:5/sendonly {TRANSPORT_CC_URI}")));
        assert!(!is_transport_cc_extmap("a=extmap:5 urn:ietf:params:rtp-hdrext:sdes:mid"));
        assert!(!is_transport_cc_extmap("a=extmap:"));
    }
}
