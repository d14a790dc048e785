"""The siting models, one object each with its formulation in the docstring (spopt style).

:class:`MaxCoverage` (MCLP), :class:`SetCover` (partial LSCP) and :class:`PMedian` are assembled from
the constraint blocks of :mod:`coverage.siting.lp` and solved by the skeleton of
:class:`~coverage.siting.base.SitingModel`; the functions :func:`solve_max_coverage`,
:func:`solve_set_cover` and :func:`solve_p_median` are the functional API (DESIGN §4.3).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from coverage.errors import InputError
from coverage.siting import limits
from coverage.siting.base import SitingModel, SolveRun
from coverage.siting.bounds import assignment_lagrangian_bound, mclp_dual_value, mclp_lagrangian
from coverage.siting.heuristics import Engine, lazy_greedy, order_and_marginals, swap_search
from coverage.siting.inputs import as_vector, check_p
from coverage.siting.lp import (
    Lp, assignment_block, budget_block, capacity_block, cardinality_block, coverage_block,
    linking_block, locked_block,
)
from coverage.siting.result import SitingResult, relative_gap

__all__ = [
    "MaxCoverage", "SetCover", "PMedian", "solve_max_coverage", "solve_set_cover", "solve_p_median",
]


class MaxCoverage(SitingModel):
    r"""Maximal covering location problem (MCLP), with locked sites, budget and capacity options.

    Sets
        I demand rows (aggregated), J candidates, L ⊆ J locked (existing) sites,
        N_i ⊆ J candidates covering demand i (stored entries of row i of ``cover``).

    Parameters
    ----------
        w_i weight (target age-group population), p number of new sites, c_j cost, B budget,
        C_j capacity, r use rate (d_i = r · w_i).
    Variables
        x_j ∈ {0,1} site j selected; y_i ∈ [0,1] demand i covered (integral at the optimum).
    Objective
        max Σ_i w_i y_i
    Constraints
        coverage      y_i ≤ Σ_{j∈N_i} x_j                     ∀ i
        cardinality   Σ_{j∉L} x_j ≤ p          (or budget  Σ_{j∉L} c_j x_j ≤ B)
        locked        x_j = 1                                 ∀ j ∈ L
    Capacitated variant (``capacity`` given): y is replaced by assignment shares on the stored pairs
        z_ij ∈ [0,1] for j ∈ N_i;  objective max Σ_i Σ_{j∈N_i} w_i z_ij
        assignment    Σ_{j∈N_i} z_ij ≤ 1                      ∀ i
        capacity      Σ_i d_i z_ij ≤ C_j x_j                  ∀ j

    Heuristic: lazy greedy (gain per cost with a budget, compared with the best single site), then
    1-swap local search; for the capacitated variant the heuristic selection of the uncapacitated
    model is evaluated with the assignment LP (x fixed), the bound is the LP relaxation (or the
    uncapacitated bound, a valid relaxation), and the MILP is run when small. Greedy guarantees
    ≥ (1 − 1/e) of the optimum for the cardinality version.

    Parameters
    ----------
    cover : scipy.sparse matrix
        Demand × candidates, nonzero where the candidate covers the demand row.
    weights : array-like
        Weight per demand row.
    p : int, optional
        Number of new sites (not counting locked ones). Required unless ``budget`` is given.
    locked : array-like of int or bool, optional
        Candidates that are always selected (existing facilities).
    budget : float, optional
        Budget for new sites; needs ``cost``. Replaces ``p``.
    cost : array-like, optional
        Cost per candidate (> 0).
    capacity : array-like, optional
        Capacity per candidate (same unit as ``weights × use_rate``).
    use_rate : float
        Share of the weight that needs a place (e.g. 托位 per child), for the capacitated variant.
    aggregate : bool
        Merge demand rows with the same cover pattern (default True).
    """

    sense = "max"
    cost: np.ndarray | None  # with ``budget``; None in the cardinality version
    budget: float | None

    def __init__(  # noqa: PLR0913 - issue 11: to narrow/split
        self,
        cover: sp.spmatrix,
        weights: np.ndarray,
        p: int | None = None,
        *,
        locked: np.ndarray | None = None,
        budget: float | None = None,
        cost: np.ndarray | None = None,
        capacity: np.ndarray | None = None,
        use_rate: float = 1.0,
        aggregate: bool = True,
    ) -> None:
        self._prepare(cover, weights, locked, keep_values=False, aggregate=aggregate)
        n_free = int(self.free.sum())
        if budget is not None:
            if cost is None:
                raise InputError("给定 budget 时必须给出每个候选点的 cost",
                                 "budget needs a cost per candidate", field="cost")
            self.cost = as_vector(cost, self.n_cand, "cost", positive=True)
            if not np.isfinite(budget) or budget < 0:
                raise InputError("budget 应为非负数", "budget must be ≥ 0", field="budget")
            self.budget = float(budget)
            self.p = n_free
        else:
            self.cost = None
            self.budget = None
            self.p = check_p(p, n_free)
        self.capacity = None if capacity is None else as_vector(capacity, self.n_cand, "capacity")
        if not (np.isfinite(use_rate) and use_rate > 0):
            raise InputError("use_rate 应为正数", "use_rate must be > 0", field="use_rate")
        self.use_rate = float(use_rate)

    def _cost_budget(self) -> tuple[np.ndarray, float] | None:
        """``(cost, budget)`` in the budget version; None in the cardinality version."""
        if self.budget is None:
            return None
        assert self.cost is not None, "__init__ sets cost with budget"
        return self.cost, self.budget

    # -- formulation ------------------------------------------------------------------------------
    def build(self) -> tuple[Lp, np.ndarray, np.ndarray]:
        """Assemble the MILP from the blocks; returns (lp, x columns, y or z columns)."""
        A, w = self.agg.matrix, self.agg.weights
        lp = Lp("max")
        x = lp.add_cols(np.zeros(self.n_cand), 0.0, 1.0, True)
        if self.capacity is None:
            y = lp.add_cols(w, 0.0, 1.0, False)
            coverage_block(lp, A, x, y)
        else:
            rows_of = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
            y, _ = assignment_block(lp, A, w[rows_of], penalty_cost=None, equality=False)
            capacity_block(lp, A, y, x, w * self.use_rate, self.capacity)
        if (cb := self._cost_budget()) is not None:
            budget_block(lp, x, self.free, *cb)
        else:
            cardinality_block(lp, x, self.free, self.p)
        locked_block(lp, x, self.locked)
        return lp, x, y

    def _start_vector(self, lp: Lp, x: np.ndarray, y: np.ndarray, sel: np.ndarray) -> np.ndarray:
        v = np.zeros(lp.n_col)
        v[x[sel]] = 1.0
        if self.capacity is None:
            A = self.agg.matrix
            on = np.zeros(self.n_cand, dtype=bool)
            on[sel] = True
            cov = np.add.reduceat(on[A.indices].astype(np.int64), A.indptr[:-1]) > 0 if A.nnz else np.zeros(A.shape[0], bool)
            v[y] = cov
        return v

    def _covered_agg(self, eng: Engine, sel_free: list[int]) -> float:
        """Covered aggregated weight of the locked sites plus ``sel_free``."""
        sel = np.asarray(list(self.locked) + list(sel_free), dtype=np.int64)
        return float(eng.w.sum()) - eng.cost(eng.nearest_two(sel)[0])

    def _round_lp(self, xv: np.ndarray) -> list[int]:
        """Free columns in decreasing LP value (index breaks ties) while ``p`` / the budget allow."""
        order = np.lexsort((np.arange(xv.size), -xv))
        order = order[self.free[order] & (xv[order] > 1e-6)]
        cb = self._cost_budget()
        if cb is None:
            return [int(j) for j in order[: self.p]]
        cost, room = cb
        out: list[int] = []
        for j in order:
            if cost[j] <= room + 1e-12:
                out.append(int(j))
                room -= cost[j]
        return out

    def _bound_uncapacitated(
        self,
        eng: Engine,
        sel_free: list[int],
        method: str,
        deadline: float,
        time_limit: float,
        mip_gap: float,
        timings: dict[str, float],
        method_used: list[str],
    ) -> tuple[float, str, list[int], np.ndarray | None]:
        """LP relaxation (duals → Lagrangian closed form) and LP rounding, else subgradient.

        Returns (bound, bound method, free selection, LP column values of x or None).
        """
        A, w = self.agg.matrix, self.agg.weights
        W = float(w.sum())
        A1 = sp.csr_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=A.shape)
        AT = A1.T.tocsr()
        cur = self._covered_agg(eng, sel_free)
        bound, bound_method = W, "trivial"
        lp_x = None
        u_start = None
        lp_optimal = False
        if method in ("auto", "heuristic") and A.nnz <= limits.LP_MAX_NNZ and deadline - time.perf_counter() > 0.5:
            t0 = time.perf_counter()
            lp, x, y = self.build()
            r = lp.solve(mip=False, time_limit=max(0.6 * (deadline - time.perf_counter()), 0.5),
                         solver="primal" if A.nnz <= limits.LP_SIMPLEX_MAX_NNZ else "ipm")
            lp_optimal = bool(r["optimal"])
            if r["row_dual"] is not None:
                u_start = np.clip(np.abs(r["row_dual"][: A.shape[0]]), 0.0, w)
                val, _ = mclp_dual_value(AT, w, u_start, self.locked, self.free, self.p, self.cost,
                                          self.budget)
                if val < bound:
                    bound, bound_method = val, "lp"
            if r["x"] is not None and method == "auto":
                lp_x = r["x"][x]
                if relative_gap(cur, bound) > mip_gap:
                    cand = self._round_lp(lp_x)
                    cand, _ = swap_search(eng, cand, self.locked, self.free, cost=self.cost,
                                           budget=self.budget, deadline=deadline)
                    v = self._covered_agg(eng, cand)
                    if v > cur + 1e-9 * max(W, 1.0):
                        sel_free, cur = cand, v
                        method_used.append("lp-round")
            timings["lp"] = time.perf_counter() - t0
        if not lp_optimal and relative_gap(cur, bound) > mip_gap and deadline - time.perf_counter() > 0.05:
            if u_start is None:
                on = np.zeros(self.n_cand)
                on[self.locked] = 1.0
                on[np.asarray(sel_free, dtype=np.int64)] = 1.0
                cnt = A1 @ on
                u_start = np.where(cnt == 0, w, np.where(cnt == 1, 0.5 * w, 0.0))
            lag, _ = mclp_lagrangian(A1, AT, w, u_start, self.locked, self.free, self.p, self.cost,
                                      self.budget, cur,
                                      deadline=min(deadline, time.perf_counter() + 0.25 * time_limit))
            if lag < bound:
                bound, bound_method = lag, "lagrangian"
        return bound, bound_method, sel_free, lp_x

    def _restricted_milp(
        self, eng: Engine, sel_free: list[int], lp_x: np.ndarray, cur: float, deadline: float,
        mip_gap: float,
    ) -> list[int] | None:
        """MILP over the LP support and the incumbent only (a heuristic: any solution is feasible).

        Rows covered by a locked site are dropped (always covered). Returns a better free selection
        or None.
        """
        A = self.agg.matrix
        J = np.union1d(np.flatnonzero(self.free & (lp_x > 1e-6)), np.asarray(sel_free, dtype=np.int64))
        if J.size == 0:
            return None
        A1 = sp.csr_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=A.shape)
        on_l = np.zeros(self.n_cand)
        on_l[self.locked] = 1.0
        inJ = np.zeros(self.n_cand)
        inJ[J] = 1.0
        rows = np.flatnonzero(((A1 @ on_l) == 0) & ((A1 @ inJ) > 0))
        sub = A1[rows][:, J]
        model = MaxCoverage(sub, self.agg.weights[rows], None if self.budget is not None else self.p,
                            budget=self.budget, cost=None if self.cost is None else self.cost[J])
        lp, x, y = model.build()
        start = model._start_vector(lp, x, y, np.searchsorted(J, np.asarray(sel_free, dtype=np.int64)))
        r = lp.solve(mip=True, time_limit=max(deadline - time.perf_counter(), 0.5), mip_gap=mip_gap,
                     start=start)
        if r["x"] is None:
            return None
        cand = [int(J[k]) for k in np.flatnonzero(r["x"][x] > 0.5)]
        if self._covered_agg(eng, cand) > cur + 1e-9 * max(float(eng.w.sum()), 1.0):
            return cand
        return None

    # -- solve ------------------------------------------------------------------------------------

    # -- solve stages (see SitingModel.solve) -----------------------------------------------------
    def _heuristic(self, run: SolveRun) -> None:
        eng = run.eng
        W = float(self.agg.weights.sum())
        t0 = time.perf_counter()
        d1 = np.ones(eng.n)
        for j in self.locked:
            eng.apply_col(int(j), d1)
        sel_free, _ = lazy_greedy(eng, d1, self.free, self.p, cost=self.cost, budget=self.budget)
        if (cb := self._cost_budget()) is not None:  # best single affordable site (guarantee fix)
            d0 = np.ones(eng.n)
            for j in self.locked:
                eng.apply_col(int(j), d0)
            g = eng.all_gains(d0)
            g[~self.free | (cb[0] > cb[1])] = -1
            k = int(np.argmax(g))
            if g[k] > 0 and g[k] > W - eng.cost(d1) - (W - eng.cost(d0)):
                sel_free = [k]
        run.timings["greedy"] = time.perf_counter() - t0
        run.method_used.append("greedy")
        t0 = time.perf_counter()
        if run.method != "greedy":
            sel_free, _ = swap_search(eng, sel_free, self.locked, self.free, cost=self.cost,
                                      budget=self.budget,
                                      deadline=min(run.deadline, run.t_start + 0.4 * run.time_limit))
            run.method_used.append("swap")
        run.timings["swap"] = time.perf_counter() - t0
        run.sel_free = sel_free

    def _bound(self, run: SolveRun) -> None:
        eng, timings = run.eng, run.timings
        W = float(self.agg.weights.sum())
        run.bound, run.bound_method = W, "trivial"  # everything coverable
        if run.method == "milp":
            return
        t0 = time.perf_counter()
        d1, d2, _ = eng.nearest_two(self.selection(run.sel_free))
        if self.capacity is None:
            run.bound, run.bound_method, run.sel_free, run.lp_x = self._bound_uncapacitated(
                eng, run.sel_free, run.method, run.deadline, run.time_limit, run.mip_gap, timings,
                run.method_used)
        else:
            lag = assignment_lagrangian_bound(
                eng, self.locked, self.free, self.p, self.cost, self.budget, eng.cost(d1),
                (d1 + d2) / 2, deadline=min(run.deadline, time.perf_counter() + 0.25 * run.time_limit))
            if W - lag < run.bound:
                run.bound, run.bound_method = W - lag, "lagrangian"
        timings["bound"] = time.perf_counter() - t0 - timings.get("lp", 0.0)

    def _exact(self, run: SolveRun) -> None:
        eng, method, mip_gap = run.eng, run.method, run.mip_gap
        W = float(self.agg.weights.sum())
        if self.capacity is not None and method != "milp":
            lp, x, y = self.build()
            fixv = np.zeros(self.n_cand)
            fixv[self.selection(run.sel_free)] = 1.0
            r = lp.solve(mip=False, time_limit=max(run.deadline - time.perf_counter(), 1.0),
                         fix=(x, fixv))
            run.objective = r["objective"] or 0.0
            run.start = r["x"]
        elif method != "milp":
            run.objective = W - eng.cost(eng.nearest_two(self.selection(run.sel_free))[0])
        nnz = self.agg.matrix.nnz
        run_milp = method == "milp" or (method == "auto" and nnz <= limits.MILP_MAX_NNZ)
        if relative_gap(run.objective, run.bound) <= mip_gap and method != "milp":
            run_milp = False
        if run_milp:
            self._solve_milp(run)
        elif (method == "auto" and self.capacity is None and run.lp_x is not None
              and relative_gap(run.objective, run.bound) > mip_gap
              and run.deadline - time.perf_counter() > 1.0):
            t0 = time.perf_counter()
            better = self._restricted_milp(eng, run.sel_free, run.lp_x, run.objective, run.deadline,
                                           mip_gap)
            run.timings["milp"] = time.perf_counter() - t0
            run.method_used.append("restricted-milp")
            if better is not None:
                run.sel_free = better
        elif (method in ("heuristic", "auto") and self.capacity is not None
              and nnz <= limits.LP_MAX_NNZ and relative_gap(run.objective, run.bound) > mip_gap
              and run.deadline - time.perf_counter() > 0.5):
            self._lp_bound(run)

    def _milp_start(self, run: SolveRun, lp: Lp, *cols: np.ndarray) -> np.ndarray | None:
        x, y = cols
        if self.capacity is None:
            return self._start_vector(lp, x, y, self.selection(run.sel_free))
        return run.start  # the assignment LP of the heuristic's selection

    def _improvement_tol(self, run: SolveRun) -> float:
        return 1e-9 * max(float(self.agg.weights.sum()), 1)

    def _result(self, run: SolveRun) -> SitingResult:
        """Final figures on the original rows."""
        sel, marg, _ = order_and_marginals(run.eng, self.locked, run.sel_free)
        A = self.agg.matrix
        if self.capacity is None:
            on = np.zeros(self.n_cand, dtype=bool)
            on[sel] = True
            A0 = self.A0
            hit = on[A0.indices].astype(np.int64)
            cum = np.concatenate([[0], np.cumsum(hit)])
            covered = (cum[A0.indptr[1:]] - cum[A0.indptr[:-1]]) > 0
            objective = float(self.w0[covered].sum())
            served = None
        else:
            lp, x, y = self.build()
            fixv = np.zeros(self.n_cand)
            fixv[sel] = 1.0
            r = lp.solve(mip=False, time_limit=60.0, fix=(x, fixv))
            zval = r["x"][y] if r["x"] is not None else np.zeros(A.nnz)
            share_g = np.bincount(np.repeat(np.arange(A.shape[0]), np.diff(A.indptr)), weights=zval,
                                  minlength=A.shape[0])
            served = np.zeros(self.n_rows)
            ok = self.agg.group >= 0
            served[ok] = np.clip(share_g[self.agg.group[ok]], 0, 1)
            covered = served >= 1 - 1e-6
            objective = float(self.w0 @ served)
            # marginals in the capacitated case: share of the objective is not additive; report the
            # uncapacitated marginal capped at each site's capacity / use rate
            cap_w = self.capacity[sel] / self.use_rate
            marg = np.minimum(marg, cap_w)
        bound = max(run.bound, objective)  # the aggregated weight includes every coverable row
        gap = relative_gap(objective, bound)
        return SitingResult(
            selected=sel, covered=covered, objective=objective, upper_bound=float(bound), gap=gap,
            method="+".join(run.method_used) if run.method != "milp" else "milp",
            proven_optimal=gap <= run.mip_gap, marginal=marg, timings=run.timings, sense="max",
            bound_method=run.bound_method, served=served,
        )


# --------------------------------------------------------------------------------------------------
# LSCP
# --------------------------------------------------------------------------------------------------
class SetCover(SitingModel):
    r"""Location set covering problem (LSCP), partial: fewest (or cheapest) new sites reaching a share.

    Sets
        I demand rows (aggregated), J candidates, L ⊆ J locked sites, N_i candidates covering i.

    Parameters
    ----------
        w_i weight, c_j cost (1 by default: fewest sites), τ target share.
    Variables
        x_j ∈ {0,1} site selected; y_i ∈ [0,1] demand covered.
    Objective
        min Σ_{j∉L} c_j x_j
    Constraints
        coverage   y_i ≤ Σ_{j∈N_i} x_j                         ∀ i
        target     Σ_i w_i y_i ≥ τ · W_cov
        locked     x_j = 1                                     ∀ j ∈ L

    ``W_cov`` is the *coverable* weight: demand that no candidate can reach is excluded from the
    denominator (no choice of sites could ever serve it) and reported as ``uncoverable_weight``; with
    ``τ = 1`` the model is the classic LSCP. Heuristic: greedy (gain per cost) until the target is
    reached, then removal of redundant sites (latest first). Lower bound: LP relaxation (and a
    knapsack bound: the fewest sites whose individual gains could reach the target); exact MILP when
    small. ``objective`` is the number (or cost) of *new* sites.

    Parameters
    ----------
    cover : scipy.sparse matrix
        Demand × candidates, nonzero where the candidate covers the demand row.
    weights : array-like
        Weight per demand row.
    target_share : float
        Share (0–1] of the coverable weight to cover.
    locked : array-like, optional
        Always-selected candidates (not counted in the objective).
    cost : array-like, optional
        Cost per candidate; default 1 (minimise the number of sites).
    aggregate : bool
        Merge rows with the same cover pattern.
    """

    sense = "min"

    def __init__(
        self,
        cover: sp.spmatrix,
        weights: np.ndarray,
        target_share: float = 0.95,
        *,
        locked: np.ndarray | None = None,
        cost: np.ndarray | None = None,
        aggregate: bool = True,
    ) -> None:
        self._prepare(cover, weights, locked, keep_values=False, aggregate=aggregate)
        if not (0 < target_share <= 1):
            raise InputError("target_share 应在 (0, 1] 之间", "target_share must be in (0, 1]",
                             field="target_share")
        self.target_share = float(target_share)
        self.cost = np.ones(self.n_cand) if cost is None else as_vector(cost, self.n_cand, "cost", positive=True)
        self.unit_cost = cost is None
        self.coverable = float(self.agg.weights.sum())
        self.need = self.target_share * self.coverable

    def build(self) -> tuple[Lp, np.ndarray, np.ndarray]:
        """Assemble the MILP from the blocks; returns (lp, x columns, y columns)."""
        A, w = self.agg.matrix, self.agg.weights
        lp = Lp("min")
        c = self.cost.copy()
        c[self.locked] = 0.0
        x = lp.add_cols(c, 0.0, 1.0, True)
        y = lp.add_cols(np.zeros(A.shape[0]), 0.0, 1.0, False)
        coverage_block(lp, A, x, y)
        lp.add_rows(np.array([self.need * (1 - 1e-9)]), np.array([np.inf]), np.zeros(y.size), y, w)
        locked_block(lp, x, self.locked)
        return lp, x, y


    # -- solve stages (see SitingModel.solve) -----------------------------------------------------
    def _covered_w(self, eng: Engine, d1: np.ndarray) -> float:
        return self.coverable - eng.cost(d1)

    def _tol(self) -> float:
        return 1e-9 * max(self.coverable, 1.0)

    def _heuristic(self, run: SolveRun) -> None:
        eng, need, tol = run.eng, self.need, self._tol()
        t0 = time.perf_counter()
        d1 = np.ones(eng.n)
        for j in self.locked:
            eng.apply_col(int(j), d1)
        sel_free, _ = lazy_greedy(eng, d1, self.free, self.n_cand,
                                  cost=None if self.unit_cost else self.cost,
                                  stop=lambda d: self._covered_w(eng, d) >= need - tol)
        run.timings["greedy"] = time.perf_counter() - t0
        run.method_used.append("greedy")
        t0 = time.perf_counter()
        # redundancy removal: drop sites (most expensive / latest first) while the target holds
        changed = True
        while changed:
            changed = False
            order = sorted(range(len(sel_free)), key=lambda q: (-self.cost[sel_free[q]], -q))
            for q in order:
                trial = sel_free[:q] + sel_free[q + 1:]
                d, _, _ = eng.nearest_two(self.selection(trial))
                if self._covered_w(eng, d) >= need - tol:
                    sel_free = trial
                    changed = True
                    break
        run.timings["swap"] = time.perf_counter() - t0
        run.method_used.append("drop")
        run.sel_free = sel_free

    def _bound(self, run: SolveRun) -> None:
        """Knapsack bound: individual gains are upper bounds on what each site can add."""
        eng, tol = run.eng, self._tol()
        run.objective = float(self.cost[run.sel_free].sum()) if run.sel_free else 0.0
        t0 = time.perf_counter()
        d0 = np.ones(eng.n)
        for j in self.locked:
            eng.apply_col(int(j), d0)
        g = eng.all_gains(d0)
        g[~self.free] = 0
        residual = self.need - self._covered_w(eng, d0)
        run.bound, run.bound_method = 0.0, "trivial"
        if residual > tol:
            o = np.argsort(-(g / self.cost), kind="stable")
            acc, lb = 0.0, 0.0
            for q in o:
                if g[q] <= 0:
                    break
                if acc + g[q] >= residual - tol:
                    lb += self.cost[q] * (residual - acc) / g[q]
                    acc = residual
                    break
                acc += g[q]
                lb += self.cost[q]
            if self.unit_cost:
                lb = float(np.ceil(lb - 1e-9))
            run.bound, run.bound_method = lb, "knapsack"
        run.timings["bound"] = time.perf_counter() - t0

    def _exact(self, run: SolveRun) -> None:
        nnz = self.agg.matrix.nnz
        gap_open = relative_gap(run.objective, run.bound) > run.mip_gap
        if run.method == "milp" or (run.method == "auto" and nnz <= limits.MILP_MAX_NNZ and gap_open):
            self._solve_milp(run)
        elif nnz <= limits.LP_MAX_NNZ and gap_open and run.deadline - time.perf_counter() > 0.5:
            if self._lp_bound(run) and self.unit_cost:
                run.bound = float(np.ceil(run.bound - 1e-6))

    def _milp_start(self, run: SolveRun, lp: Lp, *cols: np.ndarray) -> np.ndarray | None:
        x, y = cols
        start = np.zeros(lp.n_col)
        start[x[self.selection(run.sel_free)]] = 1.0
        d, _, _ = run.eng.nearest_two(self.selection(run.sel_free))
        start[y] = 1.0 - d
        return start

    def _improvement_tol(self, run: SolveRun) -> float:
        return 1e-9

    def _result(self, run: SolveRun) -> SitingResult:
        sel, marg, _ = order_and_marginals(run.eng, self.locked, run.sel_free)
        on = np.zeros(self.n_cand, dtype=bool)
        on[sel] = True
        A0 = self.A0
        cum = np.concatenate([[0], np.cumsum(on[A0.indices].astype(np.int64))])
        covered = (cum[A0.indptr[1:]] - cum[A0.indptr[:-1]]) > 0
        objective = float(self.cost[run.sel_free].sum()) if run.sel_free else 0.0
        bound = min(run.bound, objective)
        gap = relative_gap(objective, bound)
        return SitingResult(
            selected=sel, covered=covered, objective=objective, upper_bound=float(bound), gap=gap,
            method="+".join(run.method_used) if run.method != "milp" else "milp",
            proven_optimal=gap <= run.mip_gap, marginal=marg, timings=run.timings, sense="min",
            bound_method=run.bound_method,
        )


# --------------------------------------------------------------------------------------------------
# p-median
# --------------------------------------------------------------------------------------------------
class PMedian(SitingModel):
    r"""p-median: minimise total weighted travel time to the nearest selected site.

    Sets
        I demand rows (aggregated), J candidates, L ⊆ J locked sites, N_i candidates reachable from i
        within the cut-off (stored entries of row i of ``times``).

    Parameters
    ----------
        w_i weight, t_ij time (stored value), P penalty time, p new sites, C_j capacity, r use rate.
    Variables
        x_j ∈ {0,1} site selected; z_ij ∈ [0,1] share of i served by j (stored pairs only);
        u_i ∈ [0,1] share of i not served within the cut-off.
    Objective
        min Σ_i Σ_{j∈N_i} w_i t_ij z_ij + Σ_i w_i P u_i
    Constraints
        assignment   Σ_{j∈N_i} z_ij + u_i = 1                    ∀ i
        linking      z_ij ≤ x_j                                  ∀ i, j ∈ N_i
        cardinality  Σ_{j∉L} x_j ≤ p
        locked       x_j = 1                                     ∀ j ∈ L
        capacity     Σ_i r w_i z_ij ≤ C_j x_j  ∀ j   (capacitated variant)

    Demand with no selected site within the cut-off is charged the penalty time ``P`` (default: twice
    the largest stored time, so serving within the cut-off is always preferred). Rows that no
    candidate reaches pay ``P`` whatever the choice; they are left out of the optimisation and added
    to the objective as a constant (``uncoverable_weight × P``). A time of 0 must be stored explicitly
    (scipy keeps explicit zeros unless ``eliminate_zeros`` is called).

    Heuristic: lazy greedy, then the fast 1-swap interchange (nearest / second-nearest bookkeeping,
    all (out, in) pairs per sparse pass). Bound: Lagrangian, LP, or MILP when small.

    Parameters
    ----------
    times : scipy.sparse matrix
        Demand × candidates, stored entries = minutes (or metres) within the cut-off.
    weights : array-like
    p : int
    locked : array-like, optional
    penalty : float, optional
    capacity : array-like, optional
    use_rate : float
    aggregate : bool
    """

    sense = "min"

    def __init__(
        self,
        times: sp.spmatrix,
        weights: np.ndarray,
        p: int,
        *,
        locked: np.ndarray | None = None,
        penalty: float | None = None,
        capacity: np.ndarray | None = None,
        use_rate: float = 1.0,
        aggregate: bool = True,
    ) -> None:
        self._prepare(times, weights, locked, keep_values=True, aggregate=aggregate)
        self.p = check_p(p, int(self.free.sum()))
        tmax = float(self.A0.data.max()) if self.A0.nnz else 1.0
        self.penalty = float(penalty) if penalty is not None else 2.0 * max(tmax, 1e-9)
        if not np.isfinite(self.penalty) or self.penalty < tmax:
            raise InputError("penalty 应不小于最大通行时间", "penalty must be ≥ the largest stored time",
                             field="penalty")
        self.penalty_time = self.penalty
        self.capacity = None if capacity is None else as_vector(capacity, self.n_cand, "capacity")
        self.use_rate = float(use_rate)

    def build(self) -> tuple[Lp, np.ndarray, np.ndarray, np.ndarray]:
        """Assemble the MILP; returns (lp, x, z, u columns)."""
        A, w = self.agg.matrix, self.agg.weights
        lp = Lp("min")
        x = lp.add_cols(np.zeros(self.n_cand), 0.0, 1.0, True)
        rows_of = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        z, u = assignment_block(lp, A, w[rows_of] * A.data, penalty_cost=w * self.penalty, equality=True)
        assert u is not None, "a penalty cost gives penalty columns"
        linking_block(lp, A, z, x)
        if self.capacity is not None:
            capacity_block(lp, A, z, x, w * self.use_rate, self.capacity)
        cardinality_block(lp, x, self.free, self.p)
        locked_block(lp, x, self.locked)
        return lp, x, z, u

    def _assign_lp(self, sel: np.ndarray) -> tuple[float, np.ndarray]:
        lp, x, z, u = self.build()
        fixv = np.zeros(self.n_cand)
        fixv[sel] = 1.0
        r = lp.solve(mip=False, time_limit=120.0, fix=(x, fixv))
        return float(r["objective"]), r["x"]


    # -- solve stages (see SitingModel.solve) -----------------------------------------------------
    def _heuristic(self, run: SolveRun) -> None:
        eng = run.eng
        t0 = time.perf_counter()
        d1 = np.full(eng.n, self.penalty)
        for j in self.locked:
            eng.apply_col(int(j), d1)
        sel_free, _ = lazy_greedy(eng, d1, self.free, self.p)
        run.timings["greedy"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sel_free, _ = swap_search(eng, sel_free, self.locked, self.free,
                                  deadline=min(run.deadline, run.t_start + 0.4 * run.time_limit))
        run.timings["swap"] = time.perf_counter() - t0
        run.method_used += ["greedy", "swap"]
        run.sel_free = sel_free

    def _bound(self, run: SolveRun) -> None:
        eng = run.eng
        run.bound, run.bound_method = 0.0, "trivial"
        run.objective = np.inf
        if run.method == "milp":
            return
        sel = self.selection(run.sel_free)
        d1, d2, _ = eng.nearest_two(sel)
        run.objective = eng.cost(d1)
        t0 = time.perf_counter()
        if self.capacity is None:
            lag = assignment_lagrangian_bound(
                eng, self.locked, self.free, self.p, None, None, run.objective, d1,
                deadline=min(run.deadline, time.perf_counter() + 0.25 * run.time_limit))
            run.bound, run.bound_method = max(lag, 0.0), "lagrangian"
        else:
            run.objective, run.start = self._assign_lp(sel)
        run.timings["bound"] = time.perf_counter() - t0

    def _exact(self, run: SolveRun) -> None:
        nnz = self.agg.matrix.nnz
        gap_open = relative_gap(run.objective, run.bound) > run.mip_gap
        if run.method == "milp" or (run.method == "auto" and nnz <= limits.MILP_MAX_NNZ // 2
                                    and gap_open):
            self._solve_milp(run)
        elif nnz <= limits.LP_MAX_NNZ // 2 and gap_open and run.deadline - time.perf_counter() > 0.5:
            self._lp_bound(run)

    def _milp_start(self, run: SolveRun, lp: Lp, *cols: np.ndarray) -> np.ndarray | None:
        if run.start is not None:  # the assignment LP of the capacitated variant
            return run.start
        x, z, u = cols
        A, eng = self.agg.matrix, run.eng
        start_vec = np.zeros(lp.n_col)
        sel = self.selection(run.sel_free)
        start_vec[x[sel]] = 1.0
        _, _, owner = eng.nearest_two(sel)
        # z for the nearest selected site of each row
        rn = eng.row_of_nnz
        hit = (owner[rn] >= 0) & (A.indices == np.where(owner[rn] >= 0, sel[np.maximum(owner[rn], 0)], -1))
        # keep only the first hit per row
        first = np.zeros(A.nnz, dtype=bool)
        hr = np.flatnonzero(hit)
        _, fi = np.unique(rn[hr], return_index=True)
        first[hr[fi]] = True
        start_vec[z[first]] = 1.0
        start_vec[u[owner < 0]] = 1.0
        return start_vec

    def _improvement_tol(self, run: SolveRun) -> float:
        return 1e-9 * max(run.objective, 1)

    def _result(self, run: SolveRun) -> SitingResult:
        """Objective and assignment on the original rows."""
        P = self.penalty
        const = self.uncoverable * P
        sel, marg, _ = order_and_marginals(run.eng, self.locked, run.sel_free)
        A0 = self.A0
        on = np.full(self.n_cand, False)
        on[sel] = True
        rn0 = np.repeat(np.arange(self.n_rows), np.diff(A0.indptr))
        mk = on[A0.indices]
        r_, c_, t_ = rn0[mk], A0.indices[mk], A0.data[mk]
        o = np.lexsort((c_, t_, r_))
        r_, c_, t_ = r_[o], c_[o], t_[o]
        first = np.ones(r_.size, dtype=bool)
        first[1:] = r_[1:] != r_[:-1]
        assignment = np.full(self.n_rows, -1, dtype=np.int64)
        tbest = np.full(self.n_rows, P)
        assignment[r_[first]] = c_[first]
        tbest[r_[first]] = np.minimum(t_[first], P)
        covered = assignment >= 0
        if self.capacity is None:
            objective = float(self.w0 @ tbest)
        else:
            val, _ = self._assign_lp(sel)
            objective = val + const
        bound = min(run.bound + const, objective)
        gap = relative_gap(objective, bound)
        return SitingResult(
            selected=sel, covered=covered, objective=objective, upper_bound=float(bound), gap=gap,
            method="+".join(run.method_used) if run.method != "milp" else "milp",
            proven_optimal=gap <= run.mip_gap, marginal=marg, timings=run.timings, sense="min",
            bound_method=run.bound_method, assignment=assignment,
        )


# --------------------------------------------------------------------------------------------------
# Functional API (DESIGN §4.3)
# --------------------------------------------------------------------------------------------------
def solve_max_coverage(  # noqa: PLR0913 - issue 11: to narrow/split
    cover: sp.spmatrix,
    weights: np.ndarray,
    p: int | None,
    locked: np.ndarray | None = None,
    time_limit: float = 60,
    budget: float | None = None,
    cost: np.ndarray | None = None,
    *,
    capacity: np.ndarray | None = None,
    use_rate: float = 1.0,
    method: str = "auto",
) -> SitingResult:
    """Choose ``p`` new sites (or sites within ``budget``) that maximise the covered weight (MCLP).

    Parameters
    ----------
    cover : scipy.sparse matrix
        Demand × candidates, nonzero where the candidate covers the demand row.
    weights : array-like
        Weight per demand row (e.g. population of the target age group).
    p : int or None
        Number of new sites; ``None`` when ``budget`` is given.
    locked : array-like, optional
        Existing sites (candidate indices), always selected, not counted in ``p``.
    time_limit : float
        Seconds.
    budget, cost : optional
        Budget and cost per candidate instead of ``p``.
    capacity, use_rate : optional
        Capacitated variant (see :class:`MaxCoverage`).
    method : {"auto", "heuristic", "milp"}

    Returns
    -------
    SitingResult
    """
    model = MaxCoverage(cover, weights, p, locked=locked, budget=budget, cost=cost,
                        capacity=capacity, use_rate=use_rate)
    return model.solve(time_limit=time_limit, method=method)


def solve_set_cover(
    cover: sp.spmatrix,
    weights: np.ndarray,
    target_share: float = 0.95,
    locked: np.ndarray | None = None,
    time_limit: float = 60,
    *,
    cost: np.ndarray | None = None,
    method: str = "auto",
) -> SitingResult:
    """Fewest (or cheapest) new sites so that ``target_share`` of the coverable weight is covered.

    Parameters
    ----------
    cover : scipy.sparse matrix
    weights : array-like
    target_share : float
        Share of the coverable weight (demand some candidate can reach; the rest is reported as
        ``uncoverable_weight``).
    locked : array-like, optional
    time_limit : float
    cost : array-like, optional
    method : {"auto", "heuristic", "milp"}

    Returns
    -------
    SitingResult
    """
    model = SetCover(cover, weights, target_share, locked=locked, cost=cost)
    return model.solve(time_limit=time_limit, method=method)


def solve_p_median(  # noqa: PLR0913 - issue 11: to narrow/split
    times: sp.spmatrix,
    weights: np.ndarray,
    p: int,
    locked: np.ndarray | None = None,
    time_limit: float = 60,
    *,
    penalty: float | None = None,
    capacity: np.ndarray | None = None,
    use_rate: float = 1.0,
    method: str = "auto",
) -> SitingResult:
    """Choose ``p`` new sites minimising total weighted time (see :class:`PMedian`).

    Parameters
    ----------
    times : scipy.sparse matrix
        Demand × candidates, stored entries = times within the cut-off.
    weights : array-like
    p : int
    locked : array-like, optional
    time_limit : float
    penalty : float, optional
        Time charged to demand with no selected site within the cut-off.
    capacity, use_rate : optional
    method : {"auto", "heuristic", "milp"}

    Returns
    -------
    SitingResult
    """
    model = PMedian(times, weights, p, locked=locked, penalty=penalty, capacity=capacity,
                    use_rate=use_rate)
    return model.solve(time_limit=time_limit, method=method)

