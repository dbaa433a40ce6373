// DOM builders and formatting. Server data only ever reaches the page as text
// nodes or attribute values, never as markup.

import { attachmentsView } from './attach.js';

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat().filter((c) => c != null && c !== false));
  return el;
}

export function personName(person) {
  return person?.name || `Visitor ${String(person?.id ?? '').slice(-4)}`;
}

export function authorName(author, person) {
  if (author?.name) return author.name;
  if (author?.type === 'person') return personName(person ?? author);
  return author?.type === 'bot' ? 'Bot' : 'Someone';
}

export const STATUS_LABELS = { open: 'Open', snoozed: 'Snoozed', closed: 'Closed' };

const KIND_LABELS = { note: 'Note', announcement: 'Announcement', checkin: 'Check-in' };

const fullDate = (t) => new Date(t).toLocaleString();

// "now", "5m", "3h", "2d", then a short date: compact enough for a list row.
export function relativeTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, (now - t) / 1000);
  if (s < 45) return 'now';
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  if (s < 7 * 86400) return `${Math.floor(s / 86400)}d`;
  return new Date(t).toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}

function clockTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === new Date().toDateString()) return time;
  return `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })}, ${time}`;
}

function avatar(name, online) {
  return h(
    'span',
    { class: 'avatar', 'aria-hidden': 'true' },
    Array.from(name)[0]?.toUpperCase() ?? '?',
    h('span', { class: online ? 'dot is-online' : 'dot' }),
  );
}

function preview(conv, meId) {
  const m = conv.last_message;
  if (!m) return 'No messages yet';
  const mine = m.author?.type === 'teammate' && m.author.id === meId;
  const prefix = m.kind === 'note' ? 'Note: ' : mine ? 'You: ' : '';
  // A message of files alone shows their names.
  const text = String(m.body ?? '').replace(/\s+/g, ' ').trim() || (m.attachments ?? []).map((f) => f.name).join(', ');
  return prefix + text;
}

// Who a conversation is with: its person, or a shared chat's members.
export function conversationName(conv) {
  return conv.transparent && conv.members?.length ? conv.members.map(personName).join(', ') : personName(conv.person);
}

export function conversationRow(conv, { selected, meId }) {
  const unread = conv.unread || 0;
  const name = conversationName(conv);
  const at = conv.last_message?.created_at ?? conv.updated_at;
  const label = `${name}${conv.person?.online ? ', online' : ''}${unread ? `, ${unread} unread` : ''}`;
  return h(
    'button',
    {
      type: 'button',
      class: unread ? 'row is-unread' : 'row',
      'data-testid': 'conversation-row',
      'data-conversation-id': conv.id,
      'data-unread': unread,
      'aria-current': selected ? 'true' : 'false',
      'aria-label': label,
    },
    avatar(name, conv.person?.online),
    h(
      'span',
      { class: 'row-main' },
      h(
        'span',
        { class: 'row-top' },
        h('span', { class: 'row-name' }, name),
        h('time', { class: 'row-time', datetime: at, title: at && fullDate(at), 'data-rel': '' }, relativeTime(at)),
      ),
      h(
        'span',
        { class: 'row-bottom' },
        h('span', { class: 'row-preview' }, preview(conv, meId)),
        unread > 0 && h('span', { class: 'badge-unread' }, String(unread)),
      ),
    ),
  );
}

// Refresh the "5m ago"-style labels without rebuilding rows.
export function refreshRelativeTimes(root) {
  const now = Date.now();
  for (const el of root.querySelectorAll('time[data-rel]')) {
    el.textContent = relativeTime(el.getAttribute('datetime'), now);
  }
}

function buttonLabel(b) {
  return String(typeof b === 'string' ? b : (b?.label ?? b?.title ?? b?.text ?? b?.value ?? ''));
}

// `shared`: a shared chat, where several people write, each named.
export function messageView(msg, person, shared = false) {
  const type = msg.author?.type ?? 'system';
  const side = type === 'person' ? 'in' : type === 'system' ? 'system' : 'out';
  const kind = msg.kind in KIND_LABELS ? msg.kind : 'chat';
  const buttons = Array.isArray(msg.buttons) ? msg.buttons.map(buttonLabel).filter(Boolean) : [];
  return h(
    'div',
    {
      class: `msg msg-${side} kind-${kind}`,
      'data-testid': 'thread-message',
      'data-message-id': msg.id,
      'data-author-type': type,
      'data-kind': msg.kind ?? 'chat',
    },
    h(
      'div',
      { class: 'msg-meta' },
      (side === 'out' || (shared && side === 'in')) && h('span', { class: 'msg-author' }, authorName(msg.author, person)),
      KIND_LABELS[kind] && h('span', { class: 'msg-label' }, KIND_LABELS[kind]),
      h('time', { datetime: msg.created_at, title: msg.created_at && fullDate(msg.created_at) }, clockTime(msg.created_at)),
    ),
    (msg.body || !msg.attachments?.length) && h('div', { class: 'msg-body' }, String(msg.body ?? '')),
    attachmentsView(msg.attachments),
    buttons.length > 0 &&
      h('ul', { class: 'msg-buttons', 'aria-label': 'Reply buttons offered' }, buttons.map((b) => h('li', {}, b))),
  );
}
