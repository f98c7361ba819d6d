import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeAuditEntry, describeChange, auditQuery, AUDIT_ACTIONS, changeLabel } from '../../assets/js/audit.js';
import { flag } from '../../assets/js/permissions.js';

const users = { a: 'alice', b: 'bob' };
const chans = { t: { name: 'general', kind: 'text' }, v1: { name: 'General', kind: 'voice' }, v2: { name: 'Lounge', kind: 'voice' } };
const roles = { r: 'Mods' };
const names = { user: (id) => users[id], channel: (id) => chans[id], role: (id) => roles[id] };
const entry = (action_type, target_id, changes = [], extra = {}) => ({
  id: '9', guild_id: 'g', user_id: 'a', target_id, action_type, reason: null, changes, created_at: '2026-01-01T00:00:00.000Z', ...extra,
});
const say = (e) => describeAuditEntry(e, names).text;

test('voice moderation reads as sentences', () => {
  assert.equal(say(entry('member_update', 'b', [{ key: 'mute', old_value: false, new_value: true }])), 'alice server muted bob');
  assert.equal(say(entry('member_update', 'b', [{ key: 'mute', old_value: true, new_value: false }])), 'alice server unmuted bob');
  assert.equal(say(entry('member_update', 'b', [{ key: 'deaf', old_value: false, new_value: true }])), 'alice server deafened bob');
  assert.equal(say(entry('member_update', 'b', [{ key: 'deaf', old_value: true, new_value: false }])), 'alice server undeafened bob');
  assert.equal(say(entry('member_move', 'b', [{ key: 'channel_id', old_value: 'v1', new_value: 'v2' }])), 'alice moved bob to 🔊 Lounge');
  assert.equal(say(entry('member_move', 'b', [])), 'alice moved bob to another voice channel');
  assert.equal(say(entry('member_disconnect', 'b', [{ key: 'channel_id', old_value: 'v2', new_value: null }])), 'alice disconnected bob from voice');
});

test('members, channels, roles, invites and messages', () => {
  assert.equal(say(entry('member_kick', 'b')), 'alice kicked bob');
  assert.equal(say(entry('member_ban_add', 'b')), 'alice banned bob');
  assert.equal(say(entry('member_ban_remove', 'b')), 'alice unbanned bob');
  assert.equal(say(entry('member_update', 'b', [{ key: 'nick', old_value: null, new_value: 'B' }])), 'alice changed the nickname of bob');
  assert.equal(say(entry('member_update', 'b', [{ key: 'timed_out_until', old_value: null, new_value: '2026-01-02T00:00:00Z' }])), 'alice timed out bob');
  assert.equal(say(entry('member_role_update', 'b', [{ key: '$add', old_value: null, new_value: ['r'] }])), 'alice updated the roles of bob');
  assert.equal(say(entry('channel_create', 't', [{ key: 'name', old_value: null, new_value: 'general' }])), 'alice created channel #general');
  assert.equal(say(entry('channel_update', 'v2', [{ key: 'name', old_value: 'Lobby', new_value: 'Lounge' }])), 'alice updated channel 🔊 Lounge');
  // A deleted channel is no longer known: the changes name it.
  assert.equal(say(entry('channel_delete', 'gone', [{ key: 'name', old_value: 'old-stuff', new_value: null }, { key: 'kind', old_value: 'text', new_value: null }])), 'alice deleted channel #old-stuff');
  assert.equal(say(entry('channel_delete', 'gone', [])), 'alice deleted a channel');
  assert.equal(say(entry('channel_overwrite_update', 't')), 'alice updated permissions in #general');
  assert.equal(say(entry('channel_overwrite_delete', 't')), 'alice removed a permission overwrite from #general');
  assert.equal(say(entry('role_create', 'r')), 'alice created role Mods');
  assert.equal(say(entry('role_delete', 'x', [{ key: 'name', old_value: 'Old', new_value: null }])), 'alice deleted role Old');
  assert.equal(say(entry('invite_create', null, [{ key: 'code', old_value: null, new_value: 'abc123' }])), 'alice created invite abc123');
  assert.equal(say(entry('invite_delete', null, [{ key: 'code', old_value: 'abc123', new_value: null }])), 'alice revoked invite abc123');
  assert.equal(say(entry('message_delete', 'm1', [{ key: 'author_id', old_value: 'b', new_value: null }, { key: 'channel_id', old_value: 't', new_value: null }])), 'alice deleted a message by bob in #general');
  assert.equal(say(entry('guild_update', 'g', [{ key: 'name', old_value: 'A', new_value: 'B' }])), 'alice updated the server');
  assert.equal(say(entry('something_new', null)), 'alice did something new');
  assert.equal(say({ ...entry('member_kick', 'zzzz9999'), user_id: 'q1234' }), 'user 1234 kicked user 9999', 'unknown users by the end of their id');
});

test('slow mode changes have their own sentence', () => {
  assert.equal(say(entry('channel_update', 't', [{ key: 'rate_limit_per_user', old_value: 0, new_value: 10 }])), 'alice set slow mode in #general to 10s');
  assert.equal(say(entry('channel_update', 't', [{ key: 'rate_limit_per_user', old_value: 10, new_value: 0 }])), 'alice turned off slow mode in #general');
});

test('parts mark the names so the view can emphasise them', () => {
  const d = describeAuditEntry(entry('member_move', 'b', [{ key: 'channel_id', old_value: 'v1', new_value: 'v2' }]), names);
  assert.deepEqual(d.parts, [{ text: 'alice', kind: 'user' }, ' moved ', { text: 'bob', kind: 'user' }, ' to ', { text: '🔊 Lounge', kind: 'channel' }]);
  assert.deepEqual(d.changes, ['Voice channel: 🔊 General → 🔊 Lounge']);
});

test('changes read as "label: before → after"', () => {
  const c = (key, old_value, new_value) => describeChange({ key, old_value, new_value }, names);
  assert.equal(c('rate_limit_per_user', 0, 10), 'Slow mode: Off → 10s');
  assert.equal(c('mute', false, true), 'Server mute: No → Yes');
  assert.equal(c('name', null, 'general'), 'Name: general');
  assert.equal(c('topic', 'old', null), 'Topic: old → none');
  assert.equal(c('channel_id', 'v2', null), 'Voice channel: 🔊 Lounge → none');
  assert.equal(c('permissions', String(flag('SPEAK')), String(flag('MUTE_MEMBERS'))), 'Permissions: + Mute members, − Speak');
  assert.equal(c('$add', null, ['r', 'unknown']), 'Roles added: Mods, unknown');
  assert.equal(c('color', 0, 0xff0000), 'Color: #000000 → #ff0000');
  assert.equal(c('max_age_secs', null, 604800), 'Expires after: 168 h');
  assert.equal(c('something_else', { a: 1 }, [1, 2]), 'Something else: {"a":1} → [1,2]');
  assert.equal(changeLabel('$remove'), 'Roles removed');
  assert.equal(c('max_uses', null, null), 'Max uses: none');
  assert.equal(c('max_uses', null, 0), 'Max uses: no limit');
  assert.equal(c('max_uses', null, 5), 'Max uses: 5');
  assert.equal(c('overwrite_id', null, 'r'), 'For: Mods');
  assert.equal(c('overwrite_id', 'b', null), 'For: bob → none');
  const when = '2026-12-14T06:47:47.565Z';
  assert.equal(c('expires_at', null, when), `Expires: ${new Date(when).toLocaleString()}`);
  assert.equal(c('name', null, '2026-01-01T00:00 is not a date here'), 'Name: 2026-01-01T00:00 is not a date here');
});

test('the page query carries only the filters that are set', () => {
  assert.equal(auditQuery({}), '?limit=50');
  assert.equal(auditQuery({ limit: 50, before: '123', actionType: 'member_move' }), '?limit=50&before=123&action_type=member_move');
  assert.equal(auditQuery({ userId: '7', actionType: null }), '?limit=50&user_id=7');
});

test('the filter lists all nineteen action types the server records', () => {
  assert.equal(AUDIT_ACTIONS.length, 19);
  assert.equal(new Set(AUDIT_ACTIONS.map(([a]) => a)).size, 19);
  for (const [a] of AUDIT_ACTIONS) assert.doesNotMatch(say(entry(a, 'b')), / did /, `${a} has a sentence of its own`);
});
