"""Bounds without a solver (coverage.siting.bounds) against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from siting_reference import FAST, brute_mclp, covered_weight, instances

from coverage import siting
from coverage.siting import bounds


# ---------------------------------------------------------------- MCLP bounds (coverage Lagrangian)
@FAST
@given(instances(), st.integers(0, 10_000), st.booleans())
def test_mclp_dual_value_is_an_upper_bound_for_any_multipliers(inst, seed, with_budget):
    cover, w, p, rng = inst
    m = cover.shape[1]
    u = np.random.default_rng(seed).random(cover.shape[0]) * w * 1.5  # also beyond w: still valid
    A1 = sp.csr_matrix(cover.astype(float))
    locked = np.array([0]) if m > 2 else np.zeros(0, dtype=np.int64)
    free = np.ones(m, dtype=bool)
    free[locked] = False
    if with_budget:
        cost = rng.integers(1, 5, m).astype(float)
        budget = float(rng.integers(1, 8))
        opt = brute_mclp(cover, w, m, locked=locked.tolist(), cost=cost, budget=budget)
        val, x = bounds.mclp_dual_value(A1.T.tocsr(), w, u, locked, free, m, cost, budget)
        assert cost[free] @ x[free] <= budget + 1e-9
    else:
        k = min(p, int(free.sum()))
        opt = brute_mclp(cover, w, k, locked=locked.tolist())
        val, x = bounds.mclp_dual_value(A1.T.tocsr(), w, u, locked, free, k, None, None)
        assert x[free].sum() <= k + 1e-9
    assert np.all(x[locked] == 1.0)
    # plain recomputation of L(u) = Σ max(0, w − u) + Σ_j x_j Σ_{i covered by j} u_i
    plain = sum(max(0.0, w[i] - u[i]) for i in range(len(w))) + sum(
        x[j] * sum(u[i] for i in range(len(w)) if cover[i, j]) for j in range(m))
    assert val == pytest.approx(plain)
    assert val >= opt - 1e-6


@FAST
@given(instances())
def test_mclp_lagrangian_bound_and_no_lp_paths(inst):
    cover, w, p, _ = inst
    opt = brute_mclp(cover, w, p)
    A1 = sp.csr_matrix(cover.astype(float))
    free = np.ones(cover.shape[1], dtype=bool)
    none = np.zeros(0, dtype=np.int64)
    best, u = bounds.mclp_lagrangian(A1, A1.T.tocsr(), w, w.copy(), none, free, p, None, None, opt)
    assert best >= opt - 1e-6
    assert np.all((u >= 0) & (u <= w))
    assert bounds.mclp_dual_value(A1.T.tocsr(), w, u, none, free, p, None, None)[0] == pytest.approx(best)
    # the Lagrangian-only path (LP and MILP switched off by size limits) keeps a valid bound
    old = siting.limits.LP_MAX_NNZ, siting.limits.MILP_MAX_NNZ
    try:
        siting.limits.LP_MAX_NNZ, siting.limits.MILP_MAX_NNZ = -1, -1
        r = siting.solve_max_coverage(sp.csr_matrix(cover), w, p)
    finally:
        siting.limits.LP_MAX_NNZ, siting.limits.MILP_MAX_NNZ = old
    assert r.upper_bound >= opt - 1e-6 and r.objective <= opt + 1e-9
    assert r.objective == pytest.approx(covered_weight(cover, w, r.selected))
