// What to tell the user when the server refuses an account action (log in, the second factor, turning
// 2FA on or off, a new username, deleting the account): the contract's error code in words fit for the
// form it appears next to. Pure. Unknown codes fall back to the server's own message.

/**
 * @typedef {'login'|'mfa-login'|'mfa-enable'|'mfa-disable'|'username'|'delete'} AccountAction
 * @typedef {{ code?: string, message?: string, status?: number, fields?: Record<string,string>, retryAfter?: number|null }} ErrorLike
 */

/** "in 12 seconds" / "in a minute": how long a rate limit lasts. @param {number|null|undefined} secs */
export function waitPhrase(secs) {
  const s = Math.ceil(Number(secs) || 0);
  if (s <= 0) return 'in a minute';
  if (s === 1) return 'in 1 second';
  return s < 90 ? `in ${s} seconds` : `in ${Math.ceil(s / 60)} minutes`;
}

/** Validation fields as one line: "username: too short". @param {Record<string,string>} fields */
function fieldsText(fields) {
  return Object.entries(fields)
    .map(([k, v]) => (k === 'username' ? `Username: ${v}` : k === 'password' ? `Password: ${v}` : `${k}: ${v}`))
    .join('; ');
}

/**
 * @param {ErrorLike|Error|null|undefined} err
 * @param {AccountAction} action
 * @param {{ codeGiven?: boolean }} [ctx] codeGiven: whether the form sent a second-factor code
 * @returns {string}
 */
export function accountErrorMessage(err, action, ctx = {}) {
  const e = /** @type {ErrorLike} */ (err ?? {});
  switch (e.code) {
    case 'invalid_credentials':
      return action === 'login' ? 'Wrong username or password.' : 'That password is not right.';
    case 'invalid_mfa_code':
      if (action === 'mfa-enable') return "That code doesn't match. Enter the code your app shows now (check that the device's clock is right).";
      if (action === 'delete' && !ctx.codeGiven) return 'Two-factor authentication is on: enter a code from your app or a recovery code.';
      return 'That code is not valid. Enter the current code from your app, or a recovery code you have not used.';
    case 'invalid_ticket':
      return 'The sign-in took too long. Enter your password again.';
    case 'mfa_enabled':
      return 'Two-factor authentication is already on for this account.';
    case 'mfa_not_enabled':
      return 'Two-factor authentication is already off for this account.';
    case 'rate_limited':
      return `Too many attempts. Try again ${waitPhrase(e.retryAfter)}.`;
    case 'username_taken':
      return 'That username is taken. Try another one.';
    case 'owns_guilds':
      return 'You own servers: transfer or delete the servers you own first, then delete your account.';
    case 'account_disabled':
      return 'This account is disabled.';
    case 'network':
      return 'The server cannot be reached. Check your connection and try again.';
    case 'validation_failed':
      if (e.fields && Object.keys(e.fields).length) return fieldsText(e.fields);
      break;
    default:
      if (e.fields && Object.keys(e.fields).length) return fieldsText(e.fields);
  }
  return e.message || 'Something went wrong. Try again.';
}
