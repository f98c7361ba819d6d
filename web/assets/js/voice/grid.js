// The video grid: a tile per camera and per screen share, with the participant's name. Each remote tile
// asks the SFU for the size it shows (`subscribe` max_width/max_height, debounced by a ResizeObserver)
// and pauses its track while it cannot be seen (scrolled away: IntersectionObserver; tab hidden:
// visibilitychange). Which tile is a screen share: see roster.js (a single-layer video track).
// A remote video that stops delivering frames (the publisher turned it off: the SFU keeps the track
// published) is shown as "video off" until frames come again. Clicking a tile (or Enter on it) focuses
// it: it takes the grid's width, and so asks the SFU for its full layer; clicking it again unfocuses.

import { h } from '../dom.js';
import { TileRequests } from './subscriptions.js';

/**
 * @typedef {{ track: MediaStreamTrack, trackId: string, participantId: string, userId: string, kind: 'camera'|'screen', local?: boolean }} TileSpec
 * @typedef {{ tile: HTMLElement, caption: HTMLElement, spec: TileSpec, intersecting: boolean }} Tile
 */

export class VideoGrid {
  /**
   * @param {HTMLElement} root the `#video-grid` section
   * @param {{ send: (m: any) => boolean, nameOf: (userId: string) => string }} opts
   */
  constructor(root, opts) {
    this.root = root;
    this.nameOf = opts.nameOf;
    this.requests = new TileRequests({ send: opts.send });
    /** track id → tile @type {Map<string, Tile>} */
    this.tiles = new Map();
    /** The focused tile's track id. @type {string|null} */
    this.focused = null;
    this.empty = h('p', { class: 'video-grid-empty muted small' }, 'No one is sharing video. Turn on your camera or share your screen from the voice panel.');
    this.resize = new ResizeObserver((entries) => entries.forEach((e) => this.changed(/** @type {HTMLElement} */ (e.target))));
    this.visible = new IntersectionObserver((entries) =>
      entries.forEach((e) => {
        const t = this.tiles.get(/** @type {HTMLElement} */ (e.target).dataset.trackId ?? '');
        if (t) t.intersecting = e.isIntersecting;
        this.changed(/** @type {HTMLElement} */ (e.target));
      }),
    );
    document.addEventListener('visibilitychange', () => this.tiles.forEach((t) => this.changed(t.tile)));
  }

  /** Shows the grid for the call. */
  show() {
    this.root.hidden = false;
    this.layout();
  }

  /** @param {TileSpec} spec */
  add(spec) {
    // A tile added again (a new camera track, say) keeps its focus.
    const focused = this.focused === spec.trackId;
    this.remove(spec.trackId);
    if (focused) this.focused = spec.trackId;
    const video = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsinline: true, muted: true }));
    video.muted = true;
    video.srcObject = new MediaStream([spec.track]);
    const caption = h('figcaption');
    const tile = h(
      'figure',
      {
        class: 'tile',
        'data-testid': 'video-tile',
        'data-track-id': spec.trackId,
        'data-participant-id': spec.participantId,
        'data-user-id': spec.userId,
        'data-local': spec.local ? 'true' : null,
        role: 'button',
        tabindex: '0',
        title: 'Click to focus',
      },
      video,
      h('div', { class: 'tile-off', 'aria-hidden': 'true' }, 'Video off'),
      caption,
    );
    const t = { tile, caption, spec, intersecting: true };
    tile.addEventListener('click', () => this.focus(spec.trackId));
    tile.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        this.focus(spec.trackId);
      }
    });
    this.tiles.set(spec.trackId, t);
    this.render(t);
    // Screen shares first, then cameras; local tiles last.
    this.root.appendChild(tile);
    this.sort();
    if (!spec.local) {
      this.resize.observe(tile);
      this.visible.observe(tile);
    }
    this.layout();
  }

  /** @param {Tile} t */
  render(t) {
    const { spec } = t;
    t.tile.dataset.kind = spec.kind;
    t.tile.classList.toggle('screen', spec.kind === 'screen');
    t.tile.classList.toggle('local', !!spec.local);
    const who = this.nameOf(spec.userId);
    t.caption.textContent = `${who}${spec.kind === 'screen' ? ' — screen' : ''}${spec.local ? ' (you)' : ''}`;
    t.tile.setAttribute('aria-label', spec.kind === 'screen' ? `${who}'s screen` : `${who}'s camera`);
  }

  sort() {
    const rank = (/** @type {Tile} */ t) => (t.spec.local ? 2 : 0) + (t.spec.kind === 'screen' ? 0 : 1);
    const order = [...this.tiles.values()].sort((a, b) => rank(a) - rank(b));
    order.forEach((t, i) => {
      if (this.root.children[i] !== t.tile) this.root.insertBefore(t.tile, this.root.children[i] ?? null);
    });
  }

  /** The roster learned more about a track (e.g. that it is a screen share). @param {string} trackId @param {Partial<TileSpec>} patch */
  update(trackId, patch) {
    const t = this.tiles.get(trackId);
    if (!t) return;
    const before = t.spec.kind;
    Object.assign(t.spec, patch);
    this.render(t);
    if (before !== t.spec.kind) this.sort();
  }

  /** @param {Set<string>} participantIds */
  setSpeaking(participantIds) {
    this.tiles.forEach((t) => t.tile.classList.toggle('speaking', participantIds.has(t.spec.participantId)));
  }

  /** Marks remote tiles whose video delivers no frames (turned off) or does again. @param {Set<string>} stalledTrackIds */
  setStalled(stalledTrackIds) {
    this.tiles.forEach((t, id) => t.tile.classList.toggle('stalled', !t.spec.local && stalledTrackIds.has(id)));
  }

  /** @param {string} trackId */
  remove(trackId) {
    const t = this.tiles.get(trackId);
    if (!t) return;
    this.resize.unobserve(t.tile);
    this.visible.unobserve(t.tile);
    this.requests.forget(trackId);
    const v = t.tile.querySelector('video');
    if (v) v.srcObject = null;
    t.tile.remove();
    this.tiles.delete(trackId);
    if (this.focused === trackId) this.focused = null;
    this.layout();
  }

  /** Remote tiles only (a new session: the remote tracks are gone). */
  clearRemote() {
    for (const [id, t] of [...this.tiles]) if (!t.spec.local) this.remove(id);
  }

  /** Everything, and hide the grid (left the call). */
  clear() {
    for (const id of [...this.tiles.keys()]) this.remove(id);
    this.requests.clear();
    this.root.hidden = true;
  }

  /** Focuses the tile of `trackId`, or unfocuses it when it is the focused one. @param {string} trackId */
  focus(trackId) {
    this.focused = this.focused === trackId || !this.tiles.has(trackId) ? null : trackId;
    this.layout();
  }

  layout() {
    const n = this.tiles.size;
    if (n === 0 && !this.empty.isConnected) this.root.appendChild(this.empty);
    if (n > 0) this.empty.remove();
    this.root.dataset.count = String(n);
    if (this.focused) this.root.dataset.focus = 'true';
    else delete this.root.dataset.focus;
    this.tiles.forEach((t, id) => {
      t.tile.classList.toggle('focused', id === this.focused);
      t.tile.setAttribute('aria-pressed', String(id === this.focused));
    });
  }

  /** @param {HTMLElement} tile */
  changed(tile) {
    const id = tile.dataset.trackId ?? '';
    const t = this.tiles.get(id);
    if (!t || t.spec.local) return;
    this.requests.update(id, () => {
      const r = tile.getBoundingClientRect();
      return {
        width: r.width,
        height: r.height,
        visible: !document.hidden && !this.root.hidden && t.intersecting && tile.isConnected,
        pixelRatio: globalThis.devicePixelRatio || 1,
      };
    });
  }
}
