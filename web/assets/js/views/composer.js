// The composer: Enter sends, Shift+Enter adds a line, Up edits your last message, Escape cancels a reply.
// A message shows at once and is retried with the same nonce until the server acknowledges it, so a
// flaky connection never duplicates it. In a slow-mode channel a member who is not exempt sees the
// setting, and after a send a countdown during which Enter sends nothing; a refusal from the server
// (429 slow_mode) takes the message back into the box and shows the server's wait.

import { h, replace } from '../dom.js';
import { Cooldowns } from '../slowmode.js';
import { permissionsFor, has } from '../permissions.js';

/** @param {HTMLFormElement} root @param {any} app */
export function mountComposer(root, app) {
  const area = /** @type {HTMLTextAreaElement} */ (root.querySelector('textarea'));
  const replyBar = /** @type {HTMLElement} */ (root.querySelector('#reply-bar'));
  const slowEl = /** @type {HTMLElement} */ (root.querySelector('#slow-mode'));
  let replyTo = /** @type {any} */ (null);
  let lastTyping = 0;
  const cooldowns = new Cooldowns();
  /** @type {any} */
  let ticker = null;

  const s = () => app.store.state;

  /** The channel's slow mode for us: its setting, whether we are exempt. @param {string} cid */
  const slowMode = (cid) => {
    const st = s();
    const c = st.channels.get(cid);
    const perms = permissionsFor(st, c?.guild_id, st.me?.id, cid);
    const exempt = !c?.guild_id || has(perms, 'MANAGE_MESSAGES') || has(perms, 'MANAGE_CHANNELS');
    return { rate: Number(c?.rate_limit_per_user) || 0, exempt };
  };
  const slowView = (/** @type {string} */ cid) => {
    const { rate, exempt } = slowMode(cid);
    return cooldowns.view(cid, rate, exempt, Date.now());
  };

  function renderSlow() {
    const cid = s().current.channelId;
    const v = cid ? slowView(cid) : null;
    slowEl.hidden = !v || v.hidden;
    if (slowEl.textContent !== (v?.text ?? '')) slowEl.textContent = v?.text ?? '';
    slowEl.classList.toggle('blocked', !!v?.blocked);
    slowEl.classList.toggle('refused', !!v?.refused);
    slowEl.dataset.exempt = v?.exempt ? 'true' : 'false';
    slowEl.dataset.remaining = String(v?.remaining ?? 0);
    root.classList.toggle('slow-blocked', !!v?.blocked);
    const running = cooldowns.anyRunning(Date.now());
    if (running && !ticker) ticker = setInterval(renderSlow, 250);
    else if (!running && ticker) {
      clearInterval(ticker);
      ticker = null;
    }
  }

  /** Draws the eye to the countdown when Enter is pressed during it. */
  function nudge() {
    slowEl.classList.remove('nudge');
    void slowEl.offsetWidth;
    slowEl.classList.add('nudge');
  }

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
    const slow = slowMode(channelId);
    const counts = slow.rate > 0 && !slow.exempt;
    if (counts) {
      cooldowns.sent(channelId, slow.rate, Date.now());
      renderSlow();
    }
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
        // The server's cooldown started when it took the message: count from now, not from Enter.
        if (counts) cooldowns.sent(channelId, slow.rate, Date.now());
        renderSlow();
        return;
      } catch (e) {
        const err = /** @type {any} */ (e);
        if (err.code === 'slow_mode') {
          // Sent too soon (another tab, a reload, a setting we did not know): the text goes back into the
          // box and the wait the server named is shown.
          app.store.removePending(channelId, nonce);
          cooldowns.refused(channelId, err.retryAfter ?? (slow.rate || 1), Date.now());
          if (s().current.channelId === channelId && !area.value) area.value = content;
          renderSlow();
          return;
        }
        // Refusals (validation, permission) will not change with a retry; network trouble will.
        if (err.status && err.status < 500 && err.status !== 429) {
          cooldowns.clear(channelId); // a refused message started no cooldown
          renderSlow();
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
      if (slowView(cid).blocked) {
        renderSlow();
        nudge();
        return;
      }
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
    // Slow mode follows the channel's setting and our roles (exemption).
    if (!['TYPING_START', 'PRESENCE_UPDATE', 'PENDING', 'HISTORY', 'MESSAGE_CREATE'].includes(what)) renderSlow();
    if (what !== 'SELECT' && what !== 'READY') return;
    const c = st.current.channelId ? st.channels.get(st.current.channelId) : null;
    root.hidden = !c || c.kind !== 'text';
    area.placeholder = c ? `Message #${c.name}` : '';
    area.setAttribute('aria-label', c ? `Message #${c.name}` : 'Message');
  });
}
