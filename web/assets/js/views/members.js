// The member list: online members first, grouped by their highest hoisted role, with presence dots.
// A moderator gets the member menu (right click or "…") on each row.

import { h, replace } from '../dom.js';
import { withMemberMenu } from './member-menu.js';

/** @param {HTMLElement} root @param {any} app */
export function mountMembers(root, app) {
  const loaded = new Set();
  const render = () => {
    const s = app.store.state;
    const gid = s.current.guildId;
    if (!gid) {
      root.hidden = true;
      return;
    }
    root.hidden = false;
    if (!loaded.has(gid)) {
      loaded.add(gid);
      app.api.get(`/guilds/${gid}/members?limit=1000`).then((list) => app.store.setMembers(gid, list)).catch(() => loaded.delete(gid));
    }
    const g = s.guilds.get(gid);
    const roles = [...(g?.roles ?? [])].sort((a, b) => b.position - a.position);
    const members = [...(s.members.get(gid)?.values() ?? [])];
    // Our own socket is up whenever this page is live, even before a presence event about us arrives.
    const status = (/** @type {string} */ id) =>
      s.presences.get(id) ?? (id === s.me?.id && s.connection === 'connected' ? 'online' : 'offline');
    /** @type {Map<string, any[]>} */
    const sections = new Map();
    for (const m of members) {
      const online = status(m.user.id) !== 'offline';
      const hoisted = online ? roles.find((r) => r.hoist && m.roles.includes(r.id)) : null;
      const key = !online ? 'Offline' : hoisted ? hoisted.name : 'Online';
      if (!sections.has(key)) sections.set(key, []);
      /** @type {any[]} */ (sections.get(key)).push(m);
    }
    const order = [...roles.filter((r) => r.hoist).map((r) => r.name), 'Online', 'Offline'];
    replace(
      root,
      order
        .filter((k) => sections.has(k))
        .map((k) =>
          h(
            'section',
            null,
            h('h3', null, `${k} — ${sections.get(k)?.length}`),
            h(
              'ul',
              null,
              /** @type {any[]} */ (sections.get(k)).map((m) => {
                const top = roles.find((r) => m.roles.includes(r.id) && r.color);
                const shown = m.nick || m.user.display_name || m.user.username;
                const name = h('span', { class: 'member-name' }, shown);
                if (top) name.style.color = `#${top.color.toString(16).padStart(6, '0')}`;
                const row = h(
                  'li',
                  { class: `member ${status(m.user.id)}`, 'data-testid': 'member', 'data-user-id': m.user.id },
                  h('span', { class: 'avatar small', 'aria-hidden': 'true' }, (m.user.display_name || m.user.username)[0]?.toUpperCase(), h('span', { class: `presence ${status(m.user.id)}`, 'aria-label': status(m.user.id) })),
                  name,
                  m.mute ? h('span', { class: 'state-icon server', title: 'Server muted', 'aria-label': 'server muted' }, '🎙̸') : null,
                  m.deaf ? h('span', { class: 'state-icon server', title: 'Server deafened', 'aria-label': 'server deafened' }, '🎧̸') : null,
                );
                withMemberMenu(row, app, gid, m.user.id, shown);
                return row;
              }),
            ),
          ),
        ),
    );
  };
  app.store.subscribe((_s, what) => {
    // Voice states and channels matter too: they decide what the member menu offers.
    if (['SELECT', 'MEMBERS', 'PRESENCE_UPDATE', 'GUILD_MEMBER_ADD', 'GUILD_MEMBER_REMOVE', 'GUILD_MEMBER_UPDATE', 'READY', 'GUILD_ROLE_UPDATE', 'GUILD_ROLE_CREATE', 'GUILD_ROLE_DELETE', 'GUILD_UPDATE', 'VOICE_STATE_UPDATE', 'CHANNEL_CREATE', 'CHANNEL_DELETE'].includes(what)) render();
  });
}
