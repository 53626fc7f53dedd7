// The console's shell: sign-in, the pages the caller may use, and the hash router. What the
// caller may do is read from /api/v1/me (its roles) and permissions.listAll (which roles hold
// which permission; any signed-in user may read it), again at every navigation, so a change made
// in the matrix shows at once. Hiding a page is a courtesy: the routes behind it refuse anyway.

import { ApiError, clearSession, get, onSessionExpired, post, session, setSession } from './api.js';
import { h, mount, notice } from './ui.js';
import { auditPage, permissionsPage, usersPage } from './pages.js';
import { editorPage, pluginsPage, previewPage } from './plugins.js';

/**
 * Pages: hash, label, and the permissions any one of which shows it, after the routes behind it
 * (rocketchat-admin-routes.md): permissions.addRole/removeRole and the audit trail need
 * access-permissions, users.list needs view-d-room, the plugin and preview routes manage-apps.
 * (listAll itself is open to every signed-in user, but a matrix one may not change is no
 * admin page.)
 */
const PAGES = [
  { id: 'permissions', label: 'Permissions', any: ['access-permissions'], render: permissionsPage },
  { id: 'users', label: 'Users & tokens', any: ['view-d-room'], render: usersPage },
  { id: 'plugins', label: 'Plugins', any: ['manage-apps'], render: pluginsPage },
  { id: 'preview', label: 'Preview', any: ['manage-apps'], render: previewPage },
  { id: 'audit', label: 'Audit', any: ['access-permissions'], render: auditPage },
];

const state = { me: null, pages: [], permissions: new Set(), can: () => false, signedOutReason: '' };

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

/**
 * Reads the caller's roles and the permissions they grant into `state`: `state.can(permission)`
 * answers for the pages, `state.pages` lists the pages shown. Returns whether the user or its pages changed.
 */
async function readAccess() {
  const [me, all] = await Promise.all([get('/api/v1/me'), get('/api/v1/permissions.listAll')]);
  const roles = new Set(me.roles || []);
  const mine = new Set((all.update || []).filter((p) => (p.roles || []).some((r) => roles.has(r))).map((p) => p._id));
  const shown = () => [state.me && state.me._id, ...state.pages.map((p) => p.id)].join();
  const before = shown();
  state.me = { ...me, roles: [...roles] };
  state.permissions = mine;
  state.can = (permission) => mine.has(permission);
  state.pages = PAGES.filter((page) => page.any.some((p) => mine.has(p)));
  return before !== shown();
}

/** For a page whose change may have touched the caller's own permissions: nav follows at once. */
state.refreshAccess = async () => {
  if (await readAccess()) {
    renderChrome();
    const id = location.hash.split('/')[1];
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.page === id) a.setAttribute('aria-current', 'page');
    }
  }
};

async function start() {
  await readAccess();
  state.accessFresh = true;
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
  // roles and permissions may have changed since the last page (in the matrix, or by another admin)
  if (state.accessFresh) {
    state.accessFresh = false;
  } else {
    try {
      if (await readAccess()) renderChrome();
    } catch (err) {
      if (err.status !== 401) mount(main(), notice('error', err.message));
      return;
    }
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
