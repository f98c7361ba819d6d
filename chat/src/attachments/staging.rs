//! One uploaded file, streamed to a temporary file under the limits, with its type detected from
//! its first bytes and its name made safe. Nothing reaches the attachment storage from here.

use std::path::Path;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

/// Bytes kept from the start of a file to detect its type.
const HEAD_BYTES: usize = 8192;
/// The longest filename kept, in bytes (most file systems' limit).
const MAX_NAME_BYTES: usize = 255;

/// Why an upload was refused while it was read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StagingError {
    #[error("a file is larger than {0} bytes")]
    FileTooLarge(u64),
    #[error("the files of this message are larger than {0} bytes in all")]
    MessageTooLarge(u64),
    #[error("the upload was cut short or is malformed: {0}")]
    Truncated(String),
    #[error("an empty file")]
    Empty,
    #[error("temporary storage: {0}")]
    Io(String),
}

/// A file received whole, waiting in a temporary file (removed when dropped).
#[derive(Debug)]
pub struct Staged {
    pub file: tempfile::TempPath,
    /// Safe for display and `Content-Disposition`.
    pub filename: String,
    pub size: u64,
    /// The type detected from the bytes (`application/octet-stream` when unknown).
    pub content_type: String,
    /// The client said it was an image (by its Content-Type or its name).
    pub claims_image: bool,
}

/// Streams one file into `dir`. `budget` is what the message may still take.
pub async fn stage<S, E>(
    mut body: S,
    filename: Option<&str>,
    declared_type: Option<&str>,
    dir: &Path,
    max_file_bytes: u64,
    budget: u64,
) -> Result<Staged, StagingError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let temp = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(dir)
        .map_err(|e| StagingError::Io(e.to_string()))?
        .into_temp_path();
    let mut out = tokio::fs::File::create(&temp).await.map_err(|e| StagingError::Io(e.to_string()))?;
    let mut size = 0u64;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StagingError::Truncated(e.to_string()))?;
        size += chunk.len() as u64;
        if size > max_file_bytes {
            return Err(StagingError::FileTooLarge(max_file_bytes));
        }
        if size > budget {
            return Err(StagingError::MessageTooLarge(budget));
        }
        if head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        out.write_all(&chunk).await.map_err(|e| StagingError::Io(e.to_string()))?;
    }
    if size == 0 {
        return Err(StagingError::Empty);
    }
    out.flush().await.map_err(|e| StagingError::Io(e.to_string()))?;
    out.sync_all().await.map_err(|e| StagingError::Io(e.to_string()))?;
    let filename = safe_filename(filename.unwrap_or(""));
    let claims_image =
        declared_type.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("image/")) || has_image_name(&filename);
    Ok(Staged { file: temp, filename, size, content_type: detect_type(&head), claims_image })
}

/// The type the bytes say they are; never the name's or the client's.
pub fn detect_type(head: &[u8]) -> String {
    match infer::get(head) {
        Some(kind) => kind.mime_type().to_owned(),
        None if looks_like_text(head) => "text/plain; charset=utf-8".to_owned(),
        None => "application/octet-stream".to_owned(),
    }
}

/// UTF-8 without NULs in what was read (a cut multi-byte character at the end is fine).
fn looks_like_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => head.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => return false,
    };
    valid > 0 && !head[..valid].contains(&0)
}

/// Characters that change how a name is shown without being seen: bidirectional overrides
/// (`photo\u{202E}gnp.exe` shows as `photoexe.png`), zero-width characters, byte order marks.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Characters file systems or headers choke on.
fn is_forbidden(c: char) -> bool {
    matches!(c, '"' | '<' | '>' | ':' | '|' | '?' | '*')
}

fn has_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".avif", ".heic", ".svg"].iter().any(|ext| lower.ends_with(ext))
}

/// The last path component, without control characters or separators, trimmed of dots and spaces
/// at the start (no hidden or relative names), at most 255 bytes at a character boundary; "file"
/// when nothing is left.
pub fn safe_filename(raw: &str) -> String {
    // Browsers escape these three in multipart filenames (HTML's form-data encoding).
    let raw = raw.replace("%22", "\"").replace("%0D", "\r").replace("%0A", "\n");
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String =
        base.chars().filter(|c| !c.is_control() && !is_invisible_format(*c) && !is_forbidden(*c)).collect();
    let trimmed = cleaned.trim().trim_start_matches(['.', ' ']);
    let mut name = String::new();
    for c in trimmed.chars() {
        if name.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        name.push(c);
    }
    if name.is_empty() { "file".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: Vec<&'static [u8]>) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))))
    }

    #[test]
    fn names_lose_their_paths_and_anything_a_header_or_file_system_would_choke_on() {
        assert_eq!(safe_filename("../../etc/passwd"), "passwd");
        assert_eq!(safe_filename("C:\\Users\\me\\cat.png"), "cat.png");
        assert_eq!(safe_filename("..."), "file");
        assert_eq!(safe_filename(".hidden"), "hidden");
        assert_eq!(safe_filename("a\"b\r\n<c>.txt"), "abc.txt");
        assert_eq!(safe_filename("say %22hi%22.txt"), "say hi.txt", "a browser's escaped quotes");
        assert_eq!(safe_filename("photo\u{202E}gnp.exe"), "photognp.exe", "no direction override");
        assert_eq!(safe_filename(""), "file");
        let long = "é".repeat(200);
        let cut = safe_filename(&long);
        assert!(cut.len() <= 255 && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_type_comes_from_the_bytes() {
        assert_eq!(detect_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(detect_type(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(detect_type("hello, wörld".as_bytes()), "text/plain; charset=utf-8");
        assert_eq!(detect_type(b"\0\x01\x02binary"), "application/octet-stream");
    }

    #[tokio::test]
    async fn a_file_is_streamed_to_disk_with_its_size_type_and_claim() {
        let dir = tempfile::tempdir().unwrap();
        let s =
            stage(body(vec![b"GIF89a", b"rest of it"]), Some("x/anim.gif"), None, dir.path(), 100, 100).await.unwrap();
        assert_eq!((s.size, s.content_type.as_str(), s.filename.as_str()), (16, "image/gif", "anim.gif"));
        assert!(s.claims_image);
        assert_eq!(std::fs::read(&s.file).unwrap(), b"GIF89arest of it");
    }

    #[tokio::test]
    async fn limits_stop_the_stream_and_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let too_big = stage(body(vec![b"0123456789", b"0123456789"]), Some("a"), None, dir.path(), 15, 100).await;
        assert_eq!(too_big.unwrap_err(), StagingError::FileTooLarge(15));
        let over_budget = stage(body(vec![b"0123456789"]), Some("a"), None, dir.path(), 100, 5).await;
        assert_eq!(over_budget.unwrap_err(), StagingError::MessageTooLarge(5));
        let cut = futures::stream::iter(vec![Ok(Bytes::from_static(b"abc")), Err("connection reset".to_string())]);
        assert!(matches!(stage(cut, Some("a"), None, dir.path(), 100, 100).await, Err(StagingError::Truncated(_))));
        assert_eq!(stage(body(vec![]), Some("a"), None, dir.path(), 100, 100).await.unwrap_err(), StagingError::Empty);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary file is left");
    }
}
