// The end-to-end tests' TOTP helper against RFC 6238's and RFC 4226's own test vectors: if it is wrong,
// the e2e failures would point at the server for nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base32Decode, hotp, totp } from '../e2e/totp.mjs';

// RFC 6238 appendix B's SHA-1 key: the ASCII "12345678901234567890", here in base32.
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

test('base32 decodes RFC 4648 text, ignoring case, spaces, dashes and padding', () => {
  assert.equal(base32Decode(RFC_SECRET).toString('ascii'), '12345678901234567890');
  assert.equal(base32Decode('gezd gnbv-gy3t qojq gezd gnbv gy3t qojq').toString('ascii'), '12345678901234567890');
  assert.equal(base32Decode('MZXW6YQ=').toString('ascii'), 'foob');
  assert.equal(base32Decode('MZXW6YTBOI======').toString('ascii'), 'foobar');
  assert.throws(() => base32Decode('ABC1'), /not base32/);
});

test('HOTP matches RFC 4226 appendix D', () => {
  const key = Buffer.from('12345678901234567890');
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  expected.forEach((code, counter) => assert.equal(hotp(key, counter), code));
});

test('TOTP matches RFC 6238 appendix B (SHA-1), 8 digits and the 6 an app shows', () => {
  const vectors = [
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ];
  for (const [t, code] of vectors) {
    assert.equal(totp(RFC_SECRET, /** @type {number} */ (t), { digits: 8 }), code, `T=${t}`);
    assert.equal(totp(RFC_SECRET, /** @type {number} */ (t)), /** @type {string} */ (code).slice(2), `T=${t}, 6 digits`);
  }
});
