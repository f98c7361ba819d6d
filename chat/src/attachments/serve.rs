//! The HTTP response for a stored file: its detected type, headers that keep a browser from running
//! it (`nosniff`, a sandboxing CSP, `attachment` for anything but images), and single byte ranges
//! (`Range: bytes=a-b`, `a-`, `-n`; several ranges, or a malformed header, get the whole file).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use super::storage::{Storage, StorageError, Variant};
use crate::id::Id;

/// A served file is never a page: no script, no plugin, no form, in a unique origin.
pub const FILE_CSP: &str = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox";

/// What the response needs to know of the file.
pub struct Served<'a> {
    pub channel_id: Id,
    pub attachment_id: Id,
    pub variant: Variant,
    pub content_type: &'a str,
    pub filename: &'a str,
    pub inline: bool,
}

/// The type a file is served as: its own when a browser only displays or plays it, else
/// `application/octet-stream` — an uploaded page, script, SVG or XML is never given a type a
/// browser would run, whatever the other headers.
pub fn served_type(content_type: &str) -> &str {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let displayable =
        matches!(essence, "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "application/pdf" | "text/plain")
            || essence.starts_with("audio/")
            || essence.starts_with("video/");
    if displayable { content_type } else { "application/octet-stream" }
}

/// A range past the end of the file (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a `Range` header against a file of `size` bytes: the one range asked for, `Unsatisfiable`
/// (416), or `Ok(None)` to send the whole file.
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<std::ops::Range<u64>>, Unsatisfiable> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if size == 0 {
        return Ok(None);
    }
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else { return Ok(None) };
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let Ok(n) = end.parse::<u64>() else { return Ok(None) };
        if n == 0 {
            return Err(Unsatisfiable);
        }
        size.saturating_sub(n)..size
    } else {
        let Ok(a) = start.parse::<u64>() else { return Ok(None) };
        let b = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            match end.parse::<u64>() {
                Ok(b) if b >= a => b.min(size.saturating_sub(1)),
                _ => return Ok(None),
            }
        };
        if a >= size {
            return Err(Unsatisfiable);
        }
        a..b + 1
    };
    Ok(Some(range))
}

/// `attachment` or `inline`, with the name in both the plain (ASCII) and RFC 5987 forms.
fn disposition(filename: &str, inline: bool) -> String {
    let ascii: String = filename.chars().map(|c| if c.is_ascii() && c != '\\' { c } else { '_' }).collect();
    let encoded = percent_encoding::utf8_percent_encode(filename, super::NAME_ENCODE);
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

pub async fn respond(
    storage: &Storage,
    file: Served<'_>,
    range_header: Option<&str>,
) -> Result<Response, StorageError> {
    let key = Storage::key(file.channel_id, file.attachment_id, file.variant);
    let size = storage.size(&key).await?;
    let range = match parse_range(range_header, size) {
        Ok(r) => r,
        Err(Unsatisfiable) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let got = storage.get(&key, range.clone()).await?;
    let stream = got.into_stream().map_err(std::io::Error::other);
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(h, header::CONTENT_TYPE, served_type(file.content_type));
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::CONTENT_SECURITY_POLICY, FILE_CSP);
    set(h, header::CONTENT_DISPOSITION, &disposition(file.filename, file.inline));
    set(h, header::ACCEPT_RANGES, "bytes");
    // The bytes behind a URL never change, but a deleted message's files should not linger in
    // browsers for long.
    set(h, header::CACHE_CONTROL, "private, max-age=3600");
    set(h, header::REFERRER_POLICY, "no-referrer");
    match range {
        Some(r) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = response.headers_mut();
            set(h, header::CONTENT_RANGE, &format!("bytes {}-{}/{size}", r.start, r.end - 1));
            set(h, header::CONTENT_LENGTH, &(r.end - r.start).to_string());
        }
        None => set(response.headers_mut(), header::CONTENT_LENGTH, &size.to_string()),
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110_for_one_range_and_fall_back_to_the_whole_file() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some(0..10)));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some(90..100)));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some(90..100)));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Ok(Some(50..100)), "clamped to the end");
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(Unsatisfiable), "past the end: 416");
        assert_eq!(parse_range(Some("bytes=-0"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None), "several ranges: the whole file");
        assert_eq!(parse_range(Some("bytes=9-3"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=x-y"), 100), Ok(None));
    }

    #[test]
    fn only_types_a_browser_merely_shows_keep_their_type() {
        assert_eq!(served_type("image/png"), "image/png");
        assert_eq!(served_type("text/plain; charset=utf-8"), "text/plain; charset=utf-8");
        assert_eq!(served_type("video/mp4"), "video/mp4");
        for active in ["text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/javascript"] {
            assert_eq!(served_type(active), "application/octet-stream", "{active}");
        }
    }

    #[test]
    fn the_disposition_keeps_a_plain_and_an_encoded_name() {
        assert_eq!(disposition("a b.txt", false), "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt");
        assert!(disposition("çà.png", true).starts_with("inline; filename=\"__.png\""));
    }
}
