// One voice session: the /voice WebSocket and the two peer connections.
// publish: only we offer (microphone, camera with 3-layer simulcast, screen share); subscribe: only the
// server offers (everyone else's media). So there is never glare. The SFU is ICE-lite and puts its
// candidates in the SDP; we send ours in the SDP too (no trickle).

import { mediaLines, reconnectPlan } from './sdp.js';
import { constraints } from './devices.js';

const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];

/** Waits until ICE gathering completes (or 2 s, enough for host candidates). @param {RTCPeerConnection} pc */
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 2000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(t);
        resolve(undefined);
      }
    });
  });
}

export class VoiceSession extends EventTarget {
  /** @param {{ endpoint: string, token: string, channelId: string, regrant: () => Promise<{endpoint: string, token: string}> }} opts */
  constructor(opts) {
    super();
    this.opts = opts;
    this.ws = /** @type {WebSocket|null} */ (null);
    this.sessionId = null;
    this.participantId = null;
    /** participant id → {participant_id, user_id, tracks, muted, deafened} */
    this.participants = new Map();
    this.pcPublish = /** @type {RTCPeerConnection|null} */ (null);
    this.pcSubscribe = /** @type {RTCPeerConnection|null} */ (null);
    this.mic = /** @type {MediaStreamTrack|null} */ (null);
    this.camera = /** @type {RTCRtpTransceiver|null} */ (null);
    this.screen = /** @type {RTCRtpTransceiver|null} */ (null);
    this.muted = false;
    this.deafened = false;
    this.closed = false;
    this.droppedAt = 0;
    this.subQueue = Promise.resolve();
    this.pubQueue = Promise.resolve();
    this.lines = new Map();
    this.state = 'connecting';
  }

  /** @param {string} type @param {any} [detail] */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(s) {
    this.state = s;
    this.emit('state', s);
  }

  async start() {
    this.mic = (await navigator.mediaDevices.getUserMedia(constraints('audio'))).getAudioTracks()[0];
    this.open({ type: 'join', token: this.opts.token, channel_id: this.opts.channelId });
  }

  /** @param {any} first */
  open(first, endpoint = this.opts.endpoint) {
    const ws = new WebSocket(endpoint);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify(first));
    ws.onmessage = (e) => this.onMessage(JSON.parse(e.data));
    ws.onclose = () => {
      if (this.ws !== ws || this.closed) return;
      this.ws = null;
      this.droppedAt = Date.now();
      this.setState('reconnecting');
      this.reconnect(0);
    };
    this.pingTimer ??= setInterval(() => this.send({ type: 'ping' }), 10_000);
  }

  async reconnect(attempt) {
    if (this.closed || this.ws) return;
    await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** attempt)));
    if (this.closed || this.ws) return;
    if (reconnectPlan(this.sessionId, this.droppedAt, Date.now()) === 'resume') {
      this.open({ type: 'resume', session_id: this.sessionId });
      // If the socket cannot even open, try again.
      setTimeout(() => {
        if (this.ws && this.ws.readyState !== WebSocket.OPEN) {
          this.ws.onclose = null;
          this.ws.close();
          this.ws = null;
          this.reconnect(attempt + 1);
        }
      }, 4000);
      return;
    }
    this.rejoin();
  }

  /** Too late to resume: a fresh grant and a fresh session, with the same devices. */
  async rejoin() {
    try {
      const g = await this.opts.regrant();
      this.teardownPeers();
      this.sessionId = null;
      this.participants.clear();
      this.emit('participants');
      this.opts.endpoint = g.endpoint;
      this.open({ type: 'join', token: g.token, channel_id: this.opts.channelId }, g.endpoint);
    } catch {
      setTimeout(() => this.rejoin(), 3000);
    }
  }

  /** @param {any} m */
  send(m) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  /** @param {any} m */
  async onMessage(m) {
    switch (m.type) {
      case 'joined':
        this.participantId = m.participant_id;
        this.sessionId = m.session_id;
        this.participants = new Map(m.participants.map((p) => [p.participant_id, p]));
        this.setupPeers(m.ice_servers ?? []);
        this.setState('connected');
        this.emit('participants');
        break;
      case 'resumed':
        this.setState('connected');
        this.restartIce();
        break;
      case 'participant_joined':
        this.participants.set(m.participant_id, { ...m, tracks: m.tracks ?? [] });
        this.emit('participants');
        break;
      case 'participant_left':
        this.participants.delete(m.participant_id);
        this.emit('participants');
        this.emit('left', m.participant_id);
        break;
      case 'track_published': {
        const p = this.participants.get(m.participant_id);
        if (p && !p.tracks.some((t) => t.track_id === m.track_id)) p.tracks.push(m);
        this.emit('participants');
        break;
      }
      case 'track_unpublished': {
        const p = this.participants.get(m.participant_id);
        if (p) p.tracks = p.tracks.filter((t) => t.track_id !== m.track_id);
        this.emit('unpublished', m.track_id);
        this.emit('participants');
        break;
      }
      case 'speaking':
        this.emit('speaking', m);
        break;
      case 'mute': {
        const p = this.participants.get(m.participant_id);
        if (p) Object.assign(p, { muted: m.muted, deafened: m.deafened, server_muted: m.server_muted });
        this.emit('participants');
        break;
      }
      case 'answer':
        this.pubQueue = this.pubQueue.then(() => this.pcPublish?.setRemoteDescription({ type: 'answer', sdp: m.sdp })).catch((e) => this.emit('problem', String(e)));
        break;
      case 'offer':
        this.subQueue = this.subQueue.then(() => this.answerOffer(m.sdp)).catch((e) => this.emit('problem', String(e)));
        break;
      case 'error':
        if (m.code === 'unknown_session') this.rejoin();
        else this.emit('problem', `${m.code}: ${m.message}`);
        break;
      default:
        break;
    }
  }

  /** @param {RTCIceServer[]} iceServers */
  setupPeers(iceServers) {
    this.teardownPeers();
    const cfg = { iceServers, bundlePolicy: /** @type {RTCBundlePolicy} */ ('max-bundle') };
    this.pcPublish = new RTCPeerConnection(cfg);
    this.pcSubscribe = new RTCPeerConnection(cfg);
    this.pcSubscribe.ontrack = (ev) => {
      const line = this.lines.get(ev.transceiver.mid ?? '');
      this.emit('track', { track: ev.track, ...line });
    };
    for (const pc of [this.pcPublish, this.pcSubscribe]) {
      pc.oniceconnectionstatechange = () => {
        if (pc.iceConnectionState === 'failed') this.restartIce();
        this.emit('ice', pc.iceConnectionState);
      };
    }
    if (this.mic) {
      this.mic.enabled = !this.muted;
      this.pcPublish.addTransceiver(this.mic, { direction: 'sendonly' });
    }
    if (this.camera?.sender.track) this.camera = this.pcPublish.addTransceiver(this.camera.sender.track, { direction: 'sendonly', sendEncodings: SIMULCAST });
    if (this.screen?.sender.track) this.screen = this.pcPublish.addTransceiver(this.screen.sender.track, { direction: 'sendonly' });
    this.offer();
  }

  teardownPeers() {
    this.pcPublish?.close();
    this.pcSubscribe?.close();
    this.pcPublish = null;
    this.pcSubscribe = null;
  }

  /** Offers the publish connection (again after a track is added or removed). */
  offer(iceRestart = false) {
    this.pubQueue = this.pubQueue.then(async () => {
      const pc = this.pcPublish;
      if (!pc) return;
      const offer = await pc.createOffer({ iceRestart });
      await pc.setLocalDescription(offer);
      await gathered(pc);
      this.send({ type: 'offer', sdp: pc.localDescription?.sdp });
    }).catch((e) => this.emit('problem', String(e)));
  }

  /** @param {string} sdp */
  async answerOffer(sdp) {
    const pc = this.pcSubscribe;
    if (!pc) return;
    this.lines = mediaLines(sdp);
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await gathered(pc);
    this.send({ type: 'answer', sdp: pc.localDescription?.sdp });
  }

  restartIce() {
    this.offer(true);
    this.send({ type: 'ice_restart' });
  }

  setMute(muted) {
    this.muted = muted;
    if (this.mic) this.mic.enabled = !muted;
    this.send({ type: 'mute', muted, deafened: this.deafened });
  }

  setDeafen(deafened) {
    this.deafened = deafened;
    // Discord's rule: deafening also mutes; undeafening restores the earlier mute.
    if (this.mic) this.mic.enabled = !(this.muted || deafened);
    this.send({ type: 'mute', muted: this.muted || deafened, deafened });
  }

  /** Turns the camera on (3 simulcast layers) or off. Returns the local track when on. */
  async toggleCamera() {
    if (this.camera) {
      const t = this.camera.sender.track;
      this.pcPublish?.removeTrack(this.camera.sender);
      t?.stop();
      this.camera = null;
      this.offer();
      return null;
    }
    const track = (await navigator.mediaDevices.getUserMedia(constraints('video'))).getVideoTracks()[0];
    this.camera = /** @type {RTCPeerConnection} */ (this.pcPublish).addTransceiver(track, { direction: 'sendonly', sendEncodings: SIMULCAST });
    this.offer();
    return track;
  }

  /** Starts or stops the screen share (one layer). Returns the local track when on. */
  async toggleScreen() {
    if (this.screen) {
      const t = this.screen.sender.track;
      this.pcPublish?.removeTrack(this.screen.sender);
      t?.stop();
      this.screen = null;
      this.offer();
      return null;
    }
    const track = (await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false })).getVideoTracks()[0];
    track.contentHint = 'detail';
    track.addEventListener('ended', () => {
      if (this.screen?.sender.track === track) this.toggleScreen();
    });
    this.screen = /** @type {RTCPeerConnection} */ (this.pcPublish).addTransceiver(track, { direction: 'sendonly' });
    this.offer();
    return track;
  }

  /** Round trip to the SFU in ms (from the selected candidate pair), or null. */
  async ping() {
    const stats = await this.pcPublish?.getStats();
    let rtt = null;
    stats?.forEach((r) => {
      if (r.type === 'candidate-pair' && r.nominated && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime * 1000;
    });
    return rtt;
  }

  leave() {
    this.closed = true;
    this.send({ type: 'leave' });
    clearInterval(this.pingTimer);
    this.ws?.close();
    this.ws = null;
    this.mic?.stop();
    this.camera?.sender.track?.stop();
    this.screen?.sender.track?.stop();
    this.teardownPeers();
    this.setState('left');
  }
}
