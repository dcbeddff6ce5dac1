"""Markdown tables and a PNG chart from the harness's results dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional


def _num(v: Optional[float], fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _mb(v: Optional[float]) -> str:
    return "–" if v is None else f"{v / 2**20:,.1f}"


def _table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _rows(section: Dict[str, Any], cells: Callable[[Dict[str, Any]], List[str]], width: int) -> List[List[str]]:
    rows = []
    for name, r in section.items():
        if "error" in r:
            rows.append([name, f"failed: {r['error']}"] + [""] * (width - 2))
        else:
            rows.append([name] + cells(r))
    return rows


def _reclaim(r: Dict[str, Any]) -> List[str]:
    if r.get("del_disk_before") is None or r.get("del_disk_after") is None:
        return [_num(r.get("del_delete_call_ms"), ".1f"), "yes" if r.get("del_gone_at_once") else "NO", "–", "–", "–"]
    return [
        _num(r["del_delete_call_ms"], ".1f"),
        "yes" if r["del_gone_at_once"] else "NO",
        _mb(r["del_disk_before"]),
        _mb(r["del_reclaimed_bytes"]),
        _num(r["del_reclaim_s"], ".1f") if r["del_reclaimed_bytes"] > 0 else "never",
    ]


def markdown(res: Dict[str, Any]) -> str:
    p, env = res["params"], res["env"]
    out = [
        f"Run {env['date']} on {env['machine']} (load average {env['load_at_start']:.1f} at start), "
        f"memsilo built from {env.get('memsilo_tree') or '?'}, Python {env['python']}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + ".",
        "",
        f"Data: {p['dims']}-d unit vectors around 100 Gaussian clusters (seed {p['seed']}); "
        f"{p['queries']:,} timed queries, top-{p['k']}, one at a time on one thread; recall@{p['k']} "
        "against exact NumPy results.",
        "",
    ]
    if res["single"]:
        out += [
            f"### One namespace, {p['n']:,} memories (ingest, recall)",
            "",
            _table(
                ["system", "ingest vec/s", "index step s", "background s", "p50 ms", "p99 ms", "QPS",
                 f"recall@{p['k']}", "disk MB", "RSS +MB"],
                _rows(
                    res["single"],
                    lambda r: [
                        f"{r['ingest_per_s']:,.0f}",
                        _num(r["ready_s"], ".1f") if r["ready_note"] else "–",
                        _num(r["background_s"], ".1f"),
                        _num(r["p50_ms"], ".2f"),
                        _num(r["p99_ms"], ".2f"),
                        f"{r['qps']:,.0f}",
                        _num(r["recall_at_k"], ".3f"),
                        _mb(r["disk_bytes"]),
                        f"{r['rss_delta_mb']:,.0f}",
                    ],
                    10,
                ),
            ),
            "",
        ]
    if res["tenants"]:
        out += [
            f"### Multi-tenant: {p['tenants']:,} namespaces × {p['per_tenant']} memories",
            "",
            _table(
                ["system", "namespaces", "create+write s", "namespaces/s", "disk MB", "disk KB/ns", "p50 ms",
                 "p99 ms", f"recall@{p['k']}"],
                _rows(
                    res["tenants"],
                    lambda r: [
                        f"{r['namespaces']:,}" + ("" if r["complete"] else f" of {r['namespaces_target']:,} (cut off)"),
                        f"{r['create_s']:,.1f}",
                        f"{r['create_per_s']:,.0f}",
                        _mb(r["disk_bytes"]),
                        f"{r['disk_per_ns'] / 1024:,.1f}",
                        _num(r["p50_ms"], ".2f"),
                        _num(r["p99_ms"], ".2f"),
                        _num(r["recall_at_k"], ".3f"),
                    ],
                    9,
                ),
            ),
            "",
        ]
    dels: Dict[str, Any] = {}
    for name, r in res["single"].items():
        dels[f"{name}: the {p['n']:,}-memory namespace"] = r
    for name, r in res["tenants"].items():
        dels[f"{name}: one of {r.get('namespaces', 0):,} tenants ({p['per_tenant']} memories)"] = r
    if dels:
        out += [
            "### Deleting a tenant's data",
            "",
            _table(
                ["what was deleted", "delete call ms", "unreadable at once", "disk before MB", "reclaimed MB",
                 "reclaimed after s"],
                _rows(dels, _reclaim, 6),
            ),
            "",
        ]
    return "\n".join(out)


def chart(res: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = {k: v for k, v in res["single"].items() if "error" not in v}
    tenants = {k: v for k, v in res["tenants"].items() if "error" not in v}
    panels = [
        ("ingest, vectors/s (higher is better)", single, "ingest_per_s"),
        ("recall p50, ms (lower is better)", single, "p50_ms"),
        (f"recall@{res['params']['k']} (higher is better)", single, "recall_at_k"),
        ("tenants: create+write, s (lower is better)", tenants, "create_s"),
        ("tenants: disk, MB (lower is better)", tenants, "disk_bytes"),
        ("tenants: recall p50, ms (lower is better)", tenants, "p50_ms"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, (title, section, key) in zip(axes.ravel(), panels):
        names = list(section)
        labels = [n if section[n].get("complete", True) else f"{n}\n({section[n]['namespaces']:,} ns, cut off)" for n in names]
        vals = [section[n][key] or 0 for n in names]
        if key == "disk_bytes":
            vals = [v / 2**20 for v in vals]
        colors = ["#d62728" if n == "memsilo" else "#7f7f7f" for n in names]
        ax.barh(labels, vals, color=colors)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        if key in ("ingest_per_s", "p50_ms") and vals and min(vals) > 0 and max(vals) / min(vals) > 50:
            ax.set_xscale("log")
            title += ", log scale"
            ax.set_title(title, fontsize=10)
        for i, v in enumerate(vals):
            label = f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
            ax.text(v, i, f" {label}", va="center", fontsize=8)
        ax.margins(x=0.3)
    p = res["params"]
    fig.suptitle(
        f"memsilo vs peers — {p['n']:,} × {p['dims']}-d (single namespace), {p['tenants']:,} × {p['per_tenant']} "
        f"(multi-tenant) — {res['env']['date']}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
