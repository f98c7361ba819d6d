import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Roster, videoKind } from '../../assets/js/voice/roster.js';
import { qualityOf, serverStateText } from '../../assets/js/voice/panel.js';

const joined = {
  type: 'joined',
  participant_id: 'me',
  session_id: 's',
  participants: [
    { participant_id: 'p2', user_id: 'u2', tracks: [{ track_id: 't1', participant_id: 'p2', kind: 'audio', simulcast: false }], muted: false, deafened: false, server_muted: false },
  ],
  ice_servers: [],
};

test('joined lists the others; speaking maps participants to users, ours to our user id', () => {
  const r = new Roster();
  assert.equal(r.apply(joined), true);
  assert.equal(r.userOf('p2'), 'u2');
  assert.equal(r.apply({ type: 'speaking', participant_id: 'p2', speaking: true }), true);
  assert.equal(r.apply({ type: 'speaking', participant_id: 'p2', speaking: true }), false, 'no change, no notification');
  r.apply({ type: 'speaking', participant_id: 'me', speaking: true });
  assert.deepEqual([...r.speakingUserIds('u1')].sort(), ['u1', 'u2']);
  r.apply({ type: 'speaking', participant_id: 'p2', speaking: false });
  assert.deepEqual([...r.speakingUserIds('u1')], ['u1']);
  assert.equal(r.apply({ type: 'speaking', participant_id: 'stranger', speaking: true }), false);
});

test('participants come and go; a leaver stops speaking', () => {
  const r = new Roster();
  r.apply(joined);
  r.apply({ type: 'participant_joined', participant_id: 'p3', user_id: 'u3', tracks: [], muted: true, deafened: false, server_muted: false });
  assert.equal(r.participants.get('p3')?.muted, true);
  r.apply({ type: 'speaking', participant_id: 'p3', speaking: true });
  assert.equal(r.apply({ type: 'participant_left', participant_id: 'p3' }), true);
  assert.equal(r.participants.has('p3'), false);
  assert.equal(r.speakingUserIds('u1').has('u3'), false);
  assert.equal(r.apply({ type: 'participant_left', participant_id: 'p3' }), false);
});

test('tracks are published and unpublished; a single-layer video is a screen share', () => {
  const r = new Roster();
  r.apply(joined);
  r.apply({ type: 'track_published', track_id: 'cam', participant_id: 'p2', kind: 'video', simulcast: true });
  r.apply({ type: 'track_published', track_id: 'scr', participant_id: 'p2', kind: 'video', simulcast: false });
  assert.equal(r.apply({ type: 'track_published', track_id: 'scr', participant_id: 'p2', kind: 'video', simulcast: false }), false, 'duplicate');
  assert.equal(videoKind(r.track('cam')), 'camera');
  assert.equal(videoKind(r.track('scr')), 'screen');
  assert.equal(videoKind(undefined), 'camera', 'unknown yet: a camera until told otherwise');
  r.apply({ type: 'track_unpublished', track_id: 'scr', participant_id: 'p2' });
  assert.equal(r.track('scr'), undefined);
  assert.equal(r.participants.get('p2')?.tracks.length, 2);
});

test('mute state is kept per participant; a muted participant is not speaking', () => {
  const r = new Roster();
  r.apply(joined);
  r.apply({ type: 'speaking', participant_id: 'p2', speaking: true });
  r.apply({ type: 'mute', participant_id: 'p2', muted: true, deafened: true, server_muted: false });
  const p = r.participants.get('p2');
  assert.deepEqual([p?.muted, p?.deafened, p?.server_muted], [true, true, false]);
  assert.equal(r.speakingUserIds(null).size, 0);
});

test('a new joined (a rejoin) replaces everything', () => {
  const r = new Roster();
  r.apply(joined);
  r.apply({ type: 'speaking', participant_id: 'p2', speaking: true });
  r.apply({ ...joined, participant_id: 'me2', participants: [] });
  assert.equal(r.participants.size, 0);
  assert.equal(r.selfId, 'me2');
  assert.equal(r.speaking.size, 0);
});

test('connection quality from round trip and loss', () => {
  assert.equal(qualityOf(null, null), '');
  assert.equal(qualityOf(20, 0), 'good');
  assert.equal(qualityOf(20, 0.05), 'fair');
  assert.equal(qualityOf(200, null), 'fair');
  assert.equal(qualityOf(500, 0), 'poor');
  assert.equal(qualityOf(20, 0.2), 'poor');
});

test('server deafen is kept per participant; a mute message about ourselves sets our own server state', () => {
  const r = new Roster();
  r.apply(joined);
  r.apply({ type: 'mute', participant_id: 'p2', muted: false, deafened: false, server_muted: true, server_deafened: true });
  assert.deepEqual([r.participants.get('p2')?.server_muted, r.participants.get('p2')?.server_deafened], [true, true]);
  assert.deepEqual(r.self, { server_muted: false, server_deafened: false });
  r.apply({ type: 'speaking', participant_id: 'me', speaking: true });
  assert.equal(r.apply({ type: 'mute', participant_id: 'me', muted: false, deafened: false, server_muted: true, server_deafened: false }), true);
  assert.deepEqual(r.self, { server_muted: true, server_deafened: false });
  assert.equal(r.speaking.has('me'), false, 'a server-muted self is not speaking');
  assert.equal(r.participants.has('me'), false, 'we are not one of the others');
  r.apply({ ...joined, participant_id: 'me2' });
  assert.deepEqual(r.self, { server_muted: false, server_deafened: false }, 'a new session starts clean');
});

test('the panel says what a moderator imposed', () => {
  assert.equal(serverStateText(false, false), '');
  assert.equal(serverStateText(true, false), 'Server muted by a moderator');
  assert.equal(serverStateText(false, true), 'Server deafened by a moderator');
  assert.equal(serverStateText(true, true), 'Server muted and deafened by a moderator');
});
