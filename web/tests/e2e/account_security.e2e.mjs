// Account security in Chromium, for one user: two-factor authentication turned on from the Security tab
// (QR code, secret, recovery codes shown once), a login that then asks for a code (a wrong one refused,
// the right one and a recovery code accepted), a new username, 2FA turned off, and the account deleted
// (its login fails afterwards). A second user checks that a stale 2FA hint follows the server and that the
// owner of a server cannot delete the account. TOTP codes are computed as an authenticator app would
// (totp.mjs, node's crypto).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newContext, registerInUi, screenshot, watchErrors } from './harness.mjs';
import { totp } from './totp.mjs';

const PASSWORD = 'correct horse battery';
const FIRST_NAME = 'carol';
const NEW_NAME = 'caroline';

let server;
let browser;
/** @type {import('playwright-core').Page} */
let page;
let errors = [];
let secret = '';
/** @type {string[]} */
let recoveryCodes = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const ctx = await newContext(browser);
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  page = await ctx.newPage();
  errors = watchErrors(page);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The time step of the last code the server took: a code is good once (RFC 6238 §5.2). */
let lastStep = -1;

/**
 * A code the server has not taken yet, away from the last second of a 30-second window: the app's
 * current one or, when that was spent, the next step's (inside the server's one step of skew) —
 * waiting for the clock when even that one was spent.
 */
async function currentCode() {
  for (;;) {
    const now = Date.now() / 1000;
    const step = Math.floor(now / 30);
    const left = 30 - (now % 30);
    const use = Math.max(step, lastStep + 1);
    if (left < 1.5 || use > step + 1) {
      await sleep(left * 1000 + 200);
      continue;
    }
    lastStep = use;
    return totp(secret, use * 30);
  }
}

/** Six digits the server cannot accept now (it allows one step of clock skew either way). */
function wrongCode() {
  const now = Date.now() / 1000;
  const valid = new Set([-60, -30, 0, 30, 60].map((d) => totp(secret, now + d)));
  for (let n = 0; ; n++) {
    const c = String((n * 137_911) % 1_000_000).padStart(6, '0');
    if (!valid.has(c)) return c;
  }
}

async function openSecurity() {
  await page.getByTestId('user-settings-button').click();
  await page.getByTestId('tab-security').click();
  await page.getByTestId('mfa-section').waitFor();
}

async function logOut() {
  if (!(await page.locator('#modal[open]').count())) await page.getByTestId('user-settings-button').click();
  await page.getByTestId('tab-account').click();
  await page.getByTestId('logout').click();
  await page.getByTestId('login-form').waitFor();
}

/** The password step of the login page. */
async function passwordStep(username) {
  await page.getByTestId('login-form').waitFor();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByTestId('auth-submit').click();
}

const mfaHint = () =>
  page.evaluate(() => {
    const me = /** @type {any} */ (window).__chorus.store.state.me;
    return localStorage.getItem(`chorus.mfa.${me.id}`);
  });

test('two-factor authentication is turned on from the Security tab; the recovery codes are shown once', async () => {
  await page.goto(`${server.url}/register`);
  await registerInUi(page, FIRST_NAME, PASSWORD);
  await openSecurity();
  const section = page.getByTestId('mfa-section');
  assert.equal(await section.getAttribute('data-state'), 'off');
  await page.getByTestId('mfa-setup').click();

  // The QR code is an <img> of the server's data: URL, and it loads under the page's CSP.
  const qr = page.getByTestId('mfa-qr');
  await qr.waitFor();
  assert.match(/** @type {string} */ (await qr.getAttribute('src')), /^data:image\/svg\+xml;base64,/);
  await page.waitForFunction((el) => /** @type {HTMLImageElement} */ (el).complete && /** @type {HTMLImageElement} */ (el).naturalWidth > 0, await qr.elementHandle());
  secret = (/** @type {string} */ (await page.getByTestId('mfa-secret').textContent())).replace(/\s+/g, '');
  assert.match(secret, /^[A-Z2-7]{26,}$/, 'a base32 secret to type into an app');
  await page.getByTestId('mfa-qr').scrollIntoViewIfNeeded();
  await screenshot(page, 'security-mfa-setup');

  await page.getByTestId('mfa-enable-code').fill(await currentCode());
  await page.getByTestId('mfa-enable-password').fill(PASSWORD);
  await page.getByTestId('mfa-enable').click();

  const codes = page.getByTestId('recovery-codes').locator('li');
  await codes.first().waitFor();
  recoveryCodes = (await codes.allTextContents()).map((c) => c.trim());
  assert.equal(recoveryCodes.length, 10);
  for (const c of recoveryCodes) assert.match(c, /^[a-z0-9]{4}-[a-z0-9]{4}$/);
  assert.equal(new Set(recoveryCodes).size, 10);
  await page.getByTestId('recovery-box').getByText(/shown only this once/).waitFor();
  await page.getByTestId('recovery-copy').click();
  await page.getByTestId('recovery-box').getByText('Recovery codes copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), recoveryCodes.join('\n'));

  assert.equal(await section.getAttribute('data-state'), 'on');
  await page.getByTestId('mfa-status').filter({ hasText: 'Two-factor authentication is on.' }).waitFor();
  await page.getByTestId('mfa-disable').waitFor();
  assert.equal(await mfaHint(), 'on', 'this browser remembers it');
  await screenshot(page, 'security-recovery-codes');
  // "I've stored them" hides the codes for good.
  await page.getByTestId('recovery-done').click();
  assert.equal(await page.getByTestId('recovery-codes').count(), 0);
});

test('the login then asks for a code: a wrong one is refused, the right one logs in', async () => {
  await logOut();
  await passwordStep(FIRST_NAME);
  await page.getByTestId('mfa-code').waitFor();
  await page.getByTestId('mfa-hint').filter({ hasText: /recovery code/ }).waitFor();
  assert.equal(await page.getByTestId('me-name').filter({ hasText: FIRST_NAME }).isVisible(), false, 'not logged in yet');
  await screenshot(page, 'login-mfa-step');

  await page.getByTestId('mfa-code').fill(wrongCode());
  await page.getByTestId('mfa-submit').click();
  const error = page.getByTestId('mfa-error');
  await error.filter({ hasText: /not valid/ }).waitFor();
  assert.equal(await error.getAttribute('data-code'), 'invalid_mfa_code');

  // As an app shows it, with a space in the middle: the client sends the six digits.
  const code = await currentCode();
  await page.getByTestId('mfa-code').fill(`${code.slice(0, 3)} ${code.slice(3)}`);
  await page.getByTestId('mfa-submit').click();
  await page.getByTestId('me-name').filter({ hasText: FIRST_NAME }).waitFor();
  assert.equal(await mfaHint(), 'on');
});

test('a recovery code logs in too', async () => {
  await logOut();
  await passwordStep(FIRST_NAME);
  await page.getByTestId('mfa-code').fill(recoveryCodes[0]);
  await page.getByTestId('mfa-submit').click();
  await page.getByTestId('me-name').filter({ hasText: FIRST_NAME }).waitFor();
});

test('the username changes with the password and shows at once', async () => {
  await openSecurity();
  const section = page.getByTestId('username-section');
  await page.getByTestId('username-input').fill(NEW_NAME);
  await page.getByTestId('username-password').fill('not my password');
  await page.getByTestId('username-save').click();
  const error = section.getByTestId('security-error');
  await error.filter({ hasText: 'That password is not right.' }).waitFor();
  assert.equal(await error.getAttribute('data-code'), 'invalid_credentials');

  await page.getByTestId('username-password').fill(PASSWORD);
  await page.getByTestId('username-save').click();
  await section.getByTestId('security-status').filter({ hasText: `Your username is now ${NEW_NAME}.` }).waitFor();
  assert.equal(await error.textContent(), '');
  await page.getByTestId('me-name').filter({ hasText: NEW_NAME }).waitFor();
  await page.getByTestId('current-username').filter({ hasText: NEW_NAME }).waitFor();
  await page.getByTestId('tab-profile').click();
  await page.getByText(`Username: ${NEW_NAME}`).waitFor();
});

test('two-factor authentication is turned off with the password and a code', async () => {
  // The server allows 5 code attempts a minute per account (a burst of 5, one more every 12 s): enabling,
  // the wrong code, the right code, the recovery code and this are exactly five. The client sends code
  // requests with retry: false, so none is repeated behind the user's back.
  await page.getByTestId('tab-security').click();
  const section = page.getByTestId('mfa-section');
  assert.equal(await section.getAttribute('data-state'), 'on', 'the hint of this browser');
  await page.getByTestId('mfa-disable-password').fill(PASSWORD);
  await page.getByTestId('mfa-disable-code').fill(await currentCode());
  await page.getByTestId('mfa-disable').click();
  await page.getByTestId('mfa-status').filter({ hasText: 'Two-factor authentication is off.' }).waitFor();
  assert.equal(await section.getAttribute('data-state'), 'off');
  await page.getByTestId('mfa-setup').waitFor();
  assert.equal(await mfaHint(), null);
});

test('the account is deleted after a confirmation; logging in again fails', async () => {
  await page.getByTestId('delete-account').click();
  await page.getByTestId('delete-password').fill(PASSWORD);
  await page.getByTestId('delete-code').waitFor();
  await screenshot(page, 'security-delete-confirm');
  await page.getByTestId('delete-confirm').click();
  await page.getByTestId('login-form').waitFor();
  await page.getByTestId('auth-notice').filter({ hasText: 'Your account was deleted.' }).waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem('chorus.token')), null);

  await passwordStep(NEW_NAME);
  const error = page.getByTestId('auth-error');
  await error.filter({ hasText: 'Wrong username or password.' }).waitFor();
  assert.equal(await error.getAttribute('data-code'), 'invalid_credentials');
  assert.equal(await page.getByTestId('mfa-code').count(), 0);
  assert.deepEqual(errors, [], 'no uncaught errors or CSP violations');
});

test('a stale hint follows the server (409 mfa_enabled), and an owner cannot delete the account', async () => {
  const ctx = await newContext(browser);
  const dave = await ctx.newPage();
  const daveErrors = watchErrors(dave);
  await dave.goto(`${server.url}/register`);
  await registerInUi(dave, 'dave', PASSWORD);
  await dave.getByTestId('create-guild').click();
  await dave.getByTestId('prompt-input').fill('Dave Hall');
  await dave.getByTestId('prompt-ok').click();
  await dave.getByTestId('guild-name').filter({ hasText: 'Dave Hall' }).waitFor();

  // 2FA goes on behind this browser's back (as from another device): its hint still says off.
  const other = await dave.evaluate(() => /** @type {any} */ (window).__chorus.api.post('/users/@me/mfa/totp/setup'));
  const daveCode = () => totp(other.secret);
  await dave.evaluate(([secret, code, password]) => /** @type {any} */ (window).__chorus.api.post('/users/@me/mfa/totp/enable', { secret, code, password }), [other.secret, daveCode(), PASSWORD]);

  await dave.getByTestId('user-settings-button').click();
  await dave.getByTestId('tab-security').click();
  const section = dave.getByTestId('mfa-section');
  assert.equal(await section.getAttribute('data-state'), 'off');
  await dave.getByTestId('mfa-setup').click();
  const secretHere = (/** @type {string} */ (await dave.getByTestId('mfa-secret').textContent())).replace(/\s+/g, '');
  await dave.getByTestId('mfa-enable-code').fill(totp(secretHere));
  await dave.getByTestId('mfa-enable-password').fill(PASSWORD);
  await dave.getByTestId('mfa-enable').click();
  await section.getByTestId('security-status').filter({ hasText: 'already on' }).waitFor();
  assert.equal(await section.getAttribute('data-state'), 'on');
  await dave.getByTestId('mfa-disable').waitFor();

  // Deleting: without a code the form asks for one; with one, the owned server stands in the way.
  await dave.getByTestId('delete-account').click();
  await dave.getByTestId('delete-password').fill(PASSWORD);
  await dave.getByTestId('delete-confirm').click();
  const error = dave.getByTestId('delete-section').getByTestId('security-error');
  await error.filter({ hasText: 'Two-factor authentication is on: enter a code' }).waitFor();
  assert.equal(await error.getAttribute('data-code'), 'invalid_mfa_code');
  // The next step's code: the current one enabled 2FA, and a code is good once.
  await dave.getByTestId('delete-code').fill(totp(other.secret, Date.now() / 1000 + 30));
  await dave.getByTestId('delete-confirm').click();
  await error.filter({ hasText: /transfer or delete the servers you own first/ }).waitFor();
  assert.equal(await error.getAttribute('data-code'), 'owns_guilds');
  // Still logged in, still there.
  await dave.keyboard.press('Escape');
  await dave.getByTestId('me-name').filter({ hasText: 'dave' }).waitFor();
  assert.equal(await dave.evaluate(() => sessionStorage.getItem('chorus.notice')), null);
  assert.deepEqual(daveErrors, []);
  await ctx.close();
});
