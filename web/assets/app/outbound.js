// Outbound: the list of sends (ongoing and archived) and one send's page: its
// progress live from the agent socket's `outbound.progress` frames, check-in
// answers and the follow-up to those not OK, archiving, and the message log.

import { api, enc } from './api.js';
import { attachControl, attachmentsView } from './attach.js';
import { button, clearErrors, dateTime, field, onFrame, pageHead, pager, select, showError } from './ui.js';
import { h, personName, relativeTime } from './views.js';

const KIND_LABELS = { chat: 'Chat', one_way: 'One-way', checkin: 'Check-in', announcement: 'Announcement' };
const STATUSES = ['queued', 'sent', 'delivered', 'failed', 'skipped'];
const LOG_REFRESH_MS = 1000; // while sending, the log is reloaded at most this often

function headline(o) {
  return o.title || String(o.body ?? '').split('\n')[0].slice(0, 90) || 'Untitled';
}

// Everything with an outcome (not queued) out of every delivery.
function progressOf(o) {
  const c = o.counts ?? {};
  const total = STATUSES.reduce((n, s) => n + (c[s] ?? 0), 0);
  const done = total - (c.queued ?? 0);
  const finished = o.status === 'sent';
  return { total, done, fraction: total ? done / total : finished ? 1 : 0, finished };
}

function progressBar(o, testid) {
  const p = progressOf(o);
  const pct = Math.round(p.fraction * 100);
  return h(
    'div',
    {
      class: p.finished ? 'progress is-done' : 'progress',
      role: 'progressbar',
      'aria-label': 'Sending progress',
      'aria-valuemin': '0',
      'aria-valuemax': '100',
      'aria-valuenow': String(pct),
      'data-testid': testid,
      'data-status': o.status,
      'data-done': String(p.done),
      'data-total': String(p.total),
    },
    h('span', { class: 'progress-fill', style: `width: ${pct}%` }),
  );
}

function statusBadge(o) {
  return h('span', { class: 'status-badge', 'data-status': o.status, 'data-testid': 'outbound-status' }, o.status === 'sent' ? 'Done' : 'Sending');
}

/* ---------- the list ---------- */

export const list = {
  open(container) {
    let archived = /[?&]archived=true/.test(location.hash);
    const rows = new Map();
    const tbody = h('tbody', {});
    const tabs = h(
      'div',
      { class: 'segmented segmented-inline', role: 'group', 'aria-label': 'Which sends' },
      [['false', 'Ongoing'], ['true', 'Archived']].map(([v, label]) => {
        const b = button(label, () => {
          archived = v === 'true';
          history.replaceState(null, '', archived ? '#/outbound?archived=true' : '#/outbound');
          syncTabs();
          sends.reload();
        }, { 'data-archived': v, 'data-testid': `outbound-tab-${v === 'true' ? 'archived' : 'ongoing'}` });
        return b;
      }),
    );
    const syncTabs = () => {
      for (const b of tabs.children) b.setAttribute('aria-pressed', String(b.dataset.archived === String(archived)));
    };

    function row(o) {
      const p = progressOf(o);
      const tr = h(
        'tr',
        { 'data-testid': 'outbound-row', 'data-outbound-id': o.id },
        h('td', {}, h('span', { class: 'kind-badge' }, KIND_LABELS[o.kind] ?? o.kind)),
        h('td', { class: 'col-name' }, h('a', { href: `#/outbound/${enc(o.id)}`, 'data-testid': 'outbound-row-link' }, headline(o))),
        h('td', { class: 'col-num' }, String(o.recipients)),
        h('td', { class: 'col-progress' }, progressBar(o, 'outbound-row-progress'), h('span', { class: 'muted' }, `${p.done}/${p.total}`)),
        h('td', { class: 'col-opt' }, o.ok != null ? `${o.ok} OK` : ''),
        h('td', { class: 'col-opt col-time' }, h('time', { datetime: o.created_at, title: dateTime(o.created_at) }, relativeTime(o.created_at))),
      );
      rows.set(o.id, { tr, o });
      return tr;
    }

    const sends = pager({
      list: tbody,
      testid: 'outbound',
      empty: 'No sends here',
      fetchPage: (cursor) => api('GET', `/outbound?archived=${archived}&limit=25${cursor ? `&cursor=${enc(cursor)}` : ''}`),
      renderItem: row,
    });

    const stop = onFrame((f) => {
      if (f.type !== 'outbound.progress') return;
      const known = rows.get(f.outbound_id);
      if (known) known.tr.replaceWith(row({ ...known.o, status: f.status, counts: f.counts, ok: f.ok ?? known.o.ok }));
    });

    syncTabs();
    container.append(
      pageHead('Outbound', tabs, h('a', { class: 'btn btn-primary', href: '#/outbound/new', 'data-testid': 'outbound-new' }, 'New message')),
      h(
        'section',
        { class: 'panel' },
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'table', 'data-testid': 'outbound-table' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Kind', 'Message', 'Recipients', 'Progress'].map((t) => h('th', { scope: 'col' }, t)),
                h('th', { scope: 'col', class: 'col-opt' }, 'Answers'),
                h('th', { scope: 'col', class: 'col-opt' }, 'Created'),
              ),
            ),
            tbody,
          ),
        ),
        sends.el,
      ),
    );
    sends.reload();
    return stop;
  },
};

/* ---------- one send ---------- */

export const detail = {
  open(container, [id]) {
    let o = null;
    let leaving = false;
    let logTimer = null;
    let lastLogAt = 0;

    const title = h('h1', { class: 'page-title', 'data-testid': 'outbound-title' }, 'Loading…');
    const badges = h('span', { class: 'badges' });
    const archiveBtn = button('Archive', () => setArchived(!o.archived), { 'data-testid': 'outbound-archive' });
    const pageError = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'outbound-error' });
    const progressBox = h('div', { class: 'progress-box' });
    const summary = h('p', { class: 'progress-text', 'data-testid': 'outbound-summary', role: 'status' });
    const byChannel = h('div', { class: 'by-channel', 'data-testid': 'outbound-by-channel' });
    const message = h('div', { class: 'sent-message' });
    const checkin = h('section', { class: 'panel', 'aria-label': 'Answers', hidden: true });
    const okCount = h('strong', { class: 'big-number', 'data-testid': 'outbound-ok' });
    const notOkCount = h('strong', { class: 'big-number', 'data-testid': 'outbound-not-ok' });

    /* ---------- follow-up ---------- */

    const followBody = h('textarea', { rows: '3' });
    const followOnly = select([['not_ok', 'Those not OK'], ['not_delivered', 'Those not reached']]);
    const followPanel = h('section', { class: 'panel', 'aria-label': 'Follow up' });
    // Starts with the first send's files (for chats and announcements).
    const followFiles = attachControl({ testid: 'follow-attach' });
    let followFilesSet = false;
    const followBtn = button('Follow up with those not OK', () => followUp(), { class: 'btn btn-primary', 'data-testid': 'outbound-follow-up' });
    followOnly.addEventListener('change', () => {
      followBtn.textContent = followOnly.value === 'not_ok' ? 'Follow up with those not OK' : 'Follow up with those not reached';
    });

    async function followUp() {
      clearErrors(followPanel);
      if (!followFiles.el.hidden && followFiles.busy()) {
        followFiles.errorSlot.textContent = 'Wait until every file has uploaded, or remove it.';
        return;
      }
      followBtn.disabled = true;
      try {
        const c = await api('POST', `/outbound/${enc(id)}/follow-up`, {
          body: followBody.value,
          only: followOnly.value,
          attachments: followFiles.el.hidden ? [] : followFiles.ids(),
        });
        location.hash = `#/outbound/${enc(c.id)}`;
      } catch (e) {
        showError(e, followPanel, followPanel.querySelector('.panel-error'));
      } finally {
        followBtn.disabled = false;
      }
    }

    /* ---------- message log ---------- */

    const logStatus = select([['', 'Any status'], ...STATUSES.map((s) => [s, s])], { 'data-testid': 'outbound-log-status' });
    const logChannel = select([['', 'Any channel'], ['chat', 'chat'], ['email', 'email'], ['sms', 'sms']], { 'data-testid': 'outbound-log-channel' });
    const logBody = h('tbody', {});
    const logPanel = h('section', { class: 'panel', 'aria-label': 'Message log' });
    const log = pager({
      list: logBody,
      testid: 'outbound-log',
      empty: 'No deliveries match',
      fetchPage: (cursor) => {
        const q = new URLSearchParams({ limit: '50' });
        if (logStatus.value) q.set('status', logStatus.value);
        if (logChannel.value) q.set('channel', logChannel.value);
        if (cursor) q.set('cursor', cursor);
        return api('GET', `/outbound/${enc(id)}/deliveries?${q}`);
      },
      renderItem: (d) =>
        h(
          'tr',
          { 'data-testid': 'delivery-row', 'data-person-id': d.person_id, 'data-channel': d.channel, 'data-status': d.status },
          h('td', { class: 'col-name' }, h('a', { href: `#/people/${enc(d.person_id)}` }, personName(d.person ?? { id: d.person_id }))),
          h('td', {}, d.channel),
          h('td', {}, h('span', { class: 'delivery-status', 'data-status': d.status }, d.status)),
          h('td', { class: 'col-opt' }, d.route ?? '—'),
          h('td', { class: 'col-num' }, String(d.attempts)),
          h('td', { class: 'col-error' }, d.error ?? (d.reason ? d.reason.replace(/_/g, ' ') : '')),
          h('td', { class: 'col-opt col-time' }, h('time', { datetime: d.updated_at, title: dateTime(d.updated_at) }, relativeTime(d.updated_at))),
        ),
    });
    logStatus.addEventListener('change', () => log.reload());
    logChannel.addEventListener('change', () => log.reload());

    // Reloads the log while the counts move, at most once a second.
    function refreshLog() {
      if (logTimer) return;
      const wait = Math.max(0, LOG_REFRESH_MS - (Date.now() - lastLogAt));
      logTimer = setTimeout(() => {
        logTimer = null;
        lastLogAt = Date.now();
        if (!leaving) log.reload();
      }, wait);
    }

    /* ---------- rendering ---------- */

    function renderProgress() {
      const p = progressOf(o);
      progressBox.replaceChildren(progressBar(o, 'outbound-progress'));
      const c = o.counts ?? {};
      const parts = STATUSES.filter((s) => s !== 'queued' && c[s]).map((s) => `${c[s]} ${s}`);
      summary.textContent = `${p.finished ? 'Done' : 'Sending'}: ${p.done} of ${p.total} deliveries to ${o.recipients} ${o.recipients === 1 ? 'person' : 'people'}${parts.length ? ` · ${parts.join(' · ')}` : ''}`;
      byChannel.replaceChildren(
        ...Object.entries(o.by_channel ?? {}).map(([ch, counts]) =>
          h('span', { class: 'channel-count' }, h('strong', {}, ch), ' ', STATUSES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(', ')),
        ),
      );
      badges.replaceChildren(h('span', { class: 'kind-badge' }, KIND_LABELS[o.kind] ?? o.kind), statusBadge(o));
      if (o.archived) badges.append(h('span', { class: 'status-badge', 'data-status': 'closed' }, 'Archived'));
      if (o.ok != null) {
        checkin.hidden = false;
        okCount.textContent = String(o.ok);
        notOkCount.textContent = String(o.not_ok ?? Math.max(0, o.recipients - o.ok));
      }
    }

    function render() {
      title.textContent = headline(o);
      archiveBtn.textContent = o.archived ? 'Unarchive' : 'Archive';
      archiveBtn.dataset.testid = o.archived ? 'outbound-unarchive' : 'outbound-archive';
      message.replaceChildren(
        h('p', { class: 'preview-title' }, o.title ?? ''),
        h('div', { class: 'preview-body' }, o.body),
        attachmentsView(o.attachments) ?? '',
        h('p', { class: 'muted' }, `Created ${dateTime(o.created_at)} · channels: ${o.channels.join(', ')}`),
      );
      followFiles.el.hidden = !(o.kind === 'chat' || o.kind === 'announcement');
      if (!followFilesSet) {
        followFilesSet = true;
        followFiles.set(o.attachments);
      }
      if (o.follow_up_of) message.append(h('p', {}, h('a', { href: `#/outbound/${enc(o.follow_up_of)}`, 'data-testid': 'outbound-follow-up-of' }, 'Follow-up of an earlier send')));
      const asksOk = o.ok != null;
      setOptionsFor(asksOk);
      if (!followBody.value) {
        followBody.value = asksOk ? 'Just checking in again, {{person.first_name}}: are you OK?' : o.body;
      }
      renderProgress();
    }

    function setOptionsFor(asksOk) {
      for (const opt of followOnly.options) opt.hidden = opt.value === 'not_ok' && !asksOk;
      if (!asksOk && followOnly.value === 'not_ok') {
        followOnly.value = 'not_delivered';
        followOnly.dispatchEvent(new Event('change'));
      }
    }

    // Progress frames are not replayed: one sent before this page read the
    // send (the last one, say) is missed. While it is still going, read it
    // again now and then, so the page cannot stay on "Sending".
    let pollTimer = null;
    async function reload() {
      try {
        o = await api('GET', `/outbound/${enc(id)}`);
        if (!leaving) render();
        clearTimeout(pollTimer);
        if (!leaving && o.status !== 'sent') pollTimer = setTimeout(reload, 2000);
      } catch (e) {
        title.textContent = 'Send not found';
        pageError.textContent = e.status === 404 ? 'This send does not exist.' : e.message;
      }
    }

    async function setArchived(on) {
      pageError.textContent = '';
      archiveBtn.disabled = true;
      try {
        o = await api('POST', `/outbound/${enc(id)}/${on ? 'archive' : 'unarchive'}`);
        render();
      } catch (e) {
        pageError.textContent = e.message;
      } finally {
        archiveBtn.disabled = false;
      }
    }

    const stop = onFrame((f) => {
      if (f.type !== 'outbound.progress' || f.outbound_id !== id || !o) return;
      const wasFinished = o.status === 'sent';
      o = { ...o, status: f.status, recipients: f.recipients ?? o.recipients, counts: f.counts ?? o.counts, by_channel: f.by_channel ?? o.by_channel };
      if (f.ok != null) o = { ...o, ok: f.ok, not_ok: Math.max(0, o.recipients - f.ok) };
      renderProgress();
      refreshLog();
      // The last frame: read the stored counts once more (finished_at, not_ok).
      if (f.status === 'sent' && !wasFinished) reload();
    });

    followPanel.append(
      h('h2', { class: 'panel-title' }, 'Follow up'),
      field('Who', followOnly, { errorKey: 'only', testid: 'outbound-follow-only' }),
      field('Message', followBody, { errorKey: 'body', testid: 'outbound-follow-body', hint: 'A new send to exactly those people, on the same channels.' }),
      followFiles.el,
      h('p', { class: 'form-error panel-error', role: 'alert' }),
      h('div', { class: 'toolbar' }, followBtn),
    );
    checkin.append(
      h('h2', { class: 'panel-title' }, 'Answers'),
      h('div', { class: 'answers' }, h('div', {}, okCount, h('span', {}, ' answered “I’m OK”')), h('div', {}, notOkCount, h('span', {}, ' not yet'))),
      button('Refresh', () => reload(), { class: 'btn btn-small', 'data-testid': 'outbound-refresh' }),
    );
    logPanel.append(
      h(
        'div',
        { class: 'panel-head' },
        h('h2', { class: 'panel-title' }, 'Message log'),
        field('Status', logStatus, { className: 'field-inline' }),
        field('Channel', logChannel, { className: 'field-inline' }),
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table', 'data-testid': 'delivery-table' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Person'),
              h('th', { scope: 'col' }, 'Channel'),
              h('th', { scope: 'col' }, 'Status'),
              h('th', { scope: 'col', class: 'col-opt' }, 'Route'),
              h('th', { scope: 'col' }, 'Attempts'),
              h('th', { scope: 'col' }, 'Error'),
              h('th', { scope: 'col', class: 'col-opt' }, 'Updated'),
            ),
          ),
          logBody,
        ),
      ),
      log.el,
    );

    container.append(
      h(
        'header',
        { class: 'page-head' },
        h('a', { class: 'btn btn-quiet', href: '#/outbound', 'aria-label': 'Back to outbound' }, '‹ Outbound'),
        h('div', { class: 'page-who' }, title, badges),
        h('div', { class: 'page-actions' }, archiveBtn, h('a', { class: 'btn', href: '#/outbound/new' }, 'New message')),
      ),
      pageError,
      h(
        'div',
        { class: 'outbound-layout' },
        h(
          'div',
          { class: 'outbound-main' },
          h('section', { class: 'panel', 'aria-label': 'Progress' }, h('h2', { class: 'panel-title' }, 'Progress'), progressBox, summary, byChannel),
          logPanel,
        ),
        h('div', { class: 'outbound-side' }, checkin, h('section', { class: 'panel', 'aria-label': 'Message' }, h('h2', { class: 'panel-title' }, 'Message'), message), followPanel),
      ),
    );
    reload().then(() => !leaving && o && log.reload());
    return () => {
      leaving = true;
      clearTimeout(logTimer);
      clearTimeout(pollTimer);
      stop();
    };
  },
};
