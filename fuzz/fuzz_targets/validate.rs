//! Request fields checked at the edge (`chat::validate`): usernames, passwords, names, channel names,
//! message content, optional texts, nonces, reaction emoji.
//!
//! Asserts: no panic; each check accepts exactly what its documented rule says (an independent
//! reading of the rule); what a check returns is accepted again unchanged (a value the server
//! stored passes its own check when a client sends it back), including the normalised channel
//! names of text channels.
#![no_main]

use chat::validate;
use libfuzzer_sys::fuzz_target;

fn chars(s: &str) -> usize {
    s.chars().count()
}

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else { return };
    let Ok(raw) = std::str::from_utf8(rest) else { return };
    let max = usize::from(max);

    let ok = (2..=32).contains(&chars(raw)) && raw.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    let u = validate::username(raw);
    assert_eq!(u.is_ok(), ok, "username {raw:?}");
    if let Ok(u) = u {
        assert_eq!(u, raw);
    }

    assert_eq!(validate::password(raw).is_ok(), (8..=128).contains(&chars(raw)), "password");

    let t = raw.trim();
    let ok = (1..=max).contains(&chars(t)) && !t.chars().any(char::is_control);
    match validate::name("name", raw, max) {
        Ok(n) => {
            assert!(ok, "name {raw:?} max {max}");
            assert_eq!(n, t);
            assert_eq!(validate::name("name", &n, max).ok(), Some(n.clone()), "name not stable");
        }
        Err(_) => assert!(!ok, "name {raw:?} max {max}"),
    }

    for text in [false, true] {
        if let Ok(n) = validate::channel_name(raw, text) {
            assert!((1..=100).contains(&chars(&n)), "channel name {n:?} has {} characters", chars(&n));
            assert_eq!(validate::channel_name(&n, text).ok(), Some(n.clone()), "channel name not stable: {raw:?}");
            if text {
                assert!(!n.contains(' '), "{n:?}");
            }
        }
    }

    let ok = !raw.trim().is_empty() && chars(raw) <= validate::MAX_MESSAGE_CHARS;
    match validate::content(raw) {
        Ok(c) => assert!(ok && c == raw, "content"),
        Err(_) => assert!(!ok, "content"),
    }

    match validate::optional_text("topic", Some(raw), max) {
        Ok(None) => assert!(t.is_empty()),
        Ok(Some(s)) => {
            assert!(s == t && !t.is_empty() && chars(t) <= max);
            assert_eq!(validate::optional_text("topic", Some(&s), max).ok(), Some(Some(s.clone())));
        }
        Err(_) => assert!(chars(t) > max),
    }
    assert_eq!(validate::optional_text("topic", None, max).ok(), Some(None));

    match validate::nonce(Some(raw)) {
        Ok(n) => assert!(n.as_deref() == Some(raw) && (1..=64).contains(&raw.len())),
        Err(_) => assert!(raw.is_empty() || raw.len() > 64),
    }

    let bad_char = raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/');
    let ok = !raw.is_empty() && raw.len() <= 64 && !bad_char && !raw.chars().all(|c| c.is_ascii_alphanumeric());
    match validate::emoji(raw) {
        Ok(e) => assert!(ok && e == raw, "emoji {raw:?}"),
        Err(_) => assert!(!ok, "emoji {raw:?}"),
    }
});
