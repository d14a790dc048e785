"""Tests of coverage.siting against plain brute-force references on tiny instances."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from coverage import siting
from coverage.errors import InputError

FAST = settings(max_examples=25, deadline=None)


# ---------------------------------------------------------------- plain references
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


# ---------------------------------------------------------------- MCLP
@FAST
@given(instances())
def test_mclp_against_brute_force(inst):
    cover, w, p, _ = inst
    opt = brute_mclp(cover, w, p)
    csr = sp.csr_matrix(cover)
    greedy = siting.MaxCoverage(csr, w, p).solve(method="greedy")
    heur = siting.MaxCoverage(csr, w, p).solve(method="heuristic")
    exact = siting.solve_max_coverage(csr, w, p)
    assert greedy.objective >= (1 - 1 / math.e) * opt - 1e-9
    assert heur.objective >= greedy.objective - 1e-9
    for r in (greedy, heur, exact):
        assert r.upper_bound >= opt - 1e-6
        assert opt >= r.objective - 1e-9
        assert r.objective == pytest.approx(covered_weight(cover, w, r.selected))
        assert len(r.selected) <= p
        assert len(set(r.selected.tolist())) == len(r.selected)
        assert np.array_equal(r.covered, cover[:, r.selected].any(axis=1))
        assert r.marginal.sum() == pytest.approx(r.objective)
    assert exact.objective == pytest.approx(opt)
    assert exact.proven_optimal


@FAST
@given(instances())
def test_mclp_locked_always_selected(inst):
    cover, w, p, rng = inst
    m = cover.shape[1]
    locked = sorted(rng.choice(m, size=min(2, m - 1), replace=False).tolist())
    p = min(p, m - len(locked))
    opt = brute_mclp(cover, w, p, locked=locked)
    for method in ("heuristic", "auto"):
        r = siting.solve_max_coverage(sp.csr_matrix(cover), w, p, locked=locked, method=method)
        assert set(locked) <= set(r.selected.tolist())
        assert r.selected[: len(locked)].tolist() == locked  # locked first
        assert len(r.selected) - len(locked) <= p
        assert r.objective == pytest.approx(covered_weight(cover, w, r.selected))
        assert r.upper_bound >= opt - 1e-6 and r.objective <= opt + 1e-9
    assert r.objective == pytest.approx(opt)


@FAST
@given(instances())
def test_mclp_budget(inst):
    cover, w, _, rng = inst
    m = cover.shape[1]
    cost = rng.integers(1, 5, m).astype(float)
    budget = float(rng.integers(1, 8))
    opt = brute_mclp(cover, w, m, cost=cost, budget=budget)
    for method in ("heuristic", "auto"):
        r = siting.solve_max_coverage(sp.csr_matrix(cover), w, None, budget=budget, cost=cost, method=method)
        assert cost[r.selected].sum() <= budget + 1e-9
        assert r.objective == pytest.approx(covered_weight(cover, w, r.selected))
        assert r.upper_bound >= opt - 1e-6 and r.objective <= opt + 1e-9
    assert r.objective == pytest.approx(opt)


@FAST
@given(instances())
def test_aggregation_does_not_change_results(inst):
    cover, w, p, _ = inst
    cover = np.vstack([cover, cover, cover[::-1]])  # force duplicate patterns
    w = np.concatenate([w, w[::-1], w])
    csr = sp.csr_matrix(cover)
    a = siting.MaxCoverage(csr, w, p, aggregate=True).solve(method="heuristic")
    b = siting.MaxCoverage(csr, w, p, aggregate=False).solve(method="heuristic")
    assert a.selected.tolist() == b.selected.tolist()
    assert a.objective == b.objective
    assert a.n_rows_aggregated <= b.n_rows_aggregated


def test_aggregate_rows_matches_plain_grouping():
    rng = np.random.default_rng(3)
    dense = (rng.random((300, 6)) < 0.3).astype(float)
    times = dense * rng.integers(1, 3, dense.shape)
    w = rng.integers(0, 5, 300).astype(float)
    for with_values, mat in ((False, dense), (True, times)):
        agg = siting.aggregate_rows(sp.csr_matrix(mat), w, with_values=with_values)
        groups: dict = {}
        for i in range(300):
            if w[i] > 0 and mat[i].any():
                key = tuple(mat[i]) if with_values else tuple(mat[i] > 0)
                groups.setdefault(key, []).append(i)
        assert agg.weights.size == len(groups)
        for members in groups.values():
            gids = {int(agg.group[i]) for i in members}
            assert len(gids) == 1
            assert agg.weights[gids.pop()] == pytest.approx(w[members].sum())
        assert np.all(agg.group[(w == 0) | ~mat.any(axis=1)] == -1)


def test_deterministic_and_ties_by_index():
    cover = sp.csr_matrix(np.ones((4, 5), dtype=bool))  # every site is equivalent
    w = np.ones(4)
    r1 = siting.solve_max_coverage(cover, w, 1)
    r2 = siting.solve_max_coverage(cover, w, 1)
    assert r1.selected.tolist() == r2.selected.tolist() == [0]
    rng = np.random.default_rng(7)
    big = sp.csr_matrix(rng.random((400, 40)) < 0.05)
    ww = rng.integers(1, 9, 400).astype(float)
    a = siting.solve_max_coverage(big, ww, 6, method="heuristic")
    b = siting.solve_max_coverage(big, ww, 6, method="heuristic")
    assert a.selected.tolist() == b.selected.tolist()


def test_mclp_capacitated_against_brute_force():
    from scipy.optimize import linprog

    rng = np.random.default_rng(11)
    for _ in range(4):
        n, m, p = 7, 5, 2
        cover = rng.random((n, m)) < 0.45
        w = rng.integers(1, 10, n).astype(float)
        cap = rng.integers(3, 15, m).astype(float)
        pairs = [(i, j) for i in range(n) for j in range(m) if cover[i, j]]

        def served(sites):
            if not pairs:
                return 0.0
            c = [-w[i] for i, j in pairs]
            ub_rows, ub = [], []
            for i in range(n):
                ub_rows.append([1.0 if pi == i else 0.0 for pi, _ in pairs]); ub.append(1.0)
            for j in range(m):
                ub_rows.append([w[i] if pj == j else 0.0 for i, pj in pairs]); ub.append(cap[j] if j in sites else 0.0)
            res = linprog(c, A_ub=ub_rows, b_ub=ub, bounds=(0, 1))
            return -res.fun

        opt = max(served(s) for s in itertools.combinations(range(m), p))
        r = siting.solve_max_coverage(sp.csr_matrix(cover), w, p, capacity=cap)
        assert r.objective == pytest.approx(served(set(r.selected.tolist())), abs=1e-6)
        assert r.objective == pytest.approx(opt, abs=1e-6)
        assert r.upper_bound >= opt - 1e-6


# ---------------------------------------------------------------- LSCP
@FAST
@given(instances(), st.sampled_from([0.5, 0.8, 1.0]))
def test_set_cover_reaches_target_and_is_minimal(inst, share):
    cover, w, _, _ = inst
    m = cover.shape[1]
    coverable = w[cover.any(axis=1)].sum()
    need = share * coverable
    for method in ("heuristic", "auto"):
        r = siting.solve_set_cover(sp.csr_matrix(cover), w, share, method=method)
        got = covered_weight(cover, w, r.selected)
        assert got >= need - 1e-9
        assert r.uncoverable_weight == pytest.approx(w[~cover.any(axis=1)].sum())
        assert r.objective == len(r.selected)
        assert r.upper_bound <= r.objective + 1e-9
    fewest = next(k for k in range(m + 1)
                  if any(covered_weight(cover, w, c) >= need - 1e-9 for c in itertools.combinations(range(m), k)))
    assert r.objective == fewest
    assert r.upper_bound <= fewest + 1e-9


def test_set_cover_locked_not_counted():
    cover = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=bool))
    r = siting.solve_set_cover(cover, np.ones(3), 1.0, locked=[1])
    assert sorted(r.selected.tolist()) == [0, 1, 2]
    assert r.selected[0] == 1
    assert r.objective == 2


# ---------------------------------------------------------------- p-median
@FAST
@given(instances(max_rows=9, max_cand=6))
def test_p_median_against_brute_force(inst):
    cover, w, p, rng = inst
    n, m = cover.shape
    t = rng.integers(0, 10, (n, m)).astype(float)
    rows, cols = np.nonzero(cover)
    times = sp.csr_matrix((t[rows, cols], (rows, cols)), shape=(n, m))  # explicit zeros kept
    tdict = {(int(i), int(j)): float(t[i, j]) for i, j in zip(rows, cols)}
    penalty = 30.0
    opt = min(pmedian_cost(tdict, w, n, c, penalty) for k in range(p + 1)
              for c in itertools.combinations(range(m), k))
    heur = siting.PMedian(times, w, p, penalty=penalty).solve(method="heuristic")
    exact = siting.solve_p_median(times, w, p, penalty=penalty)
    for r in (heur, exact):
        assert r.objective == pytest.approx(pmedian_cost(tdict, w, n, r.selected, penalty))
        assert r.objective >= opt - 1e-6
        assert r.upper_bound <= opt + 1e-6  # lower bound for a minimisation problem
        for i in range(n):
            if r.assignment[i] >= 0:
                assert (i, int(r.assignment[i])) in tdict
                assert r.assignment[i] in r.selected
    assert exact.objective == pytest.approx(opt)


def test_p_median_capacitated_respects_capacity():
    rng = np.random.default_rng(5)
    n, m = 12, 5
    mask = rng.random((n, m)) < 0.6
    t = rng.integers(1, 10, (n, m)).astype(float)
    rows, cols = np.nonzero(mask)
    times = sp.csr_matrix((t[rows, cols], (rows, cols)), shape=(n, m))
    w = rng.integers(1, 5, n).astype(float)
    free = siting.solve_p_median(times, w, 2, penalty=50)
    cap = siting.solve_p_median(times, w, 2, penalty=50, capacity=np.full(m, 8.0))
    assert cap.objective >= free.objective - 1e-9  # capacity can only cost time
    assert cap.upper_bound <= cap.objective + 1e-9


# ---------------------------------------------------------------- inputs and candidates
def test_bad_inputs_raise_bilingual_errors():
    cover = sp.csr_matrix(np.eye(3, dtype=bool))
    with pytest.raises(InputError, match="weights"):
        siting.solve_max_coverage(cover, np.ones(2), 1)
    with pytest.raises(InputError, match="locked"):
        siting.solve_max_coverage(cover, np.ones(3), 1, locked=[5])
    with pytest.raises(InputError, match="cost"):
        siting.solve_max_coverage(cover, np.ones(3), None, budget=2.0)
    with pytest.raises(InputError, match="target_share"):
        siting.solve_set_cover(cover, np.ones(3), 1.5)


def test_generate_candidates_avoids_exclusion_and_empty_cells():
    from shapely.geometry import box

    rng = np.random.default_rng(2)
    xy = rng.random((400, 2)) * 1000
    w = rng.integers(0, 3, 400).astype(float)
    excl = box(0, 0, 500, 500)
    idx = siting.generate_candidates(xy, w, 10, exclusion=excl, seed=1)
    assert 0 < len(idx) <= 10 and len(set(idx.tolist())) == len(idx)
    assert np.all(w[idx] > 0)
    assert not np.any((xy[idx, 0] <= 500) & (xy[idx, 1] <= 500))
    again = siting.generate_candidates(xy, w, 10, exclusion=excl, seed=1)
    assert idx.tolist() == again.tolist()


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
        val, x = siting._mclp_dual_value(A1.T.tocsr(), w, u, locked, free, m, cost, budget)
        assert cost[free] @ x[free] <= budget + 1e-9
    else:
        k = min(p, int(free.sum()))
        opt = brute_mclp(cover, w, k, locked=locked.tolist())
        val, x = siting._mclp_dual_value(A1.T.tocsr(), w, u, locked, free, k, None, None)
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
    best, u = siting._mclp_lagrangian(A1, A1.T.tocsr(), w, w.copy(), none, free, p, None, None, opt)
    assert best >= opt - 1e-6
    assert np.all((u >= 0) & (u <= w))
    assert siting._mclp_dual_value(A1.T.tocsr(), w, u, none, free, p, None, None)[0] == pytest.approx(best)
    # the Lagrangian-only path (LP and MILP switched off by size limits) keeps a valid bound
    old = siting.LP_MAX_NNZ, siting.MILP_MAX_NNZ
    try:
        siting.LP_MAX_NNZ, siting.MILP_MAX_NNZ = -1, -1
        r = siting.solve_max_coverage(sp.csr_matrix(cover), w, p)
    finally:
        siting.LP_MAX_NNZ, siting.MILP_MAX_NNZ = old
    assert r.upper_bound >= opt - 1e-6 and r.objective <= opt + 1e-9
    assert r.objective == pytest.approx(covered_weight(cover, w, r.selected))


@FAST
@given(instances(max_rows=14, max_cand=8), st.booleans())
def test_mclp_restricted_milp_path(inst, lock):
    """Large-instance path (IPM LP, LP rounding, MILP on the LP support) on tiny instances."""
    cover, w, p, rng = inst
    m = cover.shape[1]
    locked = [int(rng.integers(0, m))] if lock and m > 2 else []
    p = min(p, m - len(locked))
    opt = brute_mclp(cover, w, p, locked=locked)
    old = siting.MILP_MAX_NNZ, siting.LP_SIMPLEX_MAX_NNZ
    try:
        siting.MILP_MAX_NNZ, siting.LP_SIMPLEX_MAX_NNZ = -1, -1
        r = siting.solve_max_coverage(sp.csr_matrix(cover), w, p, locked=locked or None)
    finally:
        siting.MILP_MAX_NNZ, siting.LP_SIMPLEX_MAX_NNZ = old
    assert set(locked) <= set(r.selected.tolist())
    assert len(r.selected) - len(locked) <= p
    assert r.objective == pytest.approx(covered_weight(cover, w, r.selected))
    assert r.upper_bound >= opt - 1e-6 and r.objective <= opt + 1e-9
    assert r.gap == pytest.approx(siting._gap(r.objective, r.upper_bound))


def test_mclp_fractional_lp_is_closed_by_rounding_or_milp():
    # odd cycle: each row is covered by two of three sites; with p = 1 the LP takes x = 1/3 each and
    # covers 2/3 of every row (bound 2), while one site covers exactly two rows
    cover = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=bool))
    w = np.ones(3)
    old = siting.MILP_MAX_NNZ, siting.LP_SIMPLEX_MAX_NNZ
    try:
        for milp_max, simplex_max in ((-1, -1), (-1, old[1]), old):
            siting.MILP_MAX_NNZ, siting.LP_SIMPLEX_MAX_NNZ = milp_max, simplex_max
            r = siting.solve_max_coverage(cover, w, 1)
            assert r.objective == 2.0
            assert r.upper_bound >= 2.0 - 1e-9
            assert r.upper_bound <= 2.0 + 1e-6  # LP of the odd cycle is integral here: bound 2
    finally:
        siting.MILP_MAX_NNZ, siting.LP_SIMPLEX_MAX_NNZ = old
    big = np.kron(np.eye(4, dtype=bool), np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0],
                                                     [0, 0, 0, 1, 1], [1, 0, 0, 0, 1]], dtype=bool))
    wb = np.arange(1, 21, dtype=float)
    opt = brute_mclp(big, wb, 5)
    try:
        siting.MILP_MAX_NNZ, siting.LP_SIMPLEX_MAX_NNZ = -1, -1
        r = siting.solve_max_coverage(sp.csr_matrix(big), wb, 5)
    finally:
        siting.MILP_MAX_NNZ, siting.LP_SIMPLEX_MAX_NNZ = old
    assert r.objective == pytest.approx(opt)
    assert r.upper_bound >= opt - 1e-6
