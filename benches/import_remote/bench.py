"""Remote import from Python: the memories/s of ``Memsilo.import_namespace`` against a running
``memsilo serve``, now (core's importer: the file streamed as one request body) and as the SDK
did before issue 16's importer (one ``import_namespace`` call a batch of 1000 lines, its code
kept below as ``one_call_a_batch``), alternated run by run into fresh namespaces.

    python benches/import_remote/bench.py --url http://127.0.0.1:3300 --key ADMIN_KEY \\
        --server-pid PID [--n 100000] [--runs 3] [--file export.jsonl]

The export (``--file``, made once if missing): ``--n`` memories of 384 dimensions (content,
tags, metadata, a caller vector each) stored in a namespace of a temporary data directory and
exported, as the model bench's (core/benches/model.rs). Each line printed: wall rate, and the
rate per CPU second of client and server together (the server's from /proc/PID/stat).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

import memsilo

DIMS = 384


def make_export(path: str, n: int) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as data:
        db = memsilo.open(os.path.join(data, "data"))
        db.create_namespace("src", dimensions=DIMS)
        for start in range(0, n, 1000):
            items = [
                {
                    "id": f"m{i:06d}",
                    "content": f"memory {i}: a note about topic {i % 200} written for the import bench",
                    "tags": [f"t{i % 16}"],
                    "metadata": {"group": i % 100, "source": "bench"},
                    "embedding": [rng.gauss(0.0, 1.0) for _ in range(DIMS)],
                }
                for i in range(start, min(n, start + 1000))
            ]
            db.store_memories("src", items)
        with open(path, "w") as out:
            for line in db.export_namespace("src"):
                out.write(json.dumps(line) + "\n")


def one_call_a_batch(
    db: memsilo.Memsilo,
    namespace: str,
    lines: Iterable[Union[str, bytes, Mapping[str, Any]]],
    batch_size: int = 1000,
) -> Dict[str, int]:
    """``Memsilo.import_namespace`` as it was before core's importer (python/memsilo/client.py
    at ef2cf50), verbatim but for ``self`` and the helper it called."""
    total = {"lines": 0, "memories": 0, "entities": 0, "relations": 0, "expired": 0}
    batch: List[Any] = []
    first = 1
    number = 0
    started = False
    embedder: Optional[str] = None

    def send() -> None:
        args: Dict[str, Any] = {"namespace": namespace, "lines": batch, "first_line": first}
        if embedder is not None:
            args["embedder"] = embedder
        done = db._call("import_namespace", args)
        for k in total:
            total[k] += done[k]

    for line in lines:
        number += 1
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        if isinstance(line, str) and not line.strip():
            if not batch:
                first = number + 1
            continue
        if not started:
            started = True
            embedder = _export_embedder(line)
        batch.append(line.rstrip("\n") if isinstance(line, str) else line)
        if len(batch) >= batch_size:
            send()
            batch, first = [], number + 1
    if batch:
        send()
    return total


def _export_embedder(line: Any) -> Optional[str]:
    try:
        obj = json.loads(line) if isinstance(line, str) else line
    except ValueError:
        return None
    if isinstance(obj, Mapping) and obj.get("kind") == "namespace":
        found = obj.get("embedder")
        return found if isinstance(found, str) else None
    return None


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--file", default="import-bench.jsonl")
    args = p.parse_args()
    if not os.path.exists(args.file):
        make_export(args.file, args.n)
    db = memsilo.connect(args.url, args.key)
    tag = f"{int(time.time())}"
    db.create_namespace(f"warm{tag}", dimensions=DIMS)
    db.import_namespace(f"warm{tag}", [])  # the client's first import asks whether the server streams
    for run in range(args.runs):
        order = ["streamed", "one call a batch"] if run % 2 else ["one call a batch", "streamed"]
        for how in order:
            ns = f"{'s' if how == 'streamed' else 'b'}{tag}r{run}"
            db.create_namespace(ns, dimensions=DIMS)
            load = os.getloadavg()[0]
            t0, c0, s0 = time.perf_counter(), cpu_self(), cpu_of(args.server_pid)
            if how == "streamed":
                with open(args.file, "rb") as f:
                    done = db.import_namespace(ns, f)
            else:
                with open(args.file) as f:
                    done = one_call_a_batch(db, ns, f)
            wall, client, server = time.perf_counter() - t0, cpu_self() - c0, cpu_of(args.server_pid) - s0
            n = done["memories"]
            print(
                f"run {run} {how:>16}: {n} memories in {wall:.2f}s: {n / wall:,.0f}/s wall, "
                f"{n / (client + server):,.0f}/s per CPU second (client {client:.1f}s, server {server:.1f}s), "
                f"load {load:.1f}",
                flush=True,
            )
            db.delete_namespace(ns)


if __name__ == "__main__":
    sys.exit(main())
