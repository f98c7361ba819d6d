// The call-quality test bed: links shaped with `tc` on the veth pair of netns.mjs, a realistic camera and
// microphone for Chromium (files made with Debian's ffmpeg), and what a receiving browser measures
// (getStats) next to what the SFU says it forwards (admin stats).
//
// Shaping: the rate is a `tbf` on the sending veth end, whose short queue (100 ms) drops what does not fit,
// as a home router's does, instead of buffering seconds of video. Random loss is an nftables rule
// (`numgen random`) in the same namespace. This kernel has no `sch_netem`, so delay and jitter are not
// shaped here (see docs/benchmarks.md).

import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './netns.mjs';

/**
 * Shapes what leaves `dev` in namespace `ns` (replacing any earlier shape); `{}` removes the shape.
 * @param {{ rateKbit?: number, lossPct?: number }} link
 */
export function shape(ns, dev, link) {
  const inNs = (cmd, args, input) => run('ip', ['netns', 'exec', ns, cmd, ...args], input);
  for (const undo of [() => inNs('tc', ['qdisc', 'del', 'dev', dev, 'root']), () => inNs('nft', ['delete', 'table', 'inet', 'shape'])]) {
    try {
      undo();
    } catch {
      /* not shaped yet */
    }
  }
  const { rateKbit, lossPct } = link;
  if (rateKbit) {
    // A queue of 100 ms at the rate, bursts of ~10 ms (at least two full packets).
    const burst = Math.max(3_000, Math.round((rateKbit * 1000) / 8 / 100));
    inNs('tc', ['qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${rateKbit}kbit`, 'burst', String(burst), 'latency', '100ms']);
  }
  if (lossPct) {
    const perMille = Math.round(lossPct * 10);
    inNs('nft', ['-f', '-'], `table inet shape {\n chain out {\n  type filter hook output priority 0; policy accept;\n  oifname "${dev}" numgen random mod 1000 < ${perMille} drop\n }\n}\n`);
  }
}

/**
 * A 1280×720 30 fps camera (moving test pattern with grain, so VP8 needs realistic bitrates) and speech-like
 * audio (a voiced tone with formants in syllables and pauses), made once per machine with ffmpeg.
 * Returns Chromium's arguments that use them.
 */
export function fakeCapture() {
  const dir = join(tmpdir(), 'chorus-callbed-media-v1');
  mkdirSync(dir, { recursive: true });
  const video = join(dir, 'camera-1280x720-30.y4m');
  const audio = join(dir, 'speech-48k.wav');
  const make = (path, args) => {
    if (existsSync(path)) return;
    const partial = `${path}.partial.${process.pid}`;
    run('ffmpeg', ['-v', 'error', '-y', ...args, '-f', path.endsWith('.y4m') ? 'yuv4mpegpipe' : 'wav', partial]);
    renameSync(partial, path);
  };
  make(video, [
    '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30,noise=alls=10:allf=t', '-t', '3', '-pix_fmt', 'yuv420p',
  ]);
  // 130 Hz voice with harmonics, shaped into ~4 syllables a second, 2.5 s of talk then 0.5 s of pause.
  const voice = '(0.5*sin(2*PI*130*t)+0.3*sin(2*PI*260*t)+0.2*sin(2*PI*390*t)+0.15*sin(2*PI*700*t)+0.1*sin(2*PI*1100*t))';
  make(audio, [
    '-f', 'lavfi', '-i', `aevalsrc='0.6*${voice}*abs(sin(2*PI*2*t))*lt(mod(t\\,3)\\,2.5)':s=48000:d=6`, '-ac', '1',
    '-c:a', 'pcm_s16le',
  ]);
  return [`--use-file-for-fake-video-capture=${video}`, `--use-file-for-fake-audio-capture=${audio}`];
}

/**
 * What a receiving page measures now, summed over its subscribe connection: the largest inbound video
 * (size, fps, freezes, drops, NACK/PLI sent, jitter buffer) and the audio's concealment.
 */
export const receiverStats = (page) =>
  page.evaluate(async () => {
    const v = /** @type {any} */ (window).__chorusVoice;
    if (!v?.pcSubscribe) return null;
    const out = {
      at: performance.now(), width: 0, height: 0, fps: 0, framesDecoded: 0, freezeCount: 0, freezeSeconds: 0,
      framesDropped: 0, nackCount: 0, pliCount: 0, jitterBufferDelay: 0, jitterBufferEmitted: 0, videoBytes: 0,
      concealedSamples: 0, totalSamples: 0, audioBytes: 0,
    };
    (await v.pcSubscribe.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      if (r.kind === 'video') {
        if ((r.frameWidth ?? 0) >= out.width) {
          out.width = r.frameWidth ?? 0;
          out.height = r.frameHeight ?? 0;
          out.fps = r.framesPerSecond ?? 0;
        }
        out.framesDecoded += r.framesDecoded ?? 0;
        out.freezeCount += r.freezeCount ?? 0;
        out.freezeSeconds += r.totalFreezesDuration ?? 0;
        out.framesDropped += r.framesDropped ?? 0;
        out.nackCount += r.nackCount ?? 0;
        out.pliCount += r.pliCount ?? 0;
        out.jitterBufferDelay += r.jitterBufferDelay ?? 0;
        out.jitterBufferEmitted += r.jitterBufferEmittedCount ?? 0;
        out.videoBytes += r.bytesReceived ?? 0;
      } else {
        out.concealedSamples += r.concealedSamples ?? 0;
        out.totalSamples += r.totalSamplesReceived ?? 0;
        out.audioBytes += r.bytesReceived ?? 0;
      }
    });
    return out;
  });

/** What changed between two `receiverStats` samples: rates, freezes and concealment over that span. */
export function between(a, b) {
  const seconds = (b.at - a.at) / 1000;
  const samples = b.totalSamples - a.totalSamples;
  return {
    seconds,
    freezes: b.freezeCount - a.freezeCount,
    freezeSeconds: b.freezeSeconds - a.freezeSeconds,
    framesDecoded: b.framesDecoded - a.framesDecoded,
    videoKbit: Math.round(((b.videoBytes - a.videoBytes) * 8) / 1000 / seconds),
    audioKbit: Math.round(((b.audioBytes - a.audioBytes) * 8) / 1000 / seconds),
    concealment: samples > 0 ? (b.concealedSamples - a.concealedSamples) / samples : 0,
    nacks: b.nackCount - a.nackCount,
    plis: b.pliCount - a.pliCount,
  };
}

/**
 * What the SFU does for `userId`'s subscription to `trackId` now — the layer it forwards (`null`: none) and
 * the user's estimate — or `null` when there is no such subscription; read from /api/v1/admin/stats through
 * `adminPage` (a page signed in as the instance's admin).
 */
export const forwardedLayer = (adminPage, userId, trackId) =>
  adminPage.evaluate(
    async ([uid, tid]) => {
      const r = await fetch('/api/v1/admin/stats', { headers: { Authorization: `Bearer ${localStorage.getItem('chorus.token')}` } });
      const stats = await r.json();
      for (const room of stats.rooms ?? []) {
        for (const p of room.participants) {
          const sub = p.user_id === uid ? p.subscriptions.find((s) => s.track_id === tid) : undefined;
          if (sub) return { layer: sub.layer, bwe: p.bwe_bps ?? null };
        }
      }
      return null;
    },
    [userId, trackId],
  );

/** Widths of the web client's simulcast layers. */
export const WIDTH = { q: 320, h: 640, f: 1280 };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every 250 ms until it returns true; resolves the milliseconds it took, or null at the deadline. */
export async function within(ms, fn) {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await fn()) return Date.now() - start;
    await sleep(250);
  }
  return null;
}

/** A page in a new context of `browser` with `viewport`, allowed the microphone and camera. */
export async function openPage(browser, viewport) {
  const ctx = await browser.newContext({ viewport });
  await ctx.grantPermissions(['microphone', 'camera']);
  return ctx.newPage();
}

/** Each page joins the voice channel "General" and waits until it is connected. */
export async function joinVoice(pages) {
  for (const page of pages) {
    await page.getByTestId('voice-channel').filter({ hasText: 'General' }).click();
    await page.getByTestId('voice-state').filter({ hasText: 'Voice Connected' }).waitFor({ timeout: 40_000 });
  }
}

/** The id of the user signed in on `page`. */
export const userId = (page) =>
  page.evaluate(async () => (await (await fetch('/api/v1/users/@me', { headers: { Authorization: `Bearer ${localStorage.getItem('chorus.token')}` } })).json()).id);
