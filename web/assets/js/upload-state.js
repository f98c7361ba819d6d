// One upload's life, as the composer shows it. Pure: events in, state out.
//
//   idle ──start──▶ uploading ──progress──▶ uploading ──sent──▶ processing ──done──▶ idle
//                       │                        │                  │
//                       └──────── cancel ────────┴──── error ───────┴──▶ cancelled / failed ──reset──▶ idle
//
// `sent` means every byte left the browser and the server is still storing them (images are checked and
// thumbnailed); a cancel then is still possible (the request is aborted; the nonce makes an unchanged
// retry safe if the server did finish). Events that come after the end (a late progress after a cancel)
// change nothing.

import { humanSize } from './attachments.js';

/**
 * @typedef {{ phase: 'idle' }
 *   | { phase: 'uploading' | 'processing', files: number, loaded: number, total: number, label: string }
 *   | { phase: 'failed', files: number, error: string, label: string }
 *   | { phase: 'cancelled', files: number, label: string }} UploadState
 * @typedef {{ type: 'start', files: number, total: number, label?: string }
 *   | { type: 'progress', loaded: number, total?: number }
 *   | { type: 'sent' } | { type: 'done' } | { type: 'error', error: string } | { type: 'cancel' } | { type: 'reset' }} UploadEvent
 */

/** @type {UploadState} */
export const IDLE = Object.freeze({ phase: 'idle' });

/** Whether an upload is under way (a second one waits). @param {UploadState} s */
export const active = (s) => s.phase === 'uploading' || s.phase === 'processing';

/**
 * @param {UploadState} s @param {UploadEvent} e
 * @returns {UploadState}
 */
export function uploadReducer(s, e) {
  switch (e.type) {
    case 'start':
      if (active(s)) return s;
      return { phase: 'uploading', files: e.files, loaded: 0, total: Math.max(0, e.total), label: e.label ?? '' };
    case 'progress': {
      if (s.phase !== 'uploading') return s;
      const total = e.total && e.total > 0 ? e.total : s.total;
      // Progress never goes back (the browser's total may include the multipart framing).
      return { ...s, total, loaded: Math.min(total || Infinity, Math.max(s.loaded, e.loaded)) };
    }
    case 'sent':
      if (s.phase !== 'uploading') return s;
      return { ...s, phase: 'processing', loaded: s.total };
    case 'done':
      return active(s) ? IDLE : s;
    case 'error':
      if (!active(s)) return s;
      return { phase: 'failed', files: s.files, error: e.error, label: s.label };
    case 'cancel':
      if (!active(s)) return s;
      return { phase: 'cancelled', files: s.files, label: s.label };
    case 'reset':
      return IDLE;
    default:
      return s;
  }
}

/**
 * What the composer shows for an upload: a progress bar (value/max), a line of text, and whether the
 * cancel button is offered.
 * @param {UploadState} s
 * @returns {{ visible: boolean, value: number, max: number, percent: number, text: string, cancellable: boolean, error: string|null }}
 */
export function uploadView(s) {
  if (s.phase === 'idle') return { visible: false, value: 0, max: 1, percent: 0, text: '', cancellable: false, error: null };
  const what = `${s.files} ${s.files === 1 ? 'file' : 'files'}${s.label ? ` to ${s.label}` : ''}`;
  if (s.phase === 'failed') return { visible: true, value: 0, max: 1, percent: 0, text: `Upload of ${what} failed.`, cancellable: false, error: s.error };
  if (s.phase === 'cancelled') return { visible: true, value: 0, max: 1, percent: 0, text: `Upload of ${what} cancelled.`, cancellable: false, error: null };
  const max = Math.max(1, s.total);
  const value = Math.min(max, s.loaded);
  const percent = Math.floor((value / max) * 100);
  const text =
    s.phase === 'processing'
      ? `Uploading ${what}: processing…`
      : `Uploading ${what}: ${percent}% (${humanSize(value)} of ${humanSize(s.total)})`;
  return { visible: true, value, max, percent, text, cancellable: true, error: null };
}
