// Pure SDP helpers of the voice client: which remote track each subscribe-side media line carries, and
// keeping the subscribe connection's transport when the SFU rejects the line that carries it.

/**
 * Maps each media line's mid to the participant and track its `a=msid` names
 * (`<participant_id> <track_id>`, see the /voice protocol). Lines without msid (stopped) map to nothing.
 * @param {string} sdp
 * @returns {Map<string, {participantId: string, trackId: string, kind: string}>}
 */
export function mediaLines(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const kind = section.split(' ', 1)[0];
    const mid = /(?:^|\n)a=mid:(\S+)/.exec(section)?.[1];
    const msid = /(?:^|\n)a=msid:(\S+) (\S+)/.exec(section);
    if (mid && msid) out.set(mid, { participantId: msid[1], trackId: msid[2], kind });
  }
  return out;
}




/**
 * Keeps the subscribe connection's BUNDLE transport when a server rejects the media line that carries it.
 * Chorus's SFU no longer does (since 2026-11-25 the tag line turns inactive instead), so with it this is a
 * no-op; it stays for servers of an older version, which wrote their ICE candidates on the first media line
 * only and, when that line's track went away, rejected the line (port 0) and moved the BUNDLE tag on. Chrome then builds a new
 * transport for the new tag (new ICE and DTLS), which the SFU takes for a dead peer: it drops us with
 * `peer_timeout`. In a first offer whose first line is already rejected, the candidates sit on a line
 * Chrome ignores and ICE never starts. So the line that holds (or held) the transport stays in the
 * bundle, first, as an inactive line instead of a rejected one; the SFU accepts that answer.
 * @param {string} sdp the server's offer
 * @param {string|undefined} tagMid the BUNDLE tag of the current remote description (none at first)
 */
export function keepBundleTransport(sdp, tagMid) {
  const nl = sdp.includes('\r\n') ? '\r\n' : '\n';
  const parts = sdp.split(/\r?\nm=/);
  const sections = parts.slice(1).map((text, i) => ({
    i: i + 1,
    port: text.split(' ', 2)[1],
    mid: /(?:^|\n)a=mid:(\S+)/.exec(text)?.[1],
    hasCandidates: /(?:^|\n)a=candidate:/.test(text),
  }));
  let tag = tagMid ? sections.find((s) => s.mid === tagMid) : undefined;
  if (!tag && sections[0]?.port === '0' && sections[0].hasCandidates) tag = sections[0];
  if (!tag?.mid || tag.port !== '0') return sdp;
  const mid = tag.mid;
  const lines = parts[tag.i].split(/\r?\n/);
  lines[0] = lines[0].replace(/^(\S+) 0 /, '$1 9 ');
  const dir = lines.findIndex((l) => /^a=(sendonly|recvonly|sendrecv|inactive)$/.test(l));
  if (dir >= 0) lines[dir] = 'a=inactive';
  else lines.push('a=inactive');
  parts[tag.i] = lines.join(nl);
  const out = parts.join(`${nl}m=`);
  if (/(?:^|\n)a=group:BUNDLE/.test(out)) {
    return out.replace(/a=group:BUNDLE([^\r\n]*)/, (_, g) => `a=group:BUNDLE ${[mid, ...g.trim().split(/\s+/).filter((/** @type {string} */ m) => m && m !== mid)].join(' ')}`);
  }
  return out.replace(/(\r?\n)m=/, `$1a=group:BUNDLE ${mid}$1m=`);
}
