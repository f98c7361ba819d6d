// Link previews (embeds): what of a message's `embeds` the client is willing to show. Pure: no DOM, no
// network. The server fetches linked pages and their images itself; a viewer's browser only ever loads
// a preview image through the server's signed proxy, so any other image URL is dropped here, and a card
// only links to an http(s) URL.
//
// The server's embed: {url, title|null, description|null, site_name|null, image_url|null}, image_url
// being `/api/v1/link-previews/image?url=…&sig=…` (same origin).

/** The only image URLs a card may load. */
export const PROXY_PREFIX = '/api/v1/link-previews/image?';

/** Longest texts shown (in characters); the CSS also clamps the description to a few lines. */
export const MAX_TITLE = 256;
export const MAX_DESCRIPTION = 350;
export const MAX_SITE_NAME = 100;
/** Cards per message (the server makes at most 3). */
export const MAX_EMBEDS = 5;

/**
 * @typedef {{ url: string, title?: string|null, description?: string|null, site_name?: string|null,
 *   image_url?: string|null }} Embed  as the server sends it
 * @typedef {{ url: string, href: string, title: string|null, description: string|null, siteName: string|null,
 *   image: string|null }} EmbedDisplay  what a card shows
 */

/**
 * The link of an embed when it is an absolute http(s) URL (normalized, as the browser would resolve
 * it), otherwise null: no javascript:, data:, relative or protocol-relative links.
 * @param {unknown} url
 */
export function linkHref(url) {
  if (typeof url !== 'string' || url.length > 4096) return null;
  const raw = url.trim();
  if (!/^https?:\/\//i.test(raw)) return null;
  let u;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname || u.username || u.password) return null;
  return u.href;
}

/**
 * A preview image URL when it is the server's proxy (same origin, the proxy path, nothing a URL parser
 * could read as another origin), otherwise null.
 * @param {unknown} url
 */
export function proxyImageUrl(url) {
  if (typeof url !== 'string' || url.length > 8192 || !url.startsWith(PROXY_PREFIX)) return null;
  // The server percent-encodes the query: whitespace, controls, quotes, angle brackets or backslashes
  // mean it did not come from there.
  if (/[\s\u0000-\u001f\u007f"'<>\\`]/.test(url)) return null;
  return url;
}

/**
 * Text for a card: whitespace runs folded (at most one blank line kept), trimmed, cut to `max`
 * characters (whole code points) with an ellipsis; null when nothing is left.
 * @param {unknown} text @param {number} max
 */
export function cleanText(text, max) {
  if (typeof text !== 'string') return null;
  const folded = text
    .replace(/\r\n?/g, '\n')
    .replace(/[^\S\n]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  if (!folded) return null;
  const chars = [...folded];
  return chars.length > max ? `${chars.slice(0, max - 1).join('').trimEnd()}…` : folded;
}

/**
 * One embed as a card shows it, or null when it cannot be shown (no http(s) link, or nothing to show:
 * no title, description or image). The site name falls back to the link's host.
 * @param {Partial<Embed>|null|undefined} e
 * @returns {EmbedDisplay|null}
 */
export function displayEmbed(e) {
  if (!e || typeof e !== 'object') return null;
  const href = linkHref(e.url);
  if (!href) return null;
  const title = cleanText(e.title, MAX_TITLE);
  const description = cleanText(e.description, MAX_DESCRIPTION);
  const image = proxyImageUrl(e.image_url);
  if (!title && !description && !image) return null;
  const siteName = cleanText(e.site_name, MAX_SITE_NAME) ?? new URL(href).hostname;
  return { url: /** @type {string} */ (e.url), href, title, description, siteName, image };
}

/**
 * A message's embeds that can be shown, in order, one per link, at most MAX_EMBEDS.
 * @param {unknown} list
 * @returns {EmbedDisplay[]}
 */
export function displayEmbeds(list) {
  if (!Array.isArray(list)) return [];
  /** @type {EmbedDisplay[]} */
  const out = [];
  for (const e of list) {
    const d = displayEmbed(e);
    if (d && !out.some((x) => x.href === d.href)) out.push(d);
    if (out.length === MAX_EMBEDS) break;
  }
  return out;
}
