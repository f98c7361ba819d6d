// The operator dashboard: polls /api/v1/admin/stats every second, plots rates and gauges, and lists the
// live rooms with each participant's link quality.

import { createApi } from '../api.js';
import { h, replace } from '../dom.js';
import { Chart } from './chart.js';
import { derive, human } from './rates.js';

const api = createApi();
const status = /** @type {HTMLElement} */ (document.getElementById('admin-status'));
const warningsEl = /** @type {HTMLElement} */ (document.getElementById('admin-warnings'));
const chartsEl = /** @type {HTMLElement} */ (document.getElementById('charts'));
const roomsBody = /** @type {HTMLElement} */ (document.querySelector('#rooms tbody'));

const pct = (/** @type {number} */ v) => `${v.toFixed(1)} %`;
const ms = (/** @type {number} */ v) => `${v.toFixed(v < 10 ? 2 : 0)} ms`;
const bps = (/** @type {number} */ v) => `${human(v)}b/s`;
const n = (/** @type {number} */ v) => human(Math.round(v * 10) / 10);

/** [key in derive()'s result, title, format] */
const CHARTS = /** @type {const} */ ([
  ['participants', 'Participants', n],
  ['rooms', 'Rooms', n],
  ['forwardedPerSec', 'Forwarded packets/s', n],
  ['bitrateOutBps', 'Bitrate out', bps],
  ['bitrateInBps', 'Bitrate in', bps],
  ['nacksPerSec', 'NACKs/s', n],
  ['lossPct', 'Mean loss', pct],
  ['rttMs', 'Mean RTT', ms],
  ['cpuPct', 'CPU (% of a core)', pct],
  ['rssMb', 'Memory (RSS)', (v) => `${v.toFixed(0)} MB`],
  ['gatewayConnections', 'Gateway connections', n],
  ['messagesPerSec', 'Messages/s', n],
  ['storeMeanMs', 'Store latency (mean of ops)', ms],
]);
const charts = new Map(CHARTS.map(([key, title, fmt]) => [key, new Chart(chartsEl, title, fmt, key)]));

const fixed = (/** @type {number|null} */ v, /** @type {(x: number) => string} */ f) => (v === null || v === undefined ? '—' : f(v));

function renderRooms(stats) {
  const rows = stats.rooms.flatMap((room) =>
    room.participants.map((p, i) =>
      h('tr', { 'data-testid': 'participant-row' },
        i === 0 ? h('td', { rowspan: room.participants.length }, room.room_id, h('div', { class: 'muted small' }, `worker ${room.worker}`)) : null,
        h('td', null, p.username ?? p.user_id),
        h('td', null, String(p.published_tracks)),
        h('td', null, fixed(p.rtt_ms, ms)),
        h('td', null, fixed(p.loss_in, (x) => pct(x * 100))),
        h('td', null, fixed(p.loss_out, (x) => pct(x * 100))),
        h('td', null, fixed(p.jitter_ms, ms)),
        h('td', null, fixed(p.bwe_bps, bps)),
        h('td', null, p.subscriptions.map((s) => s.layer ?? '·').join(' ') || '—'),
      ),
    ),
  );
  replace(roomsBody, rows.length ? rows : h('tr', null, h('td', { colspan: 9, class: 'muted' }, 'No voice rooms right now.')));
}

let prev = null;
async function poll() {
  try {
    const stats = await api.get('/admin/stats');
    const d = derive(prev, stats);
    prev = stats;
    for (const [key, chart] of charts) chart.push(/** @type {any} */ (d)[key]);
    renderRooms(stats);
    // Misconfigurations the server found at start (e.g. media advertised on loopback only).
    const warnings = stats.warnings ?? [];
    replace(warningsEl, ...warnings.map((w) => h('li', null, w)));
    warningsEl.hidden = warnings.length === 0;
    status.textContent = `Node ${stats.node_id} · ${stats.store.backend} · registration ${stats.registration ?? 'open'} · up ${human(stats.uptime_secs, 0)} s · updated ${new Date(stats.time).toLocaleTimeString()}`;
    status.className = 'muted';
  } catch (e) {
    const err = /** @type {any} */ (e);
    status.textContent = err.status === 404 ? 'Only instance admins can see this page.' : 'The server cannot be reached; retrying…';
    status.className = 'error';
  }
}
poll();
setInterval(poll, 1000);
