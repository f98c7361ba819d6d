import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VoiceSignaling, reconnectPlan, backoffMs, errorAction, PING_INTERVAL_MS } from '../../assets/js/voice/signaling.js';

/** A clock and timers driven by the test. */
function clock() {
  let now = 0;
  let seq = 0;
  const due = new Map();
  const api = {
    now: () => now,
    timers: {
      setTimeout: (fn, ms) => (due.set(++seq, { fn, at: now + ms }), seq),
      clearTimeout: (id) => due.delete(id),
      setInterval: (fn, ms) => (due.set(++seq, { fn, at: now + ms, every: ms }), seq),
      clearInterval: (id) => due.delete(id),
    },
    /** Moves time forward, firing timers in order. */
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        const next = [...due].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!next) break;
        const [id, t] = next;
        now = t.at;
        if (t.every) t.at += t.every;
        else due.delete(id);
        t.fn();
        await flush();
      }
      now = end;
    },
  };
  return api;
}
const flush = () => new Promise((r) => setImmediate(r));

/** Records every socket the client opens; the test plays the server. */
function fakeSockets() {
  const all = [];
  class FakeWS {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      all.push(this);
    }
    send(s) {
      this.sent.push(JSON.parse(s));
    }
    close() {
      this.readyState = 3;
    }
    // server side
    open() {
      this.readyState = 1;
      this.onopen?.();
    }
    push(m) {
      this.onmessage?.({ data: JSON.stringify(m) });
    }
    drop() {
      this.readyState = 3;
      this.onclose?.();
    }
  }
  return { FakeWS, all };
}

function setup() {
  const c = clock();
  const { FakeWS, all } = fakeSockets();
  let grants = 0;
  /** The channel each grant was asked for. */
  const granted = [];
  const sig = new VoiceSignaling({
    grant: async (channelId) => (granted.push(channelId), { endpoint: 'ws://x/voice', token: `tok${++grants}` }),
    channelId: 'c1',
    WebSocketImpl: FakeWS,
    now: c.now,
    timers: c.timers,
  });
  const events = [];
  for (const t of ['state', 'joined', 'resumed', 'rejoining', 'message', 'problem', 'fatal', 'moved']) sig.addEventListener(t, (e) => events.push([t, e.detail]));
  return { c, all, sig, events, grants: () => grants, granted };
}

const joined = { type: 'joined', participant_id: 'p1', session_id: 's1', participants: [], ice_servers: [] };

test('the decision after a drop: resume inside the window (with a margin), else rejoin', () => {
  assert.equal(reconnectPlan('s', 0, 5_000), 'resume');
  assert.equal(reconnectPlan('s', 0, 27_999), 'resume');
  assert.equal(reconnectPlan('s', 0, 29_000), 'rejoin', 'too close to the end to be sure');
  assert.equal(reconnectPlan(null, 0, 1_000), 'rejoin');
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map(backoffMs), [250, 500, 1000, 2000, 4000, 5000, 5000]);
});

test('error codes map to what the client does', () => {
  assert.equal(errorAction('wrong_channel'), 'fatal');
  assert.equal(errorAction('disconnected'), 'fatal', 'a moderator disconnected us: no rejoin');
  for (const c of ['invalid_token', 'token_expired', 'wrong_node', 'peer_timeout', 'peer_closed', 'sfu_unavailable', 'shutdown', 'join_timeout', 'room_moved']) assert.equal(errorAction(c), 'rejoin', c);
  assert.equal(errorAction('unknown_session'), 'join');
  for (const c of ['bad_sdp', 'rate_limited', 'forbidden', 'bad_message']) assert.equal(errorAction(c), 'report', c);
});

test('joins with the grant token and channel, then pings every 10 s and measures the round trip', async () => {
  const { c, all, sig, events } = setup();
  await sig.connect();
  assert.equal(all.length, 1);
  all[0].open();
  assert.deepEqual(all[0].sent, [{ type: 'join', token: 'tok1', channel_id: 'c1' }]);
  all[0].push(joined);
  assert.equal(sig.state, 'connected');
  assert.equal(sig.sessionId, 's1');
  assert.deepEqual(events.find((e) => e[0] === 'joined')[1], joined);
  await c.advance(PING_INTERVAL_MS);
  assert.deepEqual(all[0].sent.at(-1), { type: 'ping' });
  await c.advance(42);
  all[0].push({ type: 'pong' });
  assert.equal(sig.rttMs, 42);
  all[0].push({ type: 'speaking', participant_id: 'p2', speaking: true });
  assert.deepEqual(events.at(-1), ['message', { type: 'speaking', participant_id: 'p2', speaking: true }]);
  assert.ok(!events.some((e) => e[0] === 'message' && e[1].type === 'pong'), 'pong is not passed on');
});

test('a dropped socket resumes with the session id inside the window', async () => {
  const { c, all, sig, events } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  all[0].drop();
  assert.equal(sig.state, 'reconnecting');
  assert.equal(sig.send({ type: 'mute', muted: true }), false, 'nothing is sent while down');
  await c.advance(300);
  assert.equal(all.length, 2);
  all[1].open();
  assert.deepEqual(all[1].sent, [{ type: 'resume', session_id: 's1' }]);
  all[1].push({ type: 'resumed', participant_id: 'p1' });
  assert.equal(sig.state, 'connected');
  assert.ok(events.some((e) => e[0] === 'resumed'));
  assert.equal(events.filter((e) => e[0] === 'joined').length, 1, 'no second join');
});

test('when the window has passed, a fresh grant and a new join', async () => {
  const { c, all, sig, grants } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  all[0].drop();
  // The server cannot be reached for a while: every attempt fails to open.
  for (let i = 0; i < 40 && sig.sessionId && c.now() < 28_000; i++) {
    await c.advance(5000);
    const ws = all.at(-1);
    if (ws.readyState === 0 && ws.onclose) ws.drop();
  }
  await c.advance(10_000);
  const last = all.at(-1);
  last.open();
  assert.equal(last.sent[0].type, 'join');
  assert.equal(last.sent[0].token, `tok${grants()}`);
  assert.ok(grants() >= 2, 'a new grant was fetched');
});

test('a node that cannot be reached three times in a row is left: a fresh grant, inside the window', async () => {
  const { c, all, sig, grants } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  all[0].drop();
  // The room's node died: resume attempts hang and are given up, or fail at once.
  let resumes = 0;
  while (grants() < 2 && c.now() < 30_000) {
    await c.advance(250);
    if (grants() >= 2) break;
    const ws = all.at(-1);
    if (ws !== all[0] && ws.readyState === 0 && ws.onclose && !ws.counted) {
      ws.counted = true;
      resumes++;
      if (resumes % 2 === 0) ws.drop();
    }
  }
  assert.ok(c.now() < 20_000, `a fresh grant long before the 30 s window ends (${c.now()} ms)`);
  assert.equal(resumes, 3, 'after three unreachable attempts');
  await c.advance(1000);
  const last = all.at(-1);
  last.open();
  assert.equal(last.sent[0].type, 'join', 'a new join, not another resume');
  assert.equal(last.sent[0].token, 'tok2');
  assert.equal(grants(), 2, 'with a fresh grant (which names a live node)');
});

test('unknown_session on resume: join on the same socket with a fresh grant', async () => {
  const { c, all, sig } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  all[0].drop();
  await c.advance(300);
  all[1].open();
  all[1].push({ type: 'error', code: 'unknown_session', message: 'gone' });
  await flush();
  assert.deepEqual(all[1].sent.at(-1), { type: 'join', token: 'tok2', channel_id: 'c1' });
  all[1].push({ ...joined, participant_id: 'p9', session_id: 's2' });
  assert.equal(sig.sessionId, 's2');
  assert.equal(sig.state, 'connected');
});

test('a token the server refuses or a peer timeout leads to a new join with a new grant', async () => {
  const { c, all, sig, events } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  all[0].push({ type: 'error', code: 'peer_timeout', message: 'no media' });
  assert.equal(sig.state, 'reconnecting');
  await c.advance(300);
  assert.ok(events.some((e) => e[0] === 'rejoining'), 'the old session is given up first');
  assert.equal(all.length, 1, 'not at once: the server gets a moment to drop the old session');
  await c.advance(300);
  all.at(-1).open();
  assert.deepEqual(all.at(-1).sent[0], { type: 'join', token: 'tok2', channel_id: 'c1' });
});

test('wrong_channel is fatal; other errors are reported and the socket stays', async () => {
  const { all, sig, events } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  all[0].push({ type: 'error', code: 'bad_sdp', message: 'nope' });
  assert.deepEqual(events.at(-1), ['problem', { type: 'error', code: 'bad_sdp', message: 'nope' }]);
  assert.equal(sig.state, 'connected');
  all[0].push({ type: 'error', code: 'wrong_channel', message: 'x' });
  assert.ok(events.some((e) => e[0] === 'fatal'));
  assert.equal(sig.state, 'closed');
});

test('a socket that stops answering pings is treated as dropped', async () => {
  const { c, all, sig } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  await c.advance(31_000);
  assert.equal(all.length, 2, 'reconnected');
  assert.deepEqual(all[1].sent, []);
  all[1].open();
  assert.deepEqual(all[1].sent[0], { type: 'resume', session_id: 's1' });
});

test('close() sends leave and never reconnects', async () => {
  const { c, all, sig } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  sig.close();
  assert.deepEqual(all[0].sent.at(-1), { type: 'leave' });
  await c.advance(60_000);
  assert.equal(all.length, 1);
  assert.equal(sig.state, 'closed');
});

test('moved: the old session ends and the client joins the new channel with a grant for it', async () => {
  const { c, all, sig, events, granted } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  assert.deepEqual(granted, ['c1']);
  all[0].push({ type: 'moved', channel_id: 'c2' });
  assert.deepEqual(events.find((e) => e[0] === 'moved'), ['moved', 'c2']);
  assert.equal(sig.channelId, 'c2');
  assert.equal(all[0].readyState, 3, 'the old socket is closed at once');
  // The server closing its end changes nothing more.
  all[0].onclose?.();
  await c.advance(1000);
  assert.ok(events.some((e) => e[0] === 'rejoining'), 'the old media is released first');
  assert.equal(all.length, 2, 'one new socket');
  assert.deepEqual(granted, ['c1', 'c2'], 'a fresh grant for the new channel');
  all[1].open();
  assert.deepEqual(all[1].sent, [{ type: 'join', token: 'tok2', channel_id: 'c2' }], 'a join, not a resume');
  all[1].push({ ...joined, participant_id: 'p9', session_id: 's9' });
  assert.equal(sig.state, 'connected');
  assert.equal(sig.sessionId, 's9');
  assert.ok(!events.some((e) => e[0] === 'fatal'));
});

test('a moved message without a channel is ignored', async () => {
  const { all, sig, events } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  all[0].push({ type: 'moved' });
  all[0].push({ type: 'moved', channel_id: 42 });
  assert.equal(sig.state, 'connected');
  assert.equal(sig.channelId, 'c1');
  assert.ok(!events.some((e) => e[0] === 'moved'));
});

test('disconnected by a moderator: fatal, closed, and never rejoined', async () => {
  const { c, all, sig, events, grants } = setup();
  await sig.connect();
  all[0].open();
  all[0].push(joined);
  all[0].push({ type: 'error', code: 'disconnected', message: 'A moderator disconnected you' });
  assert.deepEqual(events.find((e) => e[0] === 'fatal'), ['fatal', { type: 'error', code: 'disconnected', message: 'A moderator disconnected you' }]);
  assert.equal(sig.state, 'closed');
  all[0].onclose?.();
  await c.advance(60_000);
  assert.equal(all.length, 1, 'no new socket');
  assert.equal(grants(), 1, 'no new grant');
});
