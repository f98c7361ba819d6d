// Chorus behind nginx, over a real network: in the "server" namespace Chorus listens on 127.0.0.1 and
// nginx terminates TLS with deploy/nginx/chorus.conf (only its certificate, address and name changed);
// two Chromium users in the "client" namespace chat (REST and the gateway WebSocket through the proxy) and
// talk (the /voice WebSocket through the proxy, media straight to the SFU), and a burst of failed logins
// from one client address is limited by that address, not by the proxy's. Needs root (`ip netns`).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aliceInvitesBob, newContext, watchErrors } from './harness.mjs';
import { SERVER_IP, certificateFor, createNetwork, media, open } from './netns.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const HTTPS = 8443;
const OTHER_CLIENT_IP = '10.77.0.3';
const url = `https://${SERVER_IP}:${HTTPS}`;

let net;
let dir;
let chorus;
let nginx;
let log = '';
let browser;
let alice;
let bob;
const errors = [];

/** The shipped nginx server block, pointed at this test's certificate, address and name. */
function nginxConfig(cert, key) {
  const site = readFileSync(join(repo, 'deploy/nginx/chorus.conf'), 'utf8')
    .replace('listen 443 ssl;', `listen ${SERVER_IP}:${HTTPS} ssl;`)
    .replace('server_name chat.example.org;', `server_name ${SERVER_IP};`)
    .replace(/ssl_certificate\s+\S+;/, `ssl_certificate ${cert};`)
    .replace(/ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${key};`);
  assert.ok(site.includes(`listen ${SERVER_IP}:${HTTPS} ssl;`) && site.includes(cert) && site.includes(key), 'the sample changed shape');
  writeFileSync(join(dir, 'chorus-site.conf'), site);
  const main = `pid ${dir}/nginx.pid;\nerror_log ${dir}/nginx-error.log;\nevents {}\nhttp {\n  access_log off;\n` +
    `  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  include ${dir}/chorus-site.conf;\n}\n`;
  writeFileSync(join(dir, 'nginx.conf'), main);
  return join(dir, 'nginx.conf');
}

/** `n` failed logins from `ip` in the client namespace, through nginx; the statuses. */
function logins(ip, n) {
  const statuses = [];
  for (let i = 0; i < n; i++) {
    const out = net.inCli('curl', [
      '-sk', '--max-time', '5', '--interface', ip, '-o', '/dev/null', '-w', '%{http_code}', '-H', 'content-type: application/json',
      '--data', JSON.stringify({ username: 'mallory', password: 'wrong-password' }), `${url}/api/v1/auth/login`,
    ]);
    statuses.push(Number(out));
  }
  return statuses;
}

before(async () => {
  net = createNetwork([OTHER_CLIENT_IP]);
  dir = mkdtempSync(join(tmpdir(), 'chorus-proxy-'));
  const [cert, key] = certificateFor(dir, SERVER_IP);
  const bin = process.env.CHORUS_BIN || join(repo, 'target/debug/chorus');
  chorus = spawn('ip', [
    'netns', 'exec', net.srv, bin, '--listen', '127.0.0.1:8080', '--trusted-proxies', '127.0.0.1',
    '--public-url', url, '--public-ip', SERVER_IP, '--data-dir', join(dir, 'data'),
    '--udp-port-base', '50000', '--sfu-workers', '1', '--rtc-tcp-port', '0',
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHORUS_LOG: process.env.CHORUS_LOG ?? 'warn' } });
  chorus.stdout.on('data', (d) => (log += d));
  chorus.stderr.on('data', (d) => (log += d));
  nginx = spawn('ip', ['netns', 'exec', net.srv, 'nginx', '-c', nginxConfig(cert, key), '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  nginx.stdout.on('data', (d) => (log += d));
  nginx.stderr.on('data', (d) => (log += d));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if (net.inCli('curl', ['-sk', '--max-time', '5', `${url}/healthz`]).includes('ok')) break;
    } catch {
      /* not up yet */
    }
    if (chorus.exitCode !== null || nginx.exitCode !== null || Date.now() > deadline) {
      throw new Error(`chorus behind nginx did not answer:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  browser = await net.browser(dir, ['--ignore-certificate-errors']);
  alice = await (await newContext(browser)).newPage();
  bob = await (await newContext(browser)).newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
});

after(async () => {
  await browser?.close();
  for (const p of [nginx, chorus]) {
    if (p && p.exitCode === null) {
      p.kill('SIGTERM');
      await new Promise((r) => (p.exitCode !== null ? r(undefined) : p.once('exit', r)));
    }
  }
  net?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('through nginx, two users register, chat over the gateway and hear each other', async () => {
  await aliceInvitesBob(alice, bob, url, 'Proxy Club', open);

  await alice.getByTestId('composer').fill('hello through the proxy');
  await alice.getByTestId('composer').press('Enter');
  await bob.getByTestId('message-content').filter({ hasText: 'hello through the proxy' }).waitFor({ timeout: 20_000 });

  for (const page of [alice, bob]) await page.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  for (const page of [alice, bob]) {
    await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 40_000 });
  }
  for (const page of [alice, bob]) {
    let m;
    const deadline = Date.now() + 40_000;
    do {
      m = await media(page);
      if (m && m.packets > 50 && m.level > 0 && m.publish && m.subscribe) break;
      await new Promise((r) => setTimeout(r, 300));
    } while (Date.now() < deadline);
    assert.ok(m && m.packets > 50 && m.level > 0, `decoded audio with a level: ${JSON.stringify(m)}\n${log}`);
    assert.equal(m.publish, 'host/udp->udp', 'media goes straight to the SFU, not through the proxy');
  }
  assert.deepEqual(errors.flat(), [], 'no page errors or CSP violations');
});

test('failed logins are limited per client address, not per proxy', () => {
  // The auth limit is a burst of 20 per client address.
  const first = logins('10.77.0.2', 30);
  assert.ok(first.slice(0, 20).every((s) => s === 401), `${first}`);
  assert.ok(first.includes(429), `one client's burst is limited: ${first}`);
  assert.deepEqual(logins(OTHER_CLIENT_IP, 1), [401], 'another client behind the same proxy is not');
});
