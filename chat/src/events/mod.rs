//! Dispatch events: what happened, who may see it, and what the hub must learn from it.
//!
//! Services build an [`Event`] for every mutation; the gateway hub delivers it (through the
//! cluster's bus first, when there is one). The payload is serialized once and shared by every
//! recipient. `wire` is the form an event takes between nodes.

pub mod sight;
pub mod wire;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::id::Id;
use crate::model::{Channel, Member, Role};
use crate::permissions::{GuildContext, can_view};

/// The permission context of a guild channel, captured when the event happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelScope {
    pub guild_id: Id,
    pub owner_id: Id,
    pub roles: Vec<Role>,
    pub channel: Channel,
}

/// Who receives an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "of", rename_all = "snake_case")]
pub enum Audience {
    /// Every member of the guild.
    Guild(Id),
    /// Guild members who may view the channel.
    Channel(Arc<ChannelScope>),
    /// Exactly these users (DMs, the acting user's own sessions).
    Users(Vec<Id>),
    /// Members who may view `scope`'s channel but not `unless`'s (a voice "left" update: who sees
    /// where the user went hears that instead).
    ChannelUnless { scope: Arc<ChannelScope>, unless: Option<Arc<ChannelScope>> },
}

/// State the hub keeps per session that an event changes. Upserts apply before delivery, removals
/// after, so the member concerned always receives the event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "of", rename_all = "snake_case")]
pub enum Effect {
    /// A member joined or changed (roles, timeout): their sessions follow the guild with this state.
    MemberUpsert(Member),
    /// A member left, was kicked or banned: their sessions stop following the guild.
    MemberRemove { guild_id: Id, user_id: Id },
    /// The guild is gone: every session stops following it.
    GuildRemove(Id),
    /// A role was deleted: the members who held it no longer do (applied after delivery).
    RoleRemove { guild_id: Id, role_id: Id },
    /// Not for the hub: the voice side of every node carries it out for the calls it holds
    /// (server mute, move, disconnect). Travels as a dispatch to nobody.
    VoiceOrder(crate::voice::VoiceOrder),
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

/// Everything the hub delivers: one payload to an audience, or a permission change that each
/// member hears differently.
#[derive(Debug, Clone)]
pub enum Event {
    Dispatch(Dispatch),
    Sight(Arc<sight::SightChange>),
}

impl From<Dispatch> for Event {
    fn from(d: Dispatch) -> Self {
        Event::Dispatch(d)
    }
}

impl Event {
    /// The event name, for metrics (a permission change counts as one event).
    pub fn name(&self) -> &'static str {
        match self {
            Event::Dispatch(d) => d.payload.name,
            Event::Sight(_) => "SIGHT_CHANGE",
        }
    }
}

/// Every event name the gateway dispatches; an entry from another node naming anything else is
/// foreign and skipped. Names stay `&'static str` so metrics labels and frames need no allocation.
pub const EVENT_NAMES: &[&str] = &[
    "CHANNEL_CREATE",
    "CHANNEL_DELETE",
    "CHANNEL_PINS_UPDATE",
    "CHANNEL_UPDATE",
    "GUILD_BAN_ADD",
    "GUILD_BAN_REMOVE",
    "GUILD_CREATE",
    "GUILD_DELETE",
    "GUILD_MEMBER_ADD",
    "GUILD_MEMBER_REMOVE",
    "GUILD_MEMBER_UPDATE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_DELETE",
    "GUILD_ROLE_UPDATE",
    "GUILD_UPDATE",
    "MESSAGE_ACK",
    "MESSAGE_CREATE",
    "MESSAGE_DELETE",
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "MESSAGE_UPDATE",
    "PRESENCE_UPDATE",
    "TYPING_START",
    "USER_UPDATE",
    "VOICE_STATE_UPDATE",
];

/// The static name of a known event.
pub fn known_name(name: &str) -> Option<&'static str> {
    EVENT_NAMES.iter().copied().find(|n| *n == name)
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
