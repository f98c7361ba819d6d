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

test('retry: false answers a 429 at once (a second-factor code: the user sees the wait)', async () => {
  const slept = [];
  const { fetchImpl, calls } = fakeFetch([{ status: 429, headers: { 'Retry-After': '12' }, body: { code: 'rate_limited', message: 'rate limited; retry after 12 s' } }]);
  const api = createApi({ fetchImpl, storage: memory(), sleep: async (ms) => void slept.push(ms) });
  await assert.rejects(api.post('/auth/mfa/totp', { ticket: 't', code: '123456' }, { retry: false }), (e) => {
    assert.deepEqual([e.status, e.code, e.retryAfter], [429, 'rate_limited', 12]);
    return true;
  });
  assert.equal(calls.length, 1);
  assert.deepEqual(slept, []);
});

test('a DELETE with a body sends it as JSON (deleting the account takes the password)', async () => {
  const { fetchImpl, calls } = fakeFetch([{ status: 204 }]);
  const api = createApi({ fetchImpl, storage: memory() });
  api.setToken('tok');
  assert.equal(await api.request('DELETE', '/users/@me', { password: 'pw', code: '123456' }, { retry: false }), null);
  assert.equal(calls[0].init.method, 'DELETE');
  assert.equal(calls[0].init.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(calls[0].init.body), { password: 'pw', code: '123456' });
});

/** An XMLHttpRequest stand-in: records what is sent; the test drives progress and the answer. */
class FakeXhr {
  static last = /** @type {FakeXhr|null} */ (null);
  constructor() {
    FakeXhr.last = this;
    this.headers = /** @type {Record<string,string>} */ ({});
    this.upload = /** @type {any} */ ({});
    this.status = 0;
    this.responseText = '';
    this.aborted = false;
    /** @type {Record<string,string>} */ this.responseHeaders = {};
  }
  open(method, url) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(k, v) {
    this.headers[k] = v;
  }
  getResponseHeader(k) {
    return this.responseHeaders[k] ?? null;
  }
  send(body) {
    this.body = body;
  }
  abort() {
    this.aborted = true;
    /** @type {any} */ (this).onabort?.();
  }
  answer(status, body, headers = {}) {
    this.status = status;
    this.responseText = body === undefined ? '' : JSON.stringify(body);
    this.responseHeaders = headers;
    /** @type {any} */ (this).onload?.();
  }
}

test('an upload goes out by XMLHttpRequest with the token, reports progress and resolves to the message', async () => {
  const storage = memory();
  const api = createApi({ storage, xhrImpl: /** @type {any} */ (FakeXhr) });
  api.setToken('tok');
  const seen = [];
  let sent = false;
  const form = { fake: 'form' };
  const up = api.upload('/channels/9/messages', /** @type {any} */ (form), { onProgress: (l, t) => seen.push([l, t]), onSent: () => (sent = true) });
  const x = /** @type {FakeXhr} */ (FakeXhr.last);
  assert.deepEqual([x.method, x.url, x.body], ['POST', '/api/v1/channels/9/messages', form]);
  assert.equal(x.headers.Authorization, 'Bearer tok');
  assert.equal(x.headers['Content-Type'], undefined, 'the browser sets the multipart boundary');
  x.upload.onprogress({ loaded: 10, total: 100, lengthComputable: true });
  x.upload.onprogress({ loaded: 20, total: 0, lengthComputable: false });
  x.upload.onload();
  assert.deepEqual(seen, [[10, 100], [20, 0]]);
  assert.equal(sent, true);
  x.answer(201, { id: '5', attachments: [] });
  assert.deepEqual(await up.promise, { id: '5', attachments: [] });
});

test('an upload refused by the server rejects with its code; a cancel with "aborted"', async () => {
  const api = createApi({ storage: memory(), xhrImpl: /** @type {any} */ (FakeXhr) });
  let up = api.upload('/channels/9/messages', /** @type {any} */ ({}));
  /** @type {FakeXhr} */ (FakeXhr.last).answer(413, { code: 'file_too_large', message: 'too big' });
  await assert.rejects(up.promise, (e) => e instanceof ApiError && e.status === 413 && e.code === 'file_too_large' && e.message === 'too big');

  up = api.upload('/channels/9/messages', /** @type {any} */ ({}));
  /** @type {FakeXhr} */ (FakeXhr.last).answer(429, { code: 'rate_limited', message: 'slow down' }, { 'Retry-After': '3' });
  await assert.rejects(up.promise, (e) => e.code === 'rate_limited' && e.retryAfter === 3);

  up = api.upload('/channels/9/messages', /** @type {any} */ ({}));
  up.abort();
  assert.equal(/** @type {FakeXhr} */ (FakeXhr.last).aborted, true);
  await assert.rejects(up.promise, (e) => e instanceof ApiError && e.code === 'aborted' && e.status === 0);

  up = api.upload('/channels/9/messages', /** @type {any} */ ({}));
  /** @type {any} */ (FakeXhr.last).onerror();
  await assert.rejects(up.promise, (e) => e.code === 'network');
});
