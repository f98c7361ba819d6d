// The video grid: a tile per camera and per screen share. Each tile asks the SFU for the size it shows
// (`subscribe` with max_width/max_height) and pauses its track while it is not visible.
// Which tile is the screen share: a camera is published with 3 simulcast layers, a screen share with one,
// so a video track whose `track_published` says `simulcast: false` is a screen.

import { h } from '../dom.js';
import { tileRequest, sameRequest } from './sdp.js';

export class VideoGrid {
  /** @param {HTMLElement} root @param {(m: any) => void} send @param {(userId: string) => string} nameOf */
  constructor(root, send, nameOf) {
    this.root = root;
    this.send = send;
    this.nameOf = nameOf;
    /** track id → {tile, last, timer} */
    this.tiles = new Map();
    this.resize = new ResizeObserver((entries) => entries.forEach((e) => this.request(/** @type {HTMLElement} */ (e.target))));
    this.visible = new IntersectionObserver((entries) => entries.forEach((e) => this.request(/** @type {HTMLElement} */ (e.target))));
    document.addEventListener('visibilitychange', () => this.tiles.forEach((t) => this.request(t.tile)));
  }

  /**
   * @param {{track: MediaStreamTrack, trackId: string, participantId: string, userId: string, screen: boolean, local?: boolean}} t
   */
  add(t) {
    this.remove(t.trackId);
    const video = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsinline: true, muted: true }));
    video.srcObject = new MediaStream([t.track]);
    const tile = h(
      'figure',
      {
        class: `tile${t.screen ? ' screen' : ''}${t.local ? ' local' : ''}`,
        'data-testid': 'video-tile',
        'data-track-id': t.trackId,
        'data-participant-id': t.participantId,
        'data-user-id': t.userId,
        'data-kind': t.screen ? 'screen' : 'camera',
        'data-local': t.local ? 'true' : null,
      },
      video,
      h('figcaption', null, `${this.nameOf(t.userId)}${t.screen ? ' (screen)' : ''}${t.local ? ' (you)' : ''}`),
    );
    this.root.appendChild(tile);
    this.tiles.set(t.trackId, { tile, last: null, timer: 0, local: !!t.local });
    if (!t.local) {
      this.resize.observe(tile);
      this.visible.observe(tile);
    }
    this.root.hidden = false;
  }

  /** @param {string} trackId */
  remove(trackId) {
    const t = this.tiles.get(trackId);
    if (!t) return;
    this.resize.unobserve(t.tile);
    this.visible.unobserve(t.tile);
    t.tile.remove();
    this.tiles.delete(trackId);
  }

  removeParticipant(participantId) {
    for (const [id, t] of this.tiles) if (t.tile.dataset.participantId === participantId) this.remove(id);
  }

  clear() {
    for (const id of [...this.tiles.keys()]) this.remove(id);
    this.root.hidden = true;
  }

  /** Debounced: the request goes out 250 ms after the tile stops changing, and only if it differs. */
  request(/** @type {HTMLElement} */ tile) {
    const id = tile.dataset.trackId ?? '';
    const t = this.tiles.get(id);
    if (!t || t.local) return;
    clearTimeout(t.timer);
    t.timer = setTimeout(() => {
      const r = tile.getBoundingClientRect();
      const shown = !document.hidden && r.width > 0 && r.bottom > 0 && r.top < innerHeight;
      const req = tileRequest(id, r.width, r.height, shown, devicePixelRatio || 1);
      if (!sameRequest(req, t.last)) {
        t.last = req;
        this.send(req);
      }
    }, 250);
  }
}
