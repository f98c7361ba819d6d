// The composer: Enter sends, Shift+Enter adds a line, Up edits your last message, Escape cancels a reply.
// A message shows at once and is retried with the same nonce until the server acknowledges it, so a
// flaky connection never duplicates it. In a slow-mode channel a member who is not exempt sees the
// setting, and after a send a countdown during which Enter sends nothing; a refusal from the server
// (429 slow_mode) takes the message back into the box and shows the server's wait.
//
// Files: the attach button (a file picker), files dropped on the message pane and images pasted into the
// box wait above it as chips until Enter sends them with the text. Files over the instance's advertised
// limits are refused here before any upload. A message with files is not shown optimistically: it is
// uploaded with a progress bar and a cancel button, and appears when the server has it. An upload that
// does not end in a message (cancelled, refused, failed) gives its files and text back; sent again
// unchanged it carries the same nonce, so it can never make two messages.

import { h, replace } from '../dom.js';
import { Cooldowns } from '../slowmode.js';
import { permissionsFor, has } from '../permissions.js';
import { Drafts, uploadLimits, uploadErrorText, buildMessageForm, humanSize, pastedName, INLINE_IMAGE_TYPES } from '../attachments.js';
import { uploadReducer, uploadView, IDLE, active } from '../upload-state.js';

/** @param {HTMLFormElement} root @param {any} app */
export function mountComposer(root, app) {
  const area = /** @type {HTMLTextAreaElement} */ (root.querySelector('textarea'));
  const replyBar = /** @type {HTMLElement} */ (root.querySelector('#reply-bar'));
  const slowEl = /** @type {HTMLElement} */ (root.querySelector('#slow-mode'));
  const attachButton = /** @type {HTMLButtonElement} */ (root.querySelector('#attach-button'));
  const fileInput = /** @type {HTMLInputElement} */ (root.querySelector('#attach-input'));
  const pendingEl = /** @type {HTMLElement} */ (root.querySelector('#pending-files'));
  const attachError = /** @type {HTMLElement} */ (root.querySelector('#attach-error'));
  const uploadEl = /** @type {HTMLElement} */ (root.querySelector('#upload-status'));
  // Files may be dropped anywhere on the message pane (the composer is inside it).
  const dropZone = /** @type {HTMLElement} */ (root.closest('#content') ?? root);
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

  // ---- files ----

  /** @type {Drafts<File>} */
  const drafts = new Drafts();
  let limits = uploadLimits(null);
  /** @type {Promise<unknown>|null} */
  let limitsLoading = null;
  /** The instance's upload limits, asked once (again after a failure). */
  const loadLimits = () =>
    (limitsLoading ??= app.api.get('/instance').then(
      (/** @type {any} */ info) => (limits = uploadLimits(info)),
      () => {
        limitsLoading = null;
      },
    ));
  loadLimits();
  /** @type {import('../upload-state.js').UploadState} */
  let upload = IDLE;
  /** The running upload's abort (or the abort of the wait before a retry). @type {(() => void)|null} */
  let abortUpload = null;
  /** @type {any} */
  let attachErrorTimer = null;
  /** @type {any} */
  let uploadResetTimer = null;
  /** Small previews of pending images (blob: URLs, released when the file leaves). @type {Map<File, string>} */
  const previews = new Map();

  const uploadText = h('span', { class: 'upload-text', 'data-testid': 'upload-text' });
  const progress = /** @type {HTMLProgressElement} */ (h('progress', { class: 'upload-progress', 'data-testid': 'upload-progress', 'aria-label': 'Upload progress', max: 1, value: 0 }));
  const cancelButton = h('button', { type: 'button', class: 'upload-cancel', 'data-testid': 'upload-cancel', onclick: () => abortUpload?.() }, 'Cancel');
  const dismissButton = h('button', { type: 'button', class: 'icon', 'data-testid': 'upload-dismiss', 'aria-label': 'Dismiss', onclick: () => setUpload({ type: 'reset' }) }, '✕');
  const uploadErrorEl = h('div', { class: 'error upload-error', 'data-testid': 'upload-error', role: 'alert' });
  replace(uploadEl, h('div', { class: 'upload-line' }, uploadText, progress, cancelButton, dismissButton), uploadErrorEl);

  /** @param {import('../upload-state.js').UploadEvent} e */
  function setUpload(e) {
    upload = uploadReducer(upload, e);
    const v = uploadView(upload);
    uploadEl.hidden = !v.visible;
    uploadEl.dataset.phase = upload.phase;
    uploadText.textContent = v.text;
    progress.hidden = !active(upload);
    progress.max = v.max;
    progress.value = v.value;
    progress.setAttribute('aria-valuetext', `${v.percent}%`);
    cancelButton.hidden = !v.cancellable;
    dismissButton.hidden = v.cancellable || !v.visible;
    uploadErrorEl.hidden = !v.error;
    uploadErrorEl.textContent = v.error ?? '';
    clearTimeout(uploadResetTimer);
    // A cancelled upload says so for a moment; a failure stays until dismissed or the next upload.
    if (upload.phase === 'cancelled') uploadResetTimer = setTimeout(() => setUpload({ type: 'reset' }), 4000);
  }
  setUpload({ type: 'reset' });

  /** Shows why files were refused (empty: hides it). @param {string} text */
  function showAttachError(text) {
    clearTimeout(attachErrorTimer);
    attachError.textContent = text;
    attachError.hidden = !text;
    if (text) attachErrorTimer = setTimeout(() => showAttachError(''), 10_000);
  }

  /** Whether we may attach files in a channel (direct messages: yes; the server decides anyway). @param {string} cid */
  const canAttach = (cid) => {
    const st = s();
    const c = st.channels.get(cid);
    return !c?.guild_id || has(permissionsFor(st, c.guild_id, st.me?.id, cid), 'ATTACH_FILES');
  };

  /** @param {File} f */
  const previewOf = (f) => {
    if (!INLINE_IMAGE_TYPES.includes(f.type)) return null;
    let url = previews.get(f);
    if (!url) previews.set(f, (url = URL.createObjectURL(f)));
    return h('img', { class: 'pending-preview', src: url, alt: '', width: 32, height: 32, onerror: (/** @type {Event} */ e) => /** @type {HTMLElement} */ (e.target).remove() });
  };
  /** @param {File[]} files */
  const release = (files) => {
    for (const f of files) {
      const url = previews.get(f);
      if (url) URL.revokeObjectURL(url);
      previews.delete(f);
    }
  };

  function renderPending() {
    const cid = s().current.channelId;
    const files = cid ? drafts.files(cid) : [];
    pendingEl.hidden = !files.length;
    replace(
      pendingEl,
      files.map((f) =>
        h(
          'li',
          { class: 'pending-file', 'data-testid': 'pending-file', 'data-name': f.name, title: f.name },
          previewOf(f),
          h('span', { class: 'pending-name', 'data-testid': 'pending-file-name' }, f.name),
          h('span', { class: 'pending-size muted small', 'data-testid': 'pending-file-size' }, humanSize(f.size)),
          h('button', {
            type: 'button',
            class: 'icon',
            'aria-label': `Remove ${f.name}`,
            'data-testid': 'pending-file-remove',
            onclick: () => {
              if (cid) drafts.remove(cid, f);
              release([f]);
              renderPending();
              area.focus();
            },
          }, '✕'),
        ),
      ),
    );
  }

  function renderAttach() {
    const cid = s().current.channelId;
    attachButton.hidden = !cid || !canAttach(cid);
  }

  /** Adds files to the current channel's draft, refusing what the limits do not allow. @param {File[]} files */
  async function addFiles(files) {
    const cid = s().current.channelId;
    if (!cid || root.hidden || !files.length) return;
    if (!canAttach(cid)) {
      showAttachError('You do not have permission to attach files in this channel.');
      return;
    }
    await loadLimits();
    const { refused } = drafts.add(cid, files, limits);
    showAttachError(refused.join(' '));
    renderPending();
    area.focus();
  }

  /**
   * Uploads the channel's pending files with `content` as one message, showing progress. A 429 that is
   * not slow mode is waited out and retried (twice, same nonce), as for any send.
   * @param {string} channelId @param {string} content @param {any} reply
   */
  async function sendFiles(channelId, content, reply) {
    const slow = slowMode(channelId);
    const counts = slow.rate > 0 && !slow.exempt;
    if (counts) {
      cooldowns.sent(channelId, slow.rate, Date.now());
      renderSlow();
    }
    const { files, nonce } = drafts.take(channelId, content);
    renderPending();
    showAttachError('');
    const total = files.reduce((a, f) => a + f.size, 0);
    const c = s().channels.get(channelId);
    const start = () => {
      setUpload({ type: 'reset' });
      setUpload({ type: 'start', files: files.length, total, label: c?.name ? `#${c.name}` : '' });
    };
    start();
    for (let attempt = 0; ; attempt++) {
      /** @type {any} */
      let err;
      try {
        const form = buildMessageForm({ content, nonce, reply_to: reply?.id ?? null }, files);
        const up = app.api.upload(`/channels/${channelId}/messages`, form, {
          onProgress: (/** @type {number} */ loaded, /** @type {number} */ t) => setUpload({ type: 'progress', loaded, total: t }),
          onSent: () => setUpload({ type: 'sent' }),
        });
        abortUpload = up.abort;
        const m = await up.promise;
        abortUpload = null;
        drafts.sent(channelId);
        release(files);
        app.store.acknowledge(m);
        setUpload({ type: 'done' });
        if (counts) cooldowns.sent(channelId, slow.rate, Date.now());
        renderSlow();
        return;
      } catch (e) {
        abortUpload = null;
        err = e;
      }
      if (err.status === 429 && err.code !== 'slow_mode' && attempt < 2) {
        try {
          await new Promise((resolve, reject) => {
            const t = setTimeout(resolve, Math.min(10, Math.max(1, err.retryAfter ?? 1)) * 1000);
            abortUpload = () => {
              clearTimeout(t);
              reject({ status: 0, code: 'aborted', message: 'The upload was cancelled.' });
            };
          });
          abortUpload = null;
          start();
          continue;
        } catch (e) {
          abortUpload = null;
          err = e;
        }
      }
      // No message: the files and the text come back for another try (same nonce if unchanged).
      drafts.restore(channelId, files, content);
      if (s().current.channelId === channelId) {
        if (!area.value) area.value = drafts.takeText(channelId);
        if (reply && !replyTo) app.composer.replyTo(reply);
      }
      renderPending();
      if (err.code === 'slow_mode') cooldowns.refused(channelId, err.retryAfter ?? (slow.rate || 1), Date.now());
      else if (counts) cooldowns.clear(channelId); // a message that was not taken started no cooldown
      renderSlow();
      if (err.code === 'aborted') setUpload({ type: 'cancel' });
      else setUpload({ type: 'error', error: uploadErrorText(err, limits) });
      return;
    }
  }

  attachButton.addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => {
    addFiles([...(fileInput.files ?? [])]);
    fileInput.value = ''; // the same file can be picked again
  });

  /** @param {DragEvent} e */
  const dragsFiles = (e) => !root.hidden && [...(e.dataTransfer?.types ?? [])].includes('Files');
  let dragDepth = 0;
  const dragEnd = () => {
    dragDepth = 0;
    dropZone.classList.remove('drop-target');
  };
  dropZone.addEventListener('dragenter', (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    dragDepth += 1;
    const c = s().channels.get(s().current.channelId ?? '');
    dropZone.dataset.dropLabel = c ? `Drop files to send them to #${c.name}` : 'Drop files to send them';
    dropZone.classList.add('drop-target');
  });
  dropZone.addEventListener('dragover', (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  });
  dropZone.addEventListener('dragleave', (e) => {
    if (!dragsFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) dragEnd();
  });
  dropZone.addEventListener('drop', (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    dragEnd();
    addFiles([...(e.dataTransfer?.files ?? [])]);
  });
  // A file dropped beside the pane must not replace the app with the file.
  window.addEventListener('dragover', (e) => {
    if ([...(e.dataTransfer?.types ?? [])].includes('Files')) e.preventDefault();
  });
  window.addEventListener('drop', (e) => {
    if ([...(e.dataTransfer?.types ?? [])].includes('Files')) e.preventDefault();
  });

  area.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (!files.length) return;
    // Text pasted along with an image (from a web page) still goes into the box.
    if (!e.clipboardData?.getData('text/plain')) e.preventDefault();
    const now = new Date();
    addFiles(
      files.map((f) => {
        const name = pastedName(f, now);
        return name === f.name ? f : new File([f], name, { type: f.type, lastModified: f.lastModified });
      }),
    );
  });

  // For the console and the end-to-end tests: files as if picked, and the limits in force.
  Object.assign(app.composer, { addFiles, uploadLimits: () => limits });

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
      const withFiles = drafts.files(cid).length > 0;
      if (!content && !withFiles) return;
      if (slowView(cid).blocked) {
        renderSlow();
        nudge();
        return;
      }
      if (withFiles && active(upload)) {
        showAttachError('An upload is still under way: wait for it to finish or cancel it.');
        return;
      }
      area.value = '';
      const reply = replyTo;
      cancelReply();
      if (withFiles) sendFiles(cid, content, reply);
      else send(cid, content, reply);
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

  /**
   * An upload that was cancelled too late (every byte was in) or whose answer was lost may still have
   * become a message: when it shows up (its nonce, our message), its files leave the draft.
   * @param {any} st
   */
  function settleLateUploads(st) {
    for (const cid of drafts.byChannel.keys()) {
      const nonce = drafts.pendingNonce(cid);
      if (!nonce || (abortUpload && active(upload))) continue;
      const arrived = (st.messages.get(cid) ?? []).some((/** @type {any} */ m) => m.nonce === nonce && !m.pending && m.author?.id === st.me?.id);
      if (!arrived) continue;
      const text = drafts.settle(cid, nonce);
      if (st.current.channelId === cid && text && area.value === text) area.value = '';
      if (upload.phase === 'cancelled' || upload.phase === 'failed') setUpload({ type: 'reset' });
      renderPending();
    }
  }

  app.store.subscribe((/** @type {any} */ st, what) => {
    if (what === 'MESSAGE_CREATE' || what === 'HISTORY') settleLateUploads(st);
    // Slow mode follows the channel's setting and our roles (exemption).
    if (!['TYPING_START', 'PRESENCE_UPDATE', 'PENDING', 'HISTORY', 'MESSAGE_CREATE'].includes(what)) {
      renderSlow();
      renderAttach();
    }
    if (what !== 'SELECT' && what !== 'READY') return;
    renderPending();
    showAttachError('');
    if (st.current.channelId && !area.value) area.value = drafts.takeText(st.current.channelId);
    const c = st.current.channelId ? st.channels.get(st.current.channelId) : null;
    root.hidden = !c || c.kind !== 'text';
    area.placeholder = c ? `Message #${c.name}` : '';
    area.setAttribute('aria-label', c ? `Message #${c.name}` : 'Message');
  });
}
