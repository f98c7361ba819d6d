// The login's second step for an account with two-factor authentication: a code from the app (or a
// recovery code) and the password step's ticket are traded for a session (POST /auth/mfa/totp, no
// bearer). A ticket lasts five minutes: an expired one sends the user back to the password step.

import { h } from '../dom.js';
import { normalizeCode, writeMfaHint } from '../mfa.js';
import { accountErrorMessage } from '../account-errors.js';

/**
 * @param {any} app
 * @param {{ ticket: string, username: string, onBack: (message?: string) => void }} opts
 *   onBack: show the password step again, with a message when the ticket expired
 * @returns {{ form: HTMLElement, focus: () => void }}
 */
export function mfaLoginForm(app, { ticket, username, onBack }) {
  const error = h('p', { id: 'mfa-error', class: 'form-error', role: 'alert', 'data-testid': 'mfa-error' });
  const input = /** @type {HTMLInputElement} */ (
    h('input', {
      id: 'mfa-code',
      name: 'code',
      autocomplete: 'one-time-code',
      autocapitalize: 'off',
      spellcheck: 'false',
      required: true,
      maxlength: 64,
      'data-testid': 'mfa-code',
      'aria-describedby': 'mfa-hint mfa-error',
    })
  );
  const submit = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit', class: 'primary', 'data-testid': 'mfa-submit' }, 'Log In'));
  const form = h(
    'form',
    { class: 'auth-card', 'data-testid': 'mfa-form' },
    h('h1', null, 'Two-factor authentication'),
    h('p', { class: 'muted' }, 'Signing in as ', h('strong', null, username), '.'),
    h('label', { for: 'mfa-code' }, 'Authentication code'),
    input,
    h(
      'p',
      { id: 'mfa-hint', class: 'muted small', 'data-testid': 'mfa-hint' },
      'Enter the 6-digit code from your authenticator app. Lost your device? One of your recovery codes works too.',
    ),
    error,
    submit,
    h(
      'p',
      { class: 'muted' },
      h('a', { href: '/login', 'data-testid': 'mfa-back', onclick: (/** @type {Event} */ e) => {
        e.preventDefault();
        onBack();
      } }, 'Back to the password step'),
    ),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    const code = normalizeCode(input.value);
    error.textContent = '';
    delete error.dataset.code;
    if (!code) {
      error.textContent = 'Enter the code from your app, or a recovery code.';
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Checking…';
    try {
      const res = await app.api.request('POST', '/auth/mfa/totp', { ticket, code }, { retry: false });
      writeMfaHint(globalThis.localStorage, res?.user?.id, true);
      await app.signedIn(res.token);
    } catch (err) {
      const e2 = /** @type {any} */ (err);
      if (e2?.code === 'invalid_ticket') {
        onBack(accountErrorMessage(e2, 'mfa-login'));
        return;
      }
      error.dataset.code = e2?.code ?? 'error';
      error.textContent = accountErrorMessage(e2, 'mfa-login');
      input.select();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log In';
    }
  });
  return { form, focus: () => input.focus() };
}
