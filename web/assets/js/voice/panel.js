// The voice panel at the bottom of the sidebar: channel, connection state, ping, and the call's buttons.

import { h, replace } from '../dom.js';

/**
 * @param {HTMLElement} root
 * @param {{ channelName: string, state: string, ping: number|null, muted: boolean, deafened: boolean, camera: boolean, screen: boolean, problem: string|null }} v
 * @param {{ mute(): void, deafen(): void, camera(): void, screen(): void, leave(): void }} act
 */
export function renderPanel(root, v, act) {
  const quality = v.ping === null ? '' : v.ping < 100 ? 'good' : v.ping < 250 ? 'fair' : 'poor';
  const label = v.state === 'connected' ? 'Voice Connected' : v.state === 'reconnecting' ? 'Reconnecting…' : 'Connecting…';
  const btn = (/** @type {string} */ name, /** @type {boolean} */ on, /** @type {string} */ icon, /** @type {() => void} */ fn, /** @type {string} */ id) =>
    h('button', { class: `icon call-btn${on ? ' on' : ''}`, 'aria-label': name, 'aria-pressed': on ? 'true' : 'false', 'data-testid': id, title: name, onclick: fn }, icon);
  root.hidden = false;
  replace(
    root,
    v.state === 'reconnecting' ? h('div', { class: 'voice-banner', role: 'alert', 'data-testid': 'voice-reconnecting' }, 'Connection lost — rejoining…') : null,
    h(
      'div',
      { class: 'voice-status' },
      h('span', { class: `dot ${v.state}`, 'aria-hidden': 'true' }),
      h('div', null, h('strong', { 'data-testid': 'voice-state' }, label), h('div', { class: 'muted small' }, v.channelName, v.ping !== null ? ` · ${Math.round(v.ping)} ms (${quality})` : '')),
    ),
    v.problem ? h('p', { class: 'error small', role: 'status' }, v.problem) : null,
    h(
      'div',
      { class: 'call-buttons', role: 'toolbar', 'aria-label': 'Call controls' },
      btn(v.muted ? 'Unmute (Ctrl+Shift+M)' : 'Mute (Ctrl+Shift+M)', v.muted, v.muted ? '🔇' : '🎙', act.mute, 'voice-mute'),
      btn(v.deafened ? 'Undeafen (Ctrl+Shift+D)' : 'Deafen (Ctrl+Shift+D)', v.deafened, '🎧', act.deafen, 'voice-deafen'),
      btn(v.camera ? 'Turn camera off' : 'Turn camera on', v.camera, '📷', act.camera, 'voice-camera'),
      btn(v.screen ? 'Stop sharing' : 'Share screen', v.screen, '🖥', act.screen, 'voice-screen'),
      btn('Leave voice', false, '✆', act.leave, 'voice-leave'),
    ),
  );
}
