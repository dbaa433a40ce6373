// REST client for /api/v1: bearer token from localStorage, JSON in and out, and
// every failure turned into an ApiError carrying the server's message.

const TOKEN_KEY = 'parley_agent_token';

export const getToken = () => localStorage.getItem(TOKEN_KEY);

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  // Answers asked for with another token are not this session's.
  globalThis.parleyEarly = null;
}

// An answer index.html asked for while the modules loaded, taken once.
function takeEarly(method, path) {
  const early = globalThis.parleyEarly;
  if (method !== 'GET' || !early || !(path in early)) return null;
  const answer = early[path];
  delete early[path];
  return answer;
}

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

let onUnauthorized = () => {};

// Called when a request made with a token is refused: the session is gone.
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export async function api(method, path, body) {
  const token = getToken();
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';

  let res;
  try {
    res = await (takeEarly(method, path) ??
      fetch(`/api/v1${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      }));
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
  }

  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // A proxy error page or similar: fall through to the generic message below.
  }
  if (res.ok) return data;

  const err = data?.error ?? {};
  const error = new ApiError(
    res.status,
    err.code ?? `http_${res.status}`,
    err.message || `Request failed (${res.status} ${res.statusText}).`,
    err.field ?? null,
  );
  if (res.status === 401 && token) onUnauthorized(error);
  throw error;
}

export const enc = encodeURIComponent;
