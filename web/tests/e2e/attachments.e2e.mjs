// Attachments in real Chromium, two users (alice owns the server, bob joined by invite):
// (a) the attach button opens a multiple file picker; files picked, dropped on the message pane and
//     pasted into the box wait as chips (name, size, remove); more than the advertised number of files
//     is refused in the client before any upload;
// (b) alice sends a PNG (built here, byte by byte) and a text file with some text: the upload shows a
//     progress bar (the upload is throttled so it lasts a moment); bob sees the image inline, loaded,
//     from its thumbnail, in a box sized before it loaded (width/height attributes scaled into 400×300),
//     and the text file as a card with its name (as text) and size; the download link has `download`
//     and fetches exactly the bytes sent;
// (c) a 20 MB upload, throttled, is cancelled as soon as its progress shows: no message is created, and
//     the file comes back as a chip;
// (d) a file that claims to be an image and is not: the server's refusal (invalid_image) is shown;
// (e) without ATTACH_FILES (a channel overwrite) the attach button is gone, a dropped file is refused with
//     the reason, and the server answers 403 missing_permission to an upload past the client;
// (f) deleting the message deletes its files (gone from the server at once, whatever the browser cached).
// Screenshots: target/screenshots/attachments.png, attachments-upload.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { startServer, launchBrowser, newContext, registerInUi, screenshot, watchErrors, until } from './harness.mjs';

let server;
let browser;
let alice;
let bob;
let aliceCdp;
let guildId;
let channelId;
const errors = [];

/** CRC-32 (PNG chunks). @param {Buffer} buf */
function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

/** A real RGB PNG of `width`×`height`: a gradient with noise (so it does not compress to nothing). */
function makePng(width, height) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  let seed = 12345;
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const o = row + 1 + x * 3;
      raw[o] = (x * 255) / width;
      raw[o + 1] = (y * 255) / height;
      raw[o + 2] = seed >>> 24;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** An API call from a page, with that page's token; resolves to {status, body}. */
const call = (page, method, path, body) =>
  page.evaluate(
    async ([m, p, b]) => {
      const r = await fetch(`/api/v1${p}`, {
        method: m,
        headers: { Authorization: `Bearer ${localStorage.getItem('chorus.token')}`, ...(b ? { 'Content-Type': 'application/json' } : {}) },
        body: b ? JSON.stringify(b) : undefined,
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    },
    [method, path, body],
  );

/** The channel's newest messages, as alice reads them by REST. */
async function history() {
  const r = await call(alice, 'GET', `/channels/${channelId}/messages?limit=50`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** Upload speed as the browser's network emulation allows it (bytes per second; -1: no limit). */
const throttle = (bytesPerSecond) =>
  aliceCdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond });

const PNG = makePng(640, 360);
const TEXT = Buffer.from('Plain notes: <b>not bold</b> & “quotes” — ünïcödé\nsecond line\n', 'utf8');
// Shown as text, "&amp;" stays "&amp;" (as HTML it would read "&"). The server keeps these characters
// (it drops < and > from names and writes " as %22).
const TEXT_NAME = 'notes &amp; ünïcode (v1).txt';

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  alice = await (await newContext(browser)).newPage();
  bob = await (await newContext(browser)).newPage();
  errors.push(watchErrors(alice), watchErrors(bob));
  aliceCdp = await alice.context().newCDPSession(alice);
  await aliceCdp.send('Network.enable');
  await alice.goto(`${server.url}/register`);
  await registerInUi(alice, 'alice');
  await alice.getByTestId('create-guild').click();
  await alice.getByTestId('prompt-input').fill('Files Club');
  await alice.getByTestId('prompt-ok').click();
  await alice.getByTestId('guild-name').filter({ hasText: 'Files Club' }).waitFor();
  await alice.getByTestId('text-channel').filter({ hasText: 'general' }).waitFor();
  [, guildId, channelId] = /\/channels\/(\d+)\/(\d+)/.exec(alice.url());
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
});

/** Removes every pending chip. */
async function clearChips(page) {
  while ((await page.getByTestId('pending-file').count()) > 0) await page.getByTestId('pending-file-remove').first().click();
}

test('files picked, dropped and pasted wait as chips; too many are refused before any upload', async () => {
  const info = await (await fetch(`${server.url}/api/v1/instance`)).json();
  assert.ok(info.uploads, `GET /instance advertises uploads: ${JSON.stringify(info)}`);
  const maxFiles = info.uploads.max_files;
  assert.equal(maxFiles, 10);

  // The attach button opens a picker for several files.
  const [chooser] = await Promise.all([alice.waitForEvent('filechooser'), alice.getByTestId('attach-button').click()]);
  assert.equal(chooser.isMultiple(), true);
  await chooser.setFiles([
    { name: 'one.txt', mimeType: 'text/plain', buffer: Buffer.from('1') },
    { name: 'two.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(1536) },
  ]);
  const chips = alice.getByTestId('pending-file');
  await chips.filter({ hasText: 'one.txt' }).filter({ hasText: '1 B' }).waitFor();
  await chips.filter({ hasText: 'two.bin' }).filter({ hasText: '1.5 KB' }).waitFor();
  await chips.filter({ hasText: 'one.txt' }).getByTestId('pending-file-remove').click();
  await chips.filter({ hasText: 'one.txt' }).waitFor({ state: 'detached' });
  assert.equal(await chips.count(), 1);

  // Dropped on the message pane, and pasted into the box.
  await alice.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['dropped'], 'dropped.txt', { type: 'text/plain' }));
    const target = /** @type {HTMLElement} */ (document.getElementById('messages'));
    for (const type of ['dragenter', 'dragover', 'drop']) target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await chips.filter({ hasText: 'dropped.txt' }).waitFor();
  await alice.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array([137, 80, 78, 71])], 'image.png', { type: 'image/png' }));
    document.querySelector('[data-testid="composer"]')?.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  });
  await chips.filter({ hasText: /^pasted-\d{8}-\d{6}\.png/ }).waitFor();
  assert.equal(await chips.count(), 3);
  assert.equal(await alice.locator('#content.drop-target').count(), 0, 'the drop overlay is gone after the drop');

  // One file too many: refused here, with the reason.
  await clearChips(alice);
  const many = Array.from({ length: maxFiles + 1 }, (_, i) => ({ name: `f${i}.txt`, mimeType: 'text/plain', buffer: Buffer.from(String(i)) }));
  await alice.getByTestId('attach-input').setInputFiles(many);
  await alice.getByTestId('attach-error').filter({ hasText: `at most ${maxFiles} files` }).waitFor();
  assert.equal(await chips.count(), maxFiles);
  await clearChips(alice);
});

test('an image and a text file go up with a progress bar; the other side sees them inline and as a card', async () => {
  const before = (await history()).length;
  await alice.getByTestId('attach-input').setInputFiles([
    { name: 'gradient.png', mimeType: 'image/png', buffer: PNG },
    { name: TEXT_NAME, mimeType: 'text/plain', buffer: TEXT },
  ]);
  await alice.getByTestId('pending-file').filter({ hasText: 'gradient.png' }).waitFor();
  await alice.getByTestId('composer').fill('here are the files');
  // Slow enough that the progress shows for a moment (PNG of noise: about 0.7 MB).
  await throttle(400_000);
  await alice.getByTestId('composer').press('Enter');
  const bar = alice.getByTestId('upload-progress');
  await bar.waitFor();
  const progress = await until(alice, () => {
    const p = /** @type {HTMLProgressElement|null} */ (document.querySelector('[data-testid="upload-progress"]'));
    return p && p.value > 0 ? { value: p.value, max: p.max } : null;
  });
  assert.ok(progress.max > PNG.length && progress.value <= progress.max, JSON.stringify(progress));
  assert.equal(await alice.getByTestId('pending-file').count(), 0, 'the chips went with the upload');
  assert.ok(await alice.getByTestId('upload-cancel').isVisible());
  await screenshot(alice, 'attachments-upload');
  await throttle(-1);

  const onBob = bob.getByTestId('message').filter({ hasText: 'here are the files' });
  await onBob.waitFor();
  await alice.getByTestId('upload-status').waitFor({ state: 'hidden' });
  const page = await history();
  assert.equal(page.length, before + 1, 'one message');
  const msg = page.find((m) => m.content === 'here are the files');
  assert.equal(msg.attachments.length, 2);
  const [img, txt] = msg.attachments;
  for (const a of msg.attachments) {
    assert.deepEqual(Object.keys(a).sort(), ['content_type', 'filename', 'height', 'id', 'size', 'thumbnail_url', 'url', 'width'], JSON.stringify(a));
  }
  assert.deepEqual([img.filename, img.content_type, img.width, img.height], ['gradient.png', 'image/png', 640, 360]);
  assert.ok(img.thumbnail_url, 'an image has a thumbnail');
  assert.deepEqual([txt.filename, txt.size, txt.width, txt.height, txt.thumbnail_url], [TEXT_NAME, TEXT.length, null, null, null]);
  assert.match(txt.content_type, /^text\/plain/);

  // The image: its thumbnail, loaded, in a box reserved from its size (640×360 into 400×300 → 400×225).
  const image = onBob.getByTestId('attachment-image');
  await image.waitFor();
  assert.equal(await image.getAttribute('width'), '400');
  assert.equal(await image.getAttribute('height'), '225');
  assert.equal(await image.getAttribute('loading'), 'lazy');
  assert.equal(await image.getAttribute('src'), img.thumbnail_url);
  const loaded = await until(bob, () => {
    const el = /** @type {HTMLImageElement|null} */ (document.querySelector('[data-testid="attachment-image"]'));
    return el && el.complete && el.naturalWidth > 0 ? { natural: [el.naturalWidth, el.naturalHeight], shown: [el.clientWidth, el.clientHeight] } : null;
  });
  assert.ok(loaded.natural[0] <= 400 && loaded.natural[1] <= 400, `a thumbnail: ${loaded.natural}`);
  assert.deepEqual(loaded.shown, [400, 225], 'shown in the reserved box');
  // A click opens the full image in a new tab.
  const full = onBob.locator('a.attachment-image-link');
  assert.equal(await full.getAttribute('href'), img.url);
  assert.equal(await full.getAttribute('target'), '_blank');
  const fullImage = await bob.evaluate(async (url) => {
    const r = await fetch(url);
    const blob = await r.blob();
    const bmp = await createImageBitmap(blob);
    return { status: r.status, type: r.headers.get('Content-Type'), size: blob.size, w: bmp.width, h: bmp.height };
  }, img.url);
  assert.deepEqual(fullImage, { status: 200, type: 'image/png', size: img.size, w: 640, h: 360 });

  // The text file: a card with its name as text, its size, and a download link to the exact bytes.
  const card = onBob.getByTestId('attachment-file');
  await card.waitFor();
  assert.equal(await card.getByTestId('attachment-download').textContent(), TEXT_NAME);
  assert.equal(await card.locator('.file-meta *').count(), 2, 'the name is never HTML');
  assert.equal(await card.getByTestId('attachment-size').textContent(), `${TEXT.length} B`);
  const download = card.getByTestId('attachment-download');
  assert.equal(await download.getAttribute('download'), TEXT_NAME);
  const href = await download.getAttribute('href');
  assert.equal(href, txt.url);
  const bytes = await bob.evaluate(async (url) => [...new Uint8Array(await (await fetch(url)).arrayBuffer())], href);
  assert.deepEqual(Buffer.from(bytes), TEXT, 'the download is exactly what was sent');
  await screenshot(bob, 'attachments');
});

test('a large upload cancelled while it runs creates no message and gives the file back', async () => {
  const before = await history();
  const bobCount = await bob.getByTestId('message').count();
  const big = Buffer.alloc(20 * 1024 * 1024, 7);
  await alice.getByTestId('attach-input').setInputFiles([{ name: 'big.bin', mimeType: 'application/octet-stream', buffer: big }]);
  await alice.getByTestId('pending-file').filter({ hasText: 'big.bin' }).filter({ hasText: '20 MB' }).waitFor();
  await throttle(2_000_000); // 10 s for the whole file
  await alice.getByTestId('composer').press('Enter');
  await until(alice, () => /** @type {HTMLProgressElement|null} */ (document.querySelector('[data-testid="upload-progress"]'))?.value > 0);
  await alice.getByTestId('upload-cancel').click();
  await alice.getByTestId('upload-text').filter({ hasText: 'cancelled' }).waitFor();
  await throttle(-1);
  await alice.getByTestId('pending-file').filter({ hasText: 'big.bin' }).waitFor();
  // Give the server time to finish with whatever it got, then look.
  await alice.waitForTimeout(1500);
  const afterPage = await history();
  assert.deepEqual(afterPage.map((m) => m.id), before.map((m) => m.id), 'no message was created');
  assert.equal(await bob.getByTestId('message').count(), bobCount);
  await clearChips(alice);
});

test("the server's refusal of a file that is not the image it claims to be is shown", async () => {
  await alice.getByTestId('attach-input').setInputFiles([{ name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from('this is not a png at all') }]);
  await alice.getByTestId('pending-file').filter({ hasText: 'fake.png' }).waitFor();
  await alice.getByTestId('composer').press('Enter');
  await alice.getByTestId('upload-error').filter({ hasText: 'claims to be an image' }).waitFor();
  // The file is given back for another try (or removal).
  await alice.getByTestId('pending-file').filter({ hasText: 'fake.png' }).waitFor();
  await clearChips(alice);
  await alice.getByTestId('upload-dismiss').click();
  await alice.getByTestId('upload-status').waitFor({ state: 'hidden' });
});

test('without ATTACH_FILES the attach button is gone and the server refuses files', async () => {
  const ATTACH_FILES = 1 << 15;
  const put = await call(alice, 'PUT', `/channels/${channelId}/permissions/${guildId}`, { kind: 'role', allow: '0', deny: String(ATTACH_FILES) });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  await bob.getByTestId('attach-button').waitFor({ state: 'hidden' });
  assert.ok(await alice.getByTestId('attach-button').isVisible(), 'the owner keeps it');
  // A file dropped anyway is refused with the reason; the server refuses one sent past the client.
  await bob.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['x'], 'x.txt', { type: 'text/plain' }));
    document.getElementById('messages')?.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await bob.getByTestId('attach-error').filter({ hasText: 'permission to attach files' }).waitFor();
  assert.equal(await bob.getByTestId('pending-file').count(), 0);
  const refused = await bob.evaluate(async (cid) => {
    const app = /** @type {any} */ (window).__chorus;
    const form = new FormData();
    form.append('payload_json', JSON.stringify({ content: 'sneaky' }));
    form.append('files[0]', new Blob(['x']), 'x.txt');
    try {
      await app.api.upload(`/channels/${cid}/messages`, form).promise;
      return null;
    } catch (e) {
      return { status: e.status, code: e.code };
    }
  }, channelId);
  assert.deepEqual(refused, { status: 403, code: 'missing_permission' });
  const del = await call(alice, 'DELETE', `/channels/${channelId}/permissions/${guildId}`);
  assert.ok(del.status === 200 || del.status === 204, JSON.stringify(del));
  await bob.getByTestId('attach-button').waitFor();
});

test('deleting a message deletes its files', async () => {
  const msg = (await history()).find((m) => m.content === 'here are the files');
  const urls = msg.attachments.flatMap((a) => [a.url, a.thumbnail_url].filter(Boolean));
  alice.once('dialog', (d) => d.accept());
  const item = alice.getByTestId('message').filter({ hasText: 'here are the files' });
  await item.hover();
  await item.getByTestId('delete-button').click();
  await bob.getByTestId('message').filter({ hasText: 'here are the files' }).waitFor({ state: 'detached' });
  // (Bypassing the browser's cache: the files are served with max-age=86400, immutable.)
  const statuses = await bob.evaluate((list) => Promise.all(list.map(async (u) => (await fetch(u, { cache: 'no-store' })).status)), urls);
  for (const s of statuses) assert.ok(s === 404 || s === 410, `a deleted file is gone: ${statuses}`);
  assert.deepEqual(errors.flat(), [], 'no uncaught errors or CSP violations in either page');
});
