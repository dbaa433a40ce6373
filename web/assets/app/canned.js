// Saved replies in the inbox composer: typing "/" and part of a chat
// template's title lists the matches; Enter, Tab or a click puts the
// template's text where the "/…" was. Templates are loaded once after signing in.

import { api } from './api.js';
import { h } from './views.js';

const MAX_SHOWN = 6;
const TRIGGER = /(^|\s)\/([^\s/]*)$/; // "/" at the start of a word, up to the caret

export function attachCanned(area, listEl) {
  let templates = null;
  let matches = [];
  let active = 0;
  let token = null; // {start, end} of the "/query" being replaced

  const hide = () => {
    listEl.hidden = true;
    matches = [];
    token = null;
  };

  function paint() {
    listEl.replaceChildren(
      ...matches.map((t, i) => {
        const b = h(
          'button',
          { type: 'button', class: 'suggestion canned-item', role: 'option', 'aria-selected': String(i === active), 'data-testid': 'canned-item', 'data-id': t.id, tabindex: '-1' },
          h('span', { class: 'sugg-label' }, t.title),
          h('span', { class: 'sugg-sub' }, t.body.slice(0, 80)),
        );
        // mousedown keeps the focus in the textarea.
        b.addEventListener('mousedown', (e) => {
          e.preventDefault();
          pick(i);
        });
        return b;
      }),
    );
    listEl.hidden = matches.length === 0;
  }

  function pick(i) {
    const t = matches[i];
    if (!t || !token) return;
    const v = area.value;
    area.value = v.slice(0, token.start) + t.body + v.slice(token.end);
    const caret = token.start + t.body.length;
    area.setSelectionRange(caret, caret);
    hide();
    area.dispatchEvent(new Event('input', { bubbles: true }));
  }

  async function onInput() {
    const before = area.value.slice(0, area.selectionStart);
    const m = TRIGGER.exec(before);
    if (!m) return hide();
    const query = m[2].toLowerCase();
    token = { start: before.length - m[2].length - 1, end: area.selectionStart };
    if (!templates) {
      try {
        templates = await api('GET', '/templates?kind=chat');
      } catch {
        templates = [];
      }
    }
    matches = templates.filter((t) => t.title.toLowerCase().includes(query)).slice(0, MAX_SHOWN);
    active = 0;
    paint();
  }

  // Answers true when the key was for the list (the composer must not send).
  function onKeydown(e) {
    if (listEl.hidden || !matches.length) return false;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      active = (active + (e.key === 'ArrowDown' ? 1 : matches.length - 1)) % matches.length;
      paint();
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      pick(active);
    } else if (e.key === 'Escape') {
      hide();
    } else {
      return false;
    }
    e.preventDefault();
    return true;
  }

  area.addEventListener('input', onInput);
  area.addEventListener('blur', () => setTimeout(hide, 150));
  return { onKeydown };
}
