"""The workloads, run against one system inside one worker process.

Each returns a flat dict of measurements. Timings are wall-clock (``perf_counter``); latencies
are per call, single thread, one query at a time, after a short warm-up.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

import data
from systems import BATCH, System

WARMUP = 20


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (``du``: sparse files count what they use)."""
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def settle(window: float = 4.0, limit: float = 600.0) -> float:
    """Waits until this process (all its threads: background indexers, compactions) has been
    idle for ``window`` seconds; returns the seconds until it went idle."""
    start = time.perf_counter()
    last_busy = start
    prev = cpu_seconds()
    while True:
        time.sleep(0.25)
        now, cpu = time.perf_counter(), cpu_seconds()
        if cpu - prev > 0.25 * 0.1:  # more than 10% of a core in this tick
            last_busy = now
        prev = cpu
        if now - last_busy >= window or now - start > limit:
            return last_busy - start


def latencies(sys_: System, pick_ns, queries: np.ndarray, k: int) -> tuple[List[float], List[List[int]], float]:
    """Runs each query once (after a warm-up), one at a time; returns per-query seconds, the
    answers, and the total wall time."""
    for q in queries[:WARMUP]:
        sys_.query(pick_ns(0), q, k)
    times, found = [], []
    t_all = time.perf_counter()
    for i, q in enumerate(queries):
        ns = pick_ns(i)
        t0 = time.perf_counter()
        ids = sys_.query(ns, q, k)
        times.append(time.perf_counter() - t0)
        found.append(ids)
    return times, found, time.perf_counter() - t_all


def pct(xs: List[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, p))


def delete_and_reclaim(sys_: System, ns: str, root: Path, limit: float = 90.0) -> Dict[str, Any]:
    """Deletes ``ns``; measures the call, checks it is unreadable at once, then watches the
    data directory until its size has not changed for 5 s."""
    before = disk_bytes(root) if sys_.on_disk else 0
    t0 = time.perf_counter()
    sys_.delete(ns)
    call = time.perf_counter() - t0
    gone = not sys_.exists(ns)
    out: Dict[str, Any] = {"delete_call_ms": call * 1000, "gone_at_once": gone, "disk_before": before}
    if not sys_.on_disk:
        return out
    size, changed_at, start = before, t0, t0
    while True:
        now = time.perf_counter()
        cur = disk_bytes(root)
        if cur != size:
            size, changed_at = cur, now
        if now - changed_at >= 5.0 or now - start > limit:
            break
        time.sleep(0.25)
    out.update(
        disk_after=size,
        reclaimed_bytes=before - size,
        reclaim_s=max(0.0, changed_at - t0) if size != before else None,
    )
    return out


def single(sys_: System, root: Path, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int) -> Dict[str, Any]:
    """Workloads 1, 2 and 4 on one namespace of ``len(base)`` rows."""
    ns = "bench-main"
    rss0 = rss_now()
    sys_.create(ns)
    texts = [data.content(i) for i in range(len(base))]
    t0 = time.perf_counter()
    for s in range(0, len(base), BATCH):
        ids = list(range(s, min(s + BATCH, len(base))))
        sys_.insert(ns, ids, base[s : s + BATCH], texts[s : s + BATCH])
    ingest = time.perf_counter() - t0
    t1 = time.perf_counter()
    note = sys_.ready(ns)
    ready = time.perf_counter() - t1
    background = settle()
    times, found, wall = latencies(sys_, lambda i: ns, queries, k)
    res: Dict[str, Any] = {
        "n": len(base),
        "ingest_s": ingest,
        "ingest_per_s": len(base) / ingest,
        "ready_s": ready,
        "ready_note": note,
        "background_s": background,
        "p50_ms": pct(times, 50),
        "p99_ms": pct(times, 99),
        "qps": len(queries) / wall,
        "recall_at_k": data.recall_at_k(found, truth),
        "disk_bytes": disk_bytes(root) if sys_.on_disk else None,
        "rss_delta_mb": (rss_peak() - rss0) / 2**20,
    }
    res.update({f"del_{key}": v for key, v in delete_and_reclaim(sys_, ns, root).items()})
    return res


def tenants(
    sys_: System, root: Path, seed: int, count: int, per: int, queries: int, k: int, budget: float
) -> Dict[str, Any]:
    """Workload 3 (and 4 for one small tenant): ``count`` namespaces of ``per`` rows each."""
    names = [f"tenant-{t:05d}" for t in range(count)]
    t0 = time.perf_counter()
    made = 0
    for t, ns in enumerate(names):
        vecs = data.tenant_vectors(seed, t, per)
        sys_.create(ns)
        sys_.insert(ns, list(range(per)), vecs, [data.content(i, t) for i in range(per)])
        made += 1
        if time.perf_counter() - t0 > budget:
            break
    create = time.perf_counter() - t0
    background = settle()
    disk = disk_bytes(root)
    rng = np.random.default_rng([seed, 99])
    which = rng.integers(0, made, size=queries)
    cents = data.centres(seed)
    qs = data.sample(rng, cents, queries)
    times, found, wall = latencies(sys_, lambda i: names[which[i]], qs, k)
    truth = np.stack(
        [data.exact_top_k(data.tenant_vectors(seed, int(t), per), q[None, :], k)[0] for t, q in zip(which, qs)]
    )
    res: Dict[str, Any] = {
        "namespaces": made,
        "namespaces_target": count,
        "per_namespace": per,
        "create_s": create,
        "create_per_s": made / create,
        "complete": made == count,
        "background_s": background,
        "disk_bytes": disk,
        "disk_per_ns": disk / made,
        "p50_ms": pct(times, 50),
        "p99_ms": pct(times, 99),
        "qps": queries / wall,
        "recall_at_k": data.recall_at_k(found, truth),
    }
    victim = names[made // 2]
    res.update({f"del_{key}": v for key, v in delete_and_reclaim(sys_, victim, root).items()})
    return res


def rss_now() -> int:
    """Resident bytes now; also resets the peak (VmHWM) to it, so that ``rss_peak`` measures
    from here and not the harness's own transient peak while loading the data."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_peak() -> int:
    """Peak resident bytes since the last ``rss_now`` (VmHWM; ru_maxrss where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
