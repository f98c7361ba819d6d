// Device settings: microphone, camera and speakers (kept in localStorage and used at the next join), with
// a live input level meter (AudioContext + AnalyserNode), a camera preview and a speaker test tone.
// Everything it opens stops when the settings pane leaves the page (or when the returned stop() is called).

import { h, replace } from '../dom.js';

export const DEVICE_KEYS = { audioinput: 'chorus.mic', videoinput: 'chorus.cam', audiooutput: 'chorus.speaker' };

/** @param {string} key */
const stored = (key) => {
  try {
    return globalThis.localStorage?.getItem(key) ?? null;
  } catch {
    return null;
  }
};

/**
 * Why the browser cannot open a microphone or camera here, or null when it can: browsers offer media
 * devices only on secure pages (https, or localhost), so a server reached over plain http on a real
 * address gets `navigator.mediaDevices === undefined` and nothing else to go on.
 * @returns {string|null}
 */
export function mediaUnavailableReason() {
  if (globalThis.navigator?.mediaDevices?.getUserMedia) return null;
  const where = globalThis.location?.origin ?? 'this address';
  return `Microphone and camera are off because ${where} is not a secure (https) page. ` +
    'Ask the server operator to serve Chorus over HTTPS (built-in TLS or a reverse proxy, see docs/operations.md).';
}

/**
 * getUserMedia constraints honouring the chosen devices (`ideal`, so a device that went away falls back
 * to the default instead of failing).
 * @param {'audio'|'video'} kind
 * @returns {MediaStreamConstraints}
 */
export function constraints(kind) {
  const id = stored(kind === 'audio' ? DEVICE_KEYS.audioinput : DEVICE_KEYS.videoinput);
  const deviceId = id ? { ideal: id } : undefined;
  if (kind === 'audio') return { audio: { deviceId, echoCancellation: true, noiseSuppression: true, autoGainControl: true } };
  return { video: { deviceId, width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } };
}

/** RMS of a block of samples scaled to 0..1 for a meter (speech peaks near 1). @param {Float32Array} buf */
export function levelOf(buf) {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
  return Math.min(1, Math.sqrt(sum / (buf.length || 1)) * 4);
}

/** @param {HTMLElement} container @returns {{ stop(): void }} */
export function mountDeviceSettings(container) {
  const meter = /** @type {HTMLMeterElement} */ (h('meter', { id: 'dev-level', min: 0, max: 1, low: 0.25, high: 0.8, optimum: 0.5, value: 0, 'data-testid': 'input-level' }));
  const preview = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsinline: true, class: 'preview', 'aria-label': 'Camera preview', 'data-testid': 'camera-preview' }));
  preview.muted = true;
  const note = h('p', { class: 'muted small', role: 'status' });
  /** @type {Record<string, HTMLSelectElement>} */
  const selects = {};
  /** @type {MediaStream[]} */
  let streams = [];
  let raf = 0;
  /** @type {AudioContext|null} */
  let ctx = null;
  let stopped = false;

  const release = () => {
    cancelAnimationFrame(raf);
    streams.forEach((s) => s.getTracks().forEach((t) => t.stop()));
    streams = [];
    ctx?.close().catch(() => {});
    ctx = null;
  };
  const stop = () => {
    stopped = true;
    release();
    navigator.mediaDevices?.removeEventListener?.('devicechange', fill);
  };

  /** @param {'audioinput'|'videoinput'|'audiooutput'} kind @param {string} label */
  const picker = (kind, label) => {
    const sel = /** @type {HTMLSelectElement} */ (h('select', { id: `dev-${kind}`, 'data-testid': `device-${kind}` }));
    selects[kind] = sel;
    sel.onchange = () => {
      if (sel.value) localStorage.setItem(DEVICE_KEYS[kind], sel.value);
      else localStorage.removeItem(DEVICE_KEYS[kind]);
      note.textContent = 'Saved. Used the next time you join a voice channel.';
      if (kind !== 'audiooutput') start();
    };
    return h('div', { class: 'device-row' }, h('label', { for: `dev-${kind}` }, label), sel);
  };

  const canPickSpeaker = typeof (/** @type {any} */ (HTMLMediaElement.prototype).setSinkId) === 'function';
  const testButton = h('button', { type: 'button', 'data-testid': 'test-speakers', onclick: () => testTone() }, 'Play test sound');

  replace(
    container,
    picker('audioinput', 'Microphone'),
    h('div', { class: 'device-row' }, h('label', { for: 'dev-level' }, 'Input level'), meter),
    picker('videoinput', 'Camera'),
    preview,
    picker('audiooutput', 'Speakers'),
    canPickSpeaker ? null : h('p', { class: 'muted small' }, 'This browser always plays through the system default output.'),
    testButton,
    note,
  );

  /** Fills the pickers (labels are only known once a device was allowed, so after start()). */
  async function fill() {
    /** @type {MediaDeviceInfo[]} */
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      /* none */
    }
    for (const [kind, sel] of Object.entries(selects)) {
      const key = /** @type {keyof typeof DEVICE_KEYS} */ (kind);
      const list = devices.filter((d) => d.kind === kind && d.deviceId && d.deviceId !== 'default');
      replace(sel, h('option', { value: '' }, 'Default'), list.map((d, i) => h('option', { value: d.deviceId }, d.label || `${kind === 'audioinput' ? 'Microphone' : kind === 'videoinput' ? 'Camera' : 'Speakers'} ${i + 1}`)));
      const want = stored(DEVICE_KEYS[key]) ?? '';
      sel.value = list.some((d) => d.deviceId === want) ? want : '';
      sel.disabled = kind === 'audiooutput' && !canPickSpeaker;
    }
  }

  async function start() {
    release();
    try {
      const a = await navigator.mediaDevices.getUserMedia(constraints('audio'));
      if (stopped) return a.getTracks().forEach((t) => t.stop());
      streams.push(a);
      ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 1024;
      ctx.createMediaStreamSource(a).connect(analyser);
      const buf = new Float32Array(analyser.fftSize);
      const tick = () => {
        if (!container.isConnected) return stop();
        analyser.getFloatTimeDomainData(buf);
        meter.value = levelOf(buf);
        raf = requestAnimationFrame(tick);
      };
      tick();
    } catch (e) {
      meter.value = 0;
      note.textContent = `Microphone unavailable: ${/** @type {any} */ (e)?.message ?? e}`;
    }
    try {
      const v = await navigator.mediaDevices.getUserMedia(constraints('video'));
      if (stopped) return v.getTracks().forEach((t) => t.stop());
      streams.push(v);
      preview.srcObject = v;
    } catch {
      preview.srcObject = null;
    }
  }

  /** A short tone through the chosen speakers. */
  async function testTone() {
    const a = new AudioContext();
    const sink = stored(DEVICE_KEYS.audiooutput);
    const any = /** @type {any} */ (a);
    if (sink && typeof any.setSinkId === 'function') await any.setSinkId(sink).catch(() => {});
    const osc = a.createOscillator();
    const gain = a.createGain();
    gain.gain.value = 0.1;
    osc.frequency.value = 440;
    osc.connect(gain).connect(a.destination);
    osc.start();
    osc.stop(a.currentTime + 0.4);
    osc.onended = () => a.close();
  }

  navigator.mediaDevices?.addEventListener?.('devicechange', fill);
  start().then(fill);
  return { stop };
}
