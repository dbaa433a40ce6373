// People: search and filter everyone the workspace knows, a page at a time with
// the exact total; pick people by hand or "all matching"; save the filter as a
// segment or reopen one; hand the choice to the outbound composer.

import { api } from './api.js';
import { filterBuilder } from './filter.js';
import { button, checkbox, clearErrors, debounce, field, handOverRecipients, pageHead, pager, showError } from './ui.js';
import { h, personName, relativeTime } from './views.js';

const PAGE = 25;

// Custom attribute kinds seen on loaded people, shared with the filter builder.
const attrKinds = new Map();

function learnAttributes(people) {
  let learned = false;
  for (const p of people) {
    for (const [name, v] of Object.entries(p.attributes ?? {})) {
      if (attrKinds.has(name) || v === null) continue;
      const kind =
        typeof v === 'number' ? 'number'
        : typeof v === 'boolean' ? 'bool'
        : /^\d{4}-\d{2}-\d{2}/.test(String(v)) ? 'date'
        : 'text';
      attrKinds.set(name, kind);
      learned = true;
    }
  }
  return learned;
}

// Free-text words as filter conditions, so "all matching" means what the table shows.
function wordsFilter(q) {
  const words = q.split(/\s+/).filter(Boolean);
  return words.map((w) => ({
    or: ['name', 'email', 'company'].map((f) => ({ field: f, op: 'contains', value: w })),
  }));
}

export function open(container) {
  let query = { q: '', filter: null };
  let segment = null; // the segment opened, while its filter is unchanged
  let total = 0;
  const selected = new Map(); // person id -> person
  let allMatching = false;

  const search = h('input', { type: 'search', placeholder: 'Name, email, company…', autocomplete: 'off' });
  const builder = filterBuilder({ attrKinds, onApply: () => apply(), onChange: () => markEdited() });
  const generalError = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'people-error' });
  const totalEl = h('span', { class: 'people-total', 'data-testid': 'people-total', role: 'status' });
  const selectionEl = h('span', { class: 'selection', 'data-testid': 'people-selection' });
  const segmentNote = h('p', { class: 'segment-note', 'data-testid': 'people-segment' });
  const selectAll = button('Select all matching', () => setAllMatching(!allMatching), { 'data-testid': 'people-select-all' });
  const sendBtn = button('Send a message', () => sendMessage(), { class: 'btn btn-primary', 'data-testid': 'people-send' });
  const segName = h('input', { type: 'text', placeholder: 'e.g. Pro customers in Paris' });
  const saveSeg = button('Save as segment', () => saveSegment(), { 'data-testid': 'segment-save' });
  const segList = h('ul', { class: 'segment-list', 'data-testid': 'segment-list' });
  const { box: pageBox, el: pageBoxLabel } = checkbox('Select everyone on this page', { 'data-testid': 'people-select-page' });
  const tbody = h('tbody', {});

  const results = pager({
    list: tbody,
    testid: 'people',
    empty: 'Nobody matches',
    fetchPage: async (cursor) => {
      const page = await api('POST', '/people/search', { q: query.q || undefined, filter: query.filter ?? undefined, limit: PAGE, cursor: cursor ?? undefined });
      total = page.total;
      totalEl.textContent = `${total.toLocaleString()} ${total === 1 ? 'person' : 'people'}`;
      totalEl.dataset.total = String(total);
      if (learnAttributes(page.items ?? []) && !builder.el.contains(document.activeElement) && !builder.count) builder.refreshFields();
      return page;
    },
    renderItem: (p) => personRow(p),
    onPage: () => renderSelection(),
    onError: (e) => {
      if (e.status !== 422) return false;
      totalEl.textContent = '';
      showError(e, container, generalError);
      return true;
    },
  });

  function personRow(p) {
    const { box, el: boxLabel } = checkbox(`Select ${personName(p)}`, { 'data-testid': 'people-row-select' });
    box.checked = allMatching || selected.has(p.id);
    box.disabled = allMatching;
    box.addEventListener('change', () => {
      if (box.checked) selected.set(p.id, p);
      else selected.delete(p.id);
      renderSelection();
    });
    const where = [p.city, p.country].filter(Boolean).join(', ');
    const tr = h(
      'tr',
      { 'data-testid': 'people-row', 'data-person-id': p.id },
      h('td', { class: 'col-check' }, boxLabel),
      h(
        'td',
        { class: 'col-name' },
        h('span', { class: p.online ? 'dot is-online' : 'dot', role: 'img', 'aria-label': p.online ? 'Online' : 'Offline' }),
        h('a', { href: `#/people/${encodeURIComponent(p.id)}`, 'data-testid': 'people-row-link' }, personName(p)),
      ),
      h('td', { class: 'col-email' }, p.email ?? ''),
      h('td', { class: 'col-opt' }, p.company?.name ?? ''),
      h('td', { class: 'col-opt' }, where),
      h('td', { class: 'col-opt' }, (p.tags ?? []).map((t) => h('span', { class: 'tag' }, t))),
      h('td', { class: 'col-opt col-time' }, p.last_seen_at ? relativeTime(p.last_seen_at) : '—'),
    );
    return tr;
  }

  function renderSelection() {
    const n = allMatching ? total : selected.size;
    selectionEl.textContent =
      allMatching ? `All ${total.toLocaleString()} matching selected`
      : n ? `${n} selected`
      : 'None selected: a message goes to everyone matching';
    selectAll.textContent = allMatching ? 'Clear selection' : 'Select all matching';
    const boxes = [...tbody.querySelectorAll('[data-testid=people-row-select]')];
    pageBox.checked = allMatching || (boxes.length > 0 && boxes.every((b) => b.checked));
    pageBox.disabled = allMatching;
  }

  function setAllMatching(on) {
    allMatching = on;
    if (!on) selected.clear();
    for (const b of tbody.querySelectorAll('[data-testid=people-row-select]')) {
      b.checked = on;
      b.disabled = on;
    }
    renderSelection();
  }

  pageBox.addEventListener('change', () => {
    for (const tr of tbody.querySelectorAll('[data-testid=people-row]')) {
      const box = tr.querySelector('input');
      box.checked = pageBox.checked;
      box.dispatchEvent(new Event('change'));
    }
  });

  function markEdited() {
    if (segment) {
      segment = null;
      renderSegmentNote();
    }
  }

  function renderSegmentNote() {
    segmentNote.textContent = segment ? `Segment: ${segment.name}` : '';
    segmentNote.dataset.segmentId = segment?.id ?? '';
    for (const li of segList.children) li.firstElementChild?.setAttribute('aria-current', String(li.dataset.id === segment?.id));
  }

  // The builder's filter (null: everyone), or undefined after showing why a row is incomplete.
  function readFilter() {
    clearErrors(container);
    try {
      return builder.toFilter();
    } catch (e) {
      showError(e, container, generalError);
      return undefined;
    }
  }

  async function apply() {
    const filter = readFilter();
    if (filter === undefined) return;
    query = { q: search.value.trim(), filter };
    selected.clear();
    allMatching = false;
    await results.reload();
    renderSelection();
  }

  function currentFilter() {
    const parts = [];
    if (query.filter) parts.push(query.filter);
    if (query.q) parts.push(...wordsFilter(query.q));
    return parts.length === 1 ? parts[0] : { and: parts };
  }

  async function saveSegment() {
    const filter = readFilter();
    if (filter === undefined) return;
    saveSeg.disabled = true;
    try {
      const s = await api('POST', '/segments', { name: segName.value.trim(), filter: filter ?? { and: [] } });
      segName.value = '';
      segment = s;
      await loadSegments();
      renderSegmentNote();
    } catch (e) {
      showError(e, container, generalError);
    } finally {
      saveSeg.disabled = false;
    }
  }

  async function loadSegments() {
    try {
      const list = await api('GET', '/segments');
      segList.replaceChildren(
        ...(Array.isArray(list) ? list : (list?.items ?? [])).map((s) => {
          const b = button(
            [h('span', { class: 'seg-name' }, s.name), h('span', { class: 'seg-count' }, s.count == null ? '' : s.count.toLocaleString())],
            () => openSegment(s),
            { class: 'seg-button', 'data-testid': 'segment-open', 'data-segment-id': s.id },
          );
          return h('li', { 'data-id': s.id }, b);
        }),
      );
      if (!segList.children.length) segList.append(h('li', { class: 'muted' }, 'No segments yet'));
      renderSegmentNote();
    } catch (e) {
      segList.replaceChildren(h('li', { class: 'form-error' }, `Could not load segments: ${e.message}`));
    }
  }

  function openSegment(s) {
    builder.setFilter(s.filter);
    search.value = '';
    apply().then(() => {
      segment = s;
      renderSegmentNote();
    });
  }

  function sendMessage() {
    let chips;
    if (!allMatching && selected.size) {
      chips = [...selected.values()].map((p) => ({ type: 'person', id: p.id, label: personName(p) }));
    } else if (segment && !query.q) {
      chips = [{ type: 'segment', id: segment.id, label: segment.name }];
    } else {
      const f = currentFilter();
      chips = [{ type: 'filter', filter: f, label: `Filter: ${total.toLocaleString()} ${total === 1 ? 'person' : 'people'} now` }];
    }
    handOverRecipients(chips);
    location.hash = '#/outbound/new';
  }

  const onSearch = debounce(() => apply(), 300);
  search.addEventListener('input', () => {
    markEdited();
    onSearch();
  });

  container.append(
    pageHead('People', totalEl),
    h(
      'div',
      { class: 'people-layout' },
      h(
        'aside',
        { class: 'panel segments-panel', 'aria-label': 'Segments' },
        h('h2', { class: 'panel-title' }, 'Segments'),
        segList,
      ),
      h(
        'div',
        { class: 'people-main' },
        h(
          'section',
          { class: 'panel', 'aria-label': 'Search and filter' },
          field('Search', search, { errorKey: 'q', testid: 'people-search' }),
          h('div', { class: 'field' }, h('span', { class: 'field-label' }, 'Filters'), builder.el),
          h(
            'div',
            { class: 'toolbar' },
            button('Apply', () => apply(), { class: 'btn btn-primary', 'data-testid': 'filter-apply' }),
            button('Clear', () => {
              builder.clear();
              search.value = '';
              markEdited();
              apply();
            }, { 'data-testid': 'filter-clear' }),
            segmentNote,
          ),
          generalError,
        ),
        h(
          'section',
          { class: 'panel', 'aria-label': 'Results' },
          h(
            'div',
            { class: 'toolbar toolbar-wrap' },
            selectionEl,
            selectAll,
            sendBtn,
            h('span', { class: 'toolbar-gap' }),
            field('Segment name', segName, { errorKey: 'name', testid: 'segment-name', className: 'field-inline' }),
            saveSeg,
          ),
          h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'table', 'data-testid': 'people-table' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  h('th', { class: 'col-check', scope: 'col' }, pageBoxLabel),
                  h('th', { scope: 'col' }, 'Name'),
                  h('th', { scope: 'col', class: 'col-email' }, 'Email'),
                  h('th', { scope: 'col', class: 'col-opt' }, 'Company'),
                  h('th', { scope: 'col', class: 'col-opt' }, 'Location'),
                  h('th', { scope: 'col', class: 'col-opt' }, 'Tags'),
                  h('th', { scope: 'col', class: 'col-opt' }, 'Last seen'),
                ),
              ),
              tbody,
            ),
          ),
          results.el,
        ),
      ),
    ),
  );
  loadSegments();
  apply();
}
