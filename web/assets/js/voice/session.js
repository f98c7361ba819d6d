// One voice session: the signaling client plus the two peer connections of the /voice protocol.
// - publish: only we offer. Microphone always (Opus; mute = track.enabled=false plus a `mute` message),
//   camera with 3 simulcast layers, screen share as its own single-layer video track. Turning a camera or
//   screen share on or off re-offers. Offers go out one at a time: the next waits for the answer.
// - subscribe: only the server offers (everyone else's media); we answer. Each media line's msid is
//   `<participant_id> <track_id>`.
// The SFU is ICE-lite and lists its candidates in the SDP; we send ours in the SDP too (no trickle).
// Network change: when ICE on a connection goes `failed` (or stays `disconnected` for 2 s) we restart it:
// an `iceRestart` offer on publish, an `ice_restart` request for subscribe.
//
// Events (CustomEvent): state [signaling state], roster [], track [{track, trackId, participantId, kind}],
// trackgone [trackId], reset [] (a new session: every remote track is gone), resumed [], local [] (our
// camera/screen changed), problem [message], fatal [{code, message}], moved [channel id] (a moderator
// moved us: the session rejoins there by itself).

import { VoiceSignaling } from './signaling.js';
import { Roster } from './roster.js';
import { mediaLines } from './sdp.js';
import { constraints, mediaUnavailableReason } from './devices.js';

/** Camera simulcast: quarter, half and full resolution. */
export const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];
const DISCONNECTED_GRACE_MS = 2000;
const ANSWER_TIMEOUT_MS = 10_000;

/** After the first relay candidate, how long other TURN servers get to answer before the SDP goes out. */
const RELAY_GRACE_MS = 300;

/**
 * Waits until ICE gathering completes (host candidates only take a moment; 2 s at most). The /voice
 * protocol sends candidates in the SDP, not trickled, so on a network that blocks some TURN servers
 * (UDP dropped, TLS allowed) gathering would wait for their timeouts: once one relay candidate is in,
 * the rest get RELAY_GRACE_MS. @param {RTCPeerConnection} pc
 */
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 2000);
    const done = () => {
      clearTimeout(t);
      resolve(undefined);
    };
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') done();
    });
    pc.addEventListener('icecandidate', (e) => {
      if (e.candidate?.type === 'relay') setTimeout(done, RELAY_GRACE_MS);
    });
  });
}

/** @param {unknown} e */
const msg = (e) => (e instanceof Error ? e.message : String(e));

export class VoiceSession extends EventTarget {
  /** @param {{ grant: (channelId: string) => Promise<{endpoint: string, token: string}>, channelId: string }} opts */
  constructor(opts) {
    super();
    this.signaling = new VoiceSignaling({ grant: opts.grant, channelId: opts.channelId });
    this.roster = new Roster();
    /** @type {RTCPeerConnection|null} */ this.pcPublish = null;
    /** @type {RTCPeerConnection|null} */ this.pcSubscribe = null;
    /** @type {MediaStreamTrack|null} */ this.mic = null;
    /** @type {MediaStreamTrack|null} */ this.cameraTrack = null;
    /** @type {MediaStreamTrack|null} */ this.screenTrack = null;
    /** @type {RTCRtpTransceiver|null} */ this.cameraTx = null;
    /** @type {RTCRtpTransceiver|null} */ this.screenTx = null;
    this.muted = false;
    this.deafened = false;
    this.closed = false;
    // Publish negotiation: one offer in flight at a time.
    this.wantOffer = false;
    this.wantRestart = false;
    this.offering = false;
    /** @type {((ok: boolean) => void)|null} */ this.answerWaiter = null;
    /** @type {any} */ this.answerTimer = null;
    this.subQueue = Promise.resolve();
    /** mid → msid of the last subscribe offer */
    this.lines = new Map();
    /** @type {Record<'publish'|'subscribe', number>} */
    this.lastRestart = { publish: 0, subscribe: 0 };
    /** @type {Record<'publish'|'subscribe', boolean>} */
    this.restartPending = { publish: false, subscribe: false };

    const sig = this.signaling;
    sig.addEventListener('state', () => this.emit('state', sig.state));
    sig.addEventListener('joined', (e) => this.onJoined(/** @type {CustomEvent} */ (e).detail));
    sig.addEventListener('resumed', () => this.onResumed());
    sig.addEventListener('rejoining', () => {
      // Our old session's media is gone: close its connections now (the SFU drops the old participant).
      this.teardownPeers();
      this.roster.speaking.clear();
      this.emit('reset');
      this.emit('roster');
    });
    sig.addEventListener('message', (e) => this.onMessage(/** @type {CustomEvent} */ (e).detail));
    sig.addEventListener('problem', (e) => {
      const d = /** @type {CustomEvent} */ (e).detail;
      this.emit('problem', `${d.code}: ${d.message}`);
    });
    sig.addEventListener('fatal', (e) => {
      const d = /** @type {CustomEvent} */ (e).detail;
      this.emit('fatal', { code: String(d?.code ?? 'error'), message: String(d?.message ?? '') });
    });
    sig.addEventListener('moved', (e) => this.emit('moved', /** @type {CustomEvent} */ (e).detail));
  }

  get state() {
    return this.signaling.state;
  }

  get participants() {
    return this.roster.participants;
  }

  get participantId() {
    return this.roster.selfId;
  }

  /** The voice channel this session is in (it changes when a moderator moves us). */
  get channelId() {
    return this.signaling.channelId;
  }

  /** @param {string} type @param {any} [detail] */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Opens the microphone (a missing or refused one leaves us listen-only) and joins. */
  async start() {
    const insecure = mediaUnavailableReason();
    if (insecure) {
      this.emit('problem', `${insecure} Listening only.`);
      await this.signaling.connect();
      return;
    }
    try {
      this.mic = (await navigator.mediaDevices.getUserMedia(constraints('audio'))).getAudioTracks()[0] ?? null;
    } catch (e) {
      this.emit('problem', `Microphone unavailable (${msg(e)}): listening only`);
    }
    await this.signaling.connect();
  }

  /** A new session (first join, or a rejoin after the resume window): fresh peer connections. @param {any} m */
  onJoined(m) {
    this.roster.apply(m);
    this.teardownPeers();
    this.emit('reset');
    this.setupPeers(m.ice_servers ?? []);
    if (this.muted || this.deafened) this.sendMute();
    this.emit('roster');
  }

  /** The same session on a new socket: redo what may have been lost while the socket was down. */
  onResumed() {
    // An answer to an offer sent before the drop comes with the queued events right after `resumed`;
    // if none comes soon, the offer was lost and goes out again.
    if (this.answerWaiter) this.expireAnswerWait(1500);
    const pub = this.pcPublish;
    const sub = this.pcSubscribe;
    const unhealthy = (/** @type {RTCPeerConnection|null} */ pc) => !!pc && ['failed', 'disconnected'].includes(pc.iceConnectionState);
    if (this.restartPending.publish || unhealthy(pub)) this.restartIce('publish', true);
    else this.pumpOffers();
    if (this.restartPending.subscribe || unhealthy(sub)) this.restartIce('subscribe', true);
    this.sendMute();
    this.emit('resumed');
  }

  /** @param {any} m */
  onMessage(m) {
    switch (m.type) {
      case 'answer':
        this.applyAnswer(m.sdp);
        return;
      case 'offer':
        this.subQueue = this.subQueue.then(() => this.answerOffer(m.sdp)).catch((e) => this.emit('problem', `subscribe: ${msg(e)}`));
        return;
      case 'track_unpublished':
        this.emit('trackgone', m.track_id);
        break;
      case 'track_unsupported':
        // Only a browser that cannot decode the sender's codec gets this; the rest of the call goes on.
        this.emit('problem', `this browser cannot play ${m.codec}: a track of this call is not shown`);
        break;
      case 'participant_left':
        for (const t of this.roster.participants.get(m.participant_id)?.tracks ?? []) this.emit('trackgone', t.track_id);
        break;
      default:
        break;
    }
    if (this.roster.apply(m)) this.emit('roster');
  }

  /** @param {RTCIceServer[]} iceServers */
  setupPeers(iceServers) {
    const cfg = { iceServers, bundlePolicy: /** @type {RTCBundlePolicy} */ ('max-bundle') };
    const pub = new RTCPeerConnection(cfg);
    const sub = new RTCPeerConnection(cfg);
    this.pcPublish = pub;
    this.pcSubscribe = sub;
    sub.ontrack = (ev) => {
      const line = this.lines.get(ev.transceiver.mid ?? '');
      // Chrome also reports the msid as stream id + track id; use it if the mid is not known.
      const participantId = line?.participantId ?? ev.streams[0]?.id;
      const trackId = line?.trackId ?? ev.track.id;
      if (!participantId || !trackId) return;
      this.emit('track', { track: ev.track, trackId, participantId, kind: ev.track.kind });
    };
    this.watchIce(pub, 'publish');
    this.watchIce(sub, 'subscribe');
    this.cameraTx = null;
    this.screenTx = null;
    if (this.mic) {
      this.mic.enabled = !(this.muted || this.deafened);
      pub.addTransceiver(this.mic, { direction: 'sendonly' });
    }
    if (this.cameraTrack) this.cameraTx = pub.addTransceiver(this.cameraTrack, { direction: 'sendonly', sendEncodings: SIMULCAST });
    if (this.screenTrack) this.screenTx = pub.addTransceiver(this.screenTrack, { direction: 'sendonly' });
    this.requestOffer();
  }

  /** @param {RTCPeerConnection} pc @param {'publish'|'subscribe'} which */
  watchIce(pc, which) {
    /** @type {any} */
    let grace = null;
    pc.addEventListener('iceconnectionstatechange', () => {
      const s = pc.iceConnectionState;
      clearTimeout(grace);
      if (s === 'failed') this.restartIce(which);
      else if (s === 'disconnected') {
        grace = setTimeout(() => {
          if (pc === this.pcPublish || pc === this.pcSubscribe) {
            if (['disconnected', 'failed'].includes(pc.iceConnectionState)) this.restartIce(which);
          }
        }, DISCONNECTED_GRACE_MS);
      }
      this.emit('ice', { which, state: s });
    });
  }

  /**
   * Restarts ICE on one connection (at most every 5 s unless forced); if the socket is down it happens
   * after the resume.
   * @param {'publish'|'subscribe'} which @param {boolean} [force]
   */
  restartIce(which, force = false) {
    if (this.closed) return;
    if (this.signaling.state !== 'connected') {
      this.restartPending[which] = true;
      return;
    }
    const now = Date.now();
    if (!force && now - this.lastRestart[which] < 5000) return;
    this.lastRestart[which] = now;
    this.restartPending[which] = false;
    if (which === 'publish') this.requestOffer(true);
    else this.signaling.send({ type: 'ice_restart' });
  }

  teardownPeers() {
    this.answerWaiter?.(false);
    this.pcPublish?.close();
    this.pcSubscribe?.close();
    this.pcPublish = null;
    this.pcSubscribe = null;
    this.cameraTx = null;
    this.screenTx = null;
    this.wantOffer = false;
    this.wantRestart = false;
    this.subQueue = Promise.resolve();
    this.lines = new Map();
  }

  /** Asks for a publish offer (after the one in flight is answered). @param {boolean} [iceRestart] */
  requestOffer(iceRestart = false) {
    this.wantOffer = true;
    this.wantRestart ||= iceRestart;
    this.pumpOffers();
  }

  async pumpOffers() {
    const pc = this.pcPublish;
    if (this.offering || !this.wantOffer || !pc || this.signaling.state !== 'connected') return;
    this.offering = true;
    this.wantOffer = false;
    const restart = this.wantRestart;
    this.wantRestart = false;
    try {
      const offer = await pc.createOffer({ iceRestart: restart });
      await pc.setLocalDescription(offer);
      await gathered(pc);
      if (pc !== this.pcPublish) return;
      const answered = new Promise((resolve) => {
        this.answerWaiter = (ok) => {
          clearTimeout(this.answerTimer);
          this.answerWaiter = null;
          resolve(ok);
        };
        this.expireAnswerWait(ANSWER_TIMEOUT_MS);
      });
      if (!this.signaling.send({ type: 'offer', sdp: pc.localDescription?.sdp })) this.answerWaiter?.(false);
      if (!(await answered) && pc === this.pcPublish) {
        // Lost (socket dropped, server refused): offer again once we can.
        this.wantOffer = true;
        this.wantRestart ||= restart;
      }
    } catch (e) {
      this.emit('problem', `publish: ${msg(e)}`);
    } finally {
      this.offering = false;
      if (pc === this.pcPublish && this.signaling.state === 'connected') this.pumpOffers();
    }
  }

  /** Gives up waiting for the publish answer after `ms` (then the offer is made again). @param {number} ms */
  expireAnswerWait(ms) {
    clearTimeout(this.answerTimer);
    this.answerTimer = setTimeout(() => this.answerWaiter?.(false), ms);
  }

  /** @param {string} sdp */
  async applyAnswer(sdp) {
    const pc = this.pcPublish;
    if (!pc || pc.signalingState !== 'have-local-offer') return;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
      this.answerWaiter?.(true);
    } catch (e) {
      this.emit('problem', `publish: ${msg(e)}`);
      this.answerWaiter?.(false);
    }
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
    if (pc === this.pcSubscribe) this.signaling.send({ type: 'answer', sdp: pc.localDescription?.sdp });
  }

  sendMute() {
    this.signaling.send({ type: 'mute', muted: this.muted || this.deafened, deafened: this.deafened });
  }

  /** @param {boolean} muted */
  setMute(muted) {
    this.muted = muted;
    // Undeafening with the mute button pressed keeps the mute; muting while deafened changes nothing heard.
    if (this.mic) this.mic.enabled = !(this.muted || this.deafened);
    this.sendMute();
  }

  /** Deafened: we hear nobody (the caller mutes the audio elements) and, as in Discord, send nothing. @param {boolean} deafened */
  setDeafen(deafened) {
    this.deafened = deafened;
    if (this.mic) this.mic.enabled = !(this.muted || this.deafened);
    this.sendMute();
  }

  /**
   * Puts `track` on the publish slot `slot` (reusing its transceiver, so turning a camera off and on
   * does not grow the SDP), or takes the slot's track off. Re-offers either way.
   * @param {'cameraTx'|'screenTx'} slot @param {MediaStreamTrack|null} track
   */
  async setSlot(slot, track) {
    const pc = this.pcPublish;
    if (!pc) return;
    let tx = this[slot];
    if (track) {
      if (tx && tx.currentDirection !== 'stopped') {
        await tx.sender.replaceTrack(track);
        tx.direction = 'sendonly';
      } else {
        tx = pc.addTransceiver(track, slot === 'cameraTx' ? { direction: 'sendonly', sendEncodings: SIMULCAST } : { direction: 'sendonly' });
        this[slot] = tx;
      }
    } else if (tx) {
      await tx.sender.replaceTrack(null);
      tx.direction = 'inactive';
    }
    this.requestOffer();
  }

  /** Turns the camera (3 simulcast layers) on or off. @param {boolean} on */
  async setCamera(on) {
    if (on === !!this.cameraTrack) return;
    if (on) {
      const insecure = mediaUnavailableReason();
      if (insecure) throw new Error(insecure);
      const track = (await navigator.mediaDevices.getUserMedia(constraints('video'))).getVideoTracks()[0];
      if (this.closed) return track.stop();
      track.contentHint = 'motion';
      this.cameraTrack = track;
      await this.setSlot('cameraTx', track);
    } else {
      this.cameraTrack?.stop();
      this.cameraTrack = null;
      await this.setSlot('cameraTx', null);
    }
    this.emit('local');
  }

  /** Starts or stops the screen share (one layer, up to 15 fps, tuned for detail). @param {boolean} on */
  async setScreen(on) {
    if (on === !!this.screenTrack) return;
    if (on) {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
      const track = stream.getVideoTracks()[0];
      if (this.closed) return track.stop();
      track.contentHint = 'detail';
      // Chrome's own "Stop sharing" bar ends the track.
      track.addEventListener('ended', () => {
        if (this.screenTrack === track) this.setScreen(false);
      });
      this.screenTrack = track;
      await this.setSlot('screenTx', track);
    } else {
      this.screenTrack?.stop();
      this.screenTrack = null;
      await this.setSlot('screenTx', null);
    }
    this.emit('local');
  }

  /**
   * Link quality now: round trip to the SFU (ICE candidate pair of the publish connection, else the
   * signaling ping) and the fraction of incoming packets lost since the previous call.
   * @returns {Promise<{ rttMs: number|null, loss: number|null, frames: Map<string, number> }>}
   */
  async stats() {
    /** @type {number|null} */
    let rttMs = null;
    /** track id → frames (video) received so far, to tell a stalled (turned off) video from a live one */
    const frames = new Map();
    let lost = 0;
    let received = 0;
    try {
      (await this.pcPublish?.getStats())?.forEach((r) => {
        if (r.type === 'candidate-pair' && r.nominated && typeof r.currentRoundTripTime === 'number') rttMs = r.currentRoundTripTime * 1000;
      });
      (await this.pcSubscribe?.getStats())?.forEach((r) => {
        if (r.type !== 'inbound-rtp') return;
        lost += Math.max(0, r.packetsLost ?? 0);
        received += r.packetsReceived ?? 0;
        if (r.kind === 'video' && r.trackIdentifier) frames.set(r.trackIdentifier, r.framesReceived ?? r.framesDecoded ?? 0);
      });
    } catch {
      /* closed meanwhile */
    }
    rttMs ??= this.signaling.rttMs;
    const prev = this.prevCounts ?? { lost: 0, received: 0 };
    this.prevCounts = { lost, received };
    const dl = lost - prev.lost;
    const dr = received - prev.received;
    const loss = dl + dr > 0 ? dl / (dl + dr) : null;
    return { rttMs, loss, frames };
  }

  /** Leaves the room and releases the devices. */
  leave() {
    if (this.closed) return;
    this.closed = true;
    this.signaling.close();
    this.mic?.stop();
    this.cameraTrack?.stop();
    this.screenTrack?.stop();
    this.teardownPeers();
  }
}
