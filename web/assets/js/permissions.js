// Effective permissions, computed the way the server does (chat/src/permissions.rs), so the client can
// offer only what the user may do. The server enforces every permission anyway: this only decides what
// is shown. Pure: it reads the store's state shape and nothing else.
//
// Order (Discord's): the guild owner has everything; otherwise @everyone's permissions OR every role of
// the member; ADMINISTRATOR grants everything. In a channel the overwrites apply in three steps (the
// @everyone overwrite, then the member's role overwrites combined, then the member's own overwrite),
// each removing its deny and adding its allow. A member in timeout keeps only VIEW_CHANNEL and
// READ_MESSAGE_HISTORY. Without VIEW_CHANNEL a channel grants nothing; without CONNECT a voice channel
// grants no voice rights.

/** Bit numbers (Discord's values; bitfields travel as decimal strings). */
export const BIT = /** @type {const} */ ({
  CREATE_INVITE: 0n,
  KICK_MEMBERS: 1n,
  BAN_MEMBERS: 2n,
  ADMINISTRATOR: 3n,
  MANAGE_CHANNELS: 4n,
  MANAGE_GUILD: 5n,
  ADD_REACTIONS: 6n,
  VIEW_AUDIT_LOG: 7n,
  VIDEO: 9n,
  VIEW_CHANNEL: 10n,
  SEND_MESSAGES: 11n,
  MANAGE_MESSAGES: 13n,
  EMBED_LINKS: 14n,
  ATTACH_FILES: 15n,
  READ_MESSAGE_HISTORY: 16n,
  MENTION_EVERYONE: 17n,
  CONNECT: 20n,
  SPEAK: 21n,
  MUTE_MEMBERS: 22n,
  DEAFEN_MEMBERS: 23n,
  MOVE_MEMBERS: 24n,
  MANAGE_ROLES: 28n,
  MODERATE_MEMBERS: 40n,
});

/** @typedef {keyof typeof BIT} PermissionName */

/** One flag as a mask. @param {PermissionName} name */
export const flag = (name) => 1n << BIT[name];

/** Every permission (what the owner and administrators have). */
export const ALL = Object.values(BIT).reduce((a, b) => a | (1n << b), 0n);

/** [key, bit, label] for the settings checkboxes and for naming bits in the audit log, in display order. */
export const PERMISSION_LIST = /** @type {const} */ ([
  ['VIEW_CHANNEL', 10n, 'View channels'],
  ['SEND_MESSAGES', 11n, 'Send messages'],
  ['ATTACH_FILES', 15n, 'Attach files'],
  ['EMBED_LINKS', 14n, 'Embed links'],
  ['READ_MESSAGE_HISTORY', 16n, 'Read message history'],
  ['ADD_REACTIONS', 6n, 'Add reactions'],
  ['MENTION_EVERYONE', 17n, 'Mention @everyone'],
  ['MANAGE_MESSAGES', 13n, 'Manage messages'],
  ['CONNECT', 20n, 'Connect to voice'],
  ['SPEAK', 21n, 'Speak'],
  ['VIDEO', 9n, 'Video and screen share'],
  ['MUTE_MEMBERS', 22n, 'Mute members'],
  ['DEAFEN_MEMBERS', 23n, 'Deafen members'],
  ['MOVE_MEMBERS', 24n, 'Move members'],
  ['CREATE_INVITE', 0n, 'Create invites'],
  ['MANAGE_CHANNELS', 4n, 'Manage channels'],
  ['MANAGE_ROLES', 28n, 'Manage roles'],
  ['MANAGE_GUILD', 5n, 'Manage server'],
  ['VIEW_AUDIT_LOG', 7n, 'View audit log'],
  ['KICK_MEMBERS', 1n, 'Kick members'],
  ['BAN_MEMBERS', 2n, 'Ban members'],
  ['MODERATE_MEMBERS', 40n, 'Time out members'],
  ['ADMINISTRATOR', 3n, 'Administrator'],
]);

const TIMEOUT_KEEPS = flag('VIEW_CHANNEL') | flag('READ_MESSAGE_HISTORY');
const TEXT_ONLY = flag('SEND_MESSAGES') | flag('ATTACH_FILES') | flag('EMBED_LINKS') | flag('MANAGE_MESSAGES') | flag('READ_MESSAGE_HISTORY') | flag('MENTION_EVERYONE') | flag('ADD_REACTIONS');
const VOICE_NEEDS_CONNECT = flag('SPEAK') | flag('VIDEO') | flag('MUTE_MEMBERS') | flag('DEAFEN_MEMBERS') | flag('MOVE_MEMBERS');

/** A wire bitfield (decimal string or number) as a bigint; anything unparsable is 0. @param {unknown} v */
export function bits(v) {
  try {
    return typeof v === 'bigint' ? v : BigInt(/** @type {any} */ (v ?? 0));
  } catch {
    return 0n;
  }
}

/** @param {bigint} perms @param {PermissionName} name */
export const has = (perms, name) => (perms & flag(name)) !== 0n;

/**
 * @typedef {{ id: string, owner_id: string, roles?: { id: string, permissions: string|number, position?: number }[] }} GuildLike
 * @typedef {{ user?: { id: string }, user_id?: string, roles?: string[], timed_out_until?: string|null }} MemberLike
 * @typedef {{ kind: string, overwrites?: { id: string, kind: string, allow: string|number, deny: string|number }[] }} ChannelLike
 */

/** @param {MemberLike} m */
const userIdOf = (m) => m.user?.id ?? m.user_id ?? '';

/** @param {MemberLike} m @param {number} now */
const timedOut = (m, now) => !!m.timed_out_until && Date.parse(m.timed_out_until) > now;

/** Guild-wide permissions of a member. @param {GuildLike} guild @param {MemberLike} member */
export function basePermissions(guild, member, now = Date.now()) {
  if (userIdOf(member) === guild.owner_id) return ALL;
  const roles = guild.roles ?? [];
  const mine = new Set(member.roles ?? []);
  let perms = bits(roles.find((r) => r.id === guild.id)?.permissions);
  for (const r of roles) if (mine.has(r.id)) perms |= bits(r.permissions);
  if (has(perms, 'ADMINISTRATOR')) return ALL;
  if (timedOut(member, now)) perms &= TIMEOUT_KEEPS;
  return perms;
}

/** A member's permissions in one channel of the guild. @param {GuildLike} guild @param {ChannelLike} channel @param {MemberLike} member */
export function channelPermissions(guild, channel, member, now = Date.now()) {
  const base = basePermissions(guild, member, now);
  if (has(base, 'ADMINISTRATOR')) return ALL;
  const ows = channel.overwrites ?? [];
  const mine = new Set(member.roles ?? []);
  let perms = base;
  const everyone = ows.find((o) => o.kind === 'role' && o.id === guild.id);
  if (everyone) perms = (perms & ~bits(everyone.deny)) | bits(everyone.allow);
  let allow = 0n;
  let deny = 0n;
  for (const o of ows) {
    if (o.kind === 'role' && mine.has(o.id)) {
      allow |= bits(o.allow);
      deny |= bits(o.deny);
    }
  }
  perms = (perms & ~deny) | allow;
  const own = ows.find((o) => o.kind === 'member' && o.id === userIdOf(member));
  if (own) perms = (perms & ~bits(own.deny)) | bits(own.allow);
  if (timedOut(member, now)) perms &= TIMEOUT_KEEPS;
  if (!has(perms, 'VIEW_CHANNEL')) return 0n;
  if (channel.kind === 'voice' && !has(perms, 'CONNECT')) perms &= ~VOICE_NEEDS_CONNECT;
  if (channel.kind === 'category') perms &= ~TEXT_ONLY;
  return perms;
}

/**
 * What `userId` may do in a guild (or in one of its channels) by the client's state. A member whose
 * record is not loaded yet counts with @everyone only (the owner is known from the guild).
 * @param {{ guilds: Map<string, any>, channels: Map<string, any>, members: Map<string, Map<string, any>> }} state
 * @param {string|null|undefined} guildId @param {string|null|undefined} userId @param {string|null} [channelId]
 */
export function permissionsFor(state, guildId, userId, channelId = null, now = Date.now()) {
  const guild = guildId ? state.guilds.get(guildId) : null;
  if (!guild || !userId) return 0n;
  const member = state.members.get(guild.id)?.get(userId) ?? { user: { id: userId }, roles: [] };
  const channel = channelId ? state.channels.get(channelId) : null;
  return channel ? channelPermissions(guild, channel, member, now) : basePermissions(guild, member, now);
}

/** Names of the bits set in `mask`, by PERMISSION_LIST's labels. @param {bigint} mask */
export function permissionLabels(mask) {
  return PERMISSION_LIST.filter(([, bit]) => (mask >> bit) & 1n).map(([, , label]) => label);
}
