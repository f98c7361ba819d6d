// The /voice WebSocket: join with a grant's token, ping every 10 s, and after a dropped socket either
// resume the session (inside the server's 30 s window) or join afresh with a new grant. It knows nothing
// about peer connections: it hands every server message on as a `message` event.
//
// Events (CustomEvent, detail in brackets):
//   state    ['connecting'|'connected'|'reconnecting'|'closed']
//   joined   [the `joined` message]  — a new session (first join or a rejoin after the window)
//   resumed  [the `resumed` message] — the same session on a new socket (queued events follow)
//   rejoining []                      — the old session is lost; a new join follows
//   message  [any other server message, except `pong`]
//   problem  [{code, message}]       — an error the user may want to see (socket stays usable)
//   fatal    [{code, message}]       — the session cannot continue (e.g. wrong_channel, or `disconnected`:
//                                      a moderator took us out of voice); the client is closed
//   moved    [channel id]             — a moderator moved us to another voice channel: the server closes
//                                      the socket; we join the new channel with a fresh grant for it (the
//                                      rejoin path: `rejoining`, then `joined`)

/** How long the server keeps a participant whose socket dropped. */
export const RESUME_WINDOW_MS = 30_000;
export const PING_INTERVAL_MS = 10_000;
/** Between giving up an old session and joining afresh. */
export const REJOIN_PAUSE_MS = 300;
/** A socket that has answered no ping for this long is treated as dead (network change, sleep). */
export const PONG_TIMEOUT_MS = 25_000;

/**
 * After the socket dropped at `droppedAtMs`: resume while safely inside the window, else join afresh.
 * The margin keeps a resume from racing the server's expiry.
 * @param {string|null} sessionId @param {number} droppedAtMs @param {number} nowMs
 * @returns {'resume'|'rejoin'}
 */
export function reconnectPlan(sessionId, droppedAtMs, nowMs, windowMs = RESUME_WINDOW_MS) {
  if (sessionId && nowMs - droppedAtMs < windowMs - 2000) return 'resume';
  return 'rejoin';
}

/**
 * Resume attempts in a row whose socket never opened before the node is taken for gone: in a cluster
 * the room's node may have died, and a fresh grant places the room on a live one.
 */
export const UNREACHABLE_BEFORE_REJOIN = 3;

/** Delay before reconnect attempt `attempt` (0-based): 0.25 s, 0.5 s, 1 s, 2 s, 4 s, then 5 s. @param {number} attempt */
export function backoffMs(attempt) {
  return Math.min(5000, 250 * 2 ** attempt);
}

/**
 * What an `error` message means for the connection.
 * - `fatal`: stop, tell the user (retrying cannot help);
 * - `rejoin`: the server closed (or will close) the socket and forgot us: join again with a fresh grant;
 * - `join`: the socket stays open but the session is unknown: send `join` on it with a fresh grant;
 * - `report`: show it, carry on.
 * @param {string} code @returns {'fatal'|'rejoin'|'join'|'report'}
 */
export function errorAction(code) {
  switch (code) {
    case 'wrong_channel':
    case 'disconnected':
      return 'fatal';
    case 'invalid_token':
    case 'token_expired':
    case 'wrong_node':
    case 'peer_timeout':
    case 'peer_closed':
    case 'sfu_unavailable':
    case 'shutdown':
    case 'join_timeout':
    case 'room_moved':
      return 'rejoin';
    case 'unknown_session':
      return 'join';
    default:
      return 'report';
  }
}

/**
 * @typedef {{ endpoint: string, token: string }} Grant
 * @typedef {'idle'|'connecting'|'connected'|'reconnecting'|'closed'} SignalingState
 * @typedef {{
 *   grant: (channelId: string) => Promise<Grant>,
 *   channelId: string,
 *   WebSocketImpl?: any,
 *   now?: () => number,
 *   timers?: { setTimeout: typeof setTimeout, clearTimeout: typeof clearTimeout, setInterval: typeof setInterval, clearInterval: typeof clearInterval },
 * }} SignalingOptions
 */

export class VoiceSignaling extends EventTarget {
  /** @param {SignalingOptions} opts */
  constructor(opts) {
    super();
    this.grant = opts.grant;
    this.channelId = opts.channelId;
    this.WS = opts.WebSocketImpl ?? globalThis.WebSocket;
    this.now = opts.now ?? (() => Date.now());
    this.timers = opts.timers ?? globalThis;
    /** @type {any} */
    this.ws = null;
    /** @type {string|null} */
    this.sessionId = null;
    /** @type {string|null} */
    this.participantId = null;
    /** @type {SignalingState} */
    this.state = 'idle';
    this.closed = false;
    this.droppedAt = 0;
    this.attempt = 0;
    /** Reconnect attempts in a row whose socket never opened. */
    this.unreachable = 0;
    /** Round trip of the last ping, ms (null before the first pong). @type {number|null} */
    this.rttMs = null;
    this.lastPongAt = 0;
    this.pingSentAt = 0;
    /** @type {any} */ this.pingTimer = null;
    /** @type {any} */ this.retryTimer = null;
    /** The last `error` the server sent (for debugging). @type {{code: string, message: string}|null} */
    this.lastError = null;
  }

  /** @param {string} type @param {any} [detail] */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {SignalingState} s */
  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  /** First join: fetch a grant, open the socket, send `join`. Rejects if the grant cannot be had. */
  async connect() {
    this.setState('connecting');
    const g = await this.grant(this.channelId);
    if (this.closed) return;
    this.open(g.endpoint, { type: 'join', token: g.token, channel_id: this.channelId });
  }

  /** @param {string} endpoint @param {any} first the join/resume message */
  open(endpoint, first) {
    const ws = new this.WS(endpoint);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify(first));
    };
    ws.onmessage = (/** @type {MessageEvent} */ e) => {
      if (this.ws !== ws) return;
      let m;
      try {
        m = JSON.parse(e.data);
      } catch {
        return;
      }
      if (m && typeof m.type === 'string') this.onMessage(m);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPing();
      if (this.closed) return;
      // A socket that never opened is a failed attempt of the current reconnect, not a new drop.
      if (!opened) this.unreachable++;
      if (opened && this.state === 'connected') this.droppedAt = this.now();
      else if (!this.droppedAt) this.droppedAt = this.now();
      this.setState('reconnecting');
      this.scheduleReconnect();
    };
    this.endpoint = endpoint;
  }

  /** @param {any} m */
  onMessage(m) {
    switch (m.type) {
      case 'joined':
        this.sessionId = m.session_id;
        this.participantId = m.participant_id;
        this.connectedNow();
        this.emit('joined', m);
        break;
      case 'resumed':
        this.participantId = m.participant_id ?? this.participantId;
        this.connectedNow();
        this.emit('resumed', m);
        break;
      case 'pong':
        this.lastPongAt = this.now();
        if (this.pingSentAt) this.rttMs = this.lastPongAt - this.pingSentAt;
        break;
      case 'error':
        this.onError(m);
        break;
      case 'moved':
        this.onMoved(m);
        break;
      default:
        this.emit('message', m);
    }
  }

  connectedNow() {
    this.attempt = 0;
    this.unreachable = 0;
    this.droppedAt = 0;
    this.lastPongAt = this.now();
    this.setState('connected');
    this.startPing();
  }

  /**
   * A moderator moved us to another voice channel. The old session ends with this socket (the server
   * closes it); we take the rejoin path at once, with a grant for the new channel.
   * @param {{ channel_id?: unknown }} m
   */
  onMoved(m) {
    if (typeof m.channel_id !== 'string' || !m.channel_id) return;
    this.channelId = m.channel_id;
    this.sessionId = null;
    this.emit('moved', m.channel_id);
    this.drop();
  }

  /** @param {{code: string, message: string}} m */
  onError(m) {
    this.lastError = m;
    const action = errorAction(m.code);
    if (action === 'fatal') {
      this.emit('fatal', m);
      this.close();
    } else if (action === 'rejoin') {
      // The server closes the socket (or already forgot the session): a new session with a fresh grant.
      this.sessionId = null;
      this.drop();
    } else if (action === 'join') {
      this.sessionId = null;
      const ws = this.ws;
      this.grant(this.channelId).then(
        (g) => {
          if (this.ws === ws && ws?.readyState === 1) ws.send(JSON.stringify({ type: 'join', token: g.token, channel_id: this.channelId }));
          else if (this.ws === ws) this.drop();
        },
        () => this.drop(),
      );
    } else {
      this.emit('problem', m);
    }
  }

  /** Drops the current socket on purpose; the normal reconnect logic takes over. */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    if (this.state === 'connected') this.droppedAt = this.now();
    else if (!this.droppedAt) this.droppedAt = this.now();
    this.ws = null;
    ws.onclose = null;
    ws.onmessage = null;
    try {
      ws.close();
    } catch {
      /* already closing */
    }
    this.stopPing();
    if (this.closed) return;
    this.setState('reconnecting');
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    this.timers.clearTimeout(this.retryTimer);
    const delay = backoffMs(this.attempt++);
    this.retryTimer = this.timers.setTimeout(() => this.reconnect(), delay);
  }

  async reconnect() {
    if (this.closed || this.ws) return;
    const plan = this.unreachable >= UNREACHABLE_BEFORE_REJOIN ? 'rejoin' : reconnectPlan(this.sessionId, this.droppedAt, this.now());
    if (plan === 'resume' && this.endpoint) {
      this.open(this.endpoint, { type: 'resume', session_id: this.sessionId });
      // A socket that hangs while connecting (server unreachable) is given up after 4 s.
      const ws = this.ws;
      this.timers.setTimeout(() => {
        if (this.ws === ws && ws.readyState === 0) {
          ws.onclose = null;
          this.ws = null;
          this.unreachable++;
          try {
            ws.close();
          } catch {
            /* ignore */
          }
          this.scheduleReconnect();
        }
      }, 4000);
      return;
    }
    this.sessionId = null;
    if (this.participantId) {
      // The old session is over: let the client release it (its peer connections) and give the server
      // a moment to drop it, so the new session does not start subscribed to our own old tracks.
      this.participantId = null;
      this.emit('rejoining');
      await new Promise((r) => this.timers.setTimeout(r, REJOIN_PAUSE_MS));
      if (this.closed || this.ws) return;
    }
    let g;
    try {
      g = await this.grant(this.channelId);
    } catch (e) {
      // Not allowed any more (kicked, channel gone) is final; anything else is tried again.
      const status = /** @type {any} */ (e)?.status;
      if (status === 403 || status === 404) {
        this.emit('fatal', { code: /** @type {any} */ (e).code ?? 'forbidden', message: String(/** @type {any} */ (e).message ?? e) });
        this.close();
      } else if (!this.closed) this.scheduleReconnect();
      return;
    }
    if (this.closed || this.ws) return;
    this.open(g.endpoint, { type: 'join', token: g.token, channel_id: this.channelId });
  }

  startPing() {
    this.stopPing();
    this.pingTimer = this.timers.setInterval(() => {
      if (this.now() - this.lastPongAt > PONG_TIMEOUT_MS) {
        this.drop();
        return;
      }
      this.pingSentAt = this.now();
      this.send({ type: 'ping' });
    }, PING_INTERVAL_MS);
  }

  stopPing() {
    this.timers.clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** Sends when the socket is open and the session joined; returns whether it went out. @param {any} m */
  send(m) {
    if (!this.ws || this.ws.readyState !== 1 || this.state !== 'connected') return false;
    this.ws.send(JSON.stringify(m));
    return true;
  }

  /** Leaves the room (if joined) and closes for good. */
  close() {
    if (this.closed) return;
    this.send({ type: 'leave' });
    this.closed = true;
    this.stopPing();
    this.timers.clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      try {
        ws.close();
      } catch {
        /* ignore */
      }
    }
    this.setState('closed');
  }
}
