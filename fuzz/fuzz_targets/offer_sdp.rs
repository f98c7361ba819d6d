//! The SFU's text edits and checks of SDP (`sfu::fuzzing`): `without_audio_transport_cc`, applied
//! to subscribe offers, `check_publish_rights`, applied to client publish offers, and
//! `rejected_lines_inactive`, applied to client subscribe answers.
//!
//! Asserts for `without_audio_transport_cc`: no panic; it removes exactly the transport-cc
//! `a=extmap` lines inside `m=audio` sections (an independent reading of the rule) and keeps every
//! other line, with its line ending, in order; applying it twice changes nothing; it commutes with
//! turning CRLF into LF. For `check_publish_rights`: with every right any offer passes; more rights
//! never refuse what fewer rights passed; a refusal names a right that is missing; an SDP without
//! media lines always passes. For `rejected_lines_inactive`: no panic; every input line is kept, in
//! order, and nothing but `a=inactive` lines is added, at most one per media line; applying it twice
//! changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu::Rights;
use sfu::fuzzing::{check_publish_rights, rejected_lines_inactive, without_audio_transport_cc};

const TRANSPORT_CC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Written independently of the code under test: the line's text without its ending, and whether
/// it names the transport-cc URI as an extmap's second field.
fn is_transport_cc(line: &str) -> bool {
    let text = line.trim_end_matches(['\r', '\n']);
    let Some(rest) = text.strip_prefix("a=extmap:") else { return false };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.len() >= 2 && fields[1] == TRANSPORT_CC_URI
}

fn check_edit(sdp: &str) {
    let out = without_audio_transport_cc(sdp);
    // Exactly the lines that are not transport-cc extmaps of an audio section, each as it was.
    let mut expected = String::new();
    let mut audio = false;
    for line in sdp.split_inclusive('\n') {
        let text = line.trim_end_matches(['\r', '\n']);
        if let Some(m) = text.strip_prefix("m=") {
            audio = m.starts_with("audio ");
        } else if audio && is_transport_cc(line) {
            continue;
        }
        expected.push_str(line);
    }
    assert_eq!(out, expected);
    assert_eq!(without_audio_transport_cc(&out), out, "not idempotent");
    let lf = sdp.replace("\r\n", "\n");
    assert_eq!(without_audio_transport_cc(&lf), out.replace("\r\n", "\n"), "CRLF and LF differ");
    if !sdp.contains("m=audio") {
        assert_eq!(out, sdp);
    }
}

fn check_rights(sdp: &str) {
    let all = [false, true];
    let mut results = Vec::new();
    for speak in all {
        for video in all {
            let rights = Rights { speak, video };
            let r = check_publish_rights(sdp, rights);
            if let Err(what) = r {
                assert!(
                    (what.starts_with("audio") && !speak) || (what.starts_with("video") && !video),
                    "{what} with {rights:?}"
                );
            }
            results.push((rights, r.is_ok()));
        }
    }
    for &(r1, ok1) in &results {
        for &(r2, ok2) in &results {
            let superset = (r2.speak || !r1.speak) && (r2.video || !r1.video);
            if superset && ok1 {
                assert!(ok2, "{r1:?} passes but {r2:?} does not");
            }
        }
    }
    assert!(check_publish_rights(sdp, Rights { speak: true, video: true }).is_ok());
    if !sdp.lines().any(|l| l.starts_with("m=")) {
        assert!(results.iter().all(|&(_, ok)| ok), "no media line, yet refused");
    }
}

fn check_answer_repair(sdp: &str) {
    let out = rejected_lines_inactive(sdp);
    let added: String = {
        // Remove the input's lines in order; what is left must be only `a=inactive` lines.
        let mut rest = out.as_str();
        let mut added = String::new();
        for line in sdp.split_inclusive('\n') {
            let at = rest.find(line).expect("every input line is kept, in order");
            added.push_str(&rest[..at]);
            rest = &rest[at + line.len()..];
        }
        added.push_str(rest);
        added
    };
    let inserted = added.split(['\r', '\n']).filter(|l| !l.is_empty()).collect::<Vec<_>>();
    assert!(inserted.iter().all(|l| *l == "a=inactive"), "added {inserted:?}");
    assert!(inserted.len() <= sdp.matches("m=").count());
    assert_eq!(rejected_lines_inactive(&out), out, "not idempotent");
}

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else { return };
    check_edit(sdp);
    check_rights(sdp);
    check_answer_repair(sdp);
});
