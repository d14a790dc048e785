"""The HiGHS wrapper (:class:`Lp`) and the constraint blocks every model is built from.

Blocks add rows (or bounds) to an :class:`Lp` given column index arrays: ``x`` (one per candidate),
``y`` (one per demand row), ``z`` (one per stored demand–candidate pair, in the CSR order of ``A``)
and ``u`` (penalty share per demand row). ``A`` is the aggregated demand × candidates CSR matrix.
No modelling layer: plain sparse arrays go to ``highspy``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from coverage.siting import limits

__all__ = [
    "new_highs", "Lp", "coverage_block", "cardinality_block", "budget_block", "locked_block",
    "assignment_block", "linking_block", "capacity_block",
]


def new_highs() -> Any:
    """A silent HiGHS instance (``highspy.Highs``, imported lazily).

    The first one built in a process prints a copyright banner straight to the C-level stdout
    (before any option can be set); that write goes to /dev/null instead, so ``covplan site``
    output stays clean.

    Returns
    -------
    highspy.Highs
    """
    import ctypes
    import os
    import sys

    import highspy

    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()
        try:
            ctypes.CDLL(None).fflush(None)  # flush C stdio while it still points at /dev/null
        except (OSError, TypeError, AttributeError):  # no C library handle (e.g. Windows)
            pass
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    h.setOptionValue("output_flag", False)
    return h


class Lp:
    """Columns and rows accumulated as arrays; rows in COO triplets, passed to HiGHS column-wise.

    Parameters
    ----------
    sense : {"max", "min"}
        Direction of the objective.
    """

    def __init__(self, sense: str) -> None:
        self.sense = sense
        self.cost: list[np.ndarray] = []
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.n_col = 0
        self.rlo: list[np.ndarray] = []
        self.rhi: list[np.ndarray] = []
        self.tr: list[np.ndarray] = []
        self.tc: list[np.ndarray] = []
        self.tv: list[np.ndarray] = []
        self.n_row = 0
        self.offset = 0.0

    def add_cols(self, cost: np.ndarray, lb: float, ub: float, integer: bool) -> np.ndarray:
        """Add one column per objective coefficient in ``cost``; returns their indices."""
        n = len(cost)
        self.cost.append(np.asarray(cost, dtype=np.float64))
        self.lb.append(np.full(n, lb, dtype=np.float64))
        self.ub.append(np.full(n, ub, dtype=np.float64))
        self.integer.append(np.full(n, 1 if integer else 0, dtype=np.int32))
        idx = np.arange(self.n_col, self.n_col + n)
        self.n_col += n
        return idx

    def add_rows(
        self, lo: np.ndarray, hi: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray
    ) -> np.ndarray:
        """Add rows ``lo ≤ A x ≤ hi`` given as COO triplets (``rows`` local to the block).

        Returns the indices of the new rows.
        """
        n = len(lo)
        self.rlo.append(np.asarray(lo, dtype=np.float64))
        self.rhi.append(np.asarray(hi, dtype=np.float64))
        self.tr.append(np.asarray(rows, dtype=np.int64) + self.n_row)
        self.tc.append(np.asarray(cols, dtype=np.int64))
        self.tv.append(np.asarray(vals, dtype=np.float64))
        idx = np.arange(self.n_row, self.n_row + n)
        self.n_row += n
        return idx

    def set_lower(self, cols: np.ndarray, value: float) -> None:
        """Raise the lower bound of ``cols`` to ``value``."""
        lb = np.concatenate(self.lb)
        lb[cols] = value
        self.lb = [lb]

    def solve(
        self,
        *,
        mip: bool,
        time_limit: float,
        mip_gap: float = limits.MIP_GAP,
        start: np.ndarray | None = None,
        fix: tuple[np.ndarray, np.ndarray] | None = None,
        solver: str = "choose",
    ) -> dict:
        """Solve with HiGHS; returns status, objective, bound, values, row duals and time.

        ``solver="primal"`` runs the primal simplex (fast on covering LPs whose optimum is nearly
        integral: it starts from the all-slack basis and needs few pivots); ``solver="ipm"`` runs the
        interior point method without crossover (LP only): much faster on
        large covering LPs; its duals are used through a Lagrangian formula, so they need not be
        exact for the bound to be valid.
        """
        import highspy

        t0 = time.perf_counter()
        A = sp.csc_matrix(
            (np.concatenate(self.tv), (np.concatenate(self.tr), np.concatenate(self.tc))),
            shape=(self.n_row, self.n_col),
        )
        A.sum_duplicates()
        lb = np.concatenate(self.lb).copy()
        ub = np.concatenate(self.ub).copy()
        if fix is not None:
            lb[fix[0]] = fix[1]
            ub[fix[0]] = fix[1]
        integ = np.concatenate(self.integer) if mip else np.zeros(self.n_col, dtype=np.int32)
        h = new_highs()
        h.setOptionValue("time_limit", float(max(time_limit, 0.01)))
        h.setOptionValue("random_seed", 0)
        h.setOptionValue("mip_rel_gap", float(mip_gap))
        if not mip and solver == "primal":
            h.setOptionValue("solver", "simplex")
            h.setOptionValue("simplex_strategy", 4)
        elif not mip and solver != "choose":
            h.setOptionValue("solver", solver)
            if solver == "ipm":
                h.setOptionValue("run_crossover", "off")
        h.passModel(
            int(self.n_col), int(self.n_row), int(A.nnz), 1,
            -1 if self.sense == "max" else 1, float(self.offset),
            np.concatenate(self.cost), lb, ub,
            np.concatenate(self.rlo), np.concatenate(self.rhi),
            A.indptr.astype(np.int32), A.indices.astype(np.int32), A.data.astype(np.float64),
            integ,
        )
        if start is not None and mip:
            sol = highspy.HighsSolution()
            sol.col_value = list(np.asarray(start, dtype=np.float64))
            sol.value_valid = True
            h.setSolution(sol)
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        info = h.getInfo()
        out: dict = {"status": status, "time": time.perf_counter() - t0}
        has_sol = info.primal_solution_status == 2
        solution = h.getSolution()
        out["x"] = np.asarray(solution.col_value) if has_sol else None
        out["row_dual"] = (np.asarray(solution.row_dual) if (not mip and solution.dual_valid)
                           else None)
        out["objective"] = float(info.objective_function_value) if has_sol else None
        if mip:
            out["bound"] = float(info.mip_dual_bound)
        else:
            out["bound"] = float(info.objective_function_value) if status == "Optimal" else None
        out["optimal"] = status == "Optimal"
        return out


def coverage_block(lp: Lp, A: sp.csr_matrix, x: np.ndarray, y: np.ndarray) -> None:
    """y_i − Σ_{j ∈ N_i} x_j ≤ 0 for every demand row i (N_i: the row's stored columns)."""
    n = A.shape[0]
    rows = np.concatenate([np.arange(n), np.repeat(np.arange(n), np.diff(A.indptr))])
    cols = np.concatenate([y, x[A.indices]])
    vals = np.concatenate([np.ones(n), -np.ones(A.nnz)])
    lp.add_rows(np.full(n, -np.inf), np.zeros(n), rows, cols, vals)


def cardinality_block(lp: Lp, x: np.ndarray, free: np.ndarray, p: int) -> None:
    """Σ_{j ∈ free} x_j ≤ p."""
    f = np.flatnonzero(free)
    lp.add_rows(np.array([-np.inf]), np.array([float(p)]), np.zeros(f.size), x[f], np.ones(f.size))


def budget_block(lp: Lp, x: np.ndarray, free: np.ndarray, cost: np.ndarray, budget: float) -> None:
    """Σ_{j ∈ free} c_j x_j ≤ B."""
    f = np.flatnonzero(free)
    lp.add_rows(np.array([-np.inf]), np.array([float(budget)]), np.zeros(f.size), x[f], cost[f])


def locked_block(lp: Lp, x: np.ndarray, locked: np.ndarray) -> None:
    """x_j = 1 for every locked (existing) site (a bound change, not a row)."""
    if locked.size:
        lp.set_lower(x[locked], 1.0)


def assignment_block(
    lp: Lp, A: sp.csr_matrix, coef: np.ndarray, *, penalty_cost: np.ndarray | None, equality: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """z_ij ≥ 0 for the stored pairs only; Σ_j z_ij (+ u_i) ≤ 1 (or = 1 with the penalty column u_i)."""
    n = A.shape[0]
    z = lp.add_cols(coef, 0.0, 1.0, False)
    rows = np.repeat(np.arange(n), np.diff(A.indptr))
    cols = [z]
    rr = [rows]
    u = None
    if penalty_cost is not None:
        u = lp.add_cols(penalty_cost, 0.0, 1.0, False)
        cols.append(u)
        rr.append(np.arange(n))
    c = np.concatenate(cols)
    r = np.concatenate(rr)
    lo = np.ones(n) if equality else np.full(n, -np.inf)
    lp.add_rows(lo, np.ones(n), r, c, np.ones(c.size))
    return z, u


def linking_block(lp: Lp, A: sp.csr_matrix, z: np.ndarray, x: np.ndarray) -> None:
    """z_ij − x_j ≤ 0 for the stored pairs (strong formulation)."""
    k = A.nnz
    rows = np.concatenate([np.arange(k), np.arange(k)])
    cols = np.concatenate([z, x[A.indices]])
    vals = np.concatenate([np.ones(k), -np.ones(k)])
    lp.add_rows(np.full(k, -np.inf), np.zeros(k), rows, cols, vals)


def capacity_block(
    lp: Lp, A: sp.csr_matrix, z: np.ndarray, x: np.ndarray, demand: np.ndarray, capacity: np.ndarray
) -> None:
    """Σ_i d_i z_ij − C_j x_j ≤ 0 for every candidate j (d_i = weight × use rate)."""
    m = A.shape[1]
    rows_of = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    r = np.concatenate([A.indices, np.arange(m)])
    c = np.concatenate([z, x])
    v = np.concatenate([demand[rows_of], -capacity])
    lp.add_rows(np.full(m, -np.inf), np.zeros(m), r, c, v)
