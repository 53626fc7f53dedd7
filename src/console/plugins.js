// The plugins, editor and preview pages. The editor validates the draft on the server as you
// type (the validator the watcher and `inquiryd plugins check` use), marks each problem at its
// line, and previews what a caller would get with the draft before it is saved.

import { get, post } from './api.js';
import { confirmDialog, debounce, h, mount, notice, toast, when } from './ui.js';

/** Unsaved drafts by file name, kept while the tab lives (not across reloads). */
const drafts = new Map();

const TEMPLATE = `{
  "$schema": "./plugin.schema.json",
  "name": "my-plugin",
  "description": "What this plugin does and why.",
  "enabled": true,
  "priority": 50,
  "hooks": [
    {
      "on": "inquiry.response",
      "when": { "caller": { "roles_none": ["admin", "livechat-manager"] } },
      "do": [
        { "op": "mask", "path": "/v/username", "keep_start": 2 }
      ]
    }
  ]
}
`;

function stateBadge(s) {
  if (!s) return h('span', { class: 'badge off' }, 'not loaded');
  const label = s.state === 'ok' ? 'active' : s.state;
  return h('span', { class: `badge ${s.state === 'ok' ? 'ok' : s.state === 'error' ? 'bad' : 'off'}`, 'data-testid': 'state' }, label);
}

function shortSha(mark) {
  return mark && mark.sha256 ? mark.sha256.slice(0, 12) : '—';
}

// -------------------------------------------------------------------------------------------
// List
// -------------------------------------------------------------------------------------------

export async function pluginsPage(el) {
  const res = await get('/api/v1/inquiryd/plugins.list');
  const status = h('div', { class: 'status-area', 'aria-live': 'polite' });
  const files = res.plugins || [];
  const newName = h('input', { id: 'new-plugin', placeholder: 'redact-something.json', pattern: '[A-Za-z0-9_\\-][A-Za-z0-9._\\-]*\\.json', required: true, autocomplete: 'off' });
  const rows = files.map((f) => {
    const enable = f.state !== 'error' && h('button', {
      type: 'button',
      class: 'secondary small',
      onclick: async () => {
        try {
          await post('/api/v1/inquiryd/plugins.setEnabled', { name: f.file, enabled: f.state !== 'ok' });
          toast(`${f.file} ${f.state === 'ok' ? 'disabled' : 'enabled'}`);
          await pluginsPage(el);
        } catch (err) {
          if (err.status === 401) throw err;
          mount(status, notice('error', `${f.file}: ${err.message}`));
        }
      },
    }, f.state === 'ok' ? 'Disable' : 'Enable');
    const del = h('button', {
      type: 'button',
      class: 'danger small',
      onclick: async () => {
        if (!(await confirmDialog('Delete plugin', `Delete ${f.file}? Its hooks leave force at once.`, 'Delete'))) return;
        try {
          await post('/api/v1/inquiryd/plugins.delete', { name: f.file });
          drafts.delete(f.file);
          toast(`${f.file} deleted`);
          await pluginsPage(el);
        } catch (err) {
          if (err.status === 401) throw err;
          mount(status, notice('error', `${f.file}: ${err.message}`));
        }
      },
    }, 'Delete');
    return h('tr', { 'data-plugin': f.file },
      h('th', { scope: 'row' }, h('a', { href: `#/plugins/${encodeURIComponent(f.file)}` }, f.file), drafts.has(f.file) ? h('span', { class: 'tag warn' }, 'unsaved draft') : null),
      h('td', { 'data-label': 'State' }, stateBadge(f), f.serving_last_good ? h('div', { class: 'small muted' }, 'last good version in force') : null),
      h('td', { class: 'num', 'data-label': 'Hooks' }, String(f.hooks)),
      h('td', { 'data-label': 'In force' }, h('code', { title: f.in_force ? f.in_force.sha256 : '' }, shortSha(f.in_force)), f.in_force ? h('div', { class: 'small muted' }, when(f.in_force.read_at)) : null),
      h('td', { class: 'error-text', 'data-label': 'Error' }, f.error ? h('code', {}, f.error) : ''),
      h('td', { 'data-label': 'Actions' }, h('div', { class: 'actions' }, enable, del)));
  });
  mount(
    el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Plugins'),
      h('p', { class: 'muted' }, 'Declarative hooks that enrich or redact the inquiry each caller gets. A file that stops validating keeps its last good version in force.')),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Directory'), h('dd', {}, h('code', {}, res.dir)),
      h('dt', {}, 'Last reload'), h('dd', {}, when(res.lastReload)),
      h('dt', {}, 'Last result'), h('dd', { 'data-testid': 'last-result' }, res.lastError ? h('code', { class: 'error-text' }, res.lastError) : h('span', { class: 'badge ok' }, 'all files valid'))),
    status,
    files.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'data' },
        h('caption', { class: 'sr-only' }, 'Plugin files'),
        h('thead', {}, h('tr', {}, ['File', 'State', 'Hooks', 'In force', 'Error', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)))
      : h('p', { class: 'muted' }, 'No plugin files yet.'),
    h('form', {
      class: 'card row-form',
      'aria-labelledby': 'new-plugin-title',
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = `#/plugins/${encodeURIComponent(newName.value)}`;
      },
    }, h('h2', { id: 'new-plugin-title' }, 'New plugin'),
    h('label', { for: 'new-plugin' }, 'File name'),
    h('div', { class: 'row' }, newName, h('button', { type: 'submit' }, 'Open editor'))),
  );
}

// -------------------------------------------------------------------------------------------
// Editor
// -------------------------------------------------------------------------------------------

export async function editorPage(el, name) {
  let loaded;
  try {
    loaded = (await get('/api/v1/inquiryd/plugins.get', { name })).plugin;
  } catch (err) {
    if (err.status === 401 || !(err.body && err.body.errorType === 'error-plugin-not-found')) throw err;
    loaded = { name, content: TEMPLATE.replace('my-plugin', name.replace(/\.json$/, '')), sha256: '', state: null, isNew: true };
  }
  let sha = loaded.sha256;
  const text = h('textarea', {
    id: 'editor',
    class: 'code',
    spellcheck: 'false',
    autocomplete: 'off',
    wrap: 'off',
    'aria-describedby': 'problems-title',
    value: drafts.get(name) ?? loaded.content,
  });
  const gutter = h('pre', { class: 'gutter', 'aria-hidden': 'true' });
  const verdict = h('div', { class: 'verdict', 'data-testid': 'verdict', role: 'status' });
  const problems = h('ol', { class: 'problems', 'data-testid': 'problems' });
  const status = h('div', { class: 'status-area', 'aria-live': 'polite' });
  const badge = h('span', {}, stateBadge(loaded.state));
  let errorLines = new Set();

  const paintGutter = () => {
    const n = text.value.split('\n').length;
    const lines = [];
    for (let i = 1; i <= n; i += 1) lines.push(h('span', { class: errorLines.has(i) ? 'err' : '' }, `${i}\n`));
    mount(gutter, lines);
    gutter.scrollTop = text.scrollTop;
  };
  const goTo = (line, column) => {
    const rows = text.value.split('\n');
    let at = 0;
    for (let i = 0; i < line - 1 && i < rows.length; i += 1) at += rows[i].length + 1;
    at += Math.max(0, (column || 1) - 1);
    text.focus();
    text.setSelectionRange(at, at);
  };
  const validate = async () => {
    const content = text.value;
    try {
      const res = await post('/api/v1/inquiryd/plugins.validate', { name, content });
      if (content !== text.value) return; // a newer keystroke's validation follows
      errorLines = new Set(res.errors.filter((e) => e.line).map((e) => e.line));
      if (res.valid) {
        mount(verdict, h('span', { class: 'badge ok' }, 'valid'), ` ${res.hooks} hook${res.hooks === 1 ? '' : 's'}, ${res.enabled ? 'enabled' : 'disabled'}`);
        mount(problems);
      } else {
        mount(verdict, h('span', { class: 'badge bad' }, `${res.errors.length} problem${res.errors.length === 1 ? '' : 's'}`));
        mount(problems, res.errors.map((e) => h('li', { 'data-line': e.line ?? '' },
          e.line
            ? h('button', { type: 'button', class: 'link', onclick: () => goTo(e.line, e.column) }, `Line ${e.line}, column ${e.column}`)
            : h('strong', {}, e.pointer ? h('code', {}, e.pointer) : 'File'),
          ': ',
          e.message,
          e.pointer && e.line ? h('span', { class: 'muted' }, ' (', h('code', {}, e.pointer), ')') : null)));
      }
    } catch (err) {
      if (err.status === 401) throw err;
      mount(verdict, notice('error', `Cannot validate: ${err.message}`));
    }
    paintGutter();
  };
  const revalidate = debounce(validate, 350);
  text.addEventListener('input', () => {
    if (text.value === loaded.content) drafts.delete(name);
    else drafts.set(name, text.value);
    paintGutter();
    revalidate();
  });
  text.addEventListener('scroll', () => { gutter.scrollTop = text.scrollTop; });
  text.addEventListener('keydown', (e) => {
    if (e.key === 's' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      save();
    }
  });

  const save = async () => {
    mount(status);
    try {
      const res = await post('/api/v1/inquiryd/plugins.save', { name, content: text.value, sha256: sha });
      sha = res.plugin.sha256;
      loaded = { ...loaded, content: text.value, isNew: false };
      drafts.delete(name);
      mount(badge, stateBadge(res.plugin.state));
      mount(status, notice('ok', `Saved ${name}: in force now (sha256 ${sha.slice(0, 12)}).`));
    } catch (err) {
      if (err.status === 401) throw err;
      const details = err.body && err.body.details && err.body.details.errors;
      mount(status, notice('error', err.message),
        err.status === 409 ? h('button', { type: 'button', class: 'secondary', onclick: () => { drafts.delete(name); editorPage(el, name); } }, 'Discard my edit and reload') : null);
      if (details) await validate();
    }
  };
  const revert = h('button', {
    type: 'button',
    class: 'secondary',
    onclick: () => {
      text.value = loaded.content;
      drafts.delete(name);
      paintGutter();
      validate();
    },
  }, 'Revert');

  mount(
    el,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/plugins' }, 'Plugins'), ' / ', h('span', {}, name)),
    h('div', { class: 'page-head row spread' },
      h('h1', {}, name, ' ', badge),
      h('div', { class: 'row' }, revert, h('button', { type: 'button', onclick: save, 'data-testid': 'save' }, 'Save'))),
    loaded.isNew ? notice('warn', 'A new file: it is written when you save.') : null,
    loaded.state && loaded.state.error ? notice('error', `On disk: ${loaded.state.error}${loaded.state.serving_last_good ? ' (its last good version is in force)' : ''}`) : null,
    status,
    h('div', { class: 'editor-grid' },
      h('section', { class: 'editor-pane' },
        h('label', { id: 'editor-label', for: 'editor' }, 'Plugin file (JSON)'),
        h('div', { class: 'editor' }, gutter, text),
        h('div', { class: 'validation' }, h('h2', { id: 'problems-title', class: 'h3' }, 'Validation'), verdict, problems)),
      h('section', { class: 'preview-pane', 'aria-labelledby': 'preview-title' },
        h('h2', { id: 'preview-title' }, 'Preview this draft'),
        await previewPanel(() => ({ name, content: text.value })))),
  );
  paintGutter();
  await validate();
}

// -------------------------------------------------------------------------------------------
// Preview
// -------------------------------------------------------------------------------------------

export async function previewPage(el) {
  const list = await get('/api/v1/inquiryd/plugins.list');
  const files = (list.plugins || []).map((f) => f.file);
  for (const d of drafts.keys()) if (!files.includes(d)) files.push(d);
  const pick = h('select', { id: 'preview-draft' },
    h('option', { value: '' }, 'No draft: the plugins in force only'),
    files.map((f) => h('option', { value: f, disabled: !drafts.has(f) }, drafts.has(f) ? `${f} (unsaved draft)` : `${f} (no unsaved draft)`)));
  mount(
    el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Preview'),
      h('p', { class: 'muted' }, 'What a caller gets from livechat/inquiries.getOne, beside the stored document: removed, masked and added fields are highlighted. Open a plugin in the editor to preview an unsaved draft.')),
    h('div', { class: 'toolbar' }, h('label', { for: 'preview-draft' }, 'Draft'), pick),
    await previewPanel(() => (pick.value && drafts.has(pick.value) ? { name: pick.value, content: drafts.get(pick.value) } : null)),
  );
}

let panelSeq = 0;

async function previewPanel(draftOf) {
  panelSeq += 1;
  const id = (s) => `${s}-${panelSeq}`;
  let roles = ['admin', 'livechat-manager', 'livechat-monitor', 'livechat-agent', 'user'];
  try {
    roles = ((await get('/api/v1/roles.list')).roles || []).map((r) => r._id);
  } catch (err) {
    if (err.status === 401) throw err;
  }
  const room = h('input', { id: id('room'), list: id('rooms'), autocomplete: 'off', placeholder: 'room id or inquiry name', required: true });
  const options = h('datalist', { id: id('rooms') });
  const findRooms = debounce(async () => {
    try {
      const res = await get('/api/v1/inquiryd/rooms.search', { q: room.value.trim() });
      mount(options, res.rooms.map((r) => h('option', { value: r.roomId }, `${r.name ?? ''} ${r.status ? `(${r.status})` : ''}`)));
    } catch (err) {
      if (err.status === 401) throw err;
    }
  }, 250);
  room.addEventListener('input', findRooms);
  room.addEventListener('focus', findRooms);
  const asUser = h('input', { type: 'radio', name: id('as'), id: id('as-user'), value: 'user', checked: true });
  const asRoles = h('input', { type: 'radio', name: id('as'), id: id('as-roles'), value: 'roles' });
  const username = h('input', { id: id('username'), autocomplete: 'off', placeholder: 'demo.agent' });
  const roleBoxes = roles.map((r) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: r, 'data-role': r }), r));
  const out = h('div', { class: 'preview-out', 'aria-live': 'polite', 'data-testid': 'preview-out' });
  const form = h('form', {
    class: 'card preview-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { roomId: room.value.trim() };
      if (asUser.checked) body.username = username.value.trim();
      else body.roles = roleBoxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
      const draft = draftOf();
      if (draft) body.draft = draft;
      mount(out, h('p', { class: 'muted' }, 'Rendering…'));
      try {
        renderPreview(out, await post('/api/v1/inquiryd/plugins.preview', body), Boolean(draft));
      } catch (err) {
        if (err.status === 401) throw err;
        mount(out, notice('error', err.message));
      }
    },
  },
  h('label', { for: id('room') }, 'Room'), room, options,
  h('fieldset', {}, h('legend', {}, 'Caller'),
    h('div', { class: 'row' }, asUser, h('label', { for: id('as-user') }, 'A user'), username),
    h('div', { class: 'row wrap' }, asRoles, h('label', { for: id('as-roles') }, 'A caller with the roles'), h('div', { class: 'checks' }, roleBoxes))),
  h('button', { type: 'submit', 'data-testid': 'preview' }, 'Preview'));
  username.addEventListener('focus', () => { asUser.checked = true; });
  for (const b of roleBoxes) b.addEventListener('change', () => { asRoles.checked = true; });
  return h('div', { class: 'preview' }, form, out);
}

/** Every pointer in `v` (containers included), and the JSON text of each leaf. */
function flatten(v, ptr = '', all = new Set(), leaves = new Map()) {
  all.add(ptr);
  if (v && typeof v === 'object' && Object.keys(v).length) {
    for (const [k, child] of Object.entries(v)) flatten(child, `${ptr}/${String(k).replace(/~/g, '~0').replace(/\//g, '~1')}`, all, leaves);
  } else {
    leaves.set(ptr, JSON.stringify(v));
  }
  return { all, leaves };
}

/** Pretty JSON as lines, each marked by how it differs from `base` (added, changed). */
function jsonLines(v, base, ptr = '', key = null, indent = 0, comma = false) {
  const pad = '  '.repeat(indent);
  const label = key === null ? '' : `${JSON.stringify(key)}: `;
  const mark = (p) => {
    if (!base) return '';
    if (!base.all.has(p)) return 'added';
    return base.leaves.get(p) !== JSON.stringify(v) ? 'changed' : '';
  };
  const line = (text, p, cls) => h('span', { class: `line ${cls}`, 'data-pointer': p }, `${pad}${text}${comma ? ',' : ''}\n`);
  if (v && typeof v === 'object' && Object.keys(v).length) {
    const isArray = Array.isArray(v);
    const entries = Object.entries(v);
    const cls = base && !base.all.has(ptr) ? 'added' : '';
    const out = [h('span', { class: `line ${cls}`, 'data-pointer': ptr }, `${pad}${label}${isArray ? '[' : '{'}\n`)];
    entries.forEach(([k, child], i) => {
      const p = `${ptr}/${String(k).replace(/~/g, '~0').replace(/\//g, '~1')}`;
      out.push(...jsonLines(child, base, p, isArray ? null : k, indent + 1, i < entries.length - 1));
    });
    out.push(h('span', { class: `line ${cls}` }, `${pad}${isArray ? ']' : '}'}${comma ? ',' : ''}\n`));
    return out;
  }
  return [line(`${label}${JSON.stringify(v)}`, ptr, mark(ptr))];
}

function answerColumn(title, answer, stored, testid) {
  const head = h('h3', {}, title, ' ', h('span', { class: `badge ${answer.status === 200 ? 'ok' : 'bad'}` }, `HTTP ${answer.status}`));
  if (answer.valid === false) {
    return h('div', { class: 'col', 'data-testid': testid },
      h('h3', {}, title, ' ', h('span', { class: 'badge bad' }, 'invalid draft')),
      h('ul', {}, answer.errors.map((e) => h('li', {}, e.text))));
  }
  const inquiry = answer.body && answer.body.inquiry;
  if (answer.status !== 200 || !inquiry) {
    return h('div', { class: 'col', 'data-testid': testid }, head,
      h('pre', { class: 'json' }, JSON.stringify(answer.body, null, 2)));
  }
  const base = stored ? flatten(stored) : null;
  const mine = flatten(inquiry);
  const removed = base ? [...base.leaves.keys()].filter((p) => !mine.all.has(p)) : [];
  return h('div', { class: 'col', 'data-testid': testid }, head,
    h('pre', { class: 'json', tabindex: '0', 'aria-label': `${title}: response inquiry` }, jsonLines(inquiry, base)),
    removed.length ? h('div', { class: 'removed' }, h('strong', {}, 'Removed: '), removed.map((p) => h('code', { class: 'line removed', 'data-pointer': p }, p))) : null);
}

function renderPreview(out, res, withDraft) {
  const legend = h('p', { class: 'legend small' },
    h('span', { class: 'line changed' }, 'changed (masked)'), ' ',
    h('span', { class: 'line added' }, 'added'), ' ',
    h('span', { class: 'line removed' }, 'removed'));
  const caller = res.caller.roles.length ? res.caller.roles.join(', ') : 'no roles';
  mount(out,
    h('p', {}, 'As ', h('strong', {}, res.caller.username), ` (${caller})`, res.caller.active ? '' : ' — deactivated: the server would answer 401', ' for room ', h('code', {}, res.roomId)),
    legend,
    h('div', { class: `columns ${withDraft ? 'three' : 'two'}` },
      h('div', { class: 'col', 'data-testid': 'stored' }, h('h3', {}, 'Stored document'),
        res.stored ? h('pre', { class: 'json', tabindex: '0', 'aria-label': 'Stored document' }, jsonLines(res.stored, null)) : h('p', { class: 'muted' }, 'No inquiry for this room.')),
      answerColumn('With the plugins in force', res.saved, res.stored, 'saved'),
      res.draft ? answerColumn('With the draft', res.draft, res.stored, 'draft') : null));
}
