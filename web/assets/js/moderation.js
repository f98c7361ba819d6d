// Which voice-moderation actions the member menu offers, from the viewer's permissions and what is known
// about the target (its member record and its voice state). Pure. The server checks every action again.
//
// - Server mute / unmute: MUTE_MEMBERS (the flag stays on the member, in voice or not).
// - Server deafen / undeafen: DEAFEN_MEMBERS.
// - Move to ▸ (the guild's other voice channels) and Disconnect: MOVE_MEMBERS, only while the target sits
//   in a voice channel.
// Each item carries the body of `PATCH /guilds/{guild_id}/members/{user_id}` that performs it.

import { has } from './permissions.js';

/**
 * @typedef {{ id: string, name: string, position?: number }} VoiceChannelRef
 * @typedef {{ id: 'server-mute'|'server-deafen'|'move'|'disconnect', label: string, patch?: Record<string, unknown>, targets?: VoiceChannelRef[] }} MenuItem
 */

/**
 * @param {{
 *   perms: bigint,
 *   member?: { mute?: boolean, deaf?: boolean }|null,
 *   voice?: { channel_id: string|null, server_mute?: boolean, server_deaf?: boolean }|null,
 *   voiceChannels?: VoiceChannelRef[],
 * }} ctx
 * @returns {MenuItem[]}
 */
export function memberMenuItems({ perms, member = null, voice = null, voiceChannels = [] }) {
  /** @type {MenuItem[]} */
  const items = [];
  // The voice state is the fresher of the two while the member is in voice; the member record otherwise.
  const muted = !!(voice?.server_mute ?? member?.mute ?? false);
  const deafened = !!(voice?.server_deaf ?? member?.deaf ?? false);
  if (has(perms, 'MUTE_MEMBERS')) items.push({ id: 'server-mute', label: muted ? 'Server unmute' : 'Server mute', patch: { mute: !muted } });
  if (has(perms, 'DEAFEN_MEMBERS')) items.push({ id: 'server-deafen', label: deafened ? 'Server undeafen' : 'Server deafen', patch: { deaf: !deafened } });
  const inVoice = voice?.channel_id ?? null;
  if (has(perms, 'MOVE_MEMBERS') && inVoice) {
    const targets = voiceChannels
      .filter((c) => c.id !== inVoice)
      .sort((a, b) => (a.position ?? 0) - (b.position ?? 0) || (a.id.length - b.id.length || (a.id < b.id ? -1 : 1)))
      .map((c) => ({ id: c.id, name: c.name }));
    if (targets.length) items.push({ id: 'move', label: 'Move to', targets });
    items.push({ id: 'disconnect', label: 'Disconnect', patch: { channel_id: null } });
  }
  return items;
}

/** The PATCH body that moves a member to a voice channel. @param {string} channelId */
export const movePatch = (channelId) => ({ channel_id: channelId });
