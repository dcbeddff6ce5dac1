#!/usr/bin/env python3
"""Where a copy-on-write commit's pages land, by page allocation policy (README, issue #16).

A file of L pages rewritten in batches: each batch copies C pages chosen at random and H
pages it copies every time (branch pages), like an upsert of 1,000 existing ids at 100k.
A copied page goes to a page number the policy picks; its old copy is freed and can be
reused two batches later (LMDB keeps the last two snapshots). Prints, over the last 50 of
BATCHES batches, the file's size and how many writes a batch takes: one per run of
consecutive pages, with gaps of up to GAP clean pages written again to join two runs.

  lowest    LMDB's mdb_page_alloc: the lowest free page, the file extended when none is free
  sweep X   the lowest free page at or above a roving pointer; past the last free page, the
            file is extended while free pages are under X% of it, else the pointer wraps

Usage: alloc_sim.py [BATCHES]   (300 by default; about a minute a policy)
"""
import bisect
import random
import sys

L, H, C = 60000, 400, 2000


def writes(pages, gap):
    pages = sorted(pages)
    runs, written = 1, len(pages)
    for a, b in zip(pages, pages[1:]):
        if b - a - 1 > gap:
            runs += 1
        else:
            written += b - a - 1
    return runs, written


def simulate(slack, gap, batches, seed=1):
    rnd = random.Random(seed)
    where = list(range(L + H))
    size, free, pending, pointer, seen = L + H, [], [], 0, []
    for b in range(batches):
        touched = rnd.sample(range(L), C) + list(range(L, L + H))
        new, freed = [], []
        for page in touched:
            waiting = len(free) + sum(map(len, pending))
            if slack is None:  # lowest
                p = free.pop(0) if free else None
            else:
                i = bisect.bisect_left(free, pointer)
                if i == len(free) and (waiting < slack * size / 100 or not free):
                    p = None
                else:
                    p = free.pop(i if i < len(free) else 0)
            if p is None:
                p, size = size, size + 1
            pointer = p + 1
            new.append(p)
            freed.append(where[page])
            where[page] = p
        pending.append(freed)
        if len(pending) > 1:
            for p in pending.pop(0):
                bisect.insort(free, p)
        if b >= batches - 50:
            seen.append(writes(new, gap))
    return size / (L + H), sum(s[0] for s in seen) / 50, sum(s[1] for s in seen) / 50


if __name__ == "__main__":
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    for name, slack, gap in [("lowest", None, 0), ("sweep 25", 25, 0), ("sweep 50", 50, 0),
                             ("sweep 25", 25, 2), ("sweep 50", 50, 2)]:
        grow, runs, written = simulate(slack, gap, batches)
        print(f"{name:9} gap {gap}: file x{grow:.2f}, {runs:.0f} writes of {written:.0f} pages "
              f"a batch of {C + H} copied")
