/* Parley visitor chat widget, served at GET /widget.js.
 * Embed: <script src="BASE/widget.js" data-app-id="APP_ID" async></script>
 * Plain JS with no dependencies. The UI lives in an open shadow root so the host
 * page's CSS cannot reach it; message bodies are always rendered as text. */
(function () {
  'use strict';
  var W = window, D = document;
  var me = D.currentScript || D.querySelector('script[src*="widget.js"][data-app-id]');
  if (!me || (W.Parley && W.Parley._state)) return; // no tag found, or loaded twice
  var APP = me.getAttribute('data-app-id');
  var BASE = new URL(me.src, location.href).origin; // the server, even when embedded elsewhere
  var TOKEN_KEY = 'parley_token_' + APP, SEQ_KEY = 'parley_seq_' + APP;
  // Opened from a link in an email or text (/c/TOKEN): that one chat, full page.
  var LINK = me.getAttribute('data-link'), linkConv = null;

  var CSS = [
    // Inner !important beats the host's !important on the host element, so
    // nothing inherited from the page (fonts, colours, line-height) gets in.
    ':host{all:initial!important;display:block!important}',
    '*{box-sizing:border-box;margin:0;padding:0;font:inherit;color:inherit;letter-spacing:normal;text-transform:none;text-align:left}',
    '.r{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2937}',
    '[hidden]{display:none!important}',
    'button{cursor:pointer;border:0;background:none}',
    'button:focus-visible,textarea:focus-visible{outline:2px solid #4f46e5;outline-offset:2px}',
    '.l{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;background:#4f46e5;color:#fff;display:flex;align-items:center;justify-content:center;box-shadow:0 4px 14px rgba(0,0,0,.25)}',
    '.l svg{width:26px;height:26px;fill:currentColor}',
    '.bd{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;background:#dc2626;color:#fff;font-size:12px;font-weight:700;line-height:20px;text-align:center}',
    '.p{position:fixed;right:20px;bottom:88px;z-index:2147483001;width:370px;height:560px;max-height:calc(100vh - 108px);display:flex;flex-direction:column;overflow:hidden;background:#fff;border-radius:14px;box-shadow:0 8px 32px rgba(0,0,0,.25)}',
    '.h{display:flex;align-items:center;justify-content:space-between;padding:12px 12px 12px 16px;background:#4f46e5;color:#fff;font-size:16px;font-weight:600}',
    '.x{width:32px;height:32px;border-radius:6px;color:#fff;font-size:24px;line-height:32px;text-align:center}',
    '.lw{position:relative;flex:1;min-height:0}',
    '.ls{position:absolute;inset:0;overflow-y:auto;padding:8px 12px 12px;display:flex;flex-direction:column;gap:3px;background:#f9fafb}',
    '.m{max-width:82%;align-self:flex-start}.m.me{align-self:flex-end}.m.f{margin-top:8px}',
    '.who{display:none;align-items:center;gap:6px;margin-bottom:2px;font-size:12px;color:#6b7280}.f .who{display:flex}',
    '.who img{width:18px;height:18px;border-radius:50%}',
    '.b{padding:8px 12px;border-radius:14px;background:#e5e7eb;color:#111827;white-space:pre-wrap;overflow-wrap:anywhere}',
    '.me .b{background:#4f46e5;color:#fff}.k-announcement .b{background:#fef3c7}',
    '.pend{opacity:.55}.fail .b{background:#9ca3af}',
    '.st{margin-top:2px;font-size:12px;color:#b91c1c;text-align:right}',
    '.st button{margin-left:6px;color:#4f46e5;font-size:12px;text-decoration:underline}',
    '.bs{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}',
    '.fs{display:flex;flex-direction:column;gap:4px;margin-top:4px}.fl{display:flex;gap:8px;padding:6px 10px;border:1px solid #d1d5db;border-radius:10px;background:#fff;color:#4f46e5;text-decoration:none;overflow-wrap:anywhere}.fl span:first-child{text-decoration:underline}',
    '.fl img{max-width:220px;max-height:160px;border-radius:6px}.fl:has(img){padding:2px;border:0;background:none}.sz{color:#6b7280;white-space:nowrap}',
    '.bs button{padding:5px 12px;border:1px solid #4f46e5;border-radius:14px;background:#fff;color:#4f46e5}',
    '.bs button:disabled{opacity:.5;cursor:default}.bs button.on{background:#4f46e5;color:#fff;opacity:1}',
    '.pl{position:absolute;left:50%;bottom:8px;transform:translateX(-50%);padding:4px 12px;border-radius:14px;background:#111827;color:#fff;font-size:12px}',
    '.i{padding:2px 16px;font-size:12px;color:#6b7280;background:#f9fafb}',
    '.c{display:flex;align-items:flex-end;gap:8px;padding:10px;border-top:1px solid #e5e7eb;background:#fff}',
    'textarea{flex:1;height:38px;max-height:120px;resize:none;padding:8px 10px;line-height:20px;border:1px solid #d1d5db;border-radius:10px;background:#fff;color:#111827}',
    '.s{height:38px;padding:0 14px;border-radius:10px;background:#4f46e5;color:#fff;font-weight:600}',
    ':disabled{cursor:default}.c :disabled{opacity:.5}',
    '.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}',
    '.full .p{inset:0;width:auto;height:auto;max-height:none;border-radius:0}.full .l,.full .x{display:none}',
    '.full .ls{padding:12px max(12px,calc(50% - 360px))}.full .c{padding:10px max(10px,calc(50% - 360px))}',
    '@media (max-width:479px){.p{inset:0;width:auto;height:auto;max-height:none;border-radius:0}textarea{font-size:16px}}'
  ].join('');

  // Static markup only; nothing from the server or the visitor goes through innerHTML.
  var HTML = '<div class="r">' +
    '<button id="l" class="l" type="button" data-testid="parley-launcher" aria-label="Open chat" aria-controls="p" aria-expanded="false">' +
    '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2h-9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>' +
    '<span id="bd" class="bd" data-testid="parley-badge" aria-hidden="true" hidden></span></button>' +
    '<div id="p" class="p" role="dialog" aria-labelledby="t" data-testid="parley-panel" hidden>' +
    '<div class="h"><span id="t">Chat with us</span><button id="x" class="x" type="button" aria-label="Close chat">&times;</button></div>' +
    '<div class="lw"><div id="ls" class="ls" role="log" aria-live="polite"></div>' +
    '<button id="pl" class="pl" type="button" hidden>New messages &darr;</button></div>' +
    '<div id="ty" class="i" data-testid="parley-typing" aria-live="polite" hidden></div>' +
    '<div id="st" class="i" role="status" hidden>Reconnecting&hellip;</div>' +
    '<div id="n" class="i" role="status" hidden>This conversation has been closed</div>' +
    '<div class="c"><label for="ta" class="sr">Message</label>' +
    '<textarea id="ta" rows="1" data-testid="parley-input" placeholder="Write a message&hellip;"></textarea>' +
    '<button id="s" class="s" type="button" data-testid="parley-send" aria-label="Send message">Send</button></div>' +
    '</div></div>';

  var ident = {}, token = null, pid = null, seq = null, conv = null, ws = null, live = false;
  var gen = 0, tries = 0, booted = false, open = false, unread = 0, archived = false;
  var retryT, pingT, typeT, typeSent = 0, lastSeen = null, lastUrl = null, ui = null;
  var recs = new Map();    // 'i'+message id or 'e'+echo id (while pending) -> {m, el, err, chosen}
  var outbox = [];         // own messages not acked yet, in send order
  var frames = [];         // track / reply frames waiting for an open socket
  var typers = new Map();  // author -> {n: name, t: timer}

  function store(kind, k, v) { // storage throws in some privacy modes and sandboxed frames
    try {
      var s = W[kind];
      if (v === undefined) return s.getItem(k);
      if (v === null) s.removeItem(k); else s.setItem(k, v);
    } catch (e) { return null; }
  }

  function add(parent, tag, cls, text) {
    var e = parent.appendChild(D.createElement(tag));
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function uuid() {
    try { return crypto.randomUUID(); } // only in secure contexts
    catch (e) { return 'e' + Date.now().toString(36) + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2); }
  }

  async function http(method, path, body, auth) {
    var h = {};
    if (body) h['Content-Type'] = 'application/json';
    if (auth) h.Authorization = 'Bearer ' + auth;
    var r = await fetch(BASE + path, {method: method, headers: h, body: body && JSON.stringify(body), credentials: 'omit'});
    var j = await r.json().catch(function () { return {}; });
    if (!r.ok) throw Object.assign(new Error((j.error && j.error.message) || 'HTTP ' + r.status), {status: r.status});
    return j;
  }

  // ---- session -------------------------------------------------------------

  // g is the generation this run belongs to: a later boot or shutdown makes it stale.
  async function start(g) {
    if (LINK) return startLink(g);
    var old = store('localStorage', TOKEN_KEY), i = ident, s, c;
    try {
      s = await http('POST', '/widget/v1/session', {app_id: APP, token: old || undefined, user_id: i.user_id,
        user_hash: i.user_hash, email: i.email, name: i.name, attributes: i.attributes});
    } catch (e) {
      if (g !== gen) return;
      var client = e.status >= 400 && e.status < 500 && e.status !== 429;
      if (client && old && e.status !== 403) { // the stored token is stale: start over as a new visitor
        store('localStorage', TOKEN_KEY, null);
        return start(g);
      }
      if (client) { console.warn('Parley: ' + e.message); return unmount(); } // e.g. 403 identity verification
      return retry(function () { start(g); });
    }
    if (g !== gen) return;
    token = s.token;
    store('localStorage', TOKEN_KEY, token);
    if (s.person_id !== pid) reset(s.person_id);
    build();
    try { c = await http('GET', '/widget/v1/conversation', null, token); } catch (e) {
      if (g !== gen) return;
      if (e.status === 401) { store('localStorage', TOKEN_KEY, null); return retry(function () { start(g); }); }
      // Anything else: chat without history; the socket still delivers new messages.
    }
    if (g !== gen) return;
    if (c) load(c);
    connect(g);
  }

  // A link's session is its own: nothing is kept in the browser, so the
  // link works the same on any device it is opened on.
  async function startLink(g) {
    var s, c;
    try { s = await http('POST', '/widget/v1/link', {token: LINK}); } catch (e) {
      if (g !== gen) return;
      if (e.status >= 400 && e.status < 500) { build(); return setArchived(true, e.message); }
      return retry(function () { start(g); });
    }
    if (g !== gen) return;
    token = s.token; linkConv = s.conversation_id;
    if (s.person_id !== pid) reset(s.person_id);
    build();
    try { c = await http('GET', history(), null, token); } catch (e) { if (g !== gen) return; }
    if (g !== gen) return;
    if (c) load(c);
    connect(g);
  }

  function history() {
    return '/widget/v1/conversation' + (linkConv ? '?conversation_id=' + encodeURIComponent(linkConv) : '');
  }

  function load(c) {
    if (c.conversation) { conv = c.conversation; setArchived(!!conv.archived); }
    // A seq kept from before a reload may be older than the snapshot; resuming from it
    // replays frames we then de-duplicate, which is safer than missing one.
    if (typeof c.seq == 'number' && (seq == null || c.seq < seq)) seq = c.seq;
    saveSeq();
    (c.messages || []).forEach(upsert);
    unread = open ? 0 : c.unread || 0;
    badge();
    toBottom();
  }

  // Forget everything tied to the previous person.
  function reset(p) {
    var s = store('sessionStorage', SEQ_KEY) || '', k = s.lastIndexOf(' ');
    pid = p;
    seq = p != null && k > 0 && s.slice(0, k) === String(p) ? +s.slice(k + 1) : null;
    recs.clear(); outbox = []; conv = null; unread = 0; lastSeen = null;
    typers.forEach(function (x) { clearTimeout(x.t); }); typers.clear();
    if (ui) { ui.ls.textContent = ''; badge(); setArchived(false); showTyping(); }
  }

  function saveSeq() { if (seq != null) store('sessionStorage', SEQ_KEY, pid + ' ' + seq); }

  function retry(fn) {
    var g = gen;
    clearTimeout(retryT);
    var ms = Math.min(30000, 500 * Math.pow(2, tries++) * (0.75 + Math.random() / 2));
    retryT = setTimeout(function () { if (g === gen) fn(); }, ms);
  }

  // ---- socket --------------------------------------------------------------

  function connect(g) {
    var s = new WebSocket(BASE.replace(/^http/, 'ws') + '/widget/v1/ws?token=' + encodeURIComponent(token));
    ws = s;
    s.onmessage = function (e) {
      if (ws !== s) return;
      var f;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      frame(f);
    };
    s.onclose = function (e) {
      if (ws !== s) return; // closed on purpose (boot, shutdown)
      ws = null; live = false;
      clearInterval(pingT);
      if (e.code === 4001 || e.code === 4003) { // token refused: new session without it
        token = null;
        if (!LINK) store('localStorage', TOKEN_KEY, null);
        retry(function () { start(g); });
      } else retry(function () { connect(g); });
      if (ui) ui.st.hidden = false;
    };
  }

  // Close the socket without triggering a reconnect.
  function stop() {
    clearTimeout(retryT); clearInterval(pingT);
    var s = ws;
    ws = null; live = false; tries = 0;
    if (s) s.close(1000);
  }

  function send(f, queue) {
    if (live && ws.readyState === 1) { ws.send(JSON.stringify(f)); return true; }
    if (queue) frames.push(f);
    return false;
  }

  function push(r) { send({type: 'message.send', echo_id: r.m.echo_id, body: r.m.body, conversation_id: linkConv || undefined}); }

  function pageView() {
    if (location.href !== lastUrl && send({type: 'page.view', url: location.href, title: D.title})) lastUrl = location.href;
  }

  function hello(f) {
    tries = 0; live = true;
    if (f.person_id != null) pid = f.person_id;
    // Resume from where we were; a hello behind us means the stream restarted.
    if (seq != null && !(f.seq < seq)) send({type: 'resume', after: seq});
    else { seq = f.seq; saveSeq(); }
    lastUrl = null;
    pageView();
    outbox.forEach(push); // same echo_id: the server stores each message once
    frames.splice(0).forEach(function (x) { send(x, true); });
    clearInterval(pingT);
    pingT = setInterval(function () { send({type: 'ping'}); }, 25000);
    ui.st.hidden = true;
    markSeen();
  }

  function frame(f) {
    if (f.type === 'hello') return hello(f);
    if (f.seq != null) {
      if (seq != null && f.seq <= seq) return; // already have it (replay overlap)
      seq = f.seq;
      saveSeq();
    }
    switch (f.type) {
      case 'ack': return f.message && arrive(Object.assign({}, f.message, {echo_id: f.echo_id}));
      case 'message.created': return arrive(f.message, true);
      case 'message.updated': return arrive(f.message);
      case 'message.deleted': return drop(f.message_id);
      case 'conversation.updated':
        if (f.conversation && (!conv || conv.id === f.conversation.id)) {
          conv = f.conversation;
          setArchived(!!conv.archived);
        }
        return;
      case 'typing': return typing(f);
      case 'error': return fail(f);
    }
  }

  // Written by this visitor. In a shared chat other people write too: they
  // show with their names, like teammates.
  function mine(a) { return a.type === 'person' && (a.id == null || pid == null || a.id === pid); }

  function arrive(m, created) {
    if (!m) return;
    var a = m.author || {}, own = mine(a);
    if (m.conversation_id != null && (!conv || conv.id !== m.conversation_id)) {
      conv = {id: m.conversation_id}; // a new conversation (first message, or a teammate wrote again)
      setArchived(false);
    }
    if (!own) typing({author: a, on: false}); // they stopped typing: here is the message
    if (upsert(m) && created && !own) {
      if (open) markSeen(); else { unread++; badge(); }
    }
  }

  // Insert or update a message; true when it is new to us.
  function upsert(m) {
    var k = 'i' + m.id, ek = 'e' + m.echo_id, r = recs.get(k), p = m.echo_id != null && recs.get(ek);
    if (p) { // our pending copy: the stored message replaces it
      recs.delete(ek);
      outbox = outbox.filter(function (x) { return x !== p; });
      if (r) p.el.remove(); else r = p;
    }
    var fresh = !r;
    r = r || {el: D.createElement('div')};
    r.m = m; r.err = null;
    recs.set(k, r);
    render(r);
    // "I'm OK" (from this tab, another one or the history) answers the check-ins before it.
    if (m.kind === 'checkin' && m.author && m.author.type === 'person') {
      recs.forEach(function (x) { if (x.m.kind === 'checkin' && x.m.author && x.m.author.type !== 'person') render(x); });
    }
    return fresh;
  }

  function drop(id) {
    var r = recs.get('i' + id);
    if (r) { r.el.remove(); recs.delete('i' + id); runs(); }
  }

  function fail(f) {
    // Away longer than the server keeps frames: reload the history instead.
    if (f.code === 'resync_required') {
      return http('GET', history(), null, token).then(function (c) { seq = null; load(c); }, function () {});
    }
    if (f.code === 'conversation_archived') setArchived(true);
    var r = f.echo_id != null && recs.get('e' + f.echo_id);
    if (r) {
      outbox = outbox.filter(function (x) { return x !== r; }); // no automatic resend: it would fail again
      r.err = f.message || f.code;
      render(r);
    } else if (f.code !== 'conversation_archived') console.warn('Parley: ' + (f.message || f.code));
  }

  function typing(f) {
    var a = f.author || {}, k = a.type + ':' + a.id, old = typers.get(k);
    if (mine(a)) return;
    if (old) clearTimeout(old.t);
    if (f.on) { // expire on our own in case the "off" frame never comes
      typers.set(k, {n: a.name || 'Someone', t: setTimeout(function () { typers.delete(k); showTyping(); }, 8000)});
    } else if (!old) return;
    else typers.delete(k);
    showTyping();
  }

  function showTyping() {
    var n = Array.from(typers.values(), function (x) { return x.n; });
    ui.ty.hidden = !n.length;
    ui.ty.textContent = n.length ? n.join(', ') + (n.length > 1 ? ' are' : ' is') + ' typing\u2026' : '';
  }

  // The newest message from the other side, once the visitor can actually see it.
  function markSeen() {
    if (!ui || !open || D.hidden || !live) return;
    for (var n = ui.ls.lastChild; n; n = n.previousSibling) {
      var m = n._r.m;
      if (m.id != null && m.author && !mine(m.author)) {
        if (lastSeen !== m.id && send({type: 'seen', conversation_id: m.conversation_id, message_id: m.id})) lastSeen = m.id;
        return;
      }
    }
  }

  // ---- UI ------------------------------------------------------------------

  function build() {
    if (ui) return;
    var host = D.createElement('div');
    host.id = 'parley-widget';
    var root = host.attachShadow({mode: 'open'});
    root.innerHTML = HTML;
    try { // a constructed sheet is not blocked by a strict style-src CSP
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) { add(root, 'style', '', CSS); }
    ui = {host: host};
    if (LINK) {
      root.firstChild.classList.add('full');
      root.getElementById('t').textContent = me.getAttribute('data-title') || 'Chat';
      open = true;
    }
    ['l', 'bd', 'p', 'x', 'ls', 'pl', 'ty', 'st', 'n', 'ta', 's'].forEach(function (id) { ui[id] = root.getElementById(id); });
    (D.body || D.documentElement).appendChild(host);

    // Keys typed in the widget must not trigger the host page's shortcuts.
    ['keydown', 'keyup', 'keypress'].forEach(function (t) { root.firstChild.addEventListener(t, function (e) { e.stopPropagation(); }); });
    ui.l.onclick = function () { setOpen(!open, true); };
    ui.x.onclick = function () { setOpen(false); ui.l.focus(); };
    ui.p.addEventListener('keydown', function (e) { if (e.key === 'Escape') { setOpen(false); ui.l.focus(); } });
    ui.pl.onclick = toBottom;
    ui.ls.onscroll = function () { if (nearBottom()) ui.pl.hidden = true; };
    ui.s.onclick = submit;
    ui.ta.onkeydown = function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    };
    ui.ta.oninput = function () {
      grow();
      if (!conv || !ui.ta.value.trim()) return; // typing needs a conversation to belong to
      var now = Date.now();
      if (now - typeSent > 3000) { typeSent = now; send({type: 'typing', conversation_id: conv.id, on: true}); }
      clearTimeout(typeT);
      typeT = setTimeout(typingOff, 3000);
    };
    setOpen(open);
    setArchived(archived);
  }

  // Show nothing and forget the person (shutdown, or a refused session).
  function unmount() {
    reset(null);
    frames = [];
    if (ui) ui.host.remove();
    ui = null;
  }

  function setOpen(v, focus) {
    open = v;
    if (!ui) return;
    ui.p.hidden = !v;
    ui.l.setAttribute('aria-expanded', v);
    if (!v) return badge();
    unread = 0;
    badge();
    toBottom();
    markSeen();
    if (focus) ui.ta.focus();
  }

  function badge() {
    if (!ui) return;
    ui.bd.hidden = !unread;
    ui.bd.textContent = unread > 99 ? '99+' : unread;
    ui.l.setAttribute('aria-label', open ? 'Close chat' : unread ? 'Open chat, ' + unread + ' unread' : 'Open chat');
  }

  function setArchived(v, why) {
    archived = v;
    if (!ui) return;
    ui.n.hidden = !v;
    ui.n.textContent = why || 'This conversation has been closed';
    ui.ta.disabled = ui.s.disabled = v;
  }

  function nearBottom() { var L = ui.ls; return L.scrollHeight - L.scrollTop - L.clientHeight < 60; }

  function toBottom() {
    if (!ui) return;
    ui.ls.scrollTop = ui.ls.scrollHeight;
    ui.pl.hidden = true;
  }

  function grow() {
    var t = ui.ta;
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight + 2, 120) + 'px';
  }

  function typingOff() {
    clearTimeout(typeT);
    if (typeSent && conv) send({type: 'typing', conversation_id: conv.id, on: false});
    typeSent = 0;
  }

  function submit() {
    var body = ui.ta.value.trim();
    if (!body || archived) return;
    ui.ta.value = '';
    grow();
    typingOff();
    var r = {el: D.createElement('div'), m: {echo_id: uuid(), body: body, kind: 'chat', author: {type: 'person', id: pid}}};
    recs.set('e' + r.m.echo_id, r);
    outbox.push(r);
    render(r);
    toBottom();
    push(r); // if the socket is down it goes out on the next hello
  }

  function render(r) {
    var m = r.m, a = m.author || {}, own = mine(a), el = r.el, L = ui.ls;
    var stick = nearBottom(), fresh = !el.parentNode, pending = m.id == null;
    el.className = 'm' + (own ? ' me' : '') + (pending ? (r.err ? ' fail' : ' pend') : '') + ' k-' + (m.kind || 'chat');
    el.setAttribute('data-testid', 'parley-message');
    el.setAttribute('data-author-type', a.type);
    if (pending) el.setAttribute('data-echo-id', m.echo_id);
    else { el.setAttribute('data-message-id', m.id); el.removeAttribute('data-echo-id'); }
    el.title = m.created_at ? new Date(m.created_at).toLocaleString() : '';
    el.textContent = '';
    if (!own) {
      var who = add(el, 'div', 'who');
      if (/^https?:/i.test(a.avatar_url || '')) { var img = add(who, 'img'); img.src = a.avatar_url; img.alt = ''; }
      add(who, 'span', '', a.name || '');
    }
    if (m.body || !(m.attachments || []).length) add(el, 'div', 'b', m.body); // textContent: bodies are text, never markup
    files(el, m.attachments);
    // A check-in without its own buttons gets the "I'm OK" answer.
    var bs = m.buttons && m.buttons.length ? m.buttons : !own && m.kind === 'checkin' && !pending ? [{label: "I'm OK", ok: 1}] : null;
    if (bs && bs[0].ok && r.chosen == null && answered(m)) r.chosen = bs[0].label;
    if (bs) {
      var box = add(el, 'div', 'bs');
      bs.forEach(function (b) {
        var v = b.value != null ? b.value : b.label, btn = add(box, 'button', r.chosen === v ? 'on' : '', b.label);
        btn.type = 'button';
        btn.disabled = r.chosen != null || pending;
        btn.onclick = function () {
          r.chosen = v;
          send(b.ok ? {type: 'checkin.ok', message_id: m.id} : {type: 'reply.choose', message_id: m.id, choice: v}, true);
          render(r);
        };
      });
    }
    if (r.err) {
      var st = add(el, 'div', 'st', 'Not sent: ' + r.err);
      var again = add(st, 'button', '', 'Retry');
      again.type = 'button';
      again.onclick = function () { r.err = null; outbox.push(r); render(r); push(r); };
    }
    el._r = r;
    el._a = a.type + ':' + a.id;
    el._t = pending ? Infinity : Date.parse(m.created_at) || Infinity;
    // Keep the list in time order (replays can bring older messages); pending ones stay last.
    el.remove();
    var ref = null;
    for (var n = L.lastChild; n && n._t > el._t; n = n.previousSibling) ref = n;
    L.insertBefore(el, ref);
    runs();
    if (stick) toBottom(); else if (fresh) ui.pl.hidden = false;
  }

  // A message's files: pictures as small previews, anything else as a
  // download link with its size. Links are our server's own paths.
  function files(el, list) {
    if (!list || !list.length) return;
    var box = add(el, 'div', 'fs');
    list.forEach(function (f) {
      if (!/^\/files\//.test(f.url || '')) return;
      var a = add(box, 'a', 'fl');
      a.href = BASE + f.url; a.target = '_blank'; a.rel = 'noopener';
      a.setAttribute('data-testid', 'parley-attachment');
      if (/^image\/(png|jpeg|gif|webp)$/.test(f.content_type)) {
        var img = add(a, 'img'); img.src = a.href; img.alt = f.name; img.loading = 'lazy';
      } else {
        add(a, 'span', '', f.name);
        add(a, 'span', 'sz', size(f.size));
        a.setAttribute('download', f.name);
      }
    });
  }

  function size(n) {
    return n < 1024 ? n + ' B' : n < 1048576 ? Math.round(n / 1024) + ' KB' : (n / 1048576).toFixed(1) + ' MB';
  }

  // The person already said they are OK (after this check-in came).
  function answered(m) {
    var t = Date.parse(m.created_at) || 0, yes = false;
    recs.forEach(function (x) {
      var a = x.m.author || {};
      if (a.type === 'person' && x.m.kind === 'checkin' && (Date.parse(x.m.created_at) || 0) >= t) yes = true;
    });
    return yes;
  }

  // The author's name shows above the first message of each run.
  function runs() {
    var prev = '';
    for (var n = ui.ls.firstChild; n; n = n.nextSibling) { n.classList.toggle('f', n._a !== prev); prev = n._a; }
  }

  // ---- public API ----------------------------------------------------------

  function boot(o) {
    booted = true;
    ident = o || {};
    gen++;
    stop();
    start(gen);
  }

  function shutdown() {
    if (LINK) return;
    booted = true;
    gen++;
    stop();
    typingOff();
    token = null;
    store('localStorage', TOKEN_KEY, null);
    store('sessionStorage', SEQ_KEY, null);
    unmount();
  }

  function Parley(cmd) {
    var a = [].slice.call(arguments, 1);
    if (cmd === 'boot') boot(a[0]);
    else if (cmd === 'show' || cmd === 'hide') setOpen(cmd === 'show');
    else if (cmd === 'track') send({type: 'track', name: String(a[0]), data: a[1] || {}}, true);
    else if (cmd === 'shutdown') shutdown();
    else console.warn('Parley: unknown command ' + cmd);
  }
  Parley._state = function () { return {connected: live, person_id: pid, seq: seq, messages: recs.size}; };

  var queued = (W.Parley && W.Parley.q) || [];
  W.Parley = Parley;
  W.addEventListener('popstate', pageView);
  W.addEventListener('hashchange', pageView);
  D.addEventListener('visibilitychange', markSeen);
  for (var q = 0; q < queued.length; q++) Parley.apply(null, queued[q]);
  setTimeout(function () { if (!booted) boot({}); }, 0);
})();
