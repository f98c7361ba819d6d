import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApi, reasonHeader, ApiError } from '../../assets/js/api.js';

/** A fetch that answers from a list and records the requests. */
function fakeFetch(answers) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    calls.push({ url, init });
    const a = answers.shift();
    return {
      status: a.status,
      ok: a.status >= 200 && a.status < 300,
      headers: { get: (k) => a.headers?.[k] ?? null },
      text: async () => (a.body === undefined ? '' : JSON.stringify(a.body)),
    };
  };
  return { fetchImpl, calls };
}
const memory = () => {
  const m = new Map();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v), removeItem: (k) => m.delete(k) };
};

test('a reason travels percent-encoded in X-Audit-Log-Reason, cut at 512 characters', async () => {
  const { fetchImpl, calls } = fakeFetch([{ status: 200, body: {} }, { status: 204 }]);
  const api = createApi({ fetchImpl, storage: memory() });
  await api.patch('/guilds/1/members/2', { mute: true }, { reason: 'spam links 🙃' });
  assert.equal(calls[0].init.headers['X-Audit-Log-Reason'], 'spam%20links%20%F0%9F%99%83');
  await api.del('/guilds/1/members/2');
  assert.equal(calls[1].init.headers['X-Audit-Log-Reason'], undefined, 'no reason, no header');
  assert.equal(decodeURIComponent(/** @type {string} */ (reasonHeader('é'.repeat(600)))).length, 512);
  assert.equal(decodeURIComponent(/** @type {string} */ (reasonHeader('🙃'.repeat(600)))), '🙃'.repeat(512), 'never cut inside a character');
  assert.equal(reasonHeader('   '), null);
  assert.equal(reasonHeader(null), null);
});

test('a slow_mode 429 is not retried: the caller gets the wait', async () => {
  const slept = [];
  const { fetchImpl, calls } = fakeFetch([{ status: 429, headers: { 'Retry-After': '7' }, body: { code: 'slow_mode', message: 'Slow mode is on' } }]);
  const api = createApi({ fetchImpl, storage: memory(), sleep: async (ms) => void slept.push(ms) });
  await assert.rejects(api.post('/channels/1/messages', { content: 'x' }), (e) => {
    assert.ok(e instanceof ApiError);
    assert.deepEqual([e.status, e.code, e.retryAfter], [429, 'slow_mode', 7]);
    return true;
  });
  assert.equal(calls.length, 1);
  assert.deepEqual(slept, []);
});

test('other 429s are waited out and retried', async () => {
  const slept = [];
  const { fetchImpl, calls } = fakeFetch([
    { status: 429, headers: { 'Retry-After': '2' }, body: { code: 'rate_limited', message: 'slow down' } },
    { status: 200, body: { ok: true } },
  ]);
  const api = createApi({ fetchImpl, storage: memory(), sleep: async (ms) => void slept.push(ms) });
  assert.deepEqual(await api.get('/x'), { ok: true });
  assert.equal(calls.length, 2);
  assert.deepEqual(slept, [2000]);
});
