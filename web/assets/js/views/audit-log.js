// The "Audit log" tab of the server settings: newest first, one entry per action with who did it, a
// sentence, the reason and what changed; filters by action and by member; "Load more" pages back with
// `before`. Needs VIEW_AUDIT_LOG (the server says so otherwise).

import { h, replace, timeOf } from '../dom.js';
import { AUDIT_ACTIONS, auditQuery, describeAuditEntry } from '../audit.js';

const PAGE = 50;

/** @param {HTMLElement} el @param {any} app @param {string} guildId */
export function renderAuditLog(el, app, guildId) {
  const s = app.store.state;
  /** Users the pages named (actors and targets), by id. @type {Map<string, any>} */
  const pageUsers = new Map();
  /** @type {import('../audit.js').Names} */
  const names = {
    user: (id) => {
      const u = pageUsers.get(id) ?? s.users.get(id);
      const m = s.members.get(guildId)?.get(id);
      return m?.nick || u?.display_name || u?.username;
    },
    channel: (id) => s.channels.get(id),
    role: (id) => (s.guilds.get(guildId)?.roles ?? []).find((/** @type {any} */ r) => r.id === id)?.name,
  };

  const action = /** @type {HTMLSelectElement} */ (h('select', { 'aria-label': 'Filter by action', 'data-testid': 'audit-action-filter' },
    h('option', { value: '' }, 'All actions'),
    AUDIT_ACTIONS.map(([value, label]) => h('option', { value }, label))));
  const members = [...(s.members.get(guildId)?.values() ?? [])].sort((a, b) => (a.user.username < b.user.username ? -1 : 1));
  const who = /** @type {HTMLSelectElement} */ (h('select', { 'aria-label': 'Filter by member', 'data-testid': 'audit-user-filter' },
    h('option', { value: '' }, 'All members'),
    members.map((m) => h('option', { value: m.user.id }, m.nick || m.user.display_name || m.user.username))));
  const list = h('ol', { class: 'audit-list', 'aria-label': 'Audit log' });
  const status = h('p', { class: 'muted', role: 'status' });
  const more = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', 'data-testid': 'audit-load-more', hidden: true, onclick: () => load(false) }, 'Load more'));

  /** The oldest entry shown (the next page starts before it). @type {string|null} */
  let oldest = null;
  let generation = 0;

  async function load(fresh) {
    const gen = fresh ? ++generation : generation;
    if (fresh) {
      oldest = null;
      list.replaceChildren();
    }
    more.disabled = true;
    status.textContent = 'Loading…';
    try {
      const q = auditQuery({ limit: PAGE, before: oldest, userId: who.value || null, actionType: action.value || null });
      const page = await app.api.get(`/guilds/${guildId}/audit-logs${q}`);
      if (gen !== generation) return; // the filter changed meanwhile
      for (const u of page?.users ?? []) pageUsers.set(u.id, u);
      const entries = page?.audit_log_entries ?? [];
      for (const e of entries) list.appendChild(entryItem(e));
      oldest = entries.at(-1)?.id ?? oldest;
      more.hidden = entries.length < PAGE;
      status.textContent = list.children.length ? '' : 'Nothing recorded yet.';
    } catch (e) {
      if (gen !== generation) return;
      status.textContent = /** @type {any} */ (e)?.message ?? String(e);
    } finally {
      more.disabled = false;
    }
  }

  /** @param {import('../audit.js').AuditEntry} e */
  function entryItem(e) {
    const d = describeAuditEntry(e, names);
    const actor = names.user(e.user_id) ?? '?';
    return h('li', { class: 'audit-entry', 'data-testid': 'audit-entry', 'data-action': e.action_type, 'data-entry-id': e.id },
      h('span', { class: 'avatar small', 'aria-hidden': 'true' }, actor[0]?.toUpperCase() ?? '?'),
      h('div', { class: 'audit-body' },
        h('p', { class: 'audit-sentence', 'data-testid': 'audit-sentence' }, d.parts.map((p) => (typeof p === 'string' ? p : h('strong', { class: `audit-${p.kind}` }, p.text)))),
        d.changes.length ? h('ul', { class: 'audit-changes' }, d.changes.map((c) => h('li', null, c))) : null,
        e.reason ? h('p', { class: 'audit-reason small' }, h('span', { class: 'muted' }, 'Reason: '), e.reason) : null),
      h('time', { class: 'muted small', datetime: e.created_at }, timeOf(e.created_at)));
  }

  action.onchange = () => load(true);
  who.onchange = () => load(true);
  replace(el, h('div', { class: 'row' }, action, who), list, status, more);
  load(true);
}
