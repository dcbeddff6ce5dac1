'use strict';
// Many operations in flight on one handle, each promise getting its own answer, and the
// event loop staying responsive while the native side works.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { Worker } = require('node:worker_threads');

const memsilo = require('..');
const { tmpdir } = require('../test-support/kit.js');

describe('concurrency', () => {
  it('runs 300 in-flight calls on one handle, each resolving to its own result', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('busy');
    const contents = Array.from({ length: 300 }, (_, i) => `note ${i}: ${'x'.repeat(i % 17)}`);
    const stored = await Promise.all(contents.map((content, i) => db.storeMemory('busy', { content, tags: [`n${i}`] })));
    assert.deepEqual(stored.map((m) => m.content), contents);
    assert.equal(new Set(stored.map((m) => m.id)).size, 300);
    assert.equal((await db.getNamespace('busy')).memory_count, 300);

    // Reads and writes interleaved: every get answers for its own id.
    const [fetched] = await Promise.all([
      Promise.all(stored.map((m) => db.getMemory('busy', m.id))),
      Promise.all(contents.map((c) => db.recall('busy', c, { topK: 3 }))),
      db.storeMemories('busy', ['late 1', 'late 2']),
    ]);
    assert.deepEqual(fetched.map((m) => m.id), stored.map((m) => m.id));
    assert.deepEqual(fetched.map((m) => m.tags[0]), contents.map((_, i) => `n${i}`));
  });

  it('keeps the event loop ticking during big storeMemories batches', async () => {
    const db = memsilo.open(tmpdir());
    const batches = 4;
    for (let b = 0; b < batches; b += 1) await db.createNamespace(`bulk-${b}`);
    const memories = Array.from({ length: 1000 }, (_, i) => ({
      content: `bulk memory ${i} about subject ${i % 41} with a few more words to embed`,
      importance: (i % 10) / 10,
    }));

    let ticks = 0;
    let last = performance.now();
    let maxGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks += 1;
    }, 5);
    const started = performance.now();
    const ids = await Promise.all(Array.from({ length: batches }, (_, b) => db.storeMemories(`bulk-${b}`, memories)));
    const elapsed = performance.now() - started;
    clearInterval(timer);

    assert.deepEqual(ids.map((list) => list.length), Array(batches).fill(1000));
    // If the work ran on the JS thread, the timer could not fire until it finished:
    // one gap as long as the whole run and at most a tick or two.
    assert.ok(elapsed > 50, `the batches took only ${elapsed.toFixed(0)} ms; too short to tell`);
    assert.ok(ticks >= 5, `${ticks} timer ticks in ${elapsed.toFixed(0)} ms`);
    assert.ok(maxGap < elapsed / 2, `longest pause ${maxGap.toFixed(0)} ms of ${elapsed.toFixed(0)} ms`);
  });

  it('works from worker threads opening the same directory as the main thread', async () => {
    const dir = tmpdir();
    const db = memsilo.open(dir);
    await db.createNamespace('shared');
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const memsilo = require(workerData.pkg);
      memsilo.open(workerData.dir)
        .storeMemories('shared', Array.from({ length: 50 }, (_, j) => 'worker ' + workerData.i + ' note ' + j))
        .then((ids) => parentPort.postMessage(ids.length), (err) => parentPort.postMessage(err.code));
    `;
    const pkg = require.resolve('..');
    const results = await Promise.all(
      [0, 1, 2].map((i) => {
        const worker = new Worker(source, { eval: true, workerData: { pkg, dir, i } });
        return new Promise((resolve, reject) => {
          worker.once('message', (m) => worker.terminate().then(() => resolve(m)));
          worker.once('error', reject);
        });
      }),
    );
    assert.deepEqual(results, [50, 50, 50]);
    assert.equal((await db.getNamespace('shared')).memory_count, 150);
  });
});
