import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cooldowns, SLOW_MODE_CHOICES, slowModeLabel, durationText, countdownText } from '../../assets/js/slowmode.js';

test('the choices run from Off to six hours and read as short labels', () => {
  assert.deepEqual(SLOW_MODE_CHOICES.map(slowModeLabel), ['Off', '5s', '10s', '15s', '30s', '1m', '2m', '5m', '10m', '15m', '30m', '1h', '2h', '6h']);
  assert.equal(slowModeLabel(45), '45s');
  assert.equal(slowModeLabel(90), '90s');
  assert.equal(slowModeLabel(5400), '90m');
});

test('durations and countdowns read naturally', () => {
  assert.equal(durationText(10), '10 s');
  assert.equal(durationText(60), '1 min');
  assert.equal(durationText(3660), '1 h 1 min');
  assert.equal(durationText(21600), '6 h');
  assert.equal(countdownText(7), '7 s');
  assert.equal(countdownText(65), '1:05');
  assert.equal(countdownText(3723), '1:02:03');
  assert.equal(countdownText(0.2), '1 s', 'a part of a second still counts as one');
});

test('off: nothing shown, nothing blocked', () => {
  const c = new Cooldowns();
  assert.deepEqual(c.view('ch', 0, false, 0), { hidden: true, blocked: false, exempt: false, remaining: 0, refused: false, text: '' });
});

test('on: the setting is shown; after a send the countdown blocks, then lets go', () => {
  const c = new Cooldowns();
  let v = c.view('ch', 10, false, 1000);
  assert.equal(v.text, 'Slow mode: 10 s');
  assert.equal(v.blocked, false);
  c.sent('ch', 10, 1000);
  v = c.view('ch', 10, false, 1000);
  assert.deepEqual([v.blocked, v.remaining, v.text], [true, 10, 'Slow mode: wait 10 s']);
  v = c.view('ch', 10, false, 4500);
  assert.deepEqual([v.blocked, v.remaining, v.text], [true, 7, 'Slow mode: wait 7 s']);
  assert.equal(c.anyRunning(4500), true);
  assert.equal(c.view('other', 10, false, 4500).blocked, false, 'per channel');
  v = c.view('ch', 10, false, 11_000);
  assert.deepEqual([v.blocked, v.remaining, v.text], [false, 0, 'Slow mode: 10 s']);
  assert.equal(c.anyRunning(11_000), false);
});

test('exempt members see that slow mode is on and are never blocked', () => {
  const c = new Cooldowns();
  c.sent('ch', 30, 0);
  const v = c.view('ch', 30, true, 1000);
  assert.equal(v.blocked, false);
  assert.equal(v.exempt, true);
  assert.match(v.text, /exempt/);
});

test("the server's refusal sets the wait from Retry-After, even before the channel update arrives", () => {
  const c = new Cooldowns();
  c.refused('ch', 8, 0);
  let v = c.view('ch', 0, false, 500);
  assert.deepEqual([v.hidden, v.blocked, v.refused, v.remaining], [false, true, true, 8]);
  assert.equal(v.text, 'Slow mode is on: you can send again in 8 s');
  v = c.view('ch', 0, false, 8000);
  assert.equal(v.hidden, true);
  c.refused('ch', 0, 0);
  assert.equal(c.remaining('ch', 0), 1, 'a missing or zero Retry-After still waits a second');
  c.clear('ch');
  assert.equal(c.remaining('ch', 0), 0);
});

test('a long wait counts down in minutes', () => {
  const c = new Cooldowns();
  c.sent('ch', 300, 0);
  assert.equal(c.view('ch', 300, false, 1000).text, 'Slow mode: wait 4:59');
  assert.equal(c.view('ch', 300, false, 299_500).text, 'Slow mode: wait 1 s');
});
