// End-to-end test of the admin console in headless Chromium (Debian's chromium, driven by
// playwright-core), run by tests/console.rs against a real `inquiryd serve`. Every page is
// screenshot at 1280 and 390 px into $SHOTS and checked with axe-core (no serious or critical
// violation). Every step runs against the real routes.
//
// Environment: BASE (http://127.0.0.1:PORT), ADMIN_USER, ADMIN_PASSWORD, AGENT_USER,
// AGENT_PASSWORD, DEMO_USER_ID, DEMO_TOKEN, ROOM, PLUGIN (the file to edit), PLUGINS_DIR, SHOTS,
// CHROMIUM.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`environment variable ${k} is not set`);
  return v;
};
const BASE = env('BASE');
const SHOTS = env('SHOTS');
const ROOM = env('ROOM');
const PLUGIN = env('PLUGIN');
const PLUGINS_DIR = env('PLUGINS_DIR');
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
mkdirSync(SHOTS, { recursive: true });

let passed = 0;
const problems = [];

async function step(name, fn) {
  const t0 = Date.now();
  await fn();
  passed += 1;
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
}

/** GET/POST from Node, as a script (curl) would. */
async function api(method, path, { auth, body } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (auth) {
    headers['X-User-Id'] = auth[0];
    headers['X-Auth-Token'] = auth[1];
  }
  const res = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json = null;
  try { json = await res.json(); } catch { json = null; }
  return { status: res.status, body: json };
}
const demo = [env('DEMO_USER_ID'), env('DEMO_TOKEN')];
const getOne = (auth) => api('GET', `/api/v1/livechat/inquiries.getOne?roomId=${ROOM}`, { auth });

/** Screenshots at both widths and runs axe-core at both. */
async function capture(page, name) {
  // a toast left from an earlier step is composited on its own layer, which a resize leaves stale;
  // hidden at once, not faded, so that axe does not judge its text's contrast halfway through
  await page.evaluate(() => {
    const t = document.getElementById('toast');
    if (!t) return;
    t.style.transition = 'none';
    t.className = 'toast';
    t.getBoundingClientRect();
    t.style.transition = '';
  });
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    // layout settles on the next frame
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.screenshot({ path: join(SHOTS, `${name}-${width}.png`), fullPage: true });
    await page.evaluate(axeSource);
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    for (const v of bad) {
      problems.push(`${name} @${width}px: axe ${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
    }
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let exitCode = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/status of 40[0-9]/.test(msg.text())) problems.push(`browser console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));

  await step('headers: /admin has a strict CSP, X-Frame-Options DENY, no referrer', async () => {
    const res = await page.goto(`${BASE}/admin`);
    const h = res.headers();
    assert.match(h['content-security-policy'], /default-src 'none'/);
    assert.match(h['content-security-policy'], /script-src 'self'/);
    assert.doesNotMatch(h['content-security-policy'], /unsafe-inline/);
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(h['referrer-policy'], 'no-referrer');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await capture(page, '01-signin');
  });

  await step('sign in: wrong password is refused, the right one opens the console', async () => {
    await page.getByLabel('Username').fill(env('ADMIN_USER'));
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Wrong username or password.').waitFor();
    await page.getByLabel('Password').fill(env('ADMIN_PASSWORD'));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('username').waitFor();
    assert.equal(await page.getByTestId('username').textContent(), env('ADMIN_USER'));
    const storage = await page.evaluate(() => ({
      session: sessionStorage.getItem('inquiryd.console.session'),
      local: localStorage.length,
      cookie: document.cookie,
    }));
    assert.ok(JSON.parse(storage.session).authToken, 'token in sessionStorage');
    assert.equal(storage.local, 0, 'nothing in localStorage');
    assert.equal(storage.cookie, '', 'no cookie');
    assert.equal((await context.cookies()).length, 0, 'no cookie at all');
  });

  // ---------------------------------------------------------------- permissions
  await step('permissions page: shown to an admin', async () => {
    await page.getByRole('link', { name: 'Permissions' }).click();
    await page.getByRole('heading', { level: 1 }).filter({ hasText: 'Permissions' }).waitFor();
    await page.waitForSelector('table.matrix, .notice.error');
    await capture(page, '02-permissions');
  });
  await step('permissions: revoke view-l-room from livechat-agent → 403, grant it back → 200', async () => {
    await page.getByLabel('Filter').fill('view-l-room');
    assert.deepEqual(await page.locator('tr[data-perm-row]:visible').evaluateAll((rows) => rows.map((r) => r.dataset.permRow)), ['view-l-room', 'view-l-room-closed'], 'the filter leaves the matching rows');
    const cell = page.getByRole('checkbox', { name: 'view-l-room for livechat-agent', exact: true });
    const settled = () => page.waitForFunction(() => !document.querySelector('[data-perm="view-l-room"][data-role="livechat-agent"]').disabled);
    assert.equal((await getOne(demo)).status, 200);
    await cell.uncheck();
    await settled();
    await page.getByText('Revoked view-l-room from livechat-agent').waitFor();
    assert.equal((await getOne(demo)).status, 403, 'the demo agent lost view-l-room');
    await cell.check();
    await settled();
    await page.getByText('Granted view-l-room to livechat-agent').waitFor();
    assert.equal((await getOne(demo)).status, 200, 'the demo agent has view-l-room again');
    const doc = (await api('GET', '/api/v1/permissions.listAll', { auth: demo })).body.update.find((p) => p._id === 'view-l-room');
    assert.ok(doc.roles.includes('livechat-agent'), `view-l-room is back for livechat-agent: ${doc.roles}`);
  });
  await step('permissions: taking access-permissions from the last admin is refused with the server\'s message', async () => {
    await page.getByLabel('Filter').fill('access-permissions');
    const cell = page.getByRole('checkbox', { name: 'access-permissions for admin', exact: true });
    // click, not uncheck(): the refusal may tick the box again before uncheck() could look
    await cell.click();
    const refused = page.getByRole('alert').filter({ hasText: 'You need to have at least one admin [error-admin-required]' });
    await refused.waitFor();
    assert.match(await refused.textContent(), /Revoking access-permissions from admin was refused: no active user would be left/);
    assert.equal(await cell.isChecked(), true, 'a refused change is undone on the page');
    const doc = (await api('GET', '/api/v1/permissions.listAll', { auth: demo })).body.update.find((p) => p._id === 'access-permissions');
    assert.deepEqual(doc.roles, ['admin'], 'and on the server');
    await page.getByLabel('Filter').fill('');
    await capture(page, '02b-permissions-refused');
  });
  await step('permissions: the nav follows a change to the caller\'s own role at once', async () => {
    await page.getByLabel('Filter').fill('manage-apps');
    const cell = page.getByRole('checkbox', { name: 'manage-apps for admin', exact: true });
    const nav = () => page.locator('#nav a').allTextContents();
    await cell.uncheck();
    await page.waitForFunction(() => ![...document.querySelectorAll('#nav a')].some((a) => a.textContent === 'Plugins'));
    assert.deepEqual(await nav(), ['Permissions', 'Users & tokens', 'Audit']);
    await cell.check();
    await page.getByRole('link', { name: 'Plugins' }).waitFor();
    assert.deepEqual(await nav(), ['Permissions', 'Users & tokens', 'Plugins', 'Preview', 'Audit']);
    assert.equal(await page.getByRole('link', { name: 'Permissions' }).getAttribute('aria-current'), 'page');
    await page.getByLabel('Filter').fill('');
  });

  // ---------------------------------------------------------------- users
  await step('users page: shown to an admin', async () => {
    await page.getByRole('link', { name: 'Users & tokens' }).click();
    await page.getByRole('heading', { name: 'Users & tokens' }).waitFor();
    await page.waitForSelector('.table-wrap table, .table-wrap .notice');
    await capture(page, '03-users');
  });
  let agentAuth;
  await step('users: create a user and a token; the token works from a script', async () => {
    await page.getByLabel('Username', { exact: true }).fill('e2e.agent');
    await page.getByLabel('Name', { exact: true }).fill('E2E Agent');
    await page.getByLabel('Email').fill('e2e.agent@example.com');
    await page.getByLabel(/^Password/).fill('a long e2e password');
    await page.locator('input[name="new-role"][value="livechat-agent"]').check();
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByText('Created e2e.agent.').waitFor();
    assert.equal(await page.getByLabel(/^Password/).inputValue(), '', 'the password is not kept in the form');
    const row = page.locator('tr[data-user="e2e.agent"]');
    await row.waitFor();
    await row.getByRole('button', { name: 'New token' }).click();
    const secret = await row.getByTestId('secret').inputValue();
    const userId = (await row.locator('.secret-box strong').textContent()).match(/user id (\S+?)\)/)[1];
    agentAuth = [userId, secret];
    const me = await api('GET', '/api/v1/me', { auth: agentAuth });
    assert.equal(me.status, 200);
    assert.equal(me.body.username, 'e2e.agent');
    assert.equal((await getOne(agentAuth)).status, 200);
    // search: Rocket.Chat 7.x's users.list `query` finds the new user alone
    const [searched] = await Promise.all([
      page.waitForRequest((r) => r.url().includes('/api/v1/users.list') && new URL(r.url()).searchParams.has('query')),
      page.getByLabel('Search').fill('e2e.ag'),
    ]);
    const params = new URL(searched.url()).searchParams;
    assert.deepEqual([...params.keys()].sort(), ['count', 'offset', 'query', 'sort']);
    assert.deepEqual(JSON.parse(params.get('query')), {
      $or: [{ username: { $regex: 'e2e\\.ag', $options: 'i' } }, { name: { $regex: 'e2e\\.ag', $options: 'i' } }],
    });
    await page.waitForFunction(() => [...document.querySelectorAll('tr[data-user]')].map((r) => r.dataset.user).join() === 'e2e.agent');
    assert.equal(await page.locator('.pager .muted').textContent(), '1–1 of 1');
    // deactivating ends the token
    await row.getByRole('button', { name: 'Deactivate' }).click();
    await row.getByText('inactive').waitFor();
    assert.equal((await api('GET', '/api/v1/me', { auth: agentAuth })).status, 401);
    await row.getByRole('button', { name: 'Activate' }).click();
    await row.getByText('active', { exact: true }).waitFor();
  });

  await step('users: set roles; the list pages the Rocket.Chat way', async () => {
    const row = page.locator('tr[data-user="e2e.agent"]');
    await row.getByRole('button', { name: 'Roles…' }).click();
    const form = row.locator('form.inline-form');
    await form.getByLabel('livechat-manager', { exact: true }).check();
    await capture(page, '03b-users-roles');
    await form.getByRole('button', { name: 'Save roles' }).click();
    await row.locator('.tag', { hasText: 'livechat-manager' }).waitFor();
    const login = await api('POST', '/api/v1/login', { body: { user: 'e2e.agent', password: 'a long e2e password' } });
    assert.equal(login.status, 200, 'the password set at creation signs in');
    const me = await api('GET', '/api/v1/me', { auth: [login.body.data.userId, login.body.data.authToken] });
    assert.deepEqual([...me.body.roles].sort(), ['livechat-agent', 'livechat-manager']);
    // the plain list: count, offset and sort, no query
    const [listed] = await Promise.all([
      page.waitForRequest((r) => r.url().includes('/api/v1/users.list') && !new URL(r.url()).searchParams.has('query')),
      page.getByLabel('Search').fill(''),
    ]);
    const params = new URL(listed.url()).searchParams;
    assert.deepEqual([...params.keys()].sort(), ['count', 'offset', 'sort']);
    assert.equal(params.get('offset'), '0');
    assert.deepEqual(JSON.parse(params.get('sort')), { username: 1 });
    await page.waitForFunction(() => document.querySelectorAll('tr[data-user]').length > 1);
    const users = await page.locator('tr[data-user]').evaluateAll((rows) => rows.map((r) => r.dataset.user));
    assert.deepEqual(users, [...users].sort(), 'sorted by username');
    assert.equal(await page.locator('.pager .muted').textContent(), `1–${users.length} of ${users.length}`);
    assert.equal(await page.getByRole('button', { name: 'Next' }).isDisabled(), true, 'one page');
    await capture(page, '03c-users-list');
  });

  await step('users: a personal access token is shown once, works, and is revoked', async () => {
    const card = page.locator('form[aria-labelledby="pat-title"]');
    await card.getByLabel('New token name').fill('e2e-script');
    await card.getByRole('button', { name: 'Create token' }).click();
    const secret = await card.getByTestId('secret').inputValue();
    const s = JSON.parse(await page.evaluate(() => sessionStorage.getItem('inquiryd.console.session')));
    const pat = [s.userId, secret];
    assert.equal((await api('GET', '/api/v1/me', { auth: pat })).status, 200);
    const item = card.locator('li', { hasText: 'e2e-script' });
    await item.waitFor();
    assert.ok((await item.textContent()).includes(`…${secret.slice(-6)}`), 'listed by its last six characters');
    await item.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await item.waitFor({ state: 'detached' });
    assert.equal((await api('GET', '/api/v1/me', { auth: pat })).status, 401, 'the revoked token stops working');
  });

  // ---------------------------------------------------------------- plugins
  await step('plugins page: every file with its state', async () => {
    await page.getByRole('link', { name: 'Plugins' }).click();
    const row = page.locator(`tr[data-plugin="${PLUGIN}"]`);
    await row.waitFor();
    assert.equal(await row.getByTestId('state').textContent(), 'disabled');
    await capture(page, '04-plugins');
  });

  let original;
  await step('editor: a typo is reported at its line, and the fix validates', async () => {
    await page.getByRole('link', { name: PLUGIN }).click();
    const editor = page.getByLabel('Plugin file (JSON)');
    await editor.waitFor();
    await page.getByTestId('verdict').getByText('valid').waitFor();
    original = await editor.inputValue();
    const lines = original.split('\n');
    const typoLine = lines.findIndex((l) => l.includes('"op": "mask"')) + 1;
    assert.ok(typoLine > 0, 'the plugin masks something');
    await editor.fill(original.replace('"op": "mask"', '"op": "maks"'));
    const problem = page.locator(`[data-testid="problems"] li[data-line="${typoLine}"]`);
    await problem.waitFor();
    assert.match(await problem.textContent(), /maks/);
    assert.match(await problem.textContent(), new RegExp(`Line ${typoLine}, column`));
    assert.equal(await page.locator('.gutter .err').textContent(), `${typoLine}\n`);
    // the marked number keeps its line: the next number starts below it, not beside it
    const [errBottom, nextTop] = await page.locator('.gutter .err').evaluate((el) => [el.getBoundingClientRect().bottom, el.nextElementSibling.getBoundingClientRect().top]);
    assert.ok(nextTop >= errBottom - 1, `line ${typoLine + 1}'s number sits on its own line (${nextTop} < ${errBottom})`);
    await capture(page, '05-editor-error');
    // a syntax error too: a missing comma is reported where the parser stops
    await editor.fill(original.replace('"priority": 20,', '"priority": 20'));
    const syntax = page.getByTestId('problems').locator('li', { hasText: 'expected' });
    await syntax.waitFor();
    assert.match(await syntax.textContent(), /^Line \d+, column \d+: /);
    // the fix: valid again, and enabled
    await editor.fill(original.replace('"enabled": false', '"enabled": true'));
    await page.getByTestId('verdict').getByText('enabled').waitFor();
    assert.equal(await page.locator('[data-testid="problems"] li').count(), 0);
  });

  const previewAs = async (role) => {
    const pane = page.locator('.preview-pane');
    await pane.getByLabel('Room').fill(ROOM);
    for (const box of await pane.locator('input[data-role]').all()) {
      await box.setChecked((await box.getAttribute('data-role')) === role);
    }
    await pane.getByTestId('preview').click();
    await pane.getByTestId('draft').locator('[data-pointer="/v/username"]').waitFor();
    const draft = await pane.getByTestId('draft').locator('[data-pointer="/v/username"]').textContent();
    const saved = await pane.getByTestId('saved').locator('[data-pointer="/v/username"]').textContent();
    const cls = await pane.getByTestId('draft').locator('[data-pointer="/v/username"]').getAttribute('class');
    return { draft, saved, cls };
  };
  await step('preview: the draft masks the visitor for an agent and not for a manager', async () => {
    const agent = await previewAs('livechat-agent');
    assert.match(agent.draft, /"gu\*+"/, `masked for an agent: ${agent.draft}`);
    assert.match(agent.cls, /changed/, 'the masked field is highlighted');
    assert.match(agent.saved, /"guest-51"/, 'the saved (disabled) plugin does not mask');
    await capture(page, '06-editor-preview');
    const manager = await previewAs('livechat-manager');
    assert.match(manager.draft, /"guest-51"/, `clear for a manager: ${manager.draft}`);
  });

  await step('save: the live endpoint changes within a second', async () => {
    const before = await getOne(demo);
    assert.equal(before.body.inquiry.v.username, 'guest-51');
    const t0 = Date.now();
    await page.getByTestId('save').click();
    let after;
    for (;;) {
      after = await getOne(demo);
      if (after.body && after.body.inquiry && after.body.inquiry.v.username !== 'guest-51') break;
      if (Date.now() - t0 > 5000) break;
    }
    const ms = Date.now() - t0;
    assert.match(after.body.inquiry.v.username, /^gu\*+$/);
    assert.ok(ms < 1000, `live within a second (took ${ms} ms)`);
    console.log(`     saved → live endpoint masked in ${ms} ms`);
    await page.getByText(/Saved .* in force now/).waitFor();
    assert.equal(readFileSync(join(PLUGINS_DIR, PLUGIN), 'utf8'), original.replace('"enabled": false', '"enabled": true'));
  });

  await step('preview page: as a user, with the plugins in force', async () => {
    await page.getByRole('link', { name: 'Preview' }).click();
    await page.getByRole('heading', { name: 'Preview', level: 1 }).waitFor();
    // the room picker finds the room by its inquiry's name
    await page.getByLabel('Room').fill('kook');
    await page.locator(`datalist option[value="${ROOM}"]`).waitFor({ state: 'attached' });
    await page.getByLabel('Room').fill(ROOM);
    await page.getByLabel('A user').check();
    await page.locator('input[placeholder="demo.agent"]').fill('demo.agent');
    await page.getByTestId('preview').click();
    const field = page.getByTestId('saved').locator('[data-pointer="/v/username"]');
    await field.waitFor();
    assert.match(await field.textContent(), /"gu\*+"/);
    await capture(page, '07-preview');
  });

  // ---------------------------------------------------------------- audit
  await step('audit page: shown to an admin', async () => {
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('heading', { name: 'Audit trail' }).waitFor();
    await page.waitForSelector('.table-wrap table, .table-wrap .notice, .table-wrap p');
    await capture(page, '08-audit');
  });
  await step('audit: the plugin save is the newest entry; filters by kind, actor and time', async () => {
    const rows = page.locator('.table-wrap table tbody tr');
    const cells = (i) => rows.nth(i).locator('td').allTextContents();
    const filtered = (pred) => page.waitForResponse((r) => r.url().includes('/api/v1/inquiryd/audit.list') && pred(new URL(r.url()).searchParams));
    // newest first: the save, with only the watcher's applying of it (plugin.applied) after it
    const shown = await rows.evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(1, 4).map((td) => td.textContent)));
    const save = shown.findIndex(([, kind]) => kind === 'plugin.save');
    assert.ok(save >= 0, `a plugin.save is listed: ${JSON.stringify(shown.slice(0, 5))}`);
    assert.deepEqual(shown[save], [env('ADMIN_USER'), 'plugin.save', PLUGIN]);
    for (const entry of shown.slice(0, save)) assert.deepEqual(entry, ['watcher', 'plugin.applied', PLUGIN], 'only the watcher after the save');
    const [res] = await Promise.all([filtered((p) => p.get('kind') === 'plugin.save'), page.getByLabel('Kind').fill('plugin.save')]);
    assert.deepEqual(Object.fromEntries(new URL(res.url()).searchParams), { count: '50', offset: '0', kind: 'plugin.save' });
    await page.waitForFunction(() => [...document.querySelectorAll('.table-wrap tbody td:nth-child(3)')].every((td) => td.textContent === 'plugin.save'));
    const [, actor, kind, subject] = await cells(0);
    assert.deepEqual([actor, kind, subject], [env('ADMIN_USER'), 'plugin.save', PLUGIN]);
    await capture(page, '08b-audit-filtered');
    // the watcher's entries for the same file
    await Promise.all([filtered((p) => !p.has('kind')), page.getByLabel('Kind').fill('')]);
    await Promise.all([filtered((p) => p.get('actor') === 'watcher'), page.getByLabel('Actor').fill('watcher')]);
    await page.waitForFunction(() => { const a = [...document.querySelectorAll('.table-wrap tbody td:nth-child(2)')]; return a.length > 0 && a.every((td) => td.textContent === 'watcher'); });
    assert.ok((await page.locator('.table-wrap tbody td:nth-child(4)').allTextContents()).includes(PLUGIN), 'the watcher applied the saved file');
    // since a minute from now: nothing yet
    const later = new Date(Date.now() + 60_000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await Promise.all([filtered((p) => p.has('since')), page.getByLabel('Since').fill(later)]);
    await page.getByText('No entries match.').waitFor();
    await page.getByLabel('Since').fill('');
    await page.getByLabel('Actor').fill('');
  });

  // ---------------------------------------------------------------- session
  await step('expired token: back to sign-in, and the edit was not saved', async () => {
    await page.goto(`${BASE}/admin#/plugins/${PLUGIN}`);
    const editor = page.getByLabel('Plugin file (JSON)');
    await page.getByTestId('verdict').getByText('valid').waitFor();
    const onDisk = readFileSync(join(PLUGINS_DIR, PLUGIN), 'utf8');
    // the edit's own (debounced) validation answers before the token ends, so that the save,
    // not a late validation, is what meets the 401 (on a loaded machine it could be either)
    const validated = page.waitForResponse((r) => r.url().includes('/plugins.validate'));
    await editor.fill(onDisk.replace('"priority": 20', '"priority": 21'));
    await validated;
    // the token ends behind the page's back (as expiry or revocation would)
    const s = JSON.parse(await page.evaluate(() => sessionStorage.getItem('inquiryd.console.session')));
    assert.equal((await api('POST', '/api/v1/logout', { auth: [s.userId, s.authToken], body: {} })).status, 200);
    await page.getByTestId('save').click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByText(/session has expired/).waitFor();
    assert.equal(readFileSync(join(PLUGINS_DIR, PLUGIN), 'utf8'), onDisk, 'nothing written');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('inquiryd.console.session')), null);
  });

  await step('sign out: calls logout, the token stops working', async () => {
    await page.getByLabel('Username').fill(env('ADMIN_USER'));
    await page.getByLabel('Password').fill(env('ADMIN_PASSWORD'));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('username').waitFor();
    const s = JSON.parse(await page.evaluate(() => sessionStorage.getItem('inquiryd.console.session')));
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    assert.equal((await api('GET', '/api/v1/me', { auth: [s.userId, s.authToken] })).status, 401);
  });

  await step('an agent sees no admin page, and the routes behind them refuse it', async () => {
    await page.getByLabel('Username').fill(env('AGENT_USER'));
    await page.getByLabel('Password').fill(env('AGENT_PASSWORD'));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('username').waitFor();
    await page.getByText('Your account holds none of the permissions').waitFor();
    assert.equal(await page.locator('#nav a').count(), 0);
    await capture(page, '09-no-access');
    // a page's address typed in shows nothing either
    await page.goto(`${BASE}/admin#/plugins`);
    await page.getByRole('heading', { name: 'Nothing here for you' }).waitFor();
    const s = JSON.parse(await page.evaluate(() => sessionStorage.getItem('inquiryd.console.session')));
    const agent = [s.userId, s.authToken];
    assert.equal((await api('GET', '/api/v1/inquiryd/plugins.list', { auth: agent })).status, 403);
    assert.equal((await api('POST', '/api/v1/permissions.addRole', { auth: agent, body: { permissionId: 'manage-apps', role: 'livechat-agent' } })).status, 403);
  });

  await step('the demo agent (token only) sees no admin page', async () => {
    await page.evaluate(([userId, authToken]) => {
      sessionStorage.setItem('inquiryd.console.session', JSON.stringify({ userId, authToken, username: 'demo.agent' }));
    }, demo);
    await page.goto(`${BASE}/admin#/permissions`);
    await page.reload();
    await page.getByTestId('username').getByText('demo.agent').waitFor();
    await page.getByRole('heading', { name: 'Nothing here for you' }).waitFor();
    assert.equal(await page.locator('#nav a').count(), 0);
    assert.equal((await api('POST', '/api/v1/permissions.removeRole', { auth: demo, body: { permissionId: 'view-l-room', role: 'admin' } })).status, 403);
    assert.equal((await api('GET', '/api/v1/inquiryd/audit.list', { auth: demo })).status, 403);
    assert.equal((await api('GET', '/api/v1/users.list', { auth: demo })).status, 403);
  });

  await step('pages follow the permissions: manage-apps given to livechat-agent shows Plugins and Preview', async () => {
    const login = await api('POST', '/api/v1/login', { body: { user: env('ADMIN_USER'), password: env('ADMIN_PASSWORD') } });
    const admin = [login.body.data.userId, login.body.data.authToken];
    const change = (route) => api('POST', `/api/v1/permissions.${route}`, { auth: admin, body: { permissionId: 'manage-apps', role: 'livechat-agent' } });
    assert.equal((await change('addRole')).status, 200);
    try {
      // the next navigation reads the permissions again
      await page.goto(`${BASE}/admin#/plugins`);
      await page.getByRole('heading', { name: 'Plugins', level: 1 }).waitFor();
      assert.deepEqual(await page.locator('#nav a').allTextContents(), ['Plugins', 'Preview']);
    } finally {
      assert.equal((await change('removeRole')).status, 200);
    }
    await page.goto(`${BASE}/admin#/preview`);
    await page.getByRole('heading', { name: 'Nothing here for you' }).waitFor();
    assert.equal(await page.locator('#nav a').count(), 0);
  });
} catch (err) {
  console.error(`FAILED: ${err.stack || err}`);
  exitCode = 1;
} finally {
  await browser.close();
}
for (const p of problems) console.error(`problem: ${p}`);
if (problems.length) exitCode = 1;
console.log(`console e2e: ${passed} steps ok, ${exitCode ? "FAILED" : "no failure"}`);
process.exit(exitCode);
