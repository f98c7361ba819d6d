// Moderation in real Chromium, one server, three users (alice owns the server; bob and carol are members):
// (a) alice server-mutes bob from the voice roster's member menu while he talks: carol's decoded audio of
//     bob drops to silence, both see the server-mute icon, and unmuting (from the member list's "…" menu)
//     brings his voice back; carol, without the permission, is offered no menu at all;
// (b) alice moves bob to another voice channel: bob's client rejoins there by itself (panel, sidebar and
//     the SFU's room agree); then she disconnects him: he is told so and does not come back;
// (c) the server settings' Audit log lists those actions in words, newest first, pages back with
//     "Load more", and filters by action;
// (d) slow mode set in the channel settings: bob sees it, counts down after a send and cannot send again
//     until the wait is over; the server refuses a send that skips the client (429 slow_mode with
//     Retry-After), and after a reload the client shows that refusal with the wait; alice is exempt.
// Screenshots: target/screenshots/member-menu.png, audit-log.png, slow-mode.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newContext, registerInUi, screenshot, watchErrors } from './harness.mjs';

let server;
let browser;
let alice;
let bob;
let carol;
let guildId;
let generalVoice;
let lounge;
const ids = {};
const errors = [];

/** An API call from a page, with that page's token; resolves to {status, headers, body}. */
const call = (page, method, path, body) =>
  page.evaluate(
    async ([m, p, b]) => {
      const r = await fetch(`/api/v1${p}`, {
        method: m,
        headers: { Authorization: `Bearer ${localStorage.getItem('chorus.token')}`, ...(b ? { 'Content-Type': 'application/json' } : {}) },
        body: b ? JSON.stringify(b) : undefined,
      });
      const text = await r.text();
      return { status: r.status, retryAfter: r.headers.get('Retry-After'), body: text ? JSON.parse(text) : null };
    },
    [method, path, body],
  );

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  alice = await (await newContext(browser)).newPage();
  bob = await (await newContext(browser)).newPage();
  carol = await (await newContext(browser)).newPage();
  errors.push(watchErrors(alice), watchErrors(bob), watchErrors(carol));
  await alice.goto(`${server.url}/register`);
  await registerInUi(alice, 'alice');
  await alice.getByTestId('create-guild').click();
  await alice.getByTestId('prompt-input').fill('Mod Club');
  await alice.getByTestId('prompt-ok').click();
  await alice.getByTestId('guild-name').filter({ hasText: 'Mod Club' }).waitFor();
  guildId = /\/channels\/(\d+)/.exec(alice.url())[1];
  generalVoice = await alice.getByTestId('voice-channel').filter({ hasText: 'General' }).getAttribute('data-channel-id');
  const created = await call(alice, 'POST', `/guilds/${guildId}/channels`, { name: 'Lounge', kind: 'voice' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  lounge = created.body.id;
  await alice.locator(`[data-testid="voice-channel"][data-channel-id="${lounge}"]`).waitFor();
  await alice.getByTestId('invite-button').click();
  const link = await alice.getByTestId('invite-link').inputValue();
  await alice.keyboard.press('Escape');
  for (const [page, name] of [[bob, 'bob'], [carol, 'carol']]) {
    await page.goto(link);
    await registerInUi(page, name);
    await page.getByTestId('guild-name').filter({ hasText: 'Mod Club' }).waitFor();
  }
  for (const [page, name] of [[alice, 'alice'], [bob, 'bob'], [carol, 'carol']]) ids[name] = (await call(page, 'GET', '/users/@me')).body.id;
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Polls `fn` until it returns a truthy value (or the deadline passes); returns the last value. */
async function poll(fn, ms = 20_000) {
  const deadline = Date.now() + ms;
  let v;
  do {
    v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 250));
  } while (Date.now() < deadline);
  return v;
}

/**
 * The audio `page` decodes from one user: packets received, the level now and the energy so far
 * (inbound-rtp of the subscribe connection, matched to the user through the media line's msid).
 */
const audioFrom = (page, userId) =>
  page.evaluate(async (uid) => {
    const v = /** @type {any} */ (window).__chorusVoice;
    if (!v?.pcSubscribe) return null;
    let out = null;
    (await v.pcSubscribe.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp' || r.kind !== 'audio') return;
      const line = v.lines.get(r.mid);
      if (!line || v.participants.get(line.participantId)?.user_id !== uid) return;
      out = { packets: r.packetsReceived ?? 0, level: r.audioLevel ?? 0, energy: r.totalAudioEnergy ?? 0 };
    });
    return out;
  }, userId);

/** What `page` decoded from `userId` over `ms`: the energy added and the highest level seen. */
async function listen(page, userId, ms = 1200) {
  const a = await audioFrom(page, userId);
  let level = a?.level ?? 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await page.waitForTimeout(200);
    level = Math.max(level, (await audioFrom(page, userId))?.level ?? 0);
  }
  const b = await audioFrom(page, userId);
  return { energy: (b?.energy ?? 0) - (a?.energy ?? 0), packets: (b?.packets ?? 0) - (a?.packets ?? 0), level, last: b?.level ?? 0 };
}

const voiceUser = (page, id) => page.locator(`[data-testid="voice-user"][data-user-id="${id}"]`);
/** The voice user row of `id` under one voice channel of `page`'s sidebar. */
const voiceUserIn = (page, channelId, id) =>
  page.locator('li', { has: page.locator(`[data-testid="voice-channel"][data-channel-id="${channelId}"]`) }).locator(`[data-testid="voice-user"][data-user-id="${id}"]`);
const menu = (page) => page.getByTestId('member-menu');

test('(a) the owner server-mutes a talking member: the others hear silence; unmuting brings the voice back', async () => {
  for (const page of [bob, carol]) await page.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
  for (const page of [bob, carol]) await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor();
  const hearing = await poll(async () => {
    const l = await listen(carol, ids.bob, 1000);
    return l.energy > 0 && l.level > 0 ? l : null;
  });
  assert.ok(hearing, `carol hears bob before the mute: ${JSON.stringify(await listen(carol, ids.bob))}`);

  // Carol may not moderate: no "…" buttons, and a right click opens no member menu.
  await voiceUser(carol, ids.bob).waitFor();
  assert.equal(await carol.getByTestId('member-menu-button').count(), 0, 'no menu button for a member without the permissions');
  await voiceUser(carol, ids.bob).click({ button: 'right' });
  assert.equal(await menu(carol).count(), 0, 'no member menu for carol');
  await carol.keyboard.press('Escape');

  // Alice (not in voice herself) right-clicks bob in the voice roster.
  await voiceUser(alice, ids.bob).click({ button: 'right' });
  await menu(alice).waitFor();
  for (const id of ['menu-server-mute', 'menu-server-deafen', 'menu-move', 'menu-disconnect']) await menu(alice).getByTestId(id).waitFor();
  assert.equal(await menu(alice).getByTestId('menu-server-mute').textContent(), 'Server mute');
  await screenshot(alice, 'member-menu');
  await menu(alice).getByTestId('menu-server-mute').click();
  await menu(alice).waitFor({ state: 'detached' });

  for (const page of [alice, carol]) await voiceUser(page, ids.bob).getByTestId('voice-server-muted').waitFor();
  await bob.getByTestId('voice-server-state').filter({ hasText: 'Server muted by a moderator' }).waitFor();
  // Concealment fades out within a moment of the last packet; then carol decodes nothing from bob.
  const silent = await poll(async () => {
    const l = await listen(carol, ids.bob, 1000);
    return l.energy === 0 && l.level === 0 && l.last === 0 ? l : null;
  }, 10_000);
  assert.ok(silent, `carol's decoded audio of bob is silent once he is server-muted: ${JSON.stringify(await listen(carol, ids.bob))}`);

  // Unmute from the member list's "…" button this time.
  const row = alice.locator(`[data-testid="member"][data-user-id="${ids.bob}"]`);
  await row.hover();
  await row.getByTestId('member-menu-button').click();
  await menu(alice).getByTestId('menu-server-mute').filter({ hasText: 'Server unmute' }).click();
  for (const page of [alice, carol]) await voiceUser(page, ids.bob).getByTestId('voice-server-muted').waitFor({ state: 'detached' });
  await bob.getByTestId('voice-server-state').waitFor({ state: 'hidden' });
  const back = await poll(async () => {
    const l = await listen(carol, ids.bob, 1000);
    return l.energy > 0 && l.level > 0 ? l : null;
  });
  assert.ok(back, `carol hears bob again after the unmute: ${JSON.stringify(await listen(carol, ids.bob))}`);
});

test('(b) the owner moves the member to another voice channel and his client joins it by itself; then disconnects him', async () => {
  const before = await bob.evaluate(() => /** @type {any} */ (window).__chorusVoice.participantId);
  const bobRow = voiceUser(alice, ids.bob);
  await bobRow.hover();
  await bobRow.getByTestId('member-menu-button').click();
  await menu(alice).getByTestId('menu-move').click();
  const target = menu(alice).locator(`[data-testid="menu-move-target"][data-channel-id="${lounge}"]`);
  assert.equal(await menu(alice).locator(`[data-testid="menu-move-target"][data-channel-id="${generalVoice}"]`).count(), 0, 'not to where he is');
  await target.click();

  await bob.getByTestId('voice-channel-name').filter({ hasText: 'Lounge' }).waitFor({ timeout: 20_000 });
  await bob.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 20_000 });
  const after = await bob.evaluate(() => {
    const v = /** @type {any} */ (window).__chorusVoice;
    return { channel: v.channelId, participant: v.participantId, state: v.state };
  });
  assert.equal(after.channel, lounge);
  assert.notEqual(after.participant, before, 'a new session in the new room');
  for (const page of [alice, carol]) await voiceUserIn(page, lounge, ids.bob).waitFor({ timeout: 20_000 });
  assert.equal(await voiceUserIn(alice, generalVoice, ids.bob).count(), 0, 'no longer in General');
  await bob.locator(`[data-testid="voice-channel"][data-channel-id="${lounge}"].active`).waitFor();
  // The SFU agrees: bob is a participant of the Lounge room (alice is the instance admin).
  const inRoom = await poll(async () => {
    const stats = (await call(alice, 'GET', '/admin/stats')).body;
    return (stats.rooms ?? []).some((r) => r.room_id === lounge && r.participants.some((p) => p.user_id === ids.bob));
  });
  assert.ok(inRoom, 'bob sits in the Lounge room at the SFU');
  assert.ok(
    await poll(() => carol.evaluate((uid) => ![.../** @type {any} */ (window).__chorusVoice.participants.values()].some((p) => p.user_id === uid), ids.bob)),
    'carol no longer has bob in her call',
  );

  // Disconnect: bob is told so and does not come back.
  await voiceUser(alice, ids.bob).click({ button: 'right' });
  await menu(alice).getByTestId('menu-disconnect').click();
  await bob.getByTestId('voice-notice').filter({ hasText: 'A moderator disconnected you from voice' }).waitFor({ timeout: 15_000 });
  await bob.locator('#voice-panel[hidden]').waitFor({ state: 'attached' });
  await voiceUser(alice, ids.bob).waitFor({ state: 'detached' });
  await bob.waitForTimeout(2500);
  assert.equal(await bob.evaluate(() => /** @type {any} */ (window).__chorusVoice), null, 'no rejoin after a disconnect');
  assert.equal(await voiceUser(alice, ids.bob).count(), 0, 'bob stays out of voice');
  // Disconnecting someone who is not in voice is refused.
  const again = await call(alice, 'PATCH', `/guilds/${guildId}/members/${ids.bob}`, { channel_id: null });
  assert.deepEqual([again.status, again.body?.code], [400, 'not_in_voice']);
});

test('(c) the audit log tab lists those actions in words, pages back with "Load more" and filters by action', async () => {
  // Fifty newer entries push the moderation onto the second page.
  await alice.evaluate(async (gid) => {
    const api = /** @type {any} */ (window).__chorus.api;
    for (let i = 0; i < 50; i++) await api.post(`/guilds/${gid}/invites`, { max_age_secs: 3600 });
  }, guildId);
  await alice.getByTestId('guild-settings-button').click();
  await alice.getByTestId('tab-audit-log').click();
  const entries = alice.getByTestId('audit-entry');
  await poll(async () => (await entries.count()) === 50);
  assert.equal(await entries.count(), 50);
  assert.equal(await entries.first().getAttribute('data-action'), 'invite_create');
  assert.equal(await alice.locator('[data-testid="audit-entry"][data-action="member_move"]').count(), 0, 'older entries wait for the next page');
  await alice.getByTestId('audit-load-more').click();
  await alice.locator('[data-testid="audit-entry"][data-action="member_move"]').waitFor();

  const sentences = await alice.getByTestId('audit-sentence').allTextContents();
  const at = (s) => sentences.indexOf(s);
  for (const s of ['alice disconnected bob from voice', 'alice moved bob to 🔊 Lounge', 'alice server unmuted bob', 'alice server muted bob', 'alice created channel 🔊 Lounge']) {
    assert.ok(at(s) >= 0, `"${s}" in ${JSON.stringify(sentences.slice(48))}`);
  }
  assert.ok(at('alice disconnected bob from voice') < at('alice moved bob to 🔊 Lounge'), 'newest first');
  assert.ok(at('alice moved bob to 🔊 Lounge') < at('alice server unmuted bob'));
  assert.ok(at('alice server unmuted bob') < at('alice server muted bob'));
  const move = alice.locator('[data-testid="audit-entry"][data-action="member_move"]');
  assert.match(await move.textContent(), /Voice channel: 🔊 General → 🔊 Lounge/);
  assert.ok(await move.locator('time').getAttribute('datetime'));
  assert.ok(await alice.getByTestId('audit-load-more').isHidden(), 'nothing more to load');
  await alice.getByTestId('audit-entry').filter({ hasText: 'server muted bob' }).scrollIntoViewIfNeeded();
  await screenshot(alice, 'audit-log');

  await alice.getByTestId('audit-action-filter').selectOption('member_update');
  await poll(async () => (await entries.count()) === 2);
  assert.deepEqual(await alice.getByTestId('audit-sentence').allTextContents(), ['alice server unmuted bob', 'alice server muted bob']);
  await alice.getByTestId('audit-user-filter').selectOption(ids.bob);
  await alice.getByText('Nothing recorded yet.').waitFor();
  assert.equal(await entries.count(), 0, 'bob did nothing himself');
});

test('(d) slow mode: a member who sent a message sees the countdown and a second send is refused', async () => {
  // Alice sets 10 s on #general in the channel settings (the settings are still open).
  await alice.getByTestId('tab-channels').click();
  const general = await alice.getByTestId('text-channel').filter({ hasText: 'general' }).getAttribute('data-channel-id');
  await alice.locator(`[data-testid="slow-mode-select"][data-channel-id="${general}"]`).selectOption('10');
  await alice.getByText('Saved.').waitFor();
  await alice.keyboard.press('Escape');
  await bob.getByTestId('slow-mode').filter({ hasText: /^Slow mode: 10 s$/ }).waitFor();
  await alice.locator('[data-testid="slow-mode"][data-exempt="true"]').filter({ hasText: 'exempt' }).waitFor();

  await bob.getByTestId('composer').fill('first under slow mode');
  await bob.getByTestId('composer').press('Enter');
  await alice.getByTestId('message-content').filter({ hasText: 'first under slow mode' }).waitFor();
  const indicator = bob.getByTestId('slow-mode');
  await indicator.filter({ hasText: /^Slow mode: wait \d+ s$/ }).waitFor();
  const left = async () => Number(await indicator.getAttribute('data-remaining'));
  const a = await left();
  await bob.waitForTimeout(1300);
  const b = await left();
  assert.ok(a >= 8 && a <= 10 && b < a, `the countdown runs: ${a} → ${b}`);
  await screenshot(bob, 'slow-mode');

  // A second send during the wait goes nowhere; the text stays in the box.
  await bob.getByTestId('composer').fill('second too soon');
  await bob.getByTestId('composer').press('Enter');
  await bob.waitForTimeout(500);
  assert.equal(await bob.getByTestId('composer').inputValue(), 'second too soon');
  assert.equal(await bob.getByTestId('message-content').filter({ hasText: 'second too soon' }).count(), 0);
  assert.equal(await alice.getByTestId('message-content').filter({ hasText: 'second too soon' }).count(), 0);

  // The server refuses it too when the client is skipped.
  const direct = await call(bob, 'POST', `/channels/${general}/messages`, { content: 'skipping the client' });
  assert.equal(direct.status, 429, JSON.stringify(direct.body));
  assert.equal(direct.body.code, 'slow_mode');
  assert.ok(Number(direct.retryAfter) >= 1 && Number(direct.retryAfter) <= 10, `Retry-After ${direct.retryAfter}`);

  // After a reload the client does not know about the wait: the server's refusal shows it instead.
  await bob.reload();
  await bob.getByTestId('slow-mode').filter({ hasText: /^Slow mode: 10 s$/ }).waitFor();
  await bob.getByTestId('composer').fill('after reload');
  await bob.getByTestId('composer').press('Enter');
  await bob.locator('[data-testid="slow-mode"].refused').filter({ hasText: /^Slow mode is on: you can send again in \d+ s$/ }).waitFor();
  assert.equal(await bob.getByTestId('composer').inputValue(), 'after reload', 'the refused text is back in the box');
  assert.equal(await bob.locator('.message.failed, .message.pending').count(), 0, 'no failed message left behind');

  // Once the wait is over, it goes through.
  await indicator.filter({ hasText: /^Slow mode: 10 s$/ }).waitFor({ timeout: 15_000 });
  await bob.getByTestId('composer').press('Enter');
  await alice.getByTestId('message-content').filter({ hasText: 'after reload' }).waitFor();
  assert.equal(await alice.getByTestId('message-content').filter({ hasText: 'skipping the client' }).count(), 0);

  // Alice (the owner) is exempt: two in a row.
  for (const text of ['owner one', 'owner two']) {
    await alice.getByTestId('composer').fill(text);
    await alice.getByTestId('composer').press('Enter');
  }
  await bob.getByTestId('message-content').filter({ hasText: 'owner two' }).waitFor();
  await bob.getByTestId('message-content').filter({ hasText: 'owner one' }).waitFor();

  // The setting is in the audit log too.
  await alice.getByTestId('guild-settings-button').click();
  await alice.getByTestId('tab-audit-log').click();
  await alice.getByTestId('audit-sentence').filter({ hasText: 'alice set slow mode in #general to 10s' }).waitFor();
  await alice.keyboard.press('Escape');
  assert.deepEqual(errors.flat(), [], 'no uncaught errors in any page');
});
