// Slow mode: the choices a moderator has, how a duration reads, and the composer's cooldown per channel.
// Pure: time comes in as an argument.
//
// A channel's `rate_limit_per_user` (seconds, 0 = off) makes a member wait between two messages; members
// with MANAGE_MESSAGES or MANAGE_CHANNELS there are exempt. The server is the judge (429 `slow_mode` with
// Retry-After); the client starts the countdown itself when a message goes out, so the member sees the
// wait instead of running into the refusal, and takes the server's Retry-After when it is refused anyway
// (another tab, a reload).

/** Seconds offered in the channel settings (Discord's steps up to six hours). */
export const SLOW_MODE_CHOICES = [0, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600];
export const MAX_SLOW_MODE = 21600;

/** A slow-mode setting as a short label: Off, 5s, 1m, 2h. @param {number} secs */
export function slowModeLabel(secs) {
  const s = Math.max(0, Math.floor(Number(secs) || 0));
  if (s === 0) return 'Off';
  if (s < 60 || s % 60) return `${s}s`;
  if (s < 3600 || s % 3600) return `${s / 60}m`;
  return `${s / 3600}h`;
}

/** A length of time for a sentence: "10 s", "2 min", "1 h 30 min". @param {number} secs */
export function durationText(secs) {
  const s = Math.max(0, Math.ceil(Number(secs) || 0));
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  const parts = [];
  if (h) parts.push(`${h} h`);
  if (m) parts.push(`${m} min`);
  if (rest) parts.push(`${rest} s`);
  return parts.join(' ');
}

/** A running countdown: 7 s, then 1:05, 1:02:03. @param {number} secs */
export function countdownText(secs) {
  const s = Math.max(0, Math.ceil(Number(secs) || 0));
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * What the composer shows for one channel.
 * @typedef {{ hidden: boolean, blocked: boolean, exempt: boolean, remaining: number, refused: boolean, text: string }} SlowModeView
 */

export class Cooldowns {
  constructor() {
    /** channel id → { until: ms when sending is allowed again, refused: the server said so } */
    this.byChannel = new Map();
  }

  /** A message went out (or was acknowledged) at `now` in a channel with a slow mode of `secs`. @param {string} channelId @param {number} secs @param {number} now */
  sent(channelId, secs, now) {
    if (secs > 0) this.byChannel.set(channelId, { until: now + secs * 1000, refused: false });
  }

  /** The server refused a message: wait `retryAfterSecs` from `now`. @param {string} channelId @param {number} retryAfterSecs @param {number} now */
  refused(channelId, retryAfterSecs, now) {
    const secs = Math.max(1, Math.ceil(Number(retryAfterSecs) || 1));
    this.byChannel.set(channelId, { until: now + secs * 1000, refused: true });
  }

  /** @param {string} channelId */
  clear(channelId) {
    this.byChannel.delete(channelId);
  }

  /** Whole seconds left to wait (0: may send). @param {string} channelId @param {number} now */
  remaining(channelId, now) {
    const c = this.byChannel.get(channelId);
    if (!c) return 0;
    const left = Math.ceil((c.until - now) / 1000);
    if (left <= 0) {
      this.byChannel.delete(channelId);
      return 0;
    }
    return left;
  }

  /** Whether any channel is still counting down (the composer ticks while one is). @param {number} now */
  anyRunning(now) {
    for (const id of [...this.byChannel.keys()]) if (this.remaining(id, now) > 0) return true;
    return false;
  }

  /**
   * @param {string} channelId @param {number} rateLimit the channel's `rate_limit_per_user`
   * @param {boolean} exempt @param {number} now
   * @returns {SlowModeView}
   */
  view(channelId, rateLimit, exempt, now) {
    const rate = Math.max(0, Number(rateLimit) || 0);
    const c = this.byChannel.get(channelId);
    const remaining = this.remaining(channelId, now);
    // A refusal counts even if our copy of the channel does not know about slow mode yet.
    if (!rate && !(remaining && c?.refused)) return { hidden: true, blocked: false, exempt, remaining: 0, refused: false, text: '' };
    if (exempt) return { hidden: false, blocked: false, exempt, remaining: 0, refused: false, text: `Slow mode: ${durationText(rate)} — you are exempt` };
    if (remaining > 0) {
      const refused = !!c?.refused;
      const text = refused
        ? `Slow mode is on: you can send again in ${countdownText(remaining)}`
        : `Slow mode: wait ${countdownText(remaining)}`;
      return { hidden: false, blocked: true, exempt, remaining, refused, text };
    }
    return { hidden: false, blocked: false, exempt, remaining: 0, refused: false, text: `Slow mode: ${durationText(rate)}` };
  }
}
