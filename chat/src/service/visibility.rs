//! Who may see which channel after a permission change, and what each member is told: the
//! services describe the change with borrowed [`Sight`]s; it travels as an owned
//! [`SightChange`](crate::events::sight::SightChange), which holds the rules.

use std::sync::Arc;

use crate::Chat;
use crate::events::Event;
use crate::events::sight::{self, ChannelSight, SightData, SightSide};
use crate::id::Id;
use crate::model::{Channel, Member, Role};

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
    fn to_side(self) -> SightSide {
        SightSide {
            owner_id: self.owner_id,
            roles: self.roles.to_vec(),
            standing: match self.standing {
                Standing::AsFollowed => sight::Standing::AsFollowed,
                Standing::Exactly(m) => sight::Standing::Exactly(m.clone()),
                Standing::WithoutRole(r) => sight::Standing::WithoutRole(r),
            },
        }
    }
}

impl Chat {
    /// Tells every session of the guild (or only `only_user`'s) what the change from `before` to
    /// `after` shows or hides. `channels` pairs each channel's state before with its state after;
    /// `channel_changed` sends CHANNEL_UPDATE to those who see it on both sides.
    pub(crate) async fn announce_sight_change(
        &self,
        before: Sight<'_>,
        after: Sight<'_>,
        channels: &[(Channel, Channel)],
        channel_changed: bool,
        only_user: Option<Id>,
    ) {
        let in_voice = self.guild_voice_states(after.guild_id).await;
        let channels = channels
            .iter()
            .map(|(b, a)| ChannelSight {
                before: b.clone(),
                after: a.clone(),
                changed: channel_changed,
                occupants: in_voice.iter().filter(|s| s.channel_id == Some(a.id)).cloned().collect(),
            })
            .collect();
        let change = SightData {
            guild_id: after.guild_id,
            only_user,
            before: before.to_side(),
            after: after.to_side(),
            channels,
        };
        self.publish(Event::Sight(Arc::new(change.into())));
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
        self.announce_sight_change(before, after, &channels, false, only_user).await;
        Ok(())
    }
}
