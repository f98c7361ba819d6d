// By hand (CI runs web/tests/e2e/*.e2e.mjs, not this folder): issue 15's case 4, a publisher whose uplink is
// capped under its full layer. Alice publishes her camera (simulcast q/h/f) from the client host, whose uplink
// `tc` shapes; Bob watches it focused (one large tile) from the server's host. Capped, Alice's Chromium stops
// encoding `f`; Bob must fall back to `h` without a long freeze, and get `f` again when the cap lifts.
//
//   CHORUS_BIN=$PWD/target/debug/chorus node --test web/tests/e2e/byhand/uplink_cap.e2e.mjs
//
// Prints one JSON line (`uplink-cap:`) for docs/benchmarks.md; UPLINK_CAP_KBIT=<n> sets the cap (800, the
// issue's figure), UPLINK_TIMELINE=<file> writes the layer forwarded, Bob's estimate and what Alice sends per layer
// every 500 ms, UPLINK_LOG=<file> the server's log.
// Needs root (`ip netns`, `tc`) and ffmpeg.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aliceInvitesBob, watchErrors } from '../harness.mjs';
import { SERVER_IP, createNetwork, open, startChorusIn, stop } from '../netns.mjs';
import { WIDTH, between, fakeCapture, forwardedLayer, joinVoice, openPage, receiverStats, shape, sleep, userId, within } from '../callbed.mjs';

const HTTPS = 8443;
const UDP_BASE = 50000;
const CAP_KBIT = Number(process.env.UPLINK_CAP_KBIT || 800);

let net;
let dir;
let chorus;
let log = '';
let publisherBrowser;
let viewerBrowser;
let alice;
let bob;
let bobId;
let trackId;
const errors = [];
const measured = { cap_kbit: CAP_KBIT };
const timeline = [];
const t0 = Date.now();
let sampling = true;

const layer = async () => (await forwardedLayer(bob, bobId, trackId))?.layer ?? null;

/** What Alice's camera sends per simulcast layer: bytes so far, frame width and fps, and why Chromium limits it. */
const sent = (page) =>
  page.evaluate(async () => {
    const v = /** @type {any} */ (window).__chorusVoice;
    const out = {};
    if (!v?.pcPublish) return out;
    (await v.pcPublish.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        out[r.rid ?? '-'] = { bytes: r.bytesSent ?? 0, width: r.frameWidth ?? 0, fps: r.framesPerSecond ?? 0, limit: r.qualityLimitationReason };
      }
    });
    return out;
  });

async function sample() {
  let last = null;
  while (sampling) {
    if (trackId) {
      const [fwd, tx] = await Promise.all([forwardedLayer(bob, bobId, trackId), sent(alice)]).catch(() => [null, null]);
      if (tx) {
        const kbit = Object.fromEntries(Object.entries(tx).map(([rid, s]) => [rid, last?.[rid] ? Math.round(((s.bytes - last[rid].bytes) * 8) / 500) : 0]));
        timeline.push({ t: Date.now() - t0, layer: fwd?.layer ?? null, bwe_kbit: Math.round((fwd?.bwe ?? 0) / 1000), sent_kbit: kbit, limit: Object.values(tx)[0]?.limit });
        last = tx;
      }
    }
    await sleep(500);
  }
}

before(async () => {
  net = createNetwork();
  dir = mkdtempSync(join(tmpdir(), 'chorus-uplink-'));
  chorus = await startChorusIn(net, dir, HTTPS, ['--udp-port-base', String(UDP_BASE), '--sfu-workers', '1', '--rtc-tcp-port', '0'], (d) => (log += d));
  // Alice publishes from the client's host (her uplink is the link under test); Bob watches from the server's.
  publisherBrowser = await net.browser(dir, ['--ignore-certificate-errors', ...fakeCapture()]);
  viewerBrowser = await net.browser(dir, ['--ignore-certificate-errors'], net.srv);
  alice = await openPage(publisherBrowser, { width: 1280, height: 720 });
  bob = await openPage(viewerBrowser, { width: 1920, height: 1080 });
  errors.push(watchErrors(alice), watchErrors(bob));
  // Bob is the instance's admin here (the first account): he reads the SFU's stats.
  await aliceInvitesBob(bob, alice, `https://${SERVER_IP}:${HTTPS}`, 'Uplink Club', open);
  sample();
  bobId = await userId(bob);
});

after(async () => {
  sampling = false;
  console.log(`uplink-cap: ${JSON.stringify(measured)}`);
  if (process.env.UPLINK_TIMELINE) writeFileSync(process.env.UPLINK_TIMELINE, JSON.stringify(timeline));
  // With CHORUS_LOG=warn,str0m::bwe=trace: what the estimators did.
  if (process.env.UPLINK_LOG) writeFileSync(process.env.UPLINK_LOG, log);
  await publisherBrowser?.close();
  await viewerBrowser?.close();
  await stop(chorus);
  net?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a publisher capped under its full layer: the viewer falls back to `h` without a long freeze, and back to `f`', { timeout: 300_000 }, async () => {
  await joinVoice([alice, bob]);
  await alice.getByTestId('voice-camera').click();
  const tile = bob.locator('[data-testid="video-tile"][data-kind="camera"]');
  await tile.waitFor({ timeout: 30_000 });
  trackId = await tile.getAttribute('data-track-id');
  await tile.click();
  const clicked = Date.now();
  const full = async () => (await layer()) === 'f' && (await receiverStats(bob))?.width > WIDTH.h;
  // The first frames go out at `f` before the estimate is known: count `f` from 3 s on.
  await sleep(3_000);
  measured.time_to_f_ms = (await within(60_000, full)) === null ? null : Date.now() - clicked;
  assert.ok(measured.time_to_f_ms !== null, `Bob gets \`f\` unshaped (layer ${await layer()})`);
  await sleep(3_000);

  const before = await receiverStats(bob);
  const capped = Date.now();
  timeline.push({ t: capped - t0, event: `uplink ${CAP_KBIT} kbit/s` });
  shape(net.cli, net.cliDev, { rateKbit: CAP_KBIT });
  const down = await within(20_000, async () => ['q', 'h'].includes(await layer()));
  measured.time_to_down_switch_ms = down;
  assert.ok(down !== null, `a lower layer within 20 s of the cap (now ${await layer()})`);
  await sleep(3_000);
  const settled = await receiverStats(bob);
  measured.switch = between(before, settled);
  await sleep(15_000);
  const stable = between(settled, await receiverStats(bob));
  measured.capped = { layer: await layer(), ...stable };

  timeline.push({ t: Date.now() - t0, event: 'uplink unshaped' });
  shape(net.cli, net.cliDev, {});
  measured.back_to_f_ms = await within(60_000, full);
  measured.errors = errors.flat().length;
  assert.ok(stable.framesDecoded / stable.seconds >= 12, `the video goes on while capped: ${JSON.stringify(stable)}`);
  assert.ok(measured.switch.freezeSeconds < 3, `frozen ${measured.switch.freezeSeconds} s while falling back`);
  assert.ok(measured.back_to_f_ms !== null, 'back to `f` within 60 s of the cap lifting');
});
