// The member context menu (right click, or the "…" button of a member row and of a voice user row):
// Server mute / unmute, Server deafen / undeafen, Move to ▸ (the guild's other voice channels) and
// Disconnect, each only when the current user's permissions allow it (see moderation.js). The server
// checks again; a refusal is shown as a notice. Keyboard: arrows move, → opens "Move to", ← and Escape
// close, focus returns to the button that opened it.

import { h } from '../dom.js';
import { memberMenuItems, movePatch } from '../moderation.js';
import { permissionsFor } from '../permissions.js';
import { showToast } from './toast.js';

/** @typedef {import('../moderation.js').MenuItem} MenuItem */

/** The items the signed-in user gets for `userId` in `guildId`. @param {any} app @param {string} guildId @param {string} userId */
export function menuItemsFor(app, guildId, userId) {
  const st = app.store.state;
  return memberMenuItems({
    perms: permissionsFor(st, guildId, st.me?.id),
    member: st.members.get(guildId)?.get(userId) ?? null,
    voice: st.voice.get(guildId)?.get(userId) ?? null,
    voiceChannels: [...st.channels.values()].filter((c) => c.guild_id === guildId && c.kind === 'voice'),
  });
}

/** @type {{ el: HTMLElement, opener: HTMLElement|null, cleanup: () => void }|null} */
let current = null;

/** Closes the open menu (if any). @param {boolean} [restoreFocus] */
export function closeMemberMenu(restoreFocus = false) {
  if (!current) return;
  const { el, opener, cleanup } = current;
  current = null;
  cleanup();
  el.remove();
  if (restoreFocus && opener?.isConnected) opener.focus();
}

const itemsOf = (/** @type {Element} */ menu) =>
  /** @type {HTMLElement[]} */ ([...menu.children].flatMap((c) => (c.getAttribute('role') === 'menuitem' ? [c] : [...c.querySelectorAll(':scope > [role="menuitem"]')])));

/**
 * Opens the menu for one member, at a point (right click) or under an element (the "…" button).
 * Does nothing when there is nothing to offer.
 * @param {any} app @param {string} guildId @param {string} userId
 * @param {{ x: number, y: number }|HTMLElement} at
 */
export function openMemberMenu(app, guildId, userId, at) {
  closeMemberMenu();
  const items = menuItemsFor(app, guildId, userId);
  if (!items.length) return false;
  const u = app.store.state.users.get(userId);
  const name = u?.display_name || u?.username || 'member';
  const opener = at instanceof HTMLElement ? at : /** @type {HTMLElement|null} */ (document.activeElement instanceof HTMLElement ? document.activeElement : null);

  const run = async (/** @type {Record<string, unknown>} */ patch, /** @type {string} */ what) => {
    closeMemberMenu(true);
    try {
      const m = await app.api.patch(`/guilds/${guildId}/members/${userId}`, patch);
      if (m?.user?.id) app.store.dispatch('GUILD_MEMBER_UPDATE', { ...m, guild_id: m.guild_id ?? guildId });
    } catch (e) {
      showToast(`Could not ${what} ${name}: ${/** @type {any} */ (e)?.message ?? e}`);
    }
  };

  /** @type {HTMLElement|null} */
  let sub = null;
  /** @type {HTMLElement|null} */
  let moveBtn = null;
  const openSub = (/** @type {boolean} */ focus) => {
    if (!sub || !moveBtn) return;
    sub.hidden = false;
    moveBtn.setAttribute('aria-expanded', 'true');
    sub.classList.remove('flip');
    if (sub.getBoundingClientRect().right > innerWidth) sub.classList.add('flip');
    if (focus) itemsOf(sub)[0]?.focus();
  };
  const closeSub = (/** @type {boolean} */ focus) => {
    if (!sub || !moveBtn || sub.hidden) return;
    sub.hidden = true;
    moveBtn.setAttribute('aria-expanded', 'false');
    if (focus) moveBtn.focus();
  };

  const entry = (/** @type {MenuItem} */ it) => {
    if (it.id === 'move') {
      moveBtn = h('button', {
        type: 'button', role: 'menuitem', class: 'menu-item', 'data-testid': 'menu-move', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
        // Hovering opened it already: a click (or Enter) only moves the focus into it.
        onclick: () => openSub(true),
        onmouseenter: () => openSub(false),
      }, h('span', null, it.label), h('span', { class: 'menu-arrow', 'aria-hidden': 'true' }, '▸'));
      sub = h('div', { class: 'context-menu submenu', role: 'menu', 'aria-label': `Move ${name} to`, hidden: true },
        (it.targets ?? []).map((c) => h('button', {
          type: 'button', role: 'menuitem', class: 'menu-item', 'data-testid': 'menu-move-target', 'data-channel-id': c.id,
          onclick: () => run(movePatch(c.id), `move`),
        }, `🔊 ${c.name}`)));
      return h('div', { class: 'menu-sub-wrap', onmouseleave: () => closeSub(false) }, moveBtn, sub);
    }
    const testid = { 'server-mute': 'menu-server-mute', 'server-deafen': 'menu-server-deafen', disconnect: 'menu-disconnect' }[it.id];
    const what = { 'server-mute': it.label.toLowerCase(), 'server-deafen': it.label.toLowerCase(), disconnect: 'disconnect' }[it.id] ?? it.id;
    return h('button', {
      type: 'button', role: 'menuitem', class: `menu-item${it.id === 'disconnect' ? ' danger' : ''}`, 'data-testid': testid,
      onclick: () => run(/** @type {Record<string, unknown>} */ (it.patch), what),
      onmouseenter: () => closeSub(false),
    }, it.label);
  };

  const el = h('div', { class: 'context-menu', role: 'menu', 'aria-label': `Actions for ${name}`, 'data-testid': 'member-menu', 'data-user-id': userId, tabindex: '-1' },
    h('div', { class: 'menu-title muted small', 'aria-hidden': 'true' }, name),
    items.map(entry));
  document.body.appendChild(el);

  // Place it: at the point, or under the button; kept inside the window.
  const r = at instanceof HTMLElement ? at.getBoundingClientRect() : null;
  let x = r ? r.right - el.offsetWidth : /** @type {{x: number}} */ (at).x;
  let y = r ? r.bottom + 4 : /** @type {{y: number}} */ (at).y;
  x = Math.max(4, Math.min(x, innerWidth - el.offsetWidth - 4));
  y = Math.max(4, Math.min(y, innerHeight - el.offsetHeight - 4));
  el.style.left = `${x}px`;
  el.style.top = `${y}px`;

  el.addEventListener('keydown', (e) => {
    const active = /** @type {HTMLElement|null} */ (document.activeElement);
    const menu = active?.closest('[role="menu"]') ?? el;
    const list = itemsOf(menu);
    const i = active ? list.indexOf(active) : -1;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = list.length;
      const next = e.key === 'ArrowDown' ? (i + 1) % n : i <= 0 ? n - 1 : i - 1;
      list[next]?.focus();
    } else if (e.key === 'Home' || e.key === 'End') {
      e.preventDefault();
      (e.key === 'Home' ? list[0] : list.at(-1))?.focus();
    } else if (e.key === 'ArrowRight' && active === moveBtn) {
      e.preventDefault();
      openSub(true);
    } else if ((e.key === 'ArrowLeft' || e.key === 'Escape') && menu === sub) {
      e.preventDefault();
      e.stopPropagation();
      closeSub(true);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      closeMemberMenu(true);
    } else if (e.key === 'Tab') {
      closeMemberMenu(false);
    }
  });

  const outside = (/** @type {Event} */ e) => {
    if (!el.contains(/** @type {Node} */ (e.target)) && e.target !== opener) closeMemberMenu(false);
  };
  const away = () => closeMemberMenu(false);
  document.addEventListener('pointerdown', outside, true);
  window.addEventListener('resize', away);
  current = {
    el,
    opener,
    cleanup: () => {
      document.removeEventListener('pointerdown', outside, true);
      window.removeEventListener('resize', away);
    },
  };
  itemsOf(el)[0]?.focus();
  return true;
}

/**
 * Makes a row open the menu on right click, and returns its "…" button (null when the signed-in user
 * may do nothing to this member, so rows of ordinary members stay as they were).
 * @param {HTMLElement} row @param {any} app @param {string} guildId @param {string} userId @param {string} name
 */
export function withMemberMenu(row, app, guildId, userId, name) {
  if (!menuItemsFor(app, guildId, userId).length) return null;
  row.addEventListener('contextmenu', (e) => {
    if (openMemberMenu(app, guildId, userId, { x: e.clientX, y: e.clientY })) e.preventDefault();
  });
  const btn = h('button', {
    type: 'button', class: 'icon row-menu', 'aria-label': `More options for ${name}`, 'aria-haspopup': 'menu', 'data-testid': 'member-menu-button',
    onclick: (/** @type {MouseEvent} */ e) => {
      e.stopPropagation();
      const b = /** @type {HTMLElement} */ (e.currentTarget);
      if (current?.opener === b) closeMemberMenu(true);
      else openMemberMenu(app, guildId, userId, b);
    },
  }, '…');
  row.appendChild(btn);
  return btn;
}
