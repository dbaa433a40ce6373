// The outbound composer: what kind of send, who gets it (chips from quick add,
// or handed over from People), title and body with snippets and a live preview
// as one recipient will read it, channels and options, templates, and Send.

import { api, enc } from './api.js';
import {
  button,
  chip,
  clearErrors,
  debounce,
  dropRecipients,
  field,
  handOverRecipients,
  pageHead,
  select,
  setOptions,
  showError,
  takeRecipients,
} from './ui.js';
import { h, personName } from './views.js';
import { attachControl } from './attach.js';

const KINDS = [
  ['chat', 'Chat', 'A new two-way conversation with each person; their replies come to the inbox.'],
  ['one_way', 'One-way message', 'An email or text with no reply expected.'],
  ['checkin', 'Check-in', 'Asks “Are you OK?” with an “I’m OK” button, and counts the answers.'],
  ['announcement', 'Announcement', 'A highlighted message in each person’s existing chat.'],
];

const CHANNELS = [
  ['chat', 'Chat', 'In the widget on your site, or the page their link opens.'],
  ['email', 'Email', 'To the address on their profile; skipped for people without one or unsubscribed.'],
  ['sms', 'SMS', 'To the phone number on their profile, over your SMS routes.'],
];

const OPTIONS = [
  ['email_fallback', 'Email fallback', 'A chat message not seen within the fallback delay is emailed to them.', true],
  ['sms_high_quality', 'SMS high quality', 'Try every SMS route in turn, up to 50 attempts, instead of the first route once.', false],
  ['managers_only', 'Managers only', 'Companies among the recipients reach only their managers.', false],
  ['are_you_ok', '“I’m OK” button', 'Adds the check-in button to a chat (a check-in always has it).', false],
];

const SNIPPETS = [
  ['{{person.first_name}}', 'First name'],
  ['{{person.name}}', 'Full name'],
  ['{{person.email}}', 'Email'],
  ['{{person.company}}', 'Company'],
  ['{{person.city}}', 'City'],
  ['{{default person.first_name "there"}}', 'First name, or “there”'],
  ['{{teammate.first_name}}', 'Your first name'],
  ['{{teammate.name}}', 'Your name'],
  ['{{workspace.name}}', 'Workspace name'],
];

const SAMPLE = 5; // recipients offered for the preview

function chipLabel(c) {
  const prefix = { company: 'Company: ', segment: 'Segment: ' }[c.type] ?? '';
  return prefix + c.label;
}

export function open(container) {
  const chips = takeRecipients();
  let kind = 'chat';
  let leaving = false;

  /* ---------- kind ---------- */

  const kindBox = h(
    'fieldset',
    { class: 'choice-group' },
    h('legend', {}, 'Kind'),
    KINDS.map(([value, label, hint]) => {
      const radio = h('input', { type: 'radio', name: 'compose-kind', value, 'data-testid': `compose-kind-${value}` });
      radio.checked = value === kind;
      radio.addEventListener('change', () => setKind(value));
      return h('label', { class: 'choice' }, radio, h('span', { class: 'choice-text' }, h('strong', {}, label), h('span', { class: 'field-hint' }, hint)));
    }),
  );

  /* ---------- recipients ---------- */

  const chipsBox = h('div', { class: 'chips', 'data-testid': 'compose-recipients' });
  const quick = h('input', { type: 'search', placeholder: 'Type a name, email, company or segment', autocomplete: 'off', 'aria-autocomplete': 'list' });
  const suggestions = h('div', { class: 'suggestions', 'data-testid': 'compose-suggestions', hidden: true });
  let quickGen = 0;

  function renderChips() {
    handOverRecipients(chips); // a reload of this page keeps them
    chipsBox.replaceChildren(
      ...chips.map((c, i) =>
        chip(chipLabel(c), {
          kind: c.type,
          testid: 'compose-chip',
          onRemove: () => {
            chips.splice(i, 1);
            renderChips();
            loadSample();
          },
        }),
      ),
    );
    for (const [i, el] of [...chipsBox.children].entries()) el.dataset.type = chips[i].type;
    if (!chips.length) chipsBox.append(h('span', { class: 'muted' }, 'No recipients yet'));
  }

  function addChip(c) {
    if (!chips.some((x) => x.type === c.type && x.id === c.id)) chips.push(c);
    renderChips();
    loadSample();
    quick.value = '';
    suggestions.hidden = true;
    quick.focus();
  }

  const lookUp = debounce(async () => {
    const q = quick.value.trim();
    const gen = ++quickGen;
    if (!q) {
      suggestions.hidden = true;
      return;
    }
    try {
      const r = await api('GET', `/search?q=${enc(q)}&limit=5`);
      if (gen !== quickGen || leaving) return;
      const options = [
        ...(r.people ?? []).map((p) => ({ type: 'person', id: p.id, label: personName(p), sub: p.email ?? '' })),
        ...(r.companies ?? []).map((c) => ({ type: 'company', id: c.id, label: c.name, sub: `${c.members} members` })),
        ...(r.segments ?? []).map((s) => ({ type: 'segment', id: s.id, label: s.name, sub: s.count == null ? 'segment' : `${s.count} people` })),
      ];
      suggestions.replaceChildren(
        ...options.map((o) =>
          button(
            [h('span', { class: `sugg-type sugg-${o.type}` }, o.type), h('span', { class: 'sugg-label' }, o.label), h('span', { class: 'sugg-sub' }, o.sub)],
            () => addChip({ type: o.type, id: o.id, label: o.label }),
            { class: 'suggestion', 'data-testid': 'compose-suggestion', 'data-type': o.type, 'data-id': o.id },
          ),
        ),
      );
      if (!options.length) suggestions.append(h('p', { class: 'muted sugg-none' }, 'No matches'));
      suggestions.hidden = false;
    } catch (e) {
      suggestions.replaceChildren(h('p', { class: 'form-error' }, e.message));
      suggestions.hidden = false;
    }
  }, 200);
  quick.addEventListener('input', lookUp);
  quick.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      suggestions.querySelector('button')?.focus();
    } else if (e.key === 'Enter') {
      e.preventDefault();
      suggestions.querySelector('button')?.click();
    } else if (e.key === 'Escape') {
      suggestions.hidden = true;
    }
  });
  suggestions.addEventListener('keydown', (e) => {
    const items = [...suggestions.querySelectorAll('button')];
    const i = items.indexOf(document.activeElement);
    if (e.key === 'ArrowDown') items[Math.min(i + 1, items.length - 1)]?.focus();
    else if (e.key === 'ArrowUp') (i <= 0 ? quick : items[i - 1]).focus();
    else if (e.key === 'Escape') {
      suggestions.hidden = true;
      quick.focus();
    } else return;
    e.preventDefault();
  });

  function audience() {
    const a = {};
    const ids = (type) => chips.filter((c) => c.type === type).map((c) => c.id);
    if (ids('person').length) a.people = ids('person');
    if (ids('segment').length) a.segments = ids('segment');
    if (ids('company').length) a.companies = ids('company');
    const filters = chips.filter((c) => c.type === 'filter').map((c) => c.filter);
    if (filters.length) a.filter = filters.length === 1 ? filters[0] : { or: filters };
    return a;
  }

  /* ---------- title, body, snippets ---------- */

  const title = h('input', { type: 'text', placeholder: 'News for {{person.first_name}}' });
  const body = h('textarea', { rows: '6', placeholder: 'Hi {{person.first_name}}, …' });
  const snippet = select([['', 'Insert a snippet…'], ...SNIPPETS]);
  snippet.addEventListener('change', () => {
    if (!snippet.value) return;
    const at = body.selectionStart ?? body.value.length;
    const end = body.selectionEnd ?? at;
    body.setRangeText(snippet.value, at, end, 'end');
    snippet.value = '';
    body.focus();
    schedulePreview();
  });

  /* ---------- preview ---------- */

  const previewPerson = select([], {});
  const previewTitle = h('p', { class: 'preview-title', 'data-testid': 'compose-preview-title' });
  const previewBody = h('div', { class: 'preview-body', 'data-testid': 'compose-preview', 'aria-live': 'polite' });
  let previewGen = 0;
  let sampleGen = 0;

  async function loadSample() {
    const gen = ++sampleGen;
    const people = chips.filter((c) => c.type === 'person').slice(0, SAMPLE).map((c) => [c.id, c.label]);
    for (const c of chips) {
      if (people.length >= SAMPLE || c.type === 'person') continue;
      try {
        const page =
          c.type === 'segment' ? await api('GET', `/segments/${enc(c.id)}/people?limit=${SAMPLE}`)
          : c.type === 'company' ? await api('POST', '/people/search', { filter: { field: 'company', op: 'eq', value: c.label }, limit: SAMPLE })
          : await api('POST', '/people/search', { filter: c.filter, limit: SAMPLE });
        for (const p of page.items ?? []) if (people.length < SAMPLE) people.push([p.id, personName(p)]);
      } catch {
        // No sample from this chip; sending will say what is wrong with it.
      }
    }
    if (gen !== sampleGen || leaving) return;
    setOptions(previewPerson, people.length ? people : [['', 'Add recipients to preview']]);
    schedulePreview();
  }

  async function preview() {
    const gen = ++previewGen;
    const personId = previewPerson.value;
    for (const key of ['body', 'title']) container.querySelector(`[data-error-for="${key}"]`).textContent = '';
    if (!personId || !body.value.trim()) {
      previewBody.textContent = body.value.trim() ? '' : 'The message as each person will read it shows here.';
      previewTitle.textContent = '';
      return;
    }
    try {
      const r = await api('POST', '/outbound/preview', { body: body.value, person_id: personId, title: title.value.trim() || undefined });
      if (gen !== previewGen || leaving) return;
      previewTitle.textContent = r.title ?? '';
      previewBody.textContent = r.rendered;
      previewBody.classList.remove('is-stale');
    } catch (e) {
      if (gen !== previewGen || leaving) return;
      previewBody.classList.add('is-stale');
      showError(e, container, generalError);
    }
  }
  const schedulePreview = debounce(preview, 250);
  body.addEventListener('input', schedulePreview);
  title.addEventListener('input', schedulePreview);
  previewPerson.addEventListener('change', preview);

  /* ---------- channels and options ---------- */

  const channelBoxes = new Map();
  const channelsBox = h(
    'fieldset',
    { class: 'choice-group' },
    h('legend', {}, 'Channels'),
    CHANNELS.map(([value, label, hint]) => {
      const box = h('input', { type: 'checkbox', value, 'data-testid': `compose-channel-${value}` });
      channelBoxes.set(value, box);
      return h('label', { class: 'choice' }, box, h('span', { class: 'choice-text' }, h('strong', {}, label), h('span', { class: 'field-hint' }, hint)));
    }),
  );
  const optionBoxes = new Map();
  const optionLabels = new Map();
  const optionsBox = h(
    'fieldset',
    { class: 'choice-group' },
    h('legend', {}, 'Options'),
    OPTIONS.map(([key, label, hint, on]) => {
      const box = h('input', { type: 'checkbox', 'data-testid': `compose-option-${key}` });
      box.checked = on;
      optionBoxes.set(key, box);
      const el = h('label', { class: 'choice' }, box, h('span', { class: 'choice-text' }, h('strong', {}, label), h('span', { class: 'field-hint' }, hint)));
      optionLabels.set(key, el);
      return el;
    }),
  );

  function setKind(value) {
    kind = value;
    const chat = channelBoxes.get('chat');
    // One-way goes by email or SMS only; every other kind needs chat.
    chat.checked = kind !== 'one_way';
    chat.disabled = true;
    if (kind === 'one_way' && ![...channelBoxes.values()].some((b) => b.checked)) channelBoxes.get('email').checked = true;
    optionLabels.get('are_you_ok').hidden = kind !== 'chat';
    optionLabels.get('email_fallback').hidden = kind === 'one_way';
    // Files go with chats and announcements only.
    files.el.hidden = !(kind === 'chat' || kind === 'announcement');
    for (const r of kindBox.querySelectorAll('input')) r.checked = r.value === kind;
    loadTemplates();
  }

  /* ---------- templates ---------- */

  const templateSel = select([['', 'Templates…']], { 'data-testid': 'compose-template' });
  const templateSearch = h('input', { type: 'search', placeholder: 'Search by title', autocomplete: 'off' });
  let templates = [];
  let templateGen = 0;
  const templateKind = () => (kind === 'one_way' ? 'one_way' : 'chat');

  async function loadTemplates() {
    const gen = ++templateGen;
    const q = templateSearch.value.trim();
    try {
      const found = await api('GET', `/templates?kind=${templateKind()}${q ? `&q=${enc(q)}` : ''}`);
      if (gen !== templateGen || leaving) return;
      templates = found;
      const none = q ? `No templates match “${q}”` : 'No templates yet';
      setOptions(templateSel, [['', templates.length ? `Load a template (${templates.length})…` : none], ...templates.map((t) => [t.id, t.title])], '');
    } catch {
      templates = [];
    }
  }
  templateSearch.addEventListener('input', debounce(loadTemplates, 200));

  // A template's audience as chips: each id looked up for its name, and one
  // that no longer exists left out (and said so) rather than sent blind.
  async function audienceChips(a) {
    const out = [];
    let missing = 0;
    const look = async (type, id, path, label) => {
      try {
        out.push({ type, id, label: label(await api('GET', path)) });
      } catch {
        missing += 1;
      }
    };
    for (const id of a?.people ?? []) await look('person', id, `/people/${enc(id)}`, personName);
    for (const id of a?.companies ?? []) await look('company', id, `/companies/${enc(id)}`, (c) => c.name);
    for (const id of a?.segments ?? []) await look('segment', id, `/segments/${enc(id)}`, (s) => s.name);
    if (a?.filter) {
      const filters = a.filter.or && Object.keys(a.filter).length === 1 ? a.filter.or : [a.filter];
      for (const f of filters) out.push({ type: 'filter', filter: f, label: 'Filter from the template' });
    }
    return { chips: out, missing };
  }

  templateSel.addEventListener('change', async () => {
    const t = templates.find((x) => x.id === templateSel.value);
    if (!t) return;
    title.value = t.title;
    body.value = t.body;
    for (const [c, box] of channelBoxes) if (!box.disabled) box.checked = t.channels.includes(c);
    for (const [k, box] of optionBoxes) box.checked = !!t.options?.[k];
    files.set(t.attachments);
    let note = '';
    if (t.audience) {
      const { chips: restored, missing } = await audienceChips(t.audience);
      if (leaving) return;
      chips.splice(0, chips.length, ...restored);
      renderChips();
      loadSample();
      if (missing) note = ` (${missing} recipient${missing === 1 ? '' : 's'} no longer exist)`;
    }
    templateStatus.textContent = `Loaded “${t.title}”${note}`;
    schedulePreview();
  });
  const templateStatus = h('span', { class: 'muted', role: 'status', 'data-testid': 'compose-template-status' });

  async function saveTemplate() {
    clearErrors(container);
    try {
      const a = audience();
      const t = await api('POST', '/templates', {
        kind: templateKind(),
        title: title.value.trim(),
        body: body.value,
        channels: channels(),
        audience: Object.keys(a).length ? a : undefined,
        options: options(),
        attachments: files.el.hidden ? [] : files.ids(),
      });
      templateStatus.textContent = `Saved “${t.title}”`;
      await loadTemplates();
    } catch (e) {
      showError(e, container, generalError);
    }
  }

  /* ---------- send ---------- */

  const generalError = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'compose-error' });
  const files = attachControl({ testid: 'compose-attach' });
  const sendBtn = button('Send', () => send(), { class: 'btn btn-primary', 'data-testid': 'compose-send' });
  const channels = () => [...channelBoxes].filter(([, b]) => b.checked).map(([c]) => c);
  const options = () => Object.fromEntries([...optionBoxes].map(([k, b]) => [k, b.checked && !optionLabels.get(k).hidden]));

  async function send() {
    clearErrors(container);
    if (!files.el.hidden && files.busy()) {
      files.errorSlot.textContent = 'Wait until every file has uploaded, or remove it.';
      return;
    }
    sendBtn.disabled = true;
    sendBtn.textContent = 'Sending…';
    try {
      const created = await api('POST', '/outbound', {
        kind,
        title: title.value.trim() || undefined,
        body: body.value,
        channels: channels(),
        audience: audience(),
        options: options(),
        attachments: files.el.hidden ? [] : files.ids(),
      });
      location.hash = `#/outbound/${enc(created.id)}`;
    } catch (e) {
      showError(e, container, generalError);
      sendBtn.disabled = false;
      sendBtn.textContent = 'Send';
    }
  }

  /* ---------- page ---------- */

  const recipientsField = h(
    'div',
    { class: 'field' },
    h('span', { class: 'field-label', id: 'compose-recipients-label' }, 'Recipients'),
    chipsBox,
    h('div', { class: 'quick-add' }, field('Add recipients', quick, { testid: 'compose-recipient-input', hint: 'People, companies and segments; Enter adds the first match.' }), suggestions),
    h('p', { class: 'form-error', role: 'alert', 'data-error-for': 'audience', 'data-testid': 'compose-audience-error' }),
  );

  container.append(
    pageHead('New message', h('a', { class: 'btn btn-quiet', href: '#/outbound' }, 'Cancel')),
    h(
      'div',
      { class: 'composer-layout' },
      h(
        'section',
        { class: 'panel composer-form', 'aria-label': 'Message' },
        kindBox,
        h('p', { class: 'form-error', role: 'alert', 'data-error-for': 'kind' }),
        recipientsField,
        field('Title', title, { errorKey: 'title', testid: 'compose-title', hint: 'The email subject and the chat’s title; snippets allowed.' }),
        h('div', { class: 'body-head' }, field('Insert a snippet', snippet, { testid: 'compose-snippet', className: 'field-inline' })),
        field('Message', body, { errorKey: 'body', testid: 'compose-body' }),
        files.el,
        channelsBox,
        h('p', { class: 'form-error', role: 'alert', 'data-error-for': 'channels', 'data-testid': 'compose-channels-error' }),
        optionsBox,
        h('p', { class: 'form-error', role: 'alert', 'data-error-for': 'options' }),
        generalError,
        h('div', { class: 'toolbar' }, sendBtn),
      ),
      h(
        'aside',
        { class: 'composer-side' },
        h(
          'section',
          { class: 'panel', 'aria-label': 'Preview' },
          h('h2', { class: 'panel-title' }, 'Preview'),
          field('As read by', previewPerson, { testid: 'compose-preview-person' }),
          h('div', { class: 'preview' }, previewTitle, previewBody),
        ),
        h(
          'section',
          { class: 'panel', 'aria-label': 'Templates' },
          h('h2', { class: 'panel-title' }, 'Templates'),
          field('Search templates', templateSearch, { testid: 'compose-template-search' }),
          field('Load a template', templateSel, { className: 'field-inline', hint: 'Fills in the title, message, files, recipients, channels and options.' }),
          h('div', { class: 'toolbar' }, button('Save as template', saveTemplate, { 'data-testid': 'compose-template-save' }), templateStatus),
        ),
      ),
    ),
  );

  setKind('chat');
  renderChips();
  loadSample();
  if (!chips.length) quick.focus();
  return () => {
    leaving = true;
    dropRecipients();
  };
}
