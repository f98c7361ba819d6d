import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  humanSize,
  fitWithin,
  uploadLimits,
  checkFiles,
  buildMessageForm,
  uploadErrorText,
  safeUrl,
  isInlineImage,
  attachmentsSummary,
  pastedName,
  Drafts,
  DEFAULT_MAX_FILES,
} from '../../assets/js/attachments.js';

const MiB = 1024 * 1024;
const file = (name, size, type = 'application/octet-stream') => ({ name, size, type });

test('sizes read in human units', () => {
  assert.equal(humanSize(0), '0 B');
  assert.equal(humanSize(1), '1 B');
  assert.equal(humanSize(1023), '1023 B');
  assert.equal(humanSize(1024), '1 KB');
  assert.equal(humanSize(1536), '1.5 KB');
  assert.equal(humanSize(10 * 1024), '10 KB');
  assert.equal(humanSize(123_456), '121 KB');
  assert.equal(humanSize(1024 * 1024 - 1), '1 MB', 'no "1024 KB"');
  assert.equal(humanSize(25 * MiB), '25 MB');
  assert.equal(humanSize(2.25 * 1024 * MiB), '2.3 GB');
  assert.equal(humanSize(-5), '0 B');
  assert.equal(humanSize(/** @type {any} */ ('x')), '0 B');
});

test('images scale down into 400×300 keeping their shape, never up', () => {
  assert.deepEqual(fitWithin(640, 360), { width: 400, height: 225 });
  assert.deepEqual(fitWithin(800, 200), { width: 400, height: 100 });
  assert.deepEqual(fitWithin(300, 900), { width: 100, height: 300 });
  assert.deepEqual(fitWithin(4000, 3000), { width: 400, height: 300 });
  assert.deepEqual(fitWithin(120, 80), { width: 120, height: 80 }, 'small images keep their size');
  assert.deepEqual(fitWithin(10_000, 1), { width: 400, height: 1 }, 'at least one pixel');
  assert.deepEqual(fitWithin(100, 100, 50, 50), { width: 50, height: 50 });
  assert.equal(fitWithin(null, 100), null);
  assert.equal(fitWithin(0, 100), null);
  assert.equal(fitWithin(100, -1), null);
  assert.equal(fitWithin(/** @type {any} */ ('abc'), 5), null);
});

test("the instance's upload limits, optional field by field", () => {
  assert.deepEqual(uploadLimits({ uploads: { max_file_bytes: 25 * MiB, max_message_bytes: 100 * MiB, max_files: 10 } }), {
    maxFileBytes: 25 * MiB,
    maxMessageBytes: 100 * MiB,
    maxFiles: 10,
  });
  assert.deepEqual(uploadLimits({ registration: 'open' }), { maxFileBytes: null, maxMessageBytes: null, maxFiles: DEFAULT_MAX_FILES });
  assert.deepEqual(uploadLimits(null), { maxFileBytes: null, maxMessageBytes: null, maxFiles: 10 });
  assert.deepEqual(uploadLimits({ uploads: { max_file_bytes: 0, max_message_bytes: 'x', max_files: 3 } }), { maxFileBytes: null, maxMessageBytes: null, maxFiles: 3 });
});

test('files over the limits are refused before any upload, with the reason', () => {
  const limits = { maxFileBytes: 25 * MiB, maxMessageBytes: 30 * MiB, maxFiles: 3 };
  const big = file('huge.iso', 30 * MiB);
  const a = file('a.txt', 20 * MiB);
  const b = file('b.txt', 15 * MiB);
  const c = file('c.txt', 1);
  let r = checkFiles([], [big, a, b, c], limits);
  assert.deepEqual(r.accepted, [a, c]);
  assert.deepEqual(r.refused, [
    '“huge.iso” is 30 MB; files can be at most 25 MB.',
    '“b.txt” would bring this message to 35 MB; a message can carry at most 30 MB.',
  ]);
  // The count counts what is already pending.
  r = checkFiles([a, c], [file('d', 1), file('e', 1), file('f', 1)], limits);
  assert.equal(r.accepted.length, 1);
  assert.deepEqual(r.refused, ['A message can carry at most 3 files; 2 files were left out.']);
  r = checkFiles([a, c, file('d', 1)], [file('e', 1)], limits);
  assert.deepEqual(r.refused, ['A message can carry at most 3 files; 1 file was left out.']);
  // Exactly at the limit is allowed.
  assert.equal(checkFiles([], [file('x', 25 * MiB)], limits).accepted.length, 1);
  // Unadvertised byte limits are the server's to enforce.
  r = checkFiles([], [file('x', 900 * MiB)], { maxFileBytes: null, maxMessageBytes: null, maxFiles: 10 });
  assert.deepEqual([r.accepted.length, r.refused], [1, []]);
});

/** A FormData stand-in that records the parts. */
class FakeForm {
  constructor() {
    /** @type {any[][]} */ this.parts = [];
  }
  append(...a) {
    this.parts.push(a);
  }
}

test('the multipart body: payload_json, then files[0], files[1]… with their names', () => {
  const a = file('cat.png', 10, 'image/png');
  const b = file('notes.txt', 5, 'text/plain');
  const form = /** @type {any} */ (buildMessageForm({ content: 'look', nonce: 'n1', reply_to: '42' }, [a, b], /** @type {any} */ (FakeForm)));
  assert.deepEqual(form.parts, [
    ['payload_json', '{"content":"look","nonce":"n1","reply_to":"42"}'],
    ['files[0]', a, 'cat.png'],
    ['files[1]', b, 'notes.txt'],
  ]);
  // No text: no content field; no reply: no reply_to.
  const bare = /** @type {any} */ (buildMessageForm({ content: '', nonce: 'n2', reply_to: null }, [a], /** @type {any} */ (FakeForm)));
  assert.deepEqual(bare.parts[0], ['payload_json', '{"nonce":"n2"}']);
});

test('the multipart body with the real FormData and File', async () => {
  const f = new File(['hello'], 'hi.txt', { type: 'text/plain' });
  const form = buildMessageForm({ content: 'x', nonce: 'n' }, [f]);
  assert.equal(form.get('payload_json'), '{"content":"x","nonce":"n"}');
  const got = /** @type {File} */ (form.get('files[0]'));
  assert.equal(got.name, 'hi.txt');
  assert.equal(await got.text(), 'hello');
});

test("the server's refusals in words", () => {
  const limits = { maxFileBytes: 25 * MiB, maxMessageBytes: 100 * MiB, maxFiles: 10 };
  assert.equal(uploadErrorText({ status: 413, code: 'file_too_large', message: 'x' }, limits), 'A file is larger than the server accepts (at most 25 MB).');
  assert.equal(uploadErrorText({ status: 413, code: 'upload_too_large' }, limits), 'These files together are larger than the server accepts for one message (at most 100 MB).');
  assert.equal(uploadErrorText({ status: 400, code: 'too_many_files' }, limits), 'Too many files for one message (at most 10).');
  assert.match(uploadErrorText({ status: 400, code: 'invalid_upload' }), /incomplete or malformed/);
  assert.equal(uploadErrorText({ status: 400, code: 'invalid_image', message: 'photo.png is not a PNG' }), 'A file claims to be an image but is not one. photo.png is not a PNG.');
  assert.match(uploadErrorText({ status: 400, code: 'image_too_large', message: '' }), /dimensions/);
  assert.match(uploadErrorText({ status: 403, code: 'over_quota' }), /quota/);
  assert.equal(uploadErrorText({ status: 403, code: 'missing_permission' }), 'You do not have permission to attach files in this channel.');
  assert.equal(uploadErrorText({ status: 429, code: 'slow_mode', retryAfter: 7 }), 'Slow mode is on: wait 7 s before sending again.');
  assert.equal(uploadErrorText({ status: 429, code: 'rate_limited', retryAfter: 3 }), 'You are sending too fast. Try again in 3 s.');
  assert.match(uploadErrorText({ status: 0, code: 'network' }), /cannot be reached/);
  assert.equal(uploadErrorText({ status: 413, code: 'error' }), 'The upload is larger than the server accepts.', 'a bare 413 from a proxy');
  assert.equal(uploadErrorText({ status: 500, code: 'internal', message: 'boom' }), 'The files were not sent: boom');
  assert.equal(uploadErrorText({ status: 413, code: 'file_too_large' }), 'A file is larger than the server accepts.', 'no limits known');
});

test('attachment links stay on the instance', () => {
  assert.equal(safeUrl('/attachments/1/2/cat.png?sig=abc&exp=1'), '/attachments/1/2/cat.png?sig=abc&exp=1');
  for (const bad of ['//evil.example/x', '/\\evil.example', 'https://evil.example/x', 'javascript:alert(1)', 'data:text/html,x', '', null, undefined, 42]) {
    assert.equal(safeUrl(bad), null, String(bad));
  }
});

test('inline images: a measured type with a size and a safe url; everything else is a file card', () => {
  const img = { content_type: 'image/png', width: 640, height: 360, url: '/a/1', thumbnail_url: '/a/1?t' };
  assert.equal(isInlineImage(img), true);
  assert.equal(isInlineImage({ ...img, content_type: 'image/webp' }), true);
  assert.equal(isInlineImage({ ...img, content_type: 'IMAGE/JPEG' }), true);
  assert.equal(isInlineImage({ ...img, content_type: 'image/svg+xml' }), false, 'no SVG inline');
  assert.equal(isInlineImage({ ...img, width: null }), false);
  assert.equal(isInlineImage({ ...img, content_type: 'text/plain' }), false);
  assert.equal(isInlineImage({ ...img, url: 'https://elsewhere/x' }), false);
});

test('a reply to a message with only files names them', () => {
  assert.equal(attachmentsSummary([{ filename: 'cat.png' }]), '📎 cat.png');
  assert.equal(attachmentsSummary([{ filename: 'a' }, { filename: 'b' }]), '📎 2 files');
  assert.equal(attachmentsSummary([]), '');
  assert.equal(attachmentsSummary(undefined), '');
});

test('pasted images get a dated name; named files keep theirs', () => {
  const now = new Date(2024, 0, 2, 3, 4, 5);
  assert.equal(pastedName({ name: 'image.png', size: 1, type: 'image/png' }, now), 'pasted-20240102-030405.png');
  assert.equal(pastedName({ name: '', size: 1, type: 'image/jpeg' }, now), 'pasted-20240102-030405.jpg');
  assert.equal(pastedName({ name: 'holiday.jpg', size: 1, type: 'image/jpeg' }, now), 'holiday.jpg');
  assert.equal(pastedName({ name: '', size: 1, type: '' }, now), 'pasted-20240102-030405.bin');
});

test('drafts: per channel, limits applied, the nonce kept for an unchanged retry only', () => {
  let n = 0;
  const d = new Drafts(() => `nonce-${++n}`);
  const limits = { maxFileBytes: 100, maxMessageBytes: 150, maxFiles: 10 };
  const a = file('a', 60);
  const b = file('b', 60);
  const c = file('c', 60);
  const r = d.add('ch1', [a, b, c], limits);
  assert.deepEqual(r.accepted, [a, b]);
  assert.equal(r.refused.length, 1);
  assert.deepEqual(d.files('ch1'), [a, b]);
  assert.deepEqual(d.files('ch2'), [], 'per channel');

  // First attempt: files taken out, a fresh nonce.
  let t = d.take('ch1', 'hi');
  assert.deepEqual(t, { files: [a, b], nonce: 'nonce-1' });
  assert.deepEqual(d.files('ch1'), []);
  // Cancelled: everything comes back; sent again unchanged, the same nonce.
  d.add('ch1', [c], { ...limits, maxMessageBytes: null });
  d.restore('ch1', t.files, 'hi');
  assert.deepEqual(d.files('ch1'), [a, b, c], 'restored files come first');
  assert.equal(d.takeText('ch1'), 'hi');
  assert.equal(d.takeText('ch1'), '', 'the text is handed out once');
  d.remove('ch1', c);
  t = d.take('ch1', 'hi');
  assert.equal(t.nonce, 'nonce-1', 'unchanged retry: same nonce');
  // Changed text or files: a new nonce.
  d.restore('ch1', t.files, 'hi');
  t = d.take('ch1', 'hi there');
  assert.equal(t.nonce, 'nonce-2');
  d.restore('ch1', t.files, 'hi there');
  d.remove('ch1', b);
  t = d.take('ch1', 'hi there');
  assert.equal(t.nonce, 'nonce-3');
  // Sent: the nonce is spent, even for the same files again.
  d.sent('ch1');
  d.add('ch1', [a], limits);
  assert.equal(d.take('ch1', 'hi there').nonce, 'nonce-4');
});

test('drafts: a message that arrives after a cancel settles the attempt', () => {
  let n = 0;
  const d = new Drafts(() => `nonce-${++n}`);
  const limits = { maxFileBytes: null, maxMessageBytes: null, maxFiles: 10 };
  const a = file('a', 1);
  const b = file('b', 1);
  d.add('ch', [a], limits);
  const t = d.take('ch', 'caption');
  d.add('ch', [b], limits);
  d.restore('ch', t.files, 'caption');
  assert.equal(d.pendingNonce('ch'), 'nonce-1');
  assert.equal(d.settle('ch', 'nonce-other'), null, 'another message changes nothing');
  assert.deepEqual(d.files('ch'), [a, b]);
  assert.equal(d.settle('ch', 'nonce-1'), 'caption');
  assert.deepEqual(d.files('ch'), [b], 'only the attempt\'s files leave');
  assert.equal(d.takeText('ch'), '');
  assert.equal(d.pendingNonce('ch'), null);
  assert.equal(d.settle('ch', 'nonce-1'), null, 'once');
  assert.equal(d.pendingNonce('nowhere'), null);
});
