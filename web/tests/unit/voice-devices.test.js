import { test } from 'node:test';
import assert from 'node:assert/strict';

import { mediaUnavailableReason } from '../../assets/js/voice/devices.js';

/** Runs `fn` with `navigator` and `location` replaced, as a page on that origin would see them. */
function onPage(navigator, origin, fn) {
  const saved = { navigator: globalThis.navigator, location: globalThis.location };
  Object.defineProperty(globalThis, 'navigator', { value: navigator, configurable: true, writable: true });
  Object.defineProperty(globalThis, 'location', { value: { origin }, configurable: true, writable: true });
  try {
    return fn();
  } finally {
    Object.defineProperty(globalThis, 'navigator', { value: saved.navigator, configurable: true, writable: true });
    Object.defineProperty(globalThis, 'location', { value: saved.location, configurable: true, writable: true });
  }
}

test('a plain-http page without media devices is told to ask the operator for https', () => {
  const why = onPage({}, 'http://chat.example.org', mediaUnavailableReason);
  assert.match(why, /http:\/\/chat\.example\.org is not a secure \(https\) page/);
  assert.match(why, /HTTPS/);
});

test('a secure page with media devices has nothing to explain', () => {
  const navigator = { mediaDevices: { getUserMedia: async () => ({}) } };
  assert.equal(onPage(navigator, 'https://chat.example.org', mediaUnavailableReason), null);
});
