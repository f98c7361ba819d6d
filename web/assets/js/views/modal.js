// One <dialog> for prompts and settings panes; Escape closes it and focus returns where it was.

import { h, replace } from '../dom.js';

const dialog = () => /** @type {HTMLDialogElement} */ (document.getElementById('modal'));

/** Shows content in the modal; resolves when it closes. @param {string} title @param {Node} body */
export function showModal(title, body) {
  const d = dialog();
  replace(
    d,
    h('header', { class: 'modal-head' }, h('h2', null, title), h('button', { class: 'icon', 'aria-label': 'Close', onclick: () => d.close() }, '✕')),
    body,
  );
  if (!d.open) d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue), { once: true }));
}

export function closeModal() {
  dialog().close();
}

/** Asks for one line of text. @param {string} title @param {string} label @param {string} value */
export function promptModal(title, label, value) {
  return new Promise((resolve) => {
    const input = h('input', { id: 'prompt-input', value, 'data-testid': 'prompt-input', maxlength: 200 });
    const form = h(
      'form',
      { class: 'modal-form', method: 'dialog' },
      h('label', { for: 'prompt-input' }, label),
      input,
      h('div', { class: 'modal-actions' }, h('button', { type: 'submit', class: 'primary', 'data-testid': 'prompt-ok' }, 'OK')),
    );
    let answer = /** @type {string|null} */ (null);
    form.addEventListener('submit', () => {
      answer = /** @type {HTMLInputElement} */ (input).value;
    });
    showModal(title, form).then(() => resolve(answer && answer.trim() ? answer.trim() : null));
    /** @type {HTMLInputElement} */ (input).select();
  });
}
