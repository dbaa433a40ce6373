// Parley team app: login, the navigation between sections, and the inbox (the
// conversation list, the open thread and its composer), all kept live by the
// agent WebSocket. The other sections live in their own modules (see nav.js).

import { api, ApiError, enc, getToken, setToken, setUnauthorizedHandler } from './api.js';
import { connectSocket } from './socket.js';
import { closeSection, renderNav, routeSections } from './nav.js';
import { flashTitle, playTone, probe, stopFlash } from './notify.js';
import { attachCanned } from './canned.js';
import { attachControl } from './attach.js';
import { showPerson } from './person.js';
import { button, emitFrame, field, select } from './ui.js';
import {
  STATUS_LABELS,
  authorName,
  conversationName,
  conversationRow,
  h,
  messageView,
  refreshRelativeTimes,
} from './views.js';

const TYPING_EVERY_MS = 3000; // send "typing on" at most this often, "off" after this idle
const TYPING_EXPIRES_MS = 8000; // forget someone's "typing" if their "off" never came
const NEAR_EDGE_PX = 80;

const $ = (id) => document.getElementById(id);
const els = Object.fromEntries(
  [
    'login', 'login-form', 'login-email', 'login-password', 'login-submit', 'login-error',
    'shell', 'app', 'me-name', 'conn', 'logout', 'conversation-list', 'list-status-text', 'list-retry',
    'thread-empty', 'thread-main', 'back', 'thread-dot', 'thread-name', 'thread-sub',
    'thread-status', 'assignee-select', 'close-button', 'reopen-button', 'thread-error',
    'team-filter', 'archived-filter', 'archive-button', 'unarchive-button', 'person-body',
    'participants-body', 'canned-list',
    'messages', 'jump', 'typing', 'composer', 'composer-input', 'composer-note',
    'composer-send', 'composer-error',
  ].map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), $(id)]),
);

// Session state, reset on sign-out.
let me = null;
let socket = null;
let teammates = [];
let clockTimer = null;
const convs = new Map(); // id -> newest known Conversation
const rows = new Map(); // id -> <li> of the list, only for conversations matching the filters
const handledMessages = new Set(); // message ids already applied, so replays and echoes are no-ops
const drafts = new Map(); // conversation id -> unsent composer text
const filter = { status: 'open', assignee: 'all', team: 'all', archived: false };
let list = { gen: 0, cursor: null, done: false, loading: false };
let current = null; // the open thread: {id, els: Map(id -> element), older, loading, ...}
let threadGen = 0;
const typing = new Map(); // "type:id" -> {name, timer}: who is typing in the open thread
let myTyping = { conversationId: null, sentAt: 0, idleTimer: null };
let sendQueue = Promise.resolve(); // keeps our messages in the order they were written

const attentive = () => document.visibilityState === 'visible' && document.hasFocus();
const isMe = (author) => author?.type === 'teammate' && author.id === me?.id;
const mutedForMe = (conv) => !!conv.participants?.some((p) => p.teammate?.id === me.id && p.muted);
const activityOf = (conv) => Date.parse(conv.updated_at ?? conv.last_message?.created_at) || 0;

function matchesFilter(conv) {
  if (conv.status !== filter.status || !!conv.archived !== filter.archived) return false;
  if (filter.team === 'none' ? conv.team : filter.team !== 'all' && conv.team?.id !== filter.team) return false;
  if (filter.assignee === 'me') return conv.assignee?.id === me.id;
  if (filter.assignee === 'none') return !conv.assignee;
  return true;
}

/* ---------- session ---------- */

async function boot() {
  wireUi();
  setUnauthorizedHandler(() => signOut('Your session has expired. Please sign in again.'));
  if (!getToken()) return showLogin('');
  try {
    const { teammate } = await api('GET', '/auth/me');
    startSession(teammate);
  } catch (e) {
    if (e.status !== 401) showLogin(e.message); // a 401 already went through signOut
  }
}

function showLogin(message) {
  els.shell.hidden = true;
  els.login.hidden = false;
  els.loginError.textContent = message;
  els.loginEmail.focus();
}

async function onLoginSubmit(e) {
  e.preventDefault();
  const email = els.loginEmail.value.trim();
  const password = els.loginPassword.value;
  if (!email || !password) {
    els.loginError.textContent = 'Enter your email and password.';
    return;
  }
  setToken(null); // a stale token must not turn a wrong password into "session expired"
  els.loginSubmit.disabled = true;
  els.loginSubmit.textContent = 'Signing in…';
  els.loginError.textContent = '';
  try {
    const res = await api('POST', '/auth/login', { email, password });
    setToken(res.token);
    els.loginPassword.value = '';
    startSession(res.teammate);
  } catch (err) {
    els.loginError.textContent = err.message;
    els.loginPassword.select();
  } finally {
    els.loginSubmit.disabled = false;
    els.loginSubmit.textContent = 'Sign in';
  }
}

function startSession(teammate) {
  me = teammate;
  // Pages read the role to disable what only admins may change.
  document.body.dataset.role = me.role;
  els.login.hidden = true;
  els.shell.hidden = false;
  els.meName.textContent = me.name;
  setConnState(false, 'Connecting…');
  socket = connectSocket(getToken(), {
    onFrame,
    onHello,
    onState: (up) => setConnState(up, up ? 'Live' : 'Reconnecting…'),
    onAuthFailed: () => signOut('Your session has ended. Please sign in again.'),
    // If the token was refused at the upgrade, /auth/me answers 401 and signs us out.
    onDropBeforeHello: () => api('GET', '/auth/me').catch(() => {}),
  });
  clockTimer = setInterval(() => refreshRelativeTimes(els.conversationList), 30_000);
  loadTeammates();
  loadList(true);
  route();
}

function signOut(message = '') {
  setToken(null);
  if (!me) return showLogin(message);
  stopTyping();
  socket?.stop();
  socket = null;
  clearInterval(clockTimer);
  stopFlash();
  closeThread();
  closeSection();
  me = null;
  teammates = [];
  convs.clear();
  rows.clear();
  handledMessages.clear();
  drafts.clear();
  list = { gen: list.gen + 1, cursor: null, done: false, loading: false };
  els.conversationList.replaceChildren();
  setConnState(false, '');
  showLogin(message);
}

async function logout() {
  try {
    await api('POST', '/auth/logout');
  } catch {
    // Signing out locally is what matters.
  }
  signOut();
}

function setConnState(up, text) {
  probe.connected = up;
  els.conn.textContent = text;
  els.conn.classList.toggle('is-up', up);
}

async function loadTeammates() {
  // Both asked at once: neither waits for the other.
  const [mates, teamList] = [api('GET', '/teammates'), api('GET', '/teams')];
  try {
    teammates = (await mates).items ?? [];
  } catch {
    teammates = []; // the select still offers "Unassigned" and the current assignee
  }
  try {
    const teams = await teamList;
    const keep = [...els.teamFilter.options].slice(0, 2);
    els.teamFilter.replaceChildren(...keep, ...teams.map((t) => h('option', { value: t.id }, t.name)));
    els.teamFilter.value = filter.team;
  } catch {
    // Without the teams the filter still offers all teams and none.
  }
  if (current && convs.has(current.id)) renderHeader(convs.get(current.id));
}

/* ---------- conversation list ---------- */

async function loadList(reset = false) {
  if (reset) {
    list = { gen: list.gen + 1, cursor: null, done: false, loading: false };
    rows.clear();
    els.conversationList.replaceChildren();
  }
  if (list.loading || list.done) return;
  const gen = list.gen;
  list.loading = true;
  setListStatus('Loading…');
  const query = new URLSearchParams({ status: filter.status, archived: String(filter.archived) });
  if (filter.team !== 'all') query.set('team', filter.team);
  if (filter.assignee !== 'all') query.set('assignee', filter.assignee);
  if (list.cursor) query.set('cursor', list.cursor);
  try {
    const page = await api('GET', `/conversations?${query}`);
    if (gen !== list.gen) return;
    for (const item of page.items ?? []) {
      if (rows.has(item.id)) continue; // already placed by a live update
      const conv = remember(item);
      if (matchesFilter(conv)) appendRow(conv);
    }
    list.cursor = page.next_cursor ?? null;
    list.done = !list.cursor;
    list.loading = false;
    setListStatus();
    // Too short to scroll, or scrolled to the end while loading: no scroll event will ask.
    if (nearListEnd()) loadList();
  } catch (e) {
    if (gen !== list.gen) return;
    list.loading = false;
    setListStatus(`Could not load conversations: ${e.message}`, true);
  }
}

function nearListEnd() {
  const el = els.conversationList;
  // A hidden list (phone width, thread shown) has no size and is not "at the end".
  return el.clientHeight > 0 && el.scrollTop + el.clientHeight >= el.scrollHeight - NEAR_EDGE_PX;
}

function setListStatus(text, retry = false) {
  els.listStatusText.textContent = text ?? (rows.size ? '' : 'No conversations here');
  els.listRetry.hidden = !retry;
}

function rowFor(conv) {
  const button = conversationRow(conv, { selected: current?.id === conv.id, meId: me.id });
  button.addEventListener('click', () => {
    location.hash = `#/c/${enc(conv.id)}`;
    if (current?.id === conv.id) showThreadView(); // same hash: no hashchange
  });
  return h('li', { 'data-id': conv.id }, button);
}

function appendRow(conv) {
  const li = rowFor(conv);
  els.conversationList.append(li);
  rows.set(conv.id, li);
}

// Show a conversation's latest state in the list: moved to the top on new messages,
// updated in place otherwise, removed once it no longer matches the filters.
function placeRow(conv, toTop) {
  const old = rows.get(conv.id);
  if (!matchesFilter(conv)) {
    if (old) {
      old.remove();
      rows.delete(conv.id);
      setListStatus();
    }
    return;
  }
  const li = rowFor(conv);
  const hadFocus = old?.contains(document.activeElement);
  if (old && !toTop) old.replaceWith(li);
  else if (toTop) {
    old?.remove();
    els.conversationList.prepend(li);
  } else if (!insertByActivity(li, conv)) return; // belongs to a page not loaded yet
  rows.set(conv.id, li);
  if (hadFocus) li.firstElementChild.focus();
  setListStatus();
}

function insertByActivity(li, conv) {
  const at = activityOf(conv);
  for (const other of els.conversationList.children) {
    const otherConv = convs.get(other.dataset.id);
    if (!otherConv || activityOf(otherConv) < at) {
      els.conversationList.insertBefore(li, other);
      return true;
    }
  }
  if (!list.done) return false;
  els.conversationList.append(li);
  return true;
}

function markSelectedRow() {
  for (const [id, li] of rows) li.firstElementChild.setAttribute('aria-current', String(id === current?.id));
}

// Merge a conversation into what we know. The thread being looked at never shows unread.
function remember(conv) {
  const prev = convs.get(conv.id);
  const merged = { ...prev, ...conv };
  // Summaries pushed to the whole team may carry no per-teammate count: keep ours.
  if (typeof conv.unread !== 'number') merged.unread = prev?.unread ?? 0;
  const viewed = current?.id === merged.id && !current.loading;
  if (viewed && (attentive() || current.seenId === merged.last_message?.id)) merged.unread = 0;
  convs.set(merged.id, merged);
  return merged;
}

function setFilter(key, value) {
  if (filter[key] === value) return;
  filter[key] = value;
  if (key === 'status' || key === 'assignee') {
    const attr = `data-${key}`;
    for (const b of document.querySelectorAll(`[${attr}]`)) b.setAttribute('aria-pressed', String(b.getAttribute(attr) === value));
  }
  loadList(true);
}

/* ---------- socket frames ---------- */

function onHello(_frame, reset) {
  probe.seq = socket.seq;
  if (reset) {
    // The server could not replay what we missed: fetch everything again.
    loadList(true);
    if (current) openConversation(current.id);
  }
  // A "seen" could not go out while offline; one for the thread just opened still counts.
  markSeen(current?.seenId === null);
}

function onFrame(frame) {
  probe.seq = socket?.seq ?? probe.seq;
  switch (frame.type) {
    case 'message.created':
      // The frame's conversation leaves out its last message: it is `message`.
      if (frame.conversation && frame.message) frame.conversation.last_message ??= frame.message;
      if (frame.message) onMessageCreated(frame.message, frame.conversation);
      break;
    case 'message.updated':
      if (frame.message) onMessageUpdated(frame.message);
      break;
    case 'message.deleted':
      onMessageDeleted(frame.message_id, frame.conversation_id);
      break;
    case 'conversation.updated':
      if (frame.conversation) applyConversation(frame.conversation);
      break;
    case 'conversation.deleted':
      onConversationDeleted(frame.conversation_id);
      break;
    case 'typing':
      onTyping(frame);
      break;
    case 'presence.update':
      onPresence(frame.person_id, frame.online);
      break;
    case 'error':
      if (frame.code === 'resync_required') onHello(frame, true); // away too long to replay: reload
      else console.warn('Parley socket error:', frame.code, frame.message);
      break;
  }
  emitFrame(frame); // the People and Outbound sections follow the same socket
}

// Shared by socket frames and our own sends (summary is null for those).
async function onMessageCreated(msg, summary) {
  const id = msg.conversation_id;
  let prev = convs.get(id);
  if (!summary && !prev) {
    try {
      summary = await api('GET', `/conversations/${enc(id)}`);
    } catch {
      return;
    }
    prev = convs.get(id);
  }
  const fresh = !handledMessages.has(msg.id) && prev?.last_message?.id !== msg.id;
  handledMessages.add(msg.id);
  const viewing = current?.id === id;
  if (viewing) showInThread(msg);
  if (!fresh) {
    if (summary) applyConversation(summary);
    return;
  }

  const inbound = msg.author?.type === 'person';
  const conv = remember(summary ?? { ...prev, last_message: msg, updated_at: msg.created_at });
  const seenNow = viewing && attentive();
  if (inbound && !seenNow) conv.unread = Math.max(conv.unread || 0, (prev?.unread || 0) + 1);
  placeRow(conv, true);
  if (viewing) {
    renderHeader(conv);
    if (seenNow) markSeen();
  }
  if (inbound && !mutedForMe(conv)) {
    playTone();
    if (document.hidden || !viewing) flashTitle(id);
  }
}

function applyConversation(summary) {
  const conv = remember(summary);
  placeRow(conv, false);
  if (current?.id === conv.id) renderHeader(conv);
}

function onMessageUpdated(msg) {
  const old = current?.id === msg.conversation_id && current.els.get(msg.id);
  if (old) {
    const conv = convs.get(msg.conversation_id);
    const el = messageView(msg, conv?.person, !!conv?.transparent);
    old.replaceWith(el);
    current.els.set(msg.id, el);
  }
  const conv = convs.get(msg.conversation_id);
  if (conv?.last_message?.id === msg.id) {
    conv.last_message = msg;
    placeRow(conv, false);
  }
}

async function onMessageDeleted(messageId, conversationId) {
  const el = current?.id === conversationId && current.els.get(messageId);
  if (el) {
    el.remove();
    current.els.delete(messageId);
  }
  // The list preview needs the message before it, which only the server knows.
  if (convs.get(conversationId)?.last_message?.id === messageId) {
    try {
      applyConversation(await api('GET', `/conversations/${enc(conversationId)}`));
    } catch {
      // Keep the old preview; the next update will fix it.
    }
  }
}

// An admin deleted a conversation for good: it leaves the list and the thread.
function onConversationDeleted(id) {
  rows.get(id)?.remove();
  rows.delete(id);
  convs.delete(id);
  drafts.delete(id);
  if (current?.id === id) {
    location.hash = '';
    closeThread();
  }
}

function onTyping(frame) {
  if (!current || frame.conversation_id !== current.id || !frame.author || isMe(frame.author)) return;
  const key = `${frame.author.type}:${frame.author.id}`;
  clearTimeout(typing.get(key)?.timer);
  typing.delete(key);
  if (frame.on) {
    const name = authorName(frame.author, convs.get(current.id)?.person);
    const timer = setTimeout(() => {
      typing.delete(key);
      renderTyping();
    }, TYPING_EXPIRES_MS);
    typing.set(key, { name, timer });
  }
  renderTyping();
}

function renderTyping() {
  const names = [...typing.values()].map((t) => t.name);
  els.typing.textContent =
    names.length === 0 ? ''
    : names.length === 1 ? `${names[0]} is typing…`
    : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
}

function clearTyping() {
  for (const t of typing.values()) clearTimeout(t.timer);
  typing.clear();
  renderTyping();
}

function onPresence(personId, online) {
  for (const conv of convs.values()) {
    if (conv.person?.id !== personId) continue;
    conv.person = { ...conv.person, online: !!online };
    if (rows.has(conv.id)) placeRow(conv, false);
    if (current?.id === conv.id) renderPresence(conv);
  }
}

/* ---------- thread ---------- */

function route() {
  if (!me) return;
  if (!routeSections()) {
    closeThread(); // another section is showing: nothing here counts as read
    return;
  }
  const match = /^#\/c\/(.+)$/.exec(location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  if (!id) closeThread();
  else if (id !== current?.id) openConversation(id);
  else showThreadView();
}

function showThreadView() {
  els.app.classList.add('show-thread');
}

function closeThread() {
  leaveThread();
  current = null;
  threadGen++;
  els.threadMain.hidden = true;
  els.threadEmpty.hidden = false;
  els.app.classList.remove('show-thread');
  markSelectedRow();
}

// Before switching away: stop "typing" and keep the unsent text for later.
function leaveThread() {
  if (!current) return;
  stopTyping();
  drafts.set(current.id, els.composerInput.value);
  clearTyping();
}

async function openConversation(id) {
  leaveThread();
  const gen = ++threadGen;
  current = { id, els: new Map(), older: null, loadingOlder: false, loading: true, buffer: [], seenId: null };
  els.threadEmpty.hidden = true;
  els.threadMain.hidden = false;
  showThreadView();
  markSelectedRow();
  els.messages.replaceChildren();
  els.messages.dataset.history = 'loading';
  els.jump.hidden = true;
  els.threadError.textContent = '';
  els.composerError.textContent = '';
  els.composerInput.value = drafts.get(id) ?? '';
  // Files picked for one conversation never go to another.
  files.clear();
  if (convs.has(id)) renderHeader(convs.get(id));
  else {
    els.threadName.textContent = 'Loading…';
    els.threadSub.textContent = els.threadStatus.textContent = '';
  }

  try {
    const [conv, page] = await Promise.all([
      api('GET', `/conversations/${enc(id)}`),
      api('GET', `/conversations/${enc(id)}/messages?limit=50`),
    ]);
    if (gen !== threadGen) return;
    current.loading = false;
    const merged = remember(conv);
    placeRow(merged, false);
    renderHeader(merged);
    showPerson(els.personBody, merged.person?.id);
    for (const msg of page.items ?? []) addMessage(msg, 'end');
    for (const msg of current.buffer) addMessage(msg, 'end'); // arrived while loading
    current.buffer = [];
    current.older = page.next_cursor ?? null;
    els.messages.dataset.history = current.older ? 'more' : 'start';
    scrollToBottom();
    markSeen(true); // opening it is looking at it
    fillThread();
  } catch (e) {
    if (gen !== threadGen) return;
    current.loading = false;
    els.messages.dataset.history = '';
    els.threadError.textContent =
      e instanceof ApiError && e.status === 404 ? 'This conversation does not exist or was deleted.' : e.message;
  }
}

function addMessage(msg, where) {
  if (current.els.has(msg.id)) return false;
  handledMessages.add(msg.id);
  const conv = convs.get(current.id);
  const el = messageView(msg, conv?.person, !!conv?.transparent);
  current.els.set(msg.id, el);
  if (where === 'end') els.messages.append(el);
  else els.messages.prepend(el);
  return true;
}

function showInThread(msg) {
  if (current.loading) {
    current.buffer.push(msg);
    return;
  }
  const follow = nearBottom() || isMe(msg.author);
  if (!addMessage(msg, 'end')) return;
  if (msg.author) {
    clearTimeout(typing.get(`${msg.author.type}:${msg.author.id}`)?.timer);
    typing.delete(`${msg.author.type}:${msg.author.id}`);
    renderTyping();
  }
  if (follow) scrollToBottom();
  else els.jump.hidden = false;
}

async function loadOlder() {
  if (!current || current.loading || current.loadingOlder || !current.older) return;
  const { id } = current;
  const gen = threadGen;
  current.loadingOlder = true;
  els.messages.dataset.history = 'loading';
  try {
    const page = await api(
      'GET',
      `/conversations/${enc(id)}/messages?limit=50&before=${enc(current.older)}`,
    );
    if (gen !== threadGen) return;
    const el = els.messages;
    const fromBottom = el.scrollHeight - el.scrollTop; // keep what the agent is reading in place
    const items = page.items ?? [];
    for (let i = items.length - 1; i >= 0; i--) addMessage(items[i], 'start');
    current.older = page.next_cursor ?? null;
    el.dataset.history = current.older ? 'more' : 'start';
    el.scrollTop = el.scrollHeight - fromBottom;
    current.loadingOlder = false;
    fillThread();
  } catch (e) {
    if (gen !== threadGen) return;
    current.loadingOlder = false;
    els.messages.dataset.history = 'more';
    els.threadError.textContent = `Could not load earlier messages: ${e.message}`;
  }
}

// Too short to scroll, or still at the top: no scroll event will ask for more.
function fillThread() {
  if (els.messages.scrollTop < NEAR_EDGE_PX) loadOlder();
}

function nearBottom() {
  const el = els.messages;
  return el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_EDGE_PX;
}

function scrollToBottom() {
  els.messages.scrollTop = els.messages.scrollHeight;
  els.jump.hidden = true;
}

// Tell the server the newest message was read; `force` when the agent just opened it.
function markSeen(force = false) {
  if (!current || current.loading || (!force && !attentive())) return;
  stopFlash(current.id);
  const conv = convs.get(current.id);
  if (conv?.unread) {
    conv.unread = 0;
    placeRow(conv, false);
  }
  const newest = els.messages.lastElementChild?.dataset.messageId;
  if (!newest || newest === current.seenId) return;
  if (socket?.send({ type: 'seen', conversation_id: current.id, message_id: newest })) current.seenId = newest;
}

function renderHeader(conv) {
  // A shared chat is with all its members, who see each other's messages.
  const members = conv.transparent && conv.members?.length ? conv.members : null;
  els.threadName.textContent = conversationName(conv);
  els.threadName.dataset.members = members ? members.length : '';
  const shared = members && `Shared chat: ${members.length} people see each other's messages`;
  els.threadSub.textContent = [conv.title, shared || conv.person?.email].filter(Boolean).join(' · ');
  renderPresence(conv);
  els.threadStatus.textContent = STATUS_LABELS[conv.status] ?? String(conv.status ?? '');
  els.threadStatus.dataset.status = conv.status;
  els.closeButton.hidden = conv.status === 'closed';
  els.reopenButton.hidden = conv.status === 'open';
  els.archiveButton.hidden = !!conv.archived;
  renderParticipants(conv);
  els.unarchiveButton.hidden = !conv.archived;

  const options = [h('option', { value: '' }, 'Unassigned')];
  for (const t of teammates) options.push(h('option', { value: t.id }, t.id === me.id ? `${t.name} (you)` : t.name));
  if (conv.assignee && !teammates.some((t) => t.id === conv.assignee.id)) {
    options.push(h('option', { value: conv.assignee.id }, conv.assignee.name));
  }
  els.assigneeSelect.replaceChildren(...options);
  els.assigneeSelect.value = conv.assignee?.id ?? '';
}

const PARTICIPANT_ROLES = [
  ['write', 'Can write'],
  ['read_only', 'Read only'],
  ['watcher', 'Watcher'],
];

// Teammates in the conversation with their roles; each change answers the
// whole conversation, which is rendered again.
function renderParticipants(conv) {
  const id = conv.id;
  const change = async (req) => {
    els.threadError.textContent = '';
    try {
      applyConversation(await req());
    } catch (e) {
      if (current?.id === id) els.threadError.textContent = e.message;
    }
  };
  const put = (teammateId, role) => change(() => api('POST', `/conversations/${enc(id)}/participants`, { teammate_id: teammateId, role }));
  const rows = (conv.participants ?? []).map((p) => {
    const role = select(PARTICIPANT_ROLES, { 'data-testid': 'participant-role', 'aria-label': `${p.teammate.name}'s role` });
    role.value = p.role;
    role.addEventListener('change', () => put(p.teammate.id, role.value));
    const remove = button('Remove', () => change(() => api('DELETE', `/conversations/${enc(id)}/participants/${enc(p.teammate.id)}`)), {
      class: 'btn btn-quiet btn-small',
      'aria-label': `Remove ${p.teammate.name}`,
      'data-testid': 'participant-remove',
    });
    return h('li', { class: 'participant', 'data-testid': 'participant', 'data-teammate-id': p.teammate.id, 'data-role': p.role }, h('span', {}, p.teammate.name), role, remove);
  });
  const inIt = new Set((conv.participants ?? []).map((p) => p.teammate.id));
  const who = select(teammates.filter((t) => !inIt.has(t.id)).map((t) => [t.id, t.name]), { 'data-testid': 'participant-add-who' });
  const role = select(PARTICIPANT_ROLES, { 'data-testid': 'participant-add-role' });
  const add = button('Add', () => who.value && put(who.value, role.value), { class: 'btn btn-small', 'data-testid': 'participant-add' });
  els.participantsBody.replaceChildren(
    rows.length ? h('ul', { class: 'plain-list' }, rows) : h('p', { class: 'muted' }, 'No one has joined yet'),
    who.options.length ? h('div', { class: 'filter-row' }, field('Teammate', who, { className: 'field-inline' }), field('Role', role, { className: 'field-inline' }), add) : null,
  );
}

function renderPresence(conv) {
  const online = !!conv.person?.online;
  els.threadDot.className = online ? 'dot is-online' : 'dot';
  els.threadDot.title = online ? 'Online' : 'Offline';
  els.threadDot.setAttribute('aria-label', els.threadDot.title);
}

// `changes` for a PATCH, or `archive` / `unarchive` for their own POSTs.
async function patchConversation(changes) {
  if (!current) return;
  const { id } = current;
  const controls = [els.assigneeSelect, els.closeButton, els.reopenButton, els.archiveButton, els.unarchiveButton];
  els.threadError.textContent = '';
  controls.forEach((c) => (c.disabled = true));
  try {
    const path = `/conversations/${enc(id)}`;
    applyConversation(await (typeof changes === 'string' ? api('POST', `${path}/${changes}`) : api('PATCH', path, changes)));
  } catch (e) {
    if (current?.id === id) {
      els.threadError.textContent = e.message;
      if (convs.has(id)) renderHeader(convs.get(id)); // put the select back
    }
  } finally {
    controls.forEach((c) => (c.disabled = false));
  }
}

/* ---------- composer ---------- */

let canned = null;
const files = attachControl({ testid: 'composer-attach' });

function onComposerKeydown(e) {
  if (canned?.onKeydown(e)) return;
  if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
  e.preventDefault();
  sendComposer();
}

function sendComposer() {
  const text = els.composerInput.value;
  const body = text.trim();
  if (!current || (!body && files.count() === 0)) return;
  if (files.busy()) {
    files.errorSlot.textContent = 'Wait until every file has uploaded, or remove it.';
    return;
  }
  const kind = els.composerNote.checked ? 'note' : 'chat';
  const id = current.id;
  const attachments = files.ids();
  stopTyping();
  els.composerInput.value = '';
  els.composerError.textContent = '';
  sendQueue = sendQueue.then(async () => {
    try {
      const msg = await api('POST', `/conversations/${enc(id)}/messages`, { body, kind, attachments });
      if (current?.id === id) files.clear();
      await onMessageCreated(msg, null);
    } catch (e) {
      // Give the text back (ahead of anything typed since) so nothing is lost;
      // the files stay picked.
      if (current?.id === id) {
        const typed = els.composerInput.value;
        els.composerInput.value = typed ? `${text}\n${typed}` : text;
        if (e.field?.startsWith('attachments')) files.errorSlot.textContent = e.message;
        else els.composerError.textContent = e.message;
      } else {
        drafts.set(id, [text, drafts.get(id)].filter(Boolean).join('\n'));
      }
    }
  });
}

// Typing signals go to the visitor, so never while writing an internal note.
function onComposerInput() {
  if (!current || els.composerNote.checked || !els.composerInput.value.trim()) return;
  const now = Date.now();
  if (myTyping.conversationId !== current.id || now - myTyping.sentAt >= TYPING_EVERY_MS) {
    if (socket?.send({ type: 'typing', conversation_id: current.id, on: true })) {
      myTyping.conversationId = current.id;
      myTyping.sentAt = now;
    }
  }
  clearTimeout(myTyping.idleTimer);
  myTyping.idleTimer = setTimeout(stopTyping, TYPING_EVERY_MS);
}

function stopTyping() {
  clearTimeout(myTyping.idleTimer);
  if (myTyping.conversationId) socket?.send({ type: 'typing', conversation_id: myTyping.conversationId, on: false });
  myTyping = { conversationId: null, sentAt: 0, idleTimer: null };
}

function onNoteToggle() {
  const note = els.composerNote.checked;
  els.composer.classList.toggle('is-note', note);
  els.composerSend.textContent = note ? 'Add note' : 'Send';
  els.composerInput.placeholder = note
    ? 'Write an internal note… (only teammates see it)'
    : 'Reply to the customer… (Enter to send, Shift+Enter for a new line, / for saved replies)';
  if (note) stopTyping();
}

/* ---------- wiring ---------- */

function wireUi() {
  renderNav(logout);
  els.loginForm.addEventListener('submit', onLoginSubmit);
  els.logout.addEventListener('click', logout);
  els.listRetry.addEventListener('click', () => loadList(true));
  for (const b of document.querySelectorAll('[data-status]')) b.addEventListener('click', () => setFilter('status', b.dataset.status));
  for (const b of document.querySelectorAll('[data-assignee]')) b.addEventListener('click', () => setFilter('assignee', b.dataset.assignee));
  els.conversationList.addEventListener('scroll', () => nearListEnd() && loadList());

  els.back.addEventListener('click', () => (location.hash = ''));
  els.assigneeSelect.addEventListener('change', () => patchConversation({ assignee_id: els.assigneeSelect.value || null }));
  els.closeButton.addEventListener('click', () => patchConversation({ status: 'closed' }));
  els.archiveButton.addEventListener('click', () => patchConversation('archive'));
  els.unarchiveButton.addEventListener('click', () => patchConversation('unarchive'));
  els.teamFilter.addEventListener('change', () => setFilter('team', els.teamFilter.value));
  els.archivedFilter.addEventListener('change', () => setFilter('archived', els.archivedFilter.checked));
  els.reopenButton.addEventListener('click', () => patchConversation({ status: 'open' }));
  els.messages.addEventListener('scroll', () => {
    if (nearBottom()) els.jump.hidden = true;
    if (els.messages.scrollTop < NEAR_EDGE_PX) loadOlder();
  });
  els.jump.addEventListener('click', scrollToBottom);

  els.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    sendComposer();
  });
  canned = attachCanned(els.composerInput, els.cannedList);
  els.composer.querySelector('.composer-bar').before(files.el);
  els.composerInput.addEventListener('keydown', onComposerKeydown);
  els.composerInput.addEventListener('input', onComposerInput);
  els.composerNote.addEventListener('change', onNoteToggle);

  addEventListener('hashchange', route);
  // Coming back to the tab is when the open conversation counts as read.
  addEventListener('focus', () => markSeen());
  document.addEventListener('visibilitychange', () => markSeen());
}

boot();
