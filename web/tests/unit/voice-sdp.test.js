import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mediaLines } from '../../assets/js/voice/sdp.js';

const offer = [
  'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1 2',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', 'a=msid:7 7001', 'a=sendonly',
  'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', 'a=msid:7 7002', 'a=sendonly',
  'm=video 0 UDP/TLS/RTP/SAVPF 96', 'a=mid:2', 'a=inactive',
  '',
].join('\r\n');

test('each subscribe media line maps to the participant and track in its msid', () => {
  const lines = mediaLines(offer);
  assert.deepEqual(lines.get('0'), { participantId: '7', trackId: '7001', kind: 'audio' });
  assert.deepEqual(lines.get('1'), { participantId: '7', trackId: '7002', kind: 'video' });
  assert.equal(lines.has('2'), false, 'a stopped line without msid maps to nothing');
});

test('LF-only SDP and mids that are not numbers parse too', () => {
  const lines = mediaLines('v=0\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=mid:cam\na=msid:p1 t9\n');
  assert.deepEqual(lines.get('cam'), { participantId: 'p1', trackId: 't9', kind: 'video' });
});

test('no media lines, no entries', () => {
  assert.equal(mediaLines('v=0\r\ns=-\r\n').size, 0);
});
