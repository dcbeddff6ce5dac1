"""Side-by-side benchmark: memsilo against Chroma, LanceDB, usearch and NumPy brute force.

    python harness.py                 # small sizes (a few minutes)
    python harness.py --full          # full sizes
    python harness.py --systems memsilo,chroma --n 20000

The parent generates the data and the exact ground truth once, then runs each system in its
own worker process, one after another (so one system's background threads never run during
another's measurements, and each peak RSS is its own). Results go to ``--out``: results.json,
results.md (the tables) and results.png (the chart). See benches/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import data  # noqa: E402
import report  # noqa: E402
from systems import SYSTEMS, make  # noqa: E402

DEFAULT_SYSTEMS = ["memsilo", "chroma", "lancedb", "lancedb-ivf_hnsw_sq", "usearch", "numpy-exact"]
SMALL = {"n": 10_000, "tenants": 1_000}
FULL = {"n": 100_000, "tenants": 10_000}


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="full sizes: 100k rows, 10,000 namespaces")
    p.add_argument("--n", type=int, help="rows in the single namespace (default 10k, 100k with --full)")
    p.add_argument("--tenants", type=int, help="namespaces in the multi-tenant run (1,000; 10,000 with --full)")
    p.add_argument("--per-tenant", type=int, default=100, help="rows per namespace in the multi-tenant run")
    p.add_argument("--queries", type=int, default=1000, help="timed queries per workload")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--dims", type=int, default=data.DIMS)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS), help="comma-separated: " + ", ".join(SYSTEMS))
    p.add_argument("--skip", default="", help="workloads to skip: single,tenants")
    p.add_argument(
        "--tenant-budget", type=float, default=1200.0, help="seconds a system may spend creating namespaces before it is cut off"
    )
    p.add_argument("--out", type=Path, default=HERE / "out")
    p.add_argument("--keep-data", action="store_true", help="keep each system's data directory under OUT/data")
    p.add_argument("--report", type=Path, help="only redo results.md and results.png from this results.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one system, one workload
    return p.parse_args(argv)


def worker(args: argparse.Namespace) -> None:
    """Runs one (system, workload) pair and prints its result as JSON on the last line."""
    import workloads

    name, workload = args.worker.split(":")
    root = args.out / "data" / f"{name}-{workload}"
    sys_ = make(name, root, args.dims)
    try:
        if workload == "single":
            with np.load(args.out / "corpus.npz") as f:
                base, queries, truth = f["base"], f["queries"], f["truth"]
            res = workloads.single(sys_, root, base, queries, truth, args.k)
        else:
            res = workloads.tenants(
                sys_, root, args.seed, args.tenants, args.per_tenant, args.queries, args.k, args.tenant_budget
            )
    finally:
        sys_.close()
    print(json.dumps(res))


def run_worker(args: argparse.Namespace, name: str, workload: str) -> Dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", f"{name}:{workload}"]
    cmd += ["--out", str(args.out), "--dims", str(args.dims), "--k", str(args.k), "--seed", str(args.seed)]
    cmd += ["--tenants", str(args.tenants), "--per-tenant", str(args.per_tenant), "--queries", str(args.queries)]
    cmd += ["--tenant-budget", str(args.tenant_budget)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    took = time.perf_counter() - t0
    if not args.keep_data:
        shutil.rmtree(args.out / "data" / f"{name}-{workload}", ignore_errors=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        print(f"  {name} {workload}: FAILED ({took:.0f} s)\n    " + "\n    ".join(tail), flush=True)
        return {"error": tail[-1] if tail else f"exit {proc.returncode}"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {name} {workload}: done in {took:.0f} s", flush=True)
    return res


def _git_revision() -> str:
    """The commit the installed memsilo wheel was built from ("+dirty": with uncommitted
    changes), as `make bench-compare` recorded it next to the venv when it built the wheel."""
    recorded = Path(sys.prefix) / "memsilo-revision"
    return recorded.read_text().strip() if recorded.exists() else "unknown (wheel not built by make bench-compare)"


def environment() -> Dict[str, Any]:
    versions = {}
    for mod in ("memsilo", "chromadb", "lancedb", "usearch", "numpy"):
        try:
            m = __import__(mod)
            versions[mod] = getattr(m, "__version__", "?")
        except Exception as e:  # a missing peer is reported, not fatal
            versions[mod] = f"not importable ({type(e).__name__})"
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_at_start": load,
        "memsilo_tree": _git_revision(),
        "versions": versions,
    }


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    sizes = FULL if args.full else SMALL
    args.n = args.n or sizes["n"]
    args.tenants = args.tenants or sizes["tenants"]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker(args)
        return 0
    if args.report:
        write_report(json.loads(args.report.read_text()), args.out)
        return 0
    names = [s for s in args.systems.split(",") if s]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown:
        print(f"unknown systems: {unknown}; choose from {list(SYSTEMS)}", file=sys.stderr)
        return 2
    skip = set(filter(None, args.skip.split(",")))

    print(f"data: {args.n:,} × {args.dims}-d clustered unit vectors, {args.queries} queries, seed {args.seed}", flush=True)
    t0 = time.perf_counter()
    base, queries = data.corpus(args.seed, args.n, args.queries, args.dims)
    truth = data.exact_top_k(base, queries, args.k)
    np.savez(args.out / "corpus.npz", base=base, queries=queries, truth=truth)
    print(f"  generated with exact ground truth in {time.perf_counter() - t0:.1f} s", flush=True)

    results: Dict[str, Any] = {
        "env": environment(),
        "params": {k: getattr(args, k) for k in ("n", "tenants", "per_tenant", "queries", "k", "dims", "seed", "full")},
        "single": {},
        "tenants": {},
    }
    if "single" not in skip:
        print(f"workloads 1, 2, 4: one namespace of {args.n:,} rows", flush=True)
        for name in names:
            results["single"][name] = run_worker(args, name, "single")
            (args.out / "results.json").write_text(json.dumps(results, indent=2))
    if "tenants" not in skip:
        print(f"workloads 3, 4: {args.tenants:,} namespaces × {args.per_tenant} rows", flush=True)
        for name in names:
            if SYSTEMS[name].multi_tenant:
                results["tenants"][name] = run_worker(args, name, "tenants")
                (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, args.out)
    return 0


def write_report(results: Dict[str, Any], out: Path) -> None:
    md = report.markdown(results)
    (out / "results.md").write_text(md)
    report.chart(results, out / "results.png")
    print()
    print(md)
    print(f"written: {out / 'results.md'}, {out / 'results.png'}, {out / 'results.json'}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
