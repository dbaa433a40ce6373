// The filter builder: rows of field / operator / value, "did EVENT at least N
// times in the last D days", a location radius or an area drawn on a map, and
// nested and/or groups. It edits a small model and writes it out as the filter
// language of the API, remembering which row each JSON path came from so a 422
// (`filter.and.1.op`) is shown on that row.

import { polygonPicker } from './map.js';
import { button, select, setOptions } from './ui.js';
import { h } from './views.js';

const BUILT_IN = {
  name: 'text',
  email: 'text',
  phone: 'text',
  company: 'text',
  country: 'text',
  city: 'text',
  tags: 'tags',
  created_at: 'date',
  last_seen_at: 'date',
  online: 'bool',
  manager: 'bool',
  location: 'location',
};

const FIELD_LABELS = {
  name: 'Name',
  email: 'Email',
  phone: 'Phone',
  company: 'Company',
  country: 'Country',
  city: 'City',
  tags: 'Tags',
  created_at: 'Created',
  last_seen_at: 'Last seen',
  online: 'Online now',
  manager: 'Company manager',
  location: 'Location',
};

// What the server accepts per kind of field (engine/src/filter.rs).
const OPS = {
  text: [['eq', 'is'], ['neq', 'is not'], ['contains', 'contains'], ['starts_with', 'starts with'], ['in', 'is any of'], ['exists', 'is set']],
  tags: [['contains', 'has tag'], ['neq', 'has not tag'], ['in', 'has any of'], ['exists', 'has any tag']],
  number: [['eq', '='], ['neq', '≠'], ['gt', '>'], ['gte', '≥'], ['lt', '<'], ['lte', '≤'], ['between', 'between'], ['in', 'is any of'], ['exists', 'is set']],
  bool: [['eq', 'is'], ['neq', 'is not']],
  date: [['within_days', 'in the last … days'], ['gt', 'after'], ['lt', 'before'], ['between', 'between'], ['exists', 'is set']],
  location: [['within_radius', 'within … km of'], ['in_polygon', 'inside an area on the map'], ['exists', 'is known']],
};

const ATTR_KINDS = [['text', 'text'], ['number', 'number'], ['bool', 'yes/no'], ['date', 'date']];
const OTHER_ATTRIBUTE = '__other';

let seq = 0;
const uid = () => `fb${++seq}`;

// A control with a label only screen readers see: rows are too dense for visible ones.
function labelled(text, control) {
  control.id ||= uid();
  return [h('label', { for: control.id, class: 'visually-hidden' }, text), control];
}

const newCondition = () => ({ type: 'cond', field: 'name', op: 'contains', value: '', attrKind: 'text' });
const newEvent = () => ({ type: 'event', negate: false, name: '', min: '1', days: '' });
const newGroup = (op = 'and') => ({ type: 'group', op, items: [] });

function kindOf(node) {
  if (node.field.startsWith('attributes.')) return node.attrKind;
  return BUILT_IN[node.field] ?? 'text';
}

/* ---------- model → filter JSON ---------- */

function coerce(kind, text, path) {
  const t = String(text ?? '').trim();
  if (kind === 'number') {
    const n = Number(t);
    if (t === '' || !Number.isFinite(n)) throw Object.assign(new Error('Enter a number'), { field: path });
    return n;
  }
  if (kind === 'bool') return t === 'true';
  if (t === '') throw Object.assign(new Error('Enter a value'), { field: path });
  return t;
}

function conditionJson(node, path) {
  const kind = kindOf(node);
  const out = { field: node.field, op: node.op };
  const vp = `${path}.value`;
  if (node.op === 'exists') return out;
  if (node.op === 'in') {
    const parts = String(node.value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (!parts.length) throw Object.assign(new Error('List one or more values, separated by commas'), { field: vp });
    out.value = parts.map((p) => coerce(kind, p, vp));
  } else if (node.op === 'between') {
    out.value = [coerce(kind, node.value, `${vp}.0`), coerce(kind, node.value2, `${vp}.1`)];
  } else if (node.op === 'within_days') {
    out.value = coerce('number', node.value, vp);
  } else if (node.op === 'in_polygon') {
    if ((node.points ?? []).length < 3) throw Object.assign(new Error('Click at least 3 corners of the area on the map'), { field: vp });
    out.value = node.points.map(([lat, lon]) => [lat, lon]);
  } else if (node.op === 'within_radius') {
    out.value = { lat: coerce('number', node.lat, `${vp}.lat`), lon: coerce('number', node.lon, `${vp}.lon`), km: coerce('number', node.km, `${vp}.km`) };
  } else {
    out.value = coerce(kind, node.value, vp);
  }
  return out;
}

function nodeJson(node, path, rows) {
  if (node.el) node.el.querySelector(':scope > .form-error').dataset.errorFor = path;
  rows.push(node);
  if (node.type === 'group') {
    return { [node.op]: node.items.map((child, i) => nodeJson(child, `${path}.${node.op}.${i}`, rows)) };
  }
  if (node.type === 'event') {
    const p = node.negate ? `${path}.not` : path;
    const name = String(node.name ?? '').trim();
    if (!name) throw Object.assign(new Error('Name the event, e.g. purchased'), { field: `${p}.event` });
    const e = { event: name };
    if (String(node.min ?? '').trim() !== '') e.min_count = coerce('number', node.min, `${p}.min_count`);
    if (String(node.days ?? '').trim() !== '') e.within_days = coerce('number', node.days, `${p}.within_days`);
    return node.negate ? { not: e } : e;
  }
  if (node.type === 'raw') return node.json;
  return conditionJson(node, path);
}

/* ---------- filter JSON → model ---------- */

function fromJson(json, attrKinds) {
  if (!json || typeof json !== 'object') return null;
  for (const op of ['and', 'or']) {
    if (Array.isArray(json[op])) {
      const g = newGroup(op);
      g.items = json[op].map((j) => fromJson(j, attrKinds) ?? { type: 'raw', json: j });
      return g;
    }
  }
  const event = json.not?.event !== undefined ? json.not : json.event !== undefined ? json : null;
  if (event) {
    return { type: 'event', negate: event !== json, name: event.event, min: event.min_count ?? '', days: event.within_days ?? '' };
  }
  if (typeof json.field === 'string' && typeof json.op === 'string') {
    const node = { type: 'cond', field: json.field, op: json.op, value: '', attrKind: 'text' };
    const v = json.value;
    if (json.field.startsWith('attributes.')) {
      const sample = Array.isArray(v) ? v[0] : v;
      node.attrKind =
        attrKinds.get(json.field.slice(11)) ??
        (typeof sample === 'number' ? 'number' : typeof sample === 'boolean' ? 'bool' : 'text');
    }
    if (json.op === 'between' && Array.isArray(v)) [node.value, node.value2] = v.map(String);
    else if (json.op === 'in' && Array.isArray(v)) node.value = v.join(', ');
    else if (json.op === 'within_radius' && v) Object.assign(node, { lat: v.lat, lon: v.lon, km: v.km });
    else if (json.op === 'in_polygon' && Array.isArray(v)) node.points = v.map((p) => [Number(p?.[0]), Number(p?.[1])]);
    else if (v !== undefined) node.value = String(v);
    return node;
  }
  return null;
}

/* ---------- the builder ---------- */

// Keeps `node[key]` in step with what is typed into `el`.
function bindTo(node, key, el, changed) {
  el.value = node[key] ?? '';
  el.addEventListener('input', () => {
    node[key] = el.value;
    changed();
  });
  return el;
}

/**
 * attrKinds: Map of custom attribute name → kind (text, number, bool, date),
 * learned from the people the page has loaded. onApply runs on Enter or Apply.
 */
export function filterBuilder({ attrKinds, onApply, onChange }) {
  let root = newGroup('and');
  const rootEl = h('div', { class: 'fb', 'data-testid': 'filter-builder' });

  const changed = () => onChange?.();

  function fieldOptions(current) {
    const opts = Object.entries(FIELD_LABELS).map(([k, label]) => [k, label]);
    const names = new Set(attrKinds.keys());
    if (current.startsWith('attributes.') && current.length > 11) names.add(current.slice(11));
    for (const name of [...names].sort()) opts.push([`attributes.${name}`, `Attribute: ${name}`]);
    opts.push([OTHER_ATTRIBUTE, 'Other attribute…']);
    return opts;
  }

  function valueInputs(node) {
    const kind = kindOf(node);
    const bind = (el, key) => bindTo(node, key, el, changed);
    const typed = kind === 'number' ? 'number' : kind === 'date' ? 'date' : 'text';
    const valueInput = (key, label, type = typed) =>
      labelled(label, bind(h('input', { type, class: 'fb-value', 'data-testid': key === 'value' ? 'filter-value' : `filter-${key}`, step: type === 'number' ? 'any' : null }), key));
    switch (node.op) {
      case 'exists':
        return [];
      case 'in':
        return labelled('Values, separated by commas', bind(h('input', { type: 'text', class: 'fb-value', 'data-testid': 'filter-value', placeholder: 'a, b, c' }), 'value'));
      case 'between':
        return [...valueInput('value', 'From'), h('span', { class: 'fb-word' }, 'and'), ...valueInput('value2', 'To')];
      case 'within_days':
        return [...valueInput('value', 'Days', 'number'), h('span', { class: 'fb-word' }, 'days')];
      case 'in_polygon':
        return polygonPicker(node, changed);
      case 'within_radius':
        return [
          ...valueInput('km', 'Kilometres', 'number'),
          h('span', { class: 'fb-word' }, 'km of'),
          ...valueInput('lat', 'Latitude', 'number'),
          ...valueInput('lon', 'Longitude', 'number'),
        ];
      default:
        if (kind === 'bool') {
          const s = select([['true', 'yes'], ['false', 'no']], { class: 'fb-value', 'data-testid': 'filter-value' });
          node.value = node.value === 'false' ? 'false' : 'true';
          s.value = node.value;
          s.addEventListener('change', () => {
            node.value = s.value;
            changed();
          });
          return labelled('Value', s);
        }
        return valueInput('value', 'Value');
    }
  }

  // One row of a group: its controls, the remove button, and its error slot.
  function rowEl(node, parent, attrs, controls) {
    node.el = h(
      'div',
      { class: 'fb-row', ...attrs },
      h('div', { class: 'fb-line' }, ...controls, removeButton(node, parent)),
      h('p', { class: 'form-error', role: 'alert' }),
    );
    return node.el;
  }

  function conditionRow(node, parent) {
    const fieldSel = select(fieldOptions(node.field), { class: 'fb-field', 'data-testid': 'filter-field' });
    fieldSel.value = node.field;
    const attrName = h('input', { type: 'text', class: 'fb-attr', placeholder: 'attribute name', 'data-testid': 'filter-attribute' });
    const kindSel = select(ATTR_KINDS, { class: 'fb-kind', 'data-testid': 'filter-kind' });
    const opSel = select([], { class: 'fb-op', 'data-testid': 'filter-op' });
    const values = h('span', { class: 'fb-values' });

    function refresh() {
      const isAttr = node.field.startsWith('attributes.') || fieldSel.value === OTHER_ATTRIBUTE;
      attrName.hidden = fieldSel.value !== OTHER_ATTRIBUTE;
      kindSel.hidden = !isAttr;
      kindSel.value = node.attrKind;
      const ops = OPS[kindOf(node)];
      if (!ops.some(([o]) => o === node.op)) node.op = ops[0][0];
      setOptions(opSel, ops, node.op);
      opSel.value = node.op;
      values.replaceChildren(...valueInputs(node));
    }

    fieldSel.addEventListener('change', () => {
      if (fieldSel.value === OTHER_ATTRIBUTE) {
        node.field = `attributes.${attrName.value.trim()}`;
        attrName.focus();
      } else {
        node.field = fieldSel.value;
        if (node.field.startsWith('attributes.')) node.attrKind = attrKinds.get(node.field.slice(11)) ?? 'text';
      }
      refresh();
      changed();
    });
    attrName.addEventListener('input', () => {
      node.field = `attributes.${attrName.value.trim()}`;
      changed();
    });
    kindSel.addEventListener('change', () => {
      node.attrKind = kindSel.value;
      refresh();
      changed();
    });
    opSel.addEventListener('change', () => {
      node.op = opSel.value;
      values.replaceChildren(...valueInputs(node));
      changed();
    });
    refresh();
    return rowEl(node, parent, { 'data-testid': 'filter-row' }, [
      ...labelled('Field', fieldSel),
      ...labelled('Attribute name', attrName),
      ...labelled('Attribute type', kindSel),
      ...labelled('Operator', opSel),
      values,
    ]);
  }

  function eventRow(node, parent) {
    const did = select([['did', 'did'], ['not', 'did not do']], { class: 'fb-op', 'data-testid': 'filter-event-negate' });
    did.value = node.negate ? 'not' : 'did';
    did.addEventListener('change', () => {
      node.negate = did.value === 'not';
      changed();
    });
    const bind = (el, key) => bindTo(node, key, el, changed);
    const name = bind(h('input', { type: 'text', class: 'fb-value', placeholder: 'event name', 'data-testid': 'filter-event-name' }), 'name');
    const min = bind(h('input', { type: 'number', min: '0', class: 'fb-num', 'data-testid': 'filter-event-min' }), 'min');
    const days = bind(h('input', { type: 'number', min: '1', class: 'fb-num', placeholder: 'any', 'data-testid': 'filter-event-days' }), 'days');
    return rowEl(node, parent, { 'data-testid': 'filter-event-row' }, [
      ...labelled('Did or did not', did),
      ...labelled('Event name', name),
      h('span', { class: 'fb-word' }, 'at least'),
      ...labelled('At least this many times', min),
      h('span', { class: 'fb-word' }, 'times in the last'),
      ...labelled('Days (empty: ever)', days),
      h('span', { class: 'fb-word' }, 'days'),
    ]);
  }

  function rawRow(node, parent) {
    return rowEl(node, parent, { 'data-testid': 'filter-raw-row' }, [h('code', { class: 'fb-raw' }, JSON.stringify(node.json))]);
  }

  function removeButton(node, parent) {
    return button('×', () => {
      parent.items.splice(parent.items.indexOf(node), 1);
      render();
      changed();
    }, { class: 'btn btn-quiet fb-remove', 'aria-label': 'Remove this condition' });
  }

  function groupEl(group, parent) {
    const box = h('div', { class: parent ? 'fb-group fb-nested' : 'fb-group', 'data-testid': parent ? 'filter-group' : null });
    group.el = box;
    const combinator = select([['and', 'all of'], ['or', 'any of']], { class: 'fb-combinator', 'data-testid': 'filter-combinator' });
    combinator.value = group.op;
    combinator.addEventListener('change', () => {
      group.op = combinator.value;
      changed();
    });
    const add = (make) => () => {
      group.items.push(make());
      render();
      changed();
      // Put the keyboard on the new row's first control.
      group.items.at(-1).el?.querySelector('select, input')?.focus();
    };
    const items = group.items.map((child) =>
      child.type === 'group' ? groupEl(child, group)
      : child.type === 'event' ? eventRow(child, group)
      : child.type === 'raw' ? rawRow(child, group)
      : conditionRow(child, group),
    );
    box.append(
      h('div', { class: 'fb-group-head' }, h('span', { class: 'fb-word' }, 'Match'), ...labelled('Match all or any', combinator), h('span', { class: 'fb-word' }, 'of these'),
        parent ? removeButton(group, parent) : null),
      h('p', { class: 'form-error', role: 'alert' }),
      ...items,
      h(
        'div',
        { class: 'fb-add' },
        button('+ Condition', add(newCondition), { class: 'btn btn-small', 'data-testid': parent ? 'filter-group-add-condition' : 'filter-add-condition' }),
        button('+ Event', add(newEvent), { class: 'btn btn-small', 'data-testid': parent ? 'filter-group-add-event' : 'filter-add-event' }),
        parent ? null : button('+ Group', add(() => { const g = newGroup('or'); g.items.push(newCondition()); return g; }), { class: 'btn btn-small', 'data-testid': 'filter-add-group' }),
      ),
    );
    return box;
  }

  function render() {
    rootEl.replaceChildren(groupEl(root, null));
  }

  rootEl.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target.matches('input')) {
      e.preventDefault();
      onApply?.();
    }
  });

  render();
  return {
    el: rootEl,
    /** The filter JSON, or null for "everyone"; throws {field, message} for a row left incomplete. */
    toFilter() {
      if (!root.items.length) return null;
      for (const el of rootEl.querySelectorAll('.form-error')) el.textContent = '';
      return nodeJson(root, 'filter', []);
    },
    setFilter(json) {
      const model = fromJson(json, attrKinds);
      root = model?.type === 'group' ? model : newGroup('and');
      if (model && model.type !== 'group') root.items.push(model);
      render();
    },
    clear() {
      root = newGroup('and');
      render();
    },
    refreshFields: render,
    get count() {
      return root.items.length;
    },
  };
}
