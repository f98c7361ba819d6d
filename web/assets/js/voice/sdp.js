// Pure SDP helpers of the voice client: which remote track each subscribe-side media line carries.

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

