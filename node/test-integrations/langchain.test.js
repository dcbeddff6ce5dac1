'use strict';
// MemsiloVectorStore (LangChain.js) on the cases of LangChain's standard vector store suite,
// plus filters, fromTexts, MMR, asRetriever and tenant isolation, in-process and remote.
const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const { Document } = require('@langchain/core/documents');
const { FakeEmbeddings, SyntheticEmbeddings } = require('@langchain/core/utils/testing');
const memsilo = require('..');
const { MemsiloVectorStore } = require('memsilo/langchain');
const { newTenant, stopServer, CharEmbeddings, MODES } = require('./support.js');

after(stopServer);

const byId = (docs) => [...docs].sort((a, b) => (a.id < b.id ? -1 : 1));
const plain = (docs) => docs.map((d) => ({ id: d.id, pageContent: d.pageContent, metadata: d.metadata }));

for (const mode of MODES) {
  describe(`MemsiloVectorStore (${mode})`, () => {
    const store = async (embeddings = new SyntheticEmbeddings({ vectorSize: 6 })) => {
      const t = await newTenant(mode);
      return new MemsiloVectorStore(embeddings, { client: t.handle, namespace: t.namespace });
    };

    it('starts empty and adds documents without mutating them', async () => {
      const vs = await store();
      assert.deepEqual(await vs.similaritySearch('foo', 1), []);
      const docs = [new Document({ pageContent: 'foo', metadata: { id: 1 } }), new Document({ pageContent: 'bar', metadata: { id: 2 } })];
      const ids = await vs.addDocuments(docs);
      assert.equal(ids.length, 2);
      assert.deepEqual(plain(await vs.similaritySearch('bar', 2)), [
        { id: ids[1], pageContent: 'bar', metadata: { id: 2 } },
        { id: ids[0], pageContent: 'foo', metadata: { id: 1 } },
      ]);
      assert.equal(docs[0].id, undefined);
    });

    it('deletes by id (one, several, absent) and everything', async () => {
      const vs = await store();
      await vs.addDocuments(['foo', 'bar', 'baz'].map((t, i) => new Document({ pageContent: t, metadata: { id: i + 1 } })), { ids: ['1', '2', '3'] });
      await vs.delete({ ids: ['1'] });
      assert.deepEqual((await vs.similaritySearch('foo', 5)).map((d) => d.id).sort(), ['2', '3']);
      await vs.delete({ ids: ['2', 'missing'] });
      assert.deepEqual((await vs.similaritySearch('foo', 5)).map((d) => d.id), ['3']);
      await vs.delete({ deleteAll: true });
      assert.deepEqual(await vs.similaritySearch('foo', 5), []);
    });

    it('adding by id is idempotent and replaces content and metadata', async () => {
      const vs = await store();
      const docs = [new Document({ pageContent: 'foo', metadata: { id: 1 } }), new Document({ pageContent: 'bar', metadata: { id: 2 } })];
      await vs.addDocuments(docs, { ids: ['1', '2'] });
      await vs.addDocuments(docs, { ids: ['1', '2'] });
      assert.equal((await vs.similaritySearch('bar', 5)).length, 2);
      await vs.addDocuments([new Document({ pageContent: 'new foo', metadata: { id: 1, some_other_field: 'foo' } })], { ids: ['1'] });
      assert.deepEqual(plain(await vs.similaritySearch('new foo', 2)), [
        { id: '1', pageContent: 'new foo', metadata: { id: 1, some_other_field: 'foo' } },
        { id: '2', pageContent: 'bar', metadata: { id: 2 } },
      ]);
    });

    it('gets by ids in order, skipping absent ones; Document.id is used', async () => {
      const vs = await store();
      const ids = await vs.addDocuments([new Document({ id: 'foo', pageContent: 'foo', metadata: { id: 1 } }), new Document({ pageContent: 'bar', metadata: { id: 2 } })]);
      assert.equal(ids[0], 'foo');
      assert.deepEqual(plain(await vs.getByIds([ids[1], 'missing', 'foo'])), [
        { id: ids[1], pageContent: 'bar', metadata: { id: 2 } },
        { id: 'foo', pageContent: 'foo', metadata: { id: 1 } },
      ]);
      assert.deepEqual(await vs.getByIds(['1', '2']), []);
    });

    it('filters on metadata with the memsilo filter language, with scores', async () => {
      const vs = await MemsiloVectorStore.fromTexts(
        ['red apple', 'red car', 'green apple', 'blue car'],
        [{ color: 'red', n: 1 }, { color: 'red', n: 2 }, { color: 'green', n: 3 }, { color: 'blue', n: 4, tags: ['sea'] }],
        new CharEmbeddings(),
        await newTenant(mode).then((t) => ({ client: t.handle, namespace: t.namespace })),
      );
      const red = await vs.similaritySearchWithScore('apple', 4, { color: 'red' });
      assert.deepEqual(red.map(([d]) => d.pageContent), ['red apple', 'red car']);
      assert.ok(red[0][1] > red[1][1] && red[0][1] <= 1);
      const later = await vs.similaritySearch('car', 4, { n: { $gte: 2 }, color: { $in: ['red', 'blue'] } });
      assert.deepEqual(later.map((d) => d.pageContent).sort(), ['blue car', 'red car']);
      const either = await vs.similaritySearch('x', 4, { $or: [{ n: 1 }, { tags: { $contains: 'sea' } }] });
      assert.deepEqual(either.map((d) => d.pageContent).sort(), ['blue car', 'red apple']);
      await assert.rejects(vs.similaritySearch('x', 4, { n: { $bogus: 1 } }), memsilo.InvalidArgumentError);
    });

    it('maximal marginal relevance and asRetriever', async () => {
      const vs = await store(new CharEmbeddings());
      await vs.addDocuments(['apple pie', 'apple pie!', 'apple tart', 'zebra'].map((t) => new Document({ pageContent: t })));
      const mmr = await vs.maxMarginalRelevanceSearch('apple pie', { k: 2, fetchK: 4, lambda: 0.1 });
      assert.equal(mmr.length, 2);
      assert.equal(mmr[0].pageContent, 'apple pie');
      assert.notEqual(mmr[1].pageContent, 'apple pie!'); // a near duplicate is not chosen second
      const retriever = vs.asRetriever({ k: 3 });
      assert.equal((await retriever.invoke('apple')).length, 3);
      const filtered = vs.asRetriever({ k: 3, filter: { missing: { $exists: true } } });
      assert.deepEqual(await filtered.invoke('apple'), []);
    });

    it("a store built from tenant A's key cannot see tenant B", async () => {
      const a = await newTenant(mode);
      const b = await newTenant(mode);
      const emb = new FakeEmbeddings();
      const storeA = new MemsiloVectorStore(emb, { client: a.handle, namespace: a.namespace });
      const storeB = new MemsiloVectorStore(emb, { client: b.handle, namespace: b.namespace });
      await storeA.addDocuments([new Document({ pageContent: 'A plan', metadata: {} })], { ids: ['same'] });
      await storeB.addDocuments([new Document({ pageContent: 'B secret', metadata: {} })], { ids: ['same'] });
      assert.deepEqual((await storeA.similaritySearch('secret', 5)).map((d) => d.pageContent), ['A plan']);
      const aOnB = new MemsiloVectorStore(emb, { client: a.handle, namespace: b.namespace });
      await assert.rejects(aOnB.similaritySearch('secret', 5), memsilo.ForbiddenError);
      await assert.rejects(aOnB.delete({ deleteAll: true }), memsilo.ForbiddenError);
      assert.deepEqual((await storeB.getByIds(['same'])).map((d) => d.pageContent), ['B secret']);
    });
  });
}

describe('packaging', () => {
  it('memsilo alone loads no LangChain module', () => {
    const { execFileSync } = require('node:child_process');
    const out = execFileSync(process.execPath, ['-e', "require('memsilo'); console.log(Object.keys(require.cache).filter((f) => f.includes('@langchain')).length)"], { cwd: __dirname });
    assert.equal(out.toString().trim(), '0');
  });
});
