//! Messages: history, send (idempotent by nonce), edit, delete, reactions, pins, typing, read
//! state and search.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::access::ChannelAccess;
use super::accounts::{Caller, now_ms};
use crate::Chat;
use crate::attachments::staging::Staged;
use crate::error::{Error, Result};
use crate::events::{Audience, Dispatch};
use crate::id::Id;
use crate::mentions;
use crate::model::{AuditAction, HistoryAnchor, Message, Timestamp};
use crate::permissions::Permissions;
use crate::service::audit::change;
use crate::store::Inserted;
use crate::validate;
use crate::view::{MessageView, ReactionView, deleted_user};

/// How long a typing indicator lasts without a renewal.
pub const TYPING_SECS: i64 = 10;

#[derive(Debug, Deserialize)]
pub struct NewMessage {
    /// May be absent when files come with the message.
    #[serde(default)]
    pub content: String,
    pub nonce: Option<String>,
    pub reply_to: Option<Id>,
}

#[derive(Debug, Serialize)]
struct MessageRef {
    id: Id,
    channel_id: Id,
    guild_id: Option<Id>,
}

#[derive(Debug, Serialize)]
struct ReactionEvent<'a> {
    user_id: Id,
    channel_id: Id,
    message_id: Id,
    guild_id: Option<Id>,
    emoji: &'a str,
}

#[derive(Debug, Serialize)]
struct Typing {
    channel_id: Id,
    guild_id: Option<Id>,
    user_id: Id,
    timestamp: Timestamp,
    expires_at: Timestamp,
}

#[derive(Debug, Serialize)]
struct PinsUpdate {
    channel_id: Id,
    guild_id: Option<Id>,
    message_id: Id,
    pinned: bool,
}

#[derive(Debug, Serialize)]
struct Ack {
    channel_id: Id,
    message_id: Id,
}

fn audience(access: &ChannelAccess) -> Audience {
    match &access.guild {
        Some(g) => Audience::Channel(g.scope(&access.channel).into()),
        None => Audience::Users(access.channel.recipients.clone()),
    }
}

/// The channel's slow mode for this member: none when off, or when they manage messages or the channel.
pub(crate) fn slow_mode_period(access: &ChannelAccess) -> Option<std::time::Duration> {
    let slow = access.channel.rate_limit_per_user;
    let exempt = access.perms.intersects(Permissions::MANAGE_MESSAGES | Permissions::MANAGE_CHANNELS);
    (slow > 0 && !exempt).then(|| std::time::Duration::from_secs(u64::from(slow)))
}

/// Mentions as the author may make them: `@everyone` needs MENTION_EVERYONE; only roles of the guild,
/// and unmentionable ones only with MENTION_EVERYONE.
fn allowed_mentions(access: &ChannelAccess, content: &str) -> crate::model::Mentions {
    let mut mentions = mentions::parse(content);
    let may_all = access.perms.contains(Permissions::MENTION_EVERYONE);
    mentions.everyone &= may_all;
    match &access.guild {
        Some(g) => mentions.roles.retain(|r| g.role(*r).is_some_and(|role| role.mentionable || may_all)),
        None => mentions.roles.clear(),
    }
    mentions
}

impl Chat {
    pub(crate) async fn text_channel(&self, caller: &Caller, channel_id: Id) -> Result<ChannelAccess> {
        let access = self.channel_access(caller.user.id, channel_id).await?;
        if !access.channel.kind.has_messages() {
            return Err(Error::bad_request("not_a_text_channel", "this channel has no messages"));
        }
        Ok(access)
    }

    /// Message views with authors and the viewer's reactions, in the given order.
    pub(crate) async fn message_views(&self, messages: &[Message], viewer: Id) -> Result<Vec<MessageView>> {
        let mut author_ids: Vec<Id> = messages.iter().map(|m| m.author_id).collect();
        author_ids.sort_unstable();
        author_ids.dedup();
        let msg_ids: Vec<Id> = messages.iter().map(|m| m.id).collect();
        let (users, reactions) =
            tokio::try_join!(self.store.users(&author_ids), self.store.reactions(&msg_ids, viewer))?;
        let users: HashMap<Id, _> = users.into_iter().map(|u| (u.id, u)).collect();
        let mut by_msg: HashMap<Id, Vec<ReactionView>> = HashMap::new();
        for r in reactions {
            by_msg.entry(r.message_id).or_default().push(ReactionView { emoji: r.emoji, count: r.count, me: r.me });
        }
        Ok(messages
            .iter()
            .map(|m| {
                let author = users.get(&m.author_id).cloned().unwrap_or_else(|| deleted_user(m.author_id));
                MessageView::new(
                    m,
                    author,
                    by_msg.remove(&m.id).unwrap_or_default(),
                    self.attachment_views(m),
                    self.embed_views(m),
                )
            })
            .collect())
    }

    pub async fn history(
        &self,
        caller: &Caller,
        channel_id: Id,
        anchor: HistoryAnchor,
        limit: Option<u32>,
    ) -> Result<Vec<MessageView>> {
        let access = self.text_channel(caller, channel_id).await?;
        access.require(Permissions::READ_MESSAGE_HISTORY)?;
        let limit = limit.unwrap_or(50);
        if !(1..=100).contains(&limit) {
            return Err(Error::field("limit", "must be 1 to 100"));
        }
        let messages = self.store.messages(channel_id, anchor, limit).await?;
        self.message_views(&messages, caller.user.id).await
    }

    pub async fn get_message(&self, caller: &Caller, channel_id: Id, message_id: Id) -> Result<MessageView> {
        let access = self.text_channel(caller, channel_id).await?;
        access.require(Permissions::READ_MESSAGE_HISTORY)?;
        let m = self.store.message(channel_id, message_id).await?.ok_or(Error::NotFound("message"))?;
        Ok(self.message_views(&[m], caller.user.id).await?.remove(0))
    }

    /// Before the files of a multipart send stream in (its `payload_json` came first), when the
    /// channel's slow mode applies to the caller (its upload permit says so): a member still waiting
    /// it out is refused now rather than after the upload. A retry — its nonce names a stored
    /// message — passes, to be answered with that message.
    pub async fn slow_mode_before_upload(&self, caller: &Caller, channel_id: Id, body: &NewMessage) -> Result<()> {
        if let Ok(Some(nonce)) = validate::nonce(body.nonce.as_deref())
            && self.store.message_by_nonce(channel_id, caller.user.id, &nonce).await?.is_some()
        {
            return Ok(());
        }
        self.limits.slow_mode_waiting(channel_id, caller.user.id).await.map_err(|l| Error::SlowMode(l.0))
    }

    /// Returns the message and whether it was created now (false: an earlier send with the same nonce).
    pub async fn send_message(&self, caller: &Caller, channel_id: Id, body: NewMessage) -> Result<(MessageView, bool)> {
        self.send_message_with_files(caller, channel_id, body, Vec::new()).await
    }

    /// A message with files received whole (staged). The files are checked and stored first; if the
    /// message is then refused or turns out to be a retry (same nonce), they are removed again.
    pub async fn send_message_with_files(
        &self,
        caller: &Caller,
        channel_id: Id,
        body: NewMessage,
        files: Vec<Staged>,
    ) -> Result<(MessageView, bool)> {
        let access = self.text_channel(caller, channel_id).await?;
        access.require(Permissions::SEND_MESSAGES)?;
        if !files.is_empty() {
            access.require(Permissions::ATTACH_FILES)?;
            if files.len() > self.config.uploads.max_files as usize {
                return Err(Error::bad_request(
                    "too_many_files",
                    format!("at most {} files per message", self.config.uploads.max_files),
                ));
            }
        }
        self.limits.message(caller.user.id).await.map_err(|l| Error::RateLimited(l.0))?;
        // Files alone make a message; text, when there is any, follows the usual rules.
        let content = if files.is_empty() || !body.content.trim().is_empty() {
            validate::content(&body.content)?
        } else {
            String::new()
        };
        let nonce = validate::nonce(body.nonce.as_deref())?;
        if let Some(reply) = body.reply_to
            && self.store.message(channel_id, reply).await?.is_none()
        {
            return Err(Error::field("reply_to", "no such message in this channel"));
        }
        // A retry of a send that was stored answers that message, before any limit that the first
        // send already passed (slow mode) and before its files are stored again.
        if let Some(n) = nonce.as_deref()
            && let Some(first) = self.store.message_by_nonce(channel_id, caller.user.id, n).await?
        {
            let view = self.message_views(std::slice::from_ref(&first), caller.user.id).await?.remove(0);
            return Ok((view, false));
        }
        if let Some(period) = slow_mode_period(&access) {
            self.limits.slow_mode(channel_id, caller.user.id, period).await.map_err(|l| Error::SlowMode(l.0))?;
        }
        let mentions = allowed_mentions(&access, &content);
        // The files' bytes are taken from the quota before they are stored (one atomic add, so
        // uploads in parallel cannot all fit into the same room), and settled after.
        let reserved: u64 = files.iter().map(|f| f.size).sum();
        self.reserve_upload(caller.user.id, reserved).await?;
        let attachments = match self.store_files(channel_id, files).await {
            Ok(a) => a,
            Err(e) => {
                self.settle_upload(caller.user.id, reserved, &[]).await;
                return Err(e);
            }
        };
        let message = Message {
            id: self.ids.next(),
            channel_id,
            guild_id: access.channel.guild_id,
            author_id: caller.user.id,
            content,
            created_at: now_ms(),
            edited_at: None,
            reply_to: body.reply_to,
            mentions,
            nonce,
            pinned: false,
            attachments,
            embeds: Vec::new(),
        };
        let inserted = match self.store.insert_message(&message).await {
            Ok(i) => i,
            Err(e) => {
                self.remove_files(channel_id, &message.attachments).await;
                self.settle_upload(caller.user.id, reserved, &[]).await;
                return Err(e.into());
            }
        };
        let (message, created) = match inserted {
            Inserted::Created => {
                self.settle_upload(caller.user.id, reserved, &message.attachments).await;
                (message, true)
            }
            Inserted::Existing(m) => {
                // A retry: the first send's files stand, this one's go.
                self.remove_files(channel_id, &message.attachments).await;
                self.settle_upload(caller.user.id, reserved, &[]).await;
                (*m, false)
            }
        };
        let view = MessageView::new(
            &message,
            caller.user.clone(),
            vec![],
            self.attachment_views(&message),
            self.embed_views(&message),
        );
        if created {
            self.metrics.messages.inc();
            self.publish(Dispatch::new("MESSAGE_CREATE", &view, audience(&access)));
            self.queue_preview(&message, access.perms.contains(Permissions::EMBED_LINKS));
        }
        Ok((view, created))
    }

    pub async fn edit_message(
        &self,
        caller: &Caller,
        channel_id: Id,
        message_id: Id,
        content: &str,
    ) -> Result<MessageView> {
        let access = self.text_channel(caller, channel_id).await?;
        let mut m = self.store.message(channel_id, message_id).await?.ok_or(Error::NotFound("message"))?;
        if m.author_id != caller.user.id {
            return Err(Error::Forbidden("only the author can edit a message"));
        }
        m.content = validate::content(content)?;
        m.mentions = allowed_mentions(&access, &m.content);
        m.edited_at = Some(now_ms());
        self.store.update_message(&m).await?;
        let view = self.message_views(std::slice::from_ref(&m), caller.user.id).await?.remove(0);
        self.publish(Dispatch::new("MESSAGE_UPDATE", &view, audience(&access)));
        self.queue_preview(&m, access.perms.contains(Permissions::EMBED_LINKS));
        Ok(view)
    }

    pub async fn delete_message(&self, caller: &Caller, channel_id: Id, message_id: Id) -> Result<()> {
        let access = self.text_channel(caller, channel_id).await?;
        let m = self.store.message(channel_id, message_id).await?.ok_or(Error::NotFound("message"))?;
        let by_moderator = m.author_id != caller.user.id;
        if by_moderator {
            access.require(Permissions::MANAGE_MESSAGES)?;
        }
        if !self.store.delete_message(channel_id, message_id).await? {
            // Deleted meanwhile by another request: that one announces it and frees the files.
            return Err(Error::NotFound("message"));
        }
        self.forget_files(&m).await;
        let event = MessageRef { id: message_id, channel_id, guild_id: access.channel.guild_id };
        self.publish(Dispatch::new("MESSAGE_DELETE", &event, audience(&access)));
        if let (true, Some(guild_id)) = (by_moderator, access.channel.guild_id) {
            let changes = vec![
                change("channel_id", channel_id, ()),
                // Not the content: a deleted message is gone, also from the log (as on Discord).
                change("author_id", m.author_id, ()),
            ];
            self.audit(caller, guild_id, AuditAction::MessageDelete, Some(message_id), changes).await;
        }
        Ok(())
    }

    pub async fn add_reaction(&self, caller: &Caller, channel_id: Id, message_id: Id, emoji: &str) -> Result<()> {
        let access = self.text_channel(caller, channel_id).await?;
        access.require(Permissions::READ_MESSAGE_HISTORY | Permissions::ADD_REACTIONS)?;
        let emoji = validate::emoji(emoji)?;
        self.store.message(channel_id, message_id).await?.ok_or(Error::NotFound("message"))?;
        if self.store.add_reaction(message_id, &emoji, caller.user.id).await? {
            let ev = ReactionEvent {
                user_id: caller.user.id,
                channel_id,
                message_id,
                guild_id: access.channel.guild_id,
                emoji: &emoji,
            };
            self.publish(Dispatch::new("MESSAGE_REACTION_ADD", &ev, audience(&access)));
        }
        Ok(())
    }

    /// Removes the caller's own reaction, or with MANAGE_MESSAGES someone else's.
    pub async fn remove_reaction(
        &self,
        caller: &Caller,
        channel_id: Id,
        message_id: Id,
        emoji: &str,
        user_id: Option<Id>,
    ) -> Result<()> {
        let access = self.text_channel(caller, channel_id).await?;
        let emoji = validate::emoji(emoji)?;
        let user_id = match user_id {
            Some(other) if other != caller.user.id => {
                access.require(Permissions::MANAGE_MESSAGES)?;
                other
            }
            _ => caller.user.id,
        };
        self.store.message(channel_id, message_id).await?.ok_or(Error::NotFound("message"))?;
        if self.store.remove_reaction(message_id, &emoji, user_id).await? {
            let ev =
                ReactionEvent { user_id, channel_id, message_id, guild_id: access.channel.guild_id, emoji: &emoji };
            self.publish(Dispatch::new("MESSAGE_REACTION_REMOVE", &ev, audience(&access)));
        }
        Ok(())
    }

    pub async fn pins(&self, caller: &Caller, channel_id: Id) -> Result<Vec<MessageView>> {
        let access = self.text_channel(caller, channel_id).await?;
        access.require(Permissions::READ_MESSAGE_HISTORY)?;
        let pinned = self.store.pinned_messages(channel_id).await?;
        self.message_views(&pinned, caller.user.id).await
    }

    pub async fn set_pinned(&self, caller: &Caller, channel_id: Id, message_id: Id, pinned: bool) -> Result<()> {
        let access = self.text_channel(caller, channel_id).await?;
        if access.guild.is_some() {
            access.require(Permissions::MANAGE_MESSAGES)?;
        }
        let mut m = self.store.message(channel_id, message_id).await?.ok_or(Error::NotFound("message"))?;
        if m.pinned != pinned {
            if pinned && self.store.pinned_messages(channel_id).await?.len() >= 50 {
                return Err(Error::bad_request("too_many_pins", "a channel holds at most 50 pins"));
            }
            m.pinned = pinned;
            self.store.update_message(&m).await?;
            let ev = PinsUpdate { channel_id, guild_id: access.channel.guild_id, message_id, pinned };
            self.publish(Dispatch::new("CHANNEL_PINS_UPDATE", &ev, audience(&access)));
        }
        Ok(())
    }

    pub async fn typing(&self, caller: &Caller, channel_id: Id) -> Result<()> {
        let access = self.text_channel(caller, channel_id).await?;
        access.require(Permissions::SEND_MESSAGES)?;
        let now = now_ms();
        let ev = Typing {
            channel_id,
            guild_id: access.channel.guild_id,
            user_id: caller.user.id,
            timestamp: now,
            expires_at: now + chrono::Duration::seconds(TYPING_SECS),
        };
        self.publish(Dispatch::new("TYPING_START", &ev, audience(&access)));
        Ok(())
    }

    pub async fn ack(&self, caller: &Caller, channel_id: Id, message_id: Id) -> Result<()> {
        self.text_channel(caller, channel_id).await?;
        // Only real messages: a marker past the newest id would hide every future message as read.
        self.store.message(channel_id, message_id).await?.ok_or(Error::NotFound("message"))?;
        self.store.ack(caller.user.id, channel_id, message_id).await?;
        self.publish(Dispatch::new(
            "MESSAGE_ACK",
            &Ack { channel_id, message_id },
            Audience::Users(vec![caller.user.id]),
        ));
        Ok(())
    }

    /// Full-text search in a guild, over the channels the caller may read.
    pub async fn search(
        &self,
        caller: &Caller,
        guild_id: Id,
        query: &str,
        limit: Option<u32>,
    ) -> Result<Vec<MessageView>> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        let query = query.trim();
        if query.is_empty() || query.chars().count() > 200 {
            return Err(Error::field("q", "must be 1 to 200 characters"));
        }
        let limit = limit.unwrap_or(25);
        if !(1..=100).contains(&limit) {
            return Err(Error::field("limit", "must be 1 to 100"));
        }
        let readable: Vec<Id> = self
            .store
            .guild_channels(guild_id)
            .await?
            .into_iter()
            .filter(|c| {
                c.kind.has_messages()
                    && access.in_channel(c).contains(Permissions::VIEW_CHANNEL | Permissions::READ_MESSAGE_HISTORY)
            })
            .map(|c| c.id)
            .collect();
        if readable.is_empty() {
            return Ok(vec![]);
        }
        let found = self.store.search_messages(&readable, query, limit).await?;
        self.message_views(&found, caller.user.id).await
    }
}
