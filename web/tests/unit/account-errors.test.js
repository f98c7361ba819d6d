import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accountErrorMessage, waitPhrase } from '../../assets/js/account-errors.js';
import { ApiError } from '../../assets/js/api.js';

const err = (status, code, message = 'server words', fields = undefined, retryAfter = null) => new ApiError(status, code, message, fields, retryAfter);

test('a wrong password: the login says username or password, a settings form says password', () => {
  const e = err(401, 'invalid_credentials', 'invalid username or password');
  assert.equal(accountErrorMessage(e, 'login'), 'Wrong username or password.');
  for (const action of /** @type {const} */ (['mfa-enable', 'mfa-disable', 'username', 'delete'])) {
    assert.equal(accountErrorMessage(e, action), 'That password is not right.', action);
  }
});

test('a wrong code: enabling points at the app and its clock; elsewhere a recovery code is offered', () => {
  const e = err(400, 'invalid_mfa_code');
  assert.match(accountErrorMessage(e, 'mfa-enable'), /doesn't match.*clock/);
  assert.match(accountErrorMessage(e, 'mfa-login'), /not valid.*recovery code/);
  assert.match(accountErrorMessage(e, 'mfa-disable', { codeGiven: true }), /not valid/);
  // Deleting without a code when 2FA is on: the form asks for one.
  assert.match(accountErrorMessage(e, 'delete', { codeGiven: false }), /^Two-factor authentication is on: enter a code/);
  assert.match(accountErrorMessage(e, 'delete', { codeGiven: true }), /not valid/);
});

test('2FA state conflicts, an expired ticket, a taken username and owned servers', () => {
  assert.equal(accountErrorMessage(err(409, 'mfa_enabled'), 'mfa-enable'), 'Two-factor authentication is already on for this account.');
  assert.equal(accountErrorMessage(err(400, 'mfa_not_enabled'), 'mfa-disable'), 'Two-factor authentication is already off for this account.');
  assert.equal(accountErrorMessage(err(400, 'invalid_ticket'), 'mfa-login'), 'The sign-in took too long. Enter your password again.');
  assert.equal(accountErrorMessage(err(409, 'username_taken'), 'username'), 'That username is taken. Try another one.');
  assert.match(accountErrorMessage(err(400, 'owns_guilds'), 'delete'), /transfer or delete the servers you own first/);
  assert.equal(accountErrorMessage(err(403, 'account_disabled'), 'login'), 'This account is disabled.');
  assert.match(accountErrorMessage(err(0, 'network'), 'mfa-login'), /cannot be reached/);
});

test('rate limits say how long to wait', () => {
  assert.equal(accountErrorMessage(err(429, 'rate_limited', 'x', undefined, 12), 'mfa-login'), 'Too many attempts. Try again in 12 seconds.');
  assert.equal(accountErrorMessage(err(429, 'rate_limited'), 'mfa-enable'), 'Too many attempts. Try again in a minute.');
  assert.equal(waitPhrase(1), 'in 1 second');
  assert.equal(waitPhrase(0.2), 'in 1 second');
  assert.equal(waitPhrase(89), 'in 89 seconds');
  assert.equal(waitPhrase(150), 'in 3 minutes');
  assert.equal(waitPhrase(null), 'in a minute');
});

test('validation errors name their field; unknown codes keep the server message', () => {
  assert.equal(accountErrorMessage(err(400, 'validation_failed', 'invalid request fields', { username: 'must be 2 to 32 characters' }), 'username'), 'Username: must be 2 to 32 characters');
  assert.equal(accountErrorMessage(err(400, 'validation_failed', 'invalid request fields', { secret: 'not a base32 TOTP secret' }), 'mfa-enable'), 'secret: not a base32 TOTP secret');
  assert.equal(accountErrorMessage(err(400, 'validation_failed', 'invalid request fields'), 'username'), 'invalid request fields');
  assert.equal(accountErrorMessage(err(500, 'internal_error', 'internal error'), 'delete'), 'internal error');
  assert.equal(accountErrorMessage(/** @type {any} */ ({}), 'delete'), 'Something went wrong. Try again.');
  assert.equal(accountErrorMessage(null, 'login'), 'Something went wrong. Try again.');
});
