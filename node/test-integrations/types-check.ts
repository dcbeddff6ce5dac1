// Compiled by types.test.js (tsc --noEmit): the memsilo/langchain and memsilo/langgraph
// declarations describe the adapters as a TypeScript program uses them.
import { Document } from '@langchain/core/documents';
import { SyntheticEmbeddings } from '@langchain/core/utils/testing';
import { BaseStore } from '@langchain/langgraph-checkpoint';
import * as memsilo from 'memsilo';
import { MemsiloVectorStore, MemsiloStore, type MemsiloFilter } from 'memsilo/langchain';
import { itemId } from 'memsilo/langgraph';

export async function main(): Promise<void> {
  const db = memsilo.open('./data');
  const embeddings = new SyntheticEmbeddings({ vectorSize: 8 });
  const store = new MemsiloVectorStore(embeddings, { client: db, namespace: 'ns' });
  const ids: string[] = await store.addDocuments([new Document({ pageContent: 'x', metadata: { a: 1 } })], { ids: ['1'] });
  const filter: MemsiloFilter = { a: { $gte: 1 } };
  const scored: [import('@langchain/core/documents').DocumentInterface, number][] = await store.similaritySearchWithScore('x', 2, filter);
  const docs = await store.maxMarginalRelevanceSearch('x', { k: 1, fetchK: 4, lambda: 0.5, filter });
  await store.delete({ ids });
  const same: MemsiloVectorStore = await MemsiloVectorStore.fromTexts(['y'], [{}], embeddings, { client: db, namespace: 'ns' });
  const retrieved = await same.asRetriever({ k: 1, filter }).invoke('y');
  const graphStore: BaseStore = new MemsiloStore(db, 'ns', { index: { dims: 8, embeddings, fields: ['text'] } });
  await graphStore.put(['users', 'a'], 'k', { text: 'hello' });
  const hits = await graphStore.search(['users'], { query: 'hello', filter: { text: 'hello' }, limit: 1 });
  const id: string = itemId(['users', 'a'], 'k');
  console.log(scored.length, docs.length, retrieved.length, hits[0]?.score, id, (await same.getByIds(['1'])).length);
}
