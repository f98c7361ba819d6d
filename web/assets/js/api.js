// REST client: bearer token, JSON in and out, the contract's errors as ApiError, one retry after 429.

/** Where the session token lives (never in a URL). */
export const TOKEN_KEY = 'chorus.token';

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {Record<string,string>|undefined} fields
   */
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

/**
 * @param {{ base?: string, fetchImpl?: typeof fetch, storage?: Storage, sleep?: (ms:number)=>Promise<void> }} [opts]
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
     */
    async request(method, path, body) {
      for (let attempt = 0; ; attempt++) {
        /** @type {Record<string,string>} */
        const headers = {};
        const token = api.token();
        if (token) headers.Authorization = `Bearer ${token}`;
        if (body !== undefined) headers['Content-Type'] = 'application/json';
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
        if (res.status === 429 && attempt < 2) {
          const after = Number(res.headers.get('Retry-After') ?? '1');
          await sleep(Math.min(10, Math.max(1, after)) * 1000);
          continue;
        }
        if (res.status === 204) return null;
        const text = await res.text();
        let data = null;
        try {
          data = text ? JSON.parse(text) : null;
        } catch {
          data = null;
        }
        if (!res.ok) {
          throw new ApiError(res.status, data?.code ?? 'error', data?.message ?? `HTTP ${res.status}`, data?.fields);
        }
        return data;
      }
    },
    get: (p) => api.request('GET', p),
    post: (p, b) => api.request('POST', p, b ?? {}),
    patch: (p, b) => api.request('PATCH', p, b),
    put: (p, b) => api.request('PUT', p, b),
    del: (p) => api.request('DELETE', p),
  };
  return api;
}
