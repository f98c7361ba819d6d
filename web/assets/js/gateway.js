// The gateway client: HELLO → IDENTIFY (or RESUME after a drop) → dispatches with sequence numbers,
// heartbeats, and reconnects with backoff. The socket and timers are injected so the resume logic is
// tested in node without a network.

/** Close codes after which resuming is pointless (the contract's table). */
const FATAL = new Set([4001, 4002, 4003, 4004, 4005]);

/**
 * @typedef {{ send(data: string): void, close(code?: number): void, onopen: any, onmessage: any, onclose: any, onerror: any }} SocketLike
 * @typedef {{
 *   url: string,
 *   token: () => string|null,
 *   onDispatch: (t: string, d: any) => void,
 *   onState?: (s: 'connecting'|'connected'|'reconnecting'|'offline'|'logged_out') => void,
 *   socket?: (url: string) => SocketLike,
 *   timers?: { setTimeout: typeof setTimeout, clearTimeout: typeof clearTimeout, setInterval: typeof setInterval, clearInterval: typeof clearInterval },
 *   random?: () => number,
 * }} Options
 */

export class GatewayClient {
  /** @param {Options} opts */
  constructor(opts) {
    this.opts = opts;
    this.timers = opts.timers ?? globalThis;
    this.sessionId = null;
    this.seq = 0;
    this.attempt = 0;
    this.stopped = false;
    this.ws = null;
    this.heartbeat = null;
    this.awaitingAck = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.clearHeartbeat();
    this.ws?.close(1000);
  }

  /** What to send after HELLO: RESUME when a session can be continued, IDENTIFY otherwise. */
  handshake() {
    const token = this.opts.token();
    if (this.sessionId) return { op: 6, d: { token, session_id: this.sessionId, seq: this.seq } };
    return { op: 2, d: { token } };
  }

  connect() {
    this.opts.onState?.(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const ws = (this.opts.socket ?? ((u) => /** @type {any} */ (new WebSocket(u))))(this.opts.url);
    this.ws = ws;
    ws.onmessage = (ev) => this.onFrame(typeof ev.data === 'string' ? ev.data : '');
    ws.onclose = (ev) => this.onClose(ev?.code ?? 1006);
    ws.onerror = () => {};
  }

  /** @param {string} text */
  onFrame(text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    switch (f.op) {
      case 10:
        this.startHeartbeat(f.d?.heartbeat_interval_ms ?? 41250);
        this.send(this.handshake());
        break;
      case 0:
        if (typeof f.s === 'number') this.seq = f.s;
        if (f.t === 'READY') this.sessionId = f.d.session_id;
        if (f.t === 'READY' || f.t === 'RESUMED') {
          this.attempt = 0;
          this.opts.onState?.('connected');
        }
        this.opts.onDispatch(f.t, f.d);
        break;
      case 11:
        this.awaitingAck = false;
        break;
      case 9:
        // The session cannot be resumed: start a new one on this connection.
        this.sessionId = null;
        this.seq = 0;
        this.send(this.handshake());
        break;
      case 7:
        this.ws?.close(4000);
        break;
      default:
        break;
    }
  }

  /** @param {number} code */
  onClose(code) {
    this.clearHeartbeat();
    this.ws = null;
    if (this.stopped) return;
    if (code === 4004) {
      this.sessionId = null;
      this.opts.onState?.('logged_out');
      return;
    }
    if (FATAL.has(code)) {
      this.sessionId = null;
      this.seq = 0;
    }
    this.attempt += 1;
    this.opts.onState?.(this.attempt > 2 ? 'offline' : 'reconnecting');
    const base = Math.min(30_000, 500 * 2 ** Math.min(this.attempt - 1, 6));
    const jitter = (this.opts.random ?? Math.random)() * 0.3 * base;
    this.timers.setTimeout(() => this.connect(), base + jitter);
  }

  /** @param {number} interval */
  startHeartbeat(interval) {
    this.clearHeartbeat();
    this.awaitingAck = false;
    this.heartbeat = this.timers.setInterval(() => {
      if (this.awaitingAck) {
        // No ACK for a whole interval: the connection is dead even if TCP has not noticed.
        this.ws?.close(4009);
        return;
      }
      this.awaitingAck = true;
      this.send({ op: 1, d: { seq: this.seq } });
    }, interval);
  }

  clearHeartbeat() {
    if (this.heartbeat) this.timers.clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** @param {any} frame */
  send(frame) {
    try {
      this.ws?.send(JSON.stringify(frame));
    } catch {
      /* closed meanwhile; onclose reconnects */
    }
  }
}
