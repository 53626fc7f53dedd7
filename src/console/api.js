// The REST client of the console: the session (userId and authToken, in sessionStorage only,
// never a cookie), one fetch wrapper that sends them as X-User-Id/X-Auth-Token, and the errors
// the pages show. A 401 on a signed-in call ends the session: the page returns to sign-in and
// nothing was changed (every change is one request, refused whole).

const KEY = 'inquiryd.console.session';

export class ApiError extends Error {
  constructor(status, body, path) {
    super(describe(status, body, path));
    this.status = status;
    this.body = body;
    this.path = path;
  }
}

function describe(status, body, path) {
  if (status === 0) return 'The server cannot be reached.';
  if (status === 404 && body && body.error === 'Resource not found') {
    return `This server does not offer ${path} (HTTP 404).`;
  }
  if (status === 401) return 'Your session has expired: sign in again.';
  if (status === 403) return 'You do not have the permission this needs.';
  const text = body && (body.error || body.message);
  return text ? String(text) : `The server answered HTTP ${status}.`;
}

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    return s && typeof s.userId === 'string' && typeof s.authToken === 'string' ? s : null;
  } catch {
    return null;
  }
}

export function setSession(userId, authToken, username) {
  sessionStorage.setItem(KEY, JSON.stringify({ userId, authToken, username }));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

let expired = () => {};

/** Called when a signed-in request is answered 401. */
export function onSessionExpired(fn) {
  expired = fn;
}

/**
 * Calls a route. `query` becomes the query string (undefined and '' values left out), `body` is
 * sent as JSON. Resolves to the parsed body of a 2xx answer; rejects with an ApiError otherwise.
 */
export async function call(method, path, { query, body } = {}) {
  const s = session();
  const headers = { Accept: 'application/json' };
  if (s) {
    headers['X-User-Id'] = s.userId;
    headers['X-Auth-Token'] = s.authToken;
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, null, path);
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.status === 401 && s && path !== '/api/v1/login') {
    clearSession();
    expired();
    throw new ApiError(401, data, path);
  }
  if (!res.ok || (data && data.success === false)) throw new ApiError(res.status, data, path);
  return data;
}

export const get = (path, query) => call('GET', path, { query });
export const post = (path, body) => call('POST', path, { body });
