// The voice controller the app uses: join a voice channel, leave, mute/deafen, camera and screen share.
// It ties together the session (signaling + peer connections), the panel, the video grid and the remote
// audio elements, and tells the app (onChange) when who is here / who speaks / mute state changed.
//
// For tests and debugging, while in a call `window.__chorusVoice` is the VoiceSession
// (`pcPublish`, `pcSubscribe`: RTCPeerConnection for getStats; `participants`: Map participant id →
// {user_id, tracks, muted, deafened}; `signaling.ws`: the /voice socket; `signaling.drop()`: drop it as
// a network failure would) plus `tileRequests`: the last `subscribe` messages the grid sent.
//
// Moderation: a `moved` message makes the session rejoin the new channel (a fresh grant for it); an
// `error` `disconnected` ends the call with "A moderator disconnected you from voice" and no rejoin.

// The call's modules (session, signaling, grid, panel…) load on the first join, not with the page.

export { mountDeviceSettings } from './devices.js';

/**
 * @typedef {import('./session.js').VoiceSession} VoiceSession
 * @typedef {import('./grid.js').VideoGrid} VideoGrid
 * @typedef {import('./panel.js').VoicePanel} VoicePanel
 * @typedef {import('./audio.js').RemoteAudio} RemoteAudio
 */

/** @type {Promise<{ VoiceSession: typeof import('./session.js').VoiceSession, VideoGrid: typeof import('./grid.js').VideoGrid, VoicePanel: typeof import('./panel.js').VoicePanel, RemoteAudio: typeof import('./audio.js').RemoteAudio, videoKind: typeof import('./roster.js').videoKind }>|null} */
let modules = null;
function loadModules() {
  modules ??= Promise.all([import('./session.js'), import('./grid.js'), import('./panel.js'), import('./audio.js'), import('./roster.js')]).then(
    ([session, grid, panel, audio, roster]) => ({ VoiceSession: session.VoiceSession, VideoGrid: grid.VideoGrid, VoicePanel: panel.VoicePanel, RemoteAudio: audio.RemoteAudio, videoKind: roster.videoKind }),
  );
  modules.catch(() => (modules = null));
  return modules;
}

/** A remote video with no new frame for this long shows as "video off". */
const STALL_MS = 3000;
const STATS_EVERY_MS = 2000;

/**
 * @param {{ api: { request(method: string, path: string, body?: unknown): Promise<any> }, store: any, gateway?: any,
 *   els: { panel: HTMLElement, grid: HTMLElement } }} ctx
 */
export function mountVoice({ api, store, els }) {
  /** @type {VoiceSession|null} */
  let session = null;
  /** @type {string|null} */
  let channelId = null;
  /** @type {string|null} */
  let problem = null;
  /** @type {{ rttMs: number|null, loss: number|null }} */
  let link = { rttMs: null, loss: null };
  /** @type {Set<() => void>} */
  const listeners = new Set();
  /** remote video track id → { frames, since } for stall detection */
  const progress = new Map();

  const nameOf = (/** @type {string} */ userId) => {
    const u = store.state.users.get(userId);
    return u?.display_name || u?.username || 'Someone';
  };
  const selfUserId = () => store.state.me?.id ?? null;
  /** Built on the first join. @type {{ grid: VideoGrid, audio: RemoteAudio, panel: VoicePanel, videoKind: (t: any) => 'camera'|'screen' }|null} */
  let ui = null;
  /** @type {typeof import('./session.js').VoiceSession|null} */
  let Session = null;

  async function ready() {
    const m = await loadModules();
    Session = m.VoiceSession;
    ui ??= {
      grid: new m.VideoGrid(els.grid, { send: (msg) => session?.signaling.send(msg) ?? false, nameOf }),
      audio: new m.RemoteAudio(),
      panel: new m.VoicePanel(els.panel, {
        mute: () => ctl.toggleMute(),
        deafen: () => ctl.toggleDeafen(),
        camera: () => ctl.toggleCamera(),
        screen: () => ctl.toggleScreen(),
        leave: () => ctl.leave(),
      }),
      videoKind: m.videoKind,
    };
    return ui;
  }

  function render() {
    if (!ui) return;
    const { panel } = ui;
    const s = session;
    if (!s || !channelId) return panel.update(null);
    // The socket's state, refined by ICE: media not flowing yet is still "connecting", and a path that
    // broke (network change) shows the reconnect banner while ICE restarts.
    const iceOf = (/** @type {RTCPeerConnection|null} */ pc) => pc?.iceConnectionState ?? 'new';
    let state = s.state;
    if (state === 'connected' && [iceOf(s.pcPublish), iceOf(s.pcSubscribe)].some((x) => x === 'disconnected' || x === 'failed')) state = 'reconnecting';
    else if (state === 'connected' && !['connected', 'completed'].includes(iceOf(s.pcPublish))) state = 'connecting';
    const server = serverState();
    applyDeafen();
    panel.update({
      channelName: store.state.channels.get(channelId)?.name ?? '',
      state,
      rttMs: link.rttMs,
      loss: link.loss,
      muted: s.muted || s.deafened,
      deafened: s.deafened,
      serverMuted: server.muted,
      serverDeafened: server.deafened,
      camera: !!s.cameraTrack,
      screen: !!s.screenTrack,
      problem,
    });
  }

  /**
   * What a moderator imposed on us: from our voice state (gateway) or the SFU's `mute` message about us,
   * whichever says so first. The SFU enforces it (our audio is not forwarded; deafened, nothing reaches
   * us); the client shows it and, deafened, also silences what is still playing.
   */
  function serverState() {
    const gid = channelId ? store.state.channels.get(channelId)?.guild_id : null;
    const me = selfUserId();
    const vs = gid && me ? store.state.voice.get(gid)?.get(me) : null;
    return {
      muted: !!(vs?.server_mute || session?.roster.self.server_muted),
      deafened: !!(vs?.server_deaf || session?.roster.self.server_deafened),
    };
  }

  /** Remote audio is silent while we are deafened, by ourselves or by a moderator. */
  function applyDeafen() {
    if (!ui) return;
    const deaf = !!session && (session.deafened || serverState().deafened);
    if (ui.audio.deafened !== deaf) ui.audio.setDeafened(deaf);
  }

  function changed() {
    if (session && ui) ui.grid.setSpeaking(session.roster.speaking);
    render();
    listeners.forEach((l) => {
      try {
        l();
      } catch (e) {
        console.error(e);
      }
    });
  }

  /** A voice grant for a channel (the session asks for the one it is moving to after a move). @param {string} [cid] */
  const grant = (cid) => api.request('POST', `/channels/${cid ?? channelId}/voice`, {});

  /** @param {VoiceSession} s @param {NonNullable<typeof ui>} u */
  function wire(s, { grid, audio, videoKind }) {
    const live = (/** @type {() => void} */ fn) => () => session === s && fn();
    s.addEventListener('state', live(changed));
    s.addEventListener('ice', live(render));
    s.addEventListener('roster', live(() => {
      // A track's kind may only become known now (track_published after the media line).
      for (const [id, t] of grid.tiles) {
        const info = s.roster.track(id);
        if (info && !t.spec.local) grid.update(id, { kind: videoKind(info), userId: s.roster.userOf(info.participant_id) ?? t.spec.userId });
      }
      changed();
    }));
    s.addEventListener('problem', (e) => {
      if (session !== s) return;
      problem = /** @type {CustomEvent} */ (e).detail;
      render();
    });
    s.addEventListener('fatal', (e) => {
      if (session !== s) return;
      const why = /** @type {CustomEvent} */ (e).detail;
      ctl.leave();
      // A moderator's disconnect is final: no rejoin, just say who did it.
      alertProblem(why?.code === 'disconnected' ? 'A moderator disconnected you from voice' : `Disconnected from voice: ${why?.code}: ${why?.message}`);
    });
    s.addEventListener('moved', (e) => {
      if (session !== s) return;
      // The session rejoins the new channel by itself; the panel and the sidebar follow.
      channelId = /** @type {CustomEvent} */ (e).detail;
      problem = null;
      changed();
    });
    s.addEventListener('reset', live(() => {
      grid.clearRemote();
      audio.clear();
      progress.clear();
    }));
    s.addEventListener('resumed', live(() => grid.requests.flush(true)));
    s.addEventListener('trackgone', (e) => {
      const id = /** @type {CustomEvent} */ (e).detail;
      grid.remove(id);
      audio.remove(id);
      progress.delete(id);
    });
    s.addEventListener('local', live(() => {
      if (s.cameraTrack) {
        if (grid.tiles.get('local-camera')?.spec.track !== s.cameraTrack)
          grid.add({ track: s.cameraTrack, trackId: 'local-camera', participantId: s.participantId ?? '', userId: selfUserId() ?? '', kind: 'camera', local: true });
      } else grid.remove('local-camera');
      if (s.screenTrack) {
        if (grid.tiles.get('local-screen')?.spec.track !== s.screenTrack)
          grid.add({ track: s.screenTrack, trackId: 'local-screen', participantId: s.participantId ?? '', userId: selfUserId() ?? '', kind: 'screen', local: true });
      } else grid.remove('local-screen');
      render();
    }));
    s.addEventListener('track', (e) => {
      if (session !== s) return;
      const { track, trackId, participantId } = /** @type {CustomEvent} */ (e).detail;
      if (track.kind === 'audio') {
        audio.add(trackId, participantId, track);
        return;
      }
      const info = s.roster.track(trackId);
      grid.add({ track, trackId, participantId, userId: s.roster.userOf(participantId) ?? '', kind: videoKind(info) });
      progress.set(trackId, { frames: -1, since: Date.now() });
    });
  }

  /** A non-blocking notice in the panel's place (the panel hides when not in a call). @param {string} text */
  function alertProblem(text) {
    const note = document.createElement('p');
    note.className = 'voice-notice error small';
    note.setAttribute('role', 'alert');
    note.dataset.testid = 'voice-notice';
    note.textContent = text;
    els.panel.after(note);
    setTimeout(() => note.remove(), 8000);
  }

  /** Ping, loss and stalled videos, every 2 s while in a call. @param {VoiceSession} s */
  async function statsLoop(s) {
    const grid = /** @type {NonNullable<typeof ui>} */ (ui).grid;
    while (session === s) {
      const st = await s.stats();
      if (session !== s) return;
      link = { rttMs: st.rttMs, loss: st.loss };
      const now = Date.now();
      const stalled = new Set();
      for (const [id, t] of grid.tiles) {
        if (t.spec.local) continue;
        const p = progress.get(id) ?? { frames: -1, since: now };
        const frames = st.frames.get(t.spec.track.id) ?? 0;
        if (frames !== p.frames) progress.set(id, { frames, since: now });
        else if (now - p.since > STALL_MS && !grid.requests.tracks.get(id)?.last?.paused) stalled.add(id);
      }
      grid.setStalled(stalled);
      render();
      await new Promise((r) => setTimeout(r, STATS_EVERY_MS));
    }
  }

  const ctl = {
    /** The voice channel we are in (or joining), else null. */
    get channelId() {
      return channelId;
    },
    /** Joins a voice channel (leaving the current one first). @param {string} _guildId @param {string} cid */
    async join(_guildId, cid) {
      if (channelId === cid && session) return;
      ctl.leave();
      channelId = cid;
      problem = null;
      link = { rttMs: null, loss: null };
      let u;
      try {
        u = await ready();
      } catch (e) {
        if (channelId === cid && !session) channelId = null;
        alertProblem(`Could not load the voice client: ${/** @type {any} */ (e)?.message ?? e}`);
        return;
      }
      if (channelId !== cid || session) return; // left or switched meanwhile
      const s = new /** @type {NonNullable<typeof Session>} */ (Session)({ grant, channelId: cid });
      session = s;
      /** @type {any} */ (window).__chorusVoice = s;
      /** @type {any} */ (s).tileRequests = u.grid.requests.sent;
      wire(s, u);
      u.grid.show();
      changed();
      try {
        await s.start();
        statsLoop(s);
      } catch (e) {
        if (session !== s) return;
        const why = /** @type {any} */ (e)?.message ?? String(e);
        ctl.leave();
        alertProblem(`Could not join voice: ${why}`);
      }
      changed();
    },
    leave() {
      if (!session) {
        channelId = null; // a join still loading its modules gives up
        return;
      }
      session.leave();
      session = null;
      channelId = null;
      problem = null;
      /** @type {any} */ (window).__chorusVoice = null;
      ui?.audio.clear();
      ui?.grid.clear();
      progress.clear();
      changed();
    },
    toggleMute() {
      if (!session) return;
      // Unmuting while deafened undeafens too (as in Discord).
      if (session.deafened) {
        session.setDeafen(false);
        applyDeafen();
        session.setMute(false);
      } else session.setMute(!session.muted);
      changed();
    },
    toggleDeafen() {
      if (!session) return;
      session.setDeafen(!session.deafened);
      applyDeafen();
      changed();
    },
    async toggleCamera() {
      if (!session) return;
      const s = session;
      try {
        await s.setCamera(!s.cameraTrack);
        problem = null;
      } catch (e) {
        problem = `Camera: ${/** @type {any} */ (e)?.message ?? e}`;
      }
      render();
    },
    async toggleScreen() {
      if (!session) return;
      const s = session;
      try {
        await s.setScreen(!s.screenTrack);
        problem = null;
      } catch (e) {
        // Cancelling the browser's picker is not an error worth showing.
        if (/** @type {any} */ (e)?.name !== 'NotAllowedError') problem = `Screen share: ${/** @type {any} */ (e)?.message ?? e}`;
      }
      render();
    },
    /** User ids speaking now (including ours). */
    speakingUserIds() {
      return session ? session.roster.speakingUserIds(selfUserId()) : new Set();
    },
    /** @param {() => void} cb called when participants, speaking or mute state change */
    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
  };

  document.addEventListener('keydown', (e) => {
    if (!e.ctrlKey || !e.shiftKey || e.altKey || e.metaKey || !session) return;
    const k = e.key.toLowerCase();
    if (k === 'm') {
      e.preventDefault();
      ctl.toggleMute();
    } else if (k === 'd') {
      e.preventDefault();
      ctl.toggleDeafen();
    }
  });
  window.addEventListener('pagehide', () => session?.leave());
  // Our server mute / deafen arrives as a voice state.
  store.subscribe?.((/** @type {any} */ _s, /** @type {string} */ what) => {
    if (session && (what === 'VOICE_STATE_UPDATE' || what === 'GUILD_MEMBER_UPDATE')) render();
  });
  return ctl;
}
