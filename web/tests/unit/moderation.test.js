import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memberMenuItems, movePatch } from '../../assets/js/moderation.js';
import { flag, ALL } from '../../assets/js/permissions.js';

const channels = [
  { id: 'v2', name: 'Lounge', position: 2 },
  { id: 'v1', name: 'General', position: 1 },
  { id: 'v3', name: 'AFK', position: 3 },
];
const ids = (items) => items.map((i) => i.id);

test('no moderation permission: no items (the menu and its button stay away)', () => {
  const perms = flag('VIEW_CHANNEL') | flag('SEND_MESSAGES') | flag('CONNECT');
  assert.deepEqual(memberMenuItems({ perms, voice: { channel_id: 'v1' }, voiceChannels: channels }), []);
});

test('each item needs its own bit', () => {
  const inVoice = { channel_id: 'v1', server_mute: false, server_deaf: false };
  assert.deepEqual(ids(memberMenuItems({ perms: flag('MUTE_MEMBERS'), voice: inVoice, voiceChannels: channels })), ['server-mute']);
  assert.deepEqual(ids(memberMenuItems({ perms: flag('DEAFEN_MEMBERS'), voice: inVoice, voiceChannels: channels })), ['server-deafen']);
  assert.deepEqual(ids(memberMenuItems({ perms: flag('MOVE_MEMBERS'), voice: inVoice, voiceChannels: channels })), ['move', 'disconnect']);
  assert.deepEqual(ids(memberMenuItems({ perms: ALL, voice: inVoice, voiceChannels: channels })), ['server-mute', 'server-deafen', 'move', 'disconnect']);
});

test('labels and bodies follow the current state', () => {
  const [mute, deaf] = memberMenuItems({ perms: ALL, voice: { channel_id: 'v1', server_mute: true, server_deaf: false }, voiceChannels: channels });
  assert.deepEqual([mute.label, mute.patch], ['Server unmute', { mute: false }]);
  assert.deepEqual([deaf.label, deaf.patch], ['Server deafen', { deaf: true }]);
  // Out of voice, the member record says it.
  const [m2, d2] = memberMenuItems({ perms: ALL, member: { mute: false, deaf: true }, voice: null, voiceChannels: channels });
  assert.deepEqual([m2.label, d2.label, d2.patch], ['Server mute', 'Server undeafen', { deaf: false }]);
});

test('move and disconnect only while the member is in voice; move lists the other channels in order', () => {
  assert.deepEqual(ids(memberMenuItems({ perms: ALL, member: {}, voice: null, voiceChannels: channels })), ['server-mute', 'server-deafen']);
  assert.deepEqual(ids(memberMenuItems({ perms: ALL, voice: { channel_id: null }, voiceChannels: channels })), ['server-mute', 'server-deafen']);
  const items = memberMenuItems({ perms: flag('MOVE_MEMBERS'), voice: { channel_id: 'v2' }, voiceChannels: channels });
  assert.deepEqual(items[0].targets, [{ id: 'v1', name: 'General' }, { id: 'v3', name: 'AFK' }]);
  assert.deepEqual(items[1].patch, { channel_id: null });
  assert.deepEqual(movePatch('v3'), { channel_id: 'v3' });
  // The only voice channel: nowhere to move to, but still a disconnect.
  assert.deepEqual(ids(memberMenuItems({ perms: flag('MOVE_MEMBERS'), voice: { channel_id: 'v1' }, voiceChannels: [channels[1]] })), ['disconnect']);
});
