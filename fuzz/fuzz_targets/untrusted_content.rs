//! What strangers' bytes become in chat: a linked page's HTML (`chat::previews::html::parse`), the
//! links found in a message (`chat::previews::links`), an uploaded file's name
//! (`chat::attachments::staging::safe_filename`), a `Range` header (`chat::attachments::serve::
//! parse_range`), an `X-Audit-Log-Reason` header (`chat::service::audit::parse_reason`) and hex
//! signatures (`chat::credentials::unhex32`).
//!
//! Asserts: no panic; preview titles at most 256 characters and descriptions 1,024, without control
//! characters; at most 3 distinct links, each http(s), without whitespace, at most 2,048 bytes; a
//! filename is never empty, at most 255 bytes, without a path separator or control character, and
//! never starts with a dot; a range lies inside the file; a reason is at most 512 characters
//! without control characters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let meta = chat::previews::html::parse(&text);
    for (field, max) in [(&meta.title, 256), (&meta.site_name, 256), (&meta.description, 1024)] {
        if let Some(v) = field {
            assert!(v.chars().count() <= max, "{v:?}");
            assert!(!v.chars().any(char::is_control), "{v:?}");
        }
    }

    let links = chat::previews::links(&text);
    assert!(links.len() <= chat::previews::MAX_LINKS);
    for (i, l) in links.iter().enumerate() {
        let lower = l.to_ascii_lowercase();
        assert!(lower.starts_with("http://") || lower.starts_with("https://"), "{l:?}");
        assert!(l.len() <= 2048 && !l.chars().any(char::is_whitespace), "{l:?}");
        assert!(!links[..i].contains(l), "duplicate {l:?}");
    }

    let name = chat::attachments::staging::safe_filename(&text);
    assert!(!name.is_empty() && name.len() <= 255, "{name:?}");
    assert!(!name.contains(['/', '\\']) && !name.chars().any(char::is_control), "{name:?}");
    assert!(!name.starts_with('.'), "{name:?}");

    let size = data.first().map_or(0, |b| u64::from(*b) * 37);
    if let Ok(Some(r)) = chat::attachments::serve::parse_range(Some(&text), size) {
        assert!(r.start < r.end && r.end <= size, "{r:?} of {size} for {text:?}");
    }

    // Hex from outside (2FA tickets, URL signatures): 64 hex digits or nothing, read back exactly.
    if let Some(bytes) = chat::credentials::unhex32(&text) {
        assert_eq!(chat::credentials::hex(&bytes), text.to_ascii_lowercase());
    }

    if let Some(reason) = chat::service::audit::parse_reason(data) {
        assert!(reason.chars().count() <= 512 && !reason.chars().any(char::is_control), "{reason:?}");
    }
});
