'use strict';
// MemsiloStore (LangGraph.js BaseStore) on the cases of LangGraph's store tests (the same cases
// as python/integration_tests/test_langgraph_store.py), tenant isolation, and an agent graph.
const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const memsilo = require('..');
const { MemsiloStore, itemId } = require('memsilo/langgraph');
const { newTenant, stopServer, CharEmbeddings, MODES } = require('./support.js');

after(stopServer);

const DIMS = 128;
const sorted = (list) => [...list].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

it('item ids are the Python store ids', () => {
  assert.equal(itemId(['users', 'alice'], 'prefs'), 'lg:1d2f332422adb06eb880ef0a6dbeb460da74526316e42e28c4018516bbe014d5');
});

for (const mode of MODES) {
  describe(`MemsiloStore (${mode})`, () => {
    const plainStore = async () => {
      const t = await newTenant(mode);
      return new MemsiloStore(t.handle, t.namespace);
    };
    const vectorStore = async (fields) => {
      const t = await newTenant(mode);
      return new MemsiloStore(t.handle, t.namespace, { index: { dims: DIMS, embeddings: new CharEmbeddings(DIMS), fields } });
    };

    it('batches get, put, search and list in order', async () => {
      const store = await plainStore();
      await store.put(['test', 'foo'], 'key1', { data: 'value1' });
      await store.put(['test', 'bar'], 'key2', { data: 'value2' });
      const results = await store.batch([
        { namespace: ['test', 'foo'], key: 'key1' },
        { namespace: ['test', 'bar'], key: 'key2', value: { data: 'value2' } },
        { namespacePrefix: ['test'], filter: { data: 'value1' }, limit: 10, offset: 0 },
        { limit: 10, offset: 0 },
        { namespace: ['test'], key: 'key3' },
      ]);
      assert.deepEqual(results[0].value, { data: 'value1' });
      assert.deepEqual(results[0].namespace, ['test', 'foo']);
      assert.equal(results[1], undefined);
      assert.deepEqual(results[2].map((i) => i.key), ['key1']);
      assert.deepEqual(results[3], [['test', 'bar'], ['test', 'foo']]);
      assert.equal(results[4], null);
    });

    it('puts, updates (created kept, updated moves), deletes', async () => {
      const store = await plainStore();
      await store.put(['test', 'documents'], 'doc1', { title: 'Test Document' });
      const item = await store.get(['test', 'documents'], 'doc1');
      await new Promise((r) => setTimeout(r, 10));
      await store.put(['test', 'documents'], 'doc1', { title: 'Updated Document' });
      const updated = await store.get(['test', 'documents'], 'doc1');
      assert.deepEqual(updated.value, { title: 'Updated Document' });
      assert.ok(updated.updatedAt > item.updatedAt);
      assert.equal(updated.createdAt.getTime(), item.createdAt.getTime());
      assert.equal(await store.get(['test', 'other'], 'doc1'), null);
      await store.delete(['test', 'documents'], 'doc1');
      assert.equal(await store.get(['test', 'documents'], 'doc1'), null);
      assert.deepEqual(await store.listNamespaces(), []);
    });

    it('lists namespaces by prefix, suffix, wildcard, depth and page', async () => {
      const store = await plainStore();
      const namespaces = [['a', 'b', 'c'], ['a', 'b', 'd', 'e'], ['a', 'b', 'd', 'i'], ['a', 'b', 'f'], ['a', 'c', 'f'], ['b', 'a', 'f'], ['users', '123'], ['users', '456', 'settings'], ['admin', 'users', '789']];
      await store.batch(namespaces.map((ns, i) => ({ namespace: ns, key: `id_${i}`, value: { data: i } })));
      const ab = [['a', 'b', 'c'], ['a', 'b', 'd', 'e'], ['a', 'b', 'd', 'i'], ['a', 'b', 'f']];
      assert.deepEqual(await store.listNamespaces({ prefix: ['a', 'b'] }), ab);
      assert.deepEqual(await store.listNamespaces({ suffix: ['f'] }), [['a', 'b', 'f'], ['a', 'c', 'f'], ['b', 'a', 'f']]);
      assert.deepEqual(await store.listNamespaces({ prefix: ['a'], suffix: ['f'] }), [['a', 'b', 'f'], ['a', 'c', 'f']]);
      assert.deepEqual(await store.listNamespaces({ prefix: ['a', 'b'], maxDepth: 3 }), [['a', 'b', 'c'], ['a', 'b', 'd'], ['a', 'b', 'f']]);
      assert.deepEqual(await store.listNamespaces({ prefix: ['a', 'b'], limit: 2 }), ab.slice(0, 2));
      assert.deepEqual(await store.listNamespaces({ prefix: ['a', 'b'], offset: 2 }), ab.slice(2));
      assert.deepEqual(await store.listNamespaces({ prefix: ['a', '*', 'f'] }), [['a', 'b', 'f'], ['a', 'c', 'f']]);
      assert.deepEqual(await store.listNamespaces({ prefix: ['nonexistent'] }), []);
      assert.deepEqual(await store.listNamespaces({ prefix: ['users', '123'] }), [['users', '123']]);
    });

    it('searches by prefix and filter, newest first, with numeric comparisons', async () => {
      const store = await plainStore();
      for (const [ns, key, score] of [[['t', 's'], 'a', 2], [['t', 's'], 'b', 9], [['t', 's'], 'c', 10], [['t', 'o'], 'd', 11]]) {
        await store.put(ns, key, { score });
      }
      const scores = async (filter, prefix = ['t']) => (await store.search(prefix, { filter })).map((i) => i.value.score).sort((x, y) => x - y);
      assert.deepEqual(await scores({ score: { $gte: 10 } }), [10, 11]);
      assert.deepEqual(await scores({ score: { $lt: 10 } }), [2, 9]);
      assert.deepEqual(await scores({}, ['t', 's']), [2, 9, 10]);
      const all = await store.search(['t']);
      assert.deepEqual(all.map((i) => i.key), ['d', 'c', 'b', 'a']);
      assert.deepEqual((await store.search(['t'], { limit: 2, offset: 1 })).map((i) => i.key), ['c', 'b']);
    });

    it('semantic search with filters, updates, index=false and field paths', async () => {
      const store = await vectorStore();
      for (const [key, value] of [['doc1', { text: 'red apple', color: 'red', score: 4.5 }], ['doc2', { text: 'red car', color: 'red', score: 3.0 }], ['doc3', { text: 'green apple', color: 'green', score: 4.0 }], ['doc4', { text: 'blue car', color: 'blue', score: 3.5 }]]) {
        await store.put(['test'], key, value);
      }
      const red = await store.search(['test'], { query: 'apple', filter: { color: 'red' } });
      assert.deepEqual(red.map((r) => r.key), ['doc1', 'doc2']);
      assert.ok(red[0].score > red[1].score);
      const blue = await store.search(['test'], { query: 'bbbbluuu', filter: { score: { $gt: 3.2 } } });
      assert.equal(blue.length, 3);
      assert.equal(blue[0].key, 'doc4');
      await store.put(['test'], 'doc5', { text: 'red apple' }, false);
      assert.ok(!(await store.search(['test'], { query: 'red apple', limit: 3 })).some((r) => r.key === 'doc5'));
      assert.equal((await store.search(['test'], { limit: 10 })).length, 5);

      const paths = await vectorStore(['key0', 'key1', 'key3']);
      await paths.put(['test'], 'doc1', { key1: 'xxx', key2: 'yyy', key3: 'zzz' });
      await paths.put(['test'], 'doc2', { key0: 'uuu', key1: 'vvv', key2: 'www', key3: 'xxx' });
      const both = await paths.search(['test'], { query: 'xxx' });
      assert.equal(both.length, 2);
      assert.ok(Math.abs(both[0].score - both[1].score) < 1e-3);
      assert.deepEqual((await paths.search(['test'], { query: 'uuu' })).map((r) => r.key), ['doc2', 'doc1']);
      assert.deepEqual((await paths.search(['test'], { query: 'zzz' })).map((r) => r.key), ['doc1', 'doc2']);
    });

    it("a store built from tenant A's key cannot see tenant B", async () => {
      const a = await newTenant(mode);
      const b = await newTenant(mode);
      const storeA = new MemsiloStore(a.handle, a.namespace);
      const storeB = new MemsiloStore(b.handle, b.namespace);
      await storeA.put(['users', 'alice'], 'pref', { text: 'alice likes tea' });
      await storeB.put(['users', 'alice'], 'pref', { text: "b's secret" });
      assert.deepEqual((await storeA.search(['users'])).map((i) => i.value.text), ['alice likes tea']);
      const aOnB = new MemsiloStore(a.handle, b.namespace);
      await assert.rejects(aOnB.get(['users', 'alice'], 'pref'), memsilo.ForbiddenError);
      await assert.rejects(aOnB.put(['users', 'alice'], 'pref', { text: 'x' }), memsilo.ForbiddenError);
      assert.deepEqual((await storeB.get(['users', 'alice'], 'pref')).value, { text: "b's secret" });
    });
  });
}

describe('LangGraph.js agent graph', () => {
  it('writes and searches memories through the store', async () => {
    const { StateGraph, Annotation, START, END } = require('@langchain/langgraph');
    const t = await newTenant('local');
    const store = new MemsiloStore(t.handle, t.namespace, { index: { dims: DIMS, embeddings: new CharEmbeddings(DIMS), fields: ['text'] } });
    const State = Annotation.Root({ user: Annotation(), message: Annotation(), recalled: Annotation() });
    const graph = new StateGraph(State)
      .addNode('remember', async (state, config) => {
        if (state.message.startsWith('remember ')) await config.store.put(['memories', state.user], `${Date.now()}-${Math.random()}`, { text: state.message.slice(9) });
        return {};
      })
      .addNode('recall', async (state, config) => {
        const hits = await config.store.search(['memories', state.user], { query: state.message, limit: 1 });
        return { recalled: hits.map((h) => h.value.text) };
      })
      .addEdge(START, 'remember')
      .addEdge('remember', 'recall')
      .addEdge('recall', END)
      .compile({ store });
    for (const message of ['remember I drink green tea', 'remember my dog is Rex', 'remember bikes']) await graph.invoke({ user: 'alice', message, recalled: [] });
    await graph.invoke({ user: 'bob', message: 'remember bob drinks coffee', recalled: [] });
    assert.deepEqual((await graph.invoke({ user: 'alice', message: 'what is my dog called Rex', recalled: [] })).recalled, ['my dog is Rex']);
    assert.deepEqual((await graph.invoke({ user: 'bob', message: 'green tea', recalled: [] })).recalled, ['bob drinks coffee']);
    assert.deepEqual(sorted(await store.listNamespaces({ prefix: ['memories'] })), [['memories', 'alice'], ['memories', 'bob']]);
  });
});
