// What each video tile asks the SFU for: `{"type":"subscribe", track_id, max_width, max_height}` for the
// size it shows (in device pixels), or `paused: true` while it cannot be seen. Requests are debounced per
// track (a resize sends one request once the tile settles) and deduplicated (an unchanged request is not
// sent again). Pure logic; grid.js feeds it measurements.

/** Round sizes up to steps of this many pixels so small resizes do not send a request each. */
export const SIZE_STEP = 90;
export const MAX_SIZE = 4096;

/**
 * The subscribe request for a tile of `width`×`height` CSS pixels; a hidden or empty tile pauses.
 * @param {string} trackId @param {number} width @param {number} height @param {boolean} visible
 * @param {number} [pixelRatio]
 */
export function tileRequest(trackId, width, height, visible, pixelRatio = 1) {
  if (!visible || !(width > 0) || !(height > 0)) return { type: 'subscribe', track_id: trackId, paused: true };
  const step = (/** @type {number} */ v) => Math.min(MAX_SIZE, Math.ceil((v * pixelRatio) / SIZE_STEP) * SIZE_STEP);
  return { type: 'subscribe', track_id: trackId, max_width: step(width), max_height: step(height), paused: false };
}

/** Whether two subscribe requests ask for the same thing. @param {any} a @param {any} b */
export function sameRequest(a, b) {
  return !!a && !!b && a.track_id === b.track_id && a.paused === b.paused && a.max_width === b.max_width && a.max_height === b.max_height;
}

/**
 * @typedef {{ width: number, height: number, visible: boolean, pixelRatio?: number }} Measure
 */

export class TileRequests {
  /**
   * @param {{ send: (m: any) => boolean, delayMs?: number, timers?: { setTimeout: typeof setTimeout, clearTimeout: typeof clearTimeout } }} opts
   *   `send` returns whether the message went out (a request that could not be sent is tried again by `flush`).
   */
  constructor(opts) {
    this.sendImpl = opts.send;
    this.delayMs = opts.delayMs ?? 250;
    this.timers = opts.timers ?? globalThis;
    /** track id → { measure, last, timer } @type {Map<string, {measure: () => Measure, last: any, timer: any}>} */
    this.tracks = new Map();
    /** Every request sent, newest last (the last 50; for tests and debugging). @type {any[]} */
    this.sent = [];
  }

  /**
   * The tile of `trackId` changed (size, visibility): measure it once it has been quiet for `delayMs`.
   * @param {string} trackId @param {() => Measure} measure
   */
  update(trackId, measure) {
    let t = this.tracks.get(trackId);
    if (!t) this.tracks.set(trackId, (t = { measure, last: null, timer: null }));
    t.measure = measure;
    this.timers.clearTimeout(t.timer);
    t.timer = this.timers.setTimeout(() => this.fire(trackId), this.delayMs);
  }

  /** @param {string} trackId */
  fire(trackId) {
    const t = this.tracks.get(trackId);
    if (!t) return;
    t.timer = null;
    const m = t.measure();
    const req = tileRequest(trackId, m.width, m.height, m.visible, m.pixelRatio ?? 1);
    if (sameRequest(req, t.last)) return;
    if (this.sendImpl(req)) {
      t.last = req;
      this.sent.push(req);
      if (this.sent.length > 50) this.sent.shift();
    }
  }

  /** Forget a tile (removed); nothing is sent. @param {string} trackId */
  forget(trackId) {
    const t = this.tracks.get(trackId);
    if (t) this.timers.clearTimeout(t.timer);
    this.tracks.delete(trackId);
  }

  /** Re-measure every tile now; with `resend`, send even unchanged requests (after the server lost them). */
  flush(resend = false) {
    for (const [id, t] of this.tracks) {
      if (resend) t.last = null;
      this.timers.clearTimeout(t.timer);
      this.fire(id);
    }
  }

  clear() {
    for (const id of [...this.tracks.keys()]) this.forget(id);
  }
}
