// Files on messages: the "Attach files" control of the inbox and outbound
// composers (each file uploads as soon as it is picked, with its progress,
// a remove button and the server's error beside it) and how a sent
// message's files show in a thread (pictures as small previews, other files
// as links with name and size).

import { api, getToken } from './api.js';
import { h } from './views.js';

const PREVIEWED = /^image\/(png|jpeg|gif|webp)$/;

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** A message's attachments, or nothing when it has none. */
export function attachmentsView(list) {
  if (!Array.isArray(list) || list.length === 0) return null;
  return h(
    'ul',
    { class: 'msg-files', 'aria-label': 'Attachments' },
    list
      // Links are this server's own download paths, never anything else.
      .filter((f) => typeof f.url === 'string' && f.url.startsWith('/files/'))
      .map((f) =>
        h(
          'li',
          {},
          PREVIEWED.test(f.content_type)
            ? h(
                'a',
                { href: f.url, target: '_blank', rel: 'noopener', 'data-testid': 'message-attachment', title: f.name },
                h('img', { src: f.url, alt: f.name, loading: 'lazy', class: 'msg-file-preview' }),
              )
            : h(
                'a',
                { href: f.url, download: f.name, 'data-testid': 'message-attachment' },
                h('span', { class: 'msg-file-name' }, f.name),
                h('span', { class: 'msg-file-size' }, formatSize(f.size)),
              ),
        ),
      ),
  );
}

/**
 * Uploads one file to POST /api/v1/uploads, reporting progress (0..1).
 * XMLHttpRequest rather than fetch: only it reports upload progress.
 */
function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1/uploads?name=${encodeURIComponent(file.name)}`);
    const token = getToken();
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON (a proxy's page): the generic message below.
      }
      if (xhr.status >= 200 && xhr.status < 300 && data?.id) resolve(data);
      else reject(new Error(data?.error?.message || `Upload failed (${xhr.status}).`));
    };
    xhr.onerror = () => reject(new Error('Cannot reach the server. Check your connection and try again.'));
    xhr.send(file);
  });
}

/**
 * Takes back a file uploaded here and removed before anything used it, so
 * it does not linger on the server. One that a message, outbound or
 * template took up meanwhile is refused (409) and rightly stays.
 */
function takeBack(upload) {
  api('DELETE', `/uploads/${encodeURIComponent(upload.id)}`).catch(() => {});
}

/**
 * The "Attach files" control. `ids()` are the uploaded files' ids in order,
 * `busy()` says whether one is still uploading, `set(files)` shows files
 * that are already stored (a template's), `clear()` empties it, and
 * `errorSlot` shows the server's errors about `attachments` (data-error-for).
 */
export function attachControl({ testid = 'attach' } = {}) {
  // {file, state: 'uploading'|'done'|'failed', upload, error, el, mine, removed}:
  // `mine` when uploaded by this control (a template's files are not).
  const items = [];
  const input = h('input', { type: 'file', multiple: true, id: `${testid}-input`, 'data-testid': `${testid}-input`, class: 'attach-input visually-hidden' });
  const label = h('label', { for: input.id, class: 'btn attach-label' }, 'Attach files');
  const list = h('ul', { class: 'attach-list', 'data-testid': `${testid}-list`, 'aria-live': 'polite' });
  const errorSlot = h('p', { class: 'form-error', role: 'alert', 'data-error-for': 'attachments', 'data-testid': `${testid}-error` });
  // The input first: its focus ring is drawn on the label that follows it.
  const el = h('div', { class: 'attach' }, input, label, list, errorSlot);

  function render(item) {
    const state =
      item.state === 'uploading'
        ? `Uploading… ${Math.round((item.progress ?? 0) * 100)}%`
        : item.state === 'done'
          ? formatSize(item.upload.size)
          : `Not uploaded: ${item.error}`;
    const remove = h('button', { type: 'button', class: 'btn-link', 'aria-label': `Remove ${item.file.name}` }, 'Remove');
    remove.addEventListener('click', () => {
      items.splice(items.indexOf(item), 1);
      item.el.remove();
      item.removed = true;
      if (item.mine && item.state === 'done') takeBack(item.upload);
    });
    const row = h(
      'li',
      { class: `attach-item is-${item.state}`, 'data-testid': `${testid}-item`, 'data-state': item.state },
      h('span', { class: 'attach-name' }, item.file.name),
      h('span', { class: 'attach-state' }, state),
      remove,
    );
    if (item.el) item.el.replaceWith(row);
    item.el = row;
    return row;
  }

  input.addEventListener('change', () => {
    errorSlot.textContent = '';
    for (const file of input.files) {
      const item = { file, state: 'uploading', progress: 0, mine: true };
      items.push(item);
      list.append(render(item));
      upload(file, (p) => {
        item.progress = p;
        if (item.el?.isConnected) render(item);
      }).then(
        (u) => {
          Object.assign(item, { state: 'done', upload: u });
          // Removed while it was still on its way up.
          if (item.removed) takeBack(u);
        },
        (e) => Object.assign(item, { state: 'failed', error: e.message }),
      ).then(() => item.el?.isConnected && render(item));
    }
    // The same file may be picked again after a remove.
    input.value = '';
  });

  return {
    el,
    errorSlot,
    ids: () => items.filter((i) => i.state === 'done').map((i) => i.upload.id),
    busy: () => items.some((i) => i.state === 'uploading'),
    count: () => items.filter((i) => i.state === 'done').length,
    clear() {
      items.length = 0;
      list.textContent = '';
      errorSlot.textContent = '';
    },
    /** Shows stored files (`{id, name, size, …}`) in place of the current ones. */
    set(stored) {
      // Files picked here that the new set drops would otherwise linger.
      for (const i of items) if (i.mine && i.state === 'done' && !(stored ?? []).some((u) => u.id === i.upload.id)) takeBack(i.upload);
      this.clear();
      for (const upload of stored ?? []) {
        const item = { file: { name: upload.name }, state: 'done', upload, mine: false };
        items.push(item);
        list.append(render(item));
      }
    },
  };
}
