// ICE over TCP in real Chromium: two users whose browsers are shown no UDP candidate of the SFU (the
// /voice socket is routed through the test, which strips them from the SFU's offers and answers, as a
// network that blocks UDP leaves only TCP) join one voice channel. Each decodes the other's audio, the
// selected candidate pair of every peer connection is TCP, and the server counts the connections.
// (The same over real network paths — nftables in network namespaces — is network.e2e.mjs.)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startServer, launchBrowser, newContext, registerInUi, watchErrors } from './harness.mjs';

let server;
let browser;
let alice;
let bob;
const errors = [];
const stripped = { count: 0 };

/** The /voice socket of a context, with every UDP candidate removed from what the server sends. */
async function onlyTcpCandidates(ctx) {
  await ctx.routeWebSocket(/\/voice$/, (ws) => {
    const srv = ws.connectToServer();
    ws.onMessage((m) => srv.send(m));
    srv.onMessage((m) => {
      let msg;
      try {
        msg = JSON.parse(String(m));
      } catch {
        ws.send(m);
        return;
      }
      if (typeof msg.sdp === 'string') {
        const lines = msg.sdp.split('\r\n');
        const kept = lines.filter((l) => !(l.startsWith('a=candidate:') && / udp /i.test(l)));
        stripped.count += lines.length - kept.length;
        msg.sdp = kept.join('\r\n');
      }
      ws.send(JSON.stringify(msg));
    });
  });
}

before(async () => {
  server = await startServer(['--rtc-tcp-port', String(await freePort())]);
  browser = await launchBrowser();
  const aliceCtx = await newContext(browser);
  const bobCtx = await newContext(browser);
  await onlyTcpCandidates(aliceCtx);
  await onlyTcpCandidates(bobCtx);
  alice = await aliceCtx.newPage();
  bob = await bobCtx.newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
  await alice.goto(`${server.url}/register`);
  await registerInUi(alice, 'alice');
  await alice.getByTestId('create-guild').click();
  await alice.getByTestId('prompt-input').fill('TCP Club');
  await alice.getByTestId('prompt-ok').click();
  await alice.getByTestId('guild-name').filter({ hasText: 'TCP Club' }).waitFor();
  await alice.getByTestId('invite-button').click();
  const link = await alice.getByTestId('invite-link').inputValue();
  await alice.keyboard.press('Escape');
  await bob.goto(link);
  await registerInUi(bob, 'bob');
  await bob.getByTestId('guild-name').filter({ hasText: 'TCP Club' }).waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The transport protocol of each peer connection's selected candidate pair (local side), and inbound audio. */
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
      return local && remote ? `${local.protocol}->${remote.protocol}${remote.tcpType ? `/${remote.tcpType}` : ''}` : null;
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

test('with no UDP path, both join over ICE-TCP and each decodes the other\'s audio', async () => {
  await alice.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  await bob.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  for (const page of [alice, bob]) {
    await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 30_000 });
  }
  assert.ok(stripped.count > 0, 'the SFU offered UDP candidates, and the test took them away');
  for (const page of [alice, bob]) {
    let m;
    const deadline = Date.now() + 30_000;
    do {
      m = await media(page);
      if (m && m.packets > 50 && m.level > 0 && m.publish && m.subscribe) break;
      await new Promise((r) => setTimeout(r, 300));
    } while (Date.now() < deadline);
    assert.ok(m && m.packets > 50 && m.level > 0, `decoded audio with a level over TCP: ${JSON.stringify(m)}`);
    assert.equal(m.publish, 'tcp->tcp/passive', 'the publish connection runs over TCP to the SFU\'s passive candidate');
    assert.equal(m.subscribe, 'tcp->tcp/passive', 'so does the subscribe connection');
  }
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const open = Number(/^chorus_sfu_tcp_connections (\d+)/m.exec(metrics)?.[1] ?? 0);
  assert.ok(open >= 4, `the SFU holds both users' two TCP connections each: ${open}`);
  assert.deepEqual(errors.flat(), [], 'no page errors or CSP violations');
});
