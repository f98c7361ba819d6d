// End-to-end harness: the real chorus binary on a free port with a fresh data dir, and Debian's Chromium
// driven by playwright-core with fake camera/microphone devices.
//
// Test ids the client exposes (data-testid): auth-submit, auth-error, invite-preview, guild-icon (data-guild-id),
// create-guild, join-guild, prompt-input, prompt-ok, guild-name, invite-button, invite-link,
// guild-settings-button, user-settings-button, text-channel / voice-channel (data-channel-id), voice-user
// (data-user-id, class "speaking"), composer, message (data-message-id), message-content, edited, reaction
// (data-emoji), react-button, reply-button, edit-button, edit-box, delete-button, member (data-user-id),
// voice-mute, voice-deafen, voice-camera, voice-screen, voice-leave, voice-state, video-tile (data-kind,
// data-track-id, data-user-id, data-local; aria-pressed: focused, by a click), tab-<name> (spaces as dashes: tab-audit-log), display-name,
// save-profile, logout.
// Moderation: member-menu-button (the "…" of a member row or voice user row, only when the viewer may
// moderate), member-menu (data-user-id), menu-server-mute, menu-server-deafen, menu-move, menu-move-target
// (data-channel-id), menu-disconnect, voice-server-muted / voice-server-deafened (icons in a voice user row),
// voice-server-state (the panel's "Server muted by a moderator" line), voice-notice (e.g. "A moderator
// disconnected you from voice"), toast, slow-mode (the composer's indicator; data-exempt, data-remaining;
// class blocked / refused), slow-mode-select (data-channel-id, in Channels settings), audit-entry
// (data-action, data-entry-id), audit-sentence, audit-action-filter, audit-user-filter, audit-load-more.
// Attachments: attach-button, attach-input (the hidden <input type=file multiple>), pending-file (a chip;
// data-name) with pending-file-name, pending-file-size and pending-file-remove, attach-error (files refused
// in the client), upload-status (data-phase: uploading, processing, failed, cancelled) with upload-text,
// upload-progress (a <progress>), upload-cancel, upload-dismiss and upload-error (the server's refusal in
// words), attachments (under a message), attachment-image (an <img>; data-attachment-id), attachment-file
// (a card) with attachment-download (the <a download>) and attachment-size.
// Account security: login-form, auth-notice (e.g. "Your account was deleted."; auth-error carries the
// error code in data-code), the login's code step mfa-form with mfa-code, mfa-hint, mfa-submit, mfa-error
// (data-code) and mfa-back; in the Security tab (tab-security): mfa-section (data-state off, setup, on)
// with mfa-status, mfa-setup, mfa-qr (an <img>), mfa-secret, mfa-secret-copy, mfa-enable-code,
// mfa-enable-password, mfa-enable, mfa-cancel, recovery-box with recovery-codes (a list), recovery-copy
// and recovery-done, mfa-disable-password, mfa-disable-code, mfa-disable; username-section with
// current-username, username-input, username-password, username-save; delete-section with delete-account,
// delete-password, delete-code, delete-confirm, delete-cancel. Each section shows security-error (data-code)
// and security-status.
// Link previews: embed (a card under a message; data-url: the link) with embed-site, embed-title (the <a>),
// embed-description and embed-image (an <img>, only ever from /api/v1/link-previews/image?…).

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {any} */ (s.address());
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

/** Starts chorus; resolves once /healthz answers. */
export async function startServer(extraArgs = []) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'chorus-e2e-'));
  const udpBase = 20000 + Math.floor(Math.random() * 2400) * 16;
  const bin = process.env.CHORUS_BIN || join(repo, 'target/debug/chorus');
  // ICE-TCP listens on one fixed port by default: off here unless a test names a port of its own.
  const tcpOff = extraArgs.includes('--rtc-tcp-port') ? [] : ['--rtc-tcp-port', '0'];
  const child = spawn(bin, ['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--udp-port-base', String(udpBase), '--sfu-workers', '1', ...tcpOff, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CHORUS_LOG: process.env.CHORUS_LOG ?? 'warn' },
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      /* not up yet */
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`chorus did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    dataDir,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs a `chorus` subcommand against a server's data dir (e.g. `admin invite create`); resolves to its stdout. */
export function chorusCommand(server, args) {
  const bin = process.env.CHORUS_BIN || join(repo, 'target/debug/chorus');
  return new Promise((res, rej) => {
    const child = spawn(bin, [...args, '--data-dir', server.dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? res(out) : rej(new Error(`chorus ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/** Headless Chromium with fake media devices. @param {string[]} [extraArgs] */
export function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--auto-select-desktop-capture-source=Entire screen', '--autoplay-policy=no-user-gesture-required',
      ...extraArgs,
    ],
  });
}

/** A browser context as one user sees it: 1280×720, camera and microphone allowed. */
export async function newContext(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  await ctx.grantPermissions(['microphone', 'camera']);
  return ctx;
}

/** Collects uncaught page errors and Content-Security-Policy violations, so a test can assert there were none. */
export function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  return errors;
}

/** Registers through the client's own form (the page must show it). */
export async function registerInUi(page, username, password = 'correct horse battery') {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByTestId('auth-submit').click();
  await page.getByTestId('me-name').filter({ hasText: username }).waitFor();
}

/**
 * Alice registers at `origin`, creates guild `name` and invites Bob, who registers from the invite link.
 * `open` navigates (a test on a new network may retry it).
 */
export async function aliceInvitesBob(alice, bob, origin, name, open = (page, url) => page.goto(url)) {
  await open(alice, `${origin}/register`);
  await registerInUi(alice, 'alice');
  await alice.getByTestId('create-guild').click();
  await alice.getByTestId('prompt-input').fill(name);
  await alice.getByTestId('prompt-ok').click();
  await alice.getByTestId('guild-name').filter({ hasText: name }).waitFor();
  await alice.getByTestId('invite-button').click();
  const link = await alice.getByTestId('invite-link').inputValue();
  await alice.keyboard.press('Escape');
  await open(bob, link);
  await registerInUi(bob, 'bob');
  await bob.getByTestId('guild-name').filter({ hasText: name }).waitFor();
}

/** Saves a PNG under target/screenshots (or CHORUS_SCREENSHOT_DIR) and returns its path. */
export async function screenshot(page, name) {
  const dir = process.env.CHORUS_SCREENSHOT_DIR || join(repo, 'target/screenshots');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** Waits until `fn` (run in the page) returns a truthy value; returns it. */
export async function until(page, fn, arg, timeout = 20_000) {
  const h = await page.waitForFunction(fn, arg, { timeout, polling: 200 });
  return h.jsonValue();
}
