'use strict';
// Every error reaches JS as a MemsiloError (and its per-code subclass) carrying the stable
// code, the HTTP status and the extra fields of the error body.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const util = require('node:util');

const memsilo = require('..');
const { tmpdir } = require('../test-support/kit.js');

const db = memsilo.open(tmpdir());

function expectError(Class, code, status, extra = {}) {
  return (err) => {
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${err && err.constructor.name}: ${err}`);
    assert.ok(err instanceof memsilo.MemsiloError);
    assert.ok(err instanceof Error);
    assert.equal(err.name, Class.name);
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    for (const [k, v] of Object.entries(extra)) assert.equal(err[k], v, `err.${k}`);
    return true;
  };
}

describe('error codes', () => {
  it('invalid_argument names the field', async () => {
    await assert.rejects(
      db.createNamespace('not a valid name!'),
      expectError(memsilo.InvalidArgumentError, 'invalid_argument', 400, { field: 'name' }),
    );
    await assert.rejects(
      db.createNamespace('typo-ns', { existsOk: true }),
      expectError(memsilo.InvalidArgumentError, 'invalid_argument', 400, { field: 'exists_ok' }),
    );
    await db.createNamespace('forget-ns');
    await assert.rejects(
      db.batchForget('forget-ns', {}),
      expectError(memsilo.InvalidArgumentError, 'invalid_argument', 400),
    );
    await assert.rejects(
      db.recall('forget-ns', 'q', { topK: 'five' }),
      expectError(memsilo.InvalidArgumentError, 'invalid_argument', 400, { field: 'top_k' }),
    );
  });

  it('NaN and Infinity are refused naming their field, never sent as null', async () => {
    await db.createNamespace('nan-ns');
    for (const [call, field] of [
      [() => db.storeMemory('nan-ns', { content: 'x', importance: NaN }), 'importance'],
      [() => db.storeMemory('nan-ns', { content: 'x', metadata: { score: { raw: -Infinity } } }), 'metadata.score.raw'],
      [() => db.storeMemory('nan-ns', { content: 'x', embedding: [0.5, NaN] }), 'embedding[1]'],
      [() => db.storeMemories('nan-ns', [{ content: 'a' }, { content: 'b', importance: Infinity }]), 'memories[1].importance'],
      [() => db.recall('nan-ns', 'x', { topK: Infinity }), 'top_k'],
    ]) {
      await assert.rejects(call(), expectError(memsilo.InvalidArgumentError, 'invalid_argument', 400, { field }));
    }
    // Nothing was written (NaN used to become null: the default importance, a null metadata value).
    assert.equal(await db.countMemories('nan-ns'), 0);
  });

  it('text with a lone surrogate is refused naming its field, not as unreadable JSON', async () => {
    // JSON.stringify writes a lone surrogate as a \udXXX escape, which the engine refused as
    // unreadable JSON naming `body` instead of the field.
    await db.createNamespace('utf-ns');
    for (const [call, field] of [
      [() => db.storeMemory('utf-ns', 'bad \udcff text'), 'content'],
      [() => db.storeMemory('utf-ns', { content: 'x', tags: ['ok', '\ud83d'] }), 'tags[1]'],
      [() => db.storeMemory('utf-ns', { content: 'x', metadata: { note: { text: 'a\udc80' } } }), 'metadata.note.text'],
      [() => db.storeMemories('utf-ns', [{ content: 'a' }, { content: 'b', agentId: '\udfff' }]), 'memories[1].agent_id'],
      [() => db.recall('utf-ns', 'half \ud800'), 'query'],
    ]) {
      await assert.rejects(async () => call(), (err) => {
        expectError(memsilo.InvalidArgumentError, 'invalid_argument', 400, { field })(err);
        assert.match(err.message, /lone surrogate/);
        return true;
      });
    }
    assert.equal(await db.countMemories('utf-ns'), 0);
    // A whole pair (an emoji) and text that only looks like an escape go through as given.
    await db.storeMemory('utf-ns', { id: 'fine', content: 'C:\\udir \ud83d\ude00' });
    assert.equal((await db.getMemory('utf-ns', 'fine')).content, 'C:\\udir \u{1f600}');
  });

  it('a BigInt, a function or a wrongly shaped argument is invalid_argument naming it, not a bare TypeError', async () => {
    await db.createNamespace('types-ns');
    for (const [call, field] of [
      [() => db.storeMemory('types-ns', { content: 'x', importance: 1n }), 'importance'],
      [() => db.storeMemory('types-ns', { content: 'x', metadata: { n: 10n ** 30n } }), 'metadata.n'],
      [() => db.recall('types-ns', 'x', { topK: 5n }), 'top_k'],
      [() => db.storeMemory('types-ns', { content: 'x', importance: () => 0.9 }), 'importance'],
      [() => db.storeMemory('types-ns', { content: 'x', tags: ['a', Symbol('b')] }), 'tags[1]'],
      [() => db.recall('types-ns', 'x', 5), 'options'],
      [() => db.storeMemories('types-ns', 'not a list'), 'memories'],
      [() => db.getMemories('types-ns', null), 'ids'],
      // Not an object: the content (named `content`, as Python and Go name it), not `options`.
      [() => db.storeMemory('types-ns', 5), 'content'],
      [() => db.storeMemory('types-ns', ['a list']), 'content'],
      [() => db.storeMemories('types-ns', [{ content: 'a' }, 5]), 'memories[1]'],
      [() => db.storeMemories('types-ns', ['a', null]), 'memories[1]'],
      // Were the addon's conversion errors (code StringExpected, no field) or a bare TypeError.
      [() => db.importNamespace(5, []), 'namespace'],
      [() => db.importNamespace('types-ns', null), 'lines'],
      [() => db.importNamespace('types-ns', 42), 'lines'],
      [() => db.importNamespace('types-ns', [], { batchSize: 'ten' }), 'batch_size'],
      // String(undefined) opened (and created) a directory named "undefined".
      [() => memsilo.open(), 'path'],
    ]) {
      await assert.rejects(async () => call(), expectError(memsilo.InvalidArgumentError, 'invalid_argument', 400, { field }));
    }
    assert.equal(fs.existsSync('undefined'), false);
    assert.equal(await db.countMemories('types-ns'), 0);
  });

  it('unauthorized for an unknown key and for a revoked one', async () => {
    await assert.rejects(db.scoped('msk_definitely_not_a_key'), expectError(memsilo.UnauthorizedError, 'unauthorized', 401));
    await assert.rejects(db.scoped(''), expectError(memsilo.UnauthorizedError, 'unauthorized', 401));
    await db.createNamespace('revoked-ns');
    const key = await db.createKey('short-lived', { namespaces: [['revoked-ns', 'read']] });
    const reader = await db.scoped(key.key);
    assert.deepEqual(await reader.recall('revoked-ns', 'anything'), []);
    const revoked = await db.revokeKey(key.id);
    assert.equal(revoked.revoked, true);
    await assert.rejects(reader.recall('revoked-ns', 'anything'), expectError(memsilo.UnauthorizedError, 'unauthorized', 401));
  });

  it('forbidden carries the namespace; a read key cannot write', async () => {
    await db.createNamespace('ro-ns');
    const key = await db.createKey('reader', { namespaces: [{ namespace: 'ro-ns', access: 'read' }] });
    const reader = await db.scoped(key.key);
    await assert.rejects(reader.recall('other-ns', 'q'), expectError(memsilo.ForbiddenError, 'forbidden', 403, { namespace: 'other-ns' }));
    await assert.rejects(reader.storeMemory('ro-ns', 'write attempt'), expectError(memsilo.ForbiddenError, 'forbidden', 403));
    await assert.rejects(reader.createTenant('sneaky_tenant'), expectError(memsilo.ForbiddenError, 'forbidden', 403));
  });

  it('not_found for missing records', async () => {
    await db.createNamespace('nf-ns');
    await assert.rejects(db.getMemory('nf-ns', '01900000-0000-7000-8000-000000000000'), expectError(memsilo.NotFoundError, 'not_found', 404));
    await assert.rejects(db.getTenant('01900000-0000-7000-8000-000000000000'), expectError(memsilo.NotFoundError, 'not_found', 404));
    await assert.rejects(db.getNamespace('never-created'), expectError(memsilo.NotFoundError, 'not_found', 404));
    await assert.rejects(db.revokeKey('no-such-key'), expectError(memsilo.NotFoundError, 'not_found', 404));
  });

  it('conflict for duplicates, unless existOk', async () => {
    const first = await db.createNamespace('dup-ns');
    await assert.rejects(db.createNamespace('dup-ns'), expectError(memsilo.ConflictError, 'conflict', 409));
    const again = await db.createNamespace('dup-ns', { existOk: true });
    assert.equal(again.created_at, first.created_at);
    await db.createTenant('dup_tenant');
    await assert.rejects(db.createTenant('dup_tenant'), expectError(memsilo.ConflictError, 'conflict', 409));
  });

  it('quota_exceeded names the tenant and writes nothing', async () => {
    const t = await db.createTenant('tiny_tenant', { quotas: { maxNamespaces: 1 } });
    await db.createNamespace('tiny-1', { tenantId: t.id });
    await assert.rejects(
      db.createNamespace('tiny-2', { tenantId: t.id }),
      expectError(memsilo.QuotaExceededError, 'quota_exceeded', 403, { tenantId: t.id }),
    );
    const names = (await db.listNamespaces({ tenantId: t.id })).map((n) => n.name);
    assert.deepEqual(names, ['tiny-1']);
  });

  it('rate_limited carries retryAfter', async () => {
    const t = await db.createTenant('slow_tenant', { quotas: { qps_limit: 1 } });
    await db.createNamespace('slow-ns', { tenantId: t.id });
    const key = await db.createKey('slow', { tenantId: t.id, namespaces: [['slow-ns', 'write']] });
    const slow = await db.scoped(key.key);
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => slow.recall('slow-ns', 'q')));
    const limited = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
    assert.ok(limited.length >= 10, `only ${limited.length} of 20 calls were limited`);
    for (const err of limited) {
      expectError(memsilo.RateLimitedError, 'rate_limited', 429, { tenantId: t.id })(err);
      assert.ok(Number.isInteger(err.retryAfter) && err.retryAfter >= 1, `retryAfter ${err.retryAfter}`);
    }
  });

  it('payload_too_large for an oversized batch', async () => {
    await db.createNamespace('big-ns');
    const memories = Array.from({ length: 1001 }, (_, i) => ({ content: `m${i}` }));
    await assert.rejects(
      db.storeMemories('big-ns', memories),
      expectError(memsilo.PayloadTooLargeError, 'payload_too_large', 413, { field: 'memories' }),
    );
    assert.equal((await db.getNamespace('big-ns')).memory_count, 0);
  });

  it('MemsiloError can be built by callers, defaults to internal', () => {
    const err = new memsilo.MemsiloError('boom');
    assert.equal(err.code, 'internal');
    assert.equal(err.status, 500);
    assert.equal(err.message, 'boom');
  });
});

describe('the error table', () => {
  it('has one exported class per code of the core table, and index.d.ts lists the same codes', () => {
    const className = (code) => code.replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase()) + 'Error';
    assert.ok(memsilo.ERROR_CODES.includes('not_found') && memsilo.ERROR_CODES.length >= 9);
    for (const code of memsilo.ERROR_CODES) {
      const Class = memsilo[className(code)];
      assert.ok(Class && Class.prototype instanceof memsilo.MemsiloError, `no class for ${code}`);
    }
    const exported = Object.keys(memsilo).filter((k) => /.Error$/.test(k) && k !== 'MemsiloError');
    assert.deepEqual(exported.sort(), memsilo.ERROR_CODES.map(className).sort());
    const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');
    const union = dts.match(/export type ErrorCode =([^;]*);/)[1];
    assert.deepEqual([...union.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]), [...memsilo.ERROR_CODES]);
  });
});

describe('causes', () => {
  it('an I/O failure is the cause of the internal error', () => {
    const dir = tmpdir();
    // The lock file's place is taken by a directory: opening the data directory fails (EISDIR).
    fs.mkdirSync(path.join(dir, 'LOCK'));
    let err;
    try {
      memsilo.open(dir);
    } catch (e) {
      err = e;
    }
    expectError(memsilo.InternalError, 'internal', 500)(err);
    assert.match(err.message, /^internal error: io: Is a directory \(os error \d+\)$/);
    const words = err.message.slice('internal error: io: '.length);
    assert.ok(err.cause instanceof Error, 'err.cause is an Error');
    assert.equal(err.cause.message, words);
    assert.equal(err.cause.cause, undefined);
    assert.deepEqual(err.causes, [words]);
    assert.match(util.inspect(err), /\[cause\]: Error: Is a directory/);
  });

  it('a refused connection is the cause of a remote client\'s internal error', async () => {
    // A port nothing listens on: bind one, then close it.
    const port = await new Promise((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = probe.address();
        probe.close(() => resolve(p));
      });
    });
    await assert.rejects(memsilo.connect(`http://127.0.0.1:${port}`, { apiKey: 'msk_x' }), (err) => {
      expectError(memsilo.InternalError, 'internal', 500)(err);
      assert.match(err.message, /cannot reach the memsilo server/);
      assert.ok(err.cause instanceof Error, 'err.cause is an Error');
      assert.match(err.cause.message, /refused/);
      assert.ok(err.message.endsWith(err.cause.message), err.message);
      return true;
    });
  });

  it('errors without a failure underneath have no cause', async () => {
    await assert.rejects(db.getNamespace('no-such-namespace'), (err) => {
      assert.equal(err.cause, undefined);
      assert.equal(err.causes, undefined);
      return true;
    });
  });
});
