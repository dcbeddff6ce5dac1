"""Draws benches/compare/http.png from http.csv (written by `make bench-http-compare`)."""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src: str, dst: str) -> None:
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, phase, title in (
        (axes[0], "store", "store 1 memory (req/s)"),
        (axes[1], "recall", "recall top 10 of 10k (req/s)"),
    ):
        systems = sorted({r["system"] for r in rows if r["phase"] == phase}, reverse=True)
        levels = sorted({int(r["clients"]) for r in rows if r["phase"] == phase})
        width = 0.8 / max(len(systems), 1)
        for k, system in enumerate(systems):
            values = []
            for level in levels:
                match = [
                    float(r["rps"])
                    for r in rows
                    if r["phase"] == phase and r["system"] == system and int(r["clients"]) == level
                ]
                values.append(match[0] if match else 0.0)
            xs = [i + k * width for i in range(len(levels))]
            bars = ax.bar(xs, values, width, label=system)
            ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(levels))])
        ax.set_xticklabels([f"{level} clients" for level in levels])
        ax.set_title(title)
        ax.legend()
    fig.suptitle("memsilo serve vs chroma run: same vectors, same load generator, loopback, 2 cores")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
