// A person's profile: who they are, attributes and tags (edited in place), their
// company, their conversations, the timeline (paged as it scrolls, filtered by
// event name) and a message straight to them by chat, email or SMS.

import { api, enc } from './api.js';
import { button, chip, clearErrors, dateTime, field, handOverRecipients, onFrame, pager, select, showError } from './ui.js';
import { STATUS_LABELS, h, personName, relativeTime } from './views.js';
import { timelineItem } from './person.js';

// Keeps the type an attribute already has: the server fixes it at the first value.
function typedValue(text, previous) {
  const t = text.trim();
  if (typeof previous === 'number' && t !== '' && Number.isFinite(Number(t))) return Number(t);
  if (typeof previous === 'boolean' && (t === 'true' || t === 'false')) return t === 'true';
  if (previous === undefined) {
    if (t !== '' && Number.isFinite(Number(t))) return Number(t);
    if (t === 'true' || t === 'false') return t === 'true';
  }
  return t;
}

export function open(container, [id]) {
  let person = null;
  let leaving = false;
  const stops = [];

  const title = h('h1', { class: 'page-title', 'data-testid': 'profile-name' }, 'Loading…');
  const dot = h('span', { class: 'dot', role: 'img', 'aria-label': 'Offline' });
  const sub = h('p', { class: 'page-sub', 'data-testid': 'profile-sub' });
  const pageError = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'profile-error' });
  const details = h('dl', { class: 'details', 'data-testid': 'profile-details' });

  const attrsBox = h('div', { class: 'attr-list', 'data-testid': 'profile-attributes' });
  const attrsPanel = h('section', { class: 'panel', 'aria-label': 'Attributes' });
  const tagsBox = h('div', { class: 'chips', 'data-testid': 'profile-tags' });
  const tagsPanel = h('section', { class: 'panel', 'aria-label': 'Tags' });

  /* ---------- attributes ---------- */

  const newName = h('input', { type: 'text', placeholder: 'plan' });
  const newValue = h('input', { type: 'text', placeholder: 'pro' });
  const attrsSave = button('Save attributes', () => saveAttributes(), { class: 'btn btn-primary', 'data-testid': 'profile-attrs-save' });
  const attrsStatus = h('span', { class: 'muted', role: 'status', 'data-testid': 'profile-attrs-status' });

  function renderAttributes() {
    const entries = Object.entries(person.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b));
    attrsBox.replaceChildren(
      ...entries.map(([name, value]) => {
        const input = h('input', { type: 'text', 'data-testid': 'profile-attr-value', 'data-name': name });
        input.value = value === null ? '' : String(value);
        const remove = button('Remove', async () => {
          await patch({ attributes: { [name]: null } }, attrsPanel);
        }, { class: 'btn btn-quiet btn-small', 'aria-label': `Remove ${name}`, 'data-testid': 'profile-attr-remove' });
        return h('div', { class: 'attr-row' }, field(name, input, { className: 'field-inline' }), remove);
      }),
    );
    if (!entries.length) attrsBox.append(h('p', { class: 'muted' }, 'No attributes yet'));
  }

  async function saveAttributes() {
    const changes = {};
    for (const input of attrsBox.querySelectorAll('[data-testid=profile-attr-value]')) {
      const name = input.dataset.name;
      const before = person.attributes?.[name];
      const after = typedValue(input.value, before);
      if (after !== before) changes[name] = input.value.trim() === '' ? null : after;
    }
    const name = newName.value.trim();
    if (name) changes[name] = typedValue(newValue.value, undefined);
    if (!Object.keys(changes).length) {
      attrsStatus.textContent = 'Nothing changed';
      return;
    }
    if (await patch({ attributes: changes }, attrsPanel)) {
      newName.value = newValue.value = '';
      attrsStatus.textContent = 'Saved';
    }
  }

  /* ---------- tags ---------- */

  const tagInput = h('input', { type: 'text', placeholder: 'vip' });
  const addTag = async () => {
    const tag = tagInput.value.trim().toLowerCase();
    if (!tag || person.tags.includes(tag)) return;
    if (await patch({ tags: [...person.tags, tag] }, tagsPanel)) tagInput.value = '';
  };
  tagInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      addTag();
    }
  });

  function renderTags() {
    tagsBox.replaceChildren(
      ...person.tags.map((t) => chip(t, { testid: 'profile-tag', onRemove: () => patch({ tags: person.tags.filter((x) => x !== t) }, tagsPanel) })),
    );
    if (!person.tags.length) tagsBox.append(h('span', { class: 'muted' }, 'No tags'));
  }

  // PATCH /people/{id}; errors land in `where`. Answers whether it was saved.
  async function patch(changes, where) {
    clearErrors(where);
    attrsStatus.textContent = '';
    try {
      person = await api('PATCH', `/people/${enc(id)}`, changes);
      render();
      return true;
    } catch (e) {
      showError(e, where, where.querySelector('.panel-error'));
      return false;
    }
  }

  /* ---------- header and details ---------- */

  function render() {
    title.textContent = personName(person);
    title.prepend(dot);
    renderPresence(person.online);
    sub.textContent = [person.email, person.phone].filter(Boolean).join(' · ');
    const rows = [
      ['Company', person.company ? `${person.company.name}${person.manager ? ' (manager)' : ''}` : '—'],
      ['Location', [person.city, person.country].filter(Boolean).join(', ') || '—'],
      ['External id', person.external_id ?? '—'],
      ['Created', dateTime(person.created_at)],
      ['Last seen', person.last_seen_at ? dateTime(person.last_seen_at) : 'Never'],
      ['Email', person.unsubscribed ? 'Unsubscribed' : 'Subscribed'],
    ];
    details.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    renderAttributes();
    renderTags();
    renderEventNames();
  }

  function renderPresence(online) {
    dot.className = online ? 'dot is-online' : 'dot';
    dot.setAttribute('aria-label', online ? 'Online' : 'Offline');
  }

  /* ---------- timeline ---------- */

  const timelineList = h('ol', { class: 'timeline', 'data-testid': 'profile-timeline' });
  const nameFilter = select([['', 'All events']], { 'data-testid': 'timeline-filter' });
  const timeline = pager({
    list: timelineList,
    testid: 'timeline',
    empty: 'No events yet',
    fetchPage: (cursor) => {
      const q = new URLSearchParams({ limit: '30' });
      if (cursor) q.set('before', cursor);
      if (nameFilter.value) q.set('name', nameFilter.value);
      return api('GET', `/people/${enc(id)}/timeline?${q}`);
    },
    renderItem: timelineItem,
    onPage: () => requestAnimationFrame(fillTimeline),
  });
  nameFilter.addEventListener('change', () => timeline.reload());
  const sentinel = h('div', { class: 'sentinel', 'aria-hidden': 'true' });
  let sentinelVisible = false;
  const observer = new IntersectionObserver((entries) => {
    sentinelVisible = entries.some((e) => e.isIntersecting);
    if (sentinelVisible) timeline.more();
  });
  // A first page that does not reach the bottom of the screen asks for the next.
  function fillTimeline() {
    if (!leaving && sentinelVisible && !timeline.done) timeline.more();
  }

  function renderEventNames() {
    const names = (person.events ?? []).map((s) => [s.name, `${s.name} (${s.count})`]);
    const value = nameFilter.value;
    nameFilter.replaceChildren(...[['', 'All events'], ...names].map(([v, l]) => h('option', { value: v }, l)));
    nameFilter.value = names.some(([v]) => v === value) ? value : '';
  }

  /* ---------- conversations ---------- */

  const convList = h('ul', { class: 'conv-links', 'data-testid': 'profile-conversations' });
  const conversations = pager({
    list: convList,
    testid: 'profile-conversations',
    empty: 'No conversations yet',
    // Each conversation they started or were sent is on their timeline.
    fetchPage: async (cursor) => {
      const q = new URLSearchParams({ limit: '10', name: 'conversation.started' });
      if (cursor) q.set('before', cursor);
      const page = await api('GET', `/people/${enc(id)}/timeline?${q}`);
      const ids = [...new Set((page.items ?? []).map((e) => e.data?.conversation_id).filter(Boolean))];
      const items = await Promise.all(ids.map((c) => api('GET', `/conversations/${enc(c)}`).catch(() => null)));
      return { items: items.filter(Boolean), next_cursor: page.next_cursor };
    },
    renderItem: (c) =>
      h(
        'li',
        {},
        h(
          'a',
          { class: 'conv-link', href: `#/c/${enc(c.id)}`, 'data-testid': 'profile-conversation', 'data-conversation-id': c.id },
          h('span', { class: 'conv-link-title' }, c.title || String(c.last_message?.body ?? 'Conversation').slice(0, 80)),
          h('span', { class: 'status-badge', 'data-status': c.status }, STATUS_LABELS[c.status] ?? c.status),
          h('time', { datetime: c.updated_at }, relativeTime(c.updated_at)),
        ),
      ),
  });

  /* ---------- send a message ---------- */

  const channel = select([['chat', 'Chat'], ['email', 'Email'], ['sms', 'SMS']]);
  const subject = h('input', { type: 'text', placeholder: 'Subject' });
  const body = h('textarea', { rows: '3', placeholder: 'Hi {{person.first_name}}, …' });
  const sendResult = h('p', { class: 'muted', role: 'status', 'data-testid': 'profile-message-result' });
  const messagePanel = h('section', { class: 'panel', 'aria-label': 'Send a message', id: 'profile-message' });
  const subjectField = field('Subject', subject, { errorKey: 'title', testid: 'profile-message-title' });
  const syncChannel = () => (subjectField.hidden = channel.value !== 'email');
  channel.addEventListener('change', syncChannel);
  syncChannel();

  async function sendMessage() {
    clearErrors(messagePanel);
    sendResult.textContent = '';
    const req = { body: body.value, channel: channel.value };
    if (channel.value === 'email' && subject.value.trim()) req.title = subject.value.trim();
    try {
      const res = await api('POST', `/people/${enc(id)}/messages`, req);
      body.value = '';
      if (res.conversation_id && !res.delivery) {
        sendResult.replaceChildren('Sent. ', h('a', { href: `#/c/${enc(res.conversation_id)}` }, 'Open the conversation'));
        conversations.reload();
      } else {
        sendResult.textContent = `Queued by ${res.delivery?.channel ?? channel.value}: ${res.delivery?.status ?? 'queued'}. See it in Outbound.`;
      }
      timeline.reload();
    } catch (e) {
      showError(e, messagePanel, messagePanel.querySelector('.panel-error'));
    }
  }

  const toComposer = () => {
    handOverRecipients([{ type: 'person', id, label: personName(person) }]);
    location.hash = '#/outbound/new';
  };

  /* ---------- page ---------- */

  attrsPanel.append(
    h('h2', { class: 'panel-title' }, 'Attributes'),
    attrsBox,
    h(
      'div',
      { class: 'attr-new' },
      field('New attribute', newName, { testid: 'profile-attr-name', className: 'field-inline' }),
      field('Value', newValue, { testid: 'profile-attr-new-value', className: 'field-inline' }),
    ),
    h('p', { class: 'form-error', role: 'alert', 'data-error-for': 'attributes' }),
    h('p', { class: 'form-error panel-error', role: 'alert' }),
    h('div', { class: 'toolbar' }, attrsSave, attrsStatus),
  );
  tagsPanel.append(
    h('h2', { class: 'panel-title' }, 'Tags'),
    tagsBox,
    h('div', { class: 'toolbar' }, field('Add a tag', tagInput, { errorKey: 'tags', testid: 'profile-tag-input', className: 'field-inline' }),
      button('Add', addTag, { 'data-testid': 'profile-tag-add' })),
    h('p', { class: 'form-error panel-error', role: 'alert' }),
  );
  messagePanel.append(
    h('h2', { class: 'panel-title' }, 'Send a message'),
    field('Channel', channel, { errorKey: 'channel', testid: 'profile-message-channel', hint: 'Chat opens a new conversation; email and SMS are logged in Outbound.' }),
    subjectField,
    field('Message', body, { errorKey: 'body', testid: 'profile-message-body', hint: 'Snippets such as {{person.first_name}} are filled in.' }),
    h('p', { class: 'form-error panel-error', role: 'alert' }),
    h('div', { class: 'toolbar' }, button('Send', sendMessage, { class: 'btn btn-primary', 'data-testid': 'profile-message-send' }), sendResult),
  );

  container.append(
    h(
      'header',
      { class: 'page-head' },
      h('a', { class: 'btn btn-quiet', href: '#/people', 'aria-label': 'Back to people' }, '‹ People'),
      h('div', { class: 'page-who' }, title, sub),
      h(
        'div',
        { class: 'page-actions' },
        button('Send a message', () => {
          messagePanel.scrollIntoView({ block: 'start' });
          body.focus();
        }, { 'data-testid': 'profile-send' }),
        button('Open in composer', toComposer, { 'data-testid': 'profile-composer' }),
      ),
    ),
    pageError,
    h(
      'div',
      { class: 'profile-layout' },
      h('div', { class: 'profile-side' }, h('section', { class: 'panel', 'aria-label': 'Details' }, h('h2', { class: 'panel-title' }, 'Details'), details), attrsPanel, tagsPanel),
      h(
        'div',
        { class: 'profile-main' },
        messagePanel,
        h('section', { class: 'panel', 'aria-label': 'Conversations' }, h('h2', { class: 'panel-title' }, 'Conversations'), convList, conversations.el),
        h(
          'section',
          { class: 'panel', 'aria-label': 'Timeline' },
          h('div', { class: 'panel-head' }, h('h2', { class: 'panel-title' }, 'Timeline'), field('Show', nameFilter, { className: 'field-inline' })),
          timelineList,
          timeline.el,
          sentinel,
        ),
      ),
    ),
  );

  stops.push(
    onFrame((f) => {
      if (f.type === 'presence.update' && f.person_id === id) renderPresence(f.online);
    }),
  );

  (async () => {
    try {
      person = await api('GET', `/people/${enc(id)}`);
      if (leaving) return;
      render();
      await Promise.all([timeline.reload(), conversations.reload()]);
      if (!leaving) observer.observe(sentinel);
    } catch (e) {
      title.textContent = 'Person not found';
      pageError.textContent = e.status === 404 ? 'This person does not exist or was deleted.' : e.message;
    }
  })();

  return () => {
    leaving = true;
    observer.disconnect();
    for (const stop of stops) stop();
  };
}
