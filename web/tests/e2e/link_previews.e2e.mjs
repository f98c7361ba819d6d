// Link previews in real Chromium, two users (alice owns the server, bob joined by invite), and a tiny
// web site of the test's own on 127.0.0.1 (allowed to the server with --link-preview-allow; it is not a
// public address otherwise). The site serves a page with OpenGraph tags and the PNG they name.
// (a) alice posts the page's link through the composer; bob sees the card appear live (it comes as a
//     MESSAGE_UPDATE a moment after the message): site name, the title linking to the page (new tab,
//     rel="noopener noreferrer"), the description (entities decoded, markup shown as text), and the image,
//     loaded, only through the server's proxy, within 400×300;
// (b) the site was asked for its page and its image by the server (ChorusBot), and neither browser
//     ever contacted the site;
// (c) after a reload the card is still there (REST history carries embeds).
// Screenshot: target/screenshots/link-preview.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { crc32, deflateSync } from 'node:zlib';
import { startServer, launchBrowser, newContext, registerInUi, screenshot, watchErrors, until } from './harness.mjs';

/** A real RGB PNG of `width`×`height` (a gradient). */
function makePng(width, height) {
  const chunk = (type, data) => {
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(8 + data.length + 4);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(crc32(td), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = y * (width * 3 + 1) + 1 + x * 3;
      raw[o] = (x * 255) / width;
      raw[o + 1] = (y * 255) / height;
      raw[o + 2] = 160;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const PNG = makePng(800, 600);
const TITLE = 'Chorus & the preview test';
const DESCRIPTION = 'A page about <b>link previews</b>, fetched by the server — not by you.';
const SITE_NAME = 'Test Site';
const PAGE = `<!doctype html>
<html><head>
<meta charset="utf-8">
<title>fallback title</title>
<meta property="og:title" content="Chorus &amp; the preview test">
<meta property="og:description" content="A page about &lt;b&gt;link previews&lt;/b&gt;, fetched by the server — not by you.">
<meta property="og:site_name" content="Test Site">
<meta property="og:image" content="/og.png">
</head><body><p>Hello.</p></body></html>`;

/** What the site was asked for: path → user agents. @type {Map<string, string[]>} */
const siteRequests = new Map();
const site = createServer((req, res) => {
  const path = (req.url ?? '').split('?')[0];
  siteRequests.set(path, [...(siteRequests.get(path) ?? []), String(req.headers['user-agent'] ?? '')]);
  if (path === '/page') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  } else if (path === '/og.png') {
    res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': PNG.length });
    res.end(PNG);
  } else {
    res.writeHead(404).end();
  }
});

let server;
let browser;
let alice;
let bob;
let siteHost;
let pageUrl;
/** Requests a browser made to the test site (there must be none). @type {string[]} */
const browserHits = [];
const errors = [];

before(async () => {
  await new Promise((res) => site.listen(0, '127.0.0.1', () => res(undefined)));
  siteHost = `127.0.0.1:${/** @type {any} */ (site.address()).port}`;
  pageUrl = `http://${siteHost}/page`;
  server = await startServer(['--link-preview-allow', siteHost]);
  browser = await launchBrowser();
  alice = await (await newContext(browser)).newPage();
  bob = await (await newContext(browser)).newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
  for (const [who, page] of /** @type {const} */ ([['alice', alice], ['bob', bob]])) {
    page.on('request', (r) => {
      if (new URL(r.url()).host === siteHost) browserHits.push(`${who}: ${r.url()}`);
    });
  }
  await alice.goto(`${server.url}/register`);
  await registerInUi(alice, 'alice');
  await alice.getByTestId('create-guild').click();
  await alice.getByTestId('prompt-input').fill('Links Club');
  await alice.getByTestId('prompt-ok').click();
  await alice.getByTestId('guild-name').filter({ hasText: 'Links Club' }).waitFor();
  await alice.getByTestId('text-channel').filter({ hasText: 'general' }).waitFor();
  await alice.getByTestId('invite-button').click();
  const link = await alice.getByTestId('invite-link').inputValue();
  await alice.keyboard.press('Escape');
  await bob.goto(link);
  await registerInUi(bob, 'bob');
  await bob.getByTestId('text-channel').filter({ hasText: 'general' }).waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await new Promise((res) => site.close(() => res(undefined)));
});

/** Checks a page's card for the test page: texts, link, and the image loaded through the proxy. */
async function checkCard(page) {
  const card = page.locator(`[data-testid="embed"][data-url="${pageUrl}"]`);
  await card.waitFor({ timeout: 15_000 });
  assert.equal(await card.count(), 1, 'one card per link');
  assert.equal(await card.getByTestId('embed-site').textContent(), SITE_NAME);
  const title = card.getByTestId('embed-title');
  assert.equal(await title.textContent(), TITLE);
  assert.equal(await title.getAttribute('href'), pageUrl);
  assert.equal(await title.getAttribute('target'), '_blank');
  assert.equal(await title.getAttribute('rel'), 'noopener noreferrer');
  const description = card.getByTestId('embed-description');
  assert.equal(await description.textContent(), DESCRIPTION, 'decoded entities, markup as text');
  assert.equal(await description.locator('b').count(), 0, 'no markup from the site becomes an element');

  const img = card.getByTestId('embed-image');
  assert.equal(await img.getAttribute('loading'), 'lazy');
  const src = await img.getAttribute('src');
  assert.ok(src?.startsWith('/api/v1/link-previews/image?'), `the image comes through the proxy: ${src}`);
  assert.match(src, /[?&]sig=[0-9a-f]+/, 'a signed proxy URL');
  const shown = await until(
    page,
    (el) => (el.complete && el.naturalWidth > 0 ? { natural: [el.naturalWidth, el.naturalHeight], box: [el.clientWidth, el.clientHeight], current: el.currentSrc } : null),
    await img.elementHandle(),
    15_000,
  );
  assert.deepEqual(shown.natural, [800, 600], 'the PNG the site served, through the server');
  assert.ok(new URL(shown.current).pathname === '/api/v1/link-previews/image', `loaded from the proxy: ${shown.current}`);
  assert.ok(shown.box[0] <= 400 && shown.box[1] <= 300 && shown.box[0] > 0, `shown within 400×300: ${shown.box}`);
}

test('a posted link becomes a card for the other user, its image loaded only through the server', async () => {
  const text = `have a look: ${pageUrl}`;
  await alice.getByTestId('composer').fill(text);
  await alice.getByTestId('composer').press('Enter');
  await bob.getByTestId('message-content').filter({ hasText: text }).waitFor();
  await checkCard(bob);
  await checkCard(alice);
  await screenshot(bob, 'link-preview');

  assert.ok((siteRequests.get('/page') ?? []).length >= 1, 'the server fetched the page');
  assert.ok((siteRequests.get('/og.png') ?? []).length >= 1, 'the server fetched the image');
  for (const [path, agents] of siteRequests) {
    for (const ua of agents) assert.match(ua, /ChorusBot/, `${path} was asked for by the server, not a browser: ${ua}`);
  }
  assert.deepEqual(browserHits, [], 'no browser contacted the linked site');
  assert.deepEqual(errors.flat(), []);
});

test('after a reload the card comes with the history', async () => {
  const pageFetches = (siteRequests.get('/page') ?? []).length;
  await bob.reload();
  await bob.getByTestId('message-content').filter({ hasText: pageUrl }).waitFor();
  await checkCard(bob);
  assert.equal((siteRequests.get('/page') ?? []).length, pageFetches, 'the page is not fetched again to show it');
  assert.deepEqual(browserHits, []);
  assert.deepEqual(errors.flat(), []);
});
