// The permissions, users & tokens and audit pages: each drives Rocket.Chat's own admin routes
// (or inquiryd's audit route) and shows a route's refusal as the server worded it.

import { get, post } from './api.js';
import { confirmDialog, debounce, h, mount, notice, secretBox, toast, when } from './ui.js';

/** Rocket.Chat's default roles, for when roles.list is not offered. */
const DEFAULT_ROLES = ['admin', 'livechat-manager', 'livechat-monitor', 'livechat-agent', 'user', 'bot', 'app', 'guest', 'anonymous'];

async function roleIds(fallback = DEFAULT_ROLES) {
  try {
    const res = await get('/api/v1/roles.list');
    return (res.roles || []).map((r) => r._id);
  } catch (err) {
    if (err.status === 401) throw err;
    return fallback;
  }
}

// -------------------------------------------------------------------------------------------
// Permissions
// -------------------------------------------------------------------------------------------

export async function permissionsPage(el, state) {
  const mayChange = state.can('access-permissions');
  const perms = (await get('/api/v1/permissions.listAll')).update || [];
  perms.sort((a, b) => a._id.localeCompare(b._id));
  const inUse = [...new Set(perms.flatMap((p) => p.roles || []))];
  const roles = await roleIds(inUse.length ? inUse : DEFAULT_ROLES);
  for (const r of inUse) if (!roles.includes(r)) roles.push(r);
  const status = h('div', { class: 'status-area', 'aria-live': 'polite' });
  const filter = h('input', { id: 'perm-filter', type: 'search', placeholder: 'view-l-room, livechat…', autocomplete: 'off' });
  const tbody = h('tbody');
  const rows = perms.map((p) => {
    const held = new Set(p.roles || []);
    const cells = roles.map((role) => {
      const box = h('input', {
        type: 'checkbox',
        checked: held.has(role),
        'aria-label': `${p._id} for ${role}`,
        'data-perm': p._id,
        'data-role': role,
        disabled: !mayChange,
      });
      box.addEventListener('change', async () => {
        const grant = box.checked;
        box.disabled = true;
        mount(status);
        try {
          await post(grant ? '/api/v1/permissions.addRole' : '/api/v1/permissions.removeRole', { permissionId: p._id, role });
          toast(`${grant ? 'Granted' : 'Revoked'} ${p._id} ${grant ? 'to' : 'from'} ${role}`);
          if (state.me.roles.includes(role)) await state.refreshAccess();
        } catch (err) {
          box.checked = !grant;
          if (err.status === 401) throw err;
          mount(status, notice('error', refusal(err, p._id, role, grant)));
        } finally {
          box.disabled = false;
        }
      });
      return h('td', { class: 'cell' }, box);
    });
    const tr = h('tr', { 'data-perm-row': p._id }, h('th', { scope: 'row' }, h('code', {}, p._id)), cells);
    return { id: p._id, tr };
  });
  mount(tbody, rows.map((r) => r.tr));
  const count = h('span', { class: 'muted' }, `${perms.length} permissions × ${roles.length} roles`);
  filter.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const r of rows) {
      const show = !q || r.id.toLowerCase().includes(q);
      r.tr.hidden = !show;
      if (show) shown += 1;
    }
    count.textContent = q
      ? `${shown} of ${perms.length} permissions × ${roles.length} roles`
      : `${perms.length} permissions × ${roles.length} roles`;
  });
  mount(
    el,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Permissions'),
      h('p', { class: 'muted' }, 'Tick a cell to give a role a permission; it is in force for the next request. The server refuses a change that would leave no active admin.')),
    h('div', { class: 'toolbar' }, h('label', { for: 'perm-filter' }, 'Filter'), filter, count),
    status,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'matrix' },
        h('caption', { class: 'sr-only' }, 'Roles holding each permission'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Permission'), roles.map((r) => h('th', { scope: 'col' }, h('span', {}, r))))),
        tbody)),
  );
}

/** A refused toggle in words: what was refused, why in the server's own text, and what to do. */
function refusal(err, permission, role, grant) {
  const what = `${grant ? 'Granting' : 'Revoking'} ${permission} ${grant ? 'to' : 'from'} ${role} was refused`;
  if (err.body && err.body.errorType === 'error-admin-required') {
    return `${what}: no active user would be left holding ${permission}, so nobody could manage permissions any more. `
      + `Give ${permission} to another role that an active user holds first. The server said: “${err.message}”`;
  }
  return `${what}: ${err.message}`;
}

// -------------------------------------------------------------------------------------------
// Users & tokens
// -------------------------------------------------------------------------------------------

const PAGE_SIZE = 25;

export async function usersPage(el, state) {
  const roles = await roleIds();
  const status = h('div', { class: 'status-area', 'aria-live': 'polite' });
  const search = h('input', { id: 'user-search', type: 'search', placeholder: 'username or name', autocomplete: 'off' });
  const list = h('div', { class: 'table-wrap' });
  const pager = h('div', { class: 'pager' });
  let offset = 0;

  const load = async () => {
    mount(status);
    const term = search.value.trim();
    // Rocket.Chat's users.list has no search parameter but `query` (deprecated for 8.0, still
    // read by 7.x, limited to $or/$and/$regex): it is sent only while searching, never to list.
    const escaped = term.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    let res;
    try {
      res = await get('/api/v1/users.list', {
        count: PAGE_SIZE,
        offset,
        sort: JSON.stringify({ username: 1 }),
        query: term ? JSON.stringify({ $or: [{ username: { $regex: escaped, $options: 'i' } }, { name: { $regex: escaped, $options: 'i' } }] }) : undefined,
      });
    } catch (err) {
      if (err.status === 401) throw err;
      mount(list, notice('error', err.message));
      mount(pager);
      return;
    }
    const users = res.users || [];
    mount(list, h('table', { class: 'data' },
      h('caption', { class: 'sr-only' }, 'Users'),
      h('thead', {}, h('tr', {}, ['Username', 'Name', 'Roles', 'Status', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, users.map((u) => userRow(u, roles, status, load, state)))));
    const total = res.total ?? users.length;
    mount(pager,
      h('span', { class: 'muted' }, total ? `${offset + 1}–${offset + users.length} of ${total}` : 'No users match'),
      h('button', { type: 'button', class: 'secondary', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE_SIZE); load(); } }, 'Previous'),
      h('button', { type: 'button', class: 'secondary', disabled: offset + users.length >= total, onclick: () => { offset += PAGE_SIZE; load(); } }, 'Next'));
  };
  search.addEventListener('input', debounce(() => { offset = 0; load(); }, 300));

  mount(
    el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Users & tokens'),
      h('p', { class: 'muted' }, 'Deactivating a user ends their sessions and tokens. A token is shown once.')),
    h('div', { class: 'toolbar' }, h('label', { for: 'user-search' }, 'Search'), search),
    status,
    list,
    pager,
    // each action only for a caller whose permissions allow it (§5 of the admin routes)
    h('div', { class: 'grid-2' },
      state.can('create-user') ? createUserCard(roles, load) : null,
      state.can('create-personal-access-tokens') ? myTokensCard(state) : null),
  );
  await load();
}

function userRow(u, roles, status, reload, state) {
  const id = u._id;
  const actions = h('div', { class: 'actions' });
  const fail = (what) => (err) => {
    if (err.status === 401) throw err;
    mount(status, notice('error', `${what} ${u.username}: ${err.message}`));
  };
  const toggle = h('button', {
    type: 'button',
    class: 'secondary',
    onclick: async () => {
      try {
        await post('/api/v1/users.setActiveStatus', { userId: id, activeStatus: !u.active });
        toast(`${u.username} ${u.active ? 'deactivated' : 'activated'}`);
        await reload();
      } catch (err) { fail(u.active ? 'Deactivating' : 'Activating')(err); }
    },
  }, u.active ? 'Deactivate' : 'Activate');
  const editRoles = h('button', {
    type: 'button',
    class: 'secondary',
    onclick: () => {
      const held = new Set(u.roles || []);
      const boxes = roles.map((r) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: r, checked: held.has(r) }), r));
      const form = h('form', {
        class: 'inline-form',
        onsubmit: async (e) => {
          e.preventDefault();
          const chosen = boxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
          try {
            await post('/api/v1/users.update', { userId: id, data: { roles: chosen } });
            toast(`Roles of ${u.username} saved`);
            await reload();
          } catch (err) { fail('Setting the roles of')(err); }
        },
      }, h('fieldset', {}, h('legend', {}, `Roles of ${u.username}`), boxes),
      h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save roles'), h('button', { type: 'button', class: 'secondary', onclick: () => form.remove() }, 'Cancel')));
      actions.append(form);
    },
  }, 'Roles…');
  const token = h('button', {
    type: 'button',
    class: 'secondary',
    onclick: async () => {
      try {
        const res = await post('/api/v1/users.createToken', { userId: id });
        actions.append(secretBox(`Token for ${u.username} (user id ${res.data.userId})`, res.data.authToken));
      } catch (err) { fail('Creating a token for')(err); }
    },
  }, 'New token');
  const self = u._id === state.me._id;
  if (state.can('edit-other-user-active-status') || state.can('manage-moderation-actions')) actions.append(toggle);
  if (state.can('edit-other-user-info')) actions.append(editRoles);
  if (self || state.can('user-generate-access-token')) actions.append(token);
  if (!actions.childElementCount) actions.append(h('span', { class: 'muted' }, 'none allowed'));
  return h('tr', { 'data-user': u.username },
    h('th', { scope: 'row' }, u.username),
    h('td', { 'data-label': 'Name' }, u.name || ''),
    h('td', { 'data-label': 'Roles' }, (u.roles || []).map((r) => h('span', { class: 'tag' }, r))),
    h('td', { 'data-label': 'Status' }, h('span', { class: `badge ${u.active ? 'ok' : 'off'}` }, u.active ? 'active' : 'inactive')),
    h('td', { 'data-label': 'Actions' }, actions));
}

function createUserCard(roles, reload) {
  const out = h('div', { 'aria-live': 'polite' });
  const field = (id, label, attrs = {}) => [h('label', { for: id }, label), h('input', { id, name: id, required: true, ...attrs })];
  const boxes = roles.map((r) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: r, name: 'new-role' }), r));
  const form = h('form', {
    class: 'card',
    'aria-labelledby': 'create-user-title',
    onsubmit: async (e) => {
      e.preventDefault();
      const v = (id) => form.querySelector(`#${id}`).value;
      const chosen = boxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
      mount(out);
      try {
        const res = await post('/api/v1/users.create', {
          username: v('new-username'), name: v('new-name'), email: v('new-email'), password: v('new-password'), roles: chosen,
        });
        form.reset();
        mount(out, notice('ok', `Created ${res.user ? res.user.username : 'the user'}.`));
        await reload();
      } catch (err) {
        if (err.status === 401) throw err;
        mount(out, notice('error', err.message));
      }
    },
  },
  h('h2', { id: 'create-user-title' }, 'Create a user'),
  field('new-username', 'Username', { autocomplete: 'off' }),
  field('new-name', 'Name', { autocomplete: 'off' }),
  field('new-email', 'Email', { type: 'email', autocomplete: 'off' }),
  field('new-password', 'Password (set once, here)', { type: 'password', autocomplete: 'new-password', minlength: 8 }),
  h('fieldset', {}, h('legend', {}, 'Roles'), h('div', { class: 'checks' }, boxes)),
  out,
  h('button', { type: 'submit' }, 'Create user'));
  return form;
}

function myTokensCard(state) {
  const list = h('div', {});
  const out = h('div', { 'aria-live': 'polite' });
  const name = h('input', { id: 'pat-name', required: true, autocomplete: 'off', placeholder: 'ci-script' });
  const load = async () => {
    try {
      const res = await get('/api/v1/users.getPersonalAccessTokens');
      const tokens = res.tokens || [];
      mount(list, tokens.length
        ? h('ul', { class: 'plain' }, tokens.map((t) => h('li', { class: 'row spread' },
          h('span', {}, h('strong', {}, t.name), ' ', h('span', { class: 'muted' }, `…${t.lastTokenPart} · ${when(t.createdAt)}`)),
          h('button', {
            type: 'button',
            class: 'danger small',
            onclick: async () => {
              if (!(await confirmDialog('Revoke token', `Revoke the token “${t.name}”? Scripts using it stop working at once.`, 'Revoke'))) return;
              try {
                await post('/api/v1/users.removePersonalAccessToken', { tokenName: t.name });
                toast(`Token ${t.name} revoked`);
                await load();
              } catch (err) {
                if (err.status === 401) throw err;
                mount(out, notice('error', err.message));
              }
            },
          }, 'Revoke'))))
        : h('p', { class: 'muted' }, 'No personal access tokens.'));
    } catch (err) {
      if (err.status === 401) throw err;
      mount(list, notice('error', err.message));
    }
  };
  const form = h('form', {
    class: 'card',
    'aria-labelledby': 'pat-title',
    onsubmit: async (e) => {
      e.preventDefault();
      mount(out);
      try {
        const res = await post('/api/v1/users.generatePersonalAccessToken', { tokenName: name.value });
        mount(out, secretBox(`Token “${name.value}” for ${state.me.username} (user id ${state.me._id})`, res.token));
        name.value = '';
        await load();
      } catch (err) {
        if (err.status === 401) throw err;
        mount(out, notice('error', err.message));
      }
    },
  },
  h('h2', { id: 'pat-title' }, 'My access tokens'),
  list,
  h('label', { for: 'pat-name' }, 'New token name'),
  h('div', { class: 'row' }, name, h('button', { type: 'submit' }, 'Create token')),
  out);
  load();
  return form;
}

// -------------------------------------------------------------------------------------------
// Audit
// -------------------------------------------------------------------------------------------

/**
 * The kinds of change the server records (the families too: `user` selects every `user.*`),
 * offered as the kind filter's suggestions. The watcher's own are `plugin.applied`,
 * `plugin.rejected` and `plugin.removed`.
 */
const AUDIT_KINDS = ['inquiry.import', 'permission.roles', 'plugin', 'plugin.save', 'plugin.delete', 'plugin.enable',
  'plugin.disable', 'plugin.applied', 'plugin.rejected', 'plugin.removed', 'role', 'role.add', 'role.remove',
  'role.rename', 'role.update', 'token', 'token.create', 'token.regenerate', 'token.revoke', 'user', 'user.add',
  'user.activate', 'user.deactivate', 'user.roles', 'user.update'];

export async function auditPage(el) {
  const actor = h('input', { id: 'audit-actor', type: 'search', autocomplete: 'off', placeholder: 'alice, root, watcher' });
  const kind = h('input', { id: 'audit-kind', type: 'search', autocomplete: 'off', placeholder: 'plugin.save', list: 'audit-kinds' });
  const kinds = h('datalist', { id: 'audit-kinds' }, AUDIT_KINDS.map((k) => h('option', { value: k })));
  const since = h('input', { id: 'audit-since', type: 'datetime-local' });
  const list = h('div', { class: 'table-wrap' });
  const pager = h('div', { class: 'pager' });
  let offset = 0;
  const load = async () => {
    let res;
    try {
      res = await get('/api/v1/inquiryd/audit.list', {
        count: 50,
        offset,
        actor: actor.value.trim(),
        kind: kind.value.trim(),
        since: since.value ? new Date(since.value).toISOString() : '',
      });
    } catch (err) {
      if (err.status === 401) throw err;
      mount(list, notice('error', err.message));
      mount(pager);
      return;
    }
    const entries = res.entries || [];
    mount(list, entries.length
      ? h('table', { class: 'data' },
        h('caption', { class: 'sr-only' }, 'Audit trail, newest first'),
        h('thead', {}, h('tr', {}, ['When', 'Actor', 'Kind', 'Subject', 'Change'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, entries.map((e) => h('tr', {},
          h('td', { class: 'nowrap', 'data-label': 'When' }, when(e.at)),
          h('td', { 'data-label': 'Actor' }, e.actor),
          h('td', { 'data-label': 'Kind' }, h('span', { class: 'tag' }, e.kind)),
          h('td', { 'data-label': 'Subject' }, h('code', {}, typeof e.subject === 'string' ? e.subject : JSON.stringify(e.subject))),
          h('td', { 'data-label': 'Change' }, h('details', {}, h('summary', {}, 'before → after'),
            h('pre', { class: 'json small' }, `${JSON.stringify(e.before, null, 2)}\n→\n${JSON.stringify(e.after, null, 2)}`)))))))
      : h('p', { class: 'muted' }, 'No entries match.'));
    const total = res.total ?? entries.length;
    mount(pager,
      h('span', { class: 'muted' }, total ? `${offset + 1}–${offset + entries.length} of ${total}` : ''),
      h('button', { type: 'button', class: 'secondary', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - 50); load(); } }, 'Newer'),
      h('button', { type: 'button', class: 'secondary', disabled: offset + entries.length >= total, onclick: () => { offset += 50; load(); } }, 'Older'));
  };
  const reload = debounce(() => { offset = 0; load(); }, 300);
  for (const input of [actor, kind, since]) input.addEventListener('input', reload);
  mount(
    el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Audit trail'),
      h('p', { class: 'muted' }, 'Every change to users, roles, tokens, permissions and plugin files, newest first.')),
    h('div', { class: 'toolbar wrap' },
      h('label', { for: 'audit-actor' }, 'Actor'), actor,
      h('label', { for: 'audit-kind' }, 'Kind'), kind, kinds,
      h('label', { for: 'audit-since' }, 'Since'), since),
    list,
    pager,
  );
  await load();
}
