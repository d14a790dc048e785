"""The siting models (coverage.siting.models) against plain brute-force references on tiny instances."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from siting_reference import FAST, brute_mclp, covered_weight, instances, pmedian_cost

from coverage import siting
from coverage.siting.result import relative_gap


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


@FAST
@given(instances(max_rows=14, max_cand=8), st.booleans())
def test_mclp_restricted_milp_path(inst, lock):
    """Large-instance path (IPM LP, LP rounding, MILP on the LP support) on tiny instances."""
    cover, w, p, rng = inst
    m = cover.shape[1]
    locked = [int(rng.integers(0, m))] if lock and m > 2 else []
    p = min(p, m - len(locked))
    opt = brute_mclp(cover, w, p, locked=locked)
    old = siting.limits.MILP_MAX_NNZ, siting.limits.LP_SIMPLEX_MAX_NNZ
    try:
        siting.limits.MILP_MAX_NNZ, siting.limits.LP_SIMPLEX_MAX_NNZ = -1, -1
        r = siting.solve_max_coverage(sp.csr_matrix(cover), w, p, locked=locked or None)
    finally:
        siting.limits.MILP_MAX_NNZ, siting.limits.LP_SIMPLEX_MAX_NNZ = old
    assert set(locked) <= set(r.selected.tolist())
    assert len(r.selected) - len(locked) <= p
    assert r.objective == pytest.approx(covered_weight(cover, w, r.selected))
    assert r.upper_bound >= opt - 1e-6 and r.objective <= opt + 1e-9
    assert r.gap == pytest.approx(relative_gap(r.objective, r.upper_bound))


def test_mclp_fractional_lp_is_closed_by_rounding_or_milp():
    # odd cycle: each row is covered by two of three sites; with p = 1 the LP takes x = 1/3 each and
    # covers 2/3 of every row (bound 2), while one site covers exactly two rows
    cover = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=bool))
    w = np.ones(3)
    old = siting.limits.MILP_MAX_NNZ, siting.limits.LP_SIMPLEX_MAX_NNZ
    try:
        for milp_max, simplex_max in ((-1, -1), (-1, old[1]), old):
            siting.limits.MILP_MAX_NNZ, siting.limits.LP_SIMPLEX_MAX_NNZ = milp_max, simplex_max
            r = siting.solve_max_coverage(cover, w, 1)
            assert r.objective == 2.0
            assert r.upper_bound >= 2.0 - 1e-9
            assert r.upper_bound <= 2.0 + 1e-6  # LP of the odd cycle is integral here: bound 2
    finally:
        siting.limits.MILP_MAX_NNZ, siting.limits.LP_SIMPLEX_MAX_NNZ = old
    big = np.kron(np.eye(4, dtype=bool), np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0],
                                                     [0, 0, 0, 1, 1], [1, 0, 0, 0, 1]], dtype=bool))
    wb = np.arange(1, 21, dtype=float)
    opt = brute_mclp(big, wb, 5)
    try:
        siting.limits.MILP_MAX_NNZ, siting.limits.LP_SIMPLEX_MAX_NNZ = -1, -1
        r = siting.solve_max_coverage(sp.csr_matrix(big), wb, 5)
    finally:
        siting.limits.MILP_MAX_NNZ, siting.limits.LP_SIMPLEX_MAX_NNZ = old
    assert r.objective == pytest.approx(opt)
    assert r.upper_bound >= opt - 1e-6
