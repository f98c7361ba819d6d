//! Attachments as the community plane sees them: who may upload where (SEND_MESSAGES and
//! ATTACH_FILES, within the limits and the uploader's quota), turning staged files into stored
//! attachments of a new message, signed URLs in message views, serving a file to the holder of a
//! valid URL while its message exists, and removing the files of a deleted message.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::accounts::Caller;
use crate::Chat;
use crate::attachments::image::{self as images, ImageError};
use crate::attachments::serve::{self, Served};
use crate::attachments::staging::{Staged, StagingError};
use crate::attachments::{Storage, StorageError, UploadLimits, Variant};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::model::{Attachment, Message};
use crate::permissions::Permissions;

/// Where uploads go: the storage, and a directory for files being received and processed.
pub struct Uploads {
    pub storage: Arc<Storage>,
    pub temp_dir: PathBuf,
    /// Images decoded at once (each may take hundreds of MB while it is).
    pub decoding: tokio::sync::Semaphore,
}

impl Uploads {
    pub fn new(storage: Arc<Storage>, temp_dir: PathBuf) -> Uploads {
        Uploads { storage, temp_dir, decoding: tokio::sync::Semaphore::new(2) }
    }
}

/// What a caller may send in one message, decided before any byte of it is read.
#[derive(Debug, Clone)]
pub struct UploadPermit {
    pub max_file_bytes: u64,
    /// The message's limit, or what is left of the quota if less.
    pub budget: u64,
    pub max_files: u32,
    pub temp_dir: PathBuf,
    /// The channel's slow mode applies to the caller (checked again, without a lookup, before the
    /// files stream in: `Chat::slow_mode_before_upload`).
    pub slow_mode: bool,
}

/// An attachment as the API shows it, with signed, expiring URLs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttachmentView {
    pub id: Id,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub url: String,
    pub thumbnail_url: Option<String>,
}

/// The query of a file URL.
#[derive(Debug, Deserialize)]
pub struct FileQuery {
    pub ex: Option<i64>,
    pub sig: Option<String>,
    #[serde(default)]
    pub v: Option<String>,
}

impl From<StagingError> for Error {
    fn from(e: StagingError) -> Self {
        match e {
            StagingError::FileTooLarge(_) => Error::TooLarge("file_too_large", e.to_string()),
            StagingError::MessageTooLarge(_) => Error::TooLarge("upload_too_large", e.to_string()),
            StagingError::Truncated(_) | StagingError::Empty => Error::bad_request("invalid_upload", e.to_string()),
            StagingError::Io(detail) => Error::Internal(detail),
        }
    }
}

impl From<ImageError> for Error {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Invalid(_) => Error::bad_request("invalid_image", e.to_string()),
            ImageError::TooLarge(..) => Error::bad_request("image_too_large", e.to_string()),
            ImageError::Io(detail) => Error::Internal(detail),
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => Error::NotFound("attachment"),
            other => Error::Unavailable(other.to_string()),
        }
    }
}

/// A file URL's expiry: the next full hour after the lifetime, so that views of one message made
/// within the hour share URLs (and browser caches).
fn expiry(now: i64, ttl: std::time::Duration) -> i64 {
    let at = now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    (at / 3600 + 1) * 3600
}

fn file_path(m: &Message, a: &Attachment) -> String {
    format!("{}/{}/{}", m.channel_id, m.id, a.id)
}

impl Chat {
    /// Makes uploads possible (set once, at start-up).
    pub fn attach_uploads(&self, uploads: Uploads) {
        let _ = self.uploads.set(uploads);
    }

    fn uploads(&self) -> Result<&Uploads> {
        self.uploads.get().ok_or_else(|| Error::Unavailable("uploads are not configured".into()))
    }

    /// The limits a client should know (`GET /instance`).
    pub fn upload_limits(&self) -> UploadLimits {
        self.config.uploads
    }

    /// May the caller attach files in this channel, and how much? Checked before the body is read.
    pub async fn upload_permit(&self, caller: &Caller, channel_id: Id) -> Result<UploadPermit> {
        let access = self.text_channel(caller, channel_id).await?;
        access.require(Permissions::SEND_MESSAGES | Permissions::ATTACH_FILES)?;
        let uploads = self.uploads()?;
        let limits = self.config.uploads;
        let mut budget = limits.max_message_bytes;
        if limits.quota_bytes > 0 {
            let used = self.store.upload_usage(caller.user.id).await?;
            if used >= limits.quota_bytes {
                return Err(Error::Refused("over_quota", "your upload quota is used up; delete some files first"));
            }
            budget = budget.min(limits.quota_bytes - used);
        }
        Ok(UploadPermit {
            max_file_bytes: limits.max_file_bytes,
            budget,
            max_files: limits.max_files,
            temp_dir: uploads.temp_dir.clone(),
            slow_mode: super::messages::slow_mode_period(&access).is_some(),
        })
    }

    /// Checks each staged file and stores it for `channel_id`; returns the records. On any refusal
    /// nothing stays in the storage.
    pub(crate) async fn store_files(&self, channel_id: Id, files: Vec<Staged>) -> Result<Vec<Attachment>> {
        let uploads = self.uploads()?;
        let mut stored: Vec<Attachment> = Vec::new();
        for file in files {
            match self.store_file(uploads, channel_id, file).await {
                Ok(a) => stored.push(a),
                Err(e) => {
                    self.remove_files(channel_id, &stored).await;
                    return Err(e);
                }
            }
        }
        Ok(stored)
    }

    async fn store_file(&self, uploads: &Uploads, channel_id: Id, file: Staged) -> Result<Attachment> {
        let id = self.ids.next();
        let original = Storage::key(channel_id, id, Variant::Original);
        let Some(format) = images::format_of(&file.content_type) else {
            if file.claims_image {
                return Err(Error::bad_request(
                    "invalid_image",
                    format!("{:?} is not an image in a format we take (PNG, JPEG, GIF, WebP)", file.filename),
                ));
            }
            uploads.storage.put_file(&original, &file.file).await?;
            return Ok(Attachment {
                id,
                filename: file.filename,
                content_type: file.content_type,
                size: file.size,
                width: None,
                height: None,
                thumbnail_type: None,
            });
        };
        let processed = {
            let _slot = uploads.decoding.acquire().await.map_err(|_| Error::Unavailable("shutting down".into()))?;
            let (path, dir) = (file.file.to_path_buf(), uploads.temp_dir.clone());
            tokio::task::spawn_blocking(move || images::process(&path, format, &dir))
                .await
                .map_err(|e| Error::Internal(format!("image task: {e}")))??
        };
        let served = processed.cleaned.as_deref().unwrap_or(&file.file);
        let size = tokio::fs::metadata(served).await.map_err(|e| Error::Internal(e.to_string()))?.len();
        uploads.storage.put_file(&original, served).await?;
        let mut thumbnail_type = None;
        if let Some((thumb, kind)) = &processed.thumbnail {
            if let Err(e) = uploads.storage.put_file(&Storage::key(channel_id, id, Variant::Thumbnail), thumb).await {
                let _ = uploads.storage.delete(channel_id, id).await;
                return Err(e.into());
            }
            thumbnail_type = Some((*kind).to_owned());
        }
        Ok(Attachment {
            id,
            filename: file.filename,
            content_type: processed.content_type.to_owned(),
            size,
            width: Some(processed.width),
            height: Some(processed.height),
            thumbnail_type,
        })
    }

    /// Removes stored files (a refused upload, a deleted message). Failures are logged: a file left
    /// behind is unreachable (its URL checks the message) and costs only space.
    pub(crate) async fn remove_files(&self, channel_id: Id, attachments: &[Attachment]) {
        let Ok(uploads) = self.uploads() else { return };
        for a in attachments {
            if let Err(e) = uploads.storage.delete(channel_id, a.id).await {
                tracing::warn!(error = %e, attachment = %a.id, "attachment file not removed");
            }
        }
    }

    /// The API shape of a message's attachments, with URLs valid for the configured lifetime.
    pub(crate) fn attachment_views(&self, m: &Message) -> Vec<AttachmentView> {
        let Some(uploads) = self.uploads.get() else { return Vec::new() };
        let expires = expiry(chrono::Utc::now().timestamp(), self.config.uploads.url_ttl);
        m.attachments
            .iter()
            .map(|a| {
                let path = file_path(m, a);
                let name = percent_encoding::utf8_percent_encode(&a.filename, crate::attachments::NAME_ENCODE);
                let url = |variant: Variant| {
                    let sig = uploads.storage.sign(&path, variant, expires);
                    let v = if variant == Variant::Thumbnail { "&v=thumbnail" } else { "" };
                    format!("/api/v1/attachments/{path}/{name}?ex={expires}&sig={sig}{v}")
                };
                AttachmentView {
                    id: a.id,
                    filename: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    size: a.size,
                    width: a.width,
                    height: a.height,
                    url: url(Variant::Original),
                    thumbnail_url: a.thumbnail_type.as_ref().map(|_| url(Variant::Thumbnail)),
                }
            })
            .collect()
    }

    /// A file, to whoever holds a valid URL for it, while its message exists.
    pub async fn serve_attachment(
        &self,
        (channel_id, message_id, attachment_id): (Id, Id, Id),
        query: FileQuery,
        range: Option<&str>,
    ) -> Result<axum::response::Response> {
        let uploads = self.uploads()?;
        let variant = match query.v.as_deref() {
            None | Some("original") => Variant::Original,
            Some("thumbnail") => Variant::Thumbnail,
            Some(_) => return Err(Error::NotFound("attachment")),
        };
        let path = format!("{channel_id}/{message_id}/{attachment_id}");
        let (Some(ex), Some(sig)) = (query.ex, query.sig.as_deref()) else {
            return Err(Error::NotFound("attachment"));
        };
        // Every refusal looks the same: a URL reveals nothing unless it is valid.
        if !uploads.storage.verify(&path, variant, ex, sig, chrono::Utc::now().timestamp()) {
            return Err(Error::NotFound("attachment"));
        }
        let message = self.store.message(channel_id, message_id).await?.ok_or(Error::NotFound("attachment"))?;
        let a = message.attachments.iter().find(|a| a.id == attachment_id).ok_or(Error::NotFound("attachment"))?;
        let (content_type, inline) = match variant {
            Variant::Original => (a.content_type.as_str(), images::format_of(&a.content_type).is_some()),
            Variant::Thumbnail => (a.thumbnail_type.as_deref().ok_or(Error::NotFound("attachment"))?, true),
        };
        let served = Served { channel_id, attachment_id, variant, content_type, filename: &a.filename, inline };
        Ok(serve::respond(&uploads.storage, served, range).await?)
    }

    /// After channels were deleted: their files go too (they were unreachable already: a URL checks
    /// its message). The store gave the uploaders their bytes back with the delete.
    pub(crate) async fn forget_channel_files(&self, channel_ids: &[Id]) {
        let Ok(uploads) = self.uploads() else { return };
        for channel_id in channel_ids {
            if let Err(e) = uploads.storage.delete_channel(*channel_id).await {
                tracing::warn!(error = %e, channel = %channel_id, "attachment files of a deleted channel not removed");
            }
        }
    }

    /// After a message was deleted: its files go, and the author's quota gets them back.
    pub(crate) async fn forget_files(&self, message: &Message) {
        if message.attachments.is_empty() {
            return;
        }
        self.remove_files(message.channel_id, &message.attachments).await;
        let bytes: u64 = message.attachments.iter().map(|a| a.size).sum();
        if let Err(e) = self.store.add_upload_usage(message.author_id, -i64::try_from(bytes).unwrap_or(0)).await {
            tracing::warn!(error = %e, "upload quota not given back");
        }
    }

    /// Takes `bytes` from the uploader's quota, or refuses with `over_quota` (and takes nothing).
    pub(crate) async fn reserve_upload(&self, user_id: Id, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let delta = i64::try_from(bytes).unwrap_or(i64::MAX);
        let total = self.store.add_upload_usage(user_id, delta).await?;
        let quota = self.config.uploads.quota_bytes;
        if quota > 0 && total > quota {
            self.store.add_upload_usage(user_id, -delta).await?;
            return Err(Error::Refused("over_quota", "these files would go over your upload quota"));
        }
        Ok(())
    }

    /// Settles a reservation: what was stored counts, the rest goes back.
    pub(crate) async fn settle_upload(&self, user_id: Id, reserved: u64, stored: &[Attachment]) {
        let kept: u64 = stored.iter().map(|a| a.size).sum();
        let delta = i64::try_from(kept).unwrap_or(i64::MAX) - i64::try_from(reserved).unwrap_or(i64::MAX);
        if delta != 0
            && let Err(e) = self.store.add_upload_usage(user_id, delta).await
        {
            tracing::warn!(error = %e, "upload quota not settled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_expire_on_the_hour_after_their_lifetime() {
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(expiry(0, day), 90_000);
        assert_eq!(expiry(3599, day), 90_000, "views within the hour share the expiry");
        assert_eq!(expiry(3600, day), 93_600);
    }
}
