import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mediaLines, tileRequest, sameRequest, reconnectPlan } from '../../assets/js/voice/sdp.js';

const offer = [
  'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1 2',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', 'a=msid:7 7001', 'a=sendonly',
  'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', 'a=msid:7 7002', 'a=sendonly',
  'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:2', 'a=inactive',
  '',
].join('\r\n');

test('each subscribe media line maps to the participant and track in its msid', () => {
  const lines = mediaLines(offer);
  assert.deepEqual(lines.get('0'), { participantId: '7', trackId: '7001', kind: 'audio' });
  assert.deepEqual(lines.get('1'), { participantId: '7', trackId: '7002', kind: 'video' });
  assert.equal(lines.has('2'), false, 'a stopped line without msid maps to nothing');
});

test('a tile asks for its device-pixel size in 90 px steps; a hidden tile pauses', () => {
  assert.deepEqual(tileRequest('t', 320, 180, true), { type: 'subscribe', track_id: 't', max_width: 360, max_height: 180, paused: false });
  assert.deepEqual(tileRequest('t', 320, 180, true, 2), { type: 'subscribe', track_id: 't', max_width: 720, max_height: 360, paused: false });
  assert.deepEqual(tileRequest('t', 320, 180, false), { type: 'subscribe', track_id: 't', paused: true });
  assert.deepEqual(tileRequest('t', 0, 0, true), { type: 'subscribe', track_id: 't', paused: true });
  assert.equal(tileRequest('t', 99999, 99999, true).max_width, 4096);
});

test('identical requests are recognised so they are not sent twice', () => {
  assert.ok(sameRequest(tileRequest('t', 320, 180, true), tileRequest('t', 330, 175, true)));
  assert.ok(!sameRequest(tileRequest('t', 320, 180, true), tileRequest('t', 640, 360, true)));
  assert.ok(!sameRequest(null, tileRequest('t', 1, 1, true)));
});

test('a dropped socket resumes inside the 30 s window and rejoins after it', () => {
  assert.equal(reconnectPlan('s', 0, 5_000), 'resume');
  assert.equal(reconnectPlan('s', 0, 29_000), 'rejoin', 'too close to the end to be sure');
  assert.equal(reconnectPlan(null, 0, 1_000), 'rejoin');
});
