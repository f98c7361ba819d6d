// The audit log in words: an entry of `GET /guilds/{id}/audit-logs` becomes a sentence ("alice moved bob
// to 🔊 Lounge") and a readable line per change ("Slow mode: Off → 10s"). Pure: names come from a
// resolver the caller builds from the page's `users` and the store.

import { bits, permissionLabels } from './permissions.js';
import { slowModeLabel, durationText } from './slowmode.js';

/** Every action type the server records, with the filter's label, in the order the filter lists them. */
export const AUDIT_ACTIONS = /** @type {const} */ ([
  ['guild_update', 'Update server'],
  ['channel_create', 'Create channel'],
  ['channel_update', 'Update channel'],
  ['channel_delete', 'Delete channel'],
  ['channel_overwrite_update', 'Update channel permissions'],
  ['channel_overwrite_delete', 'Delete channel permissions'],
  ['member_kick', 'Kick member'],
  ['member_ban_add', 'Ban member'],
  ['member_ban_remove', 'Unban member'],
  ['member_update', 'Update member'],
  ['member_role_update', 'Update member roles'],
  ['member_move', 'Move member'],
  ['member_disconnect', 'Disconnect member'],
  ['role_create', 'Create role'],
  ['role_update', 'Update role'],
  ['role_delete', 'Delete role'],
  ['invite_create', 'Create invite'],
  ['invite_delete', 'Delete invite'],
  ['message_delete', 'Delete message'],
]);

/**
 * @typedef {{ key: string, old_value: any, new_value: any }} AuditChange
 * @typedef {{ id: string, guild_id: string, user_id: string, target_id: string|null, action_type: string, reason: string|null, changes: AuditChange[], created_at: string }} AuditEntry
 * @typedef {{
 *   user(id: string): string|undefined,
 *   channel(id: string): { name: string, kind?: string }|undefined,
 *   role(id: string): string|undefined,
 * }} Names
 * @typedef {string | { text: string, kind: 'user'|'channel'|'role'|'code' }} Part
 * @typedef {{ parts: Part[], text: string, changes: string[] }} Described
 */

/** The query string of one page. @param {{ limit?: number, before?: string|null, userId?: string|null, actionType?: string|null }} q */
export function auditQuery({ limit = 50, before = null, userId = null, actionType = null }) {
  const p = new URLSearchParams({ limit: String(limit) });
  if (before) p.set('before', before);
  if (userId) p.set('user_id', userId);
  if (actionType) p.set('action_type', actionType);
  return `?${p}`;
}

/** @param {AuditChange[]} changes @param {string} key */
const find = (changes, key) => changes.find((c) => c.key === key);

/** A channel's name as shown: #general, 🔊 Lounge, or the category's name. @param {{ name: string, kind?: string }} c */
const channelLabel = (c) => (c.kind === 'voice' ? `🔊 ${c.name}` : c.kind === 'category' ? c.name : `#${c.name}`);

/**
 * @param {AuditEntry} e @param {Names} names
 * @returns {Described}
 */
export function describeAuditEntry(e, names) {
  const changes = e.changes ?? [];
  const user = (/** @type {string|null|undefined} */ id) => ({ text: (id && names.user(id)) || (id ? `user ${id.slice(-4)}` : 'someone'), kind: /** @type {const} */ ('user') });
  const actor = user(e.user_id);
  const target = user(e.target_id);
  /** "channel #name" by id, else by the name the changes recorded (a deleted channel). @param {string|null|undefined} id @param {boolean} [word] @returns {Part[]} */
  const channel = (id, word = true) => {
    const known = id ? names.channel(id) : undefined;
    const name = find(changes, 'name');
    const kind = find(changes, 'kind');
    if (!known && !name) return ['a channel'];
    const c = known ?? { name: String(name?.new_value ?? name?.old_value), kind: kind?.new_value ?? kind?.old_value ?? undefined };
    const part = { text: channelLabel(c), kind: /** @type {const} */ ('channel') };
    return word ? ['channel ', part] : [part];
  };
  const role = (/** @type {string|null|undefined} */ id) => {
    const name = find(changes, 'name');
    return { text: (id && names.role(id)) || String(name?.new_value ?? name?.old_value ?? 'a role'), kind: /** @type {const} */ ('role') };
  };
  const code = (/** @type {'new_value'|'old_value'} */ side) => {
    const c = find(changes, 'code');
    return c?.[side] ?? c?.new_value ?? c?.old_value ?? e.target_id;
  };

  /** @type {Part[]} */
  let parts;
  switch (e.action_type) {
    case 'guild_update':
      parts = [actor, ' updated the server'];
      break;
    case 'channel_create':
      parts = [actor, ' created ', ...channel(e.target_id)];
      break;
    case 'channel_update': {
      const slow = find(changes, 'rate_limit_per_user');
      if (slow && changes.length === 1) {
        const secs = Number(slow.new_value) || 0;
        parts = secs
          ? [actor, ' set slow mode in ', ...channel(e.target_id, false), ` to ${slowModeLabel(secs)}`]
          : [actor, ' turned off slow mode in ', ...channel(e.target_id, false)];
      } else parts = [actor, ' updated ', ...channel(e.target_id)];
      break;
    }
    case 'channel_delete':
      parts = [actor, ' deleted ', ...channel(e.target_id)];
      break;
    case 'channel_overwrite_update':
      parts = [actor, ' updated permissions in ', ...channel(e.target_id, false)];
      break;
    case 'channel_overwrite_delete':
      parts = [actor, ' removed a permission overwrite from ', ...channel(e.target_id, false)];
      break;
    case 'member_kick':
      parts = [actor, ' kicked ', target];
      break;
    case 'member_ban_add':
      parts = [actor, ' banned ', target];
      break;
    case 'member_ban_remove':
      parts = [actor, ' unbanned ', target];
      break;
    case 'member_update':
      parts = memberUpdate(changes, actor, target);
      break;
    case 'member_role_update':
      parts = [actor, ' updated the roles of ', target];
      break;
    case 'member_move': {
      const to = find(changes, 'channel_id')?.new_value;
      const c = to ? names.channel(String(to)) : undefined;
      parts = c ? [actor, ' moved ', target, ' to ', { text: channelLabel({ ...c, kind: c.kind ?? 'voice' }), kind: 'channel' }] : [actor, ' moved ', target, ' to another voice channel'];
      break;
    }
    case 'member_disconnect':
      parts = [actor, ' disconnected ', target, ' from voice'];
      break;
    case 'role_create':
      parts = [actor, ' created role ', role(e.target_id)];
      break;
    case 'role_update':
      parts = [actor, ' updated role ', role(e.target_id)];
      break;
    case 'role_delete':
      parts = [actor, ' deleted role ', role(e.target_id)];
      break;
    case 'invite_create':
      parts = [actor, ' created invite ', { text: String(code('new_value') ?? ''), kind: 'code' }];
      break;
    case 'invite_delete':
      parts = [actor, ' revoked invite ', { text: String(code('old_value') ?? ''), kind: 'code' }];
      break;
    case 'message_delete': {
      const author = find(changes, 'author_id');
      const where = find(changes, 'channel_id');
      const authorId = author?.old_value ?? author?.new_value;
      const channelId = where?.old_value ?? where?.new_value;
      const c = channelId ? names.channel(String(channelId)) : undefined;
      parts = [actor, ' deleted a message'];
      if (authorId) parts.push(' by ', user(String(authorId)));
      if (c) parts.push(' in ', { text: channelLabel(c), kind: 'channel' });
      break;
    }
    default:
      parts = [actor, ` did ${String(e.action_type).replaceAll('_', ' ')}`];
  }
  const text = parts.map((p) => (typeof p === 'string' ? p : p.text)).join('');
  return { parts, text, changes: changes.map((c) => describeChange(c, names)) };
}

/** member_update in words, from what changed. @param {AuditChange[]} changes @param {Part} actor @param {Part} target @returns {Part[]} */
function memberUpdate(changes, actor, target) {
  const only = changes.length === 1 ? changes[0] : null;
  const both = (/** @type {string} */ key) => find(changes, key);
  const mute = both('mute');
  const deaf = both('deaf');
  if (mute && deaf && changes.length === 2) {
    return [actor, mute.new_value ? ' server muted and deafened ' : ' server unmuted and undeafened ', target];
  }
  switch (only?.key) {
    case 'mute':
      return [actor, only.new_value ? ' server muted ' : ' server unmuted ', target];
    case 'deaf':
      return [actor, only.new_value ? ' server deafened ' : ' server undeafened ', target];
    case 'nick':
      return [actor, ' changed the nickname of ', target];
    case 'timed_out_until':
      return only.new_value ? [actor, ' timed out ', target] : [actor, ' removed the timeout of ', target];
    default:
      return [actor, ' updated ', target];
  }
}

const KEY_LABELS = /** @type {Record<string, string>} */ ({
  name: 'Name',
  topic: 'Topic',
  kind: 'Type',
  position: 'Position',
  parent_id: 'Category',
  rate_limit_per_user: 'Slow mode',
  mute: 'Server mute',
  deaf: 'Server deafen',
  channel_id: 'Voice channel',
  nick: 'Nickname',
  roles: 'Roles',
  $add: 'Roles added',
  $remove: 'Roles removed',
  timed_out_until: 'Timeout until',
  permissions: 'Permissions',
  allow: 'Allowed',
  deny: 'Denied',
  color: 'Color',
  hoist: 'Shown separately',
  mentionable: 'Mentionable',
  code: 'Code',
  max_uses: 'Max uses',
  max_age_secs: 'Expires after',
  expires_at: 'Expires',
  overwrite_id: 'For',
  uses: 'Uses',
  id: 'Id',
  type: 'Type',
  author_id: 'Author',
  reason: 'Reason',
});

/** A key as a label: known ones by name, others by their words. @param {string} key */
export const changeLabel = (key) => KEY_LABELS[key] ?? key.replace(/^\$/, '').replaceAll('_', ' ').replace(/^./, (c) => c.toUpperCase());

/**
 * One change as a line: "Slow mode: Off → 10s", "Permissions: + Mute members, − Speak", "Name: general".
 * @param {AuditChange} c @param {Names} names
 */
export function describeChange(c, names) {
  const label = changeLabel(c.key);
  if (['permissions', 'allow', 'deny'].includes(c.key) && (c.old_value !== null || c.new_value !== null)) {
    const before = bits(c.old_value);
    const after = bits(c.new_value);
    const added = permissionLabels(after & ~before).map((l) => `+ ${l}`);
    const removed = permissionLabels(before & ~after).map((l) => `− ${l}`);
    const diff = [...added, ...removed];
    return `${label}: ${diff.length ? diff.join(', ') : 'no change'}`;
  }
  const fmt = (/** @type {any} */ v) => valueText(c.key, v, names);
  if (c.old_value === null || c.old_value === undefined) return `${label}: ${fmt(c.new_value)}`;
  if (c.new_value === null || c.new_value === undefined) return `${label}: ${fmt(c.old_value)} → none`;
  return `${label}: ${fmt(c.old_value)} → ${fmt(c.new_value)}`;
}

/** @param {string} key @param {any} v @param {Names} names @returns {string} */
function valueText(key, v, names) {
  if (v === null || v === undefined) return 'none';
  switch (key) {
    case 'rate_limit_per_user':
      return slowModeLabel(Number(v));
    case 'max_age_secs':
      return Number(v) ? durationText(Number(v)) : 'never';
    case 'max_uses':
      return Number(v) ? String(v) : 'no limit';
    case 'overwrite_id':
      return names.role(String(v)) ?? names.user(String(v)) ?? String(v);
    case 'channel_id':
    case 'parent_id': {
      const c = names.channel(String(v));
      return c ? channelLabel(c) : String(v);
    }
    case 'author_id':
      return names.user(String(v)) ?? String(v);
    case 'roles':
    case '$add':
    case '$remove':
      return Array.isArray(v)
        ? v.map((r) => (typeof r === 'object' && r ? r.name ?? names.role(String(r.id)) ?? String(r.id) : names.role(String(r)) ?? String(r))).join(', ') || 'none'
        : String(v);
    case 'color':
      return typeof v === 'number' ? `#${v.toString(16).padStart(6, '0')}` : String(v);
    default:
      if (typeof v === 'boolean') return v ? 'Yes' : 'No';
      // Times (timed_out_until, expires_at) in the reader's own clock.
      if (/(_at|_until)$/.test(key) && typeof v === 'string' && !Number.isNaN(Date.parse(v))) return new Date(v).toLocaleString();
      if (typeof v === 'object') return JSON.stringify(v);
      return String(v);
  }
}
