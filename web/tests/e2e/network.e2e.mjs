// Real network paths: Chorus in a "server" network namespace, two Chromium users in a "client" one,
// joined by a veth pair, and nftables in the server namespace shaping what the client may reach. For each
// case both users join one voice channel, each decodes the other's audio, and the selected candidate pair
// is the kind the network leaves: (1) direct UDP; (2) UDP blocked → ICE over TCP; (3) UDP and the ICE-TCP
// port blocked, only the HTTPS port and 443 (TURN/TLS) open → TURN over TLS (embedded); (3b) only the embedded
// TURN server's UDP port → TURN over UDP (embedded); (4) only coturn's UDP
// port open → TURN/UDP through Debian's coturn with the REST-API credentials Chorus hands out.
// Needs root (`ip netns`).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aliceInvitesBob, newContext, watchErrors } from './harness.mjs';
import { CLIENT_IP, SERVER_IP, createNetwork, media, open, startChorusIn, stop } from './netns.mjs';

const HTTPS = 8443;
const ICE_TCP = 7881;
const TURN_UDP = 3478;
const TURN_TLS = 443; // the case a network that allows only HTTPS leaves
const UDP_BASE = 50000;
const COTURN = 3479;
const TURN_SECRET = 'net-test-shared-secret-0123456789';

let net;
let dir;
let chorus;
let coturn;
let log = '';
let browser;
let alice;
let bob;
const errors = [];
/** Join times per case (click → first decoded remote audio), printed for docs/benchmarks.md. */
const joinTimes = {};

const curl = (path) => net.inSrv('curl', ['-sk', '--max-time', '5', `https://${SERVER_IP}:${HTTPS}${path}`]);

before(async () => {
  net = createNetwork();
  dir = mkdtempSync(join(tmpdir(), 'chorus-net-'));
  chorus = await startChorusIn(net, dir, HTTPS, [
    '--udp-port-base', String(UDP_BASE), '--sfu-workers', '1', '--rtc-tcp-port', String(ICE_TCP),
    '--turn-listen', `${SERVER_IP}:${TURN_UDP}`, '--turn-tls-listen', `${SERVER_IP}:${TURN_TLS}`,
    '--turn-url', `turn:${SERVER_IP}:${COTURN}?transport=udp`, '--turn-secret', TURN_SECRET,
  ], (d) => (log += d));

  // coturn as operations.md §4 configures it: the shared secret, relaying to the SFU's address only.
  coturn = spawn('ip', [
    'netns', 'exec', net.srv, 'turnserver', '--listening-ip', SERVER_IP, '--relay-ip', SERVER_IP,
    '--listening-port', String(COTURN), '--use-auth-secret', '--static-auth-secret', TURN_SECRET, '--realm', 'chorus.test',
    '--no-tls', '--no-dtls', '--no-cli', '--no-tcp-relay', '--denied-peer-ip', '0.0.0.0-255.255.255.255',
    '--allowed-peer-ip', SERVER_IP, '--log-file', 'stdout', '--simple-log',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  coturn.stdout.on('data', (d) => (log += d));
  coturn.stderr.on('data', (d) => (log += d));

  browser = await net.browser(dir, ['--ignore-certificate-errors']);
  const url = `https://${SERVER_IP}:${HTTPS}`;
  alice = await (await newContext(browser)).newPage();
  bob = await (await newContext(browser)).newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
  await aliceInvitesBob(alice, bob, url, 'Net Club', open);
});

after(async () => {
  console.log(`join times (ms, click to first remote audio): ${JSON.stringify(joinTimes)}`);
  await browser?.close();
  if (coturn && coturn.exitCode === null) coturn.kill('SIGKILL');
  await stop(chorus);
  net?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Both join, hear each other, every connection's selected pair matches `want`, and `during` holds
 * (server metrics while the call runs); then both leave. */
async function call(name, want, during = () => {}) {
  try {
    const clicked = Date.now();
    for (const page of [alice, bob]) await page.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
    for (const page of [alice, bob]) {
      await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 40_000 });
    }
    // Both joined at once: the first audio from the other side marks the join done.
    const heard = await Promise.all([alice, bob].map(async (page) => {
      while (Date.now() - clicked < 40_000) {
        if ((await media(page))?.packets > 0) return Date.now() - clicked;
        await new Promise((r) => setTimeout(r, 50));
      }
      return null;
    }));
    joinTimes[name] = heard;
    for (const page of [alice, bob]) {
      let m;
      const deadline = Date.now() + 40_000;
      do {
        m = await media(page);
        if (m && m.packets > 50 && m.level > 0 && m.publish && m.subscribe) break;
        await new Promise((r) => setTimeout(r, 300));
      } while (Date.now() < deadline);
      assert.ok(m && m.packets > 50 && m.level > 0, `decoded audio with a level: ${JSON.stringify(m)}\n${log}`);
      assert.match(m.publish, want, 'the publish connection took the expected path');
      assert.match(m.subscribe, want, 'so did the subscribe connection');
    }
    during(curl('/metrics'));
  } finally {
    for (const page of [alice, bob]) {
      if (await page.evaluate(() => !!(/** @type {any} */ (window).__chorusVoice))) {
        await page.getByTestId('voice-leave').click();
        await page.locator('#voice-panel[hidden]').waitFor({ state: 'attached' });
      }
    }
  }
}

/** `chorus_sfu_joins_by_path_total{path}` now. */
const joins = (path) => Number(new RegExp(`^chorus_sfu_joins_by_path_total\\{path="${path}"\\} (\\d+)`, 'm').exec(curl('/metrics'))?.[1] ?? -1);

test('1. an open network: direct UDP', async () => {
  net.firewall('');
  const before = joins('udp');
  await call('udp', /^host\/udp->udp$/);
  assert.equal(joins('udp'), before + 2, 'the server counts both joins as direct UDP');
});

test('2. UDP blocked: ICE over TCP', async () => {
  net.firewall(`ip saddr ${CLIENT_IP} meta l4proto udp drop`);
  // An active TCP candidate's port is known only once connected: Chromium reports it as prflx.
  const before = joins('tcp');
  await call('ice-tcp', /^(host|prflx)\/tcp->tcp$/, (metrics) => assert.match(metrics, /^chorus_sfu_tcp_connections [1-9]/m));
  assert.equal(joins('tcp'), before + 2, 'the server counts both joins as ICE-TCP');
});

test('3. only TCP to the HTTPS port and 443: TURN over TLS', async () => {
  net.firewall(`ip saddr ${CLIENT_IP} meta l4proto udp drop\n  ip saddr ${CLIENT_IP} tcp dport != { ${HTTPS}, ${TURN_TLS} } drop`);
  const before = joins('relay');
  await call('turn-tls', /^relay\/tls->udp$/, (metrics) => {
    assert.match(metrics, /^chorus_turn_allocations [1-9]/m);
    assert.match(metrics, /^chorus_turn_tls_connections [1-9]/m);
  });
  assert.equal(joins('relay'), before + 2, 'the server counts both joins as relayed');
  assert.deepEqual(errors.flat(), [], 'no page errors or CSP violations');
});

test('3b. only the embedded TURN server\'s UDP port: TURN over UDP (embedded)', async () => {
  net.firewall(`ip saddr ${CLIENT_IP} udp dport != ${TURN_UDP} drop\n  ip saddr ${CLIENT_IP} tcp dport != ${HTTPS} drop`);
  const before = joins('relay');
  await call('turn-udp', /^relay\/udp->udp$/);
  assert.equal(joins('relay'), before + 2, 'the server counts both joins as relayed');
});

test('4. only coturn\'s UDP port: TURN/UDP through coturn with the credentials from joined', async () => {
  net.firewall(`ip saddr ${CLIENT_IP} udp dport != ${COTURN} drop\n  ip saddr ${CLIENT_IP} tcp dport != ${HTTPS} drop`);
  await call('coturn-udp', /^relay\/udp->udp$/);
  assert.deepEqual(errors.flat(), [], 'no page errors or CSP violations');
});
