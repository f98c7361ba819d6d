// Two users in two browser contexts: sign-up, a server and an invite link, then messages, edits,
// deletions and reactions appear live on both sides; hostile content is shown as text and runs nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newContext, registerInUi, screenshot, watchErrors } from './harness.mjs';

let server;
let browser;
let alice;
let bob;
const errors = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  alice = await (await newContext(browser)).newPage();
  bob = await (await newContext(browser)).newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const lastMessage = (page) => page.getByTestId('message').last();

test('a new user registers, creates a server and lands in its #general', async () => {
  await alice.goto(`${server.url}/register`);
  await screenshot(alice, 'register');
  await registerInUi(alice, 'alice');
  await alice.getByTestId('create-guild').click();
  await alice.getByTestId('prompt-input').fill('Chorus Club');
  await alice.getByTestId('prompt-ok').click();
  await alice.getByTestId('guild-name').filter({ hasText: 'Chorus Club' }).waitFor();
  await alice.getByTestId('text-channel').filter({ hasText: 'general' }).waitFor();
  assert.match(alice.url(), /\/channels\/\d+\/\d+$/);
  await alice.getByTestId('voice-channel').filter({ hasText: 'General' }).waitFor();
});

test('an invite link lands a new user in the server after sign-up', async () => {
  await alice.getByTestId('invite-button').click();
  const link = await alice.getByTestId('invite-link').inputValue();
  assert.match(link, /\/invite\/[A-Za-z0-9_-]+$/);
  await alice.keyboard.press('Escape');
  await bob.goto(link);
  // Before sign-up the link already says where it leads and who sent it.
  await bob.getByTestId('invite-preview').filter({ hasText: /invited by alice to join Chorus Club \(\d+ online, 1 members\)/ }).waitFor();
  await registerInUi(bob, 'bob');
  await bob.getByTestId('guild-name').filter({ hasText: 'Chorus Club' }).waitFor();
  await bob.getByTestId('text-channel').filter({ hasText: 'general' }).waitFor();
  // Alice sees Bob arrive in the member list.
  await alice.getByTestId('member').filter({ hasText: 'bob' }).waitFor();
});

test('messages, edits and deletions appear live on both sides', async () => {
  await alice.getByTestId('composer').fill('hello **bob**');
  await alice.getByTestId('composer').press('Enter');
  const onBob = bob.getByTestId('message-content').filter({ hasText: 'hello bob' });
  await onBob.waitFor();
  assert.equal(await onBob.locator('strong').textContent(), 'bob', 'markdown bold rendered as an element');

  await bob.getByTestId('composer').fill('hi alice');
  await bob.getByTestId('composer').press('Enter');
  await alice.getByTestId('message-content').filter({ hasText: 'hi alice' }).waitFor();

  // Up edits the last own message.
  await bob.getByTestId('composer').press('ArrowUp');
  await bob.getByTestId('edit-box').fill('hi alice, edited');
  await bob.getByTestId('edit-box').press('Enter');
  await alice.getByTestId('message-content').filter({ hasText: 'hi alice, edited' }).waitFor();
  await alice.getByTestId('edited').first().waitFor();

  await bob.getByTestId('composer').fill('to be deleted');
  await bob.getByTestId('composer').press('Enter');
  await alice.getByTestId('message-content').filter({ hasText: 'to be deleted' }).waitFor();
  bob.once('dialog', (d) => d.accept());
  const doomed = bob.getByTestId('message').filter({ hasText: 'to be deleted' });
  await doomed.hover();
  await doomed.getByTestId('delete-button').click();
  await alice.getByTestId('message-content').filter({ hasText: 'to be deleted' }).waitFor({ state: 'detached' });
  assert.equal(await bob.getByTestId('message-content').filter({ hasText: 'to be deleted' }).count(), 0);
});

test('reactions appear live with counts on both sides', async () => {
  const msg = alice.getByTestId('message').filter({ hasText: 'hi alice, edited' });
  await msg.hover();
  await msg.getByTestId('react-button').first().click();
  const onBob = bob.getByTestId('message').filter({ hasText: 'hi alice, edited' }).getByTestId('reaction');
  await onBob.filter({ hasText: '1' }).waitFor();
  await onBob.click();
  await alice.getByTestId('message').filter({ hasText: 'hi alice, edited' }).getByTestId('reaction').filter({ hasText: '2' }).waitFor();
  assert.equal(await onBob.getAttribute('aria-pressed'), 'true');
});

test('hostile content is shown as text and runs nothing', async () => {
  const hostile = '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=1</script> [x](javascript:window.__pwned=1)';
  await bob.getByTestId('composer').fill(hostile);
  await bob.getByTestId('composer').press('Enter');
  const shown = alice.getByTestId('message-content').filter({ hasText: '<script>' });
  await shown.waitFor();
  assert.equal(await shown.textContent(), hostile);
  assert.equal(await shown.locator('img, script').count(), 0);
  for (const page of [alice, bob]) assert.equal(await page.evaluate(() => /** @type {any} */ (window).__pwned), undefined);
  await screenshot(alice, 'chat');
});

test('a dropped gateway connection resumes and replays what was missed', async () => {
  await bob.evaluate(() => /** @type {any} */ (window).__chorus.gateway.ws.close(4000));
  await alice.getByTestId('composer').fill('sent while bob was away');
  await alice.getByTestId('composer').press('Enter');
  await bob.getByTestId('message-content').filter({ hasText: 'sent while bob was away' }).waitFor();
  // It came by RESUME on a new socket, not by reloading history.
  assert.ok(await bob.evaluate(() => /** @type {any} */ (window).__chorus.gateway.seq > 0));
  assert.equal(await bob.getByTestId('message-content').filter({ hasText: 'sent while bob was away' }).count(), 1);
});

test('older history loads when scrolling to the top', async () => {
  const post = (page, n, prefix) =>
    page.evaluate(async ([n, prefix]) => {
      const app = /** @type {any} */ (window).__chorus;
      const cid = app.store.state.current.channelId;
      for (let i = 0; i < n; i++) await app.api.post(`/channels/${cid}/messages`, { content: `${prefix} ${i}` });
    }, [n, prefix]);
  await post(alice, 40, 'old-a');
  await post(bob, 30, 'old-b');
  // A fresh page loads only the newest 50.
  await bob.reload();
  await bob.getByTestId('message-content').filter({ hasText: 'old-b 29' }).waitFor();
  assert.equal(await bob.getByTestId('message-content').filter({ hasText: /^hello bob$/ }).count(), 0);
  for (let i = 0; i < 10 && (await bob.getByTestId('message-content').filter({ hasText: /^hello bob$/ }).count()) === 0; i++) {
    await bob.locator('#messages').evaluate((el) => (el.scrollTop = 0));
    await bob.waitForTimeout(300);
  }
  await bob.getByTestId('message-content').filter({ hasText: /^hello bob$/ }).waitFor();
  await bob.getByText('This is the beginning of #general.').waitFor();
});

test('settings open for the user and for the server owner', async () => {
  await alice.getByTestId('guild-settings-button').click();
  await alice.getByTestId('tab-channels').click();
  await alice.getByTestId('new-channel-name').fill('random');
  await alice.getByTestId('create-channel').click();
  await bob.getByTestId('text-channel').filter({ hasText: 'random' }).waitFor();
  await alice.getByTestId('tab-roles').click();
  await screenshot(alice, 'guild-settings');
  await alice.keyboard.press('Escape');
  await bob.getByTestId('user-settings-button').click();
  await bob.getByTestId('display-name').fill('Bobby');
  await bob.getByTestId('save-profile').click();
  await bob.getByTestId('me-name').filter({ hasText: 'Bobby' }).waitFor();
  await screenshot(bob, 'user-settings');
  await bob.keyboard.press('Escape');
  // The layout holds at full HD too.
  await alice.setViewportSize({ width: 1920, height: 1080 });
  await alice.getByTestId('member').first().waitFor();
  await screenshot(alice, 'chat-1920x1080');
  assert.deepEqual(errors.flat(), [], 'no uncaught errors in either page');
});
