"""Plain brute-force references and tiny random instances for the siting tests (tests/siting/)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

FAST = settings(max_examples=25, deadline=None)


def covered_weight(cover: np.ndarray, w: np.ndarray, sites) -> float:
    """Weight of the rows that any of ``sites`` covers (plain loops)."""
    total = 0.0
    for i in range(cover.shape[0]):
        if any(cover[i, j] for j in sites):
            total += w[i]
    return total


def brute_mclp(cover, w, p, locked=(), cost=None, budget=None) -> float:
    free = [j for j in range(cover.shape[1]) if j not in locked]
    best = covered_weight(cover, w, locked)
    for k in range(0, min(p, len(free)) + 1):
        for combo in itertools.combinations(free, k):
            if budget is not None and sum(cost[j] for j in combo) > budget + 1e-9:
                continue
            best = max(best, covered_weight(cover, w, list(locked) + list(combo)))
    return best


def pmedian_cost(times: dict, w, n_rows, sites, penalty) -> float:
    total = 0.0
    for i in range(n_rows):
        best = penalty
        for j in sites:
            if (i, j) in times:
                best = min(best, times[(i, j)])
        total += w[i] * best
    return total


@st.composite
def instances(draw, max_rows=10, max_cand=7):
    n = draw(st.integers(1, max_rows))
    m = draw(st.integers(2, max_cand))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.15, 0.3, 0.5]))
    cover = rng.random((n, m)) < density
    w = rng.integers(0, 20, n).astype(float)
    p = draw(st.integers(1, m))
    return cover, w, p, rng
