import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basePermissions, channelPermissions, permissionsFor, has, flag, ALL, bits, permissionLabels } from '../../assets/js/permissions.js';

const everyone = (perms) => ({ id: 'g', name: '@everyone', permissions: String(perms), position: 0 });
const DEFAULT = flag('VIEW_CHANNEL') | flag('SEND_MESSAGES') | flag('READ_MESSAGE_HISTORY') | flag('CONNECT') | flag('SPEAK');
const guild = {
  id: 'g',
  owner_id: 'owner',
  roles: [
    everyone(DEFAULT),
    { id: 'mod', name: 'Mod', permissions: String(flag('MUTE_MEMBERS') | flag('MOVE_MEMBERS')), position: 2 },
    { id: 'admin', name: 'Admin', permissions: String(flag('ADMINISTRATOR')), position: 3 },
  ],
};
const member = (id, roles = [], extra = {}) => ({ user: { id, username: id }, roles, ...extra });

test('the owner and administrators have everything; others have @everyone plus their roles', () => {
  assert.equal(basePermissions(guild, member('owner')), ALL);
  assert.equal(basePermissions(guild, member('a', ['admin'])), ALL);
  const plain = basePermissions(guild, member('p'));
  assert.equal(plain, DEFAULT);
  assert.equal(has(plain, 'MUTE_MEMBERS'), false);
  const mod = basePermissions(guild, member('m', ['mod']));
  assert.ok(has(mod, 'MUTE_MEMBERS') && has(mod, 'MOVE_MEMBERS') && has(mod, 'SEND_MESSAGES'));
  assert.equal(has(mod, 'DEAFEN_MEMBERS'), false);
});

test('a member in timeout keeps only viewing and reading', () => {
  const later = new Date(Date.now() + 60_000).toISOString();
  const p = basePermissions(guild, member('m', ['mod'], { timed_out_until: later }));
  assert.equal(p, flag('VIEW_CHANNEL') | flag('READ_MESSAGE_HISTORY'));
  const past = new Date(Date.now() - 60_000).toISOString();
  assert.ok(has(basePermissions(guild, member('m', ['mod'], { timed_out_until: past })), 'MUTE_MEMBERS'));
});

test('channel overwrites: @everyone, then roles combined, then the member; no view means nothing', () => {
  const text = {
    kind: 'text',
    overwrites: [
      { id: 'g', kind: 'role', allow: '0', deny: String(flag('SEND_MESSAGES')) },
      { id: 'mod', kind: 'role', allow: String(flag('MANAGE_MESSAGES')), deny: '0' },
      { id: 'm2', kind: 'member', allow: String(flag('SEND_MESSAGES')), deny: '0' },
    ],
  };
  assert.equal(has(channelPermissions(guild, text, member('p')), 'SEND_MESSAGES'), false);
  const mod = channelPermissions(guild, text, member('m', ['mod']));
  assert.ok(has(mod, 'MANAGE_MESSAGES'));
  assert.equal(has(mod, 'SEND_MESSAGES'), false);
  assert.ok(has(channelPermissions(guild, text, member('m2')), 'SEND_MESSAGES'));
  const hidden = { kind: 'text', overwrites: [{ id: 'g', kind: 'role', allow: '0', deny: String(flag('VIEW_CHANNEL')) }] };
  assert.equal(channelPermissions(guild, hidden, member('p')), 0n);
  assert.equal(channelPermissions(guild, hidden, member('owner')), ALL, 'the owner sees everything');
});

test('a voice channel without CONNECT grants no voice rights', () => {
  const voice = { kind: 'voice', overwrites: [{ id: 'g', kind: 'role', allow: '0', deny: String(flag('CONNECT')) }] };
  const p = channelPermissions(guild, voice, member('m', ['mod']));
  assert.equal(has(p, 'SPEAK'), false);
  assert.equal(has(p, 'MUTE_MEMBERS'), false);
  assert.ok(has(p, 'VIEW_CHANNEL'));
});

test('permissionsFor reads the store state; an unloaded member counts with @everyone only', () => {
  const state = {
    guilds: new Map([['g', guild]]),
    channels: new Map([['c', { id: 'c', guild_id: 'g', kind: 'text', overwrites: [] }]]),
    members: new Map([['g', new Map([['m', member('m', ['mod'])]])]]),
  };
  assert.ok(has(permissionsFor(state, 'g', 'm'), 'MOVE_MEMBERS'));
  assert.equal(permissionsFor(state, 'g', 'unknown'), DEFAULT);
  assert.equal(permissionsFor(state, 'g', 'owner', 'c'), ALL);
  assert.equal(permissionsFor(state, 'nope', 'm'), 0n);
  assert.equal(permissionsFor(state, null, 'm'), 0n);
});

test('bitfields parse from strings and numbers; bad ones are 0; labels name the bits', () => {
  assert.equal(bits('4194304'), flag('MUTE_MEMBERS'));
  assert.equal(bits(16), flag('MANAGE_CHANNELS'));
  assert.equal(bits('nonsense'), 0n);
  assert.equal(bits(null), 0n);
  assert.deepEqual(permissionLabels(flag('MUTE_MEMBERS') | flag('VIEW_AUDIT_LOG')), ['Mute members', 'View audit log']);
});
