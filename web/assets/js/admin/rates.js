// Pure: turns two consecutive /api/v1/admin/stats snapshots into what the dashboard plots.

/** Per-second rate of a cumulative counter; a reset (restart) counts from zero. */
export function rate(prev, cur, seconds) {
  if (!(seconds > 0) || cur == null) return 0;
  const delta = prev == null || cur < prev ? cur : cur - prev;
  return delta / seconds;
}

/** Mean of the values that are numbers; null when there are none. */
export function mean(values) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/**
 * The plotted series for one interval.
 * @param {any|null} prev @param {any} cur
 */
export function derive(prev, cur) {
  const secs = prev ? (Date.parse(cur.time) - Date.parse(prev.time)) / 1000 : 0;
  const r = (/** @type {(s: any) => number} */ get) => (prev ? rate(get(prev), get(cur), secs) : 0);
  const participants = cur.rooms.flatMap((room) => room.participants);
  const storeMs = {};
  for (const op of cur.store.ops) {
    const before = prev?.store.ops.find((o) => o.op === op.op);
    const n = op.count - (before && op.count >= before.count ? before.count : 0);
    const s = op.sum_seconds - (before && op.count >= before.count ? before.sum_seconds : 0);
    if (n > 0) storeMs[op.op] = (s / n) * 1000;
  }
  return {
    participants: cur.sfu.participants,
    rooms: cur.sfu.rooms,
    forwardedPerSec: r((s) => s.sfu.forwarded_total),
    bitrateInBps: r((s) => s.sfu.bytes_in_total) * 8,
    bitrateOutBps: r((s) => s.sfu.bytes_out_total) * 8,
    nacksPerSec: r((s) => s.sfu.nacks_total),
    lossPct: (mean(participants.flatMap((p) => [p.loss_in, p.loss_out])) ?? 0) * 100,
    rttMs: mean(participants.map((p) => p.rtt_ms)) ?? 0,
    cpuPct: r((s) => s.process.cpu_seconds_total) * 100,
    rssMb: cur.process.resident_memory_bytes / 1e6,
    gatewayConnections: cur.gateway.connections,
    messagesPerSec: r((s) => s.chat.messages_total),
    storeMs,
    storeMeanMs: mean(Object.values(storeMs)) ?? 0,
  };
}

/** Human units: 1.5k, 2.3M. */
export function human(v, digits = 1) {
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(digits)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(digits)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(digits)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}
