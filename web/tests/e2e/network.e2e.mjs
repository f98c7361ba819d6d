// Real network paths: Chorus in a "server" network namespace, two Chromium users in a "client" one,
// joined by a veth pair, and nftables in the server namespace shaping what the client may reach. For each
// case both users join one voice channel, each decodes the other's audio, and the selected candidate pair
// is the kind the network leaves: (1) direct UDP; (2) UDP blocked → ICE over TCP; (3) UDP and the ICE-TCP
// port blocked, only the HTTPS and TURN/TLS ports open → TURN over TLS (embedded); (4) only coturn's UDP
// port open → TURN/UDP through Debian's coturn with the REST-API credentials Chorus hands out.
// Needs root (`ip netns`).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, newContext, registerInUi, watchErrors } from './harness.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const tag = String(process.pid % 100000);
const SRV = `chorus-srv-${tag}`;
const CLI = `chorus-cli-${tag}`;
const SERVER_IP = '10.77.0.1';
const CLIENT_IP = '10.77.0.2';
const HTTPS = 8443;
const ICE_TCP = 7881;
const TURN_UDP = 3478;
const TURN_TLS = 5349;
const UDP_BASE = 50000;
const COTURN = 3479;
const TURN_SECRET = 'net-test-shared-secret-0123456789';

let dir;
let chorus;
let coturn;
let log = '';
let browser;
let alice;
let bob;
const errors = [];

/** Navigates, retrying while Chromium still settles its view of the new network. */
async function open(page, url) {
  for (let i = 0; ; i++) {
    try {
      return await page.goto(url);
    } catch (e) {
      if (i >= 5 || !String(e).includes('ERR_NETWORK_CHANGED')) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

const run = (cmd, args, input) => execFileSync(cmd, args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
const inSrv = (cmd, args, input) => run('ip', ['netns', 'exec', SRV, cmd, ...args], input);

/** Replaces the server namespace's filter with `rules` (nft syntax for one input chain). */
function firewall(rules) {
  try {
    inSrv('nft', ['delete', 'table', 'inet', 'case']);
  } catch {
    /* none yet */
  }
  inSrv('nft', ['-f', '-'], `table inet case {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ${rules}\n }\n}\n`);
}

function curl(path) {
  return inSrv('curl', ['-sk', '--max-time', '5', `https://${SERVER_IP}:${HTTPS}${path}`]);
}

before(async () => {
  run('ip', ['netns', 'add', SRV]);
  run('ip', ['netns', 'add', CLI]);
  run('ip', ['link', 'add', `cs${tag}`, 'netns', SRV, 'type', 'veth', 'peer', 'name', `cc${tag}`, 'netns', CLI]);
  run('ip', ['-n', SRV, 'addr', 'add', `${SERVER_IP}/24`, 'dev', `cs${tag}`]);
  run('ip', ['-n', CLI, 'addr', 'add', `${CLIENT_IP}/24`, 'dev', `cc${tag}`]);
  for (const [ns, dev] of [[SRV, `cs${tag}`], [CLI, `cc${tag}`]]) {
    // IPv4 only: IPv6 address setup after the links come up makes Chromium report ERR_NETWORK_CHANGED.
    run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  dir = mkdtempSync(join(tmpdir(), 'chorus-net-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', `/CN=${SERVER_IP}`, '-addext', `subjectAltName=IP:${SERVER_IP}`,
  ]);
  const bin = process.env.CHORUS_BIN || join(repo, 'target/debug/chorus');
  chorus = spawn('ip', [
    'netns', 'exec', SRV, bin, '--listen', `${SERVER_IP}:${HTTPS}`, '--data-dir', join(dir, 'data'),
    '--tls-cert', cert, '--tls-key', key, '--public-url', `https://${SERVER_IP}:${HTTPS}`,
    '--public-ip', SERVER_IP, '--udp-port-base', String(UDP_BASE), '--sfu-workers', '1',
    '--rtc-tcp-port', String(ICE_TCP), '--turn-listen', `${SERVER_IP}:${TURN_UDP}`,
    '--turn-tls-listen', `${SERVER_IP}:${TURN_TLS}`, '--turn-url', `turn:${SERVER_IP}:${COTURN}?transport=udp`,
    '--turn-secret', TURN_SECRET,
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHORUS_LOG: process.env.CHORUS_LOG ?? 'warn' } });
  chorus.stdout.on('data', (d) => (log += d));
  chorus.stderr.on('data', (d) => (log += d));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if (curl('/healthz').includes('ok')) break;
    } catch {
      /* not up yet */
    }
    if (chorus.exitCode !== null || Date.now() > deadline) throw new Error(`chorus did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  // coturn as operations.md §4 configures it: the shared secret, relaying to the SFU's address only.
  coturn = spawn('ip', [
    'netns', 'exec', SRV, 'turnserver', '--listening-ip', SERVER_IP, '--relay-ip', SERVER_IP,
    '--listening-port', String(COTURN), '--use-auth-secret', '--static-auth-secret', TURN_SECRET, '--realm', 'chorus.test',
    '--no-tls', '--no-dtls', '--no-cli', '--no-tcp-relay', '--denied-peer-ip', '0.0.0.0-255.255.255.255',
    '--allowed-peer-ip', SERVER_IP, '--log-file', 'stdout', '--simple-log',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  coturn.stdout.on('data', (d) => (log += d));
  coturn.stderr.on('data', (d) => (log += d));

  // Chromium runs in the client namespace: playwright starts it through this wrapper.
  const wrapper = join(dir, 'chromium-in-client-ns');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${CLI} ${process.env.CHROMIUM || '/usr/bin/chromium'} "$@"\n`);
  chmodSync(wrapper, 0o755);
  const previous = process.env.CHROMIUM;
  process.env.CHROMIUM = wrapper;
  browser = await launchBrowser(['--ignore-certificate-errors']);
  if (previous === undefined) delete process.env.CHROMIUM;
  else process.env.CHROMIUM = previous;

  const url = `https://${SERVER_IP}:${HTTPS}`;
  alice = await (await newContext(browser)).newPage();
  bob = await (await newContext(browser)).newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
  await open(alice, `${url}/register`);
  await registerInUi(alice, 'alice');
  await alice.getByTestId('create-guild').click();
  await alice.getByTestId('prompt-input').fill('Net Club');
  await alice.getByTestId('prompt-ok').click();
  await alice.getByTestId('guild-name').filter({ hasText: 'Net Club' }).waitFor();
  await alice.getByTestId('invite-button').click();
  const link = await alice.getByTestId('invite-link').inputValue();
  await alice.keyboard.press('Escape');
  await open(bob, link);
  await registerInUi(bob, 'bob');
  await bob.getByTestId('guild-name').filter({ hasText: 'Net Club' }).waitFor();
});

after(async () => {
  await browser?.close();
  if (coturn && coturn.exitCode === null) coturn.kill('SIGKILL');
  if (chorus && chorus.exitCode === null) {
    chorus.kill('SIGTERM');
    await new Promise((r) => (chorus.exitCode !== null ? r(undefined) : chorus.once('exit', r)));
  }
  for (const ns of [SRV, CLI]) {
    try {
      run('ip', ['netns', 'del', ns]);
    } catch {
      /* already gone */
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Each peer connection's selected pair as `localType/protocol->remoteProtocol`, and inbound audio. */
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
      const remote = pair && stats.get(pair.remoteCandidateId);
      if (!local || !remote) return null;
      return `${local.candidateType}/${local.relayProtocol ?? local.protocol}->${remote.protocol}`;
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

/** Both join, hear each other, every connection's selected pair matches `want`, and `during` holds
 * (server metrics while the call runs); then both leave. */
async function call(want, during = () => {}) {
  try {
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
  firewall('');
  const before = joins('udp');
  await call(/^host\/udp->udp$/);
  assert.equal(joins('udp'), before + 2, 'the server counts both joins as direct UDP');
});

test('2. UDP blocked: ICE over TCP', async () => {
  firewall(`ip saddr ${CLIENT_IP} meta l4proto udp drop`);
  // An active TCP candidate's port is known only once connected: Chromium reports it as prflx.
  const before = joins('tcp');
  await call(/^(host|prflx)\/tcp->tcp$/, (metrics) => assert.match(metrics, /^chorus_sfu_tcp_connections [1-9]/m));
  assert.equal(joins('tcp'), before + 2, 'the server counts both joins as ICE-TCP');
});

test('3. only TCP to the HTTPS and TURN/TLS ports: TURN over TLS', async () => {
  firewall(`ip saddr ${CLIENT_IP} meta l4proto udp drop\n  ip saddr ${CLIENT_IP} tcp dport != { ${HTTPS}, ${TURN_TLS} } drop`);
  const before = joins('relay');
  await call(/^relay\/tls->udp$/, (metrics) => {
    assert.match(metrics, /^chorus_turn_allocations [1-9]/m);
    assert.match(metrics, /^chorus_turn_tls_connections [1-9]/m);
  });
  assert.equal(joins('relay'), before + 2, 'the server counts both joins as relayed');
  assert.deepEqual(errors.flat(), [], 'no page errors or CSP violations');
});

test('4. only coturn\'s UDP port: TURN/UDP through coturn with the credentials from joined', async () => {
  firewall(`ip saddr ${CLIENT_IP} udp dport != ${COTURN} drop\n  ip saddr ${CLIENT_IP} tcp dport != ${HTTPS} drop`);
  await call(/^relay\/udp->udp$/);
  assert.deepEqual(errors.flat(), [], 'no page errors or CSP violations');
});
