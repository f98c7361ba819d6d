import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mediaLines, keepBundleTransport } from '../../assets/js/voice/sdp.js';

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

const cand = 'a=candidate:1 1 udp 2130706175 127.0.0.1 21328 typ host';
/** @param {string} group @param {string} firstPort */
const sfuOffer = (group, firstPort) => ['v=0', `a=group:BUNDLE ${group}`,
  `m=audio ${firstPort} UDP/TLS/RTP/SAVPF 111`, 'c=IN IP4 127.0.0.1', cand, 'a=mid:a', firstPort === '0' ? 'a=inactive' : 'a=sendonly',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=mid:b', 'a=sendonly', 'a=msid:2 2002', ''].join('\r\n');

test('when the SFU rejects the line that carries the transport, it stays in the bundle as inactive', () => {
  const out = keepBundleTransport(sfuOffer('b', '0'), 'a');
  assert.equal(out, sfuOffer('a b', '9').replace('a=sendonly\r\nm=audio 9', 'a=inactive\r\nm=audio 9'));
  assert.match(out, /m=audio 9 UDP\/TLS\/RTP\/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\na=candidate:1/, 'candidates kept on it');
});

test('a first offer whose first line is already rejected keeps that line (it holds the candidates)', () => {
  const out = keepBundleTransport(sfuOffer('b', '0'), undefined);
  assert.ok(out.includes('a=group:BUNDLE a b'));
  assert.ok(out.includes('m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1'));
});

test('offers that do not reject the transport line are left alone', () => {
  const live = sfuOffer('a b', '9');
  assert.equal(keepBundleTransport(live, 'a'), live);
  assert.equal(keepBundleTransport(live, undefined), live);
  assert.equal(keepBundleTransport(offer, '0'), offer, 'the tag line is live');
  const other = sfuOffer('a', '9').replace('m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0', 'm=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0');
  assert.equal(keepBundleTransport(other, 'a'), other, 'another line rejected: nothing to do');
});
