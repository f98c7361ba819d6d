// Two users in real Chromium join the same voice channel through the SFU: each hears the other (decoded
// audio with a non-zero level in getStats), sees the other speaking, decodes the other's camera, sees a
// screen share as its own tile, and sees the other leave.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newContext, registerInUi, screenshot, until, watchErrors } from './harness.mjs';

let server;
let browser;
let alice;
let bob;
let bobId;
let aliceId;
const errors = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  alice = await (await newContext(browser)).newPage();
  bob = await (await newContext(browser)).newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
  await alice.goto(`${server.url}/register`);
  await registerInUi(alice, 'alice');
  await alice.getByTestId('create-guild').click();
  await alice.getByTestId('prompt-input').fill('Voice Club');
  await alice.getByTestId('prompt-ok').click();
  await alice.getByTestId('guild-name').filter({ hasText: 'Voice Club' }).waitFor();
  await alice.getByTestId('invite-button').click();
  const link = await alice.getByTestId('invite-link').inputValue();
  await alice.keyboard.press('Escape');
  await bob.goto(link);
  await registerInUi(bob, 'bob');
  await bob.getByTestId('guild-name').filter({ hasText: 'Voice Club' }).waitFor();
  aliceId = await alice.evaluate(async () => (await (await fetch('/api/v1/users/@me', { headers: { Authorization: `Bearer ${localStorage.getItem('chorus.token')}` } })).json()).id);
  bobId = await bob.evaluate(async () => (await (await fetch('/api/v1/users/@me', { headers: { Authorization: `Bearer ${localStorage.getItem('chorus.token')}` } })).json()).id);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Inbound RTP of one kind on the page's subscribe connection. */
const inbound = (page, kind) =>
  page.evaluate(async (k) => {
    const pc = /** @type {any} */ (window).__chorusVoice?.pcSubscribe;
    if (!pc) return null;
    const out = { packetsReceived: 0, audioLevel: 0, totalAudioEnergy: 0, framesDecoded: 0 };
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === k) {
        out.packetsReceived += r.packetsReceived ?? 0;
        out.audioLevel = Math.max(out.audioLevel, r.audioLevel ?? 0);
        out.totalAudioEnergy += r.totalAudioEnergy ?? 0;
        out.framesDecoded += r.framesDecoded ?? 0;
      }
    });
    return out;
  }, kind);

test('both join the voice channel and each is listed in it for the other', async () => {
  await alice.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  await bob.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  for (const page of [alice, bob]) {
    await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor();
    await page.locator(`[data-testid="voice-user"][data-user-id="${aliceId}"]`).waitFor();
    await page.locator(`[data-testid="voice-user"][data-user-id="${bobId}"]`).waitFor();
  }
});

test('each receives the other\'s audio, decoded with a non-zero level', async () => {
  for (const page of [alice, bob]) {
    await until(page, async () => true);
    const deadline = Date.now() + 20_000;
    let s;
    do {
      s = await inbound(page, 'audio');
      if (s && s.packetsReceived > 50 && (s.audioLevel > 0 || s.totalAudioEnergy > 0)) break;
      await page.waitForTimeout(500);
    } while (Date.now() < deadline);
    assert.ok(s && s.packetsReceived > 50, `inbound audio packets: ${JSON.stringify(s)}`);
    assert.ok(s.audioLevel > 0 || s.totalAudioEnergy > 0, `decoded audio has a level: ${JSON.stringify(s)}`);
  }
});

test('each sees the other speaking (the fake microphone beeps)', async () => {
  await alice.locator(`[data-testid="voice-user"][data-user-id="${bobId}"].speaking`).waitFor({ timeout: 20_000 });
  await bob.locator(`[data-testid="voice-user"][data-user-id="${aliceId}"].speaking`).waitFor({ timeout: 20_000 });
});

test('a camera turned on by one is decoded in a tile by the other', async () => {
  await alice.getByTestId('voice-camera').click();
  const tile = bob.locator(`[data-testid="video-tile"][data-kind="camera"][data-user-id="${aliceId}"]`);
  await tile.waitFor({ timeout: 20_000 });
  await until(bob, (sel) => {
    const v = /** @type {HTMLVideoElement|null} */ (document.querySelector(sel));
    return v && v.videoWidth > 0;
  }, `[data-testid="video-tile"][data-kind="camera"][data-user-id="${aliceId}"] video`);
  const deadline = Date.now() + 15_000;
  let s;
  do {
    s = await inbound(bob, 'video');
    if (s && s.framesDecoded > 10) break;
    await bob.waitForTimeout(500);
  } while (Date.now() < deadline);
  assert.ok(s && s.framesDecoded > 10, `decoded video frames: ${JSON.stringify(s)}`);
});

test('a screen share appears as its own tile', async () => {
  await alice.getByTestId('voice-screen').click();
  await bob.locator(`[data-testid="video-tile"][data-kind="screen"][data-user-id="${aliceId}"]`).waitFor({ timeout: 20_000 });
  await bob.waitForTimeout(1000);
  await screenshot(bob, 'voice-call');
});

test('a dropped voice socket shows the reconnect banner and the session resumes', async () => {
  await bob.evaluate(() => /** @type {any} */ (window).__chorusVoice.ws.close());
  await bob.getByTestId('voice-reconnecting').waitFor();
  await bob.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 20_000 });
  assert.equal(await bob.getByTestId('voice-reconnecting').count(), 0);
  // Still the same participant for Alice: resumed, not rejoined.
  await alice.locator(`[data-testid="voice-user"][data-user-id="${bobId}"]`).waitFor();
  const before = (await inbound(bob, 'audio')).packetsReceived;
  await bob.waitForTimeout(1500);
  assert.ok((await inbound(bob, 'audio')).packetsReceived > before, 'audio keeps flowing after the resume');
});

test('leaving removes the participant on the other side', async () => {
  await alice.getByTestId('voice-leave').click();
  await bob.locator(`[data-testid="voice-user"][data-user-id="${aliceId}"]`).waitFor({ state: 'detached', timeout: 20_000 });
  await bob.locator(`[data-testid="video-tile"][data-user-id="${aliceId}"]`).first().waitFor({ state: 'detached', timeout: 20_000 });
  assert.deepEqual(errors.flat(), [], 'no uncaught errors in either page');
});
