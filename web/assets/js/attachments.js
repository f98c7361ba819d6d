// Attachments: what the client decides about files on its own. Pure: no DOM, no network (FormData and
// the nonce source come in as arguments where they are needed).
//
// A message with files is sent as multipart/form-data: a `payload_json` part with the usual JSON body and
// one part per file, `files[0]`, `files[1]`, … The server advertises its limits in GET /instance
// (`uploads: {max_file_bytes, max_message_bytes, max_files}`); files over them are refused here, before
// any byte is uploaded. The server is the judge anyway (413/400/403 with a code), and its refusals are
// put into words by uploadErrorText.

/** The server's cap on files per message when it does not advertise one. */
export const DEFAULT_MAX_FILES = 10;

/** The box an inline image is scaled into (CSS pixels). */
export const IMAGE_BOX = /** @type {const} */ ({ width: 400, height: 300 });

/** Image types the server measures (width/height) and renders a thumbnail for. */
export const INLINE_IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];

/**
 * @typedef {{ name: string, size: number, type?: string }} FileLike  a File, or a stand-in in tests
 * @typedef {{ maxFileBytes: number|null, maxMessageBytes: number|null, maxFiles: number }} UploadLimits
 * @typedef {{ id: string, filename: string, content_type: string, size: number, width: number|null,
 *   height: number|null, url: string, thumbnail_url: string|null }} Attachment
 */

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

/**
 * A size for people: 0 B, 999 B, 1.5 KB, 25 MB, 1.2 GB (steps of 1024, as file managers and Discord count;
 * one decimal below 10 units, none above).
 * @param {number} bytes
 */
export function humanSize(bytes) {
  let n = Math.max(0, Number(bytes) || 0);
  let u = 0;
  while (n >= 1024 && u < UNITS.length - 1) {
    n /= 1024;
    u += 1;
  }
  if (u === 0) return `${Math.round(n)} B`;
  // 1023.96 KB reads as "1 MB" rather than "1024 KB".
  const rounded = n < 10 ? Math.round(n * 10) / 10 : Math.round(n);
  if (rounded >= 1024 && u < UNITS.length - 1) return `1 ${UNITS[u + 1]}`;
  return `${rounded} ${UNITS[u]}`;
}

/**
 * An image's size scaled down (never up) to fit a box, keeping its shape; whole pixels, at least 1.
 * Unknown or nonsensical dimensions give null (the image is then shown as a file).
 * @param {number|null|undefined} width @param {number|null|undefined} height
 * @param {number} [maxWidth] @param {number} [maxHeight]
 * @returns {{ width: number, height: number }|null}
 */
export function fitWithin(width, height, maxWidth = IMAGE_BOX.width, maxHeight = IMAGE_BOX.height) {
  const w = Number(width);
  const h = Number(height);
  if (!Number.isFinite(w) || !Number.isFinite(h) || w <= 0 || h <= 0) return null;
  const scale = Math.min(1, maxWidth / w, maxHeight / h);
  return { width: Math.max(1, Math.round(w * scale)), height: Math.max(1, Math.round(h * scale)) };
}

/** A positive whole number, or null. @param {unknown} v */
const positive = (v) => {
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : null;
};

/**
 * The limits from GET /instance's optional `uploads`. A byte limit the server does not advertise is
 * left to the server (null); the file count falls back to the documented 10.
 * @param {any} instance
 * @returns {UploadLimits}
 */
export function uploadLimits(instance) {
  const u = instance?.uploads ?? {};
  return {
    maxFileBytes: positive(u.max_file_bytes),
    maxMessageBytes: positive(u.max_message_bytes),
    maxFiles: positive(u.max_files) ?? DEFAULT_MAX_FILES,
  };
}

/**
 * Which of `incoming` may join the `current` pending files under `limits`, in order: a file over the
 * per-file limit, one past the file count, or one that would push the total over the per-message limit
 * is refused with a sentence saying why.
 * @template {FileLike} F
 * @param {F[]} current @param {F[]} incoming @param {UploadLimits} limits
 * @returns {{ accepted: F[], refused: string[] }}
 */
export function checkFiles(current, incoming, limits) {
  /** @type {F[]} */
  const accepted = [];
  /** @type {string[]} */
  const refused = [];
  let count = current.length;
  let total = current.reduce((a, f) => a + (Number(f.size) || 0), 0);
  let tooMany = 0;
  for (const f of incoming) {
    const size = Number(f.size) || 0;
    if (limits.maxFileBytes !== null && size > limits.maxFileBytes) {
      refused.push(`“${f.name}” is ${humanSize(size)}; files can be at most ${humanSize(limits.maxFileBytes)}.`);
      continue;
    }
    if (count >= limits.maxFiles) {
      tooMany += 1;
      continue;
    }
    if (limits.maxMessageBytes !== null && total + size > limits.maxMessageBytes) {
      refused.push(`“${f.name}” would bring this message to ${humanSize(total + size)}; a message can carry at most ${humanSize(limits.maxMessageBytes)}.`);
      continue;
    }
    accepted.push(f);
    count += 1;
    total += size;
  }
  if (tooMany) {
    refused.push(`A message can carry at most ${limits.maxFiles} files; ${tooMany === 1 ? '1 file was' : `${tooMany} files were`} left out.`);
  }
  return { accepted, refused };
}

/**
 * The multipart body of a message with files: `payload_json` (content only when there is some) and
 * `files[i]` with each file's name.
 * @param {{ content?: string, nonce?: string, reply_to?: string|null }} payload
 * @param {FileLike[]} files
 * @param {new () => FormData} [FormDataImpl]
 */
export function buildMessageForm(payload, files, FormDataImpl = FormData) {
  /** @type {Record<string, string>} */
  const body = {};
  if (payload.content) body.content = payload.content;
  if (payload.nonce) body.nonce = payload.nonce;
  if (payload.reply_to) body.reply_to = payload.reply_to;
  const form = new FormDataImpl();
  form.append('payload_json', JSON.stringify(body));
  files.forEach((f, i) => form.append(`files[${i}]`, /** @type {any} */ (f), f.name || `file-${i}`));
  return form;
}

/**
 * A server refusal of an upload in words. `err` is an ApiError-like {status, code, message}.
 * @param {{ status?: number, code?: string, message?: string, retryAfter?: number|null }} err
 * @param {UploadLimits} [limits]
 */
export function uploadErrorText(err, limits) {
  const max = (/** @type {number|null|undefined} */ n) => (n ? ` (at most ${humanSize(n)})` : '');
  const detail = err.message ? ` ${/[.!?]$/.test(err.message) ? err.message : `${err.message}.`}` : '';
  switch (err.code) {
    case 'file_too_large':
      return `A file is larger than the server accepts${max(limits?.maxFileBytes)}.`;
    case 'upload_too_large':
      return `These files together are larger than the server accepts for one message${max(limits?.maxMessageBytes)}.`;
    case 'too_many_files':
      return `Too many files for one message (at most ${limits?.maxFiles ?? DEFAULT_MAX_FILES}).`;
    case 'invalid_upload':
      return 'The upload arrived incomplete or malformed. Try again.';
    case 'invalid_image':
      return `A file claims to be an image but is not one.${detail}`;
    case 'image_too_large':
      return `An image is too large (its dimensions are over the server's limit).${detail}`;
    case 'over_quota':
      return 'You have used up your upload quota on this server. Delete some of your files and try again.';
    case 'missing_permission':
      return 'You do not have permission to attach files in this channel.';
    case 'slow_mode':
      return `Slow mode is on: wait${err.retryAfter ? ` ${err.retryAfter} s` : ''} before sending again.`;
    case 'rate_limited':
      return `You are sending too fast. Try again${err.retryAfter ? ` in ${err.retryAfter} s` : ' in a moment'}.`;
    case 'aborted':
      return 'The upload was cancelled.';
    case 'network':
      return 'The upload failed: the server cannot be reached. Try again.';
    default:
      if (err.status === 413) return 'The upload is larger than the server accepts.';
      return `The files were not sent: ${err.message || `HTTP ${err.status}`}`;
  }
}

/**
 * A same-origin path from the server, or null for anything else (another origin, another scheme): an
 * attachment link never leads off the instance.
 * @param {unknown} url
 */
export function safeUrl(url) {
  return typeof url === 'string' && /^\/(?![\/\\])/.test(url) ? url : null;
}

/**
 * How an attachment is shown: an inline image (a type the server measures, with its size known) or a
 * file card.
 * @param {Partial<Attachment>} a
 */
export function isInlineImage(a) {
  return INLINE_IMAGE_TYPES.includes(String(a.content_type ?? '').toLowerCase().split(';')[0].trim()) && !!fitWithin(a.width, a.height) && !!safeUrl(a.url);
}

/** A message's files in a few words, for a reply line when it has no text: "📎 cat.png", "📎 3 files". @param {Partial<Attachment>[]|undefined} list */
export function attachmentsSummary(list) {
  if (!list?.length) return '';
  return list.length === 1 ? `📎 ${list[0].filename}` : `📎 ${list.length} files`;
}

/** A name for a pasted file that has none (clipboard images are often just "image.png"). @param {FileLike} f @param {Date} now */
export function pastedName(f, now) {
  const ext = /^image\/(png|jpeg|gif|webp)$/.exec(f.type ?? '')?.[1]?.replace('jpeg', 'jpg') ?? 'bin';
  if (f.name && f.name !== 'image.png' && f.name !== `image.${ext}`) return f.name;
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `pasted-${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}.${ext}`;
}

/** A fresh message nonce (at most 25 characters, as the server allows). */
export const newNonce = () => `${Date.now()}${Math.floor(Math.random() * 1e6)}`.slice(0, 25);

/**
 * The files waiting in the composer, per channel, and the nonce of their last attempt: a draft sent
 * again unchanged (after a cancel, a network failure, a refusal) carries the same nonce, so if the first
 * attempt did reach the server the retry cannot make a second message. A changed draft gets a new one.
 * @template {FileLike} F
 */
export class Drafts {
  /** @param {() => string} [nonce] */
  constructor(nonce = newNonce) {
    this.nonce = nonce;
    /** @type {Map<string, { files: F[], text: string, attempt: { text: string, files: F[], nonce: string }|null }>} */
    this.byChannel = new Map();
  }

  /** @param {string} channelId */
  get(channelId) {
    let d = this.byChannel.get(channelId);
    if (!d) this.byChannel.set(channelId, (d = { files: [], text: '', attempt: null }));
    return d;
  }

  /** @param {string} channelId @returns {F[]} */
  files(channelId) {
    return this.byChannel.get(channelId)?.files ?? [];
  }

  /** Adds what the limits allow; returns the refusals in words. @param {string} channelId @param {F[]} files @param {UploadLimits} limits */
  add(channelId, files, limits) {
    const d = this.get(channelId);
    const { accepted, refused } = checkFiles(d.files, files, limits);
    d.files = [...d.files, ...accepted];
    return { accepted, refused };
  }

  /** @param {string} channelId @param {F} file */
  remove(channelId, file) {
    const d = this.get(channelId);
    d.files = d.files.filter((f) => f !== file);
  }

  /**
   * Takes the files out for sending with `text`; the nonce is the last attempt's when nothing changed.
   * @param {string} channelId @param {string} text
   * @returns {{ files: F[], nonce: string }}
   */
  take(channelId, text) {
    const d = this.get(channelId);
    const files = d.files;
    const same = d.attempt && d.attempt.text === text && d.attempt.files.length === files.length && d.attempt.files.every((f, i) => f === files[i]);
    const nonce = same && d.attempt ? d.attempt.nonce : this.nonce();
    d.attempt = { text, files, nonce };
    d.files = [];
    d.text = '';
    return { files, nonce };
  }

  /**
   * An attempt that did not end in a message: its files go back in front of any added since, its text is
   * kept for the box, and its nonce stays for an unchanged retry.
   * @param {string} channelId @param {F[]} files @param {string} text
   */
  restore(channelId, files, text) {
    const d = this.get(channelId);
    d.files = [...files, ...d.files.filter((f) => !files.includes(f))];
    d.text = text;
  }

  /** The attempt became a message: its nonce is spent. @param {string} channelId */
  sent(channelId) {
    const d = this.get(channelId);
    d.attempt = null;
  }

  /** The nonce of the attempt that did not end in a message yet, if any. @param {string} channelId */
  pendingNonce(channelId) {
    return this.byChannel.get(channelId)?.attempt?.nonce ?? null;
  }

  /**
   * A message with the attempt's nonce arrived after all (a cancel came too late, or the answer was lost):
   * the attempt's files leave the draft. Returns the attempt's text, or null when `nonce` is not it.
   * @param {string} channelId @param {string} nonce
   */
  settle(channelId, nonce) {
    const d = this.byChannel.get(channelId);
    const a = d?.attempt;
    if (!d || !a || a.nonce !== nonce) return null;
    d.files = d.files.filter((f) => !a.files.includes(f));
    if (d.text === a.text) d.text = '';
    d.attempt = null;
    return a.text;
  }

  /** Text kept from a failed attempt, handed out once. @param {string} channelId */
  takeText(channelId) {
    const d = this.byChannel.get(channelId);
    if (!d) return '';
    const t = d.text;
    d.text = '';
    return t;
  }
}
