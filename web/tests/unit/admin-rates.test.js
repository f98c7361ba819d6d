import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rate, mean, derive, human } from '../../assets/js/admin/rates.js';

const snap = (t, over = {}) => ({
  time: new Date(t * 1000).toISOString(),
  process: { cpu_seconds_total: 10 + t * 0.5, resident_memory_bytes: 50e6, open_fds: 30 },
  gateway: { connections: 3, dispatches_total: 0, slow_consumers_total: 0 },
  chat: { messages_total: 100 + t * 4 },
  voice: { sessions: 2, joins_total: 2, join_latency_count: 2, join_latency_sum_seconds: 0.2 },
  sfu: { rooms: 1, participants: 2, tracks: 2, packets_in_total: 0, packets_out_total: 0, bytes_in_total: 1000 * t, bytes_out_total: 2000 * t, forwarded_total: 100 * t, nacks_total: 0, keyframe_requests_total: 0 },
  store: { backend: 'sqlite', ops: [{ op: 'insert_message', count: 10 * t, sum_seconds: 0.002 * t }] },
  rooms: [{ room_id: '1', worker: 0, participants: [
    { participant_id: '1', user_id: '1', username: 'a', published_tracks: 1, rtt_ms: 10, loss_in: 0.02, loss_out: null, jitter_ms: 1, bwe_bps: null, subscriptions: [] },
    { participant_id: '2', user_id: '2', username: 'b', published_tracks: 1, rtt_ms: 30, loss_in: 0, loss_out: 0.04, jitter_ms: null, bwe_bps: 1e6, subscriptions: [{ track_id: '9', layer: 'h' }] },
  ] }],
  ...over,
});

test('rates are per second; a counter that went backwards (restart) counts from zero', () => {
  assert.equal(rate(100, 300, 2), 100);
  assert.equal(rate(500, 20, 1), 20);
  assert.equal(rate(null, 50, 1), 50);
  assert.equal(rate(1, 2, 0), 0);
});

test('means ignore nulls and non-numbers', () => {
  assert.equal(mean([1, null, 3, undefined, NaN]), 2);
  assert.equal(mean([null]), null);
});

test('two snapshots give rates, bitrates in bits, CPU in percent and store latency per op', () => {
  const d = derive(snap(10), snap(12));
  assert.equal(d.forwardedPerSec, 100);
  assert.equal(d.bitrateInBps, 8000);
  assert.equal(d.bitrateOutBps, 16000);
  assert.equal(d.messagesPerSec, 4);
  assert.equal(Math.round(d.cpuPct), 50);
  assert.equal(d.rssMb, 50);
  assert.equal(d.rttMs, 20);
  assert.equal(d.lossPct, 2);
  assert.ok(Math.abs(d.storeMs.insert_message - 0.2) < 1e-9);
});

test('the first snapshot has gauges but no rates', () => {
  const d = derive(null, snap(5));
  assert.equal(d.participants, 2);
  assert.equal(d.forwardedPerSec, 0);
});

test('human units', () => {
  assert.equal(human(1500), '1.5k');
  assert.equal(human(2_300_000), '2.3M');
  assert.equal(human(12), '12');
});
