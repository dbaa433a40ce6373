// Settings: the workspace's options, teammates and teams, business hours, SMS,
// identity verification, API keys, webhooks with their delivery logs, and the
// widget's install snippet. Agents see what they may read; changing anything
// here is for admins, so their controls are disabled for agents.

import { api, enc } from './api.js';
import { button, clearErrors, dateTime, field, pageHead, pager, select, showError } from './ui.js';
import { h } from './views.js';

const TABS = [
  ['general', 'General'],
  ['team', 'Teammates & teams'],
  ['hours', 'Business hours'],
  ['channels', 'Email & SMS'],
  ['security', 'Security & API keys'],
  ['webhooks', 'Webhooks'],
  ['install', 'Install'],
];

const DAYS = [
  ['mon', 'Monday'],
  ['tue', 'Tuesday'],
  ['wed', 'Wednesday'],
  ['thu', 'Thursday'],
  ['fri', 'Friday'],
  ['sat', 'Saturday'],
  ['sun', 'Sunday'],
];

const ROLES = [
  ['agent', 'Agent'],
  ['admin', 'Admin'],
];

function panel(title, testid, ...children) {
  return h('section', { class: 'panel', 'data-testid': testid, 'aria-label': title }, h('h2', { class: 'panel-title' }, title), children);
}

function errorSlot(testid) {
  return h('p', { class: 'form-error panel-error', role: 'alert', 'data-testid': testid });
}

function input(type, value = '', attrs = {}) {
  const el = h('input', { type, ...attrs });
  el.value = value ?? '';
  return el;
}

// Disables every control of `root` for someone who may not change it.
function readOnly(root, why) {
  for (const el of root.querySelectorAll('input, select, textarea, button')) el.disabled = true;
  root.prepend(h('p', { class: 'muted' }, why));
}

// A form's submit: its errors cleared, then `act`; a refusal lands at its field or in `error`.
function onSubmit(form, error, act) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    try {
      await act();
    } catch (e) {
      showError(e, form, error);
    }
  });
}

const ADMINS_ONLY = 'Only admins can change these settings.';

/* ---------- the pages ---------- */

function general(ctx) {
  const w = ctx.workspace;
  const boxes = [
    ['email_fallback', 'Email chat messages a person missed', 'When no widget is open and the message was not seen'],
    ['require_identity', 'Require identity verification', 'Refuse widget sessions with a user_id but no valid user_hash'],
    ['company_conversations', 'Company conversations', "All of a company's members see and write in each other's conversations"],
  ].map(([key, label, hint]) => {
    const box = input('checkbox', '', { 'data-testid': `settings-${key.replace(/_/g, '-')}` });
    box.checked = !!w.settings[key];
    return { key, el: h('div', { class: 'field' }, h('label', { class: 'check' }, box, h('span', {}, label)), h('p', { class: 'field-hint' }, hint), h('p', { class: 'form-error', 'data-error-for': key })), box };
  });
  const error = errorSlot('settings-general-error');
  const saved = h('span', { class: 'muted', role: 'status', 'data-testid': 'settings-general-saved' });
  const name = input('text', w.name, { maxlength: '100', autocomplete: 'organization' });
  const form = h(
    'form',
    { novalidate: true },
    field('Workspace name', name, { testid: 'settings-workspace-name', errorKey: 'name', hint: `Shown to people as the sender of emails · app id ${w.app_id}` }),
    boxes.map((b) => b.el),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'settings-general-save' }, 'Save'), saved),
    error,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    saved.textContent = '';
    try {
      const body = Object.fromEntries(boxes.map((b) => [b.key, b.box.checked]));
      body.name = name.value;
      ctx.workspace = await api('PATCH', '/workspace', body);
      name.value = ctx.workspace.name;
      saved.textContent = 'Saved';
    } catch (e) {
      showError(e, form, error);
    }
  });
  const el = panel('Workspace', 'settings-general', form);
  if (!ctx.admin) readOnly(form, ADMINS_ONLY);
  return el;
}

function team(ctx) {
  const tbody = h('tbody', {});
  const roleCell = (t) => {
    if (!ctx.admin) return h('span', { class: 'kind-badge' }, t.role);
    const role = select(ROLES, { 'data-testid': 'teammate-row-role', 'aria-label': `${t.name}'s role` });
    role.value = t.role;
    const error = h('p', { class: 'form-error', role: 'alert' });
    role.addEventListener('change', async () => {
      error.textContent = '';
      try {
        const saved = await api('PATCH', `/teammates/${enc(t.id)}`, { role: role.value });
        role.closest('tr').dataset.role = saved.role;
      } catch (e) {
        role.value = t.role;
        error.textContent = e.message;
      }
    });
    return [role, error];
  };
  const paintMates = (items) =>
    tbody.replaceChildren(
      ...items.map((t) =>
        h('tr', { 'data-testid': 'teammate-row', 'data-teammate-id': t.id, 'data-role': t.role }, h('td', {}, t.name), h('td', {}, t.email), h('td', {}, roleCell(t))),
      ),
    );
  // Teammates are read once per refresh: their table and the teams' member
  // lists both come from it.
  let mates = [];
  const loadMates = () =>
    api('GET', '/teammates').then((r) => {
      mates = r.items;
      paintMates(mates);
    });

  const name = input('text');
  const email = input('email', '', { autocomplete: 'off' });
  const password = input('password', '', { autocomplete: 'new-password' });
  const role = select(ROLES);
  const error = errorSlot('teammate-error');
  const add = h(
    'form',
    { class: 'inline-form', novalidate: true, 'data-testid': 'teammate-form' },
    field('Name', name, { testid: 'teammate-name', errorKey: 'name' }),
    field('Email', email, { testid: 'teammate-email', errorKey: 'email' }),
    field('Password', password, { testid: 'teammate-password', errorKey: 'password', hint: 'They sign in with it and can be told to change it' }),
    field('Role', role, { testid: 'teammate-role', errorKey: 'role' }),
    h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'teammate-add' }, 'Add teammate'),
    error,
  );
  onSubmit(add, error, async () => {
    await api('POST', '/teammates', { name: name.value, email: email.value, password: password.value, role: role.value });
    for (const i of [name, email, password]) i.value = '';
    await loadMates();
    await loadTeams();
  });

  const teamList = h('ul', { class: 'plain-list', 'data-testid': 'team-list' });
  // An admin edits a team's members as a list of every teammate, ticked.
  const membersEditor = (t, mates) => {
    const boxes = mates.map((m) => {
      const box = input('checkbox', '', { 'data-testid': 'team-member', 'data-teammate-id': m.id });
      box.checked = t.members.some((x) => x.id === m.id);
      return { id: m.id, el: h('label', { class: 'check' }, box, h('span', {}, m.name)), box };
    });
    const error = h('p', { class: 'form-error', role: 'alert' });
    const save = button('Save members', async () => {
      error.textContent = '';
      try {
        await api('PATCH', `/teams/${enc(t.id)}`, { member_ids: boxes.filter((b) => b.box.checked).map((b) => b.id) });
        await loadTeams();
      } catch (e) {
        error.textContent = e.message;
      }
    }, { class: 'btn btn-small', 'data-testid': 'team-members-save' });
    const remove = button('Delete team', async () => {
      if (!confirm(`Delete the team ${t.name}? Its conversations keep their assignee.`)) return;
      try {
        await api('DELETE', `/teams/${enc(t.id)}`);
        await loadTeams();
      } catch (e) {
        error.textContent = e.message;
      }
    }, { class: 'btn btn-small btn-quiet', 'data-testid': 'team-delete' });
    return h('details', { class: 'team-members' }, h('summary', {}, 'Edit members'), h('div', { class: 'check-list' }, boxes.map((b) => b.el)), h('div', { class: 'toolbar' }, save, remove), error);
  };
  const loadTeams = () =>
    api('GET', '/teams').then((teams) =>
      teamList.replaceChildren(
        ...(teams.length
          ? teams.map((t) =>
              h(
                'li',
                { 'data-testid': 'team-row', 'data-team-id': t.id },
                h('strong', {}, t.name),
                h('span', { class: 'muted', 'data-testid': 'team-members' }, ` · ${t.members.map((m) => m.name).join(', ') || 'no members'}`),
                ctx.admin ? membersEditor(t, mates) : null,
              ),
            )
          : [h('li', { class: 'muted' }, 'No teams yet')]),
      ),
    );
  loadMates().finally(loadTeams);
  const teamName = input('text');
  const teamError = errorSlot('team-error');
  const teamForm = h(
    'form',
    { class: 'inline-form', novalidate: true },
    field('Team name', teamName, { testid: 'team-name', errorKey: 'name' }),
    h('button', { type: 'submit', class: 'btn', 'data-testid': 'team-add' }, 'Add team'),
    teamError,
  );
  onSubmit(teamForm, teamError, async () => {
    await api('POST', '/teams', { name: teamName.value, member_ids: [] });
    teamName.value = '';
    await loadTeams();
  });
  if (!ctx.admin) {
    readOnly(add, ADMINS_ONLY);
    readOnly(teamForm, ADMINS_ONLY);
  }
  return [
    panel(
      'Teammates',
      'settings-teammates',
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' }, h('thead', {}, h('tr', {}, ['Name', 'Email', 'Role'].map((t) => h('th', { scope: 'col' }, t)))), tbody)),
      add,
    ),
    panel('Teams', 'settings-teams', teamList, teamForm),
  ];
}

function hours(ctx) {
  const bh = ctx.workspace.settings.business_hours;
  const tz = input('text', bh?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC', { list: 'tz-list' });
  const tzList = h('datalist', { id: 'tz-list' }, (Intl.supportedValuesOf?.('timeZone') ?? []).map((z) => h('option', { value: z })));
  const always = input('checkbox', '', { 'data-testid': 'hours-always' });
  always.checked = !bh;
  const rows = DAYS.map(([key, label]) => {
    const span = bh?.weekly?.[key]?.[0];
    const open = input('checkbox', '', { 'data-testid': `hours-${key}-open`, 'aria-label': `Open on ${label}` });
    open.checked = bh ? !!span : key !== 'sat' && key !== 'sun';
    const from = input('time', span?.[0] ?? '09:00', { 'data-testid': `hours-${key}-from` });
    const to = input('time', span?.[1] === '24:00' ? '23:59' : (span?.[1] ?? '17:00'), { 'data-testid': `hours-${key}-to` });
    const el = h(
      'div',
      { class: 'hours-row', role: 'group', 'aria-label': label },
      h('label', { class: 'check hours-day' }, open, h('span', {}, label)),
      field('From', from, { className: 'field-inline' }),
      field('To', to, { className: 'field-inline' }),
      h('p', { class: 'form-error', 'data-error-for': `business_hours.weekly.${key}` }),
    );
    return { key, open, from, to, el };
  });
  const holidays = h('textarea', { rows: '3', 'data-testid': 'hours-holidays' });
  holidays.value = (bh?.holidays ?? []).join('\n');
  const error = errorSlot('hours-error');
  const saved = h('span', { class: 'muted', role: 'status', 'data-testid': 'hours-saved' });
  const openNow = h('p', { class: 'muted', 'data-testid': 'hours-open-now' }, ctx.workspace.settings.open_now ? 'Open now' : 'Closed now');
  const week = h('div', { class: 'hours-week' }, rows.map((r) => r.el));
  const paint = () => {
    week.hidden = always.checked;
  };
  always.addEventListener('change', paint);
  paint();
  const form = h(
    'form',
    { novalidate: true, 'data-testid': 'hours-form' },
    h('label', { class: 'check' }, always, h('span', {}, 'Always open')),
    field('Timezone', tz, { testid: 'hours-timezone', errorKey: 'business_hours.timezone' }),
    tzList,
    week,
    field('Holidays (one YYYY-MM-DD a line)', holidays, { errorKey: 'business_hours.holidays' }),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'hours-save' }, 'Save hours'), saved),
    openNow,
    error,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    saved.textContent = '';
    const weekly = {};
    for (const r of rows) if (r.open.checked) weekly[r.key] = [[r.from.value, r.to.value === '23:59' ? '24:00' : r.to.value]];
    const business_hours = always.checked
      ? null
      : { timezone: tz.value.trim(), weekly, holidays: holidays.value.split(/\s+/).filter(Boolean) };
    try {
      ctx.workspace = await api('PATCH', '/workspace', { business_hours });
      saved.textContent = 'Saved';
      openNow.textContent = ctx.workspace.settings.open_now ? 'Open now' : 'Closed now';
    } catch (e) {
      showError(e, form, error);
    }
  });
  if (!ctx.admin) readOnly(form, ADMINS_ONLY);
  return panel('Business hours', 'settings-hours', form);
}

// "Send test": one message by `channel` to the address typed (or, for email,
// the admin's own), and what the mail server or each SMS route answered.
function testForm(channel, label, type, placeholder) {
  const to = input(type, '', { placeholder, autocomplete: 'off' });
  const error = errorSlot(`test-${channel}-error`);
  const result = h('p', { role: 'status', 'data-testid': `test-${channel}-result` });
  const form = h(
    'form',
    { novalidate: true, class: 'test-form', 'data-testid': `test-${channel}-form` },
    field(label, to, { testid: `test-${channel}-to`, errorKey: 'to' }),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'btn', 'data-testid': `test-${channel}-send` }, 'Send test'), result),
    error,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    result.textContent = 'Sending…';
    result.className = 'muted';
    try {
      const a = await api('POST', '/test-message', { channel, to: to.value.trim() || undefined });
      const tried = a.attempts.map((t) => (t.ok ? `${t.via}: sent` : `${t.via}: ${t.error}`)).join('; ');
      result.textContent = a.ok ? `Sent to ${a.to} (${tried})` : `Not sent (${tried || 'no route'})`;
      result.className = a.ok ? 'ok' : 'form-error';
      result.dataset.ok = String(a.ok);
    } catch (e) {
      result.textContent = '';
      showError(e, form, error);
    }
  });
  return form;
}

function channels(ctx) {
  const email = panel(
    'Email',
    'settings-email',
    h('p', {}, 'Outgoing email is set up on the server (its SMTP options), not here; missed chat messages are emailed when "Email chat messages a person missed" is on under General.'),
    ctx.admin ? testForm('email', 'Send a test email to (empty: your own address)', 'email', ctx.me?.email ?? 'you@example.com') : null,
  );
  if (!ctx.admin) return [email, panel('SMS', 'settings-sms', h('p', { class: 'muted' }, 'Only admins can see and change SMS.'))];
  const from = input('text');
  const routes = h('textarea', { rows: '8', class: 'code-input', spellcheck: 'false', 'data-testid': 'sms-routes' });
  const inbound = h('code', { 'data-testid': 'sms-inbound-url' });
  const error = errorSlot('sms-error');
  const saved = h('span', { class: 'muted', role: 'status', 'data-testid': 'sms-saved' });
  const paint = (v) => {
    from.value = v.settings?.from ?? '';
    routes.value = JSON.stringify(v.settings?.routes ?? [{ name: 'log', kind: 'log' }], null, 2);
    inbound.textContent = v.inbound_url;
  };
  api('GET', '/sms').then(paint).catch((e) => (error.textContent = e.message));
  const form = h(
    'form',
    { novalidate: true, 'data-testid': 'sms-form' },
    field('Sender (number or name)', from, { testid: 'sms-from', errorKey: 'from' }),
    field('Routes (JSON, tried in order)', routes, {
      errorKey: 'routes',
      hint: '[{"name", "kind": "http" or "log", "url", "username", "password"}]; a stored password shows redacted and must be typed again to change a route',
    }),
    h('p', {}, h('span', { class: 'field-label' }, 'Inbound URL for the provider: '), inbound),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'sms-save' }, 'Save SMS'), saved),
    error,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    saved.textContent = '';
    let parsed;
    try {
      parsed = JSON.parse(routes.value);
    } catch {
      showError({ field: 'routes', message: 'Routes must be valid JSON' }, form, error);
      return;
    }
    try {
      paint(await api('PUT', '/sms', { from: from.value, routes: parsed }));
      saved.textContent = 'Saved';
    } catch (e) {
      showError(e, form, error);
    }
  });
  return [email, panel('SMS', 'settings-sms', form, testForm('sms', 'Send a test text to (a phone number)', 'tel', '+44 7700 900123'))];
}

function security(ctx) {
  if (!ctx.admin) return panel('Security & API keys', 'settings-security', h('p', { class: 'muted' }, 'Only admins see the identity secret and API keys.'));
  const secret = h('code', { class: 'secret', 'data-testid': 'identity-secret' }, '••••••••');
  let shown = false;
  const reveal = button('Show', () => {
    shown = !shown;
    secret.textContent = shown ? ctx.workspace.identity_secret : '••••••••';
    reveal.textContent = shown ? 'Hide' : 'Show';
  }, { class: 'btn btn-small', 'data-testid': 'identity-secret-show' });
  const identity = panel(
    'Identity verification',
    'settings-identity',
    h('p', {}, 'Your server signs each signed-in user: user_hash = hex HMAC-SHA256 of the user_id, keyed by this secret. Keep it on the server.'),
    h('p', {}, secret, ' ', reveal),
  );

  const list = h('ul', { class: 'plain-list', 'data-testid': 'api-key-list' });
  const load = () =>
    api('GET', '/api-keys').then((r) =>
      list.replaceChildren(
        ...(r.items.length
          ? r.items.map((k) => h('li', { 'data-testid': 'api-key-row', 'data-key-id': k.id }, h('strong', {}, k.name), h('span', { class: 'muted' }, ` · created ${dateTime(k.created_at)}`)))
          : [h('li', { class: 'muted' }, 'No API keys yet')]),
      ),
    );
  load();
  const name = input('text');
  const error = errorSlot('api-key-error');
  const once = h('div', { class: 'key-once', 'data-testid': 'api-key-once', hidden: true });
  const form = h('form', { class: 'inline-form', novalidate: true }, field('Key name', name, { testid: 'api-key-name', errorKey: 'name' }), h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'api-key-create' }, 'Create key'), error);
  onSubmit(form, error, async () => {
    const k = await api('POST', '/api-keys', { name: name.value });
    name.value = '';
    const code = h('code', { 'data-testid': 'api-key-value' }, k.key);
    once.replaceChildren(h('p', {}, h('strong', {}, `${k.name}: `), 'copy it now, it is not shown again.'), h('p', {}, code, ' ', copyButton(() => k.key, 'api-key-copy')));
    once.hidden = false;
    await load();
  });
  return [identity, panel('API keys', 'settings-api-keys', once, list, form)];
}

function copyButton(text, testid) {
  const b = button('Copy', async () => {
    try {
      await navigator.clipboard.writeText(text());
      b.textContent = 'Copied';
    } catch {
      b.textContent = 'Select and copy';
    }
    setTimeout(() => (b.textContent = 'Copy'), 2000);
  }, { class: 'btn btn-small', 'data-testid': testid });
  return b;
}

function webhooks(ctx) {
  if (!ctx.admin) return panel('Webhooks', 'settings-webhooks', h('p', { class: 'muted' }, 'Only admins see and change webhooks.'));
  const list = h('ul', { class: 'plain-list', 'data-testid': 'webhook-list' });
  const log = h('div', { class: 'webhook-log' });
  const load = () =>
    api('GET', '/webhooks').then((hooks) =>
      list.replaceChildren(
        ...(hooks.length
          ? hooks.map((w) =>
              h(
                'li',
                { 'data-testid': 'webhook-row', 'data-webhook-id': w.id },
                h('strong', {}, w.url),
                h('span', { class: 'muted' }, ` · ${w.events.join(', ')} · ${w.enabled ? 'on' : 'off'} `),
                button('Deliveries', () => showLog(w), { class: 'btn btn-small', 'data-testid': 'webhook-deliveries' }),
                button('Delete', async () => {
                  if (!confirm(`Delete the webhook to ${w.url}?`)) return;
                  await api('DELETE', `/webhooks/${enc(w.id)}`).catch((e) => (error.textContent = e.message));
                  load();
                }, { class: 'btn btn-quiet btn-small' }),
              ),
            )
          : [h('li', { class: 'muted' }, 'No webhooks yet')]),
      ),
    );

  function showLog(w) {
    const items = h('ul', { class: 'plain-list', 'data-testid': 'webhook-delivery-list' });
    const p = pager({
      list: items,
      testid: 'webhook-delivery',
      empty: 'No deliveries yet',
      fetchPage: (cursor) => api('GET', `/webhooks/${enc(w.id)}/deliveries${cursor ? `?cursor=${enc(cursor)}` : ''}`),
      renderItem: (d) =>
        h(
          'li',
          { 'data-testid': 'webhook-delivery', 'data-status': d.status },
          h('span', { class: 'run-badge', 'data-outcome': d.status === 'delivered' ? 'ok' : d.status === 'failed' ? 'error' : 'skipped' }, d.status),
          ` ${d.event} · ${d.attempts} attempt${d.attempts === 1 ? '' : 's'} · ${dateTime(d.created_at ?? d.updated_at)}`,
          d.last_error ? h('span', { class: 'form-error' }, ` ${d.last_error}`) : null,
        ),
    });
    p.reload();
    log.replaceChildren(h('h3', { class: 'panel-title' }, `Deliveries to ${w.url}`), items, p.el);
  }

  load();
  const url = input('url', '', { placeholder: 'https://example.com/hooks/parley' });
  const events = input('text', '*');
  const error = errorSlot('webhook-error');
  const form = h(
    'form',
    { class: 'inline-form', novalidate: true },
    field('URL', url, { testid: 'webhook-url', errorKey: 'url' }),
    field('Events', events, { testid: 'webhook-events', errorKey: 'events', hint: 'Comma-separated names, or * for all' }),
    h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'webhook-add' }, 'Add webhook'),
    error,
  );
  onSubmit(form, error, async () => {
    await api('POST', '/webhooks', { url: url.value, events: events.value.split(',').map((s) => s.trim()).filter(Boolean) });
    url.value = '';
    await load();
  });
  return panel('Webhooks', 'settings-webhooks', list, form, log);
}

function install(ctx) {
  const snippet = `<script src="${location.origin}/widget.js" data-app-id="${ctx.workspace.app_id}" async></script>`;
  return panel(
    'Install the widget',
    'settings-install',
    h('p', {}, 'Paste this before </body> on every page of your site:'),
    h('pre', { class: 'snippet', 'data-testid': 'install-snippet' }, snippet),
    copyButton(() => snippet, 'install-copy'),
    h('p', { class: 'muted' }, 'Try it on the ', h('a', { href: '/demo', target: '_blank', rel: 'noopener' }, 'demo page'), '.'),
  );
}

const PAGES = { general, team, hours, channels, security, webhooks, install };

export const page = {
  open(container, [tab = 'general']) {
    const key = PAGES[tab] ? tab : 'general';
    const nav = h(
      'nav',
      { class: 'tabs', 'aria-label': 'Settings pages' },
      TABS.map(([k, label]) => h('a', { class: 'tab', href: `#/settings/${k}`, 'aria-current': k === key ? 'page' : null, 'data-testid': `settings-tab-${k}` }, label)),
    );
    const body = h('div', { class: 'settings-body' }, h('p', { class: 'muted', role: 'status' }, 'Loading…'));
    container.append(pageHead('Settings'), nav, body);
    let alive = true;
    Promise.all([api('GET', '/workspace'), api('GET', '/auth/me')])
      .then(([workspace, me]) => {
        if (!alive) return;
        const ctx = { workspace, me: me.teammate, admin: me.teammate.role === 'admin' };
        body.replaceChildren(...[PAGES[key](ctx)].flat());
        body.dataset.ready = 'true';
      })
      .catch((e) => alive && body.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, e.message)));
    return () => {
      alive = false;
    };
  },
};
