// The guild rail: one icon per server, create a server, join by invite.

import { h, replace } from '../dom.js';
import { promptModal } from './modal.js';

/** @param {HTMLElement} root @param {any} app */
export function mountRail(root, app) {
  const initials = (/** @type {string} */ name) => name.split(/\s+/).map((w) => w[0] ?? '').join('').slice(0, 3).toUpperCase();
  const render = () => {
    const s = app.store.state;
    const unreadIn = (/** @type {string} */ gid) =>
      [...s.channels.values()].some((c) => c.guild_id === gid && (s.readStates.get(c.id)?.unread_count ?? 0) > 0);
    replace(
      root,
      h('button', { class: `rail-icon home${s.current.guildId ? '' : ' active'}`, 'aria-label': 'Home', onclick: () => app.navigate('/channels/@me') }, '⌂'),
      h('div', { class: 'rail-sep' }),
      [...s.guilds.values()].map((g) =>
        h(
          'button',
          {
            class: `rail-icon${s.current.guildId === g.id ? ' active' : ''}${unreadIn(g.id) ? ' unread' : ''}`,
            'aria-label': g.name,
            title: g.name,
            'data-testid': 'guild-icon',
            'data-guild-id': g.id,
            onclick: () => app.open(g.id),
          },
          initials(g.name),
        ),
      ),
      h('button', { class: 'rail-icon add', 'aria-label': 'Create a server', 'data-testid': 'create-guild', onclick: create }, '+'),
      h('button', { class: 'rail-icon add', 'aria-label': 'Join a server with an invite', 'data-testid': 'join-guild', onclick: join }, '⇥'),
    );
  };
  const create = async () => {
    const name = await promptModal('Create a server', 'Server name', `${app.store.state.me?.username ?? 'My'}'s server`);
    if (!name) return;
    const g = await app.api.post('/guilds', { name });
    app.store.dispatch('GUILD_CREATE', g);
    app.open(g.id);
  };
  const join = async () => {
    const code = await promptModal('Join a server', 'Invite link or code', '');
    if (!code) return;
    const c = code.trim().replace(/^.*\/invite\//, '');
    const res = await app.api.post(`/invites/${encodeURIComponent(c)}`);
    app.store.dispatch('GUILD_CREATE', res.guild);
    app.open(res.guild.id);
  };
  app.store.subscribe(render);
  render();
}
