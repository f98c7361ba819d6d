// User settings (profile, devices, security: two-factor authentication, username, account deletion; log
// out) and server settings (overview, channels with their slow
// mode, roles, channel permission overwrites, invites, bans, audit log). The server enforces every
// permission; the UI only offers.

import { h, replace } from '../dom.js';
import { showModal } from './modal.js';
import { mountDeviceSettings } from '../voice/devices.js';
import { PERMISSION_LIST } from '../permissions.js';
import { SLOW_MODE_CHOICES, slowModeLabel } from '../slowmode.js';
import { renderAuditLog } from './audit-log.js';
import { renderSecurity } from './security.js';

/** Discord's bit values, as the server uses them (permissions travel as decimal strings). */
export const PERMISSIONS = PERMISSION_LIST;

/** Tabbed pane: [label, render(container)] pairs. */
function tabs(/** @type {[string, (el: HTMLElement) => void][]} */ panes) {
  const body = h('div', { class: 'tab-body', role: 'tabpanel' });
  const buttons = panes.map(([label, render], i) =>
    h('button', { role: 'tab', class: 'tab', 'data-testid': `tab-${label.toLowerCase().replace(/\s+/g, '-')}`, 'aria-selected': i === 0 ? 'true' : 'false', onclick: (/** @type {Event} */ e) => {
      buttons.forEach((b) => b.setAttribute('aria-selected', 'false'));
      /** @type {HTMLElement} */ (e.currentTarget).setAttribute('aria-selected', 'true');
      body.replaceChildren();
      render(body);
    } }, label),
  );
  panes[0][1](body);
  return h('div', { class: 'settings' }, h('nav', { class: 'tabs', role: 'tablist' }, buttons), body);
}

const errorText = (/** @type {any} */ e) => (e?.fields ? Object.values(e.fields).join('; ') : e?.message ?? String(e));

/** @param {any} app */
export function openUserSettings(app) {
  showModal(
    'User settings',
    tabs([
      ['Profile', (el) => {
        // Read at each render: the Security tab may have changed the username meanwhile.
        const me = app.store.state.me;
        const input = /** @type {HTMLInputElement} */ (h('input', { id: 'display-name', value: me?.display_name ?? '', maxlength: 32, 'data-testid': 'display-name' }));
        const status = h('p', { class: 'muted', role: 'status' });
        replace(el,
          h('p', null, 'Username: ', h('strong', null, me?.username ?? '')),
          h('label', { for: 'display-name' }, 'Display name'),
          input,
          h('button', { class: 'primary', 'data-testid': 'save-profile', onclick: async () => {
            try {
              const u = await app.api.patch('/users/@me', { display_name: input.value.trim() || null });
              app.store.dispatch('USER_UPDATE', u);
              status.textContent = 'Saved.';
            } catch (e) {
              status.textContent = errorText(e);
            }
          } }, 'Save'),
          status,
        );
      }],
      ['Devices', (el) => mountDeviceSettings(el)],
      ['Security', (el) => renderSecurity(el, app)],
      ['Account', (el) => replace(el, h('button', { class: 'danger', 'data-testid': 'logout', onclick: () => app.logout() }, 'Log out'))],
    ]),
  );
}

/** @param {any} app @param {string} guildId */
export async function createInvite(app, guildId) {
  try {
    const inv = await app.api.post(`/guilds/${guildId}/invites`, { max_age_secs: 7 * 86400 });
    const link = `${location.origin}/invite/${inv.code}`;
    const input = /** @type {HTMLInputElement} */ (h('input', { readonly: true, value: link, 'data-testid': 'invite-link', 'aria-label': 'Invite link' }));
    showModal('Invite friends', h('div', null, h('p', null, 'Send this link; it works for 7 days.'), input,
      h('button', { class: 'primary', onclick: () => navigator.clipboard?.writeText(link) }, 'Copy')));
    input.select();
  } catch (e) {
    alert(errorText(e));
  }
}

/** @param {any} app @param {string} guildId */
export function openGuildSettings(app, guildId) {
  const s = app.store.state;
  const g = s.guilds.get(guildId);
  const channels = () => [...s.channels.values()].filter((c) => c.guild_id === guildId).sort((a, b) => a.position - b.position);
  const guard = async (/** @type {HTMLElement} */ out, /** @type {() => Promise<any>} */ fn) => {
    try {
      await fn();
      out.textContent = 'Saved.';
    } catch (e) {
      out.textContent = errorText(e);
    }
  };

  showModal(
    `${g?.name ?? 'Server'} settings`,
    tabs([
      ['Overview', (el) => {
        const name = /** @type {HTMLInputElement} */ (h('input', { id: 'guild-name-input', value: g?.name ?? '', maxlength: 100 }));
        const out = h('p', { class: 'muted', role: 'status' });
        replace(el, h('label', { for: 'guild-name-input' }, 'Server name'), name,
          h('button', { class: 'primary', onclick: () => guard(out, async () => app.store.dispatch('GUILD_UPDATE', await app.api.patch(`/guilds/${guildId}`, { name: name.value.trim() }))) }, 'Save'), out);
      }],
      ['Channels', function render(el) {
        const name = /** @type {HTMLInputElement} */ (h('input', { id: 'new-channel', placeholder: 'new-channel', maxlength: 100, 'data-testid': 'new-channel-name' }));
        const kind = /** @type {HTMLSelectElement} */ (h('select', { 'aria-label': 'Channel type' }, h('option', { value: 'text' }, 'Text'), h('option', { value: 'voice' }, 'Voice'), h('option', { value: 'category' }, 'Category')));
        const out = h('p', { class: 'muted', role: 'status' });
        replace(el,
          h('ul', { class: 'settings-list' }, channels().map((c) => h('li', null, h('span', { class: 'grow' }, `${c.kind === 'voice' ? '🔊' : c.kind === 'category' ? '▾' : '#'} ${c.name}`),
            c.kind === 'text' ? slowModeSelect(c, (secs) => guard(out, async () => app.store.dispatch('CHANNEL_UPDATE', await app.api.patch(`/channels/${c.id}`, { rate_limit_per_user: secs })))) : null,
            h('button', { class: 'icon', 'aria-label': `Rename ${c.name}`, onclick: async () => {
              const n = prompt('New name', c.name);
              if (n) await guard(out, () => app.api.patch(`/channels/${c.id}`, { name: n }));
              render(el);
            } }, '✎'),
            h('button', { class: 'icon danger', 'aria-label': `Delete ${c.name}`, onclick: async () => {
              if (confirm(`Delete ${c.name}?`)) await guard(out, () => app.api.del(`/channels/${c.id}`));
              render(el);
            } }, '🗑')))),
          h('label', { for: 'new-channel' }, 'Create a channel'), h('div', { class: 'row' }, name, kind,
            h('button', { class: 'primary', 'data-testid': 'create-channel', onclick: async () => {
              await guard(out, () => app.api.post(`/guilds/${guildId}/channels`, { name: name.value.trim(), kind: kind.value }));
              setTimeout(() => render(el), 200);
            } }, 'Create')),
          out);
      }],
      ['Roles', function render(el) {
        const roles = [...(s.guilds.get(guildId)?.roles ?? [])].sort((a, b) => b.position - a.position);
        const out = h('p', { class: 'muted', role: 'status' });
        replace(el,
          h('ul', { class: 'settings-list' }, roles.map((r) => h('li', null, h('details', null, h('summary', null, r.name),
            permissionChecks(BigInt(r.permissions), async (bits) => guard(out, () => app.api.patch(`/guilds/${guildId}/roles/${r.id}`, { permissions: bits.toString() }))),
            r.id !== guildId ? h('button', { class: 'danger', onclick: async () => {
              if (confirm(`Delete role ${r.name}?`)) await guard(out, () => app.api.del(`/guilds/${guildId}/roles/${r.id}`));
              setTimeout(() => render(el), 200);
            } }, 'Delete role') : null)))),
          h('button', { class: 'primary', 'data-testid': 'create-role', onclick: async () => {
            const n = prompt('Role name', 'new role');
            if (n) await guard(out, () => app.api.post(`/guilds/${guildId}/roles`, { name: n }));
            setTimeout(() => render(el), 200);
          } }, 'Create role'),
          out);
      }],
      ['Permissions', (el) => {
        const roles = [...(s.guilds.get(guildId)?.roles ?? [])];
        const chan = /** @type {HTMLSelectElement} */ (h('select', { 'aria-label': 'Channel' }, channels().map((c) => h('option', { value: c.id }, c.name))));
        const role = /** @type {HTMLSelectElement} */ (h('select', { 'aria-label': 'Role' }, roles.map((r) => h('option', { value: r.id }, r.name))));
        const editor = h('div');
        const out = h('p', { class: 'muted', role: 'status' });
        const show = () => {
          const c = s.channels.get(chan.value);
          const ow = (c?.overwrites ?? []).find((o) => o.id === role.value);
          let allow = BigInt(ow?.allow ?? '0');
          let deny = BigInt(ow?.deny ?? '0');
          replace(editor, h('table', { class: 'overwrites' }, h('tr', null, h('th', null, 'Permission'), h('th', null, 'Allow'), h('th', null, 'Deny')),
            PERMISSIONS.filter(([, , label]) => label).slice(0, 11).map(([key, bit, label]) => {
              const a = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', 'aria-label': `Allow ${label}`, checked: (allow >> bit) & 1n ? true : null }));
              const d = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', 'aria-label': `Deny ${label}`, checked: (deny >> bit) & 1n ? true : null }));
              a.onchange = () => { allow = a.checked ? allow | (1n << bit) : allow & ~(1n << bit); };
              d.onchange = () => { deny = d.checked ? deny | (1n << bit) : deny & ~(1n << bit); };
              return h('tr', { 'data-permission': key }, h('td', null, label), h('td', null, a), h('td', null, d));
            })),
            h('button', { class: 'primary', onclick: () => guard(out, async () => app.store.dispatch('CHANNEL_UPDATE',
              await app.api.put(`/channels/${chan.value}/permissions/${role.value}`, { kind: 'role', allow: allow.toString(), deny: deny.toString() }))) }, 'Save overwrite'));
        };
        chan.onchange = show;
        role.onchange = show;
        replace(el, h('div', { class: 'row' }, chan, role), editor, out);
        show();
      }],
      ['Invites', async function render(el) {
        const out = h('p', { class: 'muted', role: 'status' });
        let list = [];
        try {
          list = await app.api.get(`/guilds/${guildId}/invites`);
        } catch (e) {
          out.textContent = errorText(e);
        }
        replace(el, h('ul', { class: 'settings-list' }, list.map((i) => h('li', null, h('code', null, i.code), ` ${i.uses ?? 0} uses`,
          h('button', { class: 'icon danger', 'aria-label': `Revoke ${i.code}`, onclick: async () => {
            await guard(out, () => app.api.del(`/invites/${i.code}`));
            render(el);
          } }, '🗑')))),
          h('button', { class: 'primary', onclick: () => createInvite(app, guildId) }, 'Create invite'), out);
      }],
      ['Bans', async function render(el) {
        const out = h('p', { class: 'muted', role: 'status' });
        let list = [];
        try {
          list = await app.api.get(`/guilds/${guildId}/bans`);
        } catch (e) {
          out.textContent = errorText(e);
        }
        const name = (/** @type {string} */ id) => s.users.get(id)?.username ?? id;
        replace(el, list.length ? null : h('p', { class: 'muted' }, 'No bans.'),
          h('ul', { class: 'settings-list' }, list.map((b) => h('li', null, name(b.user_id), b.reason ? ` — ${b.reason}` : '',
            h('button', { onclick: async () => {
              await guard(out, () => app.api.del(`/guilds/${guildId}/bans/${b.user_id}`));
              render(el);
            } }, 'Unban')))), out);
      }],
      ['Audit log', (el) => renderAuditLog(el, app, guildId)],
    ]),
  );
}

/** The slow-mode select of a text channel; `save` gets the new seconds. */
function slowModeSelect(/** @type {any} */ c, /** @type {(secs: number) => void} */ save) {
  const now = Number(c.rate_limit_per_user) || 0;
  // A value set elsewhere (the API allows any second up to six hours) is listed too.
  const choices = SLOW_MODE_CHOICES.includes(now) ? SLOW_MODE_CHOICES : [...SLOW_MODE_CHOICES, now].sort((a, b) => a - b);
  const sel = /** @type {HTMLSelectElement} */ (h('select', { 'aria-label': `Slow mode of #${c.name}`, title: 'Slow mode', 'data-testid': 'slow-mode-select', 'data-channel-id': c.id },
    choices.map((secs) => h('option', { value: String(secs), selected: secs === now }, secs ? `Slow mode: ${slowModeLabel(secs)}` : 'Slow mode: Off'))));
  sel.onchange = () => save(Number(sel.value));
  return sel;
}

/** Checkboxes for a permission bitfield; `save` gets the new bits. */
function permissionChecks(/** @type {bigint} */ bits, /** @type {(b: bigint) => void} */ save) {
  let cur = bits;
  return h('div', { class: 'perm-grid' },
    PERMISSIONS.map(([key, bit, label]) => {
      const box = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: `perm-${key}-${bit}`, checked: (cur >> bit) & 1n ? true : null }));
      box.onchange = () => {
        cur = box.checked ? cur | (1n << bit) : cur & ~(1n << bit);
      };
      return h('label', null, box, ` ${label}`);
    }),
    h('button', { class: 'primary', onclick: () => save(cur) }, 'Save permissions'));
}
