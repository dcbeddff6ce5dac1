"""One adapter per system under test, all with the same small interface.

A namespace is memsilo's namespace, a Chroma collection, a LanceDB table, or (for the two
baselines, which are libraries rather than stores) an in-memory index. Rows are identified by
their integer position in the generated data, so every answer can be scored against the exact
ground truth. Each adapter stores the same text and importance next to each vector.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, List, Sequence, Type

import numpy as np

BATCH = 1000  # rows per write call for every system (memsilo's store_memories maximum)


class System:
    name = ""
    # Whether the multi-tenant workload (many namespaces on disk) applies.
    multi_tenant = True
    # Whether deletion frees disk space (a library keeping its index in memory does not use any).
    on_disk = True

    def __init__(self, root: Path, dims: int) -> None:
        self.root = root
        self.dims = dims

    def create(self, ns: str) -> None:
        raise NotImplementedError

    def insert(self, ns: str, ids: Sequence[int], vectors: np.ndarray, texts: Sequence[str]) -> None:
        """Stores one batch (at most ``BATCH`` rows)."""
        raise NotImplementedError

    def ready(self, ns: str) -> str:
        """Makes ``ns`` ready for approximate search where the system needs an explicit step;
        returns a short note on what was done (or "")."""
        return ""

    def query(self, ns: str, vector: np.ndarray, k: int) -> List[int]:
        """Row ids of the ``k`` nearest rows, best first."""
        raise NotImplementedError

    def delete(self, ns: str) -> None:
        raise NotImplementedError

    def exists(self, ns: str) -> bool:
        """Whether ``ns`` can still be read (after ``delete``, it must not)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class Memsilo(System):
    """memsilo in-process (embedded root handle), caller-supplied vectors."""

    name = "memsilo"

    def __init__(self, root: Path, dims: int) -> None:
        super().__init__(root, dims)
        import memsilo

        self._errors = (memsilo.NotFoundError,)
        self.db = memsilo.open(str(root))
        self.uuid_to_row: Dict[str, int] = {}

    def create(self, ns: str) -> None:
        self.db.create_namespace(ns, dimensions=self.dims)

    def insert(self, ns, ids, vectors, texts):
        # NumPy rows, as a NumPy user passes them (the SDK sends them as one float32 block).
        batch = [{"content": t, "embedding": v, "importance": 0.5} for t, v in zip(texts, vectors)]
        for uid, row in zip(self.db.store_memories(ns, batch), ids):
            self.uuid_to_row[uid] = row

    def query(self, ns, vector, k):
        hits = self.db.recall(ns, vector=vector, top_k=k)
        return [self.uuid_to_row[h["id"]] for h in hits]

    def delete(self, ns):
        self.db.delete_namespace(ns)

    def exists(self, ns):
        try:
            self.db.get_namespace(ns)
            return True
        except self._errors:
            return False


class Chroma(System):
    """Chroma embedded (PersistentClient, Rust core in-process); one collection per namespace,
    HNSW with cosine space."""

    name = "chroma"

    def __init__(self, root: Path, dims: int) -> None:
        super().__init__(root, dims)
        import chromadb
        from chromadb.config import Settings

        self.client = chromadb.PersistentClient(path=str(root), settings=Settings(anonymized_telemetry=False))
        self.cols: Dict[str, Any] = {}

    def create(self, ns):
        self.cols[ns] = self.client.create_collection(
            ns, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )

    def insert(self, ns, ids, vectors, texts):
        self.cols[ns].add(
            ids=[str(i) for i in ids],
            embeddings=vectors,
            documents=list(texts),
            metadatas=[{"importance": 0.5}] * len(ids),
        )

    def query(self, ns, vector, k):
        r = self.cols[ns].query(query_embeddings=vector[None, :], n_results=k, include=["documents", "distances"])
        return [int(i) for i in r["ids"][0]]

    def delete(self, ns):
        self.client.delete_collection(ns)
        self.cols.pop(ns, None)

    def exists(self, ns):
        try:
            self.client.get_collection(ns)
            return True
        except Exception:  # chromadb raises NotFoundError / ValueError depending on version
            return False


class Lance(System):
    """LanceDB embedded; one table per namespace. Without an index a search is a flat
    (exact) scan, LanceDB's default for a table that has none."""

    name = "lancedb"
    index_type: str | None = None

    def __init__(self, root: Path, dims: int) -> None:
        super().__init__(root, dims)
        import lancedb
        import pyarrow as pa

        self.pa = pa
        self.db = lancedb.connect(str(root))
        self.schema = pa.schema(
            [
                pa.field("id", pa.int64()),
                pa.field("content", pa.string()),
                pa.field("importance", pa.float32()),
                pa.field("vector", pa.list_(pa.float32(), dims)),
            ]
        )
        self.tables: Dict[str, Any] = {}

    def create(self, ns):
        self.tables[ns] = self.db.create_table(ns, schema=self.schema)

    def insert(self, ns, ids, vectors, texts):
        pa = self.pa
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), type=pa.float32())
        batch = pa.table(
            {
                "id": pa.array(np.asarray(ids, dtype=np.int64)),
                "content": pa.array(list(texts), type=pa.string()),
                "importance": pa.array(np.full(len(ids), 0.5, dtype=np.float32)),
                "vector": pa.FixedSizeListArray.from_arrays(flat, self.dims),
            },
            schema=self.schema,
        )
        self.tables[ns].add(batch)

    def ready(self, ns):
        if self.index_type is None:
            return ""
        tbl = self.tables[ns]
        rows = tbl.count_rows()
        if rows < 5000:
            return "too few rows for an index: flat scan"
        tbl.create_index(metric="cosine", vector_column_name="vector", index_type=self.index_type)
        return f"{self.index_type} built"

    def query(self, ns, vector, k):
        q = self.tables[ns].search(vector, vector_column_name="vector").distance_type("cosine").limit(k)
        q = q.select(["id", "content"])
        return q.to_arrow().column("id").to_pylist()

    def delete(self, ns):
        self.db.drop_table(ns)
        self.tables.pop(ns, None)

    def exists(self, ns):
        return ns in self.db.table_names(limit=1_000_000)


class LanceIndexed(Lance):
    """LanceDB with an ANN index (IVF_HNSW_SQ) built after ingest (single namespace only:
    100-row tables are searched flat anyway)."""

    name = "lancedb-ivf_hnsw_sq"
    index_type = "IVF_HNSW_SQ"
    multi_tenant = False


class USearch(System):
    """usearch HNSW in memory (a library, not a store): the plain-ANN reference point."""

    name = "usearch"
    multi_tenant = False
    on_disk = False

    def __init__(self, root: Path, dims: int) -> None:
        super().__init__(root, dims)
        self.indexes: Dict[str, Any] = {}
        self.texts: Dict[str, Dict[int, str]] = {}

    def create(self, ns):
        from usearch.index import Index

        self.indexes[ns] = Index(ndim=self.dims, metric="cos", dtype="f32")
        self.texts[ns] = {}

    def insert(self, ns, ids, vectors, texts):
        self.indexes[ns].add(np.asarray(ids, dtype=np.uint64), vectors)
        self.texts[ns].update(zip(ids, texts))

    def query(self, ns, vector, k):
        m = self.indexes[ns].search(vector, k, threads=1)
        return [int(x) for x in m.keys]

    def delete(self, ns):
        del self.indexes[ns], self.texts[ns]

    def exists(self, ns):
        return ns in self.indexes


class NumpyExact(System):
    """NumPy brute force (one matrix-vector product per query): the exact baseline."""

    name = "numpy-exact"
    multi_tenant = False
    on_disk = False

    def __init__(self, root: Path, dims: int) -> None:
        super().__init__(root, dims)
        self.parts: Dict[str, List[np.ndarray]] = {}
        self.ids: Dict[str, List[int]] = {}
        self.mat: Dict[str, np.ndarray] = {}

    def create(self, ns):
        self.parts[ns], self.ids[ns] = [], []

    def insert(self, ns, ids, vectors, texts):
        self.parts[ns].append(np.array(vectors, dtype=np.float32))
        self.ids[ns].extend(ids)
        self.mat.pop(ns, None)

    def query(self, ns, vector, k):
        m = self.mat.get(ns)
        if m is None:
            m = self.mat[ns] = np.concatenate(self.parts[ns])
        sims = m @ vector
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        ids = self.ids[ns]
        return [ids[i] for i in top]

    def delete(self, ns):
        del self.parts[ns], self.ids[ns]
        self.mat.pop(ns, None)

    def exists(self, ns):
        return ns in self.parts


SYSTEMS: Dict[str, Type[System]] = {
    cls.name: cls for cls in (Memsilo, Chroma, Lance, LanceIndexed, USearch, NumpyExact)
}


def make(name: str, root: Path, dims: int) -> System:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return SYSTEMS[name](root, dims)

