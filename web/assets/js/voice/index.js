// The voice controller the app uses: join a channel, leave, mute/deafen, camera and screen share; it
// owns the voice session, the panel, the video grid and the remote audio elements.

import { VoiceSession } from './session.js';
import { VideoGrid } from './grid.js';
import { renderPanel } from './panel.js';
import { DEVICE_KEYS } from './devices.js';

export { mountDeviceSettings } from './devices.js';

/** @param {{ api: any, store: any, gateway: any, els: { panel: HTMLElement, grid: HTMLElement } }} ctx */
export function mountVoice({ api, store, els }) {
  /** @type {VoiceSession|null} */
  let session = null;
  let channelId = /** @type {string|null} */ (null);
  let ping = /** @type {number|null} */ (null);
  let problem = /** @type {string|null} */ (null);
  const speaking = new Set();
  /** @type {Set<() => void>} */
  const listeners = new Set();
  /** track id → audio element */
  const audios = new Map();
  const nameOf = (/** @type {string} */ userId) => {
    const u = store.state.users.get(userId);
    return u?.display_name || u?.username || 'someone';
  };
  const grid = new VideoGrid(els.grid, (m) => session?.send(m), nameOf);
  const changed = () => {
    listeners.forEach((l) => l());
    panel();
  };

  const userOf = (/** @type {string} */ pid) => session?.participants.get(pid)?.user_id;

  function panel() {
    if (!session || !channelId) {
      els.panel.hidden = true;
      return;
    }
    const s = session;
    renderPanel(
      els.panel,
      {
        channelName: store.state.channels.get(channelId)?.name ?? '',
        state: s.state,
        ping,
        muted: s.muted,
        deafened: s.deafened,
        camera: !!s.camera,
        screen: !!s.screen,
        problem,
      },
      { mute: ctl.toggleMute, deafen: ctl.toggleDeafen, camera: ctl.toggleCamera, screen: ctl.toggleScreen, leave: ctl.leave },
    );
  }

  const grant = async (/** @type {string} */ cid) => api.request('POST', `/channels/${cid}/voice`, {});

  const ctl = {
    get channelId() {
      return channelId;
    },
    async join(/** @type {string} */ guildId, /** @type {string} */ cid) {
      if (channelId === cid && session) return;
      ctl.leave();
      channelId = cid;
      problem = null;
      try {
        const g = await grant(cid);
        const s = new VoiceSession({ endpoint: g.endpoint, token: g.token, channelId: cid, regrant: () => grant(cid) });
        session = s;
        /** @type {any} */ (window).__chorusVoice = s;
        s.addEventListener('state', changed);
        s.addEventListener('participants', changed);
        s.addEventListener('problem', (e) => {
          problem = /** @type {CustomEvent} */ (e).detail;
          changed();
        });
        s.addEventListener('speaking', (e) => {
          const d = /** @type {CustomEvent} */ (e).detail;
          const uid = userOf(d.participant_id) ?? (d.participant_id === s.participantId ? store.state.me?.id : null);
          if (!uid) return;
          if (d.speaking) speaking.add(uid);
          else speaking.delete(uid);
          changed();
        });
        s.addEventListener('left', (e) => {
          grid.removeParticipant(/** @type {CustomEvent} */ (e).detail);
          changed();
        });
        s.addEventListener('unpublished', (e) => {
          const id = /** @type {CustomEvent} */ (e).detail;
          grid.remove(id);
          audios.get(id)?.remove();
          audios.delete(id);
        });
        s.addEventListener('track', (e) => {
          const { track, trackId, participantId } = /** @type {CustomEvent} */ (e).detail;
          if (!trackId) return;
          const p = s.participants.get(participantId);
          if (track.kind === 'audio') {
            const a = /** @type {HTMLAudioElement} */ (document.createElement('audio'));
            a.autoplay = true;
            a.muted = s.deafened;
            a.dataset.trackId = trackId;
            a.srcObject = new MediaStream([track]);
            const sink = localStorage.getItem(DEVICE_KEYS.audiooutput);
            if (sink && /** @type {any} */ (a).setSinkId) /** @type {any} */ (a).setSinkId(sink).catch(() => {});
            document.body.appendChild(a);
            audios.get(trackId)?.remove();
            audios.set(trackId, a);
          } else {
            const published = p?.tracks.find((t) => t.track_id === trackId);
            grid.add({ track, trackId, participantId, userId: p?.user_id ?? '', screen: published ? !published.simulcast : false });
          }
        });
        await s.start();
        pingLoop(s);
        changed();
      } catch (e) {
        problem = /** @type {Error} */ (e).message ?? String(e);
        session = null;
        channelId = null;
        changed();
        alert(`Could not join voice: ${problem}`);
      }
    },
    leave() {
      if (!session) return;
      session.leave();
      session = null;
      channelId = null;
      speaking.clear();
      audios.forEach((a) => a.remove());
      audios.clear();
      grid.clear();
      changed();
    },
    toggleMute() {
      session?.setMute(!session.muted);
      changed();
    },
    toggleDeafen() {
      if (!session) return;
      session.setDeafen(!session.deafened);
      audios.forEach((a) => (a.muted = /** @type {VoiceSession} */ (session).deafened));
      changed();
    },
    async toggleCamera() {
      if (!session) return;
      try {
        const track = await session.toggleCamera();
        if (track) grid.add({ track, trackId: 'local-camera', participantId: session.participantId ?? '', userId: store.state.me?.id ?? '', screen: false, local: true });
        else grid.remove('local-camera');
      } catch (e) {
        problem = `Camera: ${/** @type {Error} */ (e).message}`;
      }
      changed();
    },
    async toggleScreen() {
      if (!session) return;
      try {
        const track = await session.toggleScreen();
        if (track) grid.add({ track, trackId: 'local-screen', participantId: session.participantId ?? '', userId: store.state.me?.id ?? '', screen: true, local: true });
        else grid.remove('local-screen');
      } catch (e) {
        problem = `Screen share: ${/** @type {Error} */ (e).message}`;
      }
      changed();
    },
    speakingUserIds: () => speaking,
    /** @param {() => void} cb */
    onChange(cb) {
      listeners.add(cb);
    },
  };

  async function pingLoop(/** @type {VoiceSession} */ s) {
    while (session === s) {
      try {
        ping = await s.ping();
      } catch {
        ping = null;
      }
      panel();
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  document.addEventListener('keydown', (e) => {
    if (!e.ctrlKey || !e.shiftKey) return;
    if (e.key === 'M' || e.key === 'm') {
      e.preventDefault();
      ctl.toggleMute();
    } else if (e.key === 'D' || e.key === 'd') {
      e.preventDefault();
      ctl.toggleDeafen();
    }
  });
  window.addEventListener('beforeunload', () => session?.leave());
  return ctl;
}
