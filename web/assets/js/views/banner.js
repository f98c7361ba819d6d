// The offline / reconnecting banner at the top of the window.

/** @param {HTMLElement} root @param {any} app */
export function mountBanner(root, app) {
  const render = () => {
    const c = app.store.state.connection;
    root.hidden = c === 'connected' || c === 'connecting';
    root.textContent = c === 'offline' ? 'You are offline — the server cannot be reached. Retrying…' : 'Reconnecting…';
    root.className = c === 'offline' ? 'banner offline' : 'banner';
  };
  app.store.subscribe((_s, what) => {
    if (what === 'CONNECTION') render();
  });
  window.addEventListener('offline', () => app.store.setConnection('offline'));
  render();
}
