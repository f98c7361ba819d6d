// The message pane: history (older pages load when scrolled to the top), messages grouped by author,
// edit / delete / reply / reactions, mention highlight, the typing line and "jump to present".
// Attachments show under the text: images inline (the thumbnail, in a box sized from the image's
// dimensions before it loads, opening the full image in a new tab), other files as download cards.
// Link previews (embeds, added by the server a moment after the message) show under those as cards: site
// name, the title linking to the page, the description, and the image through the server's proxy.

import { h, replace, timeOf } from '../dom.js';
import { renderMarkdown } from '../markdown.js';
import { groupMessages } from '../store.js';
import { fitWithin, humanSize, isInlineImage, safeUrl, attachmentsSummary } from '../attachments.js';
import { displayEmbeds } from '../embeds.js';

const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉'];
const PAGE = 50;

/** @param {HTMLElement} root @param {any} app */
export function mountMessages(root, app) {
  const header = /** @type {HTMLElement} */ (root.querySelector('#channel-header'));
  const list = /** @type {HTMLElement} */ (root.querySelector('#messages'));
  const typing = /** @type {HTMLElement} */ (root.querySelector('#typing'));
  const jump = /** @type {HTMLButtonElement} */ (root.querySelector('#jump-present'));
  let shownChannel = null;
  let loading = false;
  let stick = true;

  const s = () => app.store.state;
  const nameOf = (/** @type {any} */ u) => u?.display_name || u?.username || '?';

  async function loadOlder(channelId) {
    if (loading || s().historyDone.get(channelId)) return;
    loading = true;
    try {
      const have = s().messages.get(channelId) ?? [];
      const q = have.length ? `?before=${have[0].id}&limit=${PAGE}` : `?limit=${PAGE}`;
      const page = await app.api.get(`/channels/${channelId}/messages${q}`);
      const before = list.scrollHeight - list.scrollTop;
      app.store.addHistory(channelId, page, page.length < PAGE);
      // Keep what the reader was looking at in place while older messages appear above it.
      if (have.length) list.scrollTop = list.scrollHeight - before;
    } catch {
      /* shown as an empty pane; the next scroll retries */
    } finally {
      loading = false;
    }
  }

  /** After a new gateway session: the newest page again, so nothing missed in between stays missing. */
  async function refreshLatest(channelId) {
    if (refreshing.has(channelId)) return;
    refreshing.add(channelId);
    try {
      const page = await app.api.get(`/channels/${channelId}/messages?limit=${PAGE}`);
      app.store.refreshLatest(channelId, page, page.length < PAGE);
    } catch {
      /* still stale: the next render retries */
    } finally {
      refreshing.delete(channelId);
    }
  }
  const refreshing = new Set();

  function ack(channelId) {
    const msgs = s().messages.get(channelId);
    const last = msgs?.filter((m) => !m.pending).at(-1);
    const rs = s().readStates.get(channelId);
    if (!last || (rs && rs.last_read_id === last.id && !rs.unread_count)) return;
    s().readStates.set(channelId, { ...rs, last_read_id: last.id, unread_count: 0, mention_count: 0 });
    app.api.post(`/channels/${channelId}/messages/${last.id}/ack`).catch(() => {});
  }

  const actions = (/** @type {any} */ m, mine) =>
    h(
      'div',
      { class: 'msg-actions', role: 'toolbar', 'aria-label': 'Message actions' },
      QUICK_REACTIONS.slice(0, 2).map((e) =>
        h('button', { class: 'icon', 'aria-label': `React with ${e}`, 'data-testid': 'react-button', 'data-emoji': e, onclick: () => toggleReaction(m, e) }, e),
      ),
      h('button', { class: 'icon', 'aria-label': 'Reply', 'data-testid': 'reply-button', onclick: () => app.composer?.replyTo(m) }, '↩'),
      mine ? h('button', { class: 'icon', 'aria-label': 'Edit message', 'data-testid': 'edit-button', onclick: () => startEdit(m) }, '✎') : null,
      mine || app.canManageMessages?.()
        ? h('button', { class: 'icon danger', 'aria-label': 'Delete message', 'data-testid': 'delete-button', onclick: () => remove(m) }, '🗑')
        : null,
    );

  async function toggleReaction(m, emoji) {
    const r = m.reactions.find((x) => x.emoji === emoji);
    const path = `/channels/${m.channel_id}/messages/${m.id}/reactions/${encodeURIComponent(emoji)}/@me`;
    if (r?.me) await app.api.del(path);
    else await app.api.put(`/channels/${m.channel_id}/messages/${m.id}/reactions/${encodeURIComponent(emoji)}`);
  }

  async function remove(m) {
    if (!confirm('Delete this message?')) return;
    await app.api.del(`/channels/${m.channel_id}/messages/${m.id}`);
  }

  /** Replaces a message's body with an editor; Enter saves, Escape cancels. */
  function startEdit(m) {
    const item = list.querySelector(`[data-message-id="${m.id}"] .msg-body`);
    if (!item) return;
    const area = /** @type {HTMLTextAreaElement} */ (h('textarea', { class: 'edit-box', 'data-testid': 'edit-box', 'aria-label': 'Edit message', maxlength: 4000 }));
    area.value = m.content;
    area.addEventListener('keydown', async (e) => {
      if (e.key === 'Escape') render(true);
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        const content = area.value.trim();
        if (content && content !== m.content) await app.api.patch(`/channels/${m.channel_id}/messages/${m.id}`, { content });
        render(true);
      }
    });
    replace(item, area, h('p', { class: 'muted small' }, 'Enter to save · Escape to cancel'));
    area.focus();
  }
  app.editMessage = startEdit;

  /** One attachment: an inline image or a file card. Its name is only ever text. @param {any} a */
  const attachmentItem = (a) => {
    const url = safeUrl(a.url);
    if (isInlineImage(a)) {
      const box = /** @type {{width: number, height: number}} */ (fitWithin(a.width, a.height));
      return h(
        'a',
        { class: 'attachment-image-link', href: url, target: '_blank', rel: 'noopener noreferrer', title: a.filename, 'aria-label': `${a.filename} (${humanSize(a.size)}), open in full size` },
        h('img', {
          class: 'attachment-image',
          'data-testid': 'attachment-image',
          'data-attachment-id': a.id,
          src: safeUrl(a.thumbnail_url) ?? url,
          alt: a.filename,
          width: box.width,
          height: box.height,
          loading: 'lazy',
          decoding: 'async',
        }),
      );
    }
    return h(
      'div',
      { class: 'attachment-file', 'data-testid': 'attachment-file', 'data-attachment-id': a.id },
      h('span', { class: 'file-icon', 'aria-hidden': 'true' }, '📄'),
      h(
        'div',
        { class: 'file-meta' },
        url
          ? h('a', { class: 'file-name', href: url, download: a.filename || true, 'data-testid': 'attachment-download' }, a.filename)
          : h('span', { class: 'file-name' }, a.filename),
        h('span', { class: 'muted small', 'data-testid': 'attachment-size' }, humanSize(a.size)),
      ),
      url ? h('a', { class: 'icon file-download', href: url, download: a.filename || true, 'aria-label': `Download ${a.filename}`, title: 'Download' }, '⤓') : null,
    );
  };

  /** Whether the list was at its bottom when last rendered or scrolled (an image loading later keeps it there). */
  let atEnd = true;

  /**
   * One link preview card. Every text is text; the title links only to an http(s) URL and the image
   * loads only from the server's proxy (embeds.js checked both).
   * @param {import('../embeds.js').EmbedDisplay} e
   */
  const embedCard = (e) =>
    h(
      'article',
      { class: `embed${e.image ? ' has-image' : ''}`, 'data-testid': 'embed', 'data-url': e.url },
      h(
        'div',
        { class: 'embed-text' },
        e.siteName ? h('div', { class: 'embed-site', 'data-testid': 'embed-site' }, e.siteName) : null,
        h('a', { class: 'embed-title', 'data-testid': 'embed-title', href: e.href, target: '_blank', rel: 'noopener noreferrer' }, e.title ?? e.href),
        e.description ? h('div', { class: 'embed-description', 'data-testid': 'embed-description' }, e.description) : null,
      ),
      e.image
        ? h(
            'a',
            { class: 'embed-image-link', href: e.href, target: '_blank', rel: 'noopener noreferrer', tabindex: -1, 'aria-hidden': 'true' },
            h('img', {
              class: 'embed-image',
              'data-testid': 'embed-image',
              src: e.image,
              alt: '',
              loading: 'lazy',
              decoding: 'async',
              referrerpolicy: 'no-referrer',
              onload: () => {
                if (atEnd) list.scrollTop = list.scrollHeight;
              },
              onerror: (/** @type {Event} */ ev) => /** @type {HTMLElement} */ (ev.target).closest('.embed-image-link')?.remove(),
            }),
          )
        : null,
    );

  const messageItem = (/** @type {any} */ m, first) => {
    const me = s().me;
    const mine = m.author?.id === me?.id;
    const mentioned = !!me && (m.mention_everyone || (m.mentions ?? []).includes(me.id));
    const body = h('div', { class: 'msg-body', 'data-testid': 'message-content' }, renderMarkdown(m.content, {
      doc: document,
      meId: me?.id,
      mentionName: (id) => nameOf(s().users.get(id)),
    }));
    const embeds = displayEmbeds(m.embeds);
    const replied = m.reply_to ? (s().messages.get(m.channel_id) ?? []).find((x) => x.id === m.reply_to) : null;
    return h(
      'li',
      {
        class: `message${first ? ' first' : ''}${mentioned ? ' mentioned' : ''}${m.pending ? ' pending' : ''}${m.failed ? ' failed' : ''}`,
        'data-testid': 'message',
        'data-message-id': m.id,
        tabindex: 0,
      },
      m.reply_to
        ? h('div', { class: 'reply-ref muted small' }, '↪ ', replied ? `${nameOf(replied.author)}: ${replied.content.slice(0, 80) || attachmentsSummary(replied.attachments)}` : 'a message')
        : null,
      first
        ? h('div', { class: 'msg-head' }, h('span', { class: 'avatar', 'aria-hidden': 'true' }, nameOf(m.author)[0]?.toUpperCase()), h('span', { class: 'author' }, nameOf(m.author)), h('time', { datetime: m.created_at, class: 'muted small' }, timeOf(m.created_at)))
        : null,
      body,
      m.edited_at ? h('span', { class: 'muted small', 'data-testid': 'edited' }, ' (edited)') : null,
      m.attachments?.length ? h('div', { class: 'attachments', 'data-testid': 'attachments' }, m.attachments.map(attachmentItem)) : null,
      embeds.length ? h('div', { class: 'embeds', 'data-testid': 'embeds' }, embeds.map(embedCard)) : null,
      m.failed ? h('span', { class: 'error small' }, ' Not sent yet — retrying…') : null,
      m.reactions.length
        ? h(
            'div',
            { class: 'reactions' },
            m.reactions.map((r) =>
              h('button', { class: `reaction${r.me ? ' me' : ''}`, 'data-testid': 'reaction', 'data-emoji': r.emoji, 'aria-pressed': r.me ? 'true' : 'false', 'aria-label': `${r.emoji} ${r.count}`, onclick: () => toggleReaction(m, r.emoji) }, `${r.emoji} ${r.count}`),
            ),
          )
        : null,
      m.pending ? null : actions(m, mine),
    );
  };

  function render(force = false) {
    const st = s();
    const cid = st.current.channelId;
    const c = cid ? st.channels.get(cid) : null;
    root.hidden = false;
    if (!c || c.kind === 'voice') {
      replace(header, h('h2', null, c ? c.name : ''));
      replace(list, h('li', { class: 'empty muted' }, st.guilds.size ? 'Select a text channel.' : 'Welcome to Chorus! Create a server to get started.'));
      typing.textContent = '';
      return;
    }
    if (cid !== shownChannel) {
      shownChannel = cid;
      stick = true;
      replace(header, h('h2', null, h('span', { 'aria-hidden': 'true' }, '# '), c.name), c.topic ? h('span', { class: 'topic muted' }, c.topic) : null);
      if (!st.messages.has(cid)) loadOlder(cid);
    }
    if (st.stale.has(cid)) refreshLatest(cid);
    const editing = !force && list.querySelector('.edit-box');
    if (editing) return;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const groups = groupMessages(st.messages.get(cid) ?? []);
    replace(
      list,
      st.historyDone.get(cid) ? h('li', { class: 'history-start muted' }, `This is the beginning of #${c.name}.`) : null,
      groups.map((g) => g.map((m, i) => messageItem(m, i === 0))),
    );
    if (stick || atBottom) list.scrollTop = list.scrollHeight;
    atEnd = stick || atBottom;
    stick = false;
    const who = app.store.typingIn(cid).map((id) => nameOf(st.users.get(id)));
    typing.textContent = who.length ? `${who.slice(0, 3).join(', ')} ${who.length > 1 ? 'are' : 'is'} typing…` : '';
    if (document.hasFocus()) ack(cid);
  }

  list.addEventListener('scroll', () => {
    const cid = s().current.channelId;
    if (cid && list.scrollTop < 80) loadOlder(cid);
    atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    jump.hidden = list.scrollHeight - list.scrollTop - list.clientHeight < 200;
  });
  jump.addEventListener('click', () => {
    list.scrollTop = list.scrollHeight;
    jump.hidden = true;
  });
  window.addEventListener('focus', () => {
    const cid = s().current.channelId;
    if (cid) ack(cid);
  });
  // Typing indicators expire on their own.
  setInterval(() => {
    const cid = s().current.channelId;
    if (cid && s().typing.get(cid)?.size) render();
  }, 2000);
  app.store.subscribe((_st, what) => {
    if (what !== 'CONNECTION') render();
  });
}
