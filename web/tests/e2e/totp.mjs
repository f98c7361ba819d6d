// TOTP codes for the end-to-end tests, as an authenticator app computes them (RFC 6238 with RFC 4226's
// HOTP): HMAC-SHA1 over the 8-byte big-endian counter floor(unix / 30), dynamic truncation, 6 digits.
// Node's crypto only; checked against the RFC's test vectors in tests/unit/totp.test.js.

import { createHmac } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 (case, spaces, dashes and padding ignored) to bytes. @param {string} text */
export function base32Decode(text) {
  const clean = text.toUpperCase().replace(/[\s=-]/g, '');
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) throw new Error(`not base32: ${JSON.stringify(ch)}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** HOTP (RFC 4226) of a counter. @param {Buffer} key @param {number} counter @param {number} [digits] */
export function hotp(key, counter, digits = 6) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 10 ** digits).padStart(digits, '0');
}

/**
 * The code an app shows at `unixSeconds` for a base32 secret.
 * @param {string} secretBase32 @param {number} [unixSeconds] @param {{ digits?: number, step?: number }} [opts]
 */
export function totp(secretBase32, unixSeconds = Date.now() / 1000, { digits = 6, step = 30 } = {}) {
  return hotp(base32Decode(secretBase32), Math.floor(unixSeconds / step), digits);
}

/** Seconds left in the current 30-second window. */
export const secondsLeftInWindow = (unixSeconds = Date.now() / 1000, step = 30) => step - (unixSeconds % step);
