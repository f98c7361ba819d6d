import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeKind, normalizeCode, isTotpCode, qrImageSrc, groupSecret, mfaHintKey, readMfaHint, writeMfaHint } from '../../assets/js/mfa.js';

const memory = () => {
  const m = new Map();
  return { m, getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
};

test('a TOTP code goes out as its six digits, however it was typed or pasted', () => {
  assert.equal(normalizeCode('123456'), '123456');
  assert.equal(normalizeCode(' 123 456 '), '123456', 'as apps show it');
  assert.equal(normalizeCode('123-456'), '123456');
  assert.equal(normalizeCode('\t012345\n'), '012345', 'a leading zero stays');
  assert.equal(normalizeCode('1 2 3 4 5 6'), '123456');
  assert.equal(codeKind('123 456'), 'totp');
  assert.ok(isTotpCode('654 321'));
});

test('anything else is a recovery code and goes out as typed, only trimmed', () => {
  assert.equal(normalizeCode('k3f9-x2mq'), 'k3f9-x2mq');
  assert.equal(normalizeCode('  K3F9-X2MQ '), 'K3F9-X2MQ', 'case is the server’s business');
  assert.equal(normalizeCode('k3f9 x2mq'), 'k3f9 x2mq');
  assert.equal(codeKind('k3f9-x2mq'), 'recovery');
  // Digits, but not six of them: not a TOTP code (an all-digit recovery code stays as typed).
  assert.equal(normalizeCode('2345-6789'), '2345-6789');
  assert.equal(codeKind('12345'), 'recovery');
  assert.equal(codeKind('1234567'), 'recovery');
  assert.equal(isTotpCode('12345a'), false);
  assert.equal(isTotpCode('１２３４５６'), false, 'full-width digits are not sent as a TOTP code');
});

test('nothing typed is empty', () => {
  for (const v of ['', '   ', null, undefined]) {
    assert.equal(codeKind(v), 'empty');
    assert.equal(normalizeCode(v), '');
  }
  assert.equal(isTotpCode(''), false);
});

test('only a base64 SVG data URL is shown as the QR image', () => {
  const ok = 'data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=';
  assert.equal(qrImageSrc(ok), ok);
  assert.equal(qrImageSrc('data:image/svg+xml,<svg onload=alert(1)>'), null, 'not base64');
  assert.equal(qrImageSrc('https://evil.example/qr.svg'), null);
  assert.equal(qrImageSrc('javascript:alert(1)'), null);
  assert.equal(qrImageSrc('data:text/html;base64,PGgxPg=='), null);
  assert.equal(qrImageSrc('data:image/svg+xml;base64,PHN2Zz4=" onerror="x'), null);
  assert.equal(qrImageSrc(undefined), null);
  assert.equal(qrImageSrc(42), null);
});

test('the secret is shown in groups of four', () => {
  assert.equal(groupSecret('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP'), 'JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP');
  assert.equal(groupSecret('ABCDEF'), 'ABCD EF');
  assert.equal(groupSecret(' AB CD '), 'ABCD');
  assert.equal(groupSecret(''), '');
});

test('the 2FA hint is kept per user id and is off unless recorded', () => {
  const s = memory();
  assert.equal(readMfaHint(s, '1'), false);
  writeMfaHint(s, '1', true);
  assert.equal(s.m.get(mfaHintKey('1')), 'on');
  assert.equal(readMfaHint(s, '1'), true);
  assert.equal(readMfaHint(s, '2'), false, 'another user on the same browser');
  writeMfaHint(s, '1', false);
  assert.equal(readMfaHint(s, '1'), false);
  assert.equal(s.m.size, 0, 'off leaves nothing behind');
});

test('the hint never throws: no user, no storage, or a storage that refuses', () => {
  assert.equal(readMfaHint(memory(), null), false);
  assert.equal(readMfaHint(null, '1'), false);
  writeMfaHint(null, '1', true);
  writeMfaHint(memory(), undefined, true);
  const broken = {
    getItem() { throw new Error('SecurityError'); },
    setItem() { throw new Error('QuotaExceededError'); },
    removeItem() { throw new Error('SecurityError'); },
  };
  assert.equal(readMfaHint(broken, '1'), false);
  assert.doesNotThrow(() => writeMfaHint(broken, '1', true));
  assert.doesNotThrow(() => writeMfaHint(broken, '1', false));
});
