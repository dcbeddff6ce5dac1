'use strict';
// LangGraph.js long-term memory store (BaseStore) over one memsilo namespace
// (`require('memsilo/langgraph')`, also `require('memsilo/langchain').MemsiloStore`).
//
// The same layout as the Python MemsiloStore, so both read each other's data: one memsilo
// namespace holds the whole store (one per tenant, reached through its scoped key); an item
// (namespace, key) is the memory `lg:` + sha256 of the compact JSON [...namespace, key], with
// metadata {lg: {ns: {"0": label0, ...}, depth, key, item, rows, row, indexed}, value}. With an
// index config each extracted text is one vector: the first on the item's memory, each further
// one on `<id>#<i>` (a copy of the item), so an item scores as its best field. Items put with
// index=false keep a placeholder vector and are filtered out of semantic search. Without an
// index config memsilo's own embedder embeds each item's JSON and `query` searches with it.

const crypto = require('node:crypto');
const { BaseStore, getTextAtPath, validateNamespace } = require('@langchain/langgraph-checkpoint');
const { scopedFilter, allOf } = require('./filters.js');

const BATCH = 1000;
const MAX_TOP_K = 1000;
const MIN_FETCH = 10; // smallest recall request of a semantic search

function itemId(namespace, key) {
  const digest = crypto.createHash('sha256').update(JSON.stringify([...namespace, key])).digest('hex');
  return `lg:${digest}`;
}

const rowId = (base, row) => (row === 0 ? base : `${base}#${row}`);

function prefixFilter(prefix) {
  const parts = {};
  prefix.forEach((label, i) => {
    if (label !== '*') parts[`metadata.lg.ns.${i}`] = label;
  });
  if (prefix.length > 0 && Object.keys(parts).length === 0) return { [`metadata.lg.ns.${prefix.length - 1}`]: { $exists: true } };
  return Object.keys(parts).length > 0 ? parts : undefined;
}

function matches(condition, ns) {
  const path = condition.path;
  if (ns.length < path.length) return false;
  const part = condition.matchType === 'prefix' ? ns.slice(0, path.length) : ns.slice(ns.length - path.length);
  return path.every((p, i) => p === '*' || p === part[i]);
}

const namespaceOf = (memory) => {
  const lg = memory.metadata.lg;
  return Array.from({ length: lg.depth }, (_, i) => lg.ns[String(i)]);
};

const time = (text) => new Date(text);

function toItem(memory, score) {
  const item = {
    namespace: namespaceOf(memory),
    key: memory.metadata.lg.key,
    value: memory.metadata.value,
    createdAt: time(memory.created_at),
    updatedAt: time(memory.updated_at || memory.created_at),
  };
  if (score !== undefined) item.score = score;
  return item;
}

const compareNs = (a, b) => {
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return a.length - b.length;
};

class MemsiloStore extends BaseStore {
  /**
   * @param {object} client a memsilo handle (open, connect or scoped)
   * @param {string} namespace the memsilo namespace holding the store
   * @param {{index?: {dims: number, embeddings: object, fields?: string[]}}} [options]
   */
  constructor(client, namespace, { index } = {}) {
    super();
    if (!client || typeof client.recall !== 'function') throw new TypeError('memsilo: client must be a memsilo handle');
    this.client = client;
    this.namespace = namespace;
    this.index = index || null;
    this.fields = (index && index.fields) || ['$'];
  }

  #texts(op) {
    const paths = op.index === undefined || op.index === null ? this.fields : op.index;
    const texts = [];
    for (const path of paths) {
      const found = path === '$' ? [JSON.stringify(op.value)] : getTextAtPath(op.value, path);
      texts.push(...found.filter((t) => t));
    }
    return texts;
  }

  async batch(operations) {
    const puts = new Map();
    for (const op of operations) {
      if ('value' in op) {
        validateNamespace(op.namespace, { allowReservedRoot: true });
        puts.delete(JSON.stringify([op.namespace, op.key]));
        puts.set(JSON.stringify([op.namespace, op.key]), op);
      } else if ('namespacePrefix' in op) validateNamespace(op.namespacePrefix, { allowEmpty: true, allowReservedRoot: true });
      else if ('namespace' in op) validateNamespace(op.namespace, { allowReservedRoot: true });
    }
    if (puts.size > 0) await this.#applyPuts([...puts.values()]);
    const gets = operations.filter((op) => !('value' in op) && 'key' in op && 'namespace' in op);
    const found = await this.#getRows(gets.map((op) => itemId(op.namespace, op.key)));
    const results = [];
    for (const op of operations) {
      if ('value' in op) results.push(undefined);
      else if ('namespacePrefix' in op) results.push(await this.#search(op));
      else if ('key' in op) {
        const memory = found.get(itemId(op.namespace, op.key));
        results.push(memory ? toItem(memory) : null);
      } else results.push(await this.#listNamespaces(op));
    }
    return results;
  }

  async #getRows(ids) {
    const out = new Map();
    const unique = [...new Set(ids)];
    for (let start = 0; start < unique.length; start += BATCH) {
      for (const m of await this.client.getMemories(this.namespace, unique.slice(start, start + BATCH))) out.set(m.id, m);
    }
    return out;
  }

  async #applyPuts(ops) {
    const before = await this.#getRows(ops.map((op) => itemId(op.namespace, op.key)));
    const texts = ops.map((op) => (this.index && op.value !== null && op.index !== false ? this.#texts(op) : []));
    const flat = texts.flat();
    const vectors = flat.length > 0 ? await this.index.embeddings.embedDocuments(flat) : [];
    let next = 0;
    const rows = [];
    const stale = [];
    ops.forEach((op, i) => {
      const base = itemId(op.namespace, op.key);
      const had = before.has(base) ? Number(before.get(base).metadata.lg.rows || 1) : 0;
      if (op.value === null) {
        for (let r = 0; r < had; r += 1) stale.push(rowId(base, r));
        return;
      }
      const mine = texts[i];
      const count = Math.max(1, mine.length);
      const lg = {
        ns: Object.fromEntries(op.namespace.map((label, j) => [String(j), label])),
        depth: op.namespace.length,
        key: op.key,
        item: base,
        rows: count,
        indexed: !this.index || mine.length > 0,
      };
      for (let r = 0; r < count; r += 1) {
        const row = { id: rowId(base, r), metadata: { lg: { ...lg, row: r }, value: op.value } };
        if (!this.index) row.content = JSON.stringify(op.value);
        else if (mine.length > 0) {
          row.content = mine[r];
          row.embedding = vectors[next];
          next += 1;
        } else {
          row.content = op.key;
          row.embedding = this.#placeholder();
        }
        rows.push(row);
      }
      for (let r = count; r < had; r += 1) stale.push(rowId(base, r));
    });
    for (let start = 0; start < rows.length; start += BATCH) await this.client.storeMemories(this.namespace, rows.slice(start, start + BATCH));
    for (let start = 0; start < stale.length; start += BATCH) await this.client.batchForget(this.namespace, { ids: stale.slice(start, start + BATCH) });
  }

  #placeholder() {
    const dims = Number(this.index.dims || 0);
    if (dims <= 0) throw new Error('memsilo: index.dims is required to store items with index=false');
    return [1, ...new Array(dims - 1).fill(0)];
  }

  async #search(op) {
    const offset = op.offset ?? 0;
    const limit = op.limit ?? 10;
    const where = allOf(prefixFilter(op.namespacePrefix), scopedFilter(op.filter, 'metadata.value'));
    if (offset + limit === 0) return [];
    if (op.query) return (await this.#ranked(op, where, offset + limit)).slice(offset, offset + limit);
    const filter = allOf(where, { 'metadata.lg.row': 0 });
    const found = [];
    let cursor;
    while (found.length < offset + limit) {
      const page = await this.client.listMemories(this.namespace, {
        filter,
        orderBy: 'updated_at',
        descending: true,
        limit: Math.min(MAX_TOP_K, offset + limit - found.length),
        cursor,
      });
      found.push(...page.memories.map((m) => toItem(m)));
      cursor = page.next_cursor ?? page.nextCursor;
      if (!cursor) break;
    }
    return found.slice(offset, offset + limit);
  }

  async #ranked(op, where, wanted) {
    const filter = allOf(where, { 'metadata.lg.indexed': true });
    const vector = this.index ? await this.index.embeddings.embedQuery(op.query) : undefined;
    // One request size for the first pages, so paging through equal scores stays stable.
    let topK = Math.min(MAX_TOP_K, Math.max(wanted, MIN_FETCH) * Math.max(1, this.fields.length));
    for (;;) {
      const hits = vector
        ? await this.client.recall(this.namespace, null, { vector, topK, filter })
        : await this.client.recall(this.namespace, op.query, { topK, filter });
      const best = new Map();
      for (const hit of hits) {
        const base = hit.metadata.lg.item;
        if (!best.has(base)) best.set(base, toItem(hit, hit.similarity));
      }
      if (best.size >= wanted || hits.length < topK || topK >= MAX_TOP_K) {
        return [...best.values()].sort((x, y) => y.score - x.score || compareNs(x.namespace, y.namespace) || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
      }
      topK = Math.min(MAX_TOP_K, topK * 4);
    }
  }

  async #listNamespaces(op) {
    const conditions = op.matchConditions || [];
    const filter = allOf({ 'metadata.lg.row': 0 }, ...conditions.filter((c) => c.matchType === 'prefix').map((c) => prefixFilter(c.path)));
    const seen = new Map();
    let cursor;
    for (;;) {
      const page = await this.client.listMemories(this.namespace, { filter, limit: MAX_TOP_K, cursor });
      for (const m of page.memories) {
        const ns = namespaceOf(m);
        seen.set(JSON.stringify(ns), ns);
      }
      cursor = page.next_cursor ?? page.nextCursor;
      if (!cursor) break;
    }
    let found = [...seen.values()].filter((ns) => conditions.every((c) => matches(c, ns)));
    if (op.maxDepth !== undefined && op.maxDepth !== null) {
      const cut = new Map(found.map((ns) => ns.slice(0, op.maxDepth)).map((ns) => [JSON.stringify(ns), ns]));
      found = [...cut.values()];
    }
    found.sort(compareNs);
    return found.slice(op.offset ?? 0, (op.offset ?? 0) + (op.limit ?? 100));
  }
}

module.exports = { MemsiloStore, itemId };
