'use strict';
// Recall modes (issue 17), in-process and against a server: keyword, vector and hybrid.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const memsilo = require('..');
const { tmpdir, startServer } = require('../test-support/kit.js');

const CONTENTS = [
  'Q3 roadmap: Omega in Sept',
  'Hiring 4 ML engineers',
  'Budget: $2.4M allocated',
  'Order ZX-4471 shipped to the Lisbon warehouse',
];

async function modes(db, ns) {
  await db.createNamespace(ns);
  await db.storeMemories(ns, CONTENTS.map((content) => ({ content })));

  // A word only one memory holds: keyword recall finds it and nothing else.
  const keyword = await db.recall(ns, 'zx-4471', { mode: 'keyword', topK: 10 });
  assert.deepEqual(keyword.map((h) => h.content), [CONTENTS[3]]);
  assert.ok(keyword[0].keyword_score > 0);
  assert.equal((await db.recall(ns, 'zx-4471', { mode: 'vector', topK: 10 })).length, 4);

  // Fused, the memory in both lists (the only one with "hiring") comes first; hybrid is the
  // default for text; vector_weight 1 follows the vector order.
  const query = 'how much money goes to hiring';
  const hybrid = await db.recall(ns, query, { mode: 'hybrid', topK: 10 });
  assert.equal(hybrid[0].content, CONTENTS[1]);
  assert.ok(hybrid[0].keyword_score > 0 && typeof hybrid[0].vector_score === 'number');
  assert.equal((await db.recall(ns, query, { topK: 10 }))[0].content, CONTENTS[1]);
  const vector = await db.recall(ns, query, { mode: 'vector', topK: 10 });
  const weighted = await db.recall(ns, query, { mode: 'hybrid', vectorWeight: 1, topK: 10 });
  assert.equal(weighted[0].content, vector[0].content);

  await assert.rejects(db.recall(ns, 'x', { mode: 'fuzzy' }), (err) => {
    assert.ok(err instanceof memsilo.InvalidArgumentError);
    assert.match(err.message, /mode/);
    return true;
  });
}

describe('recall modes', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('in-process', async () => {
    await modes(memsilo.open(tmpdir()), 'modes');
  });

  it('against a server', async () => {
    await modes(await memsilo.connect(server.url, { apiKey: server.adminKey }), 'modes-remote');
  });
});
