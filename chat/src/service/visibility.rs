//! Who may see which channel after a permission change, and what each member is told.
//!
//! An overwrite, a role's permissions, a deleted role or a member's roles decide who may view a
//! channel. When that changes, a member who can now view a channel receives CHANNEL_CREATE and
//! the voice states in it; one who no longer can receives those voice states as "left" and then
//! CHANNEL_DELETE; one who keeps it receives CHANNEL_UPDATE when the channel itself changed.
//! Nobody hears anything about a channel they could not see before and cannot see now.

use std::sync::Arc;

use chrono::Utc;

use crate::Chat;
use crate::events::Payload;
use crate::id::Id;
use crate::model::{Channel, Member, Role};
use crate::permissions::{GuildContext, can_view};
use crate::voice::VoiceState;

/// Whose standing a [`Sight`] evaluates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Standing<'a> {
    /// The member as the gateway session follows the guild.
    AsFollowed,
    /// Exactly this member (its roles or timeout are what changed).
    Exactly(&'a Member),
    /// The followed member without this role (the role was deleted).
    WithoutRole(Id),
}

/// One side (before or after) of a permission change in a guild.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sight<'a> {
    pub guild_id: Id,
    pub owner_id: Id,
    pub roles: &'a [Role],
    pub standing: Standing<'a>,
}

impl Sight<'_> {
    fn sees(&self, channel: &Channel, followed: &Member, now: chrono::DateTime<Utc>) -> bool {
        let ctx = GuildContext { guild_id: self.guild_id, owner_id: self.owner_id, roles: self.roles };
        let view = |m: &Member| can_view(ctx, channel, m, now);
        match self.standing {
            Standing::AsFollowed => view(followed),
            Standing::Exactly(m) => view(m),
            Standing::WithoutRole(role) => {
                let mut m = followed.clone();
                m.roles.retain(|r| *r != role);
                view(&m)
            }
        }
    }
}

/// What a member is told about one channel, prepared once and shared by every recipient.
struct Told {
    before: Channel,
    after: Channel,
    create: Arc<Payload>,
    delete: Arc<Payload>,
    update: Option<Arc<Payload>>,
    voice_in: Vec<Arc<Payload>>,
    voice_left: Vec<Arc<Payload>>,
}

impl Chat {
    /// Tells every session of the guild (or only `only_user`'s) what the change from `before` to
    /// `after` shows or hides. `channels` pairs each channel's state before with its state after;
    /// `channel_changed` sends CHANNEL_UPDATE to those who see it on both sides.
    pub(crate) fn announce_sight_change(
        &self,
        before: Sight<'_>,
        after: Sight<'_>,
        channels: &[(Channel, Channel)],
        channel_changed: bool,
        only_user: Option<Id>,
    ) {
        let told: Vec<Told> = channels
            .iter()
            .map(|(b, a)| {
                let occupants = self.voice_states_in(a.id);
                let left = |s: &VoiceState| VoiceState { channel_id: None, ..s.clone() };
                Told {
                    before: b.clone(),
                    after: a.clone(),
                    create: Payload::new("CHANNEL_CREATE", a),
                    delete: Payload::new("CHANNEL_DELETE", b),
                    update: channel_changed.then(|| Payload::new("CHANNEL_UPDATE", a)),
                    voice_in: occupants.iter().map(|s| Payload::new("VOICE_STATE_UPDATE", s)).collect(),
                    voice_left: occupants.iter().map(|s| Payload::new("VOICE_STATE_UPDATE", &left(s))).collect(),
                }
            })
            .collect();
        let now = Utc::now();
        self.hub.publish_per_member(after.guild_id, only_user, |member| {
            let mut out = Vec::new();
            for t in &told {
                match (before.sees(&t.before, member, now), after.sees(&t.after, member, now)) {
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
        });
    }

    /// Like [`Chat::announce_sight_change`] for every channel of the guild, which itself is unchanged
    /// (a role or a member changed).
    pub(crate) async fn announce_guild_sight_change(
        &self,
        before: Sight<'_>,
        after: Sight<'_>,
        only_user: Option<Id>,
    ) -> crate::error::Result<()> {
        let channels: Vec<(Channel, Channel)> =
            self.store.guild_channels(after.guild_id).await?.into_iter().map(|c| (c.clone(), c)).collect();
        self.announce_sight_change(before, after, &channels, false, only_user);
        Ok(())
    }
}
