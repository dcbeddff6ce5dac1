'use strict';
// Keyrings and tenants' own keys from Node: open(path, { keyring }), createTenant with
// encryptionKeyId, and the refusals that name the field.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const memsilo = require('..');
const { tmpdir, startServer } = require('../test-support/kit.js');

describe('keyring', () => {
  it('makes a tenant key in the keyring and destroys it with the tenant', async () => {
    const dir = tmpdir();
    const keys = path.join(dir, 'keys');
    const db = memsilo.open(path.join(dir, 'data'), { keyring: keys });
    const tenant = await db.createTenant('node_keyed', { isolationMode: 'hybrid', encryptionKeyId: 'node-key' });
    assert.equal(tenant.encryption_key_id, 'node-key');
    assert.ok(fs.existsSync(path.join(keys, 'node-key')));
    await assert.rejects(
      db.createTenant('node_shared', { isolation_mode: 'logical', encryption_key_id: 'other' }),
      (e) => e.code === 'invalid_argument' && e.message.includes('encryption_key_id'),
    );
    await db.deleteTenant(tenant.id);
    for (let i = 0; i < 100 && fs.existsSync(path.join(keys, 'node-key')); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(!fs.existsSync(path.join(keys, 'node-key')), 'the key is destroyed with the tenant');
  });

  it('refuses a keyring inside the data directory, and a tenant key without a keyring', async () => {
    const dir = tmpdir();
    assert.throws(
      () => memsilo.open(path.join(dir, 'data'), { keyring: path.join(dir, 'data', 'keys') }),
      (e) => e.code === 'invalid_argument' && e.message.includes('never written next to the data'),
    );
    const db = memsilo.open(path.join(dir, 'plain'));
    await assert.rejects(
      db.createTenant('node_nokeys', { isolationMode: 'physical', encryptionKeyId: 'k' }),
      (e) => e.code === 'invalid_argument' && e.message.includes('a keyring is needed'),
    );
  });
  it('rotates the instance key and reports progress until the old key is destroyed', async () => {
    const dir = tmpdir();
    const keys = path.join(dir, 'keys');
    const db = memsilo.open(path.join(dir, 'data'), { keyring: keys });
    await db.createNamespace('node-instance-ns');
    await db.storeMemory('node-instance-ns', { content: 'kept across the rotation' });
    const started = await db.rotateInstanceKey({ newKeyId: 'node-instance-2' });
    assert.deepEqual([started.old_key_id, started.new_key_id], ['instance', 'node-instance-2']);
    assert.ok(started.environments_total >= 2, 'a shard and the catalog at least');
    let status = started;
    for (let i = 0; i < 100 && (status.state !== 'done' || fs.existsSync(path.join(keys, 'instance'))); i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await db.getInstanceKeyRotation();
    }
    assert.equal(status.state, 'done');
    assert.equal(status.environments_done, status.environments_total);
    assert.ok(!fs.existsSync(path.join(keys, 'instance')), 'the old instance key is destroyed');
    assert.equal(await db.countMemories('node-instance-ns'), 1);
  });
  it('refuses to rotate the instance key of a plain directory, locally and remotely alike', async () => {
    const plainErr = (e) => e.code === 'invalid_argument' && e.message.includes('not encrypted');
    await assert.rejects(memsilo.open(path.join(tmpdir(), 'plain')).rotateInstanceKey(), plainErr);
    const server = await startServer();
    try {
      const remote = await memsilo.connect(server.url, { apiKey: server.adminKey });
      await assert.rejects(remote.rotateInstanceKey(), plainErr);
      await assert.rejects(remote.getInstanceKeyRotation(), (e) => e.code === 'not_found');
    } finally {
      await server.stop();
    }
  });
  it('rotates a tenant key and reports progress until done', async () => {
    const dir = tmpdir();
    const keys = path.join(dir, 'keys');
    const db = memsilo.open(path.join(dir, 'data'), { keyring: keys });
    const tenant = await db.createTenant('node_rotated', { isolationMode: 'physical', encryptionKeyId: 'node-old' });
    await db.createNamespace('node-rotated-ns', { tenantId: tenant.id });
    await db.storeMemory('node-rotated-ns', { content: 'kept across the rotation' });
    const started = await db.rotateTenantKey(tenant.id, { newKeyId: 'node-new' });
    assert.equal(started.new_key_id, 'node-new');
    assert.equal(started.environments_total, 1);
    let status = started;
    for (let i = 0; i < 100 && (status.state !== 'done' || fs.existsSync(path.join(keys, 'node-old'))); i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await db.getKeyRotation(tenant.id);
    }
    assert.equal(status.state, 'done');
    assert.ok(!fs.existsSync(path.join(keys, 'node-old')), 'the old key is destroyed');
    assert.equal(await db.countMemories('node-rotated-ns'), 1);
  });
});
