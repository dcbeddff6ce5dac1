// Types of `memsilo/langchain`: a LangChain.js VectorStore (and the LangGraph.js store) over one
// memsilo namespace. Needs @langchain/core 1.x (and @langchain/langgraph 1.x for MemsiloStore).
import type { Callbacks } from '@langchain/core/callbacks/manager';
import type { DocumentInterface } from '@langchain/core/documents';
import type { EmbeddingsInterface } from '@langchain/core/embeddings';
import { VectorStore, type MaxMarginalRelevanceSearchOptions } from '@langchain/core/vectorstores';
import type { Memsilo } from '../index';

/** A memsilo filter over the documents' metadata: `{ genre: 'sf', year: { $gte: 2000 } }`,
 *  `$and`/`$or`/`$not`, `$in`, `$nin`, `$exists`, `$contains`, ... */
export type MemsiloFilter = Record<string, unknown>;

export interface MemsiloVectorStoreConfig {
  /** A memsilo handle: `open(path)`, `await connect(url, {apiKey})` or `await db.scoped(key)`. */
  client: Memsilo;
  /** The memsilo namespace holding the documents. */
  namespace: string;
  /** Ids for fromTexts/fromDocuments (the same id again replaces the document). */
  ids?: string[];
}

export declare class MemsiloVectorStore extends VectorStore {
  FilterType: MemsiloFilter;
  readonly client: Memsilo;
  readonly namespace: string;
  constructor(embeddings: EmbeddingsInterface, config: MemsiloVectorStoreConfig);
  _vectorstoreType(): string;
  addVectors(vectors: number[][], documents: DocumentInterface[], options?: { ids?: string[] }): Promise<string[]>;
  addDocuments(documents: DocumentInterface[], options?: { ids?: string[] }): Promise<string[]>;
  /** Deletes `{ids}` (absent ids are ignored), or every document with `{deleteAll: true}`. */
  delete(params: { ids?: string[]; deleteAll?: boolean }): Promise<void>;
  /** The documents with these ids, in that order; absent ids are left out. */
  getByIds(ids: string[]): Promise<DocumentInterface[]>;
  /** Cosine similarity in [-1, 1], best first. */
  similaritySearchVectorWithScore(query: number[], k: number, filter?: MemsiloFilter): Promise<[DocumentInterface, number][]>;
  maxMarginalRelevanceSearch(query: string, options: MaxMarginalRelevanceSearchOptions<MemsiloFilter>, callbacks?: Callbacks): Promise<DocumentInterface[]>;
  static fromTexts(texts: string[], metadatas: object[] | object, embeddings: EmbeddingsInterface, config: MemsiloVectorStoreConfig): Promise<MemsiloVectorStore>;
  static fromDocuments(docs: DocumentInterface[], embeddings: EmbeddingsInterface, config: MemsiloVectorStoreConfig): Promise<MemsiloVectorStore>;
}

export { MemsiloStore, type MemsiloStoreOptions } from './langgraph';
