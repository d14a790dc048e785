"""Bounds on the optimum that need no solver: closed-form Lagrangians and subgradient search.

* :func:`mclp_dual_value` / :func:`mclp_lagrangian` — MCLP, relaxing the coverage rows; valid for
  any multipliers, so the LP's (even inexact, interior-point) row duals give a safe bound;
* :func:`assignment_lagrangian_bound` — distance problems (p-median, capacitated MCLP), relaxing
  the assignment rows.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from coverage.siting.heuristics import Engine

__all__ = ["mclp_dual_value", "mclp_lagrangian", "assignment_lagrangian_bound"]


def mclp_dual_value(
    AT: sp.csr_matrix,
    w: np.ndarray,
    u: np.ndarray,
    locked: np.ndarray,
    free: np.ndarray,
    p: int,
    cost: np.ndarray | None,
    budget: float | None,
) -> tuple[float, np.ndarray]:
    """Upper bound on the MCLP optimum from multipliers ``u`` of the coverage rows (closed form).

    Relaxing y_i ≤ Σ_{j∈N_i} x_j with u_i ≥ 0 separates the problem:
    L(u) = Σ_i max(0, w_i − u_i) + Σ_{j∈L} c_j + max_x Σ_{j∉L} c_j x_j,  c = Aᵀu,
    the last term being the sum of the ``p`` largest c_j (cardinality) or the fractional knapsack
    over c_j / cost_j within the budget. Valid for every u ≥ 0 (weak duality), so multipliers from
    any source (subgradient, an inexact LP solver) give a safe bound.

    Parameters
    ----------
    AT : scipy.sparse.csr_matrix
        Transposed 0/1 cover matrix (candidates × demand rows).
    w : numpy.ndarray
        Weight per demand row.
    u : numpy.ndarray
        Multiplier per coverage row (≥ 0).
    locked, free : numpy.ndarray
        Locked site indices; bool per candidate, may be chosen.
    p : int
        New sites (cardinality version).
    cost, budget : optional
        Budget version instead of ``p``.

    Returns
    -------
    value : float
        L(u), an upper bound on the covered weight.
    x : numpy.ndarray
        The x that attains it (fractional in at most one column with a budget).
    """
    c = AT @ u
    x = np.zeros(c.size)
    x[locked] = 1.0
    fi = np.flatnonzero(free)
    cf = c[fi]
    if budget is None:
        k = min(p, fi.size)
        if k > 0:
            top = np.argsort(-cf, kind="stable")[:k]
            x[fi[top]] = 1.0
    else:
        assert cost is not None, "a budget comes with costs"
        cc = cost[fi]
        o = np.argsort(-(cf / cc), kind="stable")
        cum = np.cumsum(cc[o])
        full = cum <= budget
        x[fi[o[full]]] = 1.0
        nxt = int(np.count_nonzero(full))
        if nxt < o.size:
            room = budget - (cum[nxt - 1] if nxt else 0.0)
            x[fi[o[nxt]]] = max(0.0, min(1.0, room / cc[o[nxt]]))
    val = float(np.maximum(w - u, 0.0).sum() + c @ x)
    return val, x


def mclp_lagrangian(  # noqa: PLR0913 - issue 11: to narrow/split
    A1: sp.csr_matrix,
    AT: sp.csr_matrix,
    w: np.ndarray,
    u0: np.ndarray,
    locked: np.ndarray,
    free: np.ndarray,
    p: int,
    cost: np.ndarray | None,
    budget: float | None,
    target: float,
    *,
    iters: int = 2_000,
    stall_limit: int = 50,
    deadline: float = np.inf,
) -> tuple[float, np.ndarray]:
    """Minimise the MCLP Lagrangian :func:`mclp_dual_value` over u ∈ [0, w] by projected subgradient.

    Polyak steps towards ``target`` (the best known covered weight, a lower estimate of min L),
    step factor halved after ``stall_limit`` iterations without improvement; one sparse
    matrix-vector product each way per iteration.

    Parameters
    ----------
    A1 : scipy.sparse.csr_matrix
        0/1 cover matrix (demand rows × candidates).
    AT : scipy.sparse.csr_matrix
        Its transpose.
    w : numpy.ndarray
        Weight per demand row.
    u0 : numpy.ndarray
        Starting multipliers (clipped to [0, w]).
    locked, free, p, cost, budget
        As in :func:`mclp_dual_value`.
    target : float
        Best known covered weight.
    iters, stall_limit : int
        Most iterations; iterations without improvement before the step factor is halved.
    deadline : float
        ``time.perf_counter()`` value at which to stop.

    Returns
    -------
    bound : float
        Best (lowest) L(u) found.
    u : numpy.ndarray
        Its multipliers.
    """
    u = np.clip(u0, 0.0, w)
    best, best_u = np.inf, u.copy()
    theta, stall = 2.0, 0
    for _ in range(iters):
        val, x = mclp_dual_value(AT, w, u, locked, free, p, cost, budget)
        if val < best - 1e-12 * max(abs(val), 1.0):
            best, best_u, stall = val, u.copy(), 0
        else:
            stall += 1
            if stall >= stall_limit:
                theta *= 0.5
                stall = 0
        if best - target <= 1e-9 * max(abs(best), 1.0) or theta < 1e-4 or time.perf_counter() > deadline:
            break
        g = (A1 @ x) - (u < w)  # ∂L/∂u_i = Σ_j a_ij x_j − [u_i < w_i]
        g[((u <= 0.0) & (g > 0)) | ((u >= w) & (g < 0))] = 0.0  # projected on the box
        nrm = float(g @ g)
        if nrm <= 1e-18:
            break
        u = np.clip(u - theta * max(val - target, 1e-9 * max(abs(val), 1.0)) / nrm * g, 0.0, w)
    return best, best_u


def assignment_lagrangian_bound(  # noqa: PLR0913 - issue 11: to narrow/split
    eng: Engine,
    locked: np.ndarray,
    free: np.ndarray,
    p: int | None,
    cost: np.ndarray | None,
    budget: float | None,
    incumbent: float,
    d_init: np.ndarray,
    *,
    iters: int = 300,
    deadline: float = np.inf,
) -> float:
    """Lower bound on min Σ_i w_i d_i by subgradient optimisation of the assignment rows.

    Relaxing Σ_j z_ij + u_i = 1 with multipliers λ_i gives
    L(λ) = Σ_i λ_i + Σ_i min(0, w_i P − λ_i) + Σ_{j∈L} ρ_j + best(ρ_free),
    ρ_j = Σ_{i: (i,j) stored} min(0, w_i t_ij − λ_i), best = p most negative ρ (cardinality) or the
    fractional knapsack over −ρ_j / cost_j (budget).

    Parameters
    ----------
    eng : Engine
        The distance problem (times and penalty).
    locked, free : numpy.ndarray
        Locked site indices; bool per candidate, may be chosen.
    p : int or None
        New sites (cardinality version).
    cost, budget : optional
        Budget version instead of ``p``.
    incumbent : float
        Cost of the best known solution (target of the Polyak steps).
    d_init : numpy.ndarray
        Per-row times to start the multipliers from (``λ = w · d_init``).
    iters : int
        Most iterations.
    deadline : float
        ``time.perf_counter()`` value at which to stop.

    Returns
    -------
    float
        A lower bound on the optimal cost (``-inf`` if no iteration ran).
    """
    w, P = eng.w, eng.P
    rn, cols, t = eng.row_of_nnz, eng.csr.indices, eng.csr.data
    lam = w * d_init
    best = -np.inf
    theta = 2.0
    stall = 0
    wt = w[rn] * t
    free_idx = np.flatnonzero(free)
    for _ in range(iters):
        if time.perf_counter() > deadline:
            break
        v = np.minimum(wt - lam[rn], 0.0)
        rho = np.bincount(cols, weights=v, minlength=eng.m)
        x = np.zeros(eng.m)
        x[locked] = 1.0
        rf = rho[free_idx]
        if budget is None:
            k = min(p or 0, free_idx.size)
            if k > 0:
                part = np.argsort(rf, kind="stable")[:k]
                part = part[rf[part] < 0]
                x[free_idx[part]] = 1.0
        else:
            assert cost is not None, "a budget comes with costs"
            c = cost[free_idx]
            o = np.argsort(rf / c, kind="stable")
            room = budget
            for q in o:
                if rf[q] >= 0 or room <= 0:
                    break
                take = min(1.0, room / c[q])
                x[free_idx[q]] = take
                room -= take * c[q]
        u_neg = np.minimum(w * P - lam, 0.0)
        L = float(lam.sum() + u_neg.sum() + rho @ x)
        if not np.isfinite(best) or L > best + 1e-12 * max(abs(best), 1.0):
            best, stall = L, 0
        else:
            stall += 1
            if stall >= 15:
                theta *= 0.5
                stall = 0
        if incumbent - best <= 1e-7 * max(abs(incumbent), 1.0) or theta < 1e-6:
            break
        zsum = np.bincount(rn, weights=x[cols] * (v < 0), minlength=eng.n)
        u = (u_neg < 0).astype(np.float64)
        g = 1.0 - zsum - u
        nrm = float(g @ g)
        if nrm <= 1e-18:
            break
        step = theta * max(incumbent - L, 1e-9 * max(abs(incumbent), 1.0)) / nrm
        lam = np.clip(lam + step * g, 0.0, w * P)  # optimal multipliers lie in [0, w_i P]
    return best

