//! Attachments: the files sent with messages — where their bytes live, how an upload is taken in,
//! checked and made safe, and how the files are served.
//!
//! - `storage.rs`: one storage API (the `object_store` crate) over two backends, the data dir
//!   (default) and S3-compatible object storage; keys come from ids, never from filenames; URLs are
//!   signed and expire.
//! - `staging.rs`: an uploaded file streamed to a temporary file under the size limits, its type
//!   detected from its bytes, its name made safe.
//! - `image.rs`: images decoded under limits (no decompression bombs), metadata stripped by
//!   re-encoding, dimensions and a thumbnail made.
//! - `serve.rs`: the response for a file: its detected type, `nosniff`, a sandboxing CSP,
//!   `Content-Disposition`, single byte ranges.
//!
//! It knows nothing of messages or permissions: `service/attachments.rs` decides who may upload and
//! read, and keeps the records with the messages.

pub mod image;
pub mod serve;
pub mod staging;
pub mod storage;

pub use storage::{Storage, StorageError, Variant};

/// What is percent-encoded in a filename put in a URL or a header: everything but RFC 3986's
/// unreserved characters.
pub const NAME_ENCODE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Upload limits (`--upload-max-file-mb`, `--upload-max-message-mb`, `--upload-max-files`,
/// `--upload-quota-mb`).
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub max_file_bytes: u64,
    pub max_message_bytes: u64,
    pub max_files: u32,
    /// Bytes a user may have stored in all; 0: no quota.
    pub quota_bytes: u64,
    /// How long a file URL in a message works.
    pub url_ttl: std::time::Duration,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_file_bytes: 25 << 20,
            max_message_bytes: 100 << 20,
            max_files: 10,
            quota_bytes: 1 << 30,
            url_ttl: std::time::Duration::from_secs(24 * 3600),
        }
    }
}
