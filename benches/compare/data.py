"""Seeded synthetic data: clustered unit vectors, queries and exact ground truth.

Vectors are drawn around ``CLUSTERS`` random centres on the unit sphere (Gaussian noise, then
L2-normalised), which is closer to real embedding sets than uniform noise: neighbours are
meaningful and approximate indexes can miss them. Nothing is downloaded; the same seed gives
the same bytes on every machine.
"""

from __future__ import annotations

import numpy as np

DIMS = 384
CLUSTERS = 100
# Noise per coordinate around a centre: ||noise|| ≈ 0.045 · sqrt(384) ≈ 0.9, so points sit
# about 40° from their centre and a cluster's points are far from identical: top-10 is not trivial.
NOISE = 0.045


def centres(seed: int, dims: int = DIMS, clusters: int = CLUSTERS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((clusters, dims)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def sample(rng: np.random.Generator, cents: np.ndarray, n: int) -> np.ndarray:
    """``n`` unit vectors around randomly chosen centres (float32, C-contiguous)."""
    which = rng.integers(0, len(cents), size=n)
    v = cents[which] + rng.standard_normal((n, cents.shape[1])).astype(np.float32) * NOISE
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v, dtype=np.float32)


def corpus(seed: int, n: int, queries: int, dims: int = DIMS) -> tuple[np.ndarray, np.ndarray]:
    """The single-namespace corpus and its queries (drawn from the same distribution, not
    copies of stored rows)."""
    cents = centres(seed, dims)
    rng = np.random.default_rng(seed + 1)
    return sample(rng, cents, n), sample(rng, cents, queries)


def tenant_vectors(seed: int, tenant: int, per_tenant: int, dims: int = DIMS) -> np.ndarray:
    """The rows of one tenant in the multi-tenant workload, regenerated on demand from
    (seed, tenant) so that 10,000 tenants need not be held in memory at once."""
    cents = centres(seed, dims)
    rng = np.random.default_rng([seed, 7, tenant])
    return sample(rng, cents, per_tenant)


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    """Row indexes of the exact ``k`` nearest rows by cosine (vectors are unit length, so the
    dot product), best first; shape (len(queries), k)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), chunk):
        sims = queries[s : s + chunk] @ base.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sims, part, axis=1).argsort(axis=1)[:, ::-1]
        out[s : s + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(found: list[list[int]], truth: np.ndarray) -> float:
    """Mean fraction of the true top-k found in each answer."""
    k = truth.shape[1]
    hit = sum(len(set(f[:k]) & set(t.tolist())) for f, t in zip(found, truth))
    return hit / (k * len(truth))


def content(i: int, tenant: int | None = None) -> str:
    """A short text payload stored with each vector (all systems store the same)."""
    who = "" if tenant is None else f"tenant {tenant} "
    return f"{who}memory {i}: the user mentioned item {i * 7919 % 100003} in a chat"
