//! Discord-style permission bitfield and the one pure function that computes effective permissions.
//!
//! Order of evaluation (Discord's): the guild owner has everything; otherwise the base is
//! @everyone's permissions OR every role of the member; ADMINISTRATOR in the base grants everything.
//! In a channel, overwrites apply in three steps — the @everyone overwrite, then all of the member's
//! role overwrites combined, then the member's own overwrite — each step removing its `deny` and
//! then adding its `allow`. A member in timeout keeps only VIEW_CHANNEL and READ_MESSAGE_HISTORY.
//! Without VIEW_CHANNEL a channel grants nothing; without CONNECT a voice channel grants no voice rights.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::Id;
use crate::model::{Channel, ChannelKind, Member, Overwrite, OverwriteKind, Role};

bitflags::bitflags! {
    /// Bit values follow Discord's so that tools written for Discord read them the same way.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Permissions: u64 {
        const CREATE_INVITE = 1 << 0;
        const KICK_MEMBERS = 1 << 1;
        const BAN_MEMBERS = 1 << 2;
        const ADMINISTRATOR = 1 << 3;
        const MANAGE_CHANNELS = 1 << 4;
        const MANAGE_GUILD = 1 << 5;
        const ADD_REACTIONS = 1 << 6;
        const VIEW_AUDIT_LOG = 1 << 7;
        const VIDEO = 1 << 9;
        const VIEW_CHANNEL = 1 << 10;
        const SEND_MESSAGES = 1 << 11;
        const MANAGE_MESSAGES = 1 << 13;
        const EMBED_LINKS = 1 << 14;
        const ATTACH_FILES = 1 << 15;
        const READ_MESSAGE_HISTORY = 1 << 16;
        const MENTION_EVERYONE = 1 << 17;
        const CONNECT = 1 << 20;
        const SPEAK = 1 << 21;
        const MUTE_MEMBERS = 1 << 22;
        const DEAFEN_MEMBERS = 1 << 23;
        const MOVE_MEMBERS = 1 << 24;
        const MANAGE_ROLES = 1 << 28;
        const MODERATE_MEMBERS = 1 << 40;
    }
}

impl Permissions {
    /// What @everyone gets in a new guild (Discord's defaults, minus the moderation bits).
    pub const DEFAULT_EVERYONE: Permissions = Permissions::VIEW_CHANNEL
        .union(Permissions::SEND_MESSAGES)
        .union(Permissions::READ_MESSAGE_HISTORY)
        .union(Permissions::ADD_REACTIONS)
        .union(Permissions::ATTACH_FILES)
        .union(Permissions::EMBED_LINKS)
        .union(Permissions::CREATE_INVITE)
        .union(Permissions::CONNECT)
        .union(Permissions::SPEAK)
        .union(Permissions::VIDEO);

    /// Kept for a member in timeout.
    const TIMEOUT_KEEPS: Permissions = Permissions::VIEW_CHANNEL.union(Permissions::READ_MESSAGE_HISTORY);

    /// Rights that make sense only in a text channel.
    const TEXT_ONLY: Permissions = Permissions::SEND_MESSAGES
        .union(Permissions::ATTACH_FILES)
        .union(Permissions::EMBED_LINKS)
        .union(Permissions::MANAGE_MESSAGES)
        .union(Permissions::READ_MESSAGE_HISTORY)
        .union(Permissions::MENTION_EVERYONE)
        .union(Permissions::ADD_REACTIONS);

    /// Rights that depend on CONNECT in a voice channel.
    const VOICE_NEEDS_CONNECT: Permissions = Permissions::SPEAK
        .union(Permissions::VIDEO)
        .union(Permissions::MUTE_MEMBERS)
        .union(Permissions::DEAFEN_MEMBERS)
        .union(Permissions::MOVE_MEMBERS);

    /// Parses a bitfield from outside, dropping unknown bits.
    pub fn from_wire(bits: u64) -> Self {
        Permissions::from_bits_truncate(bits)
    }
}

// Discord sends permission bitfields as decimal strings (JavaScript numbers lose bits past 2^53).
impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.bits())
    }
}
impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(u64),
        }
        let bits = match Raw::deserialize(d)? {
            Raw::Str(s) => {
                s.parse::<u64>().map_err(|_| serde::de::Error::custom("permissions must be a decimal bitfield"))?
            }
            Raw::Int(v) => v,
        };
        Ok(Permissions::from_wire(bits))
    }
}

/// Everything the calculation needs about one guild. Borrowed, so callers keep their own storage.
#[derive(Debug, Clone, Copy)]
pub struct GuildContext<'a> {
    pub guild_id: Id,
    pub owner_id: Id,
    /// All roles of the guild, including @everyone (whose id equals the guild id).
    pub roles: &'a [Role],
}

impl GuildContext<'_> {
    fn everyone(&self) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == self.guild_id)
    }

    /// Position of the member's highest role; @everyone is 0. The owner is above everyone.
    pub fn top_position(&self, member: &Member) -> i64 {
        if member.user_id == self.owner_id {
            return i64::MAX;
        }
        self.roles.iter().filter(|r| member.roles.contains(&r.id)).map(|r| i64::from(r.position)).max().unwrap_or(0)
    }
}

/// Guild-wide permissions of a member (no channel).
pub fn base_permissions(guild: GuildContext<'_>, member: &Member, now: DateTime<Utc>) -> Permissions {
    if member.user_id == guild.owner_id {
        return Permissions::all();
    }
    let mut perms = guild.everyone().map(|r| r.permissions).unwrap_or_default();
    for role in guild.roles.iter().filter(|r| member.roles.contains(&r.id)) {
        perms |= role.permissions;
    }
    if perms.contains(Permissions::ADMINISTRATOR) {
        return Permissions::all();
    }
    if member.is_timed_out(now) {
        perms &= Permissions::TIMEOUT_KEEPS;
    }
    perms
}

/// Whether a member may see a channel at all (VIEW_CHANNEL): who receives its events.
pub fn can_view(guild: GuildContext<'_>, channel: &Channel, member: &Member, now: DateTime<Utc>) -> bool {
    channel_permissions(guild, channel, member, now).contains(Permissions::VIEW_CHANNEL)
}

/// Effective permissions of a member in a channel of the guild.
pub fn channel_permissions(
    guild: GuildContext<'_>,
    channel: &Channel,
    member: &Member,
    now: DateTime<Utc>,
) -> Permissions {
    let base = base_permissions(guild, member, now);
    if base.contains(Permissions::ADMINISTRATOR) {
        return Permissions::all();
    }
    let mut perms = apply_overwrites(base, &channel.overwrites, guild.guild_id, member);
    if member.is_timed_out(now) {
        perms &= Permissions::TIMEOUT_KEEPS;
    }
    if !perms.contains(Permissions::VIEW_CHANNEL) {
        return Permissions::empty();
    }
    if channel.kind == ChannelKind::Voice && !perms.contains(Permissions::CONNECT) {
        perms.remove(Permissions::VOICE_NEEDS_CONNECT);
    }
    if channel.kind == ChannelKind::Category {
        perms.remove(Permissions::TEXT_ONLY);
    }
    perms
}

fn apply_overwrites(base: Permissions, overwrites: &[Overwrite], everyone_id: Id, member: &Member) -> Permissions {
    let mut perms = base;
    if let Some(ow) = overwrites.iter().find(|o| o.kind == OverwriteKind::Role && o.id == everyone_id) {
        perms = (perms - ow.deny) | ow.allow;
    }
    let (mut allow, mut deny) = (Permissions::empty(), Permissions::empty());
    for ow in overwrites.iter().filter(|o| o.kind == OverwriteKind::Role && member.roles.contains(&o.id)) {
        allow |= ow.allow;
        deny |= ow.deny;
    }
    perms = (perms - deny) | allow;
    if let Some(ow) = overwrites.iter().find(|o| o.kind == OverwriteKind::Member && o.id == member.user_id) {
        perms = (perms - ow.deny) | ow.allow;
    }
    perms
}

/// May `actor` create, edit, delete or assign `role`? Needs MANAGE_ROLES and a highest role strictly
/// above it; nobody manages @everyone's position or a role at or above their own highest.
pub fn can_manage_role(guild: GuildContext<'_>, actor: &Member, role: &Role, now: DateTime<Utc>) -> bool {
    if actor.user_id == guild.owner_id {
        return true;
    }
    base_permissions(guild, actor, now).contains(Permissions::MANAGE_ROLES)
        && guild.top_position(actor) > i64::from(role.position)
}

/// May `actor` kick, ban, time out or rename `target`? The owner can never be acted on, and the actor's
/// highest role must be strictly above the target's. `needed` is the permission the action requires.
pub fn can_moderate(
    guild: GuildContext<'_>,
    actor: &Member,
    target: &Member,
    needed: Permissions,
    now: DateTime<Utc>,
) -> bool {
    if target.user_id == guild.owner_id || actor.user_id == target.user_id {
        return false;
    }
    base_permissions(guild, actor, now).contains(needed) && guild.top_position(actor) > guild.top_position(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    const GUILD: Id = Id::from_raw(100);
    const OWNER: Id = Id::from_raw(1);
    const ALICE: Id = Id::from_raw(2);
    const MOD_ROLE: Id = Id::from_raw(200);
    const MUTED_ROLE: Id = Id::from_raw(201);
    const ADMIN_ROLE: Id = Id::from_raw(202);

    fn role(id: Id, position: i32, permissions: Permissions) -> Role {
        Role {
            id,
            guild_id: GUILD,
            name: format!("r{id}"),
            permissions,
            position,
            color: 0,
            hoist: false,
            mentionable: false,
        }
    }

    fn roles() -> Vec<Role> {
        vec![
            role(GUILD, 0, Permissions::DEFAULT_EVERYONE),
            role(MOD_ROLE, 2, Permissions::MANAGE_MESSAGES | Permissions::KICK_MEMBERS | Permissions::MANAGE_ROLES),
            role(MUTED_ROLE, 1, Permissions::empty()),
            role(ADMIN_ROLE, 3, Permissions::ADMINISTRATOR),
        ]
    }

    fn member(user: Id, roles: &[Id]) -> Member {
        Member {
            guild_id: GUILD,
            user_id: user,
            nick: None,
            roles: roles.to_vec(),
            joined_at: Utc::now(),
            timed_out_until: None,
            mute: false,
            deaf: false,
        }
    }

    fn channel(kind: ChannelKind, overwrites: Vec<Overwrite>) -> Channel {
        Channel {
            id: Id::from_raw(300),
            guild_id: Some(GUILD),
            name: "c".into(),
            kind,
            parent_id: None,
            position: 0,
            topic: None,
            overwrites,
            recipients: vec![],
            last_message_id: None,
            rate_limit_per_user: 0,
        }
    }

    fn ow_role(id: Id, allow: Permissions, deny: Permissions) -> Overwrite {
        Overwrite { id, kind: OverwriteKind::Role, allow, deny }
    }
    fn ow_member(id: Id, allow: Permissions, deny: Permissions) -> Overwrite {
        Overwrite { id, kind: OverwriteKind::Member, allow, deny }
    }

    fn perms_in(ch: &Channel, m: &Member) -> Permissions {
        let roles = roles();
        let g = GuildContext { guild_id: GUILD, owner_id: OWNER, roles: &roles };
        channel_permissions(g, ch, m, Utc::now())
    }

    #[test]
    fn everyone_gets_the_everyone_role_permissions() {
        let p = perms_in(&channel(ChannelKind::Text, vec![]), &member(ALICE, &[]));
        assert_eq!(p, Permissions::DEFAULT_EVERYONE);
    }

    #[test]
    fn roles_add_to_everyone() {
        let p = perms_in(&channel(ChannelKind::Text, vec![]), &member(ALICE, &[MOD_ROLE]));
        assert!(p.contains(Permissions::MANAGE_MESSAGES | Permissions::SEND_MESSAGES));
    }

    #[test]
    fn owner_has_everything_even_when_denied() {
        let ch = channel(ChannelKind::Text, vec![ow_member(OWNER, Permissions::empty(), Permissions::all())]);
        assert_eq!(perms_in(&ch, &member(OWNER, &[])), Permissions::all());
    }

    #[test]
    fn administrator_bypasses_overwrites() {
        let ch = channel(ChannelKind::Text, vec![ow_role(GUILD, Permissions::empty(), Permissions::VIEW_CHANNEL)]);
        assert_eq!(perms_in(&ch, &member(ALICE, &[ADMIN_ROLE])), Permissions::all());
    }

    #[test]
    fn everyone_overwrite_denies() {
        let ch = channel(ChannelKind::Text, vec![ow_role(GUILD, Permissions::empty(), Permissions::SEND_MESSAGES)]);
        let p = perms_in(&ch, &member(ALICE, &[]));
        assert!(!p.contains(Permissions::SEND_MESSAGES));
        assert!(p.contains(Permissions::VIEW_CHANNEL));
    }

    #[test]
    fn role_overwrite_allow_beats_everyone_deny() {
        let ch = channel(
            ChannelKind::Text,
            vec![
                ow_role(GUILD, Permissions::empty(), Permissions::SEND_MESSAGES),
                ow_role(MUTED_ROLE, Permissions::SEND_MESSAGES, Permissions::empty()),
            ],
        );
        assert!(perms_in(&ch, &member(ALICE, &[MUTED_ROLE])).contains(Permissions::SEND_MESSAGES));
    }

    #[test]
    fn role_overwrites_combine_and_allow_wins_between_roles() {
        // One role denies, another allows: roles combine, and allow is applied after deny.
        let ch = channel(
            ChannelKind::Text,
            vec![
                ow_role(MUTED_ROLE, Permissions::empty(), Permissions::SEND_MESSAGES),
                ow_role(MOD_ROLE, Permissions::SEND_MESSAGES, Permissions::empty()),
            ],
        );
        assert!(perms_in(&ch, &member(ALICE, &[MUTED_ROLE, MOD_ROLE])).contains(Permissions::SEND_MESSAGES));
        assert!(!perms_in(&ch, &member(ALICE, &[MUTED_ROLE])).contains(Permissions::SEND_MESSAGES));
    }

    #[test]
    fn member_overwrite_beats_role_overwrites() {
        let ch = channel(
            ChannelKind::Text,
            vec![
                ow_role(MOD_ROLE, Permissions::SEND_MESSAGES, Permissions::empty()),
                ow_member(ALICE, Permissions::empty(), Permissions::SEND_MESSAGES),
            ],
        );
        assert!(!perms_in(&ch, &member(ALICE, &[MOD_ROLE])).contains(Permissions::SEND_MESSAGES));
    }

    #[test]
    fn member_overwrite_can_grant_a_hidden_channel() {
        let ch = channel(
            ChannelKind::Text,
            vec![
                ow_role(GUILD, Permissions::empty(), Permissions::VIEW_CHANNEL),
                ow_member(ALICE, Permissions::VIEW_CHANNEL, Permissions::empty()),
            ],
        );
        assert!(perms_in(&ch, &member(ALICE, &[])).contains(Permissions::VIEW_CHANNEL));
        assert_eq!(perms_in(&ch, &member(Id::from_raw(9), &[])), Permissions::empty());
    }

    #[test]
    fn no_view_channel_means_nothing() {
        let ch = channel(ChannelKind::Text, vec![ow_role(GUILD, Permissions::empty(), Permissions::VIEW_CHANNEL)]);
        assert_eq!(perms_in(&ch, &member(ALICE, &[MOD_ROLE])), Permissions::empty());
    }

    #[test]
    fn voice_without_connect_cannot_speak() {
        let ch = channel(ChannelKind::Voice, vec![ow_role(GUILD, Permissions::empty(), Permissions::CONNECT)]);
        let p = perms_in(&ch, &member(ALICE, &[]));
        assert!(!p.contains(Permissions::SPEAK));
        assert!(!p.contains(Permissions::VIDEO));
        assert!(p.contains(Permissions::VIEW_CHANNEL));
    }

    #[test]
    fn timeout_leaves_only_read_rights() {
        let mut m = member(ALICE, &[MOD_ROLE]);
        m.timed_out_until = Some(Utc::now() + Duration::minutes(5));
        let p = perms_in(&channel(ChannelKind::Text, vec![]), &m);
        assert_eq!(p, Permissions::VIEW_CHANNEL | Permissions::READ_MESSAGE_HISTORY);
    }

    #[test]
    fn timeout_that_has_expired_is_ignored() {
        let mut m = member(ALICE, &[]);
        m.timed_out_until = Some(Utc::now() - Duration::seconds(1));
        assert!(perms_in(&channel(ChannelKind::Text, vec![]), &m).contains(Permissions::SEND_MESSAGES));
    }

    #[test]
    fn timeout_does_not_bind_administrators() {
        let mut m = member(ALICE, &[ADMIN_ROLE]);
        m.timed_out_until = Some(Utc::now() + Duration::minutes(5));
        assert_eq!(perms_in(&channel(ChannelKind::Text, vec![]), &m), Permissions::all());
    }

    #[test]
    fn overwrite_cannot_lift_a_timeout() {
        let mut m = member(ALICE, &[]);
        m.timed_out_until = Some(Utc::now() + Duration::minutes(5));
        let ch = channel(ChannelKind::Text, vec![ow_member(ALICE, Permissions::SEND_MESSAGES, Permissions::empty())]);
        assert!(!perms_in(&ch, &m).contains(Permissions::SEND_MESSAGES));
    }

    #[test]
    fn role_hierarchy_forbids_managing_equal_or_higher_roles() {
        let roles = roles();
        let g = GuildContext { guild_id: GUILD, owner_id: OWNER, roles: &roles };
        let now = Utc::now();
        let moderator = member(ALICE, &[MOD_ROLE]);
        let find = |id| roles.iter().find(|r| r.id == id).unwrap();
        assert!(can_manage_role(g, &moderator, find(MUTED_ROLE), now), "lower role");
        assert!(!can_manage_role(g, &moderator, find(MOD_ROLE), now), "own role");
        assert!(!can_manage_role(g, &moderator, find(ADMIN_ROLE), now), "higher role");
        assert!(can_manage_role(g, &member(OWNER, &[]), find(ADMIN_ROLE), now), "owner");
        assert!(!can_manage_role(g, &member(ALICE, &[MUTED_ROLE]), find(MUTED_ROLE), now), "no MANAGE_ROLES");
    }

    #[test]
    fn moderation_needs_a_higher_role_and_never_touches_the_owner() {
        let roles = roles();
        let g = GuildContext { guild_id: GUILD, owner_id: OWNER, roles: &roles };
        let now = Utc::now();
        let moderator = member(ALICE, &[MOD_ROLE]);
        let plain = member(Id::from_raw(3), &[]);
        let peer = member(Id::from_raw(4), &[MOD_ROLE]);
        let k = Permissions::KICK_MEMBERS;
        assert!(can_moderate(g, &moderator, &plain, k, now));
        assert!(!can_moderate(g, &moderator, &peer, k, now), "same level");
        assert!(!can_moderate(g, &moderator, &member(OWNER, &[]), k, now), "owner");
        assert!(!can_moderate(g, &plain, &member(Id::from_raw(5), &[]), k, now), "no permission");
        assert!(can_moderate(g, &member(OWNER, &[]), &peer, k, now), "owner acts on anyone");
        assert!(!can_moderate(g, &moderator, &moderator, k, now), "not on oneself");
    }

    #[test]
    fn permissions_serialize_as_decimal_strings_and_drop_unknown_bits() {
        let p = Permissions::VIEW_CHANNEL | Permissions::MODERATE_MEMBERS;
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{}\"", p.bits()));
        let back: Permissions = serde_json::from_str(&format!("\"{}\"", p.bits() | (1 << 62))).unwrap();
        assert_eq!(back, p);
    }
}
