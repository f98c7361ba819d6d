// The member list: online members first, grouped by their highest hoisted role, with presence dots.

import { h, replace } from '../dom.js';

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
                const name = h('span', { class: 'member-name' }, m.nick || m.user.display_name || m.user.username);
                if (top) name.style.color = `#${top.color.toString(16).padStart(6, '0')}`;
                return h(
                  'li',
                  { class: `member ${status(m.user.id)}`, 'data-testid': 'member', 'data-user-id': m.user.id },
                  h('span', { class: 'avatar small', 'aria-hidden': 'true' }, (m.user.display_name || m.user.username)[0]?.toUpperCase(), h('span', { class: `presence ${status(m.user.id)}`, 'aria-label': status(m.user.id) })),
                  name,
                );
              }),
            ),
          ),
        ),
    );
  };
  app.store.subscribe((_s, what) => {
    if (['SELECT', 'MEMBERS', 'PRESENCE_UPDATE', 'GUILD_MEMBER_ADD', 'GUILD_MEMBER_REMOVE', 'GUILD_MEMBER_UPDATE', 'READY', 'GUILD_ROLE_UPDATE'].includes(what)) render();
  });
}
