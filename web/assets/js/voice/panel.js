// The voice panel at the bottom of the channel sidebar: a reconnect banner while the connection is being
// restored, the channel and connection quality (ping), and the call's buttons — mute, deafen, camera,
// screen share, leave — each with an aria-label and aria-pressed. The DOM is built once and updated in
// place, so keyboard focus stays on a button while the call's state changes.

import { h } from '../dom.js';

/**
 * @typedef {{ channelName: string, state: string, rttMs: number|null, loss: number|null, muted: boolean, deafened: boolean,
 *   serverMuted?: boolean, serverDeafened?: boolean, camera: boolean, screen: boolean, problem: string|null }} PanelView
 * @typedef {{ mute(): void, deafen(): void, camera(): void, screen(): void, leave(): void }} PanelActions
 */

/**
 * good / fair / poor from the round trip and the loss, or '' before there is a measurement.
 * @param {number|null} rttMs @param {number|null} loss fraction 0..1
 */
export function qualityOf(rttMs, loss) {
  if (rttMs === null || rttMs === undefined) return '';
  const l = loss ?? 0;
  if (rttMs < 150 && l < 0.02) return 'good';
  if (rttMs < 400 && l < 0.08) return 'fair';
  return 'poor';
}

/** The line the panel shows while a moderator has muted or deafened us ('' otherwise). @param {boolean} muted @param {boolean} deafened */
export function serverStateText(muted, deafened) {
  if (muted && deafened) return 'Server muted and deafened by a moderator';
  if (muted) return 'Server muted by a moderator';
  if (deafened) return 'Server deafened by a moderator';
  return '';
}

export class VoicePanel {
  /** @param {HTMLElement} root @param {PanelActions} act */
  constructor(root, act) {
    this.root = root;
    /** @param {string} id @param {string} icon @param {() => void} fn */
    const btn = (id, icon, fn) => h('button', { type: 'button', class: 'icon call-btn', 'data-testid': id, onclick: fn }, h('span', { 'aria-hidden': 'true' }, icon));
    this.banner = h('div', { class: 'voice-banner', role: 'alert', 'data-testid': 'voice-reconnecting', hidden: true }, 'Connection lost — reconnecting…');
    this.dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
    this.label = h('strong', { 'data-testid': 'voice-state' });
    this.channel = h('span', { 'data-testid': 'voice-channel-name' });
    this.ping = h('span', { class: 'voice-ping', 'data-testid': 'voice-ping' });
    this.problem = h('p', { class: 'error small', role: 'status', hidden: true });
    this.server = h('p', { class: 'voice-server-state small', role: 'status', 'data-testid': 'voice-server-state', hidden: true });
    this.mute = btn('voice-mute', '🎙', act.mute);
    this.deafen = btn('voice-deafen', '🎧', act.deafen);
    this.camera = btn('voice-camera', '📷', act.camera);
    this.screen = btn('voice-screen', '🖥', act.screen);
    this.leave = btn('voice-leave', '✆', act.leave);
    this.leave.classList.add('leave');
    this.leave.setAttribute('aria-label', 'Leave voice channel');
    this.leave.title = 'Leave voice channel';
    root.replaceChildren(
      this.banner,
      h('div', { class: 'voice-status' }, this.dot, h('div', { class: 'voice-where' }, this.label, h('div', { class: 'muted small' }, this.channel, this.ping))),
      this.server,
      this.problem,
      h('div', { class: 'call-buttons', role: 'toolbar', 'aria-label': 'Call controls' }, this.mute, this.deafen, this.camera, this.screen, this.leave),
    );
  }

  /** @param {PanelView|null} v null: not in a call */
  update(v) {
    if (!v) {
      this.root.hidden = true;
      return;
    }
    this.root.hidden = false;
    this.banner.hidden = v.state !== 'reconnecting';
    this.label.textContent = v.state === 'connected' ? 'Voice Connected' : v.state === 'reconnecting' ? 'Reconnecting…' : 'Connecting…';
    this.dot.className = `dot ${v.state}`;
    this.channel.textContent = v.channelName;
    const q = v.state === 'connected' ? qualityOf(v.rttMs, v.loss) : '';
    this.ping.textContent = q && v.rttMs !== null ? ` · ${Math.round(v.rttMs)} ms` : '';
    this.ping.className = `voice-ping ${q}`;
    this.ping.title = q ? `Connection ${q}${v.loss ? `, ${(v.loss * 100).toFixed(1)}% loss` : ''}` : '';
    this.root.dataset.quality = q;
    const imposed = serverStateText(!!v.serverMuted, !!v.serverDeafened);
    this.server.hidden = !imposed;
    if (this.server.textContent !== imposed) this.server.textContent = imposed;
    this.mute.classList.toggle('server', !!v.serverMuted);
    this.deafen.classList.toggle('server', !!v.serverDeafened);
    this.problem.hidden = !v.problem;
    this.problem.textContent = v.problem ?? '';
    this.toggle(this.mute, v.muted, v.muted ? 'Unmute (Ctrl+Shift+M)' : 'Mute (Ctrl+Shift+M)', v.muted ? '🔇' : '🎙');
    this.toggle(this.deafen, v.deafened, v.deafened ? 'Undeafen (Ctrl+Shift+D)' : 'Deafen (Ctrl+Shift+D)', '🎧');
    this.toggle(this.camera, v.camera, v.camera ? 'Turn camera off' : 'Turn camera on', '📷');
    this.toggle(this.screen, v.screen, v.screen ? 'Stop sharing your screen' : 'Share your screen', '🖥');
  }

  /** @param {HTMLElement} b @param {boolean} on @param {string} label @param {string} icon */
  toggle(b, on, label, icon) {
    b.setAttribute('aria-pressed', on ? 'true' : 'false');
    b.setAttribute('aria-label', label);
    b.title = label;
    b.classList.toggle('on', on);
    const span = /** @type {HTMLElement} */ (b.firstElementChild);
    if (span.textContent !== icon) span.textContent = icon;
  }
}
