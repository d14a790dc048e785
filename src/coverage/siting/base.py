"""The solve skeleton shared by every siting model (:class:`SitingModel`).

``solve`` runs the same stages for every model; a model fills in the hooks:

1. ``_heuristic`` — greedy and local search (skipped for ``method="milp"``);
2. ``_bound`` — a bound on the optimum (Lagrangian, LP, knapsack …);
3. ``_exact`` — only while the gap is open: the MILP (:meth:`SitingModel._solve_milp`, warm-started
   from the heuristic) or an LP bound (:meth:`SitingModel._lp_bound`);
4. ``_result`` — figures on the original (not aggregated) demand rows.

The state of one solve travels in a :class:`SolveRun`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from coverage.errors import InputError
from coverage.siting import limits
from coverage.siting.aggregation import Aggregation, aggregate_rows
from coverage.siting.heuristics import Engine
from coverage.siting.inputs import as_csr, as_locked, as_weights
from coverage.siting.lp import Lp
from coverage.siting.result import SitingResult

__all__ = ["METHODS", "SolveRun", "SitingModel"]

#: Values of ``method`` that :meth:`SitingModel.solve` accepts.
METHODS: tuple[str, ...] = ("auto", "heuristic", "greedy", "milp")


@dataclass
class SolveRun:
    """State of one solve, handed from stage to stage of :meth:`SitingModel.solve`.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    time_limit : float
        Seconds for the whole solve.
    mip_gap : float
        Relative gap at which a solution counts as proven optimal.
    t_start : float
        ``time.perf_counter()`` at the start.
    eng : Engine
        The aggregated problem for the heuristics.
    timings : dict
        Seconds per stage.
    method_used : list of str
        Stages that ran, joined into :attr:`SitingResult.method`.
    sel_free : list of int
        Current selection of new (free) sites.
    objective : float
        Objective of the current selection on the aggregated rows (model's sense).
    bound : float
        Best bound so far, and ``bound_method`` where it comes from.
    start : numpy.ndarray or None
        MILP start vector or column values of the last assignment LP / MILP.
    lp_x : numpy.ndarray or None
        LP relaxation values of the site columns (MCLP), for the restricted MILP.
    """

    method: str
    time_limit: float
    mip_gap: float
    t_start: float
    eng: Engine
    timings: dict[str, float] = field(default_factory=dict)
    method_used: list[str] = field(default_factory=list)
    sel_free: list[int] = field(default_factory=list)
    objective: float = 0.0
    bound: float = 0.0
    bound_method: str = "trivial"
    start: np.ndarray | None = None
    lp_x: np.ndarray | None = None

    @property
    def deadline(self) -> float:
        """``time.perf_counter()`` value at which the solve should end."""
        return self.t_start + self.time_limit


class SitingModel:
    """Base of the siting models: input checks and aggregation, the shared ``solve`` skeleton."""

    sense = "max"
    #: ``d_i`` of a demand row no selected site reaches (MCLP, LSCP: 1 = uncovered).
    penalty_time: float = 1.0

    agg: Aggregation
    free: np.ndarray
    locked: np.ndarray

    def _prepare(self, matrix: object, weights: object, locked: object, *, keep_values: bool,
                 aggregate: bool) -> None:
        t0 = time.perf_counter()
        self.A0 = as_csr(matrix, "cover" if not keep_values else "times", keep_values=keep_values)
        self.n_rows, self.n_cand = self.A0.shape
        self.w0 = as_weights(weights, self.n_rows)
        self.locked = as_locked(locked, self.n_cand)
        self.free = np.ones(self.n_cand, dtype=bool)
        self.free[self.locked] = False
        self.aggregate = aggregate
        if aggregate:
            self.agg = aggregate_rows(self.A0, self.w0, with_values=keep_values)
        else:
            lens = np.diff(self.A0.indptr)
            rows = np.flatnonzero((lens > 0) & (self.w0 > 0))
            g = np.full(self.n_rows, -1, dtype=np.int64)
            g[rows] = np.arange(rows.size)
            sub = self.A0[rows]
            sub.indptr = sub.indptr.astype(np.int64)
            sub.indices = sub.indices.astype(np.int64)
            self.agg = Aggregation(sub, self.w0[rows], g, rows)
        lens = np.diff(self.A0.indptr)
        self.uncoverable = float(self.w0[lens == 0].sum())
        self.t_aggregate = time.perf_counter() - t0

    # -- the skeleton -----------------------------------------------------------------------------
    def solve(self, time_limit: float = 60.0, method: str = "auto",
              mip_gap: float = limits.MIP_GAP) -> SitingResult:
        """Solve the model.

        Parameters
        ----------
        time_limit : float
            Seconds for the whole solve (the MILP gets what remains after the heuristic).
        method : {"auto", "heuristic", "greedy", "milp"}
            ``auto``: greedy + local search + bound, then, only while the gap is open, the MILP
            when the aggregated model is small enough (:data:`coverage.siting.limits.MILP_MAX_NNZ`;
            larger MCLPs: the MILP restricted to the LP support), else an LP bound.
            ``heuristic``: greedy + local search and a bound; the selection is the heuristic's.
            ``greedy``: MCLP: as ``heuristic`` without the swap search (for comparisons).
            ``milp``: the MILP alone (no heuristic, no warm start), as a reference.
        mip_gap : float
            Relative gap at which HiGHS stops and a result counts as proven optimal.

        Returns
        -------
        SitingResult
        """
        t_start = time.perf_counter()
        run = SolveRun(method, time_limit, mip_gap, t_start,
                       Engine(self.agg.matrix, self.agg.weights, self.penalty_time))
        if method not in METHODS:
            raise InputError("method 应为 auto、heuristic、greedy 或 milp",
                             "method must be auto, heuristic, greedy or milp", field="method")
        if method != "milp":
            self._heuristic(run)
        self._bound(run)
        self._exact(run)
        return self._finish(self._result(run), t_start)

    def _heuristic(self, run: SolveRun) -> None:
        raise NotImplementedError

    def _bound(self, run: SolveRun) -> None:
        raise NotImplementedError

    def _exact(self, run: SolveRun) -> None:
        raise NotImplementedError

    def _result(self, run: SolveRun) -> SitingResult:
        raise NotImplementedError

    def build(self) -> tuple[Lp, *tuple[np.ndarray, ...]]:
        """Assemble the MILP from the constraint blocks; returns the LP and its column indices."""
        raise NotImplementedError

    def _milp_start(self, run: SolveRun, lp: Lp, *cols: np.ndarray) -> np.ndarray | None:
        """Start vector of the MILP from the heuristic's selection."""
        raise NotImplementedError

    def _improvement_tol(self, run: SolveRun) -> float:
        """How much better than ``run.objective`` a MILP solution must be to replace it."""
        raise NotImplementedError

    # -- shared steps -----------------------------------------------------------------------------
    def selection(self, sel_free: list[int]) -> np.ndarray:
        """Locked sites followed by ``sel_free``, as int64 candidate indices."""
        return np.asarray(list(self.locked) + list(sel_free), dtype=np.int64)

    def _tighter(self, new: float, bound: float) -> bool:
        return new < bound if self.sense == "max" else new > bound

    def _solve_milp(self, run: SolveRun) -> None:
        """Run the MILP (warm-started unless ``method="milp"``); keep it when strictly better."""
        t0 = time.perf_counter()
        lp, *cols = self.build()
        start = None if run.method == "milp" else self._milp_start(run, lp, *cols)
        r = lp.solve(mip=True, time_limit=max(run.deadline - time.perf_counter(), 0.5),
                     mip_gap=run.mip_gap, start=start)
        run.timings["milp"] = time.perf_counter() - t0
        if r["x"] is not None:
            tol = self._improvement_tol(run)
            better = (r["objective"] > run.objective + tol if self.sense == "max"
                      else r["objective"] < run.objective - tol)
            if run.method == "milp" or better:
                run.sel_free = [int(j) for j in np.flatnonzero(r["x"][cols[0]] > 0.5) if self.free[j]]
                run.objective = r["objective"]
                run.start = r["x"]
        run.method_used.append("milp")
        if np.isfinite(r["bound"]) and self._tighter(r["bound"], run.bound):
            run.bound, run.bound_method = r["bound"], "milp"

    def _lp_bound(self, run: SolveRun) -> bool:
        """Tighten the bound with the LP relaxation; True when it did."""
        t0 = time.perf_counter()
        lp = self.build()[0]
        r = lp.solve(mip=False, time_limit=run.deadline - time.perf_counter())
        tighter = r["bound"] is not None and self._tighter(r["bound"], run.bound)
        if tighter:
            run.bound, run.bound_method = r["bound"], "lp"
        run.timings["bound"] = run.timings.get("bound", 0.0) + time.perf_counter() - t0
        return tighter

    def _finish(self, res: SitingResult, t_start: float) -> SitingResult:
        res.timings["aggregate"] = self.t_aggregate
        res.timings["total"] = time.perf_counter() - t_start + self.t_aggregate
        res.n_rows = self.n_rows
        res.n_rows_aggregated = int(self.agg.weights.size)
        res.uncoverable_weight = self.uncoverable
        res.total_weight = float(self.w0.sum())
        return res
