// REST client: bearer token, JSON in and out, the contract's errors as ApiError, retries after 429 (except
// slow mode's, whose wait the caller shows, and a request sent with `retry: false`), an optional
// audit-log reason on moderation requests, and multipart uploads with progress (XMLHttpRequest) for
// messages with files.

/** Where the session token lives (never in a URL). */
export const TOKEN_KEY = 'chorus.token';

/** The longest audit-log reason the server keeps (characters). */
export const MAX_REASON = 512;

/**
 * The `X-Audit-Log-Reason` header value: trimmed, cut at 512 characters (never inside a character),
 * percent-encoded UTF-8; null when there is no reason.
 * @param {string|null|undefined} reason
 */
export function reasonHeader(reason) {
  const r = [...(reason ?? '').trim()].slice(0, MAX_REASON).join('');
  // A lone surrogate cannot be encoded: it becomes U+FFFD, as it would in UTF-8.
  return r ? encodeURIComponent(/** @type {any} */ (r).toWellFormed?.() ?? r) : null;
}

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {Record<string,string>|undefined} fields
   * @param {number|null} [retryAfter] seconds, from a 429's Retry-After
   */
  constructor(status, code, message, fields, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
    this.retryAfter = retryAfter;
  }
}

/**
 * An answer's body (JSON or nothing) as data, and a failure as ApiError.
 * @param {number} status @param {string} text @param {string|null} retryAfterHeader
 */
function answer(status, text, retryAfterHeader) {
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const after = status === 429 ? Number(retryAfterHeader ?? '1') || 1 : null;
  return { data, after, error: status >= 200 && status < 300 ? null : new ApiError(status, data?.code ?? 'error', data?.message ?? `HTTP ${status}`, data?.fields, after) };
}

/**
 * @typedef {{ promise: Promise<any>, abort: () => void }} Upload
 * @typedef {{ onProgress?: (loaded: number, total: number) => void, onSent?: () => void }} UploadHooks
 */

/**
 * @param {{ base?: string, fetchImpl?: typeof fetch, storage?: Storage, sleep?: (ms:number)=>Promise<void>, xhrImpl?: new () => XMLHttpRequest }} [opts]
 */
export function createApi(opts = {}) {
  const base = opts.base ?? '';
  const fetchImpl = opts.fetchImpl ?? ((...a) => fetch(...a));
  const storage = opts.storage ?? globalThis.localStorage;
  const sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));

  const api = {
    token: () => storage?.getItem(TOKEN_KEY) ?? null,
    /** @param {string|null} t */
    setToken(t) {
      if (t) storage?.setItem(TOKEN_KEY, t);
      else storage?.removeItem(TOKEN_KEY);
    },
    /**
     * @param {string} method
     * @param {string} path  under /api/v1
     * @param {unknown} [body]
     * @param {{ reason?: string|null, retry?: boolean }} [opts] reason: recorded in the guild's audit log;
     *   retry: false answers a 429 at once (a second-factor code: the user sees the wait, and a retry
     *   would only spend the account's attempts)
     */
    async request(method, path, body, opts = {}) {
      for (let attempt = 0; ; attempt++) {
        /** @type {Record<string,string>} */
        const headers = {};
        const token = api.token();
        if (token) headers.Authorization = `Bearer ${token}`;
        if (body !== undefined) headers['Content-Type'] = 'application/json';
        const reason = reasonHeader(opts.reason);
        if (reason) headers['X-Audit-Log-Reason'] = reason;
        let res;
        try {
          res = await fetchImpl(`${base}/api/v1${path}`, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
          });
        } catch (e) {
          throw new ApiError(0, 'network', 'The server cannot be reached.', undefined);
        }
        if (res.status === 204) return null;
        const { data, after, error } = answer(res.status, await res.text(), res.headers.get('Retry-After'));
        // Slow mode is not a burst to wait out quietly: the member should see the wait.
        if (res.status === 429 && data?.code !== 'slow_mode' && opts.retry !== false && attempt < 2) {
          await sleep(Math.min(10, Math.max(1, /** @type {number} */ (after))) * 1000);
          continue;
        }
        if (error) throw error;
        return data;
      }
    },
    /**
     * A multipart POST (a message with files) through XMLHttpRequest, which reports upload progress as
     * fetch does not. One attempt: the caller decides about retries (the body may be large). The
     * browser sets the multipart Content-Type with its boundary. A cancelled upload rejects with code
     * `aborted`, a connection failure with `network`.
     * @param {string} path under /api/v1 @param {FormData} form @param {UploadHooks} [hooks]
     * @returns {Upload}
     */
    upload(path, form, hooks = {}) {
      const Xhr = opts.xhrImpl ?? globalThis.XMLHttpRequest;
      const xhr = new Xhr();
      const promise = new Promise((resolve, reject) => {
        xhr.open('POST', `${base}/api/v1${path}`);
        const token = api.token();
        if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
        xhr.upload.onprogress = (e) => hooks.onProgress?.(e.loaded, e.lengthComputable ? e.total : 0);
        xhr.upload.onload = () => hooks.onSent?.();
        xhr.onload = () => {
          if (xhr.status === 204) return resolve(null);
          const { data, error } = answer(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After'));
          if (error) reject(error);
          else resolve(data);
        };
        xhr.onerror = () => reject(new ApiError(0, 'network', 'The server cannot be reached.', undefined));
        xhr.ontimeout = xhr.onerror;
        xhr.onabort = () => reject(new ApiError(0, 'aborted', 'The upload was cancelled.', undefined));
        xhr.send(form);
      });
      return { promise, abort: () => xhr.abort() };
    },
    get: (p) => api.request('GET', p),
    post: (p, b, o) => api.request('POST', p, b ?? {}, o),
    patch: (p, b, o) => api.request('PATCH', p, b, o),
    put: (p, b, o) => api.request('PUT', p, b, o),
    del: (p, o) => api.request('DELETE', p, undefined, o),
  };
  return api;
}
