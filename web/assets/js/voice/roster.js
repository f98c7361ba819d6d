// Who is in the call, from the server's /voice events: participants (participant id → user id, tracks,
// mute state) and who is speaking. Pure: no DOM, no sockets.
//
// Which video track is a screen share: the client publishes its camera with three simulcast layers and a
// screen share as a single layer (see session.js), so a video track whose `track_published` /
// `joined.participants[].tracks[]` says `simulcast: false` is a screen share, and one with
// `simulcast: true` is a camera. (A client that cannot simulcast its camera would show as a screen.)

/**
 * @typedef {{ track_id: string, participant_id: string, kind: 'audio'|'video', simulcast: boolean }} TrackInfo
 * @typedef {{ participant_id: string, user_id: string, tracks: TrackInfo[], muted: boolean, deafened: boolean, server_muted: boolean, server_deafened: boolean }} Participant
 */

/** @param {TrackInfo|undefined} t @returns {'camera'|'screen'} */
export function videoKind(t) {
  return t && t.kind === 'video' && t.simulcast === false ? 'screen' : 'camera';
}

export class Roster {
  constructor() {
    /** Everyone else in the room. @type {Map<string, Participant>} */
    this.participants = new Map();
    /** @type {string|null} */
    this.selfId = null;
    /** participant ids speaking now (may include selfId) @type {Set<string>} */
    this.speaking = new Set();
    /** What a moderator imposed on us, from `mute` messages about our own participant. */
    this.self = { server_muted: false, server_deafened: false };
  }

  reset() {
    this.participants.clear();
    this.speaking.clear();
    this.selfId = null;
    this.self = { server_muted: false, server_deafened: false };
  }

  /**
   * Applies one server message; returns true when it changed who is here, their tracks, mute state or
   * who speaks.
   * @param {any} m
   */
  apply(m) {
    switch (m.type) {
      case 'joined':
        this.reset();
        this.selfId = m.participant_id;
        for (const p of m.participants ?? []) this.add(p);
        return true;
      case 'participant_joined':
        if (m.participant_id === this.selfId) return false;
        this.add(m);
        return true;
      case 'participant_left':
        this.speaking.delete(m.participant_id);
        return this.participants.delete(m.participant_id);
      case 'track_published': {
        const p = this.participants.get(m.participant_id);
        if (!p || p.tracks.some((t) => t.track_id === m.track_id)) return false;
        p.tracks.push({ track_id: m.track_id, participant_id: m.participant_id, kind: m.kind, simulcast: !!m.simulcast });
        return true;
      }
      case 'track_unpublished': {
        const p = this.participants.get(m.participant_id);
        if (!p) return false;
        const n = p.tracks.length;
        p.tracks = p.tracks.filter((t) => t.track_id !== m.track_id);
        return p.tracks.length !== n;
      }
      case 'mute': {
        if (m.participant_id === this.selfId && this.selfId) {
          this.self = { server_muted: !!m.server_muted, server_deafened: !!m.server_deafened };
          if (this.self.server_muted) this.speaking.delete(m.participant_id);
          return true;
        }
        const p = this.participants.get(m.participant_id);
        if (!p) return false;
        p.muted = !!m.muted;
        p.deafened = !!m.deafened;
        p.server_muted = !!m.server_muted;
        p.server_deafened = !!m.server_deafened;
        if (p.muted || p.server_muted) this.speaking.delete(m.participant_id);
        return true;
      }
      case 'speaking': {
        if (m.participant_id !== this.selfId && !this.participants.has(m.participant_id)) return false;
        const had = this.speaking.has(m.participant_id);
        if (m.speaking) this.speaking.add(m.participant_id);
        else this.speaking.delete(m.participant_id);
        return had !== !!m.speaking;
      }
      default:
        return false;
    }
  }

  /** @param {any} p */
  add(p) {
    this.participants.set(p.participant_id, {
      participant_id: p.participant_id,
      user_id: String(p.user_id),
      tracks: (p.tracks ?? []).map((/** @type {any} */ t) => ({ ...t, simulcast: !!t.simulcast })),
      muted: !!p.muted,
      deafened: !!p.deafened,
      server_muted: !!p.server_muted,
      server_deafened: !!p.server_deafened,
    });
  }

  /** @param {string} participantId */
  userOf(participantId) {
    return this.participants.get(participantId)?.user_id;
  }

  /** @param {string} trackId @returns {TrackInfo|undefined} */
  track(trackId) {
    for (const p of this.participants.values()) {
      const t = p.tracks.find((x) => x.track_id === trackId);
      if (t) return t;
    }
    return undefined;
  }

  /**
   * User ids speaking now; our own participant maps to `selfUserId`.
   * @param {string|null|undefined} selfUserId
   */
  speakingUserIds(selfUserId) {
    const out = new Set();
    for (const pid of this.speaking) {
      const uid = pid === this.selfId ? selfUserId : this.userOf(pid);
      if (uid) out.add(uid);
    }
    return out;
  }
}
