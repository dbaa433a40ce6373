// Automations: the list of rules and flows (enabled toggles, recent runs), a
// rule's editor (trigger and its params, the rhai script checked as it is typed
// with each problem at its line, a dry run against a sample event), the flow
// builder (steps as an editable list, each choosing the next), and the run log.

import { api, enc } from './api.js';
import { button, clearErrors, dateTime, debounce, field, isAdmin, pageHead, pager, select, showError } from './ui.js';
import { h } from './views.js';

const TRIGGERS = [
  ['conversation.created', 'A conversation starts'],
  ['message.received', 'A person writes'],
  ['message.sent', 'A teammate or the bot writes'],
  ['person.created', 'A person is created'],
  ['person.updated', 'A person is updated'],
  ['page.view', 'A page is viewed'],
  ['conversation.unanswered', 'A message stays unanswered'],
  ['schedule', 'On a schedule (cron)'],
  ['event', 'A tracked event…'],
];

// Which params each trigger takes: [key, label, input type, hint].
const PARAMS = {
  'page.view': [
    ['url', 'URL pattern', 'text', 'A glob such as /pricing*; empty for every page'],
    ['after_seconds', 'After seconds on the page', 'number', ''],
    ['once_per_hours', 'At most once per person every … hours', 'number', ''],
  ],
  'conversation.unanswered': [['minutes', 'Unanswered for minutes', 'number', 'Fractions allowed: 0.5 is thirty seconds']],
  schedule: [['cron', 'Cron', 'text', 'minute hour day month weekday, such as 0 9 * * MON-FRI']],
};

const NODE_TYPES = [
  ['message', 'Message'],
  ['ask', 'Ask'],
  ['branch', 'Branch'],
  ['action', 'Action'],
  ['wait', 'Wait'],
  ['handoff', 'Handoff'],
];

const VALIDATIONS = ['text', 'email', 'number', 'phone'];

function triggerLabel(a) {
  if (a.trigger.startsWith('event.')) return `Event ${a.trigger.slice(6)}`;
  return TRIGGERS.find(([k]) => k === a.trigger)?.[1] ?? a.trigger;
}

function outcomeBadge(run) {
  return h('span', { class: 'run-badge', 'data-outcome': run.outcome, title: `${run.trigger} · ${dateTime(run.at)}` }, run.outcome);
}

/* ---------- the list ---------- */

const ADMINS_ONLY = 'Only admins can create, change or switch automations; you can read them, check scripts and dry-run them.';

export const list = {
  open(container) {
    const admin = isAdmin();
    const tbody = h('tbody', {});
    const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
    container.append(
      pageHead(
        'Automations',
        admin ? h('a', { class: 'btn', href: '#/automations/new?kind=flow', 'data-testid': 'automation-new-flow' }, 'New flow') : null,
        admin ? h('a', { class: 'btn btn-primary', href: '#/automations/new', 'data-testid': 'automation-new-rule' }, 'New rule') : null,
      ),
      admin ? null : h('p', { class: 'muted', 'data-testid': 'automations-admins-only' }, ADMINS_ONLY),
      h(
        'div',
        { class: 'table-wrap panel' },
        h(
          'table',
          { class: 'table', 'data-testid': 'automation-list' },
          h('thead', {}, h('tr', {}, ['Name', 'Kind', 'Trigger', 'Enabled', 'Recent runs'].map((t) => h('th', { scope: 'col' }, t)))),
          tbody,
        ),
        status,
      ),
    );

    function row(a) {
      const toggle = h('input', { type: 'checkbox', 'data-testid': 'automation-toggle', 'aria-label': `${a.name} enabled` });
      toggle.checked = a.enabled;
      toggle.disabled = !admin;
      const error = h('p', { class: 'form-error', role: 'alert' });
      toggle.addEventListener('change', async () => {
        error.textContent = '';
        toggle.disabled = true;
        try {
          const saved = await api('PATCH', `/automations/${enc(a.id)}`, { enabled: toggle.checked });
          toggle.checked = saved.enabled;
        } catch (e) {
          toggle.checked = !toggle.checked;
          error.textContent = e.message;
        } finally {
          toggle.disabled = !admin;
        }
      });
      const runs = h('span', { class: 'run-badges', 'data-testid': 'automation-runs' });
      api('GET', `/automations/${enc(a.id)}/runs?limit=5`)
        .then((r) => runs.replaceChildren(...(r.items.length ? r.items.map(outcomeBadge) : [h('span', { class: 'muted' }, 'none yet')])))
        .catch(() => runs.replaceChildren(h('span', { class: 'muted' }, '—')));
      return h(
        'tr',
        { 'data-testid': 'automation-row', 'data-automation-id': a.id },
        h('td', {}, h('a', { href: `#/automations/${enc(a.id)}` }, a.name), a.disabled_reason ? h('p', { class: 'form-error' }, a.disabled_reason) : null),
        h('td', {}, h('span', { class: 'kind-badge' }, a.kind === 'flow' ? 'Flow' : 'Rule')),
        h('td', {}, triggerLabel(a)),
        h('td', {}, h('label', { class: 'check' }, toggle, h('span', {}, a.enabled ? 'On' : 'Off')), error),
        h('td', {}, runs),
      );
    }

    api('GET', '/automations')
      .then((items) => {
        tbody.replaceChildren(...items.map(row));
        status.textContent = items.length ? '' : 'No automations yet';
      })
      .catch((e) => {
        status.textContent = `Could not load: ${e.message}`;
      });
  },
};

/* ---------- the script editor ---------- */

// A textarea with a line-number gutter, the caret's line and column, and the
// problems `POST /automations/validate` finds, each at its line.
function scriptEditor({ value = '', testid, label, errorKey }) {
  const area = h('textarea', { class: 'code-input', rows: '10', spellcheck: 'false', 'data-testid': testid, wrap: 'off' });
  area.value = value;
  const gutter = h('pre', { class: 'code-gutter', 'aria-hidden': 'true' });
  const caret = h('span', { class: 'code-caret muted', 'data-testid': `${testid}-caret` });
  const problems = h('ul', { class: 'code-problems', 'data-testid': `${testid}-problems`, 'aria-live': 'polite' });
  let errorLines = new Set();

  function paintGutter() {
    const n = area.value.split('\n').length;
    gutter.replaceChildren(
      ...Array.from({ length: n }, (_, i) => h('span', { class: errorLines.has(i + 1) ? 'is-error' : null, 'data-line': String(i + 1) }, `${i + 1}\n`)),
    );
    gutter.scrollTop = area.scrollTop;
  }

  function paintCaret() {
    const before = area.value.slice(0, area.selectionStart);
    const lines = before.split('\n');
    caret.textContent = `Line ${lines.length}, column ${lines[lines.length - 1].length + 1}`;
  }

  function setProblems(list) {
    errorLines = new Set(list.map((p) => p.line).filter(Boolean));
    problems.replaceChildren(
      ...list.map((p) =>
        h(
          'li',
          { class: 'form-error', 'data-testid': `${testid}-problem`, 'data-line': p.line ?? '', 'data-column': p.column ?? '' },
          p.line ? `Line ${p.line}${p.column ? `, column ${p.column}` : ''}: ${p.message}` : p.message,
        ),
      ),
    );
    paintGutter();
  }

  async function validate() {
    if (!area.value.trim()) {
      setProblems([]);
      return true;
    }
    try {
      const r = await api('POST', '/automations/validate', { script: area.value });
      setProblems(r.errors);
      return r.ok;
    } catch (e) {
      setProblems([{ message: e.message }]);
      return false;
    }
  }

  const later = debounce(validate, 400);
  area.addEventListener('input', () => {
    paintGutter();
    paintCaret();
    later();
  });
  area.addEventListener('scroll', () => {
    gutter.scrollTop = area.scrollTop;
  });
  for (const ev of ['keyup', 'click', 'focus']) area.addEventListener(ev, paintCaret);
  paintGutter();

  const wrap = field(label, area, { errorKey, className: 'code-field' });
  // The gutter sits beside the textarea inside the field.
  const box = h('div', { class: 'code-box' }, gutter);
  area.replaceWith(box);
  box.append(area);
  wrap.append(h('div', { class: 'code-foot' }, caret), problems);
  return { el: wrap, area, validate, setProblems, get value() { return area.value; } };
}

/* ---------- the flow builder ---------- */

const END = '';

function blankNode(type) {
  switch (type) {
    case 'message':
      return { type, text: '', buttons: [] };
    case 'ask':
      return { type, text: '', attribute: '', validate: 'text' };
    case 'branch':
      return { type, conditions: [{ if: '', next: END }] };
    case 'action':
      return { type, script: '' };
    case 'wait':
      return { type, seconds: 60 };
    default:
      return { type: 'handoff', text: '' };
  }
}

// The stored shape: empty optional fields left out so the server's checks
// (unknown fields, blank ids) see only what the user set.
function flowToJson(model) {
  const nodes = {};
  for (const { id, node } of model.nodes) {
    const n = { type: node.type };
    const put = (k, v) => {
      if (v !== undefined && v !== null && v !== '') n[k] = v;
    };
    switch (node.type) {
      case 'message':
        n.text = node.text ?? '';
        if (node.buttons?.length) n.buttons = node.buttons.map((b) => (b.next ? { label: b.label, next: b.next } : { label: b.label }));
        else put('next', node.next);
        break;
      case 'ask':
        n.text = node.text ?? '';
        n.attribute = node.attribute ?? '';
        put('validate', node.validate);
        put('retry_text', node.retry_text);
        put('next', node.next);
        put('on_fail', node.on_fail);
        break;
      case 'branch':
        n.conditions = (node.conditions ?? []).map((c) => ({ if: c.if, next: c.next }));
        put('else', node.else);
        break;
      case 'action':
        n.script = node.script ?? '';
        put('next', node.next);
        break;
      case 'wait':
        n.seconds = Number(node.seconds);
        put('next', node.next);
        break;
      default:
        put('teammate_id', node.teammate_id);
        put('team', node.team);
        put('text', node.text);
    }
    nodes[id] = n;
  }
  return { start: model.start, nodes };
}

function flowFromJson(flow) {
  const nodes = Object.entries(flow?.nodes ?? {}).map(([id, node]) => ({ id, node: structuredClone(node) }));
  // The start step first, as a reader expects.
  nodes.sort((a, b) => (a.id === flow?.start ? -1 : b.id === flow?.start ? 1 : 0));
  return { start: flow?.start ?? nodes[0]?.id ?? '', nodes };
}

function flowBuilder(flow, people) {
  const model = flow ? flowFromJson(flow) : { start: 'hello', nodes: [{ id: 'hello', node: blankNode('message') }] };
  const el = h('div', { class: 'flow-builder', 'data-testid': 'flow-builder' });

  function nextSelect(value, onChange, { testid, label, allowEnd = true }) {
    const options = [...(allowEnd ? [[END, '(end)']] : []), ...model.nodes.map((n) => [n.id, n.id])];
    const s = select(options, { 'data-testid': testid });
    s.value = value ?? END;
    s.addEventListener('change', () => onChange(s.value));
    return field(label, s, { className: 'field-inline' });
  }

  function text(value, onInput, { label, testid, errorKey, area, hint }) {
    const c = area ? h('textarea', { rows: '2' }) : h('input', { type: 'text' });
    c.value = value ?? '';
    c.addEventListener('input', () => onInput(c.value));
    return field(label, c, { testid, errorKey, hint });
  }

  function nodeCard(entry, index) {
    const { node } = entry;
    const key = (f) => `flow.nodes.${entry.id}.${f}`;
    const tid = (f) => `flow-node-${f}`;
    const set = (k) => (v) => {
      node[k] = v;
    };
    const idInput = h('input', { type: 'text', 'data-testid': tid('id') });
    idInput.value = entry.id;
    idInput.addEventListener('change', () => {
      const next = idInput.value.trim();
      if (!next || model.nodes.some((n) => n !== entry && n.id === next)) {
        idInput.value = entry.id;
        return;
      }
      rename(entry.id, next);
      entry.id = next;
      render();
    });
    const typeSel = select(NODE_TYPES, { 'data-testid': tid('type') });
    typeSel.value = node.type;
    typeSel.addEventListener('change', () => {
      entry.node = blankNode(typeSel.value);
      render();
    });
    const body = [];
    switch (node.type) {
      case 'message': {
        body.push(text(node.text, set('text'), { label: 'Text', testid: tid('text'), errorKey: key('text'), area: true }));
        const rows = (node.buttons ??= []).map((b, i) =>
          h(
            'div',
            { class: 'flow-sub', 'data-testid': 'flow-button', 'data-index': String(i) },
            text(b.label, (v) => (b.label = v), { label: `Button ${i + 1}`, testid: tid('button-label'), errorKey: key(`buttons.${i}`) }),
            nextSelect(b.next, (v) => (b.next = v), { label: 'Goes to', testid: tid('button-next') }),
            button('Remove', () => {
              node.buttons.splice(i, 1);
              render();
            }, { class: 'btn btn-quiet btn-small', 'aria-label': `Remove button ${i + 1}` }),
          ),
        );
        body.push(...rows);
        body.push(
          button('Add button', () => {
            node.buttons.push({ label: '', next: END });
            render();
          }, { class: 'btn btn-small', 'data-testid': tid('add-button') }),
        );
        if (!node.buttons.length) body.push(nextSelect(node.next, set('next'), { label: 'Then', testid: tid('next') }));
        break;
      }
      case 'ask': {
        body.push(text(node.text, set('text'), { label: 'Question', testid: tid('text'), errorKey: key('text'), area: true }));
        body.push(text(node.attribute, set('attribute'), { label: 'Store the answer in', testid: tid('attribute'), errorKey: key('attribute'), hint: 'An attribute, or email, name or phone' }));
        const v = select(VALIDATIONS, { 'data-testid': tid('validate') });
        v.value = node.validate ?? 'text';
        v.addEventListener('change', () => (node.validate = v.value));
        body.push(field('Answer must be', v, { className: 'field-inline', errorKey: key('validate') }));
        body.push(text(node.retry_text, set('retry_text'), { label: 'Asked again with (optional)', testid: tid('retry'), errorKey: key('retry_text') }));
        body.push(nextSelect(node.next, set('next'), { label: 'Then', testid: tid('next') }));
        body.push(nextSelect(node.on_fail, set('on_fail'), { label: 'After every attempt failed', testid: tid('on-fail') }));
        break;
      }
      case 'branch': {
        (node.conditions ??= []).forEach((c, i) => {
          body.push(
            h(
              'div',
              { class: 'flow-sub', 'data-testid': 'flow-condition' },
              text(c.if, (v) => (c.if = v), { label: `If (rhai) ${i + 1}`, testid: tid('condition-if'), errorKey: key(`conditions.${i}`), hint: 'such as person.attributes.seats > 50' }),
              nextSelect(c.next, (v) => (c.next = v), { label: 'Goes to', testid: tid('condition-next'), allowEnd: false }),
              button('Remove', () => {
                node.conditions.splice(i, 1);
                render();
              }, { class: 'btn btn-quiet btn-small', 'aria-label': `Remove condition ${i + 1}` }),
            ),
          );
        });
        body.push(
          button('Add condition', () => {
            node.conditions.push({ if: '', next: model.nodes[0]?.id ?? '' });
            render();
          }, { class: 'btn btn-small', 'data-testid': tid('add-condition') }),
        );
        body.push(nextSelect(node.else, set('else'), { label: 'Otherwise', testid: tid('else') }));
        break;
      }
      case 'action':
        body.push(text(node.script, set('script'), { label: 'Script (rhai)', testid: tid('script'), errorKey: key('script'), area: true, hint: 'tag("lead"); set_attribute("plan", "pro");' }));
        body.push(nextSelect(node.next, set('next'), { label: 'Then', testid: tid('next') }));
        break;
      case 'wait': {
        const s = h('input', { type: 'number', min: '1' });
        s.value = node.seconds ?? 60;
        s.addEventListener('input', () => (node.seconds = s.value));
        body.push(field('Wait seconds', s, { testid: tid('seconds'), errorKey: key('seconds') }));
        body.push(nextSelect(node.next, set('next'), { label: 'Then', testid: tid('next') }));
        break;
      }
      default: {
        const team = select([['', 'No team'], ...people.teams.map((t) => [t.id, t.name])], { 'data-testid': tid('team') });
        team.value = node.team ?? '';
        team.addEventListener('change', () => (node.team = team.value));
        const mate = select([['', 'No one in particular'], ...people.teammates.map((t) => [t.id, t.name])], { 'data-testid': tid('teammate') });
        mate.value = node.teammate_id ?? '';
        mate.addEventListener('change', () => (node.teammate_id = mate.value));
        body.push(field('Team', team, { errorKey: key('team') }));
        body.push(field('Teammate', mate, { errorKey: key('teammate_id') }));
        body.push(text(node.text, set('text'), { label: 'Says (optional)', testid: tid('text'), errorKey: key('text') }));
      }
    }
    const removeBtn = button('Remove step', () => {
      model.nodes.splice(index, 1);
      if (model.start === entry.id) model.start = model.nodes[0]?.id ?? '';
      render();
    }, { class: 'btn btn-quiet btn-small', 'data-testid': tid('remove') });
    const slot = h('p', { class: 'form-error', role: 'alert', 'data-error-for': `flow.nodes.${entry.id}` });
    return h(
      'li',
      { class: 'flow-node panel', 'data-testid': 'flow-node', 'data-node-id': entry.id, 'data-node-type': node.type },
      h(
        'div',
        { class: 'flow-node-head' },
        field('Step id', idInput, { className: 'field-inline' }),
        field('Type', typeSel, { className: 'field-inline' }),
        model.start === entry.id ? h('span', { class: 'kind-badge' }, 'Start') : null,
        removeBtn,
      ),
      body,
      slot,
    );
  }

  // A renamed step keeps every arrow that pointed at it.
  function rename(from, to) {
    if (model.start === from) model.start = to;
    for (const { node } of model.nodes) {
      for (const k of ['next', 'on_fail', 'else']) if (node[k] === from) node[k] = to;
      for (const b of node.buttons ?? []) if (b.next === from) b.next = to;
      for (const c of node.conditions ?? []) if (c.next === from) c.next = to;
    }
  }

  const addType = select(NODE_TYPES, { 'data-testid': 'flow-add-type' });

  function render() {
    const start = select(model.nodes.map((n) => [n.id, n.id]), { 'data-testid': 'flow-start' });
    start.value = model.start;
    start.addEventListener('change', () => {
      model.start = start.value;
      render();
    });
    el.replaceChildren(
      h('div', { class: 'toolbar toolbar-wrap' }, field('Starts at', start, { className: 'field-inline', errorKey: 'flow.start' })),
      h('ol', { class: 'flow-nodes' }, model.nodes.map(nodeCard)),
      h(
        'div',
        { class: 'toolbar' },
        field('New step', addType, { className: 'field-inline' }),
        button('Add step', () => {
          let n = model.nodes.length + 1;
          while (model.nodes.some((x) => x.id === `step${n}`)) n++;
          model.nodes.push({ id: `step${n}`, node: blankNode(addType.value) });
          if (!model.start) model.start = `step${n}`;
          render();
        }, { class: 'btn', 'data-testid': 'flow-add' }),
      ),
      h('p', { class: 'form-error', role: 'alert', 'data-error-for': 'flow' }),
    );
  }
  render();
  return { el, toJson: () => flowToJson(model) };
}

/* ---------- one automation ---------- */

async function loadPeople() {
  const [teammates, teams] = await Promise.all([
    api('GET', '/teammates').then((r) => r.items).catch(() => []),
    api('GET', '/teams').then((r) => r.items ?? r).catch(() => []),
  ]);
  return { teammates, teams: Array.isArray(teams) ? teams : [] };
}

export const editor = {
  open(container, [id]) {
    const isNew = id === undefined;
    const kindFromHash = /[?&]kind=flow/.test(location.hash) ? 'flow' : 'rule';
    container.append(h('p', { class: 'muted', role: 'status' }, 'Loading…'));
    let alive = true;
    Promise.all([isNew ? null : api('GET', `/automations/${enc(id)}`), loadPeople()])
      .then(([a, people]) => {
        if (alive) build(container, a, a?.kind ?? kindFromHash, people);
      })
      .catch((e) => {
        if (alive) container.replaceChildren(pageHead('Automation'), h('p', { class: 'form-error', role: 'alert' }, e.message));
      });
    return () => {
      alive = false;
    };
  },
};

function build(container, a, kind, people) {
  const isFlow = kind === 'flow';
  const form = h('form', { class: 'automation-form', novalidate: true, 'data-testid': 'automation-form' });
  const name = h('input', { type: 'text', required: true });
  name.value = a?.name ?? '';

  const trig = select(TRIGGERS, { 'data-testid': 'automation-trigger' });
  const eventName = h('input', { type: 'text' });
  const isEvent = a?.trigger?.startsWith('event.');
  trig.value = isEvent ? 'event' : (a?.trigger ?? 'conversation.created');
  if (isEvent) eventName.value = a.trigger.slice(6);
  const eventField = field('Event name', eventName, { testid: 'automation-event', errorKey: 'trigger' });
  const paramBox = h('div', { class: 'param-box' });
  let paramInputs = {};
  function paintParams() {
    eventField.hidden = trig.value !== 'event';
    paramInputs = {};
    paramBox.replaceChildren(
      ...(PARAMS[trig.value] ?? []).map(([key, label, type, hint]) => {
        const input = h('input', { type, step: type === 'number' ? 'any' : null });
        const v = a?.trigger === trig.value ? a?.params?.[key] : undefined;
        if (v != null) input.value = v;
        paramInputs[key] = input;
        return field(label, input, { hint: hint || null, testid: `automation-param-${key}`, errorKey: `params.${key}` });
      }),
    );
  }
  trig.addEventListener('change', paintParams);
  paintParams();

  const enabled = h('input', { type: 'checkbox', 'data-testid': 'automation-enabled' });
  enabled.checked = a?.enabled ?? false;
  const fallback = h('input', { type: 'checkbox', 'data-testid': 'automation-email-fallback' });
  fallback.checked = a?.email_fallback ?? true;

  const script = isFlow
    ? null
    : scriptEditor({
        value: a?.script ?? 'if person.attributes.plan == "pro" {\n    tag("vip");\n}\n',
        testid: 'automation-script',
        label: 'Script (rhai)',
        errorKey: 'script',
      });
  const builder = isFlow ? flowBuilder(a?.flow, people) : null;
  const formError = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'automation-error' });
  const saved = h('span', { class: 'muted', role: 'status', 'data-testid': 'automation-saved' });
  const admin = isAdmin();
  const saveBtn = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'automation-save', disabled: !admin }, 'Save');
  const validateBtn = isFlow
    ? button('Check', () => checkFlow(), { 'data-testid': 'flow-validate' })
    : button('Check', () => script.validate(), { 'data-testid': 'automation-validate' });

  function body() {
    const params = {};
    for (const [k, input] of Object.entries(paramInputs)) {
      if (input.value === '') continue;
      params[k] = input.type === 'number' ? Number(input.value) : input.value;
    }
    const out = {
      name: name.value,
      trigger: trig.value === 'event' ? `event.${eventName.value.trim()}` : trig.value,
      params,
      enabled: enabled.checked,
      email_fallback: fallback.checked,
    };
    if (isFlow) out.flow = builder.toJson();
    else out.script = script.value;
    if (!a) out.kind = kind;
    return out;
  }

  // A flow's problems: each at its step, the first also at the top.
  function showFlowProblems(errors) {
    clearErrors(builder.el);
    for (const p of errors) showError({ field: p.field, message: p.message }, builder.el, formError);
  }

  async function checkFlow() {
    clearErrors(form);
    try {
      const r = await api('POST', '/automations/validate', { flow: builder.toJson() });
      showFlowProblems(r.errors);
      if (r.ok) saved.textContent = 'No problems found';
      return r.ok;
    } catch (e) {
      formError.textContent = e.message;
      return false;
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    saved.textContent = '';
    saveBtn.disabled = true;
    try {
      const out = body();
      const res = a ? await api('PATCH', `/automations/${enc(a.id)}`, out) : await api('POST', '/automations', out);
      saved.textContent = `Saved ${res.enabled ? '(enabled)' : '(disabled)'}`;
      if (!a) {
        // The page of the new automation, with its dry run and run log.
        location.hash = `#/automations/${enc(res.id)}`;
        return;
      }
      a = res;
    } catch (e) {
      if (e.field === 'script' && script) {
        // Where in the script: the validator gives the line and column.
        await script.validate();
        formError.textContent = 'The script has a problem; nothing was saved.';
      } else if (e.field?.startsWith('flow') && builder) {
        showFlowProblems([{ field: e.field, message: e.message }]);
      } else {
        showError(e, form, formError);
      }
    } finally {
      saveBtn.disabled = !admin;
    }
  });

  form.append(
    h(
      'section',
      { class: 'panel' },
      field('Name', name, { testid: 'automation-name', errorKey: 'name' }),
      field('When', trig, { errorKey: 'trigger' }),
      eventField,
      paramBox,
      h(
        'div',
        { class: 'toolbar' },
        h('label', { class: 'check' }, enabled, h('span', {}, 'Enabled')),
        h('label', { class: 'check' }, fallback, h('span', {}, 'Email chat messages a person misses')),
      ),
      h('p', { class: 'form-error', role: 'alert', 'data-error-for': 'enabled' }),
    ),
    h('section', { class: 'panel' }, h('h2', { class: 'panel-title' }, isFlow ? 'Steps' : 'Script'), isFlow ? builder.el : script.el),
    h('div', { class: 'toolbar form-actions' }, saveBtn, validateBtn, saved),
    formError,
  );

  const title = a ? a.name : isFlow ? 'New flow' : 'New rule';
  const del = a && admin
    ? button('Delete', async () => {
        if (!confirm(`Delete ${a.name} and its run log?`)) return;
        try {
          await api('DELETE', `/automations/${enc(a.id)}`);
          location.hash = '#/automations';
        } catch (e) {
          formError.textContent = e.message;
        }
      }, { class: 'btn btn-quiet', 'data-testid': 'automation-delete' })
    : null;
  container.replaceChildren(
    pageHead(title, h('a', { class: 'btn btn-quiet', href: '#/automations' }, '‹ All automations'), del),
    a?.disabled_reason ? h('p', { class: 'form-error', role: 'alert' }, `Switched off: ${a.disabled_reason}`) : null,
    admin ? null : h('p', { class: 'muted', 'data-testid': 'automations-admins-only' }, ADMINS_ONLY),
    h('div', { class: 'automation-layout' }, h('div', { class: 'automation-main' }, form), a ? h('div', { class: 'automation-side' }, isFlow ? null : dryRun(a), runLog(a)) : null),
  );
}

/* ---------- dry run and run log ---------- */

function actionText(action) {
  const { type, ...rest } = action;
  const detail = Object.entries(rest)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
  return detail ? `${type} — ${detail}` : type;
}

function dryRun(a) {
  const event = h('textarea', { rows: '4', class: 'code-input', spellcheck: 'false' });
  event.value = JSON.stringify({ type: a.trigger }, null, 2);
  const out = h('ul', { class: 'action-list', 'data-testid': 'dry-run-actions', 'aria-live': 'polite' });
  const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'dry-run-error' });
  const run = button('Dry run', async () => {
    error.textContent = '';
    out.replaceChildren();
    let ev;
    try {
      ev = JSON.parse(event.value);
    } catch {
      error.textContent = 'The sample event is not valid JSON.';
      return;
    }
    try {
      const r = await api('POST', `/automations/${enc(a.id)}/test`, { event: ev });
      if (!r.ok) {
        const e = r.error ?? {};
        error.textContent = e.line ? `Line ${e.line}${e.column ? `, column ${e.column}` : ''}: ${e.message}` : e.message;
        return;
      }
      out.replaceChildren(
        ...(r.actions.length
          ? r.actions.map((x) => h('li', { 'data-testid': 'dry-run-action', 'data-type': x.type }, actionText(x)))
          : [h('li', { class: 'muted' }, 'No actions: the rule would do nothing for this event')]),
      );
    } catch (e) {
      error.textContent = e.field ? `${e.field}: ${e.message}` : e.message;
    }
  }, { class: 'btn', 'data-testid': 'dry-run' });
  return h(
    'section',
    { class: 'panel', 'aria-label': 'Dry run' },
    h('h2', { class: 'panel-title' }, 'Dry run'),
    field('Sample event (JSON)', event, { hint: 'person_id or conversation_id choose who the script sees', testid: 'dry-run-event' }),
    run,
    error,
    out,
    h('p', { class: 'muted' }, 'Nothing is sent or changed.'),
  );
}

function runLog(a) {
  const list = h('ul', { class: 'run-list', 'data-testid': 'run-log' });
  const runs = pager({
    list,
    testid: 'run-log',
    empty: 'No runs yet',
    fetchPage: (cursor) => api('GET', `/automations/${enc(a.id)}/runs?limit=20${cursor ? `&before=${enc(cursor)}` : ''}`),
    renderItem: (r) =>
      h(
        'li',
        { class: 'run-item', 'data-testid': 'run-item', 'data-outcome': r.outcome },
        h('div', { class: 'run-head' }, outcomeBadge(r), h('span', { class: 'run-trigger' }, r.trigger), h('time', { class: 'muted', datetime: r.at }, dateTime(r.at))),
        (r.actions ?? []).length ? h('ul', { class: 'action-list' }, r.actions.map((x) => h('li', {}, actionText(x)))) : null,
        r.error ? h('p', { class: 'form-error' }, r.error) : null,
        h('span', { class: 'muted' }, `${Math.round((r.duration_us ?? 0) / 100) / 10} ms`),
      ),
  });
  runs.reload();
  return h(
    'section',
    { class: 'panel', 'aria-label': 'Run log' },
    h('div', { class: 'panel-head' }, h('h2', { class: 'panel-title' }, 'Run log'), button('Refresh', () => runs.reload(), { class: 'btn btn-small', 'data-testid': 'run-log-refresh' })),
    list,
    runs.el,
  );
}
