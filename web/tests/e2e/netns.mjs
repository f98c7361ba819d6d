// A two-host test network for the browser cases that need real network paths: a "server" and a
// "client" network namespace joined by a veth pair (10.77.0.1 and 10.77.0.2, IPv4 only), nftables in the
// server namespace, and Chromium started inside the client namespace. Needs root (`ip netns`).

import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './harness.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export const SERVER_IP = '10.77.0.1';
export const CLIENT_IP = '10.77.0.2';

export const run = (cmd, args, input) => execFileSync(cmd, args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();

/** Creates the two namespaces; `extraClientIps` are further addresses of the client host. */
export function createNetwork(extraClientIps = []) {
  const tag = String(process.pid % 100000);
  const srv = `chorus-srv-${tag}`;
  const cli = `chorus-cli-${tag}`;
  run('ip', ['netns', 'add', srv]);
  run('ip', ['netns', 'add', cli]);
  run('ip', ['link', 'add', `cs${tag}`, 'netns', srv, 'type', 'veth', 'peer', 'name', `cc${tag}`, 'netns', cli]);
  run('ip', ['-n', srv, 'addr', 'add', `${SERVER_IP}/24`, 'dev', `cs${tag}`]);
  for (const ip of [CLIENT_IP, ...extraClientIps]) run('ip', ['-n', cli, 'addr', 'add', `${ip}/24`, 'dev', `cc${tag}`]);
  for (const [ns, dev] of [[srv, `cs${tag}`], [cli, `cc${tag}`]]) {
    // IPv4 only: IPv6 address setup after the links come up makes Chromium report ERR_NETWORK_CHANGED.
    run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const inSrv = (cmd, args, input) => run('ip', ['netns', 'exec', srv, cmd, ...args], input);
  const inCli = (cmd, args, input) => run('ip', ['netns', 'exec', cli, cmd, ...args], input);
  return {
    srv,
    cli,
    /** The veth ends: traffic leaving `srvDev` is the client host's downlink, leaving `cliDev` its uplink. */
    srvDev: `cs${tag}`,
    cliDev: `cc${tag}`,
    inSrv,
    inCli,
    /** Replaces the server namespace's input filter with `rules` (nft statements, one per line). */
    firewall(rules) {
      try {
        inSrv('nft', ['delete', 'table', 'inet', 'case']);
      } catch {
        /* none yet */
      }
      inSrv('nft', ['-f', '-'], `table inet case {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ${rules}\n }\n}\n`);
    },
    /** Chromium (with the harness's fake devices) running in the client namespace (or the server's: `ns`). */
    async browser(dir, extraArgs = [], ns = cli) {
      const wrapper = join(dir, `chromium-in-${ns}`);
      writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${process.env.CHROMIUM || '/usr/bin/chromium'} "$@"\n`);
      chmodSync(wrapper, 0o755);
      const previous = process.env.CHROMIUM;
      process.env.CHROMIUM = wrapper;
      try {
        return await launchBrowser(extraArgs);
      } finally {
        if (previous === undefined) delete process.env.CHROMIUM;
        else process.env.CHROMIUM = previous;
      }
    },
    destroy() {
      for (const ns of [srv, cli]) {
        try {
          run('ip', ['netns', 'del', ns]);
        } catch {
          /* already gone */
        }
      }
    },
  };
}

/** A self-signed certificate for `ip` (openssl): [cert, key] paths in `dir`. */
export function certificateFor(dir, ip) {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', `/CN=${ip}`, '-addext', `subjectAltName=IP:${ip}`,
  ]);
  return [cert, key];
}

/**
 * Starts chorus in the server namespace, serving HTTPS itself on `SERVER_IP:port` (a self-signed certificate
 * in `dir`) with its data in `dir`/data, plus `args`; `onLog` gets its output. Resolves with the child process
 * once /healthz answers.
 */
export async function startChorusIn(net, dir, port, args, onLog) {
  const [cert, key] = certificateFor(dir, SERVER_IP);
  const bin = process.env.CHORUS_BIN || join(repo, 'target/debug/chorus');
  const origin = `https://${SERVER_IP}:${port}`;
  const child = spawn('ip', [
    'netns', 'exec', net.srv, bin, '--listen', `${SERVER_IP}:${port}`, '--data-dir', join(dir, 'data'),
    '--tls-cert', cert, '--tls-key', key, '--public-url', origin, '--public-ip', SERVER_IP, ...args,
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHORUS_LOG: process.env.CHORUS_LOG ?? 'warn' } });
  let log = '';
  const take = (d) => {
    log += d;
    onLog(String(d));
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if (net.inSrv('curl', ['-sk', '--max-time', '5', `${origin}/healthz`]).includes('ok')) return child;
    } catch {
      /* not up yet */
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`chorus did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Stops a child process (SIGTERM) and waits for it to exit. */
export async function stop(child) {
  if (!child || child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
}

/** Navigates, retrying while Chromium still settles its view of the new network. */
export async function open(page, url) {
  for (let i = 0; ; i++) {
    try {
      return await page.goto(url);
    } catch (e) {
      if (i >= 5 || !String(e).includes('ERR_NETWORK_CHANGED')) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Each voice peer connection's selected pair as `localType/protocol->remoteProtocol`, and inbound audio. */
export const media = (page) =>
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
