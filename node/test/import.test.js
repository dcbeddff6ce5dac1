'use strict';
// Imports through core's importer (issue 16), in-process and against a server: the same
// counts and the same error both ways; remotely one streamed request.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const memsilo = require('..');
const { tmpdir, startServer } = require('../test-support/kit.js');

function memoryLines(n) {
  const out = [];
  for (let i = 1; i <= n; i += 1) {
    out.push(JSON.stringify({ kind: 'memory', id: `m${i}`, content: `note ${i}`, vector: [1, i, 0] }));
  }
  return out;
}

async function imports(db, ns) {
  await db.createNamespace(ns, { dimensions: 3 });
  const lines = memoryLines(5000);
  // Strings, Buffers and objects, in any mix; an async iterable as well as an array.
  const mixed = lines.map((l, i) => (i % 3 === 0 ? Buffer.from(`${l}\n`) : i % 3 === 1 ? JSON.parse(l) : l));
  async function* each() {
    yield* mixed;
  }
  const done = await db.importNamespace(ns, each());
  assert.deepEqual(done, { lines: 5000, memories: 5000, entities: 0, relations: 0, expired: 0 });
  assert.equal((await db.getMemory(ns, 'm4321')).content, 'note 4321');

  await db.createNamespace(`${ns}-bad`, { dimensions: 3 });
  lines[3499] = JSON.stringify({ kind: 'memory', id: 'm3500', content: 'x', vector: [1] });
  await assert.rejects(db.importNamespace(`${ns}-bad`, lines), (err) => {
    assert.ok(err instanceof memsilo.InvalidArgumentError);
    assert.equal(err.message, 'line 3500: vector has 1 dimensions, namespace has 3');
    // What the batches before the failing one wrote, and the line, on the error itself.
    assert.equal(err.line, 3500);
    assert.deepEqual(err.imported, { lines: 3000, memories: 3000, entities: 0, relations: 0, expired: 0 });
    return true;
  });
  // The three batches before the bad line's are written, nothing of it or after it.
  assert.equal((await db.getNamespace(`${ns}-bad`)).memory_count, 3000);
  return done;
}

// Each item is one line, numbered as one: a JSON object written over several lines too.
async function itemsAreLines(db, ns) {
  await db.createNamespace(ns, { dimensions: 3 });
  const memory = (i, vector, indent) =>
    JSON.stringify({ kind: 'memory', id: `m${i}`, content: `note ${i}`, vector }, null, indent);
  const items = [memory(1, [1, 1, 0]), memory(2, [1, 2, 0], 2), `${memory(3, [1, 3, 0])}\n`, memory(4, [1], 2)];
  await assert.rejects(db.importNamespace(ns, items, { batchSize: 2 }), (err) => {
    assert.equal(err.message, 'line 4: vector has 1 dimensions, namespace has 3');
    assert.equal(err.line, 4);
    assert.equal(err.imported.memories, 2);
    return true;
  });
  items[3] = memory(4, [1, 4, 0], 2);
  assert.equal((await db.importNamespace(ns, items)).memories, 4);
  // The whole text as one string or Buffer is JSON Lines, not an iterable of characters.
  const text = `${memory(5, [1, 5, 0])}\n${memory(6, [1, 6, 0])}\n`;
  assert.equal((await db.importNamespace(ns, text)).memories, 2);
  assert.equal((await db.importNamespace(ns, Buffer.from(text))).memories, 2);
}

describe('importNamespace', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('in-process and against a server alike', async () => {
    const local = await imports(memsilo.open(tmpdir()), 'imp');
    const remote = await imports(await memsilo.connect(server.url, { apiKey: server.adminKey }), 'imp-remote');
    assert.deepEqual(remote, local);
  });

  it('takes each item as one line, in-process and against a server alike', async () => {
    await itemsAreLines(memsilo.open(tmpdir()), 'items');
    await itemsAreLines(await memsilo.connect(server.url, { apiKey: server.adminKey }), 'items-remote');
  });
});
