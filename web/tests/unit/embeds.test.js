import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkHref, proxyImageUrl, cleanText, displayEmbed, displayEmbeds, MAX_TITLE, MAX_DESCRIPTION, MAX_EMBEDS } from '../../assets/js/embeds.js';

const PROXY = '/api/v1/link-previews/image?url=https%3A%2F%2Fexample%2Eorg%2Fog%2Epng&sig=0a1b2c';
const embed = (extra = {}) => ({
  url: 'https://example.org/post',
  title: 'A title',
  description: 'Some words.',
  site_name: 'Example',
  image_url: PROXY,
  ...extra,
});

test('a card links only to absolute http(s) URLs', () => {
  assert.equal(linkHref('https://example.org/a?b=1#c'), 'https://example.org/a?b=1#c');
  assert.equal(linkHref('http://127.0.0.1:8080/page'), 'http://127.0.0.1:8080/page');
  assert.equal(linkHref('HTTPS://Example.ORG'), 'https://example.org/', 'normalized as a browser would');
  assert.equal(linkHref('  https://example.org/x  '), 'https://example.org/x');
  for (const bad of [
    'javascript:alert(1)',
    ' javascript:alert(1)',
    'JaVaScRiPt:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:x',
    'ftp://example.org/file',
    '//evil.test/x',
    '/relative/path',
    'https:evil.test',
    'https://',
    'https://user:pass@example.org/',
    'java\nscript:alert(1)',
    '',
    null,
    undefined,
    42,
    { toString: () => 'https://example.org' },
    `https://example.org/${'a'.repeat(5000)}`,
  ]) {
    assert.equal(linkHref(bad), null, `refused: ${String(bad).slice(0, 40)}`);
  }
});

test("images load only through the server's proxy", () => {
  assert.equal(proxyImageUrl(PROXY), PROXY);
  for (const bad of [
    'https://example.org/og.png',
    'http://127.0.0.1:9000/og.png',
    '//example.org/og.png',
    '/api/v1/attachments/1/2/cat.png',
    '/api/v1/link-previews/image',
    '/api/v1/link-previews/imagex?url=a',
    '/API/V1/link-previews/image?url=a',
    ' /api/v1/link-previews/image?url=a',
    '/api/v1/link-previews/image?url=a b',
    '/api/v1/link-previews/image?url=a"onerror="x',
    '/api/v1/link-previews/image?url=a\\..\\x',
    '/api/v1/link-previews/image?url=a\nb',
    'data:image/png;base64,AAAA',
    'blob:http://x/y',
    'javascript:alert(1)',
    null,
    undefined,
    7,
  ]) {
    assert.equal(proxyImageUrl(bad), null, `refused: ${String(bad)}`);
  }
});

test('texts are folded, trimmed and cut on whole characters', () => {
  assert.equal(cleanText('  a \t b  ', 10), 'a b');
  assert.equal(cleanText('one\r\n\r\n\r\n\r\ntwo\nthree ', 50), 'one\n\ntwo\nthree');
  assert.equal(cleanText('   \n\t ', 10), null);
  assert.equal(cleanText(null, 10), null);
  assert.equal(cleanText(/** @type {any} */ (5), 10), null);
  assert.equal(cleanText('abcdefghij', 10), 'abcdefghij');
  assert.equal(cleanText('abcdefghijk', 10), 'abcdefghi…');
  assert.equal(cleanText('abcd efghijk', 6), 'abcd…', 'no space before the ellipsis');
  assert.equal(cleanText('😀😀😀😀', 3), '😀😀…', 'no half of a surrogate pair');
  assert.equal(cleanText('<b>not bold</b> &amp;', 50), '<b>not bold</b> &amp;', 'markup stays as it is (shown as text)');
});

test('an embed as a card shows it', () => {
  assert.deepEqual(displayEmbed(embed()), {
    url: 'https://example.org/post',
    href: 'https://example.org/post',
    title: 'A title',
    description: 'Some words.',
    siteName: 'Example',
    image: PROXY,
  });
  // Optional parts may be missing; the site name falls back to the host.
  assert.deepEqual(displayEmbed({ url: 'http://news.example.org:8080/x', title: null, description: 'Only words', site_name: null, image_url: null }), {
    url: 'http://news.example.org:8080/x',
    href: 'http://news.example.org:8080/x',
    title: null,
    description: 'Only words',
    siteName: 'news.example.org',
    image: null,
  });
  assert.equal(displayEmbed(embed({ site_name: '   ' }))?.siteName, 'example.org');
  // A remote image URL is never used: the card just has no image.
  assert.equal(displayEmbed(embed({ image_url: 'https://example.org/og.png' }))?.image, null);
  assert.equal(displayEmbed(embed({ title: 'x'.repeat(1000) }))?.title?.length, MAX_TITLE);
  assert.equal([...(displayEmbed(embed({ description: 'y'.repeat(5000) }))?.description ?? '')].length, MAX_DESCRIPTION);
});

test('an embed with a bad link or nothing to show is left out', () => {
  assert.equal(displayEmbed(embed({ url: 'javascript:alert(1)' })), null);
  assert.equal(displayEmbed(embed({ url: '/local' })), null);
  assert.equal(displayEmbed(embed({ url: undefined })), null);
  assert.equal(displayEmbed(embed({ title: ' ', description: null, image_url: 'https://example.org/og.png' })), null);
  assert.equal(displayEmbed(null), null);
  assert.equal(displayEmbed(/** @type {any} */ ('https://example.org')), null);
  // An image alone is enough.
  assert.equal(displayEmbed(embed({ title: null, description: null }))?.image, PROXY);
});

test("a message's embeds: the showable ones, in order, one per link, a bounded number", () => {
  assert.deepEqual(displayEmbeds(undefined), []);
  assert.deepEqual(displayEmbeds(null), []);
  assert.deepEqual(displayEmbeds({ url: 'https://example.org' }), []);
  const list = displayEmbeds([
    embed({ url: 'https://a.test/', title: 'A' }),
    embed({ url: 'javascript:alert(1)', title: 'bad' }),
    embed({ url: 'https://b.test/', title: 'B' }),
    embed({ url: 'https://a.test/', title: 'A again' }),
    null,
  ]);
  assert.deepEqual(list.map((e) => e.title), ['A', 'B']);
  const many = Array.from({ length: 20 }, (_, i) => embed({ url: `https://e${i}.test/` }));
  assert.equal(displayEmbeds(many).length, MAX_EMBEDS);
});
