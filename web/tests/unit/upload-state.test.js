import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uploadReducer, uploadView, IDLE, active } from '../../assets/js/upload-state.js';

/** Runs events from IDLE. @param {...any} events */
const run = (...events) => events.reduce(uploadReducer, IDLE);

test('idle shows nothing', () => {
  const v = uploadView(IDLE);
  assert.equal(v.visible, false);
  assert.equal(active(IDLE), false);
});

test('an upload runs from 0 % to processing to done', () => {
  let s = run({ type: 'start', files: 2, total: 2048, label: '#general' });
  assert.equal(s.phase, 'uploading');
  assert.equal(active(s), true);
  let v = uploadView(s);
  assert.deepEqual([v.visible, v.value, v.max, v.percent, v.cancellable], [true, 0, 2048, 0, true]);
  assert.equal(v.text, 'Uploading 2 files to #general: 0% (0 B of 2 KB)');

  // The browser's total (with the multipart framing) replaces the estimate.
  s = uploadReducer(s, { type: 'progress', loaded: 1100, total: 2200 });
  v = uploadView(s);
  assert.deepEqual([v.value, v.max, v.percent], [1100, 2200, 50]);
  // Progress never goes back.
  s = uploadReducer(s, { type: 'progress', loaded: 900, total: 2200 });
  assert.equal(uploadView(s).value, 1100);
  // A total of 0 (not computable) keeps the known one.
  s = uploadReducer(s, { type: 'progress', loaded: 1500, total: 0 });
  assert.deepEqual([uploadView(s).value, uploadView(s).max], [1500, 2200]);

  s = uploadReducer(s, { type: 'sent' });
  assert.equal(s.phase, 'processing');
  v = uploadView(s);
  assert.deepEqual([v.value, v.max, v.percent, v.cancellable], [2200, 2200, 100, true]);
  assert.equal(v.text, 'Uploading 2 files to #general: processing…');
  assert.equal(active(s), true);

  s = uploadReducer(s, { type: 'done' });
  assert.equal(s, IDLE);
});

test('cancel ends it; late events change nothing', () => {
  let s = run({ type: 'start', files: 1, total: 100 }, { type: 'progress', loaded: 40 }, { type: 'cancel' });
  assert.equal(s.phase, 'cancelled');
  assert.equal(active(s), false);
  const v = uploadView(s);
  assert.deepEqual([v.visible, v.cancellable, v.error], [true, false, null]);
  assert.equal(v.text, 'Upload of 1 file cancelled.');
  for (const e of [{ type: 'progress', loaded: 90 }, { type: 'sent' }, { type: 'done' }, { type: 'error', error: 'x' }, { type: 'cancel' }]) {
    assert.equal(uploadReducer(s, /** @type {any} */ (e)), s, e.type);
  }
  assert.equal(uploadReducer(s, { type: 'reset' }), IDLE);
});

test('a failure carries the reason; a new upload may start from it', () => {
  let s = run({ type: 'start', files: 3, total: 10 }, { type: 'sent' }, { type: 'error', error: 'You have used up your upload quota.' });
  assert.equal(s.phase, 'failed');
  const v = uploadView(s);
  assert.equal(v.error, 'You have used up your upload quota.');
  assert.equal(v.text, 'Upload of 3 files failed.');
  assert.equal(v.cancellable, false);
  s = uploadReducer(s, { type: 'start', files: 1, total: 5 });
  assert.equal(s.phase, 'uploading');
});

test('a second start during an upload is ignored; events before a start are too', () => {
  const s = run({ type: 'start', files: 1, total: 10 }, { type: 'progress', loaded: 5 });
  assert.equal(uploadReducer(s, { type: 'start', files: 9, total: 999 }), s);
  assert.equal(run({ type: 'progress', loaded: 5 }), IDLE);
  assert.equal(run({ type: 'sent' }), IDLE);
  assert.equal(run({ type: 'cancel' }), IDLE);
  assert.equal(run({ type: 'error', error: 'x' }), IDLE);
});

test('an empty upload (zero bytes) does not divide by zero', () => {
  const v = uploadView(run({ type: 'start', files: 1, total: 0 }));
  assert.deepEqual([v.value, v.max, v.percent], [0, 1, 0]);
});
