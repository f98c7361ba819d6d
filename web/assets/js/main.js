// Wiring: the API client, the gateway, the store, the router and the views.

import { createApi, TOKEN_KEY } from './api.js';
import { GatewayClient } from './gateway.js';
import { createStore } from './store.js';
import { mountAuth } from './views/auth.js';
import { mountRail } from './views/rail.js';
import { mountSidebar } from './views/sidebar.js';
import { mountMessages } from './views/messages.js';
import { mountComposer } from './views/composer.js';
import { mountMembers } from './views/members.js';
import { mountBanner } from './views/banner.js';
import { mountVoice } from './voice/index.js';

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const api = createApi();
const store = createStore();

/** The app context every view receives. */
const app = {
  api,
  store,
  /** @type {GatewayClient|null} */ gateway: null,
  /** @type {any} */ voice: null,
  /** Navigates inside the client without reloading. @param {string} path */
  navigate(path, replaceState = false) {
    if (location.pathname !== path) history[replaceState ? 'replaceState' : 'pushState']({}, '', path);
    route();
  },
  /** Opens a guild's channel (the first text channel if none is given). */
  open(guildId, channelId) {
    const chans = [...store.state.channels.values()].filter((c) => c.guild_id === guildId);
    const target = channelId ?? chans.filter((c) => c.kind === 'text').sort((a, b) => a.position - b.position)[0]?.id;
    app.navigate(`/channels/${guildId}/${target ?? ''}`.replace(/\/$/, ''));
  },
  async signedIn(token) {
    api.setToken(token);
    // The dashboard page is a navigation without an Authorization header: it is authorised by this cookie.
    document.cookie = `chorus_token=${encodeURIComponent(token)}; Path=/admin; SameSite=Strict`;
    startGateway();
    const pending = sessionStorage.getItem('chorus.invite');
    if (pending) {
      sessionStorage.removeItem('chorus.invite');
      try {
        const joined = await api.post(`/invites/${encodeURIComponent(pending)}`);
        const gid = joined?.guild?.id ?? joined?.id;
        if (gid) {
          store.dispatch('GUILD_CREATE', joined.guild ?? joined);
          app.open(gid);
          return;
        }
      } catch (e) {
        alert(`The invite could not be used: ${/** @type {Error} */ (e).message}`);
      }
    }
    app.navigate('/channels/@me');
  },
  /**
   * Drops the session and returns to /login. remote: false when the server has ended it already (the
   * account was deleted).
   * @param {{ remote?: boolean }} [opts]
   */
  async logout({ remote = true } = {}) {
    if (remote) {
      try {
        await api.post('/auth/logout');
      } catch {
        /* the token is dropped either way */
      }
    }
    app.voice?.leave();
    app.gateway?.stop();
    app.gateway = null;
    api.setToken(null);
    document.cookie = 'chorus_token=; Path=/admin; Max-Age=0; SameSite=Strict';
    location.assign('/login');
  },
};

function startGateway() {
  if (app.gateway) return;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  app.gateway = new GatewayClient({
    url: `${scheme}://${location.host}/gateway`,
    token: () => api.token(),
    onDispatch: (t, d) => {
      store.dispatch(t, d);
      if (t === 'READY') route();
    },
    onState: (s) => {
      if (s === 'logged_out') {
        api.setToken(null);
        location.assign('/login');
        return;
      }
      store.setConnection(s);
    },
  });
  app.gateway.start();
}

/** Maps the URL to what is shown. */
function route() {
  const path = location.pathname;
  const signed = !!api.token();
  const invite = /^\/invite\/([A-Za-z0-9_-]{1,64})$/.exec(path);
  if (invite && !signed) {
    sessionStorage.setItem('chorus.invite', invite[1]);
    showAuth('register', invite[1]);
    return;
  }
  if (invite && signed) {
    sessionStorage.setItem('chorus.invite', invite[1]);
    app.signedIn(/** @type {string} */ (api.token()));
    return;
  }
  if (!signed) {
    showAuth(path === '/register' ? 'register' : 'login', null);
    return;
  }
  $('auth-view').hidden = true;
  $('main-view').hidden = false;
  startGateway();
  const m = /^\/channels\/(\d+|@me)(?:\/(\d+))?/.exec(path);
  let guildId = m && m[1] !== '@me' ? m[1] : null;
  let channelId = m?.[2] ?? null;
  if (!m && store.state.me) {
    app.navigate('/channels/@me', true);
    return;
  }
  if (guildId && !channelId && store.state.channels.size) {
    app.open(guildId);
    return;
  }
  store.select(guildId, channelId);
}

/** @param {'login'|'register'} mode @param {string|null} invite */
function showAuth(mode, invite) {
  $('main-view').hidden = true;
  $('auth-view').hidden = false;
  authView.show(mode, invite);
}

const authView = mountAuth($('auth-view'), app);
mountBanner($('banner'), app);
mountRail($('guild-rail'), app);
mountSidebar($('sidebar'), app);
mountMessages($('content'), app);
mountComposer($('composer'), app);
mountMembers($('member-list'), app);
app.voice = mountVoice({ api, store, gateway: null, els: { panel: $('voice-panel'), grid: $('video-grid') } });
app.voice.onChange(() => store.notify('VOICE'));

// For debugging in the console and for the end-to-end tests (they drop the gateway socket on purpose).
/** @type {any} */ (window).__chorus = app;
window.addEventListener('popstate', route);
window.addEventListener('storage', (e) => {
  if (e.key === TOKEN_KEY && !e.newValue) location.assign('/login');
});
route();
