//! `POST /channels/{id}/messages` as `multipart/form-data`: a `payload_json` part (the message's
//! JSON) and `files[n]` parts, each streamed to a temporary file under the limits the caller's
//! permit gives — checked before any file byte is read. JSON sends take the same route.

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

use crate::Chat;
use crate::attachments::staging::{self, Staged};
use crate::error::{Error, Result};
use crate::service::accounts::Caller;
use crate::service::messages::NewMessage;
use crate::{Id, view::MessageView};

/// Bytes a `payload_json` part may have (the JSON body limit).
const MAX_PAYLOAD_JSON: usize = 64 * 1024;
/// Room for part headers and boundaries on top of the files' limit.
const MULTIPART_OVERHEAD: u64 = 1 << 20;

pub fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

fn invalid(message: impl Into<String>) -> Error {
    Error::bad_request("invalid_upload", message)
}

/// Reads the parts, then sends the message with its files.
pub async fn send_with_files(
    chat: &Arc<Chat>,
    caller: &Caller,
    channel_id: Id,
    req: Request,
) -> Result<(MessageView, bool)> {
    let permit = chat.upload_permit(caller, channel_id).await?;
    // The whole body is bounded too: many small parts cannot add up past the files' budget.
    let limit = usize::try_from(permit.budget.saturating_add(MULTIPART_OVERHEAD)).unwrap_or(usize::MAX);
    let req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, limit)));
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| invalid(e.body_text()))?;
    let mut payload: Option<NewMessage> = None;
    let mut files: Vec<Staged> = Vec::new();
    let mut used = 0u64;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(Error::TooLarge("upload_too_large", format!("at most {} bytes of files", permit.budget)));
            }
            Err(e) => return Err(invalid(e.body_text())),
        };
        let name = field.name().unwrap_or("").to_owned();
        if name == "payload_json" {
            if payload.is_some() {
                return Err(invalid("payload_json appears twice"));
            }
            let body = read_payload(field).await?;
            // Sent before the files (as the web client does), it lets a member in slow mode be
            // refused before any file byte is read.
            if files.is_empty() && permit.slow_mode {
                chat.slow_mode_before_upload(caller, channel_id, &body).await?;
            }
            payload = Some(body);
        } else if name == "file" || name.starts_with("files") {
            if files.len() >= permit.max_files as usize {
                return Err(Error::bad_request(
                    "too_many_files",
                    format!("at most {} files per message", permit.max_files),
                ));
            }
            let filename = field.file_name().map(str::to_owned);
            let declared = field.content_type().map(str::to_owned);
            let staged = staging::stage(
                field,
                filename.as_deref(),
                declared.as_deref(),
                &permit.temp_dir,
                permit.max_file_bytes,
                permit.budget - used,
            )
            .await
            .map_err(|e| match e {
                // The caller's quota, not the message limit, may be what ran out.
                staging::StagingError::MessageTooLarge(_) if permit.budget < chat.upload_limits().max_message_bytes => {
                    Error::Refused("over_quota", "these files would go over your upload quota")
                }
                staging::StagingError::MessageTooLarge(_) => Error::TooLarge(
                    "upload_too_large",
                    format!(
                        "the files of this message are larger than {} bytes in all",
                        chat.upload_limits().max_message_bytes
                    ),
                ),
                other => other.into(),
            })?;
            used += staged.size;
            files.push(staged);
        } else {
            return Err(invalid(format!("unknown part {name:?}: send payload_json and files[n]")));
        }
    }
    let body = payload.unwrap_or(NewMessage { content: String::new(), nonce: None, reply_to: None });
    if files.is_empty() && body.content.trim().is_empty() {
        return Err(Error::field("content", "must not be empty"));
    }
    // Once the body is in, the send runs to its end even if the client hangs up (its connection
    // task is then dropped): stopped halfway, it would leave stored files without their message
    // and the quota held for them.
    let (chat, caller) = (Arc::clone(chat), caller.clone());
    tokio::spawn(async move { chat.send_message_with_files(&caller, channel_id, body, files).await })
        .await
        .map_err(|e| Error::Internal(format!("send task: {e}")))?
}

async fn read_payload(mut field: axum::extract::multipart::Field<'_>) -> Result<NewMessage> {
    let mut raw = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| invalid(e.body_text()))? {
        if raw.len() + chunk.len() > MAX_PAYLOAD_JSON {
            return Err(Error::PayloadTooLarge);
        }
        raw.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&raw).map_err(|e| Error::bad_request("invalid_body", format!("payload_json: {e}")))
}
