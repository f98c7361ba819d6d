import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tileRequest, sameRequest, TileRequests } from '../../assets/js/voice/subscriptions.js';

/** Manual timers: run() fires what is due at `now`. */
function fakeTimers() {
  let now = 0;
  let seq = 0;
  const due = new Map();
  return {
    setTimeout: (fn, ms) => (due.set(++seq, { fn, at: now + ms }), seq),
    clearTimeout: (id) => due.delete(id),
    advance(ms) {
      now += ms;
      for (const [id, t] of [...due].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at <= now) {
          due.delete(id);
          t.fn();
        }
      }
    },
  };
}

test('a tile asks for its device-pixel size in 90 px steps; a hidden tile pauses', () => {
  assert.deepEqual(tileRequest('t', 320, 180, true), { type: 'subscribe', track_id: 't', max_width: 360, max_height: 180, paused: false });
  assert.deepEqual(tileRequest('t', 320, 180, true, 2), { type: 'subscribe', track_id: 't', max_width: 720, max_height: 360, paused: false });
  assert.deepEqual(tileRequest('t', 320, 180, false), { type: 'subscribe', track_id: 't', paused: true });
  assert.deepEqual(tileRequest('t', 0, 0, true), { type: 'subscribe', track_id: 't', paused: true });
  assert.deepEqual(tileRequest('t', NaN, 10, true), { type: 'subscribe', track_id: 't', paused: true });
  assert.equal(tileRequest('t', 99999, 99999, true).max_width, 4096);
});

test('identical requests are recognised', () => {
  assert.ok(sameRequest(tileRequest('t', 320, 180, true), tileRequest('t', 330, 175, true)));
  assert.ok(!sameRequest(tileRequest('t', 320, 180, true), tileRequest('t', 640, 360, true)));
  assert.ok(!sameRequest(tileRequest('t', 320, 180, true), tileRequest('t', 320, 180, false)));
  assert.ok(!sameRequest(tileRequest('a', 320, 180, true), tileRequest('b', 320, 180, true)));
  assert.ok(!sameRequest(null, tileRequest('t', 1, 1, true)));
});

test('a burst of resizes sends one request, after the tile settles', () => {
  const timers = fakeTimers();
  const sent = [];
  const r = new TileRequests({ send: (m) => (sent.push(m), true), delayMs: 250, timers });
  let size = { width: 100, height: 60, visible: true };
  for (let w = 100; w <= 600; w += 50) {
    size = { width: w, height: w * 0.5625, visible: true };
    r.update('t', () => size);
    timers.advance(100);
  }
  assert.equal(sent.length, 0, 'nothing while still resizing');
  timers.advance(250);
  assert.deepEqual(sent, [{ type: 'subscribe', track_id: 't', max_width: 630, max_height: 360, paused: false }]);
});

test('an unchanged request is not sent again; a change and a pause are', () => {
  const timers = fakeTimers();
  const sent = [];
  const r = new TileRequests({ send: (m) => (sent.push(m), true), delayMs: 10, timers });
  let m = { width: 320, height: 180, visible: true };
  r.update('t', () => m);
  timers.advance(10);
  m = { width: 318, height: 179, visible: true };
  r.update('t', () => m);
  timers.advance(10);
  assert.equal(sent.length, 1, 'same 90 px step: not sent');
  m = { width: 320, height: 180, visible: false };
  r.update('t', () => m);
  timers.advance(10);
  assert.deepEqual(sent.at(-1), { type: 'subscribe', track_id: 't', paused: true });
  m = { width: 320, height: 180, visible: true };
  r.update('t', () => m);
  timers.advance(10);
  assert.equal(sent.length, 3);
  assert.equal(sent.at(-1).paused, false);
});

test('tracks are debounced independently', () => {
  const timers = fakeTimers();
  const sent = [];
  const r = new TileRequests({ send: (m) => (sent.push(m), true), delayMs: 100, timers });
  r.update('a', () => ({ width: 100, height: 100, visible: true }));
  timers.advance(50);
  r.update('b', () => ({ width: 200, height: 200, visible: true }));
  timers.advance(50);
  assert.deepEqual(sent.map((m) => m.track_id), ['a']);
  timers.advance(50);
  assert.deepEqual(sent.map((m) => m.track_id), ['a', 'b']);
});

test('a request that could not be sent (socket down) goes out on flush; flush(true) resends all', () => {
  const timers = fakeTimers();
  const sent = [];
  let up = false;
  const r = new TileRequests({ send: (m) => up && (sent.push(m), true), delayMs: 10, timers });
  r.update('t', () => ({ width: 320, height: 180, visible: true }));
  timers.advance(10);
  assert.equal(sent.length, 0);
  up = true;
  r.flush();
  assert.equal(sent.length, 1);
  r.flush();
  assert.equal(sent.length, 1, 'unchanged: not resent');
  r.flush(true);
  assert.equal(sent.length, 2, 'forced after a resume');
});

test('a forgotten tile sends nothing, even if its timer was pending', () => {
  const timers = fakeTimers();
  const sent = [];
  const r = new TileRequests({ send: (m) => (sent.push(m), true), delayMs: 10, timers });
  r.update('t', () => ({ width: 320, height: 180, visible: true }));
  r.forget('t');
  timers.advance(100);
  assert.equal(sent.length, 0);
});
