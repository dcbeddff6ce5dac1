// The package works as an ES module: named exports and the default export are the
// CommonJS entry's objects.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import memsilo, { open, connect, MemsiloError, ForbiddenError, OPERATIONS } from 'memsilo';

const require = createRequire(import.meta.url);

describe('ES module entry', () => {
  it('exports the same objects as require()', () => {
    const cjs = require('memsilo');
    assert.equal(open, cjs.open);
    assert.equal(connect, cjs.connect);
    assert.equal(MemsiloError, cjs.MemsiloError);
    assert.equal(memsilo, cjs);
    assert.deepEqual(OPERATIONS, cjs.OPERATIONS);
  });

  it('stores, recalls and maps errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'memsilo-esm-'));
    try {
      const db = open(dir);
      await db.createNamespace('esm');
      await db.storeMemory('esm', 'imported as a module');
      const hits = await db.recall('esm', 'module');
      assert.deepEqual(hits.map((h) => h.content), ['imported as a module']);
      const key = await db.createKey('esm-key', { namespaces: [['esm', 'read']] });
      await assert.rejects((await db.scoped(key.key)).recall('elsewhere', 'q'), (err) => err instanceof ForbiddenError && err.code === 'forbidden');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
