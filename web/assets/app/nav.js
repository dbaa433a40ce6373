// The app's sections and their hash routes. The inbox is the page app.js drives;
// every other section is a module whose `open(container, params)` fills the
// section area and may return a function that cleans up when the user leaves.
// A new section is one more entry in SECTIONS.

import * as automations from './automations.js';
import * as composer from './composer.js';
import * as outbound from './outbound.js';
import * as people from './people.js';
import * as profile from './profile.js';
import * as settings from './settings.js';
import { h } from './views.js';

const SECTIONS = [
  { key: 'inbox', label: 'Inbox', icon: '✉', href: '#/' },
  {
    key: 'people',
    label: 'People',
    icon: '☺',
    href: '#/people',
    routes: [
      [/^\/people\/([^/]+)$/, profile],
      [/^\/people$/, people],
    ],
  },
  {
    key: 'outbound',
    label: 'Outbound',
    icon: '➚',
    href: '#/outbound',
    routes: [
      [/^\/outbound\/new$/, composer],
      [/^\/outbound\/([^/]+)$/, outbound.detail],
      [/^\/outbound$/, outbound.list],
    ],
  },
  {
    key: 'automations',
    label: 'Automations',
    icon: '⚙',
    href: '#/automations',
    routes: [
      [/^\/automations\/new$/, automations.editor],
      [/^\/automations\/([^/]+)$/, automations.editor],
      [/^\/automations$/, automations.list],
    ],
  },
  {
    key: 'settings',
    label: 'Settings',
    icon: '☰',
    href: '#/settings',
    routes: [
      [/^\/settings\/([^/]+)$/, settings.page],
      [/^\/settings$/, settings.page],
    ],
  },
];

const $ = (id) => document.getElementById(id);
let leave = null;
let openPath = null;

// `signOut` is the inbox's own: the nav offers it in every section.
export function renderNav(signOut) {
  const out = h(
    'button',
    { type: 'button', class: 'nav-link nav-signout', 'data-testid': 'nav-sign-out', 'aria-label': 'Sign out' },
    h('span', { class: 'nav-icon', 'aria-hidden': 'true' }, '⎋'),
    h('span', { class: 'nav-label' }, 'Sign out'),
  );
  out.addEventListener('click', signOut);
  $('nav-out').replaceChildren(out);
  $('nav-list').replaceChildren(
    ...SECTIONS.map((s) =>
      h(
        'li',
        {},
        h(
          'a',
          { class: 'nav-link', href: s.href, 'data-section': s.key, 'data-testid': `nav-${s.key}`, 'aria-label': s.label },
          h('span', { class: 'nav-icon', 'aria-hidden': 'true' }, s.icon),
          h('span', { class: 'nav-label' }, s.label),
        ),
      ),
    ),
  );
}

function match(path) {
  for (const s of SECTIONS) {
    for (const [re, view] of s.routes ?? []) {
      const m = re.exec(path);
      if (m) return { section: s, view, params: m.slice(1).map(decodeURIComponent) };
    }
  }
  return null;
}

/**
 * Shows the section the hash names. Returns true when that is the inbox,
 * which app.js then routes itself (`#/`, `#/c/{id}`).
 */
export function routeSections() {
  const path = location.hash.replace(/^#/, '').split('?')[0] || '/';
  const found = match(path);
  const key = found?.section.key ?? 'inbox';
  for (const a of document.querySelectorAll('.nav-link')) {
    if (a.dataset.section === key) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('app').hidden = !!found;
  $('section').hidden = !found;
  if (!found) {
    closeSection();
    return true;
  }
  if (openPath === path) return false;
  closeSection();
  openPath = path;
  const container = $('section');
  container.replaceChildren();
  container.scrollTop = 0;
  leave = found.view.open(container, found.params) ?? null;
  // Keyboard and screen-reader users land at the top of the new page.
  container.focus({ preventScroll: true });
  return false;
}

export function closeSection() {
  if (typeof leave === 'function') leave();
  leave = null;
  openPath = null;
  $('section').replaceChildren();
}
