// Login and registration; on an invite link it shows which server the invite leads to. The register form
// follows the instance's registration mode (GET /instance): an invite-code field, or a "closed" notice.
// A login of an account with two-factor authentication continues with a code step (views/mfa-login.js).

import { h, replace } from '../dom.js';
import { accountErrorMessage } from '../account-errors.js';
import { writeMfaHint } from '../mfa.js';
import { mfaLoginForm } from './mfa-login.js';

/** A one-time notice for the next login page (e.g. "Your account was deleted."), kept in sessionStorage. */
export const NOTICE_KEY = 'chorus.notice';

/** Takes the pending notice, if any. */
function takeNotice() {
  try {
    const n = sessionStorage.getItem(NOTICE_KEY);
    if (n) sessionStorage.removeItem(NOTICE_KEY);
    return n;
  } catch {
    return null;
  }
}

/** @param {HTMLElement} root @param {any} app */
export function mountAuth(root, app) {
  // Each show() gets a number; one that resolves after a newer one started must not paint over it.
  let shown = 0;
  const view = {
    /**
     * @param {'login'|'register'} mode @param {string|null} invite
     * @param {string} [message] an error to show at once (a second step whose ticket expired)
     */
    async show(mode, invite, message) {
      const turn = ++shown;
      const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'auth-error' }, message ?? '');
      const notice = mode === 'login' ? takeNotice() : null;
      const username = h('input', { id: 'auth-username', name: 'username', autocomplete: 'username', required: true, maxlength: 32 });
      const password = h('input', {
        id: 'auth-password',
        name: 'password',
        type: 'password',
        autocomplete: mode === 'login' ? 'current-password' : 'new-password',
        required: true,
        minlength: 8,
      });
      const preview = h('p', { class: 'invite-preview', 'data-testid': 'invite-preview' });
      const inviteCode = h('input', { id: 'auth-invite-code', name: 'invite_code', autocomplete: 'off', maxlength: 64, 'data-testid': 'auth-invite-code' });
      const registration = mode === 'register' ? await registrationMode(app) : 'open';
      if (turn !== shown) return;
      if (registration === 'closed') {
        replace(
          root,
          h(
            'div',
            { class: 'auth-card', 'data-testid': 'registration-closed' },
            h('h1', null, 'Registration is closed'),
            h('p', null, "This server doesn't take sign-ups. Ask its operator for an account."),
            h('p', { class: 'muted' }, h('a', { href: '/login', onclick: (/** @type {Event} */ e) => {
              e.preventDefault();
              app.navigate('/login');
            } }, 'Log in')),
          ),
        );
        return;
      }
      const form = h(
        'form',
        { class: 'auth-card', 'data-testid': `${mode}-form` },
        h('h1', null, mode === 'login' ? 'Welcome back!' : 'Create an account'),
        notice ? h('p', { class: 'auth-notice', role: 'status', 'data-testid': 'auth-notice' }, notice) : null,
        invite ? preview : null,
        h('label', { for: 'auth-username' }, 'Username'),
        username,
        h('label', { for: 'auth-password' }, 'Password'),
        password,
        registration === 'invite' ? h('label', { for: 'auth-invite-code' }, 'Invite code') : null,
        registration === 'invite' ? inviteCode : null,
        registration === 'invite' ? h('p', { class: 'muted' }, 'This server takes sign-ups by invite code only.') : null,
        error,
        h('button', { type: 'submit', class: 'primary', 'data-testid': 'auth-submit' }, mode === 'login' ? 'Log In' : 'Continue'),
        h(
          'p',
          { class: 'muted' },
          mode === 'login' ? 'Need an account? ' : 'Already have an account? ',
          h('a', { href: mode === 'login' ? '/register' : '/login', 'data-testid': 'auth-switch', onclick: (/** @type {Event} */ e) => {
            e.preventDefault();
            app.navigate(mode === 'login' ? '/register' : '/login');
          } }, mode === 'login' ? 'Register' : 'Log in'),
        ),
      );
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        error.textContent = '';
        delete error.dataset.code;
        try {
          const path = mode === 'login' ? '/auth/login' : '/auth/register';
          /** @type {Record<string, string>} */
          const body = {
            username: /** @type {HTMLInputElement} */ (username).value.trim(),
            password: /** @type {HTMLInputElement} */ (password).value,
          };
          if (registration === 'invite') body.invite_code = /** @type {HTMLInputElement} */ (inviteCode).value.trim();
          const res = await app.api.request('POST', path, body);
          if (mode === 'login' && res?.mfa && res.ticket) {
            // Two-factor authentication: the password was right; a code finishes the login.
            if (turn === shown) showCodeStep(res.ticket, body.username);
            return;
          }
          if (mode === 'login') writeMfaHint(globalThis.localStorage, res?.user?.id, false);
          await app.signedIn(res.token);
        } catch (err) {
          const f = /** @type {any} */ (err).fields;
          error.dataset.code = /** @type {any} */ (err).code ?? 'error';
          error.textContent =
            mode === 'login'
              ? accountErrorMessage(/** @type {any} */ (err), 'login')
              : f ? Object.entries(f).map(([k, v]) => `${k}: ${v}`).join('; ') : /** @type {Error} */ (err).message;
        }
      });
      replace(root, form);
      username.focus();
      if (invite) {
        try {
          const p = await app.api.get(`/invites/${encodeURIComponent(invite)}`);
          const by = p.inviter ? ` by ${p.inviter.display_name || p.inviter.username}` : '';
          preview.textContent = `You've been invited${by} to join ${p.guild_name} (${p.online_count} online, ${p.member_count} members).`;
        } catch (e) {
          // An older server answered 401 to visitors: say what can be said.
          preview.textContent =
            /** @type {any} */ (e).status === 401
              ? "You've been invited to join a server on Chorus. Create an account to accept."
              : 'This invite is invalid or has expired.';
        }
      }
    },
  };

  /** The code step after a password step that answered a ticket. @param {string} mfaTicket @param {string} username */
  function showCodeStep(mfaTicket, username) {
    shown++;
    const step = mfaLoginForm(app, {
      ticket: mfaTicket,
      username,
      onBack: (message) => view.show('login', null, message),
    });
    replace(root, step.form);
    step.focus();
  }

  return view;
}

/** The instance's registration mode; 'open' when the server does not say (an older server). @param {any} app */
async function registrationMode(app) {
  try {
    const info = await app.api.get('/instance');
    return ['open', 'invite', 'closed'].includes(info.registration) ? info.registration : 'open';
  } catch {
    return 'open';
  }
}
