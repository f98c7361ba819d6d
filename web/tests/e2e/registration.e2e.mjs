// Registration modes in Chromium: with `--registration invite` the form asks for an invite code made by
// `chorus admin invite create` and refuses a wrong one; with `--registration closed` it says so instead
// of showing a form that cannot work.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newContext, registerInUi, chorusCommand, watchErrors } from './harness.mjs';

const servers = [];
let browser;

after(async () => {
  await browser?.close();
  for (const s of servers) await s.stop();
});

test('invite mode asks for a code from the CLI and refuses a wrong one', async () => {
  const server = await startServer(['--registration', 'invite']);
  servers.push(server);
  browser ??= await launchBrowser();
  const code = JSON.parse(await chorusCommand(server, ['admin', '--json', 'invite', 'create', '--uses', '1'])).code;
  const page = await (await newContext(browser)).newPage();
  const errors = watchErrors(page);
  await page.goto(`${server.url}/register`);
  await page.getByLabel('Invite code').fill('not-the-code');
  await page.getByLabel('Username').fill('invited');
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByTestId('auth-submit').click();
  await page.getByTestId('auth-error').filter({ hasText: /invite code/ }).waitFor();
  await page.getByLabel('Invite code').fill(code);
  await registerInUi(page, 'invited');
  assert.deepEqual(errors, []);
});

test('a first visit logs no error in the console (no missing favicon, no failed request)', async () => {
  const server = await startServer();
  servers.push(server);
  browser ??= await launchBrowser();
  const page = await (await newContext(browser)).newPage();
  const logged = [];
  page.on('console', (m) => {
    if (m.type() === 'error') logged.push(m.text());
  });
  page.on('requestfailed', (r) => logged.push(`failed: ${r.url()}`));
  page.on('response', (r) => {
    if (r.status() >= 400) logged.push(`${r.status()}: ${r.url()}`);
  });
  await page.goto(`${server.url}/login`);
  await page.getByTestId('login-form').waitFor();
  await page.waitForTimeout(500);
  assert.deepEqual(logged, []);
});

test('closed mode shows that registration is closed', async () => {
  const server = await startServer(['--registration', 'closed']);
  servers.push(server);
  browser ??= await launchBrowser();
  const page = await (await newContext(browser)).newPage();
  await page.goto(`${server.url}/register`);
  await page.getByTestId('registration-closed').waitFor();
  assert.equal(await page.getByTestId('register-form').count(), 0);
});
