// The composer: Enter sends, Shift+Enter adds a line, Up edits your last message, Escape cancels a reply.
// A message shows at once and is retried with the same nonce until the server acknowledges it, so a
// flaky connection never duplicates it.

import { h, replace } from '../dom.js';

/** @param {HTMLFormElement} root @param {any} app */
export function mountComposer(root, app) {
  const area = /** @type {HTMLTextAreaElement} */ (root.querySelector('textarea'));
  const replyBar = /** @type {HTMLElement} */ (root.querySelector('#reply-bar'));
  let replyTo = /** @type {any} */ (null);
  let lastTyping = 0;

  const s = () => app.store.state;

  app.composer = {
    replyTo(/** @type {any} */ m) {
      replyTo = m;
      replace(replyBar, `Replying to ${m.author?.display_name || m.author?.username}`, h('button', { type: 'button', class: 'icon', 'aria-label': 'Cancel reply', onclick: cancelReply }, '✕'));
      replyBar.hidden = false;
      area.focus();
    },
  };

  function cancelReply() {
    replyTo = null;
    replyBar.hidden = true;
  }

  async function send(channelId, content, reply) {
    const nonce = `${Date.now()}${Math.floor(Math.random() * 1e6)}`.slice(0, 25);
    const me = s().me;
    app.store.addPending({
      id: `pending-${nonce}`,
      channel_id: channelId,
      author: me,
      content,
      created_at: new Date().toISOString(),
      reply_to: reply?.id ?? null,
      reactions: [],
      mentions: [],
      nonce,
    });
    for (let attempt = 0; ; attempt++) {
      try {
        const m = await app.api.post(`/channels/${channelId}/messages`, { content, nonce, reply_to: reply?.id ?? undefined });
        app.store.acknowledge(m);
        return;
      } catch (e) {
        const err = /** @type {any} */ (e);
        // Refusals (validation, permission) will not change with a retry; network trouble will.
        if (err.status && err.status < 500 && err.status !== 429) {
          app.store.markFailed(channelId, nonce, true);
          alert(`Message not sent: ${err.message}`);
          return;
        }
        app.store.markFailed(channelId, nonce, true);
        await new Promise((r) => setTimeout(r, Math.min(10_000, 1000 * 2 ** attempt)));
      }
    }
  }

  area.addEventListener('keydown', (e) => {
    const cid = s().current.channelId;
    if (!cid) return;
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      const content = area.value.trim();
      if (!content) return;
      area.value = '';
      const reply = replyTo;
      cancelReply();
      send(cid, content, reply);
      return;
    }
    if (e.key === 'ArrowUp' && !area.value) {
      const mine = (s().messages.get(cid) ?? []).filter((m) => m.author?.id === s().me?.id && !m.pending).at(-1);
      if (mine) {
        e.preventDefault();
        app.editMessage?.(mine);
      }
      return;
    }
    if (e.key === 'Escape') cancelReply();
    if (Date.now() - lastTyping > 8000 && e.key.length === 1) {
      lastTyping = Date.now();
      app.api.post(`/channels/${cid}/typing`).catch(() => {});
    }
  });
  root.addEventListener('submit', (e) => e.preventDefault());

  app.store.subscribe((/** @type {any} */ st, what) => {
    if (what !== 'SELECT' && what !== 'READY') return;
    const c = st.current.channelId ? st.channels.get(st.current.channelId) : null;
    root.hidden = !c || c.kind !== 'text';
    area.placeholder = c ? `Message #${c.name}` : '';
    area.setAttribute('aria-label', c ? `Message #${c.name}` : 'Message');
  });
}
