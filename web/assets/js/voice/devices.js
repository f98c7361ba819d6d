// Device settings: microphone, camera and speakers (kept in localStorage, used at the next join), with a
// live input level meter and a camera preview.

import { h, replace } from '../dom.js';

export const DEVICE_KEYS = { audioinput: 'chorus.mic', videoinput: 'chorus.cam', audiooutput: 'chorus.speaker' };

/** getUserMedia constraints honouring the chosen devices. @param {'audio'|'video'} kind */
export function constraints(kind) {
  const id = localStorage.getItem(kind === 'audio' ? DEVICE_KEYS.audioinput : DEVICE_KEYS.videoinput);
  if (kind === 'audio') return { audio: { deviceId: id ? { ideal: id } : undefined, echoCancellation: true, noiseSuppression: true } };
  return { video: { deviceId: id ? { ideal: id } : undefined, width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } };
}

/** @param {HTMLElement} container */
export async function mountDeviceSettings(container) {
  const meter = /** @type {HTMLMeterElement} */ (h('meter', { min: 0, max: 1, value: 0, 'aria-label': 'Input level', 'data-testid': 'input-level' }));
  const preview = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, muted: true, playsinline: true, class: 'preview', 'aria-label': 'Camera preview' }));
  /** @type {MediaStream[]} */
  const streams = [];
  let raf = 0;
  let ctx = /** @type {AudioContext|null} */ (null);
  const stop = () => {
    cancelAnimationFrame(raf);
    streams.forEach((s) => s.getTracks().forEach((t) => t.stop()));
    ctx?.close();
  };
  document.getElementById('modal')?.addEventListener('close', stop, { once: true });

  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    /* no devices */
  }
  const picker = (/** @type {'audioinput'|'videoinput'|'audiooutput'} */ kind, label) => {
    const key = DEVICE_KEYS[kind];
    const sel = /** @type {HTMLSelectElement} */ (h('select', { id: `dev-${kind}`, 'data-testid': `device-${kind}` },
      h('option', { value: '' }, 'Default'),
      devices.filter((d) => d.kind === kind).map((d, i) => h('option', { value: d.deviceId }, d.label || `${label} ${i + 1}`))));
    sel.value = localStorage.getItem(key) ?? '';
    sel.onchange = () => {
      if (sel.value) localStorage.setItem(key, sel.value);
      else localStorage.removeItem(key);
      restart();
    };
    return [h('label', { for: `dev-${kind}` }, label), sel];
  };
  replace(container, picker('audioinput', 'Microphone'), h('div', { class: 'row' }, h('span', null, 'Input level'), meter),
    picker('videoinput', 'Camera'), preview, picker('audiooutput', 'Speakers'));

  async function restart() {
    stop();
    try {
      const a = await navigator.mediaDevices.getUserMedia(constraints('audio'));
      streams.push(a);
      ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 512;
      ctx.createMediaStreamSource(a).connect(analyser);
      const buf = new Float32Array(analyser.fftSize);
      const tick = () => {
        analyser.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const v of buf) sum += v * v;
        meter.value = Math.min(1, Math.sqrt(sum / buf.length) * 4);
        raf = requestAnimationFrame(tick);
      };
      tick();
    } catch {
      meter.value = 0;
    }
    try {
      const v = await navigator.mediaDevices.getUserMedia(constraints('video'));
      streams.push(v);
      preview.srcObject = v;
    } catch {
      /* no camera */
    }
  }
  restart();
}
