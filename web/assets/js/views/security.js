// The Security tab of the user settings: two-factor authentication (set up with a QR code or the secret,
// confirmed with a code from the app and the password; ten recovery codes shown once; turned off with
// the password and a code), a new username (the password confirms it), and deleting the account.
//
// The server does not say whether 2FA is on: the tab starts from this browser's hint (mfa.js) and
// follows what the server answers (409 mfa_enabled: on; 400 mfa_not_enabled: off). Every refusal is
// shown next to its form (data-testid security-error), in words from account-errors.js.

import { h, replace } from '../dom.js';
import { accountErrorMessage } from '../account-errors.js';
import { groupSecret, isTotpCode, normalizeCode, qrImageSrc, readMfaHint, writeMfaHint } from '../mfa.js';
import { NOTICE_KEY } from './auth.js';

/** @typedef {import('../account-errors.js').AccountAction} AccountAction */

const storage = () => globalThis.localStorage;

/** A labelled input; returns [label, input]. @param {string} id @param {string} label @param {Record<string, any>} attrs */
function field(id, label, attrs) {
  const input = /** @type {HTMLInputElement} */ (h('input', { id, 'data-testid': id, ...attrs }));
  return /** @type {[HTMLElement, HTMLInputElement]} */ ([h('label', { for: id }, label), input]);
}

const passwordField = (/** @type {string} */ id, label = 'Your password') =>
  field(id, label, { type: 'password', autocomplete: 'current-password', maxlength: 256 });

const codeField = (/** @type {string} */ id, /** @type {string} */ label, totpOnly = false) =>
  field(id, label, {
    autocomplete: 'one-time-code',
    autocapitalize: 'off',
    spellcheck: 'false',
    inputmode: totpOnly ? 'numeric' : null,
    maxlength: totpOnly ? 12 : 64,
  });

const errorLine = () => h('p', { class: 'form-error', role: 'alert', 'data-testid': 'security-error' });
const statusLine = (text = '') => h('p', { class: 'muted', role: 'status', 'data-testid': 'security-status' }, text);

/**
 * Runs a request for a form: the button is busy meanwhile; a refusal lands in `error` (with its code in
 * data-code). Resolves to the answer, or undefined after a refusal.
 * @template T
 * @param {{ button: HTMLButtonElement, error: HTMLElement, action: AccountAction, codeGiven?: boolean, onError?: (e: any) => boolean|void }} ui
 *   onError: return true when it handled the refusal itself
 * @param {() => Promise<T>} fn
 * @returns {Promise<T|undefined>}
 */
async function submitting(ui, fn) {
  const { button, error } = ui;
  const label = button.textContent;
  error.textContent = '';
  delete error.dataset.code;
  button.disabled = true;
  button.textContent = 'Working…';
  try {
    return await fn();
  } catch (e) {
    const err = /** @type {any} */ (e);
    if (ui.onError?.(err)) return undefined;
    error.dataset.code = err?.code ?? 'error';
    error.textContent = accountErrorMessage(err, ui.action, { codeGiven: ui.codeGiven });
    return undefined;
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

/** A form that calls `onSubmit` (Enter in a field submits too). @param {Record<string, any>} attrs @param {() => void} onSubmit @param {...any} children */
function form(attrs, onSubmit, ...children) {
  const f = h('form', { class: 'security-form', novalidate: true, ...attrs }, ...children);
  f.addEventListener('submit', (e) => {
    e.preventDefault();
    onSubmit();
  });
  return f;
}

/** Copies text; says how it went in `out`. @param {string} text @param {HTMLElement} out @param {string} done */
async function copy(text, out, done) {
  try {
    await navigator.clipboard.writeText(text);
    out.textContent = done;
  } catch {
    out.textContent = 'Copying did not work here: select the text and copy it by hand.';
  }
}

/** @param {HTMLElement} el @param {any} app */
export function renderSecurity(el, app) {
  replace(el, mfaSection(app), usernameSection(app), deleteSection(app));
}

/**
 * @typedef {{ kind: 'off', notice?: string }
 *   | { kind: 'setup', secret: string, qr: string|null }
 *   | { kind: 'on', notice?: string, recoveryCodes?: string[] }} MfaState
 */

/** @param {any} app */
function mfaSection(app) {
  const userId = () => app.store.state.me?.id ?? null;
  const section = h('section', { class: 'security-section', 'data-testid': 'mfa-section', 'aria-labelledby': 'mfa-title' });

  /** @param {MfaState} state */
  const render = (state) => {
    section.dataset.state = state.kind;
    const title = h('h3', { id: 'mfa-title' }, 'Two-factor authentication');
    if (state.kind === 'off') {
      const error = errorLine();
      const setup = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'primary', 'data-testid': 'mfa-setup' }, 'Set up two-factor authentication'));
      setup.addEventListener('click', async () => {
        const res = await submitting({ button: setup, error, action: 'mfa-enable' }, () => app.api.post('/users/@me/mfa/totp/setup'));
        if (res) render({ kind: 'setup', secret: String(res.secret ?? ''), qr: qrImageSrc(res.qr_svg) });
      });
      replace(section, title,
        state.notice ? statusLine(state.notice) : null,
        h('p', { 'data-testid': 'mfa-status' }, 'Two-factor authentication is off.'),
        h('p', { class: 'muted' }, 'With it on, logging in also asks for a 6-digit code from an authenticator app on your phone, so a stolen password is not enough.'),
        setup, error);
      return;
    }
    if (state.kind === 'setup') {
      const error = errorLine();
      const copied = statusLine();
      const [codeLabel, code] = codeField('mfa-enable-code', 'Code from the app', true);
      const [pwLabel, password] = passwordField('mfa-enable-password');
      const enable = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit', class: 'primary', 'data-testid': 'mfa-enable' }, 'Turn on'));
      const submit = async () => {
        if (!isTotpCode(code.value)) {
          error.textContent = 'Enter the 6-digit code the app shows for Chorus.';
          error.dataset.code = 'client';
          code.focus();
          return;
        }
        if (!password.value) {
          error.textContent = 'Enter your password.';
          error.dataset.code = 'client';
          password.focus();
          return;
        }
        const res = await submitting({
          button: enable,
          error,
          action: 'mfa-enable',
          onError: (e) => {
            if (e?.code !== 'mfa_enabled') return false;
            writeMfaHint(storage(), userId(), true);
            render({ kind: 'on', notice: accountErrorMessage(e, 'mfa-enable') });
            return true;
          },
        }, () => app.api.post('/users/@me/mfa/totp/enable', { secret: state.secret, code: normalizeCode(code.value), password: password.value }, { retry: false }));
        if (!res) return;
        writeMfaHint(storage(), userId(), true);
        render({ kind: 'on', recoveryCodes: Array.isArray(res.recovery_codes) ? res.recovery_codes.map(String) : [] });
      };
      replace(section, title,
        form({ 'data-testid': 'mfa-setup-form' }, submit,
          h('ol', { class: 'mfa-steps' },
            h('li', null,
              h('p', null, 'Scan this QR code with an authenticator app (Aegis, Google Authenticator, 1Password, …).'),
              state.qr ? h('img', { class: 'mfa-qr', src: state.qr, width: 200, height: 200, alt: 'QR code to add Chorus to an authenticator app', 'data-testid': 'mfa-qr' }) : null),
            h('li', null,
              h('p', null, "Can't scan it? Enter this key in the app instead:"),
              h('div', { class: 'row' },
                h('code', { class: 'mfa-secret', 'data-testid': 'mfa-secret', 'aria-label': 'Secret key' }, groupSecret(state.secret)),
                h('button', { type: 'button', 'data-testid': 'mfa-secret-copy', onclick: () => copy(state.secret, copied, 'Key copied.') }, 'Copy key')),
              copied),
            h('li', null,
              h('p', null, 'Enter the code the app now shows, and your password.'),
              codeLabel, code, pwLabel, password)),
          error,
          h('div', { class: 'row' }, enable,
            h('button', { type: 'button', 'data-testid': 'mfa-cancel', onclick: () => render({ kind: 'off' }) }, 'Cancel'))));
      code.focus();
      return;
    }
    // On: the recovery codes once, right after enabling; the form that turns 2FA off.
    const error = errorLine();
    const [pwLabel, password] = passwordField('mfa-disable-password');
    const [codeLabel, code] = codeField('mfa-disable-code', 'Code from the app, or a recovery code');
    const disable = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit', class: 'danger', 'data-testid': 'mfa-disable' }, 'Turn off'));
    const submit = async () => {
      const c = normalizeCode(code.value);
      if (!password.value || !c) {
        error.textContent = 'Enter your password and a code from the app (or a recovery code).';
        error.dataset.code = 'client';
        (password.value ? code : password).focus();
        return;
      }
      const done = await submitting({
        button: disable,
        error,
        action: 'mfa-disable',
        codeGiven: true,
        onError: (e) => {
          if (e?.code !== 'mfa_not_enabled') return false;
          writeMfaHint(storage(), userId(), false);
          render({ kind: 'off', notice: accountErrorMessage(e, 'mfa-disable') });
          return true;
        },
      }, async () => (await app.api.post('/users/@me/mfa/totp/disable', { password: password.value, code: c }, { retry: false }), true));
      if (!done) return;
      writeMfaHint(storage(), userId(), false);
      render({ kind: 'off', notice: 'Two-factor authentication is now off.' });
    };
    replace(section, title,
      state.notice ? statusLine(state.notice) : null,
      h('p', { 'data-testid': 'mfa-status' }, h('span', { class: 'mfa-on-dot', 'aria-hidden': 'true' }, '●'), ' Two-factor authentication is on.'),
      state.recoveryCodes?.length ? recoveryBox(state.recoveryCodes, () => render({ kind: 'on' })) : null,
      form({ class: 'security-form', 'data-testid': 'mfa-disable-form', 'aria-label': 'Turn off two-factor authentication' }, submit,
        h('h4', null, 'Turn off two-factor authentication'),
        pwLabel, password, codeLabel, code, error, h('div', { class: 'row' }, disable)));
  };

  render(readMfaHint(storage(), userId()) ? { kind: 'on' } : { kind: 'off' });
  return section;
}

/** The recovery codes, shown once. @param {string[]} codes @param {() => void} onDone */
function recoveryBox(codes, onDone) {
  const copied = statusLine();
  return h('div', { class: 'recovery-box', role: 'group', 'aria-labelledby': 'recovery-title', 'data-testid': 'recovery-box' },
    h('h4', { id: 'recovery-title' }, 'Your recovery codes'),
    h('p', null, h('strong', null, 'Store these codes somewhere safe now (a password manager, or on paper): they are shown only this once.')),
    h('p', { class: 'muted' }, 'If you lose your phone, each code logs you in once in place of a code from the app.'),
    h('ul', { class: 'recovery-codes', 'data-testid': 'recovery-codes' }, codes.map((c) => h('li', null, h('code', null, c)))),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'primary', 'data-testid': 'recovery-copy', onclick: () => copy(codes.join('\n'), copied, 'Recovery codes copied.') }, 'Copy codes'),
      h('button', { type: 'button', 'data-testid': 'recovery-done', onclick: onDone }, "I've stored them")),
    copied);
}

/** @param {any} app */
function usernameSection(app) {
  const me = app.store.state.me;
  const current = h('strong', { 'data-testid': 'current-username' }, me?.username ?? '');
  const [nameLabel, name] = field('username-input', 'New username', { value: me?.username ?? '', autocomplete: 'username', maxlength: 32, spellcheck: 'false', autocapitalize: 'off' });
  const [pwLabel, password] = passwordField('username-password');
  const save = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit', class: 'primary', 'data-testid': 'username-save' }, 'Change username'));
  const error = errorLine();
  const status = statusLine();
  const submit = async () => {
    status.textContent = '';
    const wanted = name.value.trim();
    const client = !wanted ? 'Enter a username.' : wanted === app.store.state.me?.username ? 'That is already your username.' : !password.value ? 'Enter your password.' : '';
    if (client) {
      error.textContent = client;
      error.dataset.code = 'client';
      return;
    }
    const user = await submitting({ button: save, error, action: 'username' }, () => app.api.patch('/users/@me', { username: wanted, password: password.value }));
    if (!user) return;
    app.store.dispatch('USER_UPDATE', user);
    current.textContent = user.username;
    name.value = user.username;
    password.value = '';
    status.textContent = `Your username is now ${user.username}.`;
  };
  return h('section', { class: 'security-section', 'data-testid': 'username-section', 'aria-labelledby': 'username-title' },
    h('h3', { id: 'username-title' }, 'Username'),
    h('p', null, 'You log in as ', current, '. Others see your display name, or your username when you have none.'),
    form({ 'data-testid': 'username-form' }, submit, nameLabel, name, pwLabel, password, error, h('div', { class: 'row' }, save), status));
}

/** @param {any} app */
function deleteSection(app) {
  const section = h('section', { class: 'security-section danger-zone', 'data-testid': 'delete-section', 'aria-labelledby': 'delete-title' });
  const open = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'danger', 'data-testid': 'delete-account', 'aria-expanded': 'false' }, 'Delete account…'));
  const confirmBox = h('div', { class: 'confirm-box', hidden: true });
  open.addEventListener('click', () => {
    const shown = confirmBox.hidden;
    confirmBox.hidden = !shown;
    open.setAttribute('aria-expanded', String(shown));
    if (shown) renderConfirm();
  });

  const renderConfirm = () => {
    const mfaOn = readMfaHint(storage(), app.store.state.me?.id);
    const [pwLabel, password] = passwordField('delete-password');
    const [codeLabel, code] = codeField('delete-code', mfaOn ? 'Code from the app, or a recovery code' : 'Two-factor code (only if two-factor authentication is on)');
    const confirm = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit', class: 'danger solid', 'data-testid': 'delete-confirm' }, 'Delete my account'));
    const error = errorLine();
    const submit = async () => {
      const c = normalizeCode(code.value);
      if (!password.value) {
        error.textContent = 'Enter your password to confirm.';
        error.dataset.code = 'client';
        password.focus();
        return;
      }
      const me = app.store.state.me;
      /** @type {{ password: string, code?: string }} */
      const body = { password: password.value };
      if (c) body.code = c;
      // Set first: the server may end this session (and the gateway sends us to /login) before it answers.
      setNotice('Your account was deleted.');
      const done = await submitting({
        button: confirm,
        error,
        action: 'delete',
        codeGiven: !!c,
        onError: (e) => {
          setNotice(null);
          if (e?.code === 'invalid_mfa_code' && !c) {
            writeMfaHint(storage(), me?.id, true);
            code.focus();
          }
          return false;
        },
      }, async () => (await app.api.request('DELETE', '/users/@me', body, { retry: false }), true));
      if (!done) return;
      writeMfaHint(storage(), me?.id, false);
      app.logout({ remote: false });
    };
    replace(confirmBox,
      form({ 'data-testid': 'delete-form', role: 'group', 'aria-label': 'Confirm account deletion' }, submit,
        h('p', null, h('strong', null, 'This cannot be undone.'), ' Enter your password to delete your account.'),
        pwLabel, password, codeLabel, code, error,
        h('div', { class: 'row' }, confirm,
          h('button', { type: 'button', 'data-testid': 'delete-cancel', onclick: () => {
            confirmBox.hidden = true;
            open.setAttribute('aria-expanded', 'false');
            open.focus();
          } }, 'Cancel'))));
    password.focus();
  };

  replace(section,
    h('h3', { id: 'delete-title' }, 'Delete account'),
    h('p', { class: 'muted' }, 'Your account and your memberships go; your messages stay, shown as from a deleted user. If you own servers, transfer or delete them first.'),
    h('div', { class: 'row' }, open),
    confirmBox);
  return section;
}

/** The next login page's notice. @param {string|null} text */
function setNotice(text) {
  try {
    if (text) sessionStorage.setItem(NOTICE_KEY, text);
    else sessionStorage.removeItem(NOTICE_KEY);
  } catch {
    /* only a notice */
  }
}
