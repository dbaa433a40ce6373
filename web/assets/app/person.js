// The person beside a conversation: attributes, tags, company, their latest
// events and a link to the full profile, so an agent answers knowing who writes.

import { api, enc } from './api.js';
import { chip } from './ui.js';
import { h, personName } from './views.js';
import { timelineItem } from './profile.js';

const RECENT_EVENTS = 5;
let shownGen = 0;

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
