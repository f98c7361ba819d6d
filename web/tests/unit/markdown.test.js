import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderMarkdown } from '../../assets/js/markdown.js';
import { fakeDocument, serialize, elements } from './fake-dom.js';

const render = (text, extra = {}) => renderMarkdown(text, { doc: /** @type {any} */ (fakeDocument), ...extra });
const tags = (frag) => elements(frag).map((e) => e.tagName.toLowerCase());

test('bold, italic and inline code become elements', () => {
  assert.equal(serialize(render('a **b** *c* `d`')), '"a " [strong]("b") " " [em]("c") " " [code]("d")');
});

test('code blocks keep their content verbatim, without markdown inside', () => {
  const f = render('x\n```js\nconst **a** = `1`;\n```\ny');
  assert.deepEqual(tags(f), ['pre', 'code']);
  assert.equal(elements(f)[1].textContent, 'const **a** = `1`;\n');
});

test('an unclosed fence stays text', () => {
  assert.equal(render('```not closed').textContent, '```not closed');
  assert.deepEqual(tags(render('```not closed')), []);
});

test('http and https links get safe attributes; trailing punctuation is not part of the link', () => {
  const f = render('see https://example.com/a?b=1. ok');
  const [a] = elements(f);
  assert.equal(a.tagName, 'A');
  assert.equal(a.getAttribute('href'), 'https://example.com/a?b=1');
  assert.equal(a.getAttribute('rel'), 'noopener noreferrer');
  assert.equal(a.getAttribute('target'), '_blank');
  assert.equal(f.textContent, 'see https://example.com/a?b=1. ok');
});

test('javascript: and other schemes never become links', () => {
  for (const t of ['javascript:alert(1)', '[x](javascript:alert(1))', 'data:text/html,<script>alert(1)</script>', 'JaVaScRiPt:alert(1)']) {
    const f = render(t);
    assert.deepEqual(tags(f).filter((x) => x === 'a'), [], t);
    assert.equal(f.textContent, t);
  }
});

test('HTML is shown as text and creates no element', () => {
  const hostile = '<img src=x onerror=alert(1)><script>alert(1)</script><a href="javascript:x">y</a><iframe src=//evil>';
  const f = render(hostile);
  assert.deepEqual(tags(f), []);
  assert.equal(f.textContent, hostile);
});

test('markers inside hostile input still only produce known tags with text children', () => {
  const f = render('**<b onclick=x>**_<i>_`<script>`');
  assert.ok(tags(f).every((t) => ['strong', 'em', 'code'].includes(t)), tags(f).join());
  assert.equal(f.textContent, '<b onclick=x><i><script>');
});

test('snake_case words keep their underscores', () => {
  assert.equal(serialize(render('my_var_name and some_other_one')), '"my_var_name and some_other_one"');
});

test('mentions show the name and mark the reader', () => {
  const f = render('hi <@42> and <@!7>', { mentionName: (id) => ({ 42: 'alice', 7: 'bob' })[id], meId: '42' });
  const [me, other] = elements(f);
  assert.equal(me.textContent, '@alice');
  assert.equal(me.className, 'mention mention-me');
  assert.equal(other.textContent, '@bob');
  assert.equal(other.className, 'mention');
});

test('deeply nested and unbalanced markers terminate and keep the text', () => {
  const text = '**'.repeat(500) + '*_`'.repeat(500) + 'x';
  const f = render(text);
  assert.equal(f.textContent.replace(/[*_`]/g, ''), 'x');
});
