// Voice through the embedded TURN server in real Chromium. Chorus serves HTTPS with a test certificate
// and runs TURN over UDP and over TLS; both users' browsers may use only relay candidates (as on a network
// that reaches nothing but the TURN server). Once over TURN/UDP, once over TURN/TLS: each decodes the
// other's audio, every selected candidate pair is a relay of that protocol, and the server counts the
// allocations. (The same over real network paths — nftables in network namespaces — is network.e2e.mjs.)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aliceInvitesBob, freePort, launchBrowser, newContext, watchErrors } from './harness.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
let server;
let browser;
let alice;
let bob;
const errors = [];

/** GET over HTTPS without checking the test certificate (Node's fetch cannot be told to). */
function get(url) {
  return new Promise((res, rej) => {
    request(url, { rejectUnauthorized: false }, (r) => {
      let body = '';
      r.on('data', (d) => (body += d));
      r.on('end', () => res({ status: r.statusCode, body }));
    })
      .on('error', rej)
      .end();
  });
}

async function startTlsServer() {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-turn-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  const [port, turnUdp, turnTls] = [await freePort(), await freePort(), await freePort()];
  const bin = process.env.CHORUS_BIN || join(repo, 'target/debug/chorus');
  const child = spawn(bin, [
    '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'data'), '--tls-cert', cert, '--tls-key', key,
    '--public-url', `https://localhost:${port}`, '--turn-listen', `127.0.0.1:${turnUdp}`,
    '--turn-tls-listen', `127.0.0.1:${turnTls}`, '--udp-port-base', String(20000 + Math.floor(Math.random() * 2400) * 16),
    '--sfu-workers', '1', '--rtc-tcp-port', '0',
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHORUS_LOG: process.env.CHORUS_LOG ?? 'warn' } });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const url = `https://localhost:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await get(`${url}/healthz`)).status === 200) break;
    } catch {
      /* not up yet */
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`chorus did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every peer connection the page makes may use only relay candidates, through TURN URLs of one scheme
 * (`window.__turnOnly`, 'turn:' or 'turns:', read when the connection is made). */
async function relayOnly(ctx) {
  await ctx.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    /** @param {RTCConfiguration} [cfg] */
    function Relayed(cfg = {}) {
      const only = /** @type {any} */ (window).__turnOnly ?? 'turn:';
      const iceServers = (cfg.iceServers ?? [])
        .map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => u.startsWith(only)) }))
        .filter((s) => s.urls.length > 0);
      return new Native({ ...cfg, iceServers, iceTransportPolicy: 'relay' });
    }
    Relayed.prototype = Native.prototype;
    /** @type {any} */ (window).RTCPeerConnection = Relayed;
  });
}

before(async () => {
  server = await startTlsServer();
  browser = await launchBrowser(['--ignore-certificate-errors']);
  const aliceCtx = await newContext(browser);
  const bobCtx = await newContext(browser);
  await relayOnly(aliceCtx);
  await relayOnly(bobCtx);
  alice = await aliceCtx.newPage();
  bob = await bobCtx.newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
  await aliceInvitesBob(alice, bob, server.url, 'Relay Club');
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Each peer connection's selected local candidate (type/relay protocol), and inbound audio. */
const media = (page) =>
  page.evaluate(async () => {
    const v = /** @type {any} */ (window).__chorusVoice;
    if (!v?.pcSubscribe || !v?.pcPublish) return null;
    const selected = async (pc) => {
      const stats = await pc.getStats();
      let pair;
      stats.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
      });
      const local = pair && stats.get(pair.localCandidateId);
      return local ? `${local.candidateType}/${local.relayProtocol ?? local.protocol}` : null;
    };
    let packets = 0;
    let level = 0;
    (await v.pcSubscribe.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        packets += r.packetsReceived ?? 0;
        level = Math.max(level, r.audioLevel ?? 0, r.totalAudioEnergy ?? 0);
      }
    });
    return { publish: await selected(v.pcPublish), subscribe: await selected(v.pcSubscribe), packets, level };
  });

async function callThrough(scheme, protocol) {
  for (const page of [alice, bob]) {
    await page.evaluate((s) => {
      /** @type {any} */ (window).__turnOnly = s;
    }, scheme);
    await page.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  }
  for (const page of [alice, bob]) {
    await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 30_000 });
  }
  for (const page of [alice, bob]) {
    let m;
    const deadline = Date.now() + 30_000;
    do {
      m = await media(page);
      if (m && m.packets > 50 && m.level > 0 && m.publish && m.subscribe) break;
      await new Promise((r) => setTimeout(r, 300));
    } while (Date.now() < deadline);
    assert.ok(m && m.packets > 50 && m.level > 0, `decoded audio with a level through TURN: ${JSON.stringify(m)}`);
    assert.equal(m.publish, `relay/${protocol}`, `the publish connection is relayed over ${protocol}`);
    assert.equal(m.subscribe, `relay/${protocol}`, `so is the subscribe connection`);
  }
  const metrics = (await get(`${server.url}/metrics`)).body;
  const open = Number(/^chorus_turn_allocations (\d+)/m.exec(metrics)?.[1] ?? 0);
  assert.ok(open >= 4, `the embedded TURN server holds both users' two allocations each: ${open}`);
}

async function leave() {
  for (const page of [alice, bob]) {
    await page.getByTestId('voice-leave').click();
    await page.locator('#voice-panel[hidden]').waitFor({ state: 'attached' });
  }
}

test('over TURN/UDP only, both join and each decodes the other\'s audio', async () => {
  await callThrough('turn:', 'udp');
  await leave();
});

test('over TURN/TLS only, both join and each decodes the other\'s audio', async () => {
  await callThrough('turns:', 'tls');
  await leave();
  assert.deepEqual(errors.flat(), [], 'no page errors or CSP violations');
});
