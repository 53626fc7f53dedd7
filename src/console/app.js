// The console's shell: sign-in, the pages the caller may use, and the hash router. The caller's
// permissions are read from /api/v1/me (roles) and permissions.listAll (which roles hold which
// permission); where listAll is not offered, a page is shown when its own route does not refuse.

import { ApiError, call, clearSession, get, onSessionExpired, post, session, setSession } from './api.js';
import { h, mount, notice } from './ui.js';
import { auditPage, permissionsPage, usersPage } from './pages.js';
import { editorPage, pluginsPage, previewPage } from './plugins.js';

/** Pages: hash, label, the permissions any one of which shows it, the probe used without listAll. */
const PAGES = [
  { id: 'permissions', label: 'Permissions', any: ['access-permissions'], probe: '/api/v1/permissions.listAll', render: permissionsPage },
  { id: 'users', label: 'Users & tokens', any: ['create-user', 'edit-other-user-info', 'edit-other-user-active-status'], probe: '/api/v1/users.list', render: usersPage },
  { id: 'plugins', label: 'Plugins', any: ['manage-apps'], probe: '/api/v1/inquiryd/plugins.list', render: pluginsPage },
  { id: 'preview', label: 'Preview', any: ['manage-apps'], probe: '/api/v1/inquiryd/plugins.list', render: previewPage },
  { id: 'audit', label: 'Audit', any: ['access-permissions'], probe: '/api/v1/inquiryd/audit.list', render: auditPage },
];

const state = { me: null, pages: [], signedOutReason: '' };

const main = () => document.getElementById('main');

/** Shows `hash`: through the hashchange event when it changes, at once when it does not. */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

onSessionExpired(() => {
  state.me = null;
  state.signedOutReason = 'Your session has expired: sign in again. Nothing was changed by the last action.';
  go('#/signin');
});

// A 401 has already returned the page to sign-in (above); the action that met it just stops.
window.addEventListener('unhandledrejection', (e) => {
  if (e.reason instanceof ApiError && e.reason.status === 401) e.preventDefault();
});

function signInPage() {
  const error = h('div', { id: 'signin-error' });
  const user = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true });
  const pass = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'card signin',
      'aria-labelledby': 'signin-title',
      onsubmit: async (e) => {
        e.preventDefault();
        button.disabled = true;
        mount(error);
        try {
          const res = await post('/api/v1/login', { user: user.value, password: pass.value });
          setSession(res.data.userId, res.data.authToken, res.data.me && res.data.me.username);
          state.signedOutReason = '';
          pass.value = '';
          await start();
        } catch (err) {
          const text = err instanceof ApiError && err.status === 401
            ? 'Wrong username or password.'
            : err.message;
          mount(error, notice('error', text));
        } finally {
          button.disabled = false;
        }
      },
    },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Use an inquiryd account. The session lasts until you close this tab or sign out.'),
    state.signedOutReason ? notice('warn', state.signedOutReason) : null,
    h('label', { for: 'username' }, 'Username'),
    user,
    h('label', { for: 'password' }, 'Password'),
    pass,
    error,
    button,
  );
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  mount(main(), h('div', { class: 'center' }, form));
  user.focus();
}

async function permissionsOf(me) {
  try {
    const res = await get('/api/v1/permissions.listAll');
    const mine = new Set();
    for (const p of res.update || []) {
      if ((p.roles || []).some((r) => me.roles.includes(r))) mine.add(p._id);
    }
    return (page) => page.any.some((p) => mine.has(p));
  } catch (err) {
    if (err.status === 401) throw err;
    // listAll not offered: ask each page's own route. 2xx shows the page and 403 hides it; a
    // route this server does not offer (404) shows its page with that error, but only to a
    // caller who may use some page that is offered: the console is never shown to non-admins.
    const verdicts = new Map();
    for (const page of PAGES) {
      if (!verdicts.has(page.probe)) {
        try {
          await get(page.probe);
          verdicts.set(page.probe, 'ok');
        } catch (e) {
          if (e.status === 401) throw e;
          verdicts.set(page.probe, e.status === 404 ? 'missing' : 'refused');
        }
      }
    }
    const someUsable = [...verdicts.values()].includes('ok');
    return (page) => verdicts.get(page.probe) === 'ok' || (someUsable && verdicts.get(page.probe) === 'missing');
  }
}

async function start() {
  const me = await get('/api/v1/me');
  me.roles = me.roles || [];
  const allowed = await permissionsOf(me);
  state.me = me;
  state.pages = PAGES.filter(allowed);
  renderChrome();
  if (!location.hash || location.hash === '#/signin') {
    go(state.pages.length ? `#/${state.pages[0].id}` : '#/');
  } else {
    await route();
  }
}

function renderChrome() {
  const nav = document.getElementById('nav');
  mount(
    nav,
    h('ul', {}, state.pages.map((p) => h('li', {}, h('a', { href: `#/${p.id}`, 'data-page': p.id }, p.label)))),
  );
  nav.hidden = false;
  const who = document.getElementById('who');
  mount(
    who,
    h('span', { class: 'muted' }, 'Signed in as '),
    h('strong', { 'data-testid': 'username' }, state.me.username),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'),
  );
  who.hidden = false;
}

async function signOut() {
  try {
    await post('/api/v1/logout', {});
  } catch {
    // signed out either way: the token is forgotten below
  }
  clearSession();
  state.me = null;
  state.signedOutReason = '';
  go('#/signin');
}

async function route() {
  if (!session()) {
    signInPage();
    return;
  }
  if (!state.me) {
    try {
      await start();
    } catch (err) {
      if (err.status !== 401) mount(main(), notice('error', err.message));
    }
    return;
  }
  const [, id, ...rest] = location.hash.split('/');
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const page = state.pages.find((p) => p.id === id);
  const el = main();
  if (!page) {
    mount(
      el,
      h('h1', {}, 'Nothing here for you'),
      notice('warn', state.pages.length
        ? 'This page does not exist or your account may not use it.'
        : 'Your account holds none of the permissions the console pages need.'),
    );
    return;
  }
  document.title = `${page.label} · inquiryd admin`;
  try {
    if (id === 'plugins' && rest.length) await editorPage(el, decodeURIComponent(rest.join('/')), state);
    else await page.render(el, state);
  } catch (err) {
    if (err.status === 401) return;
    mount(el, h('h1', {}, page.label), notice('error', err.message));
  }
  el.focus({ preventScroll: true });
}

window.addEventListener('hashchange', route);
route();
