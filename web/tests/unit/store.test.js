import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStore, groupMessages, byId } from '../../assets/js/store.js';

const me = { id: '1', username: 'me' };
const other = { id: '2', username: 'other' };
const msg = (id, author = other, extra = {}) => ({
  id, channel_id: '100', author, content: `m${id}`, created_at: new Date((Number(id) || 0) * 1000).toISOString(), reactions: [], mentions: [], ...extra,
});

function ready() {
  const s = createStore();
  s.dispatch('READY', {
    session_id: 'sess',
    user: me,
    guilds: [{ id: '10', name: 'G', owner_id: '1', roles: [], member_count: 2,
      channels: [{ id: '100', guild_id: '10', name: 'general', kind: 'text', parent_id: null, position: 0 }, { id: '101', guild_id: '10', name: 'other', kind: 'text', parent_id: null, position: 1 }],
      voice_states: [{ guild_id: '10', channel_id: '200', user_id: '2', self_mute: true, self_deaf: false }],
      presences: [{ user_id: '2', status: 'idle' }] }],
    private_channels: [],
    read_states: [{ channel_id: '100', last_read_id: null, unread_count: 3, mention_count: 1 }],
  });
  return s;
}

test('READY fills guilds, channels, voice states, presences and read states', () => {
  const s = ready().state;
  assert.equal(s.me?.id, '1');
  assert.equal(s.guilds.get('10').name, 'G');
  assert.equal(s.channels.size, 2);
  assert.equal(s.voice.get('10').get('2').self_mute, true);
  assert.equal(s.presences.get('2'), 'idle');
  assert.equal(s.readStates.get('100').mention_count, 1);
});

test('messages stay in id order and an acknowledged message replaces its pending copy by nonce', () => {
  const st = ready();
  st.addHistory('100', [], true); // the channel was opened
  st.dispatch('MESSAGE_CREATE', msg('20'));
  st.addPending({ ...msg('pending-x', me), nonce: 'n1' });
  st.dispatch('MESSAGE_CREATE', msg('9'));
  st.dispatch('MESSAGE_CREATE', msg('30', me, { nonce: 'n1' }));
  const list = st.state.messages.get('100');
  assert.deepEqual(list.map((m) => m.id), ['9', '20', '30']);
  assert.equal(list.at(-1).pending, false);
});

test('a repeated MESSAGE_CREATE (replay after resume) is not counted twice', () => {
  const st = ready();
  st.state.current.channelId = '101';
  st.dispatch('MESSAGE_CREATE', msg('40'));
  st.dispatch('MESSAGE_CREATE', msg('40'));
  assert.equal(st.state.readStates.get('100').unread_count, 4);
  assert.equal(st.state.messages.get('100'), undefined, 'a channel never opened keeps no partial list');
  st.addHistory('100', [], true);
  st.dispatch('MESSAGE_CREATE', msg('41'));
  st.dispatch('MESSAGE_CREATE', msg('41'));
  assert.equal(st.state.messages.get('100').length, 1);
  assert.equal(st.state.readStates.get('100').unread_count, 5);
});

test('a message in a channel never opened leaves its history to be loaded when it is opened', () => {
  const st = ready();
  st.dispatch('MESSAGE_CREATE', msg('50'));
  assert.equal(st.state.messages.has('100'), false);
  assert.equal(st.state.channels.get('100').last_message_id, '50');
});

test('a message mentioning me raises the mention badge; my own never raises unread', () => {
  const st = ready();
  st.dispatch('MESSAGE_CREATE', msg('41', other, { mentions: ['1'] }));
  st.dispatch('MESSAGE_CREATE', msg('42', me));
  const rs = st.state.readStates.get('100');
  assert.equal(rs.unread_count, 4);
  assert.equal(rs.mention_count, 2);
  st.dispatch('MESSAGE_ACK', { channel_id: '100', message_id: '42' });
  assert.equal(st.state.readStates.get('100').unread_count, 0);
});

test('edits replace content, deletes remove, reactions count and track mine', () => {
  const st = ready();
  st.addHistory('100', [], true); // the channel was opened
  st.dispatch('MESSAGE_CREATE', msg('50'));
  st.dispatch('MESSAGE_UPDATE', { ...msg('50'), content: 'edited', edited_at: '2026-01-01T00:00:00Z' });
  assert.equal(st.state.messages.get('100')[0].content, 'edited');
  const r = { channel_id: '100', message_id: '50', emoji: '👍' };
  st.dispatch('MESSAGE_REACTION_ADD', { ...r, user_id: '2' });
  st.dispatch('MESSAGE_REACTION_ADD', { ...r, user_id: '1' });
  assert.deepEqual(st.state.messages.get('100')[0].reactions, [{ emoji: '👍', count: 2, me: true }]);
  st.dispatch('MESSAGE_REACTION_REMOVE', { ...r, user_id: '1' });
  st.dispatch('MESSAGE_REACTION_REMOVE', { ...r, user_id: '2' });
  assert.deepEqual(st.state.messages.get('100')[0].reactions, []);
  st.dispatch('MESSAGE_DELETE', { id: '50', channel_id: '100' });
  assert.equal(st.state.messages.get('100').length, 0);
});

test("link previews arrive as a MESSAGE_UPDATE of the whole message and replace it, embeds included", () => {
  const st = ready();
  st.addHistory('100', [], true); // the channel was opened
  const card = { url: 'https://example.org/', title: 'Example', description: 'Words', site_name: 'Ex', image_url: '/api/v1/link-previews/image?url=x&sig=y' };
  const seen = [];
  st.subscribe((_s, what) => seen.push(what));
  st.dispatch('MESSAGE_CREATE', msg('60', other, { content: 'look https://example.org/', embeds: [] }));
  st.dispatch('MESSAGE_UPDATE', msg('60', other, { content: 'look https://example.org/', embeds: [card] }));
  assert.deepEqual(st.state.messages.get('100')[0].embeds, [card]);
  assert.deepEqual(seen, ['MESSAGE_CREATE', 'MESSAGE_UPDATE'], 'views hear it and render the card');
  // An edit that drops the link drops the card.
  st.dispatch('MESSAGE_UPDATE', msg('60', other, { content: 'no link', edited_at: '2026-01-01T00:00:00Z', embeds: [] }));
  assert.deepEqual(st.state.messages.get('100')[0].embeds, []);
  assert.equal(st.state.messages.get('100').length, 1);
});

test('an older copy of the same message (no previews yet) does not take its cards away', () => {
  const st = ready();
  const card = { url: 'https://example.org/', title: 'Example', description: null, site_name: null, image_url: null };
  st.addPending({ ...msg('tmp', me, { content: 'https://example.org/' }), nonce: 'n9' });
  // The gateway was quicker than the REST answer: the message, then its previews…
  st.dispatch('MESSAGE_CREATE', msg('70', me, { content: 'https://example.org/', nonce: 'n9', embeds: [] }));
  st.dispatch('MESSAGE_UPDATE', msg('70', me, { content: 'https://example.org/', nonce: 'n9', embeds: [card] }));
  // …then the POST's answer, and a history page that was under way.
  st.acknowledge(msg('70', me, { content: 'https://example.org/', nonce: 'n9', embeds: [] }));
  st.addHistory('100', [msg('70', me, { content: 'https://example.org/', embeds: [] })], true);
  const list = st.state.messages.get('100');
  assert.deepEqual(list.map((m) => m.id), ['70']);
  assert.deepEqual(list[0].embeds, [card]);
  assert.equal(list[0].pending, false);
});

test('an update of a message not cached is left to history (no empty list is made for its channel)', () => {
  const st = ready();
  st.dispatch('MESSAGE_UPDATE', { ...msg('80'), channel_id: '101', embeds: [] });
  assert.equal(st.state.messages.has('101'), false);
});

test('voice state updates move, mute and remove users', () => {
  const st = ready();
  st.dispatch('VOICE_STATE_UPDATE', { guild_id: '10', channel_id: '200', user_id: '1', self_mute: false, self_deaf: false });
  assert.equal(st.state.voice.get('10').size, 2);
  st.dispatch('VOICE_STATE_UPDATE', { guild_id: '10', channel_id: null, user_id: '2', self_mute: false, self_deaf: false });
  assert.deepEqual([...st.state.voice.get('10').keys()], ['1']);
});

test('typing expires after ten seconds and never lists me', () => {
  const st = ready();
  st.dispatch('TYPING_START', { channel_id: '100', user_id: '2' });
  st.dispatch('TYPING_START', { channel_id: '100', user_id: '1' });
  assert.deepEqual(st.typingIn('100'), ['2']);
  assert.deepEqual(st.typingIn('100', Date.now() + 11_000), []);
});

test('deleting the guild I am looking at clears the selection and its channels', () => {
  const st = ready();
  st.select('10', '100');
  st.dispatch('GUILD_DELETE', { id: '10' });
  assert.equal(st.state.guilds.size, 0);
  assert.equal(st.state.channels.size, 0);
  assert.equal(st.state.current.guildId, null);
});

test('subscribers hear every applied event; unknown events are ignored', () => {
  const st = ready();
  const seen = [];
  st.subscribe((_s, what) => seen.push(what));
  assert.equal(st.dispatch('SOMETHING_NEW', {}), false);
  st.dispatch('PRESENCE_UPDATE', { user_id: '2', status: 'online' });
  assert.deepEqual(seen, ['PRESENCE_UPDATE']);
});

test('messages of one author within seven minutes group together; a reply starts a group', () => {
  const list = [msg('1'), msg('2'), msg('3', me), msg('4', me, { reply_to: '3' }), msg('1000', me)].sort(byId);
  assert.deepEqual(groupMessages(list).map((g) => g.map((m) => m.id)), [['1', '2'], ['3'], ['4'], ['1000']]);
});

test('snowflake order compares as numbers, not strings', () => {
  assert.deepEqual([{ id: '10' }, { id: '9' }, { id: '100' }].sort(byId).map((x) => x.id), ['9', '10', '100']);
});

test('a second READY (a new session) marks cached channels stale; their newest page replaces what it spans', () => {
  const s = ready();
  s.addHistory('100', [msg('5'), msg('6'), msg('7')], false);
  s.addPending({ id: 'tmp', nonce: 'n1', channel_id: '100', author: me, content: 'unsent', reactions: [], mentions: [] });
  assert.equal(s.state.stale.size, 0, 'the first READY marks nothing');
  s.dispatch('READY', { session_id: 'sess2', user: me, guilds: [], private_channels: [], read_states: [] });
  assert.ok(s.state.stale.has('100'));
  // Meanwhile 7 was deleted, 6 edited and 8 posted; 5 is older than the page and stays.
  s.refreshLatest('100', [msg('6', other, { content: 'edited' }), msg('8')], false);
  const ids = s.state.messages.get('100').map((m) => m.id);
  assert.deepEqual(ids.filter((id) => id !== 'tmp'), ['5', '6', '8']);
  assert.ok(ids.includes('tmp'), 'an unsent message is kept');
  assert.equal(s.state.messages.get('100').find((m) => m.id === '6').content, 'edited');
  assert.ok(!s.state.stale.has('100'));
});
