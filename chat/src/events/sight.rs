//! A permission change, told member by member.
//!
//! An overwrite, a role's permissions, a deleted role or a member's roles decide who may view a
//! channel. When that changes, a member who can now view a channel receives CHANNEL_CREATE and
//! the voice states in it; one who no longer can receives those voice states as "left" and then
//! CHANNEL_DELETE; one who keeps it receives CHANNEL_UPDATE when the channel itself changed.
//! Nobody hears anything about a channel they could not see before and cannot see now.
//!
//! The change is plain data (it crosses nodes in a cluster); the payloads are built once from it
//! and shared by every recipient.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Payload;
use crate::id::Id;
use crate::model::{Channel, Member, Role};
use crate::permissions::{GuildContext, can_view};
use crate::voice::VoiceState;

/// Whose standing a [`SightSide`] evaluates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "of", rename_all = "snake_case")]
pub enum Standing {
    /// The member as the gateway session follows the guild.
    AsFollowed,
    /// Exactly this member (its roles or timeout are what changed).
    Exactly(Member),
    /// The followed member without this role (the role was deleted).
    WithoutRole(Id),
}

/// One side (before or after) of a permission change in a guild.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SightSide {
    pub owner_id: Id,
    pub roles: Vec<Role>,
    pub standing: Standing,
}

/// One channel's state on both sides, and who sits in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelSight {
    pub before: Channel,
    pub after: Channel,
    /// The channel itself changed: those who see it on both sides get CHANNEL_UPDATE.
    pub changed: bool,
    pub occupants: Vec<VoiceState>,
}

/// The data of a change, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SightData {
    pub guild_id: Id,
    /// Only this user's sessions are concerned (their own roles changed).
    pub only_user: Option<Id>,
    pub before: SightSide,
    pub after: SightSide,
    pub channels: Vec<ChannelSight>,
}

/// What a member is told about one channel, prepared once.
#[derive(Debug)]
struct Told {
    create: Arc<Payload>,
    delete: Arc<Payload>,
    update: Option<Arc<Payload>>,
    voice_in: Vec<Arc<Payload>>,
    voice_left: Vec<Arc<Payload>>,
}

/// A permission change with its payloads.
#[derive(Debug, Serialize, Deserialize)]
#[serde(from = "SightData", into = "SightData")]
pub struct SightChange {
    data: SightData,
    told: Vec<Told>,
}

impl Clone for SightChange {
    fn clone(&self) -> Self {
        SightChange::from(self.data.clone())
    }
}

impl From<SightData> for SightChange {
    fn from(data: SightData) -> Self {
        let told = data
            .channels
            .iter()
            .map(|c| {
                let left = |s: &VoiceState| VoiceState { channel_id: None, ..s.clone() };
                Told {
                    create: Payload::new("CHANNEL_CREATE", &c.after),
                    delete: Payload::new("CHANNEL_DELETE", &c.before),
                    update: c.changed.then(|| Payload::new("CHANNEL_UPDATE", &c.after)),
                    voice_in: c.occupants.iter().map(|s| Payload::new("VOICE_STATE_UPDATE", s)).collect(),
                    voice_left: c.occupants.iter().map(|s| Payload::new("VOICE_STATE_UPDATE", &left(s))).collect(),
                }
            })
            .collect();
        SightChange { data, told }
    }
}

impl From<SightChange> for SightData {
    fn from(change: SightChange) -> Self {
        change.data
    }
}

impl SightSide {
    fn sees(&self, guild_id: Id, channel: &Channel, followed: &Member, now: DateTime<Utc>) -> bool {
        let ctx = GuildContext { guild_id, owner_id: self.owner_id, roles: &self.roles };
        let view = |m: &Member| can_view(ctx, channel, m, now);
        match &self.standing {
            Standing::AsFollowed => view(followed),
            Standing::Exactly(m) => view(m),
            Standing::WithoutRole(role) => {
                let mut m = followed.clone();
                m.roles.retain(|r| r != role);
                view(&m)
            }
        }
    }
}

impl SightChange {
    pub fn guild_id(&self) -> Id {
        self.data.guild_id
    }

    pub fn only_user(&self) -> Option<Id> {
        self.data.only_user
    }

    /// What the session following the guild as `member` hears, in order.
    pub fn tell(&self, member: &Member, now: DateTime<Utc>) -> Vec<Arc<Payload>> {
        let d = &self.data;
        let mut out = Vec::new();
        for (c, t) in d.channels.iter().zip(&self.told) {
            let before = d.before.sees(d.guild_id, &c.before, member, now);
            let after = d.after.sees(d.guild_id, &c.after, member, now);
            match (before, after) {
                (false, true) => {
                    out.push(t.create.clone());
                    out.extend(t.voice_in.iter().cloned());
                }
                (true, false) => {
                    out.extend(t.voice_left.iter().cloned());
                    out.push(t.delete.clone());
                }
                (true, true) => out.extend(t.update.iter().cloned()),
                (false, false) => {}
            }
        }
        out
    }
}
