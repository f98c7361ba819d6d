// Two-factor authentication in the client: what a typed code becomes before it is sent, whether the QR
// image the server sent may be shown, and this browser's hint of whether an account has 2FA on. Pure
// (storage is passed in).
//
// - A TOTP code is six digits; authenticator apps show it as "123 456" and people paste "123-456", so a
//   code that is six digits once spaces and dashes are dropped goes out as the six digits.
// - Anything else is taken for a recovery code (like "k3f9-x2mq") and goes out as typed, only trimmed:
//   the server decides what a recovery code is.
// - The server has no "is 2FA on?" field; the client remembers what it saw (a login that needed a code,
//   an enable, a disable, a 409 mfa_enabled) per user id, as a hint only.

/** Digits in a TOTP code (RFC 6238 as authenticator apps use it). */
export const TOTP_DIGITS = 6;

/** What a login page or a form does with a typed code. @typedef {'empty'|'totp'|'recovery'} CodeKind */

/** @param {string|null|undefined} input @returns {CodeKind} */
export function codeKind(input) {
  const s = String(input ?? '').trim();
  if (!s) return 'empty';
  return new RegExp(`^\\d{${TOTP_DIGITS}}$`).test(s.replace(/[\s-]/g, '')) ? 'totp' : 'recovery';
}

/**
 * The code to send: the six digits of a TOTP code, a recovery code as typed (trimmed), '' for nothing.
 * @param {string|null|undefined} input
 */
export function normalizeCode(input) {
  const s = String(input ?? '').trim();
  return codeKind(s) === 'totp' ? s.replace(/[\s-]/g, '') : s;
}

/** Whether the input is a TOTP code (enabling 2FA takes only a code from the app). @param {string|null|undefined} input */
export const isTotpCode = (input) => codeKind(input) === 'totp';

/** The only kind of QR image shown: an SVG data URL (an <img> cannot run script from it). */
const QR_PREFIX = 'data:image/svg+xml;base64,';

/** The QR code's data URL when it is the expected kind, else null (then only the secret is shown). @param {unknown} url */
export function qrImageSrc(url) {
  return typeof url === 'string' && url.startsWith(QR_PREFIX) && /^[A-Za-z0-9+/]+=*$/.test(url.slice(QR_PREFIX.length)) ? url : null;
}

/** A base32 secret in groups of four, easier to type into an app by hand. @param {string} secret */
export function groupSecret(secret) {
  return (String(secret ?? '').replace(/\s+/g, '').match(/.{1,4}/g) ?? []).join(' ');
}

/** The localStorage key of a user's 2FA hint. @param {string} userId */
export const mfaHintKey = (userId) => `chorus.mfa.${userId}`;

/** Whether this browser last saw 2FA on for the user (a hint, not the truth). @param {Pick<Storage,'getItem'>|null|undefined} storage @param {string|null|undefined} userId */
export function readMfaHint(storage, userId) {
  if (!userId || !storage) return false;
  try {
    return storage.getItem(mfaHintKey(userId)) === 'on';
  } catch {
    return false;
  }
}

/** Records what was seen. @param {Pick<Storage,'setItem'|'removeItem'>|null|undefined} storage @param {string|null|undefined} userId @param {boolean} on */
export function writeMfaHint(storage, userId, on) {
  if (!userId || !storage) return;
  try {
    if (on) storage.setItem(mfaHintKey(userId), 'on');
    else storage.removeItem(mfaHintKey(userId));
  } catch {
    /* storage full or blocked: it is only a hint */
  }
}
