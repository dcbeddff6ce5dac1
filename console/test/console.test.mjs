// The console in a real browser against a real server: sign in as admin, create tenants, a
// namespace and a key, sign in with that key, store and recall a memory, get a 403 for
// another namespace, draw the graph, read the live view, find an orphan, delete. Every page
// is checked with axe-core and photographed; the main flow is driven by the keyboard.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test as nodeTest } from 'node:test';
import { axe, launchBrowser, repo, startServer } from './harness.mjs';

// Screenshots go to docs/console with SCREENSHOTS=1 (make console-screenshots), else to the
// target dir so a test run leaves the work tree alone.
const shots = process.env.SCREENSHOTS
  ? join(repo, 'docs', 'console')
  : join(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'), 'console-screenshots');
mkdirSync(shots, { recursive: true });

let server;
let browser;
let page;
const outside = [];
const cspViolations = [];
const pageErrors = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  // Chromium now and then refuses the clipboard grant ("can't be granted in current context");
  // then the copy button is checked without reading the clipboard back.
  clipboard = await grantClipboard(browser.context, server.url);
  if (clipboard !== true) console.log(`# clipboard grant refused for ${server.url}: ${clipboard}`);
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.on('request', (r) => {
    if (!r.url().startsWith(server.url) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) outside.push(r.url());
  });
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
});

async function grantClipboard(context, origin) {
  let error;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
      return true;
    } catch (e) {
      error = e;
      await new Promise((ok) => setTimeout(ok, 250));
    }
  }
  return error;
}

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A screenshot of the window, or with `whole` of the whole page (the window made as tall as
 * the page for the shot, so the sidebar still fills its height). */
async function shot(name, whole = false) {
  await page.mouse.move(0, 0);
  const size = page.viewportSize();
  if (whole) {
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    await page.setViewportSize({ width: size.width, height: Math.min(4000, Math.max(size.height, height)) });
  }
  await page.screenshot({ path: join(shots, `${name}.png`) });
  if (whole) await page.setViewportSize(size);
}

async function accessible(where) {
  const violations = await axe(page);
  assert.deepEqual(violations, [], `accessibility violations on ${where}: ${JSON.stringify(violations, null, 2)}`);
}

async function go(title) {
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: title, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: title }).waitFor();
}

async function signIn(key) {
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

async function signOut() {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
}

/** Fills and submits a dialog's form through its labelled controls. */
async function inDialog(title) {
  const d = page.getByRole('dialog', { name: title });
  await d.waitFor();
  return d;
}

let keySecret;
let clipboard;
let tenantAdminSecret;

// The steps build on each other: after a failure the rest are skipped, not failed again.
let broken = false;
function test(name, fn) {
  nodeTest(name, async (t) => {
    if (broken) return t.skip('an earlier step failed');
    try {
      await fn();
    } catch (e) {
      broken = true;
      await shot(`failed-${name.split(':')[0].replace(/\W+/g, '-')}`).catch(() => {});
      throw e;
    }
  });
}

test('the page is served with a strict Content-Security-Policy and signs in by keyboard', async () => {
  const resp = await page.goto(`${server.url}/console/`);
  assert.equal(resp.status(), 200);
  const csp = resp.headers()['content-security-policy'];
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self';/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /frame-ancestors 'none'/);
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
  await accessible('the sign-in page');
  await shot('signin');

  // A wrong key is refused with the server's 401.
  await page.getByLabel('API key').fill('msk_nope_nope');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();

  // Keyboard only, from a fresh load: Tab to the key, type it, Tab to the button, Enter.
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('type')), 'password');
  await page.keyboard.type(server.adminKey);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Sign in');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Tenants' }).waitFor();
  assert.equal(await page.getByTestId('whoami').textContent(), 'Administrator');
  // The key is in this tab's session storage, never in a cookie.
  assert.equal(await page.evaluate(() => document.cookie), '');
  assert.equal((await browser.context.cookies()).length, 0);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('memsilo.console.key')), server.adminKey);
});

test('tenants: create a parent, a child and another tenant; edit quotas; suspend and resume', async () => {
  const create = async (name, parent) => {
    await page.getByRole('button', { name: 'New tenant' }).click();
    const d = await inDialog('New tenant');
    await d.getByLabel('Name').fill(name);
    if (parent) await d.getByLabel('Parent tenant').selectOption({ label: parent });
    await d.getByLabel('QPS limit').fill('50');
    await d.getByRole('button', { name: 'Create tenant' }).click();
    await page.getByRole('status').filter({ hasText: `Tenant ${name} created.` }).waitFor();
  };
  await create('acme_corp');
  await create('globex');
  await create('acme_eu', 'acme_corp');
  await page.locator('tr[data-tenant=acme_eu]').waitFor();
  const names = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-tenant')));
  assert.deepEqual(names, ['acme_corp', 'acme_eu', 'globex'], 'the child is listed under its parent');
  await page.locator('tr[data-tenant=acme_eu]').getByText('(child of acme_corp)').waitFor({ state: 'attached' });
  const row = page.locator('tr[data-tenant=acme_corp]');
  assert.equal(await row.locator('.badge').textContent(), 'active');
  assert.equal(await row.getByRole('meter', { name: 'acme_corp storage' }).getAttribute('aria-valuemax'), String(10 * 1024 ** 3));

  await page.getByRole('button', { name: 'Edit quotas of acme_corp' }).click();
  const d = await inDialog('Quotas of acme_corp');
  await d.getByLabel('QPS limit').fill('75');
  await d.getByLabel('Max namespaces').fill('5');
  await d.getByRole('button', { name: 'Save quotas' }).click();
  await row.getByText('75/s').waitFor();
  assert.equal(await row.getByRole('meter', { name: 'acme_corp namespaces' }).getAttribute('aria-valuemax'), '5');

  await page.getByRole('button', { name: 'Suspend acme_eu' }).click();
  await page.locator('tr[data-tenant=acme_eu] .badge').filter({ hasText: 'suspended' }).waitFor();
  await page.getByRole('button', { name: 'Resume acme_eu' }).click();
  await page.locator('tr[data-tenant=acme_eu] .badge').filter({ hasText: 'active' }).waitFor();
  await accessible('the tenants page');
  await page.getByRole('button', { name: 'New tenant' }).click();
  await inDialog('New tenant');
  await accessible('the new-tenant dialog');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'hidden' });
});

test('namespaces: create one by keyboard, another with the mouse, edit a policy', async () => {
  // Keyboard: from the nav link to the dialog's submit button.
  const link = page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Namespaces' });
  await link.focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Namespaces' }).waitFor();
  await page.getByRole('button', { name: 'New namespace' }).focus();
  await page.keyboard.press('Enter');
  const d = await inDialog('New namespace');
  assert.equal(await page.evaluate(() => document.activeElement?.id), await d.getByLabel('Namespace name').getAttribute('id'));
  await page.keyboard.type('acme-main');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), await d.getByLabel('Owning tenant').getAttribute('id'));
  await d.getByLabel('Owning tenant').selectOption({ label: 'acme_corp' });
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Create namespace');
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: 'Namespace acme-main created.' }).waitFor();

  await page.getByRole('button', { name: 'New namespace' }).click();
  const d2 = await inDialog('New namespace');
  await d2.getByLabel('Namespace name').fill('globex-main');
  await d2.getByLabel('Owning tenant').selectOption({ label: 'globex' });
  await d2.getByRole('button', { name: 'Create namespace' }).click();
  await page.locator('tr[data-namespace=globex-main]').waitFor();

  await page.getByRole('button', { name: 'Edit policy of acme-main' }).click();
  const p = await inDialog('Policy of acme-main');
  await p.getByLabel('Decay rate').fill('0.01');
  await p.getByLabel('Default TTL (seconds)').fill('86400');
  await p.getByRole('button', { name: 'Save policy' }).click();
  const row = page.locator('tr[data-namespace=acme-main]');
  await row.getByText('decay 0.01').waitFor();
  await row.getByText('ttl 86400 s').waitFor();
  assert.equal(await row.locator('td').first().textContent(), 'acme_corp');
  await accessible('the namespaces page');
});

test('members and keys: add and remove a member; a key shown once, copied, listed by prefix, rotated, revoked', async () => {
  await go('Members & keys');
  await page.getByLabel('Tenant', { exact: true }).selectOption({ label: 'acme_corp' });
  await page.getByRole('heading', { name: 'Members of acme_corp' }).waitFor();
  await page.getByLabel('User').fill('ana@acme.test');
  await page.getByLabel('Role', { exact: true }).selectOption('editor');
  await page.getByRole('button', { name: 'Add member' }).click();
  await page.getByRole('rowheader', { name: 'ana@acme.test' }).waitFor();
  await page.getByLabel('User').fill('olga@acme.test');
  await page.getByLabel('Role', { exact: true }).selectOption('admin');
  await page.getByRole('button', { name: 'Add member' }).click();
  await page.getByRole('rowheader', { name: 'olga@acme.test' }).waitFor();

  await page.getByRole('button', { name: 'New key' }).click();
  let d = await inDialog('New API key');
  await d.getByLabel('Key name').fill('acme-backend');
  await d.getByLabel('Access to acme-main').selectOption('write');
  await d.getByRole('button', { name: 'Create key' }).click();
  d = await inDialog('Key acme-backend');
  await d.getByText('It is shown only once').waitFor();
  keySecret = await d.getByLabel('Secret key').inputValue();
  assert.match(keySecret, /^msk_[0-9a-f]+_/);
  await d.getByRole('button', { name: 'Copy key' }).click();
  if (clipboard === true) {
    await d.getByText('Copied to the clipboard.').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), keySecret);
  } else {
    await d.getByText(/^(Copied to the clipboard\.|Copy failed: select the key and copy it by hand\.)$/).waitFor();
  }
  await accessible('the new key dialog');
  await shot('key-created');
  await d.getByRole('button', { name: 'I have stored it' }).click();
  assert.equal(await page.content().then((html) => html.includes(keySecret)), false, 'the secret is gone from the page');

  // A key issued to the tenant admin olga.
  await page.getByRole('button', { name: 'New key' }).click();
  d = await inDialog('New API key');
  await d.getByLabel('Key name').fill('olga-console');
  await d.getByLabel("Issued to a member (the member's role decides)").check();
  await d.getByLabel('Member', { exact: true }).selectOption({ label: 'olga@acme.test (admin)' });
  await d.getByRole('button', { name: 'Create key' }).click();
  d = await inDialog('Key olga-console');
  tenantAdminSecret = await d.getByLabel('Secret key').inputValue();
  await d.getByRole('button', { name: 'I have stored it' }).click();
  const prefix = keySecret.split('_').slice(0, 2).join('_');
  await page.locator('tr[data-key=acme-backend]').getByText(prefix).waitFor();

  // A second key: rotate it (a new secret, shown once) and revoke it.
  await page.getByRole('button', { name: 'New key' }).click();
  d = await inDialog('New API key');
  await d.getByLabel('Key name').fill('temp-reader');
  await d.getByLabel('Access to acme-main').selectOption('read');
  await d.getByRole('button', { name: 'Create key' }).click();
  d = await inDialog('Key temp-reader');
  const first = await d.getByLabel('Secret key').inputValue();
  await d.getByRole('button', { name: 'I have stored it' }).click();
  await page.getByRole('button', { name: 'Rotate temp-reader' }).click();
  d = await inDialog('Key temp-reader');
  const rotated = await d.getByLabel('Secret key').inputValue();
  assert.notEqual(rotated, first);
  await d.getByRole('button', { name: 'I have stored it' }).click();
  const old = await page.evaluate((k) => fetch('/v1/whoami', { headers: { Authorization: `Bearer ${k}` } }).then((r) => r.status), first);
  assert.equal(old, 401, 'the rotated-out secret no longer works');

  // List by prefix: only the matching key stays.
  await page.getByLabel('Filter by prefix or name').fill(prefix);
  assert.deepEqual(await page.locator('tr[data-key]').evaluateAll((r) => r.map((x) => x.getAttribute('data-key'))), ['acme-backend']);
  await page.getByLabel('Filter by prefix or name').fill('');

  await page.getByRole('button', { name: 'Revoke temp-reader' }).click();
  d = await inDialog('Revoke key temp-reader');
  await d.getByLabel('Type temp-reader to confirm').fill('temp-reader');
  await d.getByRole('button', { name: 'Revoke key' }).click();
  await page.getByRole('status').filter({ hasText: 'Key temp-reader revoked.' }).waitFor();
  await page.locator('tr[data-key=temp-reader]').waitFor({ state: 'detached' });
  const revoked = await page.evaluate((k) => fetch('/v1/whoami', { headers: { Authorization: `Bearer ${k}` } }).then((r) => r.status), rotated);
  assert.equal(revoked, 401, 'a revoked key no longer works');
  await accessible('the members and keys page');
  await shot('members-keys');

  await page.getByRole('button', { name: 'Remove ana@acme.test' }).click();
  d = await inDialog('Remove member ana@acme.test');
  await d.getByLabel('Type ana@acme.test to confirm').fill('ana@acme.test');
  await d.getByRole('button', { name: 'Remove member' }).click();
  await page.getByRole('rowheader', { name: 'ana@acme.test' }).waitFor({ state: 'detached' });
  await page.getByRole('rowheader', { name: 'olga@acme.test' }).waitFor();
});

test('signed in with the namespace key: only its namespace; store and recall; 403 for another namespace', async () => {
  await signOut();
  await signIn(keySecret);
  assert.match(await page.getByTestId('whoami').textContent(), /^Namespace key.* · 1 namespace$/);
  const nav = page.getByRole('navigation', { name: 'Console' });
  assert.equal(await nav.getByRole('link', { name: 'Tenants' }).count(), 0);
  assert.equal(await nav.getByRole('link', { name: 'Members & keys' }).count(), 0);
  assert.equal(await nav.getByRole('link', { name: 'Live' }).count(), 0, '/metrics is for the admin');
  await page.getByRole('heading', { level: 1, name: 'Namespaces' }).waitFor();
  await page.locator('tr[data-namespace=acme-main]').waitFor();
  assert.equal(await page.locator('tr[data-namespace]').count(), 1, 'a namespace key sees its namespace only');
  assert.equal(await page.getByRole('button', { name: 'New namespace' }).count(), 0);

  await go('Memories');
  assert.equal(await page.getByLabel('Namespace').inputValue(), 'acme-main');
  const store = async (content, tags) => {
    await page.getByLabel('Content').fill(content);
    await page.getByRole('textbox', { name: 'Tags', exact: true }).fill(tags);
    await page.getByRole('button', { name: 'Store memory' }).click();
    await page.getByRole('status').filter({ hasText: 'Stored in acme-main.' }).waitFor();
    await page.getByRole('button', { name: 'Dismiss message' }).click();
  };
  await store('Acme Q3 roadmap: launch Omega in September', 'roadmap, q3');
  await store('The cafeteria serves pasta on Fridays', 'food');
  await store('Omega launch checklist: docs, pricing page, press release', 'roadmap');
  await page.getByLabel('Query').fill('roadmap Omega launch');
  await page.getByLabel('Top k').fill('3');
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  const hits = page.getByRole('list', { name: 'Recalled memories' }).locator('li.hit');
  await hits.first().waitFor();
  assert.match(await hits.first().locator('.hit-content').textContent(), /Omega/);
  const scores = await hits.locator('.score').allTextContents();
  assert.ok(scores.length >= 2 && scores.every((s) => /^\d\.\d{3}$/.test(s)), `scores shown: ${scores}`);
  assert.ok(Number(scores[0]) >= Number(scores[1]), 'best first');
  // Filter by tag: only the roadmap memories.
  await page.getByLabel('Only tags').fill('food');
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  await hits.first().filter({ hasText: 'pasta' }).waitFor();
  assert.equal(await hits.count(), 1);
  await page.getByLabel('Only tags').fill('');
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  await hits.nth(1).waitFor();
  await accessible('the memories page');

  // The playground's filter (the filter language as JSON), top k, and mode.
  const alert = page.getByRole('alert');
  await page.getByLabel('Filter (JSON)', { exact: true }).fill('{"tags": {"$contains": "food"}}');
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  await hits.first().filter({ hasText: 'pasta' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('li.hit').length === 1);
  assert.equal(await hits.count(), 1, 'only the food memory matches the filter');
  await page.getByLabel('Filter (JSON)', { exact: true }).fill('{"tags": {"$contains": ');
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  await alert.filter({ hasText: 'The filter is not valid JSON' }).waitFor();
  assert.equal(await hits.count(), 0, 'no stale hits under an error');
  // The server's 400 for a filter it does not understand is shown with its message.
  await page.getByLabel('Filter (JSON)', { exact: true }).fill('{"tags": {"$near": "food"}}');
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  const refused = alert.filter({ hasText: 'The server refused the request (check the filter): 400 invalid_argument' });
  await refused.waitFor();
  assert.match(await refused.textContent(), /\$near/, 'the message names the unknown operator');
  await accessible('the memories page with a filter error');
  await page.getByLabel('Filter (JSON)', { exact: true }).fill('{"tags": {"$contains": "roadmap"}}');
  await page.getByLabel('Top k').fill('1');
  await page.getByLabel('Mode').selectOption('keyword');
  await page.getByLabel('Query').fill('checklist');
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  await hits.first().filter({ hasText: 'Omega launch checklist' }).waitFor();
  assert.equal(await hits.count(), 1, 'top k 1');
  assert.match(await hits.first().textContent(), /keyword \d\.\d{3}/, 'keyword recall shows its BM25 score');
  await page.getByLabel('Mode').selectOption('vector');
  await page.getByLabel('Query').fill('roadmap Omega launch');
  await page.getByLabel('Top k').fill('5');
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll('li.hit').length === 2);
  assert.deepEqual(
    (await hits.locator('.hit-content').allTextContents()).map((t) => /Omega/.test(t)),
    [true, true],
    'vector recall with the roadmap filter: the two roadmap memories',
  );
  await page.getByLabel('Filter (JSON)', { exact: true }).fill('');
  await page.getByLabel('Mode').selectOption('');

  await page.getByRole('button', { name: 'Edit: Acme Q3 roadmap: launch Omega in Septe' }).click();
  const e = await inDialog('Edit memory');
  await e.getByLabel('Memory importance').fill('0.95');
  await e.getByLabel('Memory tags').fill('roadmap, q3, launch');
  await accessible('the edit memory dialog');
  await e.getByRole('button', { name: 'Save memory' }).click();
  const edited = hits.filter({ hasText: 'launch Omega in September' });
  await edited.getByText('importance 0.95').waitFor();
  await edited.getByRole('listitem').filter({ hasText: 'launch' }).waitFor();

  // Browse with the list cursor, a page at a time; then a filter, counted.
  await store('Pricing page draft for Omega', 'roadmap');
  await store('Press release approved by legal', 'roadmap');
  await store('Docs site moves to the new theme', 'docs');
  await page.getByLabel('Page size').selectOption('5');
  await page.getByRole('button', { name: 'List memories' }).click();
  const rows = page.getByRole('table', { name: 'Memories of acme-main, by created at, newest first' }).locator('tbody tr');
  await rows.nth(4).waitFor();
  assert.equal(await rows.count(), 5);
  assert.match(await rows.first().textContent(), /Docs site moves/, 'newest first');
  assert.equal(await page.getByTestId('browse-count').textContent(), '6 memories in all, 5 shown');
  await page.getByRole('button', { name: 'Load more' }).click();
  await rows.nth(5).waitFor();
  assert.equal(await rows.count(), 6, 'the cursor brought the last one');
  assert.equal(await page.getByRole('button', { name: 'Load more' }).count(), 0);
  assert.match(await rows.last().textContent(), /Acme Q3 roadmap/, 'the oldest last');
  await page.getByLabel('Browse filter (JSON)').fill('{"tags": {"$contains": "roadmap"}}');
  await page.getByLabel('Order by').selectOption('importance');
  await page.getByRole('button', { name: 'Reload' }).click();
  const byImportance = page.getByRole('table', { name: 'Memories of acme-main, by importance, highest first' }).locator('tbody tr');
  await byImportance.first().waitFor();
  assert.equal(await page.getByTestId('browse-count').textContent(), '4 memories match the filter, 4 shown');
  assert.match(await byImportance.first().textContent(), /Acme Q3 roadmap/, 'importance 0.95 first');
  await page.getByLabel('Browse filter (JSON)').fill('{"importance": {"$between": 1}}');
  await page.getByRole('button', { name: 'Reload' }).click();
  await alert.filter({ hasText: 'The server refused the request (check the filter): 400 invalid_argument' }).waitFor();
  assert.equal(await page.getByTestId('browse-count').count(), 0, 'no stale count under an error');
  await page.getByLabel('Browse filter (JSON)').fill('');
  await page.getByLabel('Order by').selectOption('created_at');
  await page.getByRole('button', { name: 'List memories' }).click();
  await rows.nth(4).waitFor();

  // Export: every page of export_namespace, downloaded as JSON Lines.
  await page.getByRole('button', { name: 'Export acme-main' }).click();
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: /^Download acme-main\.jsonl/ }).click();
  const saved = await download;
  assert.equal(saved.suggestedFilename(), 'acme-main.jsonl');
  const lines = (await import('node:fs')).readFileSync(await saved.path(), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines[0].kind, 'namespace');
  const memories = lines.filter((l) => l.kind === 'memory');
  assert.equal(memories.length, 6, `every memory exported: ${JSON.stringify(lines.map((l) => l.kind))}`);
  assert.ok(memories.some((m) => JSON.stringify(m).includes('launch Omega in September')));
  await accessible('the memories page with browse and export');
  // The screenshot: a filtered recall above the first page of the browse.
  await page.getByLabel('Query').fill('roadmap Omega launch');
  await page.getByLabel('Filter (JSON)', { exact: true }).fill('{"tags": {"$contains": "roadmap"}}');
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll('li.hit').length === 4);
  await shot('memories', true);
  await page.getByLabel('Filter (JSON)', { exact: true }).fill('');

  for (const other of ['globex-main', 'no-such-namespace']) {
    await page.getByLabel('Namespace').fill(other);
    await page.getByRole('button', { name: 'Recall', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: `403 forbidden: Key not authorized for namespace ${other}` }).waitFor();
  }
  await page.getByLabel('Namespace').fill('acme-main');
});

test('graph: add entities and a relation, draw the neighbourhood, explore by click and by keyboard', async () => {
  await go('Graph');
  const entity = async (name, type) => {
    await page.getByLabel('Entity name').fill(name);
    await page.getByLabel('Entity type').fill(type);
    await page.getByRole('button', { name: 'Add entity' }).click();
    await page.getByRole('status').filter({ hasText: `Entity ${name} saved.` }).waitFor();
  };
  const relation = async (from, type, to) => {
    await page.getByLabel('From').fill(from);
    await page.getByLabel('Relation', { exact: true }).fill(type);
    await page.getByLabel('To', { exact: true }).fill(to);
    await page.getByRole('button', { name: 'Add relation' }).click();
    await page.getByRole('status').filter({ hasText: `${from} —${type}→ ${to} saved.` }).waitFor();
  };
  await entity('Alice', 'person');
  await entity('Bob', 'person');
  await entity('Acme', 'org');
  await entity('Omega', 'product');
  await entity('Berlin', 'place');
  await relation('Alice', 'works_at', 'Acme');
  await relation('Bob', 'works_at', 'Acme');
  await relation('Acme', 'builds', 'Omega');
  await relation('Acme', 'based_in', 'Berlin');
  await relation('Alice', 'manages', 'Bob');
  await page.getByLabel('Entity', { exact: true }).fill('Alice');
  await page.getByLabel('Depth').selectOption('1');
  await page.getByRole('button', { name: 'Show neighbourhood' }).click();
  const graph = page.getByRole('group', { name: /^Graph of Alice/ });
  await graph.waitFor();
  assert.deepEqual(
    (await graph.locator('g.node text').allTextContents()).sort(),
    ['Acme', 'Alice', 'Bob'],
    'depth 1 from Alice',
  );
  // Click a node: its own neighbourhood.
  await graph.getByRole('button', { name: /^Acme \(org\)/ }).click();
  const acme = page.getByRole('group', { name: /^Graph of Acme/ });
  await acme.waitFor();
  assert.deepEqual((await acme.locator('g.node text').allTextContents()).sort(), ['Acme', 'Alice', 'Berlin', 'Bob', 'Omega']);
  await page.getByRole('complementary', { name: 'Selected entity' }).getByRole('heading', { name: 'Acme' }).waitFor();
  // Keyboard: focus a node, Enter explores it.
  await acme.getByRole('button', { name: /^Omega \(product\)/ }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('group', { name: /^Graph of Omega/ }).waitFor();
  await page.getByLabel('Depth').selectOption('2');
  await page.getByLabel('Entity', { exact: true }).fill('Acme');
  await page.getByRole('button', { name: 'Show neighbourhood' }).click();
  const full = page.getByRole('group', { name: /^Graph of Acme: 5 entities, 5 relations/ });
  await full.waitFor();
  await shot('graph');
  // Drag a node: it moves and stays where it was dropped.
  const berlin = full.getByRole('button', { name: /^Berlin \(place\)/ });
  const before = await berlin.getAttribute('transform');
  const box = await berlin.locator('circle').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x - 120, box.y - 60, { steps: 5 });
  await page.mouse.up();
  assert.notEqual(await berlin.getAttribute('transform'), before, 'the dragged node moved');
  await page.getByRole('group', { name: /^Graph of Acme/ }).waitFor();
  await accessible('the graph page');
});

test('signed in as a tenant admin: its tenant, its members and keys, its namespaces only', async () => {
  await signOut();
  await signIn(tenantAdminSecret);
  assert.equal(await page.getByTestId('whoami').textContent(), 'Tenant admin of acme_corp');
  await page.getByRole('heading', { level: 1, name: 'Tenants' }).waitFor();
  await page.locator('tr[data-tenant=acme_corp]').waitFor();
  assert.equal(await page.locator('tr[data-tenant=globex]').count(), 0, 'no other tenant');
  assert.equal(await page.getByRole('button', { name: 'New tenant' }).count(), 0);
  assert.equal(await page.getByRole('button', { name: 'Suspend acme_corp' }).count(), 0);
  // Its own rate bucket, from the X-RateLimit-* headers of its requests.
  const qps = page.getByRole('meter', { name: 'acme_corp requests this second' });
  assert.equal(await qps.getAttribute('aria-valuemax'), '75');
  assert.ok(Number(await qps.getAttribute('aria-valuenow')) >= 1, 'this page\'s own requests are counted');
  await shot('tenant-admin');
  await go('Members & keys');
  await page.getByRole('heading', { name: 'Members of acme_corp' }).waitFor();
  assert.equal(await page.getByLabel('Tenant', { exact: true }).count(), 0, 'no tenant to choose');
  await page.locator('tr[data-key=acme-backend]').waitFor();
  await go('Namespaces');
  await page.locator('tr[data-namespace=acme-main]').waitFor();
  assert.equal(await page.locator('tr[data-namespace=globex-main]').count(), 0, 'not the other tenant\'s namespace');
  await accessible('the tenant admin\'s namespaces page');
});

test('live view as admin: request rate, latency percentiles, 4xx/5xx per route and per tenant from /metrics', async () => {
  await signOut();
  await signIn(server.adminKey);
  await go('Live');
  await page.getByRole('heading', { name: 'Requests and errors per route' }).waitFor();
  // Two scrapes make a rate; the 403s of the recall above are in the per-route chart.
  await page.waitForFunction(() => document.querySelector('svg.chart path.line') !== null, null, { timeout: 15_000 });
  const chart = page.getByRole('img', { name: 'Requests per route, split into 2xx, 4xx and 5xx' });
  await chart.getByText('/v1/memory/recall').waitFor();
  const errors = await page.locator('.stat').filter({ hasText: 'Errors (4xx / 5xx)' }).locator('.stat-value').textContent();
  assert.ok(Number(errors.split(' / ')[0]) >= 2, `4xx counted: ${errors}`);
  // Some traffic while the page watches, with acme_corp's namespace key (so it counts for the
  // tenant) and the admin key: the rate charts and the counters move.
  const traffic = page.evaluate(
    async ([tenantKey, adminKey]) => {
      for (let i = 0; i < 150; i++) {
        await fetch('/v1/namespaces', { headers: { Authorization: `Bearer ${tenantKey}` } });
        await fetch(`/v1/memory/recall?namespace=nope&query=x`, { headers: { Authorization: `Bearer ${tenantKey}` } });
        await fetch('/v1/namespaces', { headers: { Authorization: `Bearer ${adminKey}` } });
        await new Promise((r) => setTimeout(r, 60));
      }
    },
    [keySecret, server.adminKey],
  );
  await page.waitForFunction(
    () => Number(document.querySelector('.stat .stat-value')?.textContent) > 0,
    null,
    { timeout: 15_000 },
  );
  await page.waitForTimeout(6_000); // a few more scrapes, for a chart worth a screenshot
  // Per tenant (from memsilo_tenant_requests_total and its latency histogram): acme_corp's
  // requests and its 403s, its rate while the traffic runs, its latency percentiles.
  const perTenant = page.getByRole('img', { name: 'Requests per tenant, split into 2xx, 4xx and 5xx' });
  await perTenant.getByText('acme_corp').waitFor();
  assert.match(
    await perTenant.locator('text', { hasText: /^\d+ \(\d+\/0\)$/ }).first().textContent(),
    /^\d+ \((\d+)\/0\)$/,
    'the tenant row shows its 4xx',
  );
  await page.waitForFunction(
    () => Number(document.querySelector('tr[data-tenant-rate=acme_corp] td')?.textContent) > 0,
    null,
    { timeout: 15_000 },
  );
  const rates = page.getByRole('table', { name: 'Requests per second per tenant' });
  await rates.getByRole('img', { name: /^acme_corp: requests per second, peak \d/ }).waitFor();
  assert.ok(Number(await rates.getByRole('row', { name: /acme_corp/ }).locator('td').nth(1).textContent()) > 0, 'its 403s per second');
  const tenantLatency = page.getByRole('table', { name: 'Latency percentiles per tenant in milliseconds' });
  const tenantP50 = await tenantLatency.getByRole('row', { name: /acme_corp/ }).locator('td').first().textContent();
  assert.ok(Number(tenantP50) > 0, `p50 of acme_corp: ${tenantP50}`);
  assert.equal(await tenantLatency.getByRole('row', { name: /no tenant/ }).count(), 0, 'the admin key has no tenant series');
  const latency = page.getByRole('table', { name: 'Latency percentiles per route in milliseconds' });
  const p50 = await latency.getByRole('row', { name: /\/v1\/memory\/store/ }).locator('td').first().textContent();
  assert.ok(Number(p50) > 0, `p50 of store: ${p50}`);
  await accessible('the live page');
  await shot('live', true);
  await traffic;
});

test("orphans: a suspended tenant's namespace shows up; then delete with typed confirmation", async () => {
  await go('Tenants');
  const used = await page.getByRole('meter', { name: 'acme_corp storage' }).getAttribute('aria-valuenow');
  assert.ok(Number(used) > 0, `the memories stored count against acme_corp's storage: ${used}`);
  // QPS use as a bar, measured from /metrics while the page is open: acme_corp's own requests
  // plus its child acme_eu's (which count against the parent's limit too).
  const qps = page.getByRole('meter', { name: 'acme_corp requests per second' });
  const traffic = page.evaluate(async (k) => {
    for (let i = 0; i < 60; i++) {
      await fetch('/v1/namespaces', { headers: { Authorization: `Bearer ${k}` } });
      await new Promise((r) => setTimeout(r, 50));
    }
  }, keySecret);
  await qps.waitFor({ timeout: 10_000 });
  assert.equal(await qps.getAttribute('aria-valuemax'), '75');
  await page.waitForFunction(
    () => Number(document.querySelector('[role=meter][aria-label="acme_corp requests per second"]')?.getAttribute('aria-valuenow')) > 0,
    null,
    { timeout: 15_000 },
  );
  assert.equal(await page.getByRole('meter', { name: 'globex requests per second' }).getAttribute('aria-valuenow'), '0');
  assert.equal(
    await page.getByRole('meter', { name: 'acme_eu requests per second' }).getAttribute('aria-valuenow'),
    '0',
    "a parent's requests do not count against its child",
  );
  await accessible('the tenants page with QPS use');
  await shot('tenants');
  await traffic;
  await go('Namespaces');
  const count = Number(await page.locator('tr[data-namespace=acme-main] td').nth(1).textContent());
  assert.ok(count >= 3, `memory count: ${count}`);
  await shot('namespaces');
  await go('Tenants');
  await page.getByRole('button', { name: 'Suspend globex' }).click();
  await page.locator('tr[data-tenant=globex] .badge').filter({ hasText: 'suspended' }).waitFor();
  await go('Namespaces');
  await page.getByRole('button', { name: /^Orphans/ }).click();
  const orphan = page.locator('tr[data-namespace=globex-main]');
  await orphan.getByText('tenant globex is suspended').waitFor();
  assert.equal(await page.locator('tr[data-namespace]').count(), 1);
  await accessible('the orphan view');
  await shot('orphans');

  // A wrong name keeps the delete button disabled.
  await page.getByRole('button', { name: 'Delete globex-main' }).click();
  const d = await inDialog('Delete namespace globex-main');
  await d.getByLabel('Type globex-main to confirm').fill('globex');
  assert.equal(await d.getByRole('button', { name: 'Delete namespace' }).isDisabled(), true);
  await d.getByLabel('Type globex-main to confirm').fill('globex-main');
  await d.getByRole('button', { name: 'Delete namespace' }).click();
  await page.getByRole('status').filter({ hasText: 'Namespace globex-main deleted.' }).waitFor();
  await page.getByText('No orphaned namespaces.').waitFor();

  // A tenant with a child cannot go first: the server's 409 is shown.
  await go('Tenants');
  const del = async (name) => {
    await page.getByRole('button', { name: `Delete ${name}` }).click();
    const dd = await inDialog(`Delete tenant ${name}`);
    await dd.getByLabel(`Type ${name} to confirm`).fill(name);
    await dd.getByRole('button', { name: 'Delete tenant' }).click();
  };
  await del('acme_corp');
  await page.getByRole('alert').filter({ hasText: '409 conflict' }).waitFor();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  await del('acme_eu');
  await page.getByRole('status').filter({ hasText: 'Tenant acme_eu deleted.' }).waitFor();
  await del('acme_corp');
  await page.getByRole('status').filter({ hasText: 'Tenant acme_corp deleted.' }).waitFor();
  await page.locator('tr[data-tenant=acme_corp]').waitFor({ state: 'detached' });
  assert.deepEqual(await page.locator('tbody tr').evaluateAll((r) => r.map((x) => x.getAttribute('data-tenant'))), ['globex']);
  // Its key went with it.
  const status = await page.evaluate((k) => fetch('/v1/whoami', { headers: { Authorization: `Bearer ${k}` } }).then((r) => r.status), keySecret);
  assert.equal(status, 401);
});

test('no request left the server, no CSP violation, no script error', () => {
  assert.deepEqual(outside, []);
  assert.deepEqual(cspViolations, []);
  assert.deepEqual(pageErrors, []);
});
