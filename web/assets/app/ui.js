// Building blocks shared by the People, Profile and Outbound sections: labelled
// fields with an error slot, API errors placed next to the control they name,
// "load more" paging, chips, and the socket's frames fanned out to whoever listens.

import { h } from './views.js';

/* ---------- socket frames ---------- */

const frameListeners = new Set();

// Sections hear every agent-socket frame while they are open; returns the unsubscribe.
export function onFrame(fn) {
  frameListeners.add(fn);
  return () => frameListeners.delete(fn);
}

export function emitFrame(frame) {
  for (const fn of frameListeners) {
    try {
      fn(frame);
    } catch (e) {
      console.warn('Parley: a frame listener failed', e);
    }
  }
}

/* ---------- recipients handed from People to the composer ---------- */

const DRAFT_KEY = 'parley_outbound_recipients';

// Kept in sessionStorage so a reload of the composer still has them.
export function handOverRecipients(chips) {
  sessionStorage.setItem(DRAFT_KEY, JSON.stringify(chips));
}

export function takeRecipients() {
  const text = sessionStorage.getItem(DRAFT_KEY);
  try {
    const chips = JSON.parse(text ?? '[]');
    return Array.isArray(chips) ? chips : [];
  } catch {
    return [];
  }
}

// The composer was left (sent or abandoned): the next one starts empty.
export function dropRecipients() {
  sessionStorage.removeItem(DRAFT_KEY);
}

/* ---------- fields and errors ---------- */

let fieldSeq = 0;

/**
 * A labelled control: `<label for>` + the control + an optional one-line hint +
 * an error slot. `errorKey` is the API field path (`body`, `filter.and.1`) whose
 * 422 lands in this slot; `testid` names the control and `${testid}-error` the slot.
 */
// Whether the signed-in teammate is an admin (set when the session starts):
// pages disable what only admins may change instead of letting it fail.
export const isAdmin = () => document.body.dataset.role === 'admin';

export function field(label, control, { hint, errorKey, testid, className } = {}) {
  control.id ||= `f${++fieldSeq}`;
  if (testid) control.dataset.testid = testid;
  const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': testid ? `${testid}-error` : null });
  if (errorKey) error.dataset.errorFor = errorKey;
  const hintEl = hint ? h('p', { class: 'field-hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: className ? `field ${className}` : 'field' }, h('label', { for: control.id }, label), control, hintEl, error);
}

// A checkbox whose label only screen readers see (a table's selection column).
export function checkbox(label, attrs = {}) {
  const box = h('input', { type: 'checkbox', ...attrs });
  return { box, el: h('label', { class: 'check' }, box, h('span', { class: 'visually-hidden' }, label)) };
}

export function select(options, attrs = {}) {
  const el = h('select', attrs);
  setOptions(el, options);
  return el;
}

// options: [value, label] pairs or plain strings.
export function setOptions(el, options, value = el.value) {
  el.replaceChildren(
    ...options.map((o) => {
      const [v, label] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v }, label);
    }),
  );
  if ([...el.options].some((o) => o.value === value)) el.value = value;
}

export function clearErrors(root) {
  for (const el of root.querySelectorAll('.form-error')) el.textContent = '';
}

/**
 * Shows an API error where the user acted: in the slot whose `data-error-for`
 * is the longest prefix of the error's `field` (`filter.and.1.value` lands on
 * the slot of `filter.and.1`), else in `fallback`.
 */
export function showError(err, root, fallback) {
  const path = err?.field ?? '';
  let best = null;
  let bestLen = -1;
  for (const el of root.querySelectorAll('[data-error-for]')) {
    const key = el.dataset.errorFor;
    const fits = path === key || path.startsWith(`${key}.`);
    if (fits && key.length > bestLen) {
      best = el;
      bestLen = key.length;
    }
  }
  const slot = best ?? fallback;
  if (slot) slot.textContent = err?.message ?? String(err);
  return slot;
}

/* ---------- small pieces ---------- */

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function button(label, onClick, attrs = {}) {
  const b = h('button', { type: 'button', class: 'btn', ...attrs }, label);
  if (onClick) b.addEventListener('click', onClick);
  return b;
}

export function chip(text, { onRemove, testid, kind } = {}) {
  const el = h('span', { class: kind ? `chip chip-${kind}` : 'chip', 'data-testid': testid }, h('span', { class: 'chip-text' }, text));
  if (onRemove) {
    el.append(button('×', onRemove, { class: 'chip-remove', 'aria-label': `Remove ${text}` }));
  }
  return el;
}

export function dateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function pageHead(title, ...actions) {
  return h('header', { class: 'page-head' }, h('h1', { class: 'page-title' }, title), h('div', { class: 'page-actions' }, actions));
}

/**
 * A list that loads one page at a time: `fetchPage(cursor)` answers
 * `{items, next_cursor}`; `renderItem(item)` makes its element, appended to
 * `list`. Returns {reload, more, el: the status line with its "Load more" button}.
 * `onError(e)` answers true when it has shown the error itself.
 */
export function pager({ list, fetchPage, renderItem, empty = 'Nothing here yet', testid, onPage, onError }) {
  const status = h('span', { class: 'pager-status', role: 'status' });
  const moreBtn = button('Load more', () => more(), { 'data-testid': testid ? `${testid}-more` : null, hidden: true });
  const el = h('div', { class: 'pager' }, status, moreBtn);
  let state = { gen: 0, cursor: null, done: false, loading: false, count: 0 };

  async function more() {
    if (state.loading || state.done) return;
    const gen = state.gen;
    state.loading = true;
    moreBtn.disabled = true;
    status.textContent = 'Loading…';
    try {
      const page = await fetchPage(state.cursor);
      if (gen !== state.gen) return;
      for (const item of page.items ?? []) {
        list.append(renderItem(item));
        state.count++;
      }
      state.cursor = page.next_cursor ?? null;
      state.done = !state.cursor;
      status.textContent = state.count ? '' : empty;
      onPage?.(page);
    } catch (e) {
      if (gen !== state.gen) return;
      // onError may show it where the user acted (a 422 on a filter row).
      const shown = onError?.(e);
      status.textContent = shown ? '' : `Could not load: ${e.message}`;
      // Asking again cannot fix what onError showed (a refused filter): no "Load more".
      if (shown) state.done = true;
    } finally {
      if (gen === state.gen) {
        state.loading = false;
        moreBtn.disabled = false;
        moreBtn.hidden = state.done;
      }
    }
  }

  function reload() {
    state = { gen: state.gen + 1, cursor: null, done: false, loading: false, count: 0 };
    list.replaceChildren();
    moreBtn.hidden = true;
    return more();
  }

  return { el, reload, more, get done() { return state.done; }, get loading() { return state.loading; } };
}
