// Two users in real Chromium join the same voice channel through the SFU: each hears the other (decoded
// audio with a non-zero level in getStats), sees the other speaking, mutes and deafens with the keyboard
// shortcuts (the other side sees the icons), decodes the other's camera in a tile that asks the SFU for its
// size and pauses while hidden, sees a screen share as its own tile, survives a dropped voice socket, and
// sees the other leave. Screenshots: target/screenshots/voice-call.png (the grid as a viewer sees it), voice-call-sharing.png.
//
// The page exposes `window.__chorusVoice` while in a call (see web/assets/js/voice/index.js).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newContext, registerInUi, screenshot, until, watchErrors } from './harness.mjs';
import { forwardedLayer } from './callbed.mjs';

let server;
let browser;
let alice;
let bob;
let bobId;
let aliceId;
let inviteLink;
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
  inviteLink = link;
  await alice.keyboard.press('Escape');
  await bob.goto(link);
  await registerInUi(bob, 'bob');
  await bob.getByTestId('guild-name').filter({ hasText: 'Voice Club' }).waitFor();
  const me = (page) =>
    page.evaluate(async () => (await (await fetch('/api/v1/users/@me', { headers: { Authorization: `Bearer ${localStorage.getItem('chorus.token')}` } })).json()).id);
  aliceId = await me(alice);
  bobId = await me(bob);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Inbound RTP of one kind on the page's subscribe connection, summed. */
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

/** Frames decoded so far for the video shown in the tile matching `sel`. */
const tileFrames = (page, sel) =>
  page.evaluate(async (s) => {
    const v = /** @type {HTMLVideoElement|null} */ (document.querySelector(`${s} video`));
    const track = /** @type {MediaStream|null} */ (v?.srcObject ?? null)?.getVideoTracks()[0];
    const pc = /** @type {any} */ (window).__chorusVoice?.pcSubscribe;
    if (!track || !pc) return -1;
    let frames = -1;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.trackIdentifier === track.id) frames = r.framesDecoded ?? 0;
    });
    return frames;
  }, sel);

/** The subscribe connection's state, for failure messages. */
const diagnose = (page) =>
  page.evaluate(async () => {
    const v = /** @type {any} */ (window).__chorusVoice;
    if (!v) return null;
    const rtp = [];
    (await v.pcSubscribe.getStats()).forEach((r) => r.type === 'inbound-rtp' && rtp.push(`${r.kind} ${r.mid} ${r.packetsReceived}`));
    return {
      state: v.state,
      ice: [v.pcPublish?.iceConnectionState, v.pcSubscribe?.iceConnectionState],
      connection: [v.pcPublish?.connectionState, v.pcSubscribe?.connectionState],
      lastError: v.signaling.lastError,
      signaling: v.pcSubscribe?.signalingState,
      rtp,
      lines: v.pcSubscribe?.remoteDescription?.sdp.split('\r\n').filter((l) => /^(m=|a=msid:|a=mid|a=inactive|a=sendonly|a=group|a=candidate|a=ice-ufrag|a=bundle-only|c=)/.test(l)),
    };
  });

/** Polls `fn` until it returns a truthy value (or the deadline passes); returns the last value. */
async function poll(fn, ms = 20_000) {
  const deadline = Date.now() + ms;
  let v;
  do {
    v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 300));
  } while (Date.now() < deadline);
  return v;
}

/** The simulcast layer the SFU forwards to Bob for `trackId` now (`null`: none), from the admin stats Alice may read. */
const bobLayer = async (trackId) => {
  const sub = await forwardedLayer(alice, bobId, trackId);
  return sub ? sub.layer : 'no such subscription';
};

const voiceUser = (page, id) => page.locator(`[data-testid="voice-user"][data-user-id="${id}"]`);
const aliceCam = `[data-testid="video-tile"][data-kind="camera"][data-user-id="${'%A%'}"]`;
const camSel = () => aliceCam.replace('%A%', aliceId);
const screenSel = () => `[data-testid="video-tile"][data-kind="screen"][data-user-id="${aliceId}"]`;

test('both join the voice channel "General" and each is listed in it for the other', async () => {
  await alice.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  await bob.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  for (const page of [alice, bob]) {
    await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor();
    await page.getByTestId('voice-channel-name').filter({ hasText: 'General' }).waitFor();
    await voiceUser(page, aliceId).waitFor();
    await voiceUser(page, bobId).waitFor();
    await page.locator('#video-grid:not([hidden])').waitFor();
  }
  // The panel shows the ping measured by getStats once there is one.
  await bob.getByTestId('voice-ping').filter({ hasText: /\d+ ms/ }).waitFor({ timeout: 15_000 });
});

test("each receives the other's audio, decoded with a non-zero level", async () => {
  for (const page of [alice, bob]) {
    const s = await poll(async () => {
      const x = await inbound(page, 'audio');
      return x && x.packetsReceived > 50 && (x.audioLevel > 0 || x.totalAudioEnergy > 0) ? x : null;
    });
    assert.ok(s, `inbound audio with a level: ${JSON.stringify(await inbound(page, 'audio'))}`);
    const playing = await page.evaluate(() => [...document.querySelectorAll('[data-testid="voice-audio"] audio')].map((a) => !/** @type {HTMLAudioElement} */ (a).paused));
    assert.deepEqual(playing, [true], 'one hidden <audio> element, playing');
  }
});

test('each sees the other speaking (the fake microphone beeps)', async () => {
  await voiceUser(alice, bobId).and(alice.locator('.speaking')).waitFor({ timeout: 20_000 });
  await voiceUser(bob, aliceId).and(bob.locator('.speaking')).waitFor({ timeout: 20_000 });
  assert.ok(await alice.evaluate((id) => /** @type {any} */ (window).__chorus.voice.speakingUserIds().has(id), bobId));
});

test('Ctrl+Shift+M mutes (the other side sees it and the ring stops), pressing again unmutes', async () => {
  await bob.locator('body').press('Control+Shift+M');
  await bob.locator('[data-testid="voice-mute"][aria-pressed="true"]').waitFor();
  assert.equal(await bob.evaluate(() => /** @type {any} */ (window).__chorusVoice.mic.enabled), false);
  await voiceUser(alice, bobId).locator('[aria-label="muted"]').waitFor();
  await alice.locator(`[data-testid="voice-user"][data-user-id="${bobId}"]:not(.speaking)`).waitFor({ timeout: 10_000 });
  await bob.locator('body').press('Control+Shift+M');
  await bob.locator('[data-testid="voice-mute"][aria-pressed="false"]').waitFor();
  await voiceUser(alice, bobId).locator('[aria-label="muted"]').waitFor({ state: 'detached' });
  await voiceUser(alice, bobId).and(alice.locator('.speaking')).waitFor({ timeout: 20_000 });
});

test('Ctrl+Shift+D deafens: remote audio muted, the other side sees it; again undeafens', async () => {
  await bob.locator('body').press('Control+Shift+D');
  await bob.locator('[data-testid="voice-deafen"][aria-pressed="true"]').waitFor();
  const muted = await bob.evaluate(() => [...document.querySelectorAll('[data-testid="voice-audio"] audio')].map((a) => /** @type {HTMLAudioElement} */ (a).muted));
  assert.deepEqual(muted, [true]);
  await voiceUser(alice, bobId).locator('[aria-label="deafened"]').waitFor();
  await bob.locator('body').press('Control+Shift+D');
  await bob.locator('[data-testid="voice-deafen"][aria-pressed="false"]').waitFor();
  await voiceUser(alice, bobId).locator('[aria-label="deafened"]').waitFor({ state: 'detached' });
  assert.deepEqual(
    await bob.evaluate(() => [...document.querySelectorAll('[data-testid="voice-audio"] audio')].map((a) => /** @type {HTMLAudioElement} */ (a).muted)),
    [false],
  );
});

test('a camera turned on by one is decoded in a tile by the other, which asks for its size', async () => {
  await alice.getByTestId('voice-camera').click();
  await alice.locator('[data-testid="voice-camera"][aria-pressed="true"]').waitFor();
  await alice.locator('[data-testid="video-tile"][data-local="true"][data-kind="camera"]').waitFor();
  await bob.locator(camSel()).waitFor({ timeout: 20_000 });
  await until(bob, (sel) => /** @type {HTMLVideoElement|null} */ (document.querySelector(sel))?.videoWidth > 0, `${camSel()} video`);
  const frames = await poll(async () => ((await tileFrames(bob, camSel())) > 10 ? tileFrames(bob, camSel()) : 0), 15_000);
  assert.ok(frames > 10, `decoded video frames: ${frames} ${JSON.stringify(await inbound(bob, 'video'))}`);
  const trackId = await bob.locator(camSel()).getAttribute('data-track-id');
  const req = await poll(() =>
    bob.evaluate((id) => /** @type {any} */ (window).__chorusVoice.tileRequests.filter((r) => r.track_id === id).at(-1), trackId),
  );
  const box = await bob.locator(camSel()).boundingBox();
  assert.equal(req?.paused, false, JSON.stringify(req));
  assert.ok(req.max_width >= box.width && req.max_width < box.width + 90, `max_width ${req.max_width} fits the tile width ${box.width}`);
  assert.ok(req.max_height >= box.height && req.max_height < box.height + 90, `max_height ${req.max_height} fits the tile height ${box.height}`);
});

test('a hidden tile pauses its track at the SFU (no new frames) and resumes when shown', async () => {
  const trackId = await bob.locator(camSel()).getAttribute('data-track-id');
  // Video well under way first (the start of a stream can still be completing from retransmissions).
  assert.ok(await poll(async () => (await tileFrames(bob, camSel())) > 40), 'video flowing before the pause');
  await bob.evaluate((sel) => (/** @type {HTMLElement} */ (document.querySelector(sel)).style.display = 'none'), camSel());
  const paused = await poll(() =>
    bob.evaluate((id) => /** @type {any} */ (window).__chorusVoice.tileRequests.filter((r) => r.track_id === id).at(-1)?.paused, trackId),
  );
  assert.equal(paused, true);
  // The SFU itself says it forwards no layer of that track to Bob any more (Alice is the instance admin).
  const layer = () => bobLayer(trackId);
  assert.ok(await poll(async () => (await layer()) === null), `Bob's layer at the SFU while hidden: ${await layer()}`);
  // What was already in flight may still be decoded: str0m's pacer holds up to 2 s of media when the
  // estimate is below the stream's rate (as on a busy CI machine), plus the jitter buffer. Then the frames stop: at most 2 in 2 s, where an unpaused track brings dozens.
  const settled = await poll(async () => {
    const a = await tileFrames(bob, camSel());
    await bob.waitForTimeout(1000);
    return (await tileFrames(bob, camSel())) - a <= 1;
  }, 10_000);
  assert.ok(settled, `frames kept coming after the pause: ${JSON.stringify(await inbound(bob, 'video'))}`);
  const a = await tileFrames(bob, camSel());
  const before = await inbound(bob, 'video');
  await bob.waitForTimeout(2000);
  const b = await tileFrames(bob, camSel());
  assert.ok(
    b - a <= 2,
    `paused: frames ${a} → ${b} in 2 s; inbound ${JSON.stringify(before)} → ${JSON.stringify(await inbound(bob, 'video'))}; ` +
      `requests ${JSON.stringify(await bob.evaluate(() => /** @type {any} */ (window).__chorusVoice.tileRequests))}`,
  );
  await bob.evaluate((sel) => (/** @type {HTMLElement} */ (document.querySelector(sel)).style.display = ''), camSel());
  const resumed = await poll(async () => (await tileFrames(bob, camSel())) > b + 10);
  assert.ok(resumed, 'frames flow again once the tile is visible');
  assert.ok(await poll(async () => (await layer()) !== null), 'the SFU forwards a layer to Bob again');
});

test('a screen share appears as its own tile and is decoded', async () => {
  await alice.getByTestId('voice-screen').click();
  await alice.locator('[data-testid="voice-screen"][aria-pressed="true"]').waitFor();
  await bob.locator(screenSel()).waitFor({ timeout: 20_000 });
  await until(bob, (sel) => /** @type {HTMLVideoElement|null} */ (document.querySelector(sel))?.videoWidth > 0, `${screenSel()} video`);
  assert.equal(await bob.locator(camSel()).count(), 1, 'the camera tile is still there');
  await until(bob, (sel) => /** @type {HTMLVideoElement|null} */ (document.querySelector(sel))?.videoWidth > 0, `${camSel()} video`);
  await bob.waitForTimeout(1000);
  await screenshot(bob, 'voice-call');
  await screenshot(alice, 'voice-call-sharing');
});

test('turning the camera off unpublishes it: the tile goes away on the other side', async () => {
  await alice.getByTestId('voice-camera').click();
  await alice.locator('[data-testid="voice-camera"][aria-pressed="false"]').waitFor();
  await alice.locator('[data-testid="video-tile"][data-local="true"][data-kind="camera"]').waitFor({ state: 'detached' });
  // The SFU sends track_unpublished when the publish line goes inactive.
  const gone = await poll(() => bob.evaluate((sel) => !document.querySelector(sel), camSel()), 15_000);
  assert.ok(gone, "Alice's camera tile is gone on Bob's side");
  assert.equal(await bob.locator(screenSel()).count(), 1, 'the screen share stays');
  // On again: live video on Bob's side, and Alice's publish SDP did not grow (the slot is reused).
  const lines = () => alice.evaluate(() => /** @type {any} */ (window).__chorusVoice.pcPublish.localDescription.sdp.split('\nm=').length - 1);
  const before = await lines();
  await alice.getByTestId('voice-camera').click();
  await bob.locator(`${camSel()}:not(.stalled)`).waitFor({ timeout: 15_000 });
  await until(bob, (sel) => /** @type {HTMLVideoElement|null} */ (document.querySelector(sel))?.videoWidth > 0, `${camSel()} video`);
  assert.equal(await lines(), before);
});

test('a dropped voice socket shows the reconnect banner and the session resumes', async () => {
  await bob.evaluate(() => /** @type {any} */ (window).__chorusVoice.signaling.ws.close());
  await bob.getByTestId('voice-reconnecting').waitFor();
  await bob.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 20_000 });
  await bob.getByTestId('voice-reconnecting').waitFor({ state: 'hidden' });
  // Still the same participant for Alice: resumed, not rejoined.
  await voiceUser(alice, bobId).waitFor();
  const before = (await inbound(bob, 'audio')).packetsReceived;
  await bob.waitForTimeout(1500);
  assert.ok((await inbound(bob, 'audio')).packetsReceived > before, 'audio keeps flowing after the resume');
});

test('an ICE restart (what a network change triggers) renews both connections and media keeps flowing', async () => {
  const ufrags = () =>
    bob.evaluate(() => {
      const v = /** @type {any} */ (window).__chorusVoice;
      const u = (pc) => /a=ice-ufrag:(\S+)/.exec(pc.remoteDescription.sdp)?.[1];
      return [u(v.pcPublish), u(v.pcSubscribe)];
    });
  const before = await ufrags();
  await bob.evaluate(() => {
    const v = /** @type {any} */ (window).__chorusVoice;
    v.restartIce('publish', true);
    v.restartIce('subscribe', true);
  });
  const after = await poll(async () => {
    const u = await ufrags();
    return u[0] !== before[0] && u[1] !== before[1] ? u : null;
  }, 10_000);
  assert.ok(after, `new SFU credentials on both connections: ${before} → ${await ufrags()}`);
  await bob.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor();
  const [b0, a0] = [(await inbound(bob, 'audio')).packetsReceived, (await inbound(alice, 'audio')).packetsReceived];
  await bob.waitForTimeout(1500);
  assert.ok((await inbound(bob, 'audio')).packetsReceived > b0, 'Bob still receives');
  assert.ok((await inbound(alice, 'audio')).packetsReceived > a0, 'Alice still receives Bob');
});

test('after the resume window a new session starts with a fresh grant, and the call carries on', async () => {
  const old = await bob.evaluate(() => /** @type {any} */ (window).__chorusVoice.participantId);
  // As if the socket had been gone for more than 30 s: the client no longer has a session to resume.
  await bob.evaluate(() => {
    const sig = /** @type {any} */ (window).__chorusVoice.signaling;
    sig.sessionId = null;
    sig.ws.close();
  });
  const fresh = await poll(() =>
    bob.evaluate((o) => {
      const v = /** @type {any} */ (window).__chorusVoice;
      return v.state === 'connected' && v.participantId && v.participantId !== o ? v.participantId : null;
    }, old),
  );
  assert.ok(fresh, 'a new participant id');
  await bob.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 20_000 });
  await bob.locator(screenSel()).waitFor({ timeout: 20_000 });
  const got = await poll(async () => (await inbound(bob, 'audio'))?.packetsReceived > 20);
  assert.ok(got, `audio flows in the new session: ${JSON.stringify(await diagnose(bob))}`);
  await voiceUser(alice, bobId).waitFor();
  assert.ok(await poll(() => alice.evaluate((p) => /** @type {any} */ (window).__chorusVoice.participants.has(p), fresh)), 'Alice sees the new participant');
});

test('leaving removes the participant and the tiles on the other side', async () => {
  await alice.getByTestId('voice-leave').click();
  await alice.locator('#voice-panel[hidden]').waitFor({ state: 'attached' });
  await alice.locator('#video-grid[hidden]').waitFor({ state: 'attached' });
  await voiceUser(bob, aliceId).waitFor({ state: 'detached', timeout: 20_000 });
  await bob.locator(`[data-testid="video-tile"][data-user-id="${aliceId}"]`).first().waitFor({ state: 'detached', timeout: 20_000 });
  assert.equal(await alice.evaluate(() => /** @type {any} */ (window).__chorusVoice), null);
  assert.deepEqual(errors.flat(), [], 'no uncaught errors in either page');
});

// The one who leaves here joined first, so the media line that carries the others' subscribe transport
// (their BUNDLE tag) loses its track: the SFU turns it inactive instead of rejecting it, and their sessions carry on.
test(
  'with three in the call, the first to have joined leaves and the other two carry on undisturbed',
  async () => {
    const carol = await (await newContext(browser)).newPage();
    await carol.goto(inviteLink);
    await registerInUi(carol, 'carol');
    for (const page of [carol, alice]) {
      await page.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
      await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor();
    }
    await alice.waitForTimeout(2000);
    // Bob was there first: his tracks come first in the others' subscribe connections.
    const ids = () => Promise.all([alice, carol].map((p) => p.evaluate(() => /** @type {any} */ (window).__chorusVoice.participantId)));
    const before = await ids();
    await bob.getByTestId('voice-leave').click();
    await alice.waitForTimeout(3000);
    const why = await Promise.all([alice, carol].map((p) => p.evaluate(() => /** @type {any} */ (window).__chorusVoice.signaling.lastError)));
    assert.deepEqual(await ids(), before, `the same sessions (errors: ${JSON.stringify(why)})`);
    await voiceUser(alice, bobId).waitFor({ state: 'detached' });
    const a0 = (await inbound(alice, 'audio')).packetsReceived;
    await alice.waitForTimeout(1500);
    assert.ok((await inbound(alice, 'audio')).packetsReceived > a0, "Alice still receives Carol's audio");
    assert.deepEqual(errors.flat(), [], 'no uncaught errors');
  },
);
