import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayClient } from '../../assets/js/gateway.js';

/** A socket the test drives: it records what the client sends and delivers frames on demand. */
function harness() {
  const sockets = [];
  const timers = [];
  const states = [];
  const events = [];
  const client = new GatewayClient({
    url: 'ws://test/gateway',
    token: () => 'tok',
    onDispatch: (t, d) => events.push([t, d]),
    onState: (s) => states.push(s),
    random: () => 0,
    socket: () => {
      const s = { sent: [], closed: null, send(d) { this.sent.push(JSON.parse(d)); }, close(c) { this.closed = c; }, onopen: null, onmessage: null, onclose: null, onerror: null };
      sockets.push(s);
      return s;
    },
    timers: {
      setTimeout: (fn, ms) => (timers.push({ fn, ms, kind: 'timeout' }), timers.length),
      clearTimeout: () => {},
      setInterval: (fn, ms) => (timers.push({ fn, ms, kind: 'interval' }), timers.length),
      clearInterval: (id) => { if (timers[id - 1]) timers[id - 1].cleared = true; },
    },
  });
  const frame = (s, f) => s.onmessage({ data: JSON.stringify(f) });
  return { client, sockets, timers, states, events, frame };
}

test('HELLO is answered with IDENTIFY and starts heartbeats at the given interval', () => {
  const h = harness();
  h.client.start();
  h.frame(h.sockets[0], { op: 10, d: { heartbeat_interval_ms: 5000 } });
  assert.deepEqual(h.sockets[0].sent, [{ op: 2, d: { token: 'tok' } }]);
  const hb = h.timers.find((t) => t.kind === 'interval');
  assert.equal(hb.ms, 5000);
  hb.fn();
  assert.deepEqual(h.sockets[0].sent.at(-1), { op: 1, d: { seq: 0 } });
});

test('dispatches advance the sequence; a dropped connection resumes from the last one seen', () => {
  const h = harness();
  h.client.start();
  h.frame(h.sockets[0], { op: 10, d: { heartbeat_interval_ms: 5000 } });
  h.frame(h.sockets[0], { op: 0, t: 'READY', s: 1, d: { session_id: 'S' } });
  h.frame(h.sockets[0], { op: 0, t: 'MESSAGE_CREATE', s: 2, d: { id: 'm' } });
  assert.deepEqual(h.events.map((e) => e[0]), ['READY', 'MESSAGE_CREATE']);
  h.sockets[0].onclose({ code: 1006 });
  assert.equal(h.states.at(-1), 'reconnecting');
  h.timers.filter((t) => t.kind === 'timeout').at(-1).fn();
  h.frame(h.sockets[1], { op: 10, d: { heartbeat_interval_ms: 5000 } });
  assert.deepEqual(h.sockets[1].sent[0], { op: 6, d: { token: 'tok', session_id: 'S', seq: 2 } });
  h.frame(h.sockets[1], { op: 0, t: 'MESSAGE_CREATE', s: 3, d: { id: 'missed' } });
  h.frame(h.sockets[1], { op: 0, t: 'RESUMED', s: 4, d: {} });
  assert.equal(h.states.at(-1), 'connected');
  assert.equal(h.client.seq, 4);
});

test('INVALID_SESSION makes the client identify afresh on the same connection', () => {
  const h = harness();
  h.client.sessionId = 'old';
  h.client.seq = 9;
  h.client.start();
  h.frame(h.sockets[0], { op: 10, d: { heartbeat_interval_ms: 5000 } });
  assert.equal(h.sockets[0].sent[0].op, 6);
  h.frame(h.sockets[0], { op: 9, d: { resumable: false } });
  assert.deepEqual(h.sockets[0].sent[1], { op: 2, d: { token: 'tok' } });
  assert.equal(h.client.seq, 0);
});

test('RECONNECT closes the socket and the next connection resumes', () => {
  const h = harness();
  h.client.start();
  h.frame(h.sockets[0], { op: 10, d: { heartbeat_interval_ms: 5000 } });
  h.frame(h.sockets[0], { op: 0, t: 'READY', s: 1, d: { session_id: 'S' } });
  h.frame(h.sockets[0], { op: 7, d: {} });
  assert.equal(h.sockets[0].closed, 4000);
  h.sockets[0].onclose({ code: 1012 });
  h.timers.filter((t) => t.kind === 'timeout').at(-1).fn();
  h.frame(h.sockets[1], { op: 10, d: { heartbeat_interval_ms: 5000 } });
  assert.equal(h.sockets[1].sent[0].op, 6);
});

test('a missed heartbeat ACK closes the connection so it can be resumed', () => {
  const h = harness();
  h.client.start();
  h.frame(h.sockets[0], { op: 10, d: { heartbeat_interval_ms: 5000 } });
  const hb = h.timers.find((t) => t.kind === 'interval');
  hb.fn();
  h.frame(h.sockets[0], { op: 11, d: {} });
  hb.fn();
  assert.equal(h.sockets[0].closed, null, 'acknowledged: still open');
  hb.fn();
  assert.equal(h.sockets[0].closed, 4009, 'no ACK for a whole interval');
});

test('authentication failure (4004) stops reconnecting and reports logged_out', () => {
  const h = harness();
  h.client.start();
  h.sockets[0].onclose({ code: 4004 });
  assert.equal(h.states.at(-1), 'logged_out');
  assert.equal(h.timers.filter((t) => t.kind === 'timeout').length, 0);
});

test('fatal close codes drop the session so the next connection identifies', () => {
  const h = harness();
  h.client.start();
  h.frame(h.sockets[0], { op: 10, d: { heartbeat_interval_ms: 5000 } });
  h.frame(h.sockets[0], { op: 0, t: 'READY', s: 1, d: { session_id: 'S' } });
  h.sockets[0].onclose({ code: 4002 });
  h.timers.filter((t) => t.kind === 'timeout').at(-1).fn();
  h.frame(h.sockets[1], { op: 10, d: { heartbeat_interval_ms: 5000 } });
  assert.equal(h.sockets[1].sent[0].op, 2);
});

test('reconnect delays back off and the banner turns to offline after repeated failures', () => {
  const h = harness();
  h.client.start();
  for (let i = 0; i < 4; i++) {
    h.sockets.at(-1).onclose({ code: 1006 });
    h.timers.filter((t) => t.kind === 'timeout').at(-1).fn();
  }
  const delays = h.timers.filter((t) => t.kind === 'timeout').map((t) => t.ms);
  assert.deepEqual(delays, [500, 1000, 2000, 4000]);
  assert.ok(h.states.includes('offline'));
});

test('garbage frames are ignored', () => {
  const h = harness();
  h.client.start();
  h.sockets[0].onmessage({ data: 'not json' });
  h.frame(h.sockets[0], { op: 99 });
  assert.deepEqual(h.sockets[0].sent, []);
});
