// The person beside a conversation: attributes, tags, company, their latest
// events and a link to the full profile, so an agent answers knowing who writes.

import { api, enc } from './api.js';
import { chip, dateTime } from './ui.js';
import { h, personName, relativeTime } from './views.js';

const RECENT_EVENTS = 5;
let shownGen = 0;

function eventText(e) {
  const d = e.data && typeof e.data === 'object' ? e.data : {};
  const parts = Object.entries(d)
    .filter(([, v]) => v !== null && typeof v !== 'object')
    .slice(0, 4)
    .map(([k, v]) => `${k}: ${v}`);
  return parts.join(' · ');
}

// One event as a timeline row: the sidebar's recent events and the profile's
// timeline show events alike.
export function timelineItem(e) {
  return h(
    'li',
    { class: 'timeline-item', 'data-testid': 'timeline-item', 'data-name': e.name },
    h('span', { class: 'timeline-name' }, e.name),
    h('span', { class: 'timeline-data' }, eventText(e)),
    h('time', { datetime: e.at, title: dateTime(e.at) }, relativeTime(e.at)),
  );
}

// Fills `container` for `personId`; a later call wins over one still loading.
export async function showPerson(container, personId) {
  const gen = ++shownGen;
  container.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  if (!personId) {
    container.replaceChildren(h('p', { class: 'muted' }, 'No one yet'));
    return;
  }
  try {
    const [p, events] = await Promise.all([
      api('GET', `/people/${enc(personId)}`),
      api('GET', `/people/${enc(personId)}/timeline?limit=${RECENT_EVENTS}`).catch(() => ({ items: [] })),
    ]);
    if (gen !== shownGen) return;
    const attrs = Object.entries(p.attributes ?? {});
    container.replaceChildren(
      h('p', { class: 'person-line' }, h('strong', { 'data-testid': 'person-panel-name' }, personName(p)), p.email ? ` · ${p.email}` : ''),
      h('p', { class: 'muted', 'data-testid': 'person-panel-company' }, p.company ? `Company: ${p.company.name}` : 'No company'),
      attrs.length
        ? h(
            'dl',
            { class: 'attr-list person-attrs', 'data-testid': 'person-panel-attributes' },
            attrs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))]),
          )
        : h('p', { class: 'muted' }, 'No attributes'),
      h('div', { class: 'chips', 'data-testid': 'person-panel-tags' }, (p.tags ?? []).map((t) => chip(t))),
      h('ol', { class: 'timeline', 'data-testid': 'person-panel-timeline' }, (events.items ?? []).map(timelineItem)),
      h('a', { href: `#/people/${enc(p.id)}`, 'data-testid': 'person-panel-profile' }, 'Open the profile ›'),
    );
  } catch (e) {
    if (gen === shownGen) container.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, e.message));
  }
}
