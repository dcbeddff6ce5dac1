'use strict';
// LangChain.js VectorStore over one memsilo namespace (`require('memsilo/langchain')`).
// A document is one memory: pageContent its content, metadata its metadata, id its id (the same
// id again replaces it). Filters are memsilo's filter language over the documents' metadata.
// Build it from a handle acting as a scoped key and it reaches only that tenant's namespace.

const { VectorStore } = require('@langchain/core/vectorstores');
const { Document } = require('@langchain/core/documents');
const { maximalMarginalRelevance } = require('@langchain/core/utils/math');
const { scopedFilter } = require('./filters.js');

const BATCH = 1000; // most memories per store/get call

function toDocument(memory) {
  return new Document({ id: memory.id, pageContent: memory.content, metadata: { ...(memory.metadata || {}) } });
}

class MemsiloVectorStore extends VectorStore {
  /** @param {import('@langchain/core/embeddings').EmbeddingsInterface} embeddings */
  constructor(embeddings, { client, namespace }) {
    super(embeddings, { namespace });
    if (!client || typeof client.recall !== 'function') throw new TypeError('memsilo: client must be a memsilo handle');
    if (typeof namespace !== 'string') throw new TypeError('memsilo: namespace must be a string');
    this.client = client;
    this.namespace = namespace;
  }

  _vectorstoreType() {
    return 'memsilo';
  }

  async addVectors(vectors, documents, options = {}) {
    if (vectors.length !== documents.length) throw new Error(`memsilo: ${vectors.length} vectors for ${documents.length} documents`);
    const ids = options.ids ?? documents.map((d) => d.id);
    const items = documents.map((doc, i) => {
      const item = { content: doc.pageContent, metadata: { ...(doc.metadata || {}) }, embedding: vectors[i] };
      if (ids && ids[i] !== undefined && ids[i] !== null) item.id = ids[i];
      return item;
    });
    const out = [];
    for (let start = 0; start < items.length; start += BATCH) {
      out.push(...(await this.client.storeMemories(this.namespace, items.slice(start, start + BATCH))));
    }
    return out;
  }

  async addDocuments(documents, options) {
    const vectors = await this.embeddings.embedDocuments(documents.map((d) => d.pageContent));
    return this.addVectors(vectors, documents, options);
  }

  /** Deletes `{ids}` (absent ids are ignored), or everything with `{deleteAll: true}`. */
  async delete({ ids, deleteAll } = {}) {
    if (deleteAll) {
      await this.client.batchForget(this.namespace, { filter: {} });
      return;
    }
    if (!Array.isArray(ids)) throw new TypeError('memsilo: delete needs {ids: string[]} or {deleteAll: true}');
    for (let start = 0; start < ids.length; start += BATCH) {
      await this.client.batchForget(this.namespace, { ids: ids.slice(start, start + BATCH) });
    }
  }

  /** The documents with these ids, in that order; absent ids are left out. */
  async getByIds(ids) {
    const out = [];
    for (let start = 0; start < ids.length; start += BATCH) {
      const found = await this.client.getMemories(this.namespace, ids.slice(start, start + BATCH));
      out.push(...found.map(toDocument));
    }
    return out;
  }

  async #recall(vector, k, filter) {
    const opts = { vector, topK: k };
    const where = scopedFilter(filter, 'metadata');
    if (where !== undefined) opts.filter = where;
    return this.client.recall(this.namespace, null, opts);
  }

  /** The `k` documents nearest `query` with their cosine similarity, best first. */
  async similaritySearchVectorWithScore(query, k, filter) {
    const hits = await this.#recall(query, k, filter);
    return hits.map((h) => [toDocument(h), h.similarity]);
  }

  async maxMarginalRelevanceSearch(query, options = {}) {
    const { k = 4, fetchK = 20, lambda = 0.5, filter } = options;
    const vector = await this.embeddings.embedQuery(query);
    const hits = await this.#recall(vector, Math.max(fetchK, k), filter);
    if (hits.length === 0) return [];
    const stored = await this.client.getMemories(this.namespace, hits.map((h) => h.id), { includeVectors: true });
    const vectors = new Map(stored.map((m) => [m.id, m.vector]));
    const kept = hits.filter((h) => vectors.has(h.id));
    const chosen = maximalMarginalRelevance(vector, kept.map((h) => vectors.get(h.id)), lambda, k);
    return chosen.map((i) => toDocument(kept[i]));
  }

  static async fromTexts(texts, metadatas, embeddings, config) {
    const docs = texts.map((text, i) => new Document({ pageContent: text, metadata: Array.isArray(metadatas) ? metadatas[i] || {} : metadatas || {} }));
    return MemsiloVectorStore.fromDocuments(docs, embeddings, config);
  }

  static async fromDocuments(docs, embeddings, config) {
    const store = new this(embeddings, config);
    await store.addDocuments(docs, config && config.ids ? { ids: config.ids } : undefined);
    return store;
  }
}

module.exports = { MemsiloVectorStore };
// The LangGraph.js store is here too when @langchain/langgraph is installed.
Object.defineProperty(module.exports, 'MemsiloStore', {
  enumerable: true,
  get: () => require('./langgraph.js').MemsiloStore,
});
