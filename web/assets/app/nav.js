// The app's sections and their hash routes. The inbox is the page app.js drives;
// every other section is a module whose `open(container, params)` fills the
// section area and may return a function that cleans up when the user leaves.
// A new section is one more entry in SECTIONS.
//
// A section's module is imported the first time it is opened (or pointed at in
// the nav), not with the inbox: a first visit then fetches and compiles only
// what the inbox shows, about half of the app's code.

import { h } from './views.js';

const automations = () => import('./automations.js');
const composer = () => import('./composer.js');
const outbound = () => import('./outbound.js');
const people = () => import('./people.js');
const profile = () => import('./profile.js');
const settings = () => import('./settings.js');

const SECTIONS = [
  { key: 'inbox', label: 'Inbox', icon: '✉', href: '#/' },
  {
    key: 'people',
    label: 'People',
    icon: '☺',
    href: '#/people',
    routes: [
      [/^\/people\/([^/]+)$/, profile, (m) => m],
      [/^\/people$/, people, (m) => m],
    ],
  },
  {
    key: 'outbound',
    label: 'Outbound',
    icon: '➚',
    href: '#/outbound',
    routes: [
      [/^\/outbound\/new$/, composer, (m) => m],
      [/^\/outbound\/([^/]+)$/, outbound, (m) => m.detail],
      [/^\/outbound$/, outbound, (m) => m.list],
    ],
  },
  {
    key: 'automations',
    label: 'Automations',
    icon: '⚙',
    href: '#/automations',
    routes: [
      [/^\/automations\/new$/, automations, (m) => m.editor],
      [/^\/automations\/([^/]+)$/, automations, (m) => m.editor],
      [/^\/automations$/, automations, (m) => m.list],
    ],
  },
  {
    key: 'settings',
    label: 'Settings',
    icon: '☰',
    href: '#/settings',
    routes: [
      [/^\/settings\/([^/]+)$/, settings, (m) => m.page],
      [/^\/settings$/, settings, (m) => m.page],
    ],
  },
];

const $ = (id) => document.getElementById(id);
let leave = null;
let openPath = null;
// Counts openings, so that a module arriving late opens nothing.
let opened = 0;

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
    ...SECTIONS.map((s) => {
      const link = h(
        'a',
        { class: 'nav-link', href: s.href, 'data-section': s.key, 'data-testid': `nav-${s.key}`, 'aria-label': s.label },
        h('span', { class: 'nav-icon', 'aria-hidden': 'true' }, s.icon),
        h('span', { class: 'nav-label' }, s.label),
      );
      // A pointer on its way to a link, or focus on it, starts fetching the
      // section's modules before the click.
      const warm = () => {
        for (const [, load] of s.routes ?? []) load().catch(() => {});
      };
      link.addEventListener('pointerenter', warm, { once: true });
      link.addEventListener('focus', warm, { once: true });
      return h('li', {}, link);
    }),
  );
}

function match(path) {
  for (const s of SECTIONS) {
    for (const [re, load, pick] of s.routes ?? []) {
      const m = re.exec(path);
      if (m) return { section: s, load, pick, params: m.slice(1).map(decodeURIComponent) };
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
  container.replaceChildren(h('p', { class: 'muted', role: 'status' }, 'Loading…'));
  container.scrollTop = 0;
  const opening = ++opened;
  found.load().then(
    (module) => {
      // The user may have gone elsewhere while the module arrived.
      if (opening !== opened) return;
      container.replaceChildren();
      leave = found.pick(module).open(container, found.params) ?? null;
      // Keyboard and screen-reader users land at the top of the new page.
      container.focus({ preventScroll: true });
    },
    () => {
      if (opening !== opened) return;
      const retry = h('button', { type: 'button', class: 'btn' }, 'Retry');
      retry.addEventListener('click', () => {
        openPath = null;
        routeSections();
      });
      container.replaceChildren(
        h('p', { class: 'form-error', role: 'alert', 'data-testid': 'section-error' }, 'This page could not be loaded. Check the connection.'),
        retry,
      );
    },
  );
  return false;
}

export function closeSection() {
  opened++;
  if (typeof leave === 'function') leave();
  leave = null;
  openPath = null;
  $('section').replaceChildren();
}
