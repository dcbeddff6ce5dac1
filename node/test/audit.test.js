'use strict';
// The audit log from Node, in-process and against a real server: actions and refusals are
// recorded per tenant, filtered and paged by cursor, verified, and readable only by root and
// the tenant's admins.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const memsilo = require('..');
const { tmpdir, startServer } = require('../test-support/kit.js');

async function auditFlow(root) {
  const tenant = await root.createTenant(`audited_${process.hrtime.bigint()}`);
  const ns = `audit-ns-${tenant.id}`;
  await root.createNamespace(ns, { tenantId: tenant.id });
  const adminKey = await root.createKey('admin', { tenantId: tenant.id, role: 'admin' });
  const viewerKey = await root.createKey('viewer', { tenantId: tenant.id, role: 'viewer' });
  const admin = await root.scoped(adminKey.key);
  const viewer = await root.scoped(viewerKey.key);
  await admin.addMember(tenant.id, 'bo@example.com', 'editor');
  await assert.rejects(viewer.storeMemory(ns, { content: 'NODE-SECRET-MARK' }), memsilo.ForbiddenError);
  await assert.rejects(viewer.listAudit(tenant.id), memsilo.ForbiddenError);
  await assert.rejects(admin.listAudit('instance'), memsilo.ForbiddenError);

  const page = await admin.listAudit(tenant.id, { limit: 100 });
  assert.deepEqual(
    page.entries.map((e) => `${e.action}:${e.result}`),
    ['create_tenant:ok', 'create_namespace:ok', 'create_key:ok', 'create_key:ok', 'add_member:ok',
      'store_memory:refused', 'list_audit:refused', 'list_audit:refused'],
  );
  assert.equal(page.next_cursor, null);
  assert.ok(!JSON.stringify(page).includes('NODE-SECRET-MARK'));
  const refused = await admin.listAudit(tenant.id, { actor: viewerKey.id });
  assert.deepEqual(refused.entries.map((e) => e.status), [403, 403]);
  assert.equal(refused.entries[0].actor.key_prefix, viewerKey.prefix);

  const first = await admin.listAudit(tenant.id, { limit: 4 });
  const rest = await admin.listAudit(tenant.id, { limit: 4, cursor: first.next_cursor });
  assert.deepEqual([...first.entries, ...rest.entries].map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
  const verified = await admin.verifyAudit(tenant.id);
  assert.equal(verified.ok, true);
  assert.equal(verified.first_broken, null);
  assert.equal(verified.head_hash, page.entries.at(-1).hash);
  await assert.rejects(admin.listAudit(tenant.id, { cursor: 'x' }), (err) => err.field === 'cursor');
}

describe('audit log, in-process', () => {
  it('records actions and refusals and verifies the chain', async () => {
    await auditFlow(memsilo.open(tmpdir()));
  });
});

describe('audit log, against a server', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });
  it('records actions and refusals and verifies the chain', async () => {
    await auditFlow(await memsilo.connect(server.url, { apiKey: server.adminKey }));
  });
});
