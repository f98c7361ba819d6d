//! Link previews on messages: a message (sent or edited) with http(s) links, by an author with
//! EMBED_LINKS, is queued; a background task fetches each link (SSRF-safe, `previews/fetch.rs`),
//! caches the embed per URL for an hour, stores the embeds on the message and announces it again
//! (MESSAGE_UPDATE). Preview images reach viewers only through `GET /link-previews/image`, a proxy
//! that fetches the image itself and answers only URLs the server signed, so a viewer's browser
//! never contacts the linked site and the proxy cannot be used for anything else.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::Chat;
use crate::error::{Error, Result};
use crate::events::{Audience, ChannelScope, Dispatch};
use crate::id::Id;
use crate::model::Message;
use crate::previews::fetch::{FetchError, Fetcher, Want};
use crate::previews::{Embed, html, links};

/// Link-preview settings (`--link-previews`, and the test-only allow-list).
#[derive(Debug, Clone)]
pub struct PreviewConfig {
    pub enabled: bool,
    /// Addresses the fetcher may reach although they are not public (tests' local site).
    pub allowed: Vec<std::net::SocketAddr>,
}

impl Default for PreviewConfig {
    fn default() -> Self {
        PreviewConfig { enabled: true, allowed: Vec::new() }
    }
}

/// How long a URL's preview (or its failure) is reused.
const CACHE_TTL: Duration = Duration::from_secs(3600);
const CACHE_ENTRIES: usize = 4096;

/// A message to preview.
#[derive(Debug)]
pub(crate) struct PreviewJob {
    channel_id: Id,
    message_id: Id,
}

#[derive(Default)]
pub(crate) struct PreviewCache {
    entries: parking_lot::Mutex<HashMap<String, (Instant, Option<Embed>)>>,
}

impl PreviewCache {
    fn get(&self, url: &str) -> Option<Option<Embed>> {
        let entries = self.entries.lock();
        entries.get(url).filter(|(at, _)| at.elapsed() < CACHE_TTL).map(|(_, e)| e.clone())
    }

    fn put(&self, url: &str, embed: Option<Embed>) {
        let mut entries = self.entries.lock();
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(url.to_owned(), (Instant::now(), embed));
    }
}

/// An embed as the API shows it: the image through the proxy.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EmbedView {
    pub url: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub site_name: Option<String>,
    pub image_url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ProxyQuery {
    pub url: String,
    pub sig: String,
}

/// Starts the task that fetches previews. Holds only a weak reference: it ends with the Chat.
pub(crate) fn spawn_preview_loop(chat: &Arc<Chat>, mut jobs: mpsc::Receiver<PreviewJob>) {
    let weak: Weak<Chat> = Arc::downgrade(chat);
    tokio::spawn(async move {
        // A few at a time: previews are best effort, and a slow site must not hold the others.
        let slots = Arc::new(tokio::sync::Semaphore::new(4));
        while let Some(job) = jobs.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let Some(chat) = weak.upgrade() else { return };
            tokio::spawn(async move {
                chat.preview(job).await;
                drop(slot);
            });
        }
    });
}

impl Chat {
    /// Queues a message for previews when it has links and previews are on.
    pub(crate) fn queue_preview(&self, message: &Message, may_embed: bool) {
        if !self.config.previews.enabled
            || !(may_embed && (!links(&message.content).is_empty() || !message.embeds.is_empty()))
        {
            return;
        }
        let job = PreviewJob { channel_id: message.channel_id, message_id: message.id };
        if self.preview_jobs.try_send(job).is_err() {
            tracing::debug!("link previews: the queue is full; this message gets none");
        }
    }

    async fn preview(&self, job: PreviewJob) {
        let Ok(Some(message)) = self.store.message(job.channel_id, job.message_id).await else { return };
        let mut embeds = Vec::new();
        for url in links(&message.content) {
            let embed = match self.preview_cache.get(&url) {
                Some(cached) => cached,
                None => {
                    let fetched = self.fetch_embed(&url).await;
                    self.preview_cache.put(&url, fetched.clone());
                    fetched
                }
            };
            embeds.extend(embed);
        }
        if embeds == message.embeds {
            return;
        }
        match self.store.set_embeds(message.channel_id, message.id, &message.content, &embeds).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "link previews: not stored");
                return;
            }
        }
        let Ok(Some(updated)) = self.store.message(message.channel_id, message.id).await else { return };
        let Ok(audience) = self.message_audience(&updated).await else { return };
        let Ok(mut views) = self.message_views(std::slice::from_ref(&updated), updated.author_id).await else {
            return;
        };
        if let Some(view) = views.pop() {
            self.publish(Dispatch::new("MESSAGE_UPDATE", &view, audience));
        }
    }

    /// Who sees a message's channel.
    async fn message_audience(&self, m: &Message) -> Result<Audience> {
        let channel = self.store.channel(m.channel_id).await?.ok_or(Error::NotFound("channel"))?;
        let Some(guild_id) = channel.guild_id else {
            return Ok(Audience::Users(channel.recipients.clone()));
        };
        let guild = self.store.guild(guild_id).await?.ok_or(Error::NotFound("guild"))?;
        let roles = self.store.guild_roles(guild_id).await?;
        Ok(Audience::Channel(Arc::new(ChannelScope { guild_id, owner_id: guild.owner_id, roles, channel })))
    }

    async fn fetch_embed(&self, url: &str) -> Option<Embed> {
        let fetcher = self.fetcher();
        let page = match fetcher.fetch(url, Want::Page).await {
            Ok(p) => p,
            Err(FetchError::WrongType) => return None,
            Err(e) => {
                tracing::debug!(url, error = %e, "link preview not fetched");
                return None;
            }
        };
        // Off the async workers: the page is a stranger's half megabyte.
        let body = page.body;
        let meta = tokio::task::spawn_blocking(move || html::parse(&String::from_utf8_lossy(&body))).await.ok()?;
        let image = meta
            .image
            .and_then(|i| page.url.join(&i).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(|u| u.to_string());
        if meta.title.is_none() && meta.description.is_none() {
            return None;
        }
        Some(Embed {
            url: url.to_owned(),
            title: meta.title,
            description: meta.description,
            site_name: meta.site_name,
            image,
        })
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher { policy: crate::previews::address::Policy { allowed: self.config.previews.allowed.clone() } }
    }

    fn proxy_sig(&self, url: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.config.server_key.bytes()).expect("any key length");
        mac.update(format!("preview-image\n{url}").as_bytes());
        crate::credentials::hex(&mac.finalize().into_bytes())
    }

    pub(crate) fn embed_views(&self, m: &Message) -> Vec<EmbedView> {
        m.embeds
            .iter()
            .map(|e| EmbedView {
                url: e.url.clone(),
                title: e.title.clone(),
                description: e.description.clone(),
                site_name: e.site_name.clone(),
                image_url: e.image.as_ref().map(|i| {
                    let enc = percent_encoding::utf8_percent_encode(i, percent_encoding::NON_ALPHANUMERIC);
                    format!("/api/v1/link-previews/image?url={enc}&sig={}", self.proxy_sig(i))
                }),
            })
            .collect()
    }

    /// A preview image, fetched by the server for a URL it signed.
    pub async fn preview_image(&self, q: ProxyQuery) -> Result<axum::response::Response> {
        use axum::http::{HeaderValue, header};
        use axum::response::IntoResponse;
        let expected = self.proxy_sig(&q.url);
        let sig_ok = expected.len() == q.sig.len()
            && expected.bytes().zip(q.sig.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !sig_ok || !self.config.previews.enabled {
            return Err(Error::NotFound("image"));
        }
        // A few at a time: each holds up to 5 MiB, and the proxy must not become a traffic reflector.
        let Ok(_slot) = self.preview_proxy_slots.try_acquire() else {
            return Err(Error::RateLimited(1));
        };
        let fetcher = self.fetcher();
        let image = fetcher.fetch(&q.url, Want::Image).await.map_err(|_| Error::NotFound("image"))?;
        // The bytes decide, as for uploads: only image types a browser merely shows.
        let kind = infer::get(&image.body).map(|k| k.mime_type()).unwrap_or("");
        if !matches!(kind, "image/png" | "image/jpeg" | "image/gif" | "image/webp") {
            return Err(Error::NotFound("image"));
        }
        let mut response = image.body.into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::attachments::serve::FILE_CSP));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
        Ok(response)
    }
}
