// Login and registration; on an invite link it shows which server the invite leads to.

import { h, replace } from '../dom.js';

/** @param {HTMLElement} root @param {any} app */
export function mountAuth(root, app) {
  return {
    /** @param {'login'|'register'} mode @param {string|null} invite */
    async show(mode, invite) {
      const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'auth-error' });
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
      const form = h(
        'form',
        { class: 'auth-card', 'data-testid': `${mode}-form` },
        h('h1', null, mode === 'login' ? 'Welcome back!' : 'Create an account'),
        invite ? preview : null,
        h('label', { for: 'auth-username' }, 'Username'),
        username,
        h('label', { for: 'auth-password' }, 'Password'),
        password,
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
        try {
          const path = mode === 'login' ? '/auth/login' : '/auth/register';
          const res = await app.api.request('POST', path, {
            username: /** @type {HTMLInputElement} */ (username).value.trim(),
            password: /** @type {HTMLInputElement} */ (password).value,
          });
          await app.signedIn(res.token);
        } catch (err) {
          const f = /** @type {any} */ (err).fields;
          error.textContent = f ? Object.entries(f).map(([k, v]) => `${k}: ${v}`).join('; ') : /** @type {Error} */ (err).message;
        }
      });
      replace(root, form);
      username.focus();
      if (invite) {
        try {
          const p = await app.api.get(`/invites/${encodeURIComponent(invite)}`);
          preview.textContent = `You've been invited to join ${p.guild_name} (${p.member_count} members).`;
        } catch (e) {
          // The preview needs an account; a visitor learns the server's name after signing up.
          preview.textContent =
            /** @type {any} */ (e).status === 401
              ? "You've been invited to join a server on Chorus. Create an account to accept."
              : 'This invite is invalid or has expired.';
        }
      }
    },
  };
}
