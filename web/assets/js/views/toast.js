// Short notices in a corner (an action the server refused, for instance): read out by screen readers,
// gone after a few seconds, never blocking like alert().

import { h } from '../dom.js';

/** @param {string} text @param {{ kind?: 'error'|'info', ms?: number }} [opts] */
export function showToast(text, { kind = 'error', ms = 6000 } = {}) {
  let host = document.getElementById('toasts');
  if (!host) {
    host = h('div', { id: 'toasts', class: 'toasts' });
    document.body.appendChild(host);
  }
  const t = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast' }, text);
  host.appendChild(t);
  setTimeout(() => t.remove(), ms);
  return t;
}
