// Pure helpers of the voice client: which remote track a subscribe-side media line carries, and the
// `subscribe` request a video tile makes for the size it shows.

/**
 * Maps each media line's mid to the participant and track its `a=msid` names
 * (`<participant_id> <track_id>`, see the /voice protocol).
 * @param {string} sdp
 * @returns {Map<string, {participantId: string, trackId: string, kind: string}>}
 */
export function mediaLines(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const kind = section.split(' ', 1)[0];
    const mid = /(?:^|\n)a=mid:(\S+)/.exec(section)?.[1];
    const msid = /(?:^|\n)a=msid:(\S+) (\S+)/.exec(section);
    if (mid && msid) out.set(mid, { participantId: msid[1], trackId: msid[2], kind });
  }
  return out;
}

/**
 * The subscribe request for a tile of `width`×`height` CSS pixels (device pixels are what matter, so the
 * ratio scales them); a hidden tile pauses the track.
 * @param {string} trackId @param {number} width @param {number} height @param {boolean} visible
 * @param {number} [pixelRatio]
 */
export function tileRequest(trackId, width, height, visible, pixelRatio = 1) {
  if (!visible || width <= 0 || height <= 0) return { type: 'subscribe', track_id: trackId, paused: true };
  // Round up to steps of 90 px so small resizes do not send a flood of requests.
  const step = (/** @type {number} */ v) => Math.min(4096, Math.ceil((v * pixelRatio) / 90) * 90);
  return { type: 'subscribe', track_id: trackId, max_width: step(width), max_height: step(height), paused: false };
}

/** Whether two subscribe requests ask for the same thing (so the second need not be sent). */
export function sameRequest(a, b) {
  return !!a && !!b && a.track_id === b.track_id && a.paused === b.paused && a.max_width === b.max_width && a.max_height === b.max_height;
}

/** What to do after the signaling socket dropped: resume within the window, otherwise join afresh. */
export function reconnectPlan(sessionId, droppedAtMs, nowMs, windowMs = 30_000) {
  if (sessionId && nowMs - droppedAtMs < windowMs - 2000) return 'resume';
  return 'rejoin';
}
