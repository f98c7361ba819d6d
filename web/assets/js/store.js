// The client's state and how every gateway event changes it. Pure: no DOM, no network; views subscribe.

/**
 * @typedef {{ id: string, username: string, display_name?: string|null }} User
 * @typedef {{ id: string, guild_id: string|null, name: string, kind: string, parent_id: string|null, position: number, topic?: string|null, last_message_id?: string|null, rate_limit_per_user?: number, overwrites?: any[] }} Channel
 * @typedef {{ id: string, channel_id: string, author: User, content: string, created_at: string, edited_at?: string|null, reply_to?: string|null, mentions?: string[], mention_everyone?: boolean, reactions: {emoji:string,count:number,me:boolean}[], attachments?: import('./attachments.js').Attachment[], embeds?: import('./embeds.js').Embed[], nonce?: string|null, pending?: boolean, failed?: boolean }} Message
 */

export function createStore() {
  const state = {
    /** @type {User|null} */ me: null,
    sessionId: null,
    /** @type {Map<string, any>} */ guilds: new Map(),
    /** @type {Map<string, Channel>} */ channels: new Map(),
    /** channel id → messages, oldest first @type {Map<string, Message[]>} */ messages: new Map(),
    /** channel id → true when the oldest page was reached @type {Map<string, boolean>} */ historyDone: new Map(),
    /** Channels whose cached messages predate a new gateway session (events may have been missed in
     * between): their newest page is fetched again when shown. @type {Set<string>} */ stale: new Set(),
    /** @type {Map<string, {last_read_id: string|null, unread_count: number, mention_count: number}>} */ readStates: new Map(),
    /** @type {Map<string, string>} user id → status */ presences: new Map(),
    /** guild id → (user id → voice state) @type {Map<string, Map<string, any>>} */ voice: new Map(),
    /** channel id → (user id → expires ms) @type {Map<string, Map<string, number>>} */ typing: new Map(),
    /** guild id → (user id → member) @type {Map<string, Map<string, any>>} */ members: new Map(),
    /** @type {Map<string, User>} */ users: new Map(),
    current: { guildId: /** @type {string|null} */ (null), channelId: /** @type {string|null} */ (null) },
    connection: 'connecting',
  };
  /** @type {Set<(s: typeof state, what: string) => void>} */
  const listeners = new Set();

  const notify = (what) => listeners.forEach((l) => l(state, what));

  const putGuild = (g) => {
    const { channels = [], voice_states = [], presences = [], ...rest } = g;
    state.guilds.set(g.id, { ...state.guilds.get(g.id), ...rest });
    for (const c of channels) state.channels.set(c.id, c);
    if (g.voice_states) {
      const m = new Map();
      for (const v of voice_states) if (v.channel_id) m.set(v.user_id, v);
      state.voice.set(g.id, m);
    }
    for (const p of presences) state.presences.set(p.user_id, p.status);
  };

  const msgs = (channelId) => {
    let list = state.messages.get(channelId);
    if (!list) state.messages.set(channelId, (list = []));
    return list;
  };

  /** Inserts or replaces by id (or by nonce for an optimistic message), keeping id order. */
  const upsertMessage = (m) => {
    const list = msgs(m.channel_id);
    let i = list.findIndex((x) => x.id === m.id || (m.nonce && x.nonce === m.nonce && x.author?.id === m.author?.id));
    if (i >= 0) {
      const prev = list[i];
      // Link previews arrive a moment after a message (a MESSAGE_UPDATE with `embeds`): a copy of the same
      // revision without them (a REST answer or history page that was under way meanwhile) is older, and
      // must not take the cards away again.
      const sameRevision = prev.id === m.id && prev.content === m.content && (prev.edited_at ?? null) === (m.edited_at ?? null);
      const embeds = !m.embeds?.length && prev.embeds?.length && sameRevision ? prev.embeds : m.embeds;
      list[i] = { ...m, embeds, pending: false, failed: false };
    } else {
      list.push(m);
    }
    list.sort(byId);
    if (m.author) state.users.set(m.author.id, m.author);
  };

  const unread = (m) => {
    if (!state.me || m.author?.id === state.me.id) return;
    if (state.current.channelId === m.channel_id && typeof document !== 'undefined' && !document.hidden) return;
    const rs = state.readStates.get(m.channel_id) ?? { last_read_id: null, unread_count: 0, mention_count: 0 };
    rs.unread_count += 1;
    if (m.mention_everyone || (m.mentions ?? []).includes(state.me.id)) rs.mention_count += 1;
    state.readStates.set(m.channel_id, rs);
  };

  /** @type {Record<string, (d: any) => void>} */
  const reducers = {
    READY(d) {
      // A READY after the first one is a new session (the old one could not be resumed): what was
      // cached may lack what happened in between.
      if (state.me) for (const id of state.messages.keys()) state.stale.add(id);
      state.me = d.user;
      state.sessionId = d.session_id;
      state.guilds.clear();
      state.channels.clear();
      state.voice.clear();
      for (const g of d.guilds) putGuild(g);
      for (const c of d.private_channels ?? []) state.channels.set(c.id, c);
      state.readStates.clear();
      for (const r of d.read_states ?? []) state.readStates.set(r.channel_id, r);
    },
    GUILD_CREATE: putGuild,
    GUILD_UPDATE: putGuild,
    GUILD_DELETE(d) {
      state.guilds.delete(d.id);
      for (const [id, c] of state.channels) if (c.guild_id === d.id) state.channels.delete(id);
      if (state.current.guildId === d.id) state.current = { guildId: null, channelId: null };
    },
    CHANNEL_CREATE: (c) => state.channels.set(c.id, c),
    CHANNEL_UPDATE: (c) => state.channels.set(c.id, c),
    CHANNEL_DELETE(c) {
      state.channels.delete(c.id);
      state.messages.delete(c.id);
      if (state.current.channelId === c.id) state.current.channelId = null;
    },
    MESSAGE_CREATE(m) {
      // A channel never opened has no list yet: opening it loads its history, this message included
      // (a list made here would hold only this message and hide the history).
      const cached = state.messages.get(m.channel_id);
      const c = state.channels.get(m.channel_id);
      // A replay after a resume repeats messages: one at or before the channel's newest is not new.
      const known = cached
        ? cached.some((x) => x.id === m.id)
        : c?.last_message_id != null && byId(m, { id: c.last_message_id }) <= 0;
      if (cached) upsertMessage(m);
      else if (m.author) state.users.set(m.author.id, m.author);
      if (c) c.last_message_id = m.id;
      const t = state.typing.get(m.channel_id);
      t?.delete(m.author?.id);
      if (!known) unread(m);
    },
    // A whole message again (an edit, or its link previews arrived): replaces the cached copy, embeds
    // included. A message not cached is left to history (and no empty list is made for its channel).
    MESSAGE_UPDATE: (m) => {
      if (state.messages.get(m.channel_id)?.some((x) => x.id === m.id)) upsertMessage(m);
    },
    MESSAGE_DELETE(d) {
      const list = msgs(d.channel_id);
      const i = list.findIndex((x) => x.id === d.id);
      if (i >= 0) list.splice(i, 1);
    },
    MESSAGE_REACTION_ADD: (d) => react(d, +1),
    MESSAGE_REACTION_REMOVE: (d) => react(d, -1),
    MESSAGE_ACK(d) {
      const rs = state.readStates.get(d.channel_id);
      state.readStates.set(d.channel_id, { ...rs, last_read_id: d.message_id, unread_count: 0, mention_count: 0 });
    },
    TYPING_START(d) {
      if (d.user_id === state.me?.id) return;
      let m = state.typing.get(d.channel_id);
      if (!m) state.typing.set(d.channel_id, (m = new Map()));
      m.set(d.user_id, Date.now() + 10_000);
    },
    PRESENCE_UPDATE: (d) => state.presences.set(d.user_id, d.status),
    GUILD_MEMBER_ADD(m) {
      const g = state.guilds.get(m.guild_id);
      if (g) g.member_count = (g.member_count ?? 0) + 1;
      memberMap(m.guild_id).set(m.user.id, m);
      state.users.set(m.user.id, m.user);
    },
    GUILD_MEMBER_UPDATE(m) {
      memberMap(m.guild_id).set(m.user.id, m);
      state.users.set(m.user.id, m.user);
    },
    GUILD_MEMBER_REMOVE(d) {
      const g = state.guilds.get(d.guild_id);
      if (g) g.member_count = Math.max(0, (g.member_count ?? 1) - 1);
      memberMap(d.guild_id).delete(d.user.id);
    },
    GUILD_ROLE_CREATE: (d) => roleUpsert(d.guild_id, d.role),
    GUILD_ROLE_UPDATE: (d) => roleUpsert(d.guild_id, d.role),
    GUILD_ROLE_DELETE(d) {
      const g = state.guilds.get(d.guild_id);
      if (g) g.roles = (g.roles ?? []).filter((r) => r.id !== d.role_id);
    },
    USER_UPDATE(u) {
      state.users.set(u.id, u);
      if (state.me?.id === u.id) state.me = u;
    },
    VOICE_STATE_UPDATE(v) {
      if (!v.guild_id) return;
      let m = state.voice.get(v.guild_id);
      if (!m) state.voice.set(v.guild_id, (m = new Map()));
      if (v.channel_id) m.set(v.user_id, v);
      else m.delete(v.user_id);
    },
  };

  const memberMap = (guildId) => {
    let m = state.members.get(guildId);
    if (!m) state.members.set(guildId, (m = new Map()));
    return m;
  };

  const roleUpsert = (guildId, role) => {
    const g = state.guilds.get(guildId);
    if (!g) return;
    g.roles = [...(g.roles ?? []).filter((r) => r.id !== role.id), role];
  };

  const react = (d, delta) => {
    const m = msgs(d.channel_id).find((x) => x.id === d.message_id);
    if (!m) return;
    const mine = d.user_id === state.me?.id;
    let r = m.reactions.find((x) => x.emoji === d.emoji);
    if (!r && delta > 0) m.reactions.push((r = { emoji: d.emoji, count: 0, me: false }));
    if (!r) return;
    r.count += delta;
    if (mine) r.me = delta > 0;
    if (r.count <= 0) m.reactions = m.reactions.filter((x) => x !== r);
  };

  return {
    state,
    /** @param {(s: typeof state, what: string) => void} fn */
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    /** Applies one gateway dispatch. */
    dispatch(event, data) {
      const r = reducers[event];
      if (!r) return false;
      r(data);
      notify(event);
      return true;
    },
    /** A history page from REST (any order) merged in. */
    /**
     * The newest page of a stale channel: it is the truth for the ids it spans (a message missing from
     * it was deleted meanwhile); older cached messages and unsent ones stay.
     */
    refreshLatest(channelId, page, reachedEnd) {
      state.stale.delete(channelId);
      const ids = new Set(page.map((m) => m.id));
      const oldest = [...page].sort(byId)[0];
      const list = msgs(channelId).filter(
        (m) => m.pending || m.failed || ids.has(m.id) || (!reachedEnd && oldest && byId(m, oldest) < 0),
      );
      state.messages.set(channelId, list);
      for (const m of page) upsertMessage(m);
      if (reachedEnd) state.historyDone.set(channelId, true);
      notify('HISTORY');
    },
    addHistory(channelId, page, reachedEnd) {
      msgs(channelId); // loaded, even when empty
      for (const m of page) upsertMessage(m);
      if (reachedEnd) state.historyDone.set(channelId, true);
      notify('HISTORY');
    },
    /** A message shown before the server acknowledged it. */
    addPending(m) {
      msgs(m.channel_id).push({ ...m, pending: true });
      notify('PENDING');
    },
    /** An unsent message taken back (refused for a reason a retry cannot fix, e.g. slow mode). */
    removePending(channelId, nonce) {
      state.messages.set(channelId, msgs(channelId).filter((x) => !(x.pending && x.nonce === nonce)));
      notify('PENDING');
    },
    markFailed(channelId, nonce, failed) {
      const m = msgs(channelId).find((x) => x.nonce === nonce && x.pending);
      if (m) m.failed = failed;
      notify('PENDING');
    },
    acknowledge: (m) => {
      upsertMessage(m);
      notify('MESSAGE_CREATE');
    },
    setMembers(guildId, list) {
      const m = memberMap(guildId);
      for (const x of list) {
        m.set(x.user.id, x);
        state.users.set(x.user.id, x.user);
      }
      notify('MEMBERS');
    },
    select(guildId, channelId) {
      state.current = { guildId, channelId };
      notify('SELECT');
    },
    setConnection(c) {
      state.connection = c;
      notify('CONNECTION');
    },
    /** Users typing in a channel now (expired entries dropped). */
    typingIn(channelId, now = Date.now()) {
      const m = state.typing.get(channelId);
      if (!m) return [];
      for (const [u, t] of m) if (t < now) m.delete(u);
      return [...m.keys()];
    },
    notify,
  };
}

/** Snowflake order: shorter strings are smaller numbers. */
export function byId(a, b) {
  return a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Consecutive messages of one author within 7 minutes form a group (Discord's look). */
export function groupMessages(list) {
  /** @type {any[][]} */
  const groups = [];
  for (const m of list) {
    const last = groups.at(-1)?.at(-1);
    const close = last && last.author?.id === m.author?.id && Date.parse(m.created_at) - Date.parse(last.created_at) < 7 * 60_000;
    if (close && !m.reply_to) groups.at(-1).push(m);
    else groups.push([m]);
  }
  return groups;
}
