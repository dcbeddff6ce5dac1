// Types of `memsilo/langgraph`: a LangGraph.js BaseStore over one memsilo namespace.
import { BaseStore, type Operation, type OperationResults } from '@langchain/langgraph-checkpoint';
import type { EmbeddingsInterface } from '@langchain/core/embeddings';
import type { Memsilo } from '../index';

export interface MemsiloStoreOptions {
  /** Semantic search: every text at `fields` (default `["$"]`, the whole value) is embedded. */
  index?: { dims: number; embeddings: EmbeddingsInterface; fields?: string[] };
}

export declare class MemsiloStore extends BaseStore {
  readonly client: Memsilo;
  readonly namespace: string;
  constructor(client: Memsilo, namespace: string, options?: MemsiloStoreOptions);
  batch<Op extends Operation[]>(operations: Op): Promise<OperationResults<Op>>;
}

/** The memsilo id of the item `(namespace, key)` (the same in the Python store). */
export declare function itemId(namespace: string[], key: string): string;
