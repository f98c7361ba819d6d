// The channel sidebar: the server's name and menu, channels by category with unread and mention badges,
// who sits in each voice channel (speaking ring; self mute/deafen and server mute/deafen icons; the
// member menu for moderators), and the user panel.

import { h, replace } from '../dom.js';
import { openGuildSettings, openUserSettings, createInvite } from './settings.js';
import { withMemberMenu } from './member-menu.js';

/** @param {HTMLElement} root @param {any} app */
export function mountSidebar(root, app) {
  const header = /** @type {HTMLElement} */ (root.querySelector('#guild-header'));
  const list = /** @type {HTMLElement} */ (root.querySelector('#channel-list'));
  const user = /** @type {HTMLElement} */ (root.querySelector('#user-panel'));

  const nameOf = (/** @type {string} */ id) => {
    const u = app.store.state.users.get(id);
    return u?.display_name || u?.username || `user ${id.slice(-4)}`;
  };

  const channelRow = (/** @type {any} */ c) => {
    const s = app.store.state;
    const rs = s.readStates.get(c.id);
    const active = s.current.channelId === c.id;
    if (c.kind === 'voice') {
      const inside = [...(s.voice.get(c.guild_id)?.values() ?? [])].filter((v) => v.channel_id === c.id);
      const speaking = app.voice?.speakingUserIds?.() ?? new Set();
      return h(
        'li',
        null,
        h(
          'button',
          {
            class: `channel voice${app.voice?.channelId === c.id ? ' active' : ''}`,
            'data-testid': 'voice-channel',
            'data-channel-id': c.id,
            'aria-label': `Join voice channel ${c.name}`,
            onclick: () => app.voice.join(c.guild_id, c.id),
          },
          h('span', { class: 'chan-icon', 'aria-hidden': 'true' }, '🔊'),
          c.name,
        ),
        h(
          'ul',
          { class: 'voice-users' },
          inside.map((v) => {
            const row = h(
              'li',
              {
                class: `voice-user${speaking.has(v.user_id) ? ' speaking' : ''}${v.server_mute ? ' server-muted' : ''}${v.server_deaf ? ' server-deafened' : ''}`,
                'data-testid': 'voice-user',
                'data-user-id': v.user_id,
              },
              h('span', { class: 'avatar small', 'aria-hidden': 'true' }, nameOf(v.user_id)[0]?.toUpperCase() ?? '?'),
              h('span', { class: 'voice-user-name' }, nameOf(v.user_id)),
              // A moderator's mute and deafen are red and say so; the member's own are grey.
              v.server_mute
                ? h('span', { class: 'state-icon server', title: 'Server muted', 'aria-label': 'server muted', 'data-testid': 'voice-server-muted' }, '🎙̸')
                : v.self_mute ? h('span', { class: 'state-icon', title: 'Muted', 'aria-label': 'muted' }, '🎙̸') : null,
              v.server_deaf
                ? h('span', { class: 'state-icon server', title: 'Server deafened', 'aria-label': 'server deafened', 'data-testid': 'voice-server-deafened' }, '🎧̸')
                : v.self_deaf ? h('span', { class: 'state-icon', title: 'Deafened', 'aria-label': 'deafened' }, '🎧̸') : null,
            );
            withMemberMenu(row, app, c.guild_id, v.user_id, nameOf(v.user_id));
            return row;
          }),
        ),
      );
    }
    const unread = (rs?.unread_count ?? 0) > 0 && !active;
    return h(
      'li',
      null,
      h(
        'a',
        {
          href: `/channels/${c.guild_id}/${c.id}`,
          class: `channel text${active ? ' active' : ''}${unread ? ' unread' : ''}`,
          'data-testid': 'text-channel',
          'data-channel-id': c.id,
          'aria-current': active ? 'page' : null,
          onclick: (/** @type {Event} */ e) => {
            e.preventDefault();
            app.navigate(`/channels/${c.guild_id}/${c.id}`);
          },
        },
        h('span', { class: 'chan-icon', 'aria-hidden': 'true' }, '#'),
        c.name,
        (rs?.mention_count ?? 0) > 0 && !active
          ? h('span', { class: 'badge', 'data-testid': 'mention-badge', 'aria-label': `${rs.mention_count} mentions` }, String(rs.mention_count))
          : null,
      ),
    );
  };

  const render = () => {
    const s = app.store.state;
    const g = s.current.guildId ? s.guilds.get(s.current.guildId) : null;
    if (!g) {
      replace(header, h('h2', null, 'Direct Messages'));
      replace(list, h('p', { class: 'muted pad' }, s.guilds.size ? 'Pick a server on the left.' : 'Create a server with + or join one with an invite.'));
    } else {
      replace(
        header,
        h('h2', { title: g.name, 'data-testid': 'guild-name' }, g.name),
        h('button', { class: 'icon', 'aria-label': 'Invite people', 'data-testid': 'invite-button', onclick: () => createInvite(app, g.id) }, '👤+'),
        h('button', { class: 'icon', 'aria-label': 'Server settings', 'data-testid': 'guild-settings-button', onclick: () => openGuildSettings(app, g.id) }, '⚙'),
      );
      const chans = [...s.channels.values()].filter((c) => c.guild_id === g.id).sort((a, b) => a.position - b.position || (a.id < b.id ? -1 : 1));
      const top = chans.filter((c) => c.kind !== 'category' && !c.parent_id);
      const cats = chans.filter((c) => c.kind === 'category');
      replace(
        list,
        h('ul', { class: 'channels' }, top.map(channelRow)),
        cats.map((cat) =>
          h('section', { class: 'category' }, h('h3', null, cat.name), h('ul', { class: 'channels' }, chans.filter((c) => c.parent_id === cat.id).map(channelRow))),
        ),
      );
    }
    const me = s.me;
    replace(
      user,
      me ? h('span', { class: 'avatar small', 'aria-hidden': 'true' }, (me.display_name || me.username)[0]?.toUpperCase()) : null,
      h('span', { class: 'me-name', 'data-testid': 'me-name' }, me ? me.display_name || me.username : ''),
      h('button', { class: 'icon', 'aria-label': 'User settings', 'data-testid': 'user-settings-button', onclick: () => openUserSettings(app) }, '⚙'),
    );
  };
  app.store.subscribe(render);
  render();
}
