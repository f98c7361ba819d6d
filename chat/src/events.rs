//! Dispatch events: what happened, who may see it, and what the hub must learn from it.
//!
//! Services build a [`Dispatch`] for every mutation; the gateway hub delivers it. The payload is
//! serialized once and shared by every recipient.

use std::sync::Arc;

use serde::Serialize;

use crate::id::Id;
use crate::model::{Channel, Member, Role};
use crate::permissions::{GuildContext, can_view};

/// The permission context of a guild channel, captured when the event happened.
#[derive(Debug, Clone)]
pub struct ChannelScope {
    pub guild_id: Id,
    pub owner_id: Id,
    pub roles: Vec<Role>,
    pub channel: Channel,
}

/// Who receives an event.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Every member of the guild.
    Guild(Id),
    /// Guild members who may view the channel.
    Channel(Arc<ChannelScope>),
    /// Exactly these users (DMs, the acting user's own sessions).
    Users(Vec<Id>),
}

/// State the hub keeps per session that an event changes. Upserts apply before delivery, removals
/// after, so the member concerned always receives the event.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A member joined or changed (roles, timeout): their sessions follow the guild with this state.
    MemberUpsert(Member),
    /// A member left, was kicked or banned: their sessions stop following the guild.
    MemberRemove { guild_id: Id, user_id: Id },
    /// The guild is gone: every session stops following it.
    GuildRemove(Id),
}

/// A serialized event payload shared by all recipients (and by their replay buffers).
#[derive(Debug)]
pub struct Payload {
    pub name: &'static str,
    /// The JSON of `d`.
    pub data: Box<str>,
}

#[derive(Debug, Clone)]
pub struct Dispatch {
    pub payload: Arc<Payload>,
    pub audience: Audience,
    pub effect: Option<Effect>,
}

impl Payload {
    /// A payload to deliver as it is (READY, RESUMED, or one chosen per member).
    pub fn new(name: &'static str, data: &impl Serialize) -> Arc<Self> {
        // Serializing our own types into a string cannot fail; fall back to null to stay total.
        let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into()).into_boxed_str();
        Arc::new(Payload { name, data })
    }
}

impl ChannelScope {
    /// Whether `member` may view the channel in this scope.
    pub fn visible_to(&self, member: &Member, now: chrono::DateTime<chrono::Utc>) -> bool {
        let guild = GuildContext { guild_id: self.guild_id, owner_id: self.owner_id, roles: &self.roles };
        can_view(guild, &self.channel, member, now)
    }
}

impl Dispatch {
    pub fn new(name: &'static str, data: &impl Serialize, audience: Audience) -> Self {
        Dispatch { payload: Payload::new(name, data), audience, effect: None }
    }

    pub fn with_effect(mut self, effect: Effect) -> Self {
        self.effect = Some(effect);
        self
    }
}
