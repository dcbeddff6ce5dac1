'use strict';
// The SaaS flow of the README, run in-process (open) and against a real server (connect):
// provision tenants, issue scoped keys, store and recall per tenant, refuse cross-tenant
// access, list and delete namespaces.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const memsilo = require('..');
const { tmpdir, startServer } = require('../test-support/kit.js');

async function saasFlow(admin) {
  const acmeTenant = await admin.createTenant('acme_corp', { quotas: { qpsLimit: 1000 } });
  const globexTenant = await admin.createTenant('globex_inc');
  assert.equal(acmeTenant.name, 'acme_corp');
  assert.equal(acmeTenant.quotas.qps_limit, 1000);
  assert.equal(globexTenant.status, 'active');

  const nsA = await admin.createNamespace('tenant-acme', { tenantId: acmeTenant.id });
  await admin.createNamespace('tenant-globex', { tenant_id: globexTenant.id });
  assert.equal(nsA.tenant_id, acmeTenant.id);

  const acmeKey = await admin.createKey('acme-backend', {
    namespaces: [['tenant-acme', 'write']],
    tenantId: acmeTenant.id,
  });
  const globexKey = await admin.createKey('globex-backend', {
    namespaces: [{ namespace: 'tenant-globex', access: 'write' }],
    tenant_id: globexTenant.id,
  });
  assert.match(acmeKey.key, /^msk_/);
  assert.deepEqual(acmeKey.namespaces, [{ namespace: 'tenant-acme', access: 'write' }]);

  const acme = await admin.scoped(acmeKey.key);
  const globex = await admin.scoped(globexKey.key);
  const who = await acme.whoami();
  assert.equal(who.principal, 'scoped');
  assert.equal(who.tenant_id, acmeTenant.id);

  const stored = await acme.storeMemory('tenant-acme', {
    content: 'Acme Q3 roadmap: launch Omega in September',
    importance: 0.9,
    tags: ['roadmap'],
    metadata: { source: 'planning' },
  });
  assert.equal(stored.namespace, 'tenant-acme');
  assert.deepEqual(stored.tags, ['roadmap']);
  await globex.storeMemory('tenant-globex', 'Globex roadmap: acquire Initech', { importance: 0.8 });

  const acmeHits = await acme.recall('tenant-acme', 'product roadmap', { topK: 5 });
  assert.equal(acmeHits.length, 1);
  assert.equal(acmeHits[0].content, 'Acme Q3 roadmap: launch Omega in September');
  assert.equal(acmeHits[0].id, stored.id);
  const globexHits = await globex.recall('tenant-globex', 'roadmap');
  assert.deepEqual(globexHits.map((h) => h.content), ['Globex roadmap: acquire Initech']);

  // Cross-tenant: every way in is refused with the stable code and the documented message.
  for (const attempt of [
    () => acme.recall('tenant-globex', 'roadmap'),
    () => acme.storeMemory('tenant-globex', 'planted by acme'),
    () => acme.getNamespace('tenant-globex'),
    () => globex.recall('tenant-acme', 'roadmap', { top_k: 5 }),
  ]) {
    await assert.rejects(attempt, (err) => {
      assert.ok(err instanceof memsilo.MemsiloError, `not a MemsiloError: ${err}`);
      assert.ok(err instanceof memsilo.ForbiddenError);
      assert.equal(err.code, 'forbidden');
      assert.equal(err.status, 403);
      assert.match(err.message, /^Key not authorized for namespace tenant-(globex|acme)$/);
      return true;
    });
  }
  await assert.rejects(acme.recall('tenant-globex', 'x'), { code: 'forbidden', message: 'Key not authorized for namespace tenant-globex' });
  // Nothing leaked or was planted.
  assert.deepEqual((await globex.recall('tenant-globex', 'planted by acme', { topK: 10 })).map((h) => h.content), [
    'Globex roadmap: acquire Initech',
  ]);

  const names = (await admin.listNamespaces()).map((n) => n.name).sort();
  assert.deepEqual(names, ['tenant-acme', 'tenant-globex']);
  const acmeOnly = await admin.listNamespaces({ tenantId: acmeTenant.id });
  assert.deepEqual(acmeOnly.map((n) => n.name), ['tenant-acme']);
  assert.equal(acmeOnly[0].memory_count, 1);
  const first = await admin.listNamespaces({ limit: 1 });
  assert.equal(first.total_count, 2);
  assert.equal(typeof first.next_cursor, 'string');
  const second = await admin.listNamespaces({ limit: 1, cursor: first.next_cursor });
  assert.deepEqual([...first, ...second].map((n) => n.name), ['tenant-acme', 'tenant-globex']);
  assert.equal(second.next_cursor, null);
  await assert.rejects(admin.listNamespaces({ offset: 1, cursor: first.next_cursor }), { code: 'invalid_argument', field: 'offset' });

  const deleted = await admin.deleteNamespace('tenant-globex');
  assert.equal(deleted.name, 'tenant-globex');
  assert.ok(!Number.isNaN(Date.parse(deleted.deleted_at)));
  await assert.rejects(admin.getNamespace('tenant-globex'), { code: 'not_found', status: 404 });
  // The tenant's key granted only that namespace is now dead.
  await assert.rejects(globex.recall('tenant-globex', 'roadmap'), {
    code: 'forbidden',
    status: 403,
    message: 'Key not authorized for namespace tenant-globex',
  });
  assert.deepEqual((await admin.listNamespaces()).map((n) => n.name), ['tenant-acme']);
  // The other tenant is untouched.
  assert.equal((await acme.recall('tenant-acme', 'roadmap')).length, 1);
}

describe('SaaS flow, in-process', () => {
  it('isolates tenants with scoped keys', async () => {
    await saasFlow(memsilo.open(tmpdir()));
  });
});

describe('SaaS flow, against a server', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('isolates tenants with scoped keys', async () => {
    const admin = await memsilo.connect(server.url, { apiKey: server.adminKey });
    assert.deepEqual(await admin.whoami(), { principal: 'root' });
    await saasFlow(admin);
  });

  it('refuses a bad key at connect and at scoped', async () => {
    const bad = 'msk_not_a_real_key_0000000000000000';
    await assert.rejects(memsilo.connect(server.url, { apiKey: bad }), (err) => {
      assert.ok(err instanceof memsilo.UnauthorizedError);
      assert.equal(err.code, 'unauthorized');
      assert.equal(err.status, 401);
      return true;
    });
    const admin = await memsilo.connect(server.url, { apiKey: server.adminKey });
    await assert.rejects(admin.scoped(bad), { code: 'unauthorized', status: 401 });
  });

  it('serves many concurrent calls from one client', async () => {
    const admin = await memsilo.connect(server.url, { apiKey: server.adminKey });
    await admin.createNamespace('remote-busy');
    const contents = Array.from({ length: 64 }, (_, i) => `remote note ${i}`);
    const stored = await Promise.all(contents.map((c) => admin.storeMemory('remote-busy', c)));
    const fetched = await Promise.all(stored.map((m) => admin.getMemory('remote-busy', m.id)));
    assert.deepEqual(fetched.map((m) => m.content), contents);
  });

  it('stops cleanly on SIGTERM, after which connect fails with a MemsiloError', async () => {
    const { url } = server;
    const result = await server.stop();
    const log = server.stderr();
    server = null;
    assert.deepEqual(result, { code: 0, signal: null }, `server log:\n${log}`);
    await assert.rejects(memsilo.connect(url, { apiKey: 'msk_whatever_0000000000000000' }), memsilo.MemsiloError);
  });
});
