// Remote audio: one hidden <audio autoplay> element per remote audio track, all muted while deafened,
// played through the chosen speakers (setSinkId where the browser has it).

import { DEVICE_KEYS } from './devices.js';

export class RemoteAudio {
  constructor() {
    /** Hidden holder of the audio elements (outside the panel, which re-renders). */
    this.root = document.createElement('div');
    this.root.hidden = true;
    this.root.dataset.testid = 'voice-audio';
    document.body.appendChild(this.root);
    /** track id → element @type {Map<string, HTMLAudioElement>} */
    this.els = new Map();
    this.deafened = false;
  }

  /** @param {string} trackId @param {string} participantId @param {MediaStreamTrack} track */
  add(trackId, participantId, track) {
    this.remove(trackId);
    const a = document.createElement('audio');
    a.autoplay = true;
    a.hidden = true;
    a.muted = this.deafened;
    a.dataset.trackId = trackId;
    a.dataset.participantId = participantId;
    a.srcObject = new MediaStream([track]);
    const sink = localStorage.getItem(DEVICE_KEYS.audiooutput);
    const el = /** @type {any} */ (a);
    if (sink && typeof el.setSinkId === 'function') el.setSinkId(sink).catch(() => {});
    this.root.appendChild(a);
    this.els.set(trackId, a);
    // Autoplay can still be refused (no user gesture yet); the next click anywhere starts it.
    a.play?.().catch(() => document.addEventListener('click', () => a.play().catch(() => {}), { once: true }));
  }

  /** @param {string} trackId */
  remove(trackId) {
    const a = this.els.get(trackId);
    if (!a) return;
    a.srcObject = null;
    a.remove();
    this.els.delete(trackId);
  }

  clear() {
    for (const id of [...this.els.keys()]) this.remove(id);
  }

  /** @param {boolean} deafened */
  setDeafened(deafened) {
    this.deafened = deafened;
    this.els.forEach((a) => (a.muted = deafened));
  }
}
