// A call survives the death of its node, in real Chromium. Three Chorus nodes over one Redis and the MongoDB
// stand-in: a `--role chat` node serves the page, REST and the gateway; two `--role sfu` nodes hold voice rooms.
// nginx on loopback is the load balancer, as the operations guide lays it out: `/` to the chat node,
// `/node/N/` to SFU node N (each SFU node's `--public-url`), so the page only ever talks to one origin. Alice and
// Bob talk; the node holding their room is killed with SIGKILL; both clients notice, fail to resume on the dead
// node, ask for a fresh grant (the room is re-placed once the dead node's record expires, 10 s) and talk again on
// the other SFU node — with nobody touching the page. Needs CHORUS_TEST_MONGODB_URI (scripts/test.sh starts the
// stand-in) and redis-server and nginx on the PATH; without the MongoDB URI it says SKIPPED, as the Rust cluster
// tests do.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aliceInvitesBob, freePort, launchBrowser, newContext, screenshot, watchErrors } from './harness.mjs';
import { media } from './netns.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const mongo = process.env.CHORUS_TEST_MONGODB_URI;
const VOICE_SECRET = 'cluster-e2e-voice-secret-0123456789abcdef';

let dir;
const children = [];
let balancer;
let nodes = {};
let browser;
let alice;
let bob;
const errors = [];

/** A child that has ended (by exiting or by a signal: then `exitCode` stays null). */
const exited = (child) => child.exitCode !== null || child.signalCode !== null;

/** Spawns a process whose output is kept for error messages; resolves once `ready()` holds. */
async function run(name, cmd, args, ready) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHORUS_LOG: process.env.CHORUS_LOG ?? 'warn' } });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const proc = { name, child, log: () => log };
  children.push(proc);
  const deadline = Date.now() + 30_000;
  while (!(await ready().catch(() => false))) {
    if (exited(child) || Date.now() > deadline) throw new Error(`${name} did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return proc;
}

/** The MongoDB URI with a database of this run's own. */
function withDatabase(uri, database) {
  const [base, query] = uri.split('?');
  const authority = base.replace(/^mongodb:\/\//, '').split('/')[0];
  return `mongodb://${authority}/${database}${query ? `?${query}` : ''}`;
}

/** One Chorus node; `publicUrl` is where the balancer exposes it. */
async function node(name, role, publicUrl, store, redisUrl) {
  const port = await freePort();
  const bin = process.env.CHORUS_BIN || join(repo, 'target/debug/chorus');
  const args = [
    '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, name), '--role', role, '--public-url', publicUrl,
    '--store', store, '--cluster', redisUrl, '--voice-secret', VOICE_SECRET, '--sfu-workers', '1',
    '--rtc-tcp-port', '0', '--udp-port-base', String(20000 + Math.floor(Math.random() * 2400) * 16),
  ];
  const proc = await run(`chorus ${name}`, bin, args, async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok);
  return { ...proc, port, direct: `http://127.0.0.1:${port}` };
}

/** Participants in voice rooms on one node, from its /metrics (0 when it does not answer). */
async function participants(n) {
  try {
    const text = await (await fetch(`${n.direct}/metrics`)).text();
    return Number(/^chorus_sfu_participants (\d+)/m.exec(text)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Both pages receive the other's audio with a level, and keep receiving over `ms`. */
async function bothHear(timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (const page of [alice, bob]) {
    let before;
    for (;;) {
      const m = await media(page).catch(() => null);
      if (m && m.packets > 0 && m.level > 0) {
        if (before !== undefined && m.packets > before + 25) break;
        if (before === undefined) before = m.packets;
      } else {
        before = undefined;
      }
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  return true;
}

before(async () => {
  if (!mongo) return;
  dir = mkdtempSync(join(tmpdir(), 'chorus-cluster-e2e-'));
  const redisPort = await freePort();
  await run('redis-server', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], async () => {
    const { createConnection } = await import('node:net');
    return new Promise((res) => {
      const s = createConnection(redisPort, '127.0.0.1', () => (s.end(), res(true)));
      s.on('error', () => res(false));
    });
  });
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const store = withDatabase(mongo, `chorus_e2e_${Date.now().toString(16)}`);
  const lb = await freePort();
  const origin = `http://127.0.0.1:${lb}`;
  nodes.chat = await node('chat', 'chat', origin, store, redisUrl);
  nodes.sfu1 = await node('sfu1', 'sfu', `${origin}/node/1`, store, redisUrl);
  nodes.sfu2 = await node('sfu2', 'sfu', `${origin}/node/2`, store, redisUrl);
  const upstream = (path, n) => `
    location ${path} {
      proxy_pass ${n.direct}/;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_read_timeout 300s;
    }`;
  writeFileSync(join(dir, 'nginx.conf'), `pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log;
events {}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${lb};
    ${upstream('/node/1/', nodes.sfu1)}
    ${upstream('/node/2/', nodes.sfu2)}
    ${upstream('/', nodes.chat)}
  }
}
`);
  balancer = await run('nginx', 'nginx', ['-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], async () => (await fetch(`${origin}/healthz`)).ok);
  browser = await launchBrowser();
  alice = await (await newContext(browser)).newPage();
  bob = await (await newContext(browser)).newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
  await aliceInvitesBob(alice, bob, origin, 'Failover Club');
});

after(async () => {
  await browser?.close();
  for (const p of children.reverse()) {
    if (!exited(p.child)) {
      p.child.kill('SIGTERM');
      await new Promise((r) => (exited(p.child) ? r(undefined) : p.child.once('exit', r)));
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('when the node holding a call is killed, the call comes back on another node by itself', { skip: mongo ? false : 'SKIPPED: CHORUS_TEST_MONGODB_URI is not set' }, async () => {
  for (const page of [alice, bob]) await page.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  for (const page of [alice, bob]) {
    await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 30_000 });
  }
  assert.ok(await bothHear(30_000), 'alice and bob hear each other before the failure');
  const counts = [await participants(nodes.sfu1), await participants(nodes.sfu2)];
  assert.ok(counts.includes(2) && counts.includes(0), `one SFU node holds the room of two: ${counts}`);
  const [dying, survivor] = counts[0] === 2 ? [nodes.sfu1, nodes.sfu2] : [nodes.sfu2, nodes.sfu1];

  const killedAt = Date.now();
  dying.child.kill('SIGKILL');
  // Nobody touches the pages: the clients resume, find the node gone, and rejoin with fresh grants.
  const deadline = killedAt + 60_000;
  while ((await participants(survivor)) < 2) {
    assert.ok(Date.now() < deadline, `the room was not re-placed within 60 s\n${survivor.log()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(await bothHear(30_000), 'alice and bob hear each other again, on the other node');
  console.log(`cluster failover: the call came back ${((Date.now() - killedAt) / 1000).toFixed(1)} s after kill -9 of its node`);
  for (const page of [alice, bob]) {
    await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 10_000 });
  }
  await screenshot(alice, 'cluster-call-after-failover');
  assert.deepEqual(errors.flat(), [], 'no page errors or CSP violations');
});
