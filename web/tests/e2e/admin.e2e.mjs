// The operator dashboard in Chromium: the first registered user sees live charts and the room table;
// anyone else gets 404 from the page and from its stats API.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newContext, registerInUi, screenshot, watchErrors } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the first user sees live charts and the live room table', async () => {
  const ctx = await newContext(browser);
  const app = await ctx.newPage();
  const errors = watchErrors(app);
  await app.goto(`${server.url}/register`);
  await registerInUi(app, 'admin');
  await app.getByTestId('create-guild').click();
  await app.getByTestId('prompt-ok').click();
  await app.getByTestId('voice-channel').first().click();
  await app.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor();

  const dash = await ctx.newPage();
  errors.push(...watchErrors(dash));
  const res = await dash.goto(`${server.url}/admin`);
  assert.equal(res?.status(), 200);
  assert.equal(await dash.getByTestId('chart').count(), 13);
  // The admin's own app tab holds a gateway connection and a voice participant.
  await dash.getByTestId('value-gatewayConnections').filter({ hasText: /^[1-9]/ }).waitFor({ timeout: 10_000 });
  await dash.getByTestId('value-participants').filter({ hasText: /^1$/ }).waitFor({ timeout: 10_000 });
  const row = dash.getByTestId('participant-row').filter({ hasText: 'admin' });
  await row.waitFor({ timeout: 10_000 });
  await dash.waitForTimeout(3000);
  await screenshot(dash, 'admin-dashboard');
  assert.match(await dash.getByTestId('admin-status').textContent(), /sqlite · registration open/);
  assert.deepEqual(errors, []);
});

test('a member who is not an admin gets 404 from the page and from the stats', async () => {
  const ctx = await newContext(browser);
  const page = await ctx.newPage();
  await page.goto(`${server.url}/register`);
  await registerInUi(page, 'member');
  const res = await page.goto(`${server.url}/admin`);
  assert.equal(res?.status(), 404);
  const stats = await page.evaluate(async () => {
    const r = await fetch('/api/v1/admin/stats', { headers: { Authorization: `Bearer ${localStorage.getItem('chorus.token')}` } });
    return [r.status, (await r.json()).code];
  });
  assert.deepEqual(stats, [404, 'not_found']);
});
