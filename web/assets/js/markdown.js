// A small, safe markdown: **bold**, *italic* / _italic_, `inline code`, ```code blocks```, http(s) links and
// <@id> mentions. It builds DOM nodes through `doc` (the page's document, or a stand-in in tests) and never
// parses HTML, so whatever a message contains is shown as text.

const MAX_DEPTH = 4;
const URL_RE = /^https?:\/\/[^\s<>"']+/;
const MENTION_RE = /^<@!?(\d{1,20})>/;

/**
 * @typedef {{ doc: Document, mentionName?: (id: string) => string|undefined, meId?: string }} Ctx
 */

/**
 * Renders message content into a fragment of nodes.
 * @param {string} text
 * @param {Ctx} ctx
 */
export function renderMarkdown(text, ctx) {
  const frag = ctx.doc.createDocumentFragment();
  const parts = String(text).split('```');
  parts.forEach((part, i) => {
    // Odd parts sit between fences; an unclosed fence (last part at an odd index) stays literal text.
    const closed = i % 2 === 1 && i < parts.length - 1;
    if (closed) {
      const pre = ctx.doc.createElement('pre');
      const code = ctx.doc.createElement('code');
      code.appendChild(ctx.doc.createTextNode(part.replace(/^[a-z0-9+-]*\n/i, '')));
      pre.appendChild(code);
      frag.appendChild(pre);
    } else {
      inline(i % 2 === 1 ? '```' + part : part, frag, ctx, 0);
    }
  });
  return frag;
}

/**
 * @param {string} text
 * @param {Node} out
 * @param {Ctx} ctx
 * @param {number} depth
 */
function inline(text, out, ctx, depth) {
  let buf = '';
  const flush = () => {
    if (buf) out.appendChild(ctx.doc.createTextNode(buf));
    buf = '';
  };
  /** @param {string} tag @param {string} inner @param {boolean} nested */
  const wrap = (tag, inner, nested) => {
    flush();
    const el = ctx.doc.createElement(tag);
    if (nested && depth < MAX_DEPTH) inline(inner, el, ctx, depth + 1);
    else el.appendChild(ctx.doc.createTextNode(inner));
    out.appendChild(el);
  };
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    const c = text[i];
    if (c === '`') {
      const end = text.indexOf('`', i + 1);
      if (end > i + 1) {
        wrap('code', text.slice(i + 1, end), false);
        i = end + 1;
        continue;
      }
    } else if (rest.startsWith('**')) {
      const end = text.indexOf('**', i + 2);
      if (end > i + 2) {
        wrap('strong', text.slice(i + 2, end), true);
        i = end + 2;
        continue;
      }
    } else if (c === '*' || (c === '_' && !/\w/.test(text[i - 1] ?? ''))) {
      let end = text.indexOf(c, i + 1);
      // snake_case words keep their underscores: `_` closes only before a non-word character.
      while (c === '_' && end > 0 && /\w/.test(text[end + 1] ?? '')) end = text.indexOf(c, end + 1);
      if (end > i + 1 && text[i + 1] !== ' ') {
        wrap('em', text.slice(i + 1, end), true);
        i = end + 1;
        continue;
      }
    } else if (c === '<') {
      const m = MENTION_RE.exec(rest);
      if (m) {
        flush();
        const span = ctx.doc.createElement('span');
        span.className = m[1] === ctx.meId ? 'mention mention-me' : 'mention';
        span.appendChild(ctx.doc.createTextNode('@' + (ctx.mentionName?.(m[1]) ?? m[1])));
        out.appendChild(span);
        i += m[0].length;
        continue;
      }
    } else if (c === 'h') {
      const m = URL_RE.exec(rest);
      if (m) {
        flush();
        // Trailing punctuation belongs to the sentence, not the link.
        const url = m[0].replace(/[).,!?:;]+$/, '');
        const a = ctx.doc.createElement('a');
        a.setAttribute('href', url);
        a.setAttribute('target', '_blank');
        a.setAttribute('rel', 'noopener noreferrer');
        a.appendChild(ctx.doc.createTextNode(url));
        out.appendChild(a);
        i += url.length;
        continue;
      }
    }
    buf += c;
    i += 1;
  }
  flush();
}

/** Whether content mentions the user (directly or @everyone/@here). */
export function mentionsUser(content, userId) {
  return content.includes(`<@${userId}>`) || content.includes(`<@!${userId}>`) || /@(everyone|here)\b/.test(content);
}
