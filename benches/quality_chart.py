"""Draws the retrieval-quality table of `make bench-quality` (a CSV) as a bar chart (PNG).

Usage: python quality_chart.py quality.csv quality.png [TITLE]
(TITLE: what is found, e.g. "LoCoMo: evidence turns", the default)
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src: str, dst: str, title: str = "LoCoMo: evidence turns") -> None:
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    metrics = ["hit@1", "hit@5", "hit@10", "recall@10", "ndcg@10"]
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        xs = [m + i * width for m in range(len(metrics))]
        values = [float(row[m]) for m in metrics]
        bars = ax.bar(xs, values, width, label=row["setup"])
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks([m + width * (len(rows) - 1) / 2 for m in range(len(metrics))], metrics)
    ax.set_ylim(0, 1)
    found = title.split(": ", 1)[-1]
    ax.set_ylabel(f"share of questions (recall@k: of {found})")
    ax.set_title(f"{title} found by memsilo recall, per setup")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(dst, dpi=120)


if __name__ == "__main__":
    main(*sys.argv[1:4])
