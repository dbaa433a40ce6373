// Agent WebSocket: stays connected (backoff with jitter), resumes from the last seq
// after a reconnect, drops frames it has already seen, and pings to keep it alive.

const PING_MS = 25_000;
const STALE_MS = 60_000; // no frame (not even a pong) for this long: the link is dead
const MIN_DELAY = 500;
const MAX_DELAY = 30_000;
const AUTH_CLOSE_CODES = new Set([4001, 4003]);

/**
 * handlers: onFrame(frame), onHello(frame, reset), onState(connected),
 * onAuthFailed(code), onDropBeforeHello() — the upgrade may have been refused with
 * a plain HTTP 401, which a browser only reports as close code 1006.
 */
export function connectSocket(token, handlers) {
  let ws = null;
  let lastSeq = null;
  let attempt = 0;
  let greeted = false;
  let stopped = false;
  let retryTimer = null;
  let pingTimer = null;
  let lastFrameAt = 0;

  function open() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    greeted = false;
    ws = new WebSocket(`${proto}//${location.host}/api/v1/ws?token=${encodeURIComponent(token)}`);
    ws.onopen = () => {
      lastFrameAt = Date.now();
      pingTimer = setInterval(heartbeat, PING_MS);
    };
    ws.onmessage = (e) => receive(e.data);
    ws.onclose = (e) => closed(e.code);
  }

  function receive(text) {
    lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== 'string') return;
    if (frame.type === 'hello') return hello(frame);
    if (typeof frame.seq === 'number') {
      if (lastSeq !== null && frame.seq <= lastSeq) return; // replayed twice or stale
      lastSeq = frame.seq;
    }
    handlers.onFrame(frame);
  }

  function hello(frame) {
    greeted = true;
    attempt = 0;
    const seq = typeof frame.seq === 'number' ? frame.seq : null;
    let reset = false;
    if (lastSeq === null || seq === null) {
      lastSeq = seq;
    } else if (seq < lastSeq) {
      // The server's stream restarted, so our seq means nothing there: start over.
      lastSeq = seq;
      reset = true;
    } else {
      send({ type: 'resume', after: lastSeq });
    }
    handlers.onState(true);
    handlers.onHello(frame, reset);
  }

  function closed(code) {
    clearInterval(pingTimer);
    ws = null;
    handlers.onState(false);
    if (stopped) return;
    if (AUTH_CLOSE_CODES.has(code)) {
      stop();
      handlers.onAuthFailed(code);
      return;
    }
    if (!greeted) handlers.onDropBeforeHello();
    const cap = Math.min(MAX_DELAY, MIN_DELAY * 2 ** attempt++);
    retryTimer = setTimeout(open, Math.max(MIN_DELAY, Math.random() * cap));
  }

  function heartbeat() {
    if (Date.now() - lastFrameAt < STALE_MS) {
      send({ type: 'ping' });
      return;
    }
    // A half-open connection may never fire close; abandon it and reconnect now.
    const dead = ws;
    dead.onclose = dead.onmessage = null;
    dead.close();
    closed(1006);
  }

  // Back online after a network loss: don't sit out the rest of the backoff.
  function onOnline() {
    if (ws || stopped) return;
    clearTimeout(retryTimer);
    attempt = 0;
    open();
  }

  function send(frame) {
    if (ws?.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function stop() {
    stopped = true;
    clearTimeout(retryTimer);
    clearInterval(pingTimer);
    removeEventListener('online', onOnline);
    if (ws) {
      ws.onclose = ws.onmessage = null;
      ws.close(1000);
      ws = null;
      handlers.onState(false);
    }
  }

  addEventListener('online', onOnline);
  open();
  return {
    send,
    stop,
    get seq() {
      return lastSeq;
    },
  };
}
