// Compiled by types.test.js (tsc --noEmit): the memsilo/langchain declarations describe the
// adapter as a TypeScript program uses it.
import { Document } from '@langchain/core/documents';
import { SyntheticEmbeddings } from '@langchain/core/utils/testing';
import * as memsilo from 'memsilo';
import { MemsiloVectorStore } from 'memsilo/langchain';

export async function main(): Promise<void> {
  const db = memsilo.open('./data');
  const embeddings = new SyntheticEmbeddings({ vectorSize: 8 });
  const store = new MemsiloVectorStore(embeddings, { client: db, namespace: 'ns' });
  const ids: string[] = await store.addDocuments([new Document({ pageContent: 'x', metadata: { a: 1 } })], { ids: ['1'] });
  const scored: [import('@langchain/core/documents').DocumentInterface, number][] = await store.similaritySearchWithScore('x', 2);
  const docs = await store.maxMarginalRelevanceSearch('x', { k: 1, fetchK: 4, lambda: 0.5 });
  await store.delete({ ids });
  const same: MemsiloVectorStore = await MemsiloVectorStore.fromTexts(['y'], [{}], embeddings, { client: db, namespace: 'ns' });
  const retrieved = await same.asRetriever({ k: 1 }).invoke('y');
  console.log(scored.length, docs.length, retrieved.length, (await same.getByIds(['1'])).length);
}
