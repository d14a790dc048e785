"""Siting: choose facility sites that close coverage gaps (MCLP, LSCP, p-median).

One object per model, in the style of spopt: :class:`MaxCoverage` (maximal covering location
problem), :class:`SetCover` (location set covering, partial), :class:`PMedian` (minimise total
weighted travel time). Each writes its formulation in its docstring and is assembled from the same
building blocks (coverage rows, cardinality/budget row, capacity rows, locked sites), which produce
plain sparse arrays for HiGHS (``highspy``) without a modelling layer.

How a model is solved (``method="auto"``)
-----------------------------------------
1. **Aggregation.** Demand rows that reach exactly the same candidates (same sparse column pattern,
   and for p-median the same times) are merged and their weights summed. Rows that reach no
   candidate are set aside and reported (``uncoverable_weight``). This is the main speed lever: on
   spatial instances it typically shrinks the rows several-fold (``n_rows`` → ``n_rows_aggregated``).
2. **Lazy greedy** with a priority queue of marginal gains over the sparse columns (ties broken by
   the lower candidate index, so results are deterministic).
3. **Swap (interchange) local search**: the best 1-swap is found exactly for all (out, in) pairs at
   once from per-demand nearest/second-nearest (cover counts for MCLP) with one sparse group-by per
   iteration.
4. **Bound.** MCLP (uncapacitated): the LP relaxation in HiGHS — primal simplex up to
   :data:`LP_SIMPLEX_MAX_NNZ` aggregated cover pairs (fast here: the covering LP is usually
   integral or nearly so), interior point without crossover up to :data:`LP_MAX_NNZ`. The bound is
   not read from the solver's objective but recomputed from its row duals with the closed-form
   Lagrangian of the coverage rows (``Σ_i max(0, w_i − u_i)`` + the ``p`` largest ``Σ_i u_i a_ij``),
   which is valid for any multipliers. The LP solution is rounded (largest x first) and improved by
   the swap search. When the LP is not run, the same Lagrangian is minimised by projected subgradient
   (Polyak steps, sparse matrix–vector products). Other models: a Lagrangian bound on the assignment
   rows and the LP relaxation when the model is not too large.
5. **Exact or restricted MILP**, only when the gap is still open: the full MILP in HiGHS when the
   aggregated model is small enough (:data:`MILP_MAX_NNZ`), warm-started from the heuristic and
   stopped at ``time_limit`` or ``mip_gap``; for larger MCLPs, the MILP restricted to the columns of
   the LP support and the incumbent (a heuristic: it can only improve the selection, the bound stays
   the LP's). The best bound is reported as ``upper_bound`` (maximisation) or lower bound
   (minimisation, same attribute) with the relative ``gap``; ``proven_optimal`` is set when the gap
   is closed (≤ ``mip_gap``).

The heuristic part is deterministic. The MILP part is deterministic for a given HiGHS version unless
the time limit stops it (then the incumbent depends on the machine's speed); it only replaces the
heuristic selection when it is strictly better.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from coverage.errors import InputError

__all__ = [
    "SitingResult",
    "Aggregation",
    "aggregate_rows",
    "MaxCoverage",
    "SetCover",
    "PMedian",
    "solve_max_coverage",
    "solve_set_cover",
    "solve_p_median",
    "generate_candidates",
]

#: Aggregated nonzeros (cover pairs) up to which ``method="auto"`` runs the exact MILP.
MILP_MAX_NNZ: int = 400_000
#: Aggregated nonzeros up to which ``method="auto"`` solves the LP relaxation for a bound when the
#: MILP is not run.
LP_MAX_NNZ: int = 1_500_000
#: Aggregated nonzeros up to which the MCLP LP relaxation is solved by the primal simplex; larger
#: LPs use the interior point method without crossover.
LP_SIMPLEX_MAX_NNZ: int = 400_000
#: Relative optimality gap at which a solution counts as proven optimal.
MIP_GAP: float = 1e-4

_INF = float("inf")


# --------------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------------
@dataclass
class SitingResult:
    """Result of a siting model.

    Attributes
    ----------
    selected : numpy.ndarray
        Candidate indices (columns of the input matrix). Locked sites first (in index order), then
        the new sites in greedy order of their marginal contribution to the final set.
    covered : numpy.ndarray
        Bool per input demand row: reached by a selected site (MCLP/LSCP: within the cover; capacitated
        MCLP: fully served; p-median: some selected site within the cut-off).
    objective : float
        Covered weight (MCLP), number or cost of the new sites (LSCP), total weighted time including
        penalties (p-median).
    upper_bound : float
        Best proven bound on the optimum: an upper bound for maximisation problems (MCLP), a lower
        bound for minimisation problems (LSCP, p-median).
    gap : float
        Relative optimality gap, ``|bound - objective| / max(|bound|, |objective|)`` (0 when both are 0).
    method : str
        How the selection was obtained, e.g. ``"greedy+swap"``, ``"greedy+swap+milp"``, ``"milp"``.
    proven_optimal : bool
        True when ``gap`` ≤ the requested MIP gap.
    marginal : numpy.ndarray
        Per entry of ``selected``: weight newly covered (MCLP/LSCP) or weighted time saved (p-median)
        when the sites are added in the order of ``selected``.
    timings : dict
        Seconds per stage (``aggregate``, ``greedy``, ``swap``, ``bound``, ``milp``, ``total``).
    sense : str
        ``"max"`` or ``"min"``.
    bound_method : str
        Where the bound comes from (``"lagrangian"``, ``"lp"``, ``"milp"``, ``"trivial"``).
    n_rows, n_rows_aggregated : int
        Demand rows before and after aggregation (rows with no candidate or zero weight dropped).
    uncoverable_weight : float
        Weight of demand rows that no candidate can reach (excluded from the model and, for LSCP, from
        the denominator of the target share).
    total_weight : float
        Sum of all weights.
    assignment : numpy.ndarray or None
        p-median: selected candidate serving each demand row (-1: none within the cut-off).
    served : numpy.ndarray or None
        Capacitated MCLP: share of each demand row's weight that is served (0..1).
    """

    selected: np.ndarray
    covered: np.ndarray
    objective: float
    upper_bound: float
    gap: float
    method: str
    proven_optimal: bool
    marginal: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    sense: str = "max"
    bound_method: str = ""
    n_rows: int = 0
    n_rows_aggregated: int = 0
    uncoverable_weight: float = 0.0
    total_weight: float = 0.0
    assignment: np.ndarray | None = None
    served: np.ndarray | None = None

    @property
    def bound(self) -> float:
        """Alias of :attr:`upper_bound` that reads naturally for minimisation problems."""
        return self.upper_bound

    @property
    def reduction(self) -> float:
        """Aggregation factor ``n_rows / n_rows_aggregated`` (≥ 1)."""
        return self.n_rows / max(self.n_rows_aggregated, 1)


def _gap(obj: float, bound: float) -> float:
    den = max(abs(obj), abs(bound))
    if den <= 1e-12:
        return 0.0
    return max(0.0, abs(bound - obj) / den)


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------
def _as_csr(matrix: object, name: str, *, keep_values: bool) -> sp.csr_matrix:
    if isinstance(matrix, np.ndarray):
        if keep_values:
            raise InputError(
                f"{name} 应为稀疏矩阵（scipy.sparse），存储项即可达的需求-候选点对",
                f"{name} must be a scipy.sparse matrix whose stored entries are the reachable pairs",
                field=name,
            )
        matrix = sp.csr_matrix(matrix)
    if not sp.issparse(matrix):
        raise InputError(
            f"{name} 应为 scipy.sparse 矩阵（需求 × 候选点）",
            f"{name} must be a scipy.sparse matrix (demand × candidates)",
            field=name,
        )
    m = sp.csr_matrix(matrix, copy=True)
    m.sum_duplicates()
    m.sort_indices()
    if keep_values:
        m.data = m.data.astype(np.float64)
        if not np.all(np.isfinite(m.data)) or np.any(m.data < 0):
            raise InputError(
                f"{name} 的存储值（时间）应为非负有限数；不可达的点对请不要存储",
                f"{name} stored values (times) must be finite and ≥ 0; do not store unreachable pairs",
                field=name,
            )
    else:
        m.data = (m.data != 0).astype(np.float64)
        m.eliminate_zeros()
        m.data[:] = 0.0  # cover pairs are "time 0"; kept explicitly
    m.indptr = m.indptr.astype(np.int64)
    m.indices = m.indices.astype(np.int64)
    return m


def _as_weights(weights: object, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape[0] != n:
        raise InputError(
            f"权重个数 ({w.shape[0]}) 与需求行数 ({n}) 不一致",
            f"weights has {w.shape[0]} values but the matrix has {n} demand rows",
            field="weights",
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError(
            "权重（人口）应为非负有限数",
            "weights (population) must be finite and ≥ 0",
            field="weights",
        )
    return w


def _as_locked(locked: object, n_cand: int) -> np.ndarray:
    if locked is None:
        return np.zeros(0, dtype=np.int64)
    arr = np.asarray(locked)
    if arr.dtype == bool:
        if arr.shape[0] != n_cand:
            raise InputError(
                "locked 布尔数组长度应等于候选点数", "boolean locked must have one value per candidate",
                field="locked",
            )
        arr = np.flatnonzero(arr)
    arr = np.unique(arr.astype(np.int64).ravel())
    if arr.size and (arr[0] < 0 or arr[-1] >= n_cand):
        raise InputError(
            "locked 中含有超出候选点范围的序号", "locked contains indices outside the candidate range",
            field="locked",
        )
    return arr


def _as_vector(values: object, n: int, name: str, *, positive: bool = False) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.shape[0] != n:
        raise InputError(
            f"{name} 应为每个候选点一个值（共 {n} 个）", f"{name} needs one value per candidate ({n})",
            field=name,
        )
    bad = ~np.isfinite(v) | (v <= 0 if positive else v < 0)
    if np.any(bad):
        raise InputError(
            f"{name} 中第 {int(np.flatnonzero(bad)[0])} 个值无效（应为{'正' if positive else '非负'}有限数）",
            f"{name}[{int(np.flatnonzero(bad)[0])}] is invalid (must be finite and {'> 0' if positive else '≥ 0'})",
            field=name,
        )
    return v


# --------------------------------------------------------------------------------------------------
# Aggregation of demand rows
# --------------------------------------------------------------------------------------------------
@dataclass
class Aggregation:
    """Demand rows merged by identical candidate pattern.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix
        One row per group (the pattern and values of its first member).
    weights : numpy.ndarray
        Summed weight per group.
    group : numpy.ndarray
        Group of each input row, -1 for rows left out (no candidate, or zero weight).
    representative : numpy.ndarray
        First input row of each group.
    """

    matrix: sp.csr_matrix
    weights: np.ndarray
    group: np.ndarray
    representative: np.ndarray


def aggregate_rows(
    matrix: sp.csr_matrix, weights: np.ndarray, *, with_values: bool = False
) -> Aggregation:
    """Merge demand rows that share the same sparse column pattern (and values).

    Each row's pattern is hashed as an order-free sum of two random 64-bit keys per column (mixed
    with the bits of the stored value when ``with_values``); rows are grouped by (length, hash1,
    hash2) and every group is then verified entry by entry, so a hash collision can never merge
    different rows (on a collision the exact, slower grouping is used).

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix
        Demand × candidates, sorted indices.
    weights : numpy.ndarray
        Weight per row.
    with_values : bool
        Also require equal stored values (times, for p-median).

    Returns
    -------
    Aggregation
    """
    m = sp.csr_matrix(matrix)
    m.sort_indices()
    n = m.shape[0]
    lens = np.diff(m.indptr)
    keep = (lens > 0) & (weights > 0)
    rows = np.flatnonzero(keep)
    group = np.full(n, -1, dtype=np.int64)
    if rows.size == 0:
        empty = sp.csr_matrix((0, m.shape[1]))
        return Aggregation(empty, np.zeros(0), group, np.zeros(0, dtype=np.int64))
    rng = np.random.default_rng(0x5EED)
    k1 = rng.integers(1, 2**63 - 1, size=m.shape[1], dtype=np.uint64)
    k2 = rng.integers(1, 2**63 - 1, size=m.shape[1], dtype=np.uint64)
    idx = m.indices
    e1, e2 = k1[idx], k2[idx]
    if with_values:
        bits = np.ascontiguousarray(m.data, dtype=np.float64).view(np.uint64)
        with np.errstate(over="ignore"):
            e1 = e1 ^ (bits * np.uint64(0x9E3779B97F4A7C15))
            e2 = e2 + (bits ^ np.uint64(0xC2B2AE3D27D4EB4F)) * np.uint64(0x165667B19E3779F9)
    starts = m.indptr[rows]
    # order-free row sums of the keys via wrapping cumulative sums
    c1 = np.concatenate([[np.uint64(0)], np.cumsum(e1, dtype=np.uint64)])
    c2 = np.concatenate([[np.uint64(0)], np.cumsum(e2, dtype=np.uint64)])
    ends = m.indptr[rows + 1]
    with np.errstate(over="ignore"):
        h1 = c1[ends] - c1[starts]
        h2 = c2[ends] - c2[starts]
    order = np.lexsort((rows, h2, h1, lens[rows]))
    srt_len, srt_h1, srt_h2 = lens[rows][order], h1[order], h2[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (srt_len[1:] != srt_len[:-1]) | (srt_h1[1:] != srt_h1[:-1]) | (srt_h2[1:] != srt_h2[:-1])
    gid_sorted = np.cumsum(new) - 1
    # number groups by their first row (input order) for stable, readable output
    first_rows = rows[order][new]
    rank = np.argsort(first_rows, kind="stable")
    relabel = np.empty_like(rank)
    relabel[rank] = np.arange(rank.size)
    gid = np.empty(rows.size, dtype=np.int64)
    gid[order] = relabel[gid_sorted]
    rep = first_rows[rank]
    # verify every member against its representative, entry by entry
    member_rep = rep[gid]
    off = np.arange(m.indptr[-1]) - np.repeat(m.indptr[:-1], lens)
    row_of_nnz = np.repeat(np.arange(n), lens)
    sel_nnz = keep[row_of_nnz]
    rep_of_row = np.full(n, -1, dtype=np.int64)
    rep_of_row[rows] = member_rep
    pos = m.indptr[rep_of_row[row_of_nnz[sel_nnz]]] + off[sel_nnz]
    ok = np.array_equal(m.indices[sel_nnz], m.indices[pos])
    if ok and with_values:
        ok = np.array_equal(m.data[sel_nnz], m.data[pos])
    if not ok:  # pragma: no cover - astronomically unlikely hash collision
        seen: dict[bytes, int] = {}
        gid = np.empty(rows.size, dtype=np.int64)
        reps: list[int] = []
        for k, r in enumerate(rows):
            s, e = m.indptr[r], m.indptr[r + 1]
            key = m.indices[s:e].tobytes() + (m.data[s:e].tobytes() if with_values else b"")
            if key not in seen:
                seen[key] = len(reps)
                reps.append(int(r))
            gid[k] = seen[key]
        rep = np.asarray(reps, dtype=np.int64)
    group[rows] = gid
    w_agg = np.bincount(gid, weights=weights[rows], minlength=rep.size)
    agg = m[rep]
    agg.indptr = agg.indptr.astype(np.int64)
    agg.indices = agg.indices.astype(np.int64)
    return Aggregation(agg, w_agg, group, rep)


# --------------------------------------------------------------------------------------------------
# Heuristic engine. Every model is solved as a "distance" problem: minimise Σ_i w_i d_i(S) where
# d_i(S) = min(penalty, min_{j∈S, (i,j) stored} t_ij). MCLP is the case t ≡ 0, penalty 1 (cost =
# uncovered weight); p-median uses the times and its penalty time.
# --------------------------------------------------------------------------------------------------
class _Engine:
    def __init__(self, csr: sp.csr_matrix, w: np.ndarray, penalty: float) -> None:
        self.csr = csr
        self.csc = csr.tocsc()
        self.csc.sort_indices()
        self.w = w
        self.P = float(penalty)
        self.n, self.m = csr.shape
        self.row_of_nnz = np.repeat(np.arange(self.n), np.diff(csr.indptr))

    # cost of rows given current nearest times
    def cost(self, d1: np.ndarray) -> float:
        return float(self.w @ d1)

    def gain_col(self, j: int, d1: np.ndarray) -> float:
        s, e = self.csc.indptr[j], self.csc.indptr[j + 1]
        r = self.csc.indices[s:e]
        diff = d1[r] - self.csc.data[s:e]
        return float(self.w[r] @ np.maximum(diff, 0.0))

    def apply_col(self, j: int, d1: np.ndarray) -> None:
        s, e = self.csc.indptr[j], self.csc.indptr[j + 1]
        r = self.csc.indices[s:e]
        d1[r] = np.minimum(d1[r], self.csc.data[s:e])

    def all_gains(self, d1: np.ndarray) -> np.ndarray:
        v = self.w[self.row_of_nnz] * np.maximum(d1[self.row_of_nnz] - self.csr.data, 0.0)
        return np.bincount(self.csr.indices, weights=v, minlength=self.m)

    def nearest_two(self, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """d1, d2 (penalty if none) and position in ``sel`` of the nearest (-1 if none)."""
        d1 = np.full(self.n, self.P)
        d2 = np.full(self.n, self.P)
        owner = np.full(self.n, -1, dtype=np.int64)
        if sel.size == 0:
            return d1, d2, owner
        pos_of = np.full(self.m, -1, dtype=np.int64)
        pos_of[sel] = np.arange(sel.size)
        mask = pos_of[self.csr.indices] >= 0
        r = self.row_of_nnz[mask]
        t = np.minimum(self.csr.data[mask], self.P)
        p = pos_of[self.csr.indices[mask]]
        o = np.lexsort((p, t, r))
        r, t, p = r[o], t[o], p[o]
        first = np.ones(r.size, dtype=bool)
        first[1:] = r[1:] != r[:-1]
        d1[r[first]] = t[first]
        owner[r[first]] = p[first]
        second = np.zeros(r.size, dtype=bool)
        second[1:] = (~first[1:]) & first[:-1]
        d2[r[second]] = t[second]
        return d1, d2, owner


def _lazy_greedy(
    eng: _Engine,
    d1: np.ndarray,
    free: np.ndarray,
    k_max: int,
    *,
    cost: np.ndarray | None = None,
    budget: float | None = None,
    stop: Callable[[np.ndarray], bool] | None = None,
) -> tuple[list[int], list[float]]:
    """Lazy greedy: pop the best stale gain, refresh it, accept when still best. Mutates ``d1``."""
    gains = eng.all_gains(d1)
    ratio = gains / cost if cost is not None else gains
    heap = [(-float(ratio[j]), int(j)) for j in np.flatnonzero(free & (gains > 0))]
    heapq.heapify(heap)
    chosen: list[int] = []
    marg: list[float] = []
    remaining = budget if budget is not None else _INF
    while heap and len(chosen) < k_max:
        if stop is not None and stop(d1):
            break
        _, j = heapq.heappop(heap)
        if cost is not None and cost[j] > remaining + 1e-12:
            continue  # remaining budget only shrinks
        g = eng.gain_col(j, d1)
        if g <= 0:
            continue
        key = (-(g / cost[j]) if cost is not None else -g, j)
        if heap and key > heap[0]:
            heapq.heappush(heap, key)
            continue
        eng.apply_col(j, d1)
        chosen.append(j)
        marg.append(g)
        if cost is not None:
            remaining -= cost[j]
    return chosen, marg


def _swap_search(
    eng: _Engine,
    sel_free: list[int],
    locked: np.ndarray,
    free: np.ndarray,
    *,
    cost: np.ndarray | None = None,
    budget: float | None = None,
    max_iter: int = 10_000,
    deadline: float = _INF,
) -> tuple[list[int], int]:
    """Best-improvement 1-swap (and, with a budget, add) moves until no move improves."""
    sel_free = list(sel_free)
    tol = 1e-9 * max(float(eng.w.sum()) * max(eng.P, 1.0), 1e-12)
    moves = 0
    for _ in range(max_iter):
        if time.perf_counter() > deadline:
            break
        sel = np.asarray(list(locked) + sel_free, dtype=np.int64)
        nl = locked.size
        d1, d2, owner = eng.nearest_two(sel)
        gain = eng.all_gains(d1)
        cand = free.copy()
        cand[sel] = False
        spent = float(cost[sel_free].sum()) if cost is not None else 0.0
        slack = (budget - spent) if budget is not None else _INF
        # add move (budget only)
        if budget is not None:
            addable = cand & (cost <= slack + 1e-12) & (gain > tol)
            if addable.any():
                r = np.where(addable, gain / cost, -1.0)
                k = int(np.argmax(r))
                sel_free.append(k)
                moves += 1
                continue
        if not sel_free or not cand.any():
            break
        has = owner >= 0
        loss = np.bincount(owner[has], weights=eng.w[has] * (d2[has] - d1[has]), minlength=sel.size)
        # M[j, k] = Σ_{i: owner=j, (i,k) stored} w_i (max(0, d2_i - t_ik) - max(0, d1_i - t_ik))
        rn = eng.row_of_nnz
        on = owner[rn]
        mk = on >= nl  # only free (swappable) owners
        rr, kk = rn[mk], eng.csr.indices[mk]
        t = eng.csr.data[mk]
        v = eng.w[rr] * (np.maximum(d2[rr] - t, 0.0) - np.maximum(d1[rr] - t, 0.0))
        nz = (v > 0) & cand[kk]
        jj = on[mk][nz] - nl
        kk = kk[nz]
        best_delta, best_j, best_k = tol, -1, -1
        ns = len(sel_free)
        if cost is None and ns * eng.m <= 4_000_000:
            # dense (out × in) table in one bincount: delta = gain_k − loss_j + M_jk
            Md = np.bincount(jj * eng.m + kk, weights=v[nz], minlength=ns * eng.m)
            Md = Md.astype(np.float64, copy=False).reshape(ns, eng.m)
            Md += gain[None, :]
            Md -= loss[nl:, None]
            Md[:, ~cand] = -_INF
            b = int(np.argmax(Md))  # first maximum: lowest out position, then lowest in index
            bj, bk = divmod(b, eng.m)
            if Md[bj, bk] > best_delta:
                best_j, best_k = bj, bk
            if best_j < 0:
                break
            sel_free[best_j] = best_k
            moves += 1
            continue
        if jj.size:
            M = sp.coo_matrix((v[nz], (jj, kk)), shape=(len(sel_free), eng.m)).tocsr()
            mj = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
            mk_ = M.indices
            ok = np.ones(mk_.size, dtype=bool)
            if cost is not None:
                ok = cost[mk_] <= slack + cost[np.asarray(sel_free)[mj]] + 1e-12
            delta = gain[mk_] + M.data - loss[nl + mj]
            delta = np.where(ok, delta, -_INF)
            if delta.size:
                # tie-break: first by out position then by in index (M is sorted by row then column)
                b = int(np.argmax(delta))
                if delta[b] > best_delta:
                    best_delta, best_j, best_k = float(delta[b]), int(mj[b]), int(mk_[b])
        # swaps with a k outside M's row: delta = gain_k - loss_j; best gain among feasible k
        if cost is None:
            g = np.where(cand, gain, -_INF)
            kbest = int(np.argmax(g))
            if np.isfinite(g[kbest]):
                for jpos in range(len(sel_free)):
                    dlt = g[kbest] - loss[nl + jpos]
                    if dlt > best_delta + 1e-12 * abs(best_delta):
                        best_delta, best_j, best_k = float(dlt), jpos, kbest
        else:
            ck = np.flatnonzero(cand)
            oc = ck[np.lexsort((ck, cost[ck]))]
            gs = gain[oc]
            pm = np.maximum.accumulate(gs)
            # index of the first attaining the prefix max
            arg = np.zeros(gs.size, dtype=np.int64)
            cur = 0
            for q in range(gs.size):
                if gs[q] > gs[cur]:
                    cur = q
                arg[q] = cur
            sc = cost[oc]
            for jpos, j in enumerate(sel_free):
                q = int(np.searchsorted(sc, slack + cost[j] + 1e-12, side="right")) - 1
                if q < 0:
                    continue
                dlt = pm[q] - loss[nl + jpos]
                if dlt > best_delta + 1e-12 * abs(best_delta):
                    best_delta, best_j, best_k = float(dlt), jpos, int(oc[arg[q]])
        if best_j < 0:
            break
        sel_free[best_j] = best_k
        moves += 1
    return sel_free, moves


def _order_and_marginals(
    eng: _Engine, locked: np.ndarray, free_sel: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Locked first, then the free sites in greedy order of their marginal gain within the set."""
    d1 = np.full(eng.n, eng.P)
    marg: list[float] = []
    for j in locked:
        marg.append(eng.gain_col(int(j), d1))
        eng.apply_col(int(j), d1)
    rest = sorted(set(int(j) for j in free_sel))
    order: list[int] = []
    while rest:
        gs = [eng.gain_col(j, d1) for j in rest]
        b = int(np.argmax(gs))
        j = rest.pop(b)
        order.append(j)
        marg.append(gs[b])
        eng.apply_col(j, d1)
    sel = np.asarray(list(locked) + order, dtype=np.int64)
    return sel, np.asarray(marg, dtype=np.float64), d1


def _mclp_dual_value(
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
    any source (subgradient, an inexact LP solver) give a safe bound. Returns L(u) and the x that
    attains it (fractional in at most one column with a budget).
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


def _mclp_lagrangian(
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
    deadline: float = _INF,
) -> tuple[float, np.ndarray]:
    """Minimise the MCLP Lagrangian :func:`_mclp_dual_value` over u ∈ [0, w] by projected subgradient.

    Polyak steps towards ``target`` (the best known covered weight, a lower estimate of min L),
    step factor halved after ``stall_limit`` iterations without improvement; one sparse
    matrix-vector product each way per iteration. Returns the best bound and its multipliers.
    """
    u = np.clip(u0, 0.0, w)
    best, best_u = _INF, u.copy()
    theta, stall = 2.0, 0
    for _ in range(iters):
        val, x = _mclp_dual_value(AT, w, u, locked, free, p, cost, budget)
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


def _lagrangian_bound(
    eng: _Engine,
    locked: np.ndarray,
    free: np.ndarray,
    p: int | None,
    cost: np.ndarray | None,
    budget: float | None,
    incumbent: float,
    d_init: np.ndarray,
    *,
    iters: int = 300,
    deadline: float = _INF,
) -> float:
    """Lower bound on min Σ_i w_i d_i by subgradient optimisation of the assignment rows.

    Relaxing Σ_j z_ij + u_i = 1 with multipliers λ_i gives
    L(λ) = Σ_i λ_i + Σ_i min(0, w_i P − λ_i) + Σ_{j∈L} ρ_j + best(ρ_free),
    ρ_j = Σ_{i: (i,j) stored} min(0, w_i t_ij − λ_i), best = p most negative ρ (cardinality) or the
    fractional knapsack over −ρ_j / cost_j (budget).
    """
    w, P = eng.w, eng.P
    rn, cols, t = eng.row_of_nnz, eng.csr.indices, eng.csr.data
    lam = w * d_init
    best = -_INF
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


# --------------------------------------------------------------------------------------------------
# LP building blocks (HiGHS, plain sparse arrays)
# --------------------------------------------------------------------------------------------------
def _new_highs():  # -> highspy.Highs (imported lazily)
    """A silent HiGHS instance. The first one built in a process prints a copyright banner straight
    to the C-level stdout (before any option can be set); that write goes to /dev/null instead, so
    ``covplan site`` output stays clean."""
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


class _Lp:
    """Columns and rows accumulated as arrays; rows in COO triplets, passed to HiGHS column-wise."""

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
        lb = np.concatenate(self.lb)
        lb[cols] = value
        self.lb = [lb]

    def set_upper(self, cols: np.ndarray, value: float) -> None:
        ub = np.concatenate(self.ub)
        ub[cols] = value
        self.ub = [ub]

    @property
    def nnz(self) -> int:
        return int(sum(a.size for a in self.tv))

    def solve(
        self,
        *,
        mip: bool,
        time_limit: float,
        mip_gap: float = MIP_GAP,
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
        h = _new_highs()
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


def _coverage_block(lp: _Lp, A: sp.csr_matrix, x: np.ndarray, y: np.ndarray) -> None:
    """y_i − Σ_{j ∈ N_i} x_j ≤ 0 for every demand row i (N_i: the row's stored columns)."""
    n = A.shape[0]
    rows = np.concatenate([np.arange(n), np.repeat(np.arange(n), np.diff(A.indptr))])
    cols = np.concatenate([y, x[A.indices]])
    vals = np.concatenate([np.ones(n), -np.ones(A.nnz)])
    lp.add_rows(np.full(n, -_INF), np.zeros(n), rows, cols, vals)


def _cardinality_block(lp: _Lp, x: np.ndarray, free: np.ndarray, p: int) -> None:
    """Σ_{j ∈ free} x_j ≤ p."""
    f = np.flatnonzero(free)
    lp.add_rows(np.array([-_INF]), np.array([float(p)]), np.zeros(f.size), x[f], np.ones(f.size))


def _budget_block(lp: _Lp, x: np.ndarray, free: np.ndarray, cost: np.ndarray, budget: float) -> None:
    """Σ_{j ∈ free} c_j x_j ≤ B."""
    f = np.flatnonzero(free)
    lp.add_rows(np.array([-_INF]), np.array([float(budget)]), np.zeros(f.size), x[f], cost[f])


def _locked_block(lp: _Lp, x: np.ndarray, locked: np.ndarray) -> None:
    """x_j = 1 for every locked (existing) site (a bound change, not a row)."""
    if locked.size:
        lp.set_lower(x[locked], 1.0)


def _assignment_block(
    lp: _Lp, A: sp.csr_matrix, coef: np.ndarray, *, penalty_cost: np.ndarray | None, equality: bool
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
    lo = np.ones(n) if equality else np.full(n, -_INF)
    lp.add_rows(lo, np.ones(n), r, c, np.ones(c.size))
    return z, u


def _linking_block(lp: _Lp, A: sp.csr_matrix, z: np.ndarray, x: np.ndarray) -> None:
    """z_ij − x_j ≤ 0 for the stored pairs (strong formulation)."""
    k = A.nnz
    rows = np.concatenate([np.arange(k), np.arange(k)])
    cols = np.concatenate([z, x[A.indices]])
    vals = np.concatenate([np.ones(k), -np.ones(k)])
    lp.add_rows(np.full(k, -_INF), np.zeros(k), rows, cols, vals)


def _capacity_block(
    lp: _Lp, A: sp.csr_matrix, z: np.ndarray, x: np.ndarray, demand: np.ndarray, capacity: np.ndarray
) -> None:
    """Σ_i d_i z_ij − C_j x_j ≤ 0 for every candidate j (d_i = weight × use rate)."""
    m = A.shape[1]
    rows_of = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    r = np.concatenate([A.indices, np.arange(m)])
    c = np.concatenate([z, x])
    v = np.concatenate([demand[rows_of], -capacity])
    lp.add_rows(np.full(m, -_INF), np.zeros(m), r, c, v)


# --------------------------------------------------------------------------------------------------
# Shared solve driver
# --------------------------------------------------------------------------------------------------
def _check_p(p: int | None, n_free: int, name: str = "p") -> int:
    if p is None or int(p) != p or p < 0:
        raise InputError(
            f"{name} 应为非负整数（新增站点数）", f"{name} must be a non-negative integer (new sites)",
            field=name,
        )
    return int(min(p, n_free))


class _Base:
    sense = "max"

    def _prepare(self, matrix, weights, locked, *, keep_values: bool, aggregate: bool) -> None:
        t0 = time.perf_counter()
        self.A0 = _as_csr(matrix, "cover" if not keep_values else "times", keep_values=keep_values)
        self.n_rows, self.n_cand = self.A0.shape
        self.w0 = _as_weights(weights, self.n_rows)
        self.locked = _as_locked(locked, self.n_cand)
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

    def _finish(self, res: SitingResult, t_start: float) -> SitingResult:
        res.timings["aggregate"] = self.t_aggregate
        res.timings["total"] = time.perf_counter() - t_start + self.t_aggregate
        res.n_rows = self.n_rows
        res.n_rows_aggregated = int(self.agg.weights.size)
        res.uncoverable_weight = self.uncoverable
        res.total_weight = float(self.w0.sum())
        return res


# --------------------------------------------------------------------------------------------------
# MCLP
# --------------------------------------------------------------------------------------------------
class MaxCoverage(_Base):
    r"""Maximal covering location problem (MCLP), with locked sites, budget and capacity options.

    Sets
        I demand rows (aggregated), J candidates, L ⊆ J locked (existing) sites,
        N_i ⊆ J candidates covering demand i (stored entries of row i of ``cover``).
    Parameters
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

    def __init__(
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
            self.cost = _as_vector(cost, self.n_cand, "cost", positive=True)
            if not np.isfinite(budget) or budget < 0:
                raise InputError("budget 应为非负数", "budget must be ≥ 0", field="budget")
            self.budget = float(budget)
            self.p = n_free
        else:
            self.cost = None
            self.budget = None
            self.p = _check_p(p, n_free)
        self.capacity = None if capacity is None else _as_vector(capacity, self.n_cand, "capacity")
        if not (np.isfinite(use_rate) and use_rate > 0):
            raise InputError("use_rate 应为正数", "use_rate must be > 0", field="use_rate")
        self.use_rate = float(use_rate)

    # -- formulation ------------------------------------------------------------------------------
    def build(self) -> tuple[_Lp, np.ndarray, np.ndarray]:
        """Assemble the MILP from the blocks; returns (lp, x columns, y or z columns)."""
        A, w = self.agg.matrix, self.agg.weights
        lp = _Lp("max")
        x = lp.add_cols(np.zeros(self.n_cand), 0.0, 1.0, True)
        if self.capacity is None:
            y = lp.add_cols(w, 0.0, 1.0, False)
            _coverage_block(lp, A, x, y)
        else:
            rows_of = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
            y, _ = _assignment_block(lp, A, w[rows_of], penalty_cost=None, equality=False)
            _capacity_block(lp, A, y, x, w * self.use_rate, self.capacity)
        if self.budget is not None:
            _budget_block(lp, x, self.free, self.cost, self.budget)
        else:
            _cardinality_block(lp, x, self.free, self.p)
        _locked_block(lp, x, self.locked)
        return lp, x, y

    def _start_vector(self, lp: _Lp, x: np.ndarray, y: np.ndarray, sel: np.ndarray) -> np.ndarray:
        v = np.zeros(lp.n_col)
        v[x[sel]] = 1.0
        if self.capacity is None:
            A = self.agg.matrix
            on = np.zeros(self.n_cand, dtype=bool)
            on[sel] = True
            cov = np.add.reduceat(on[A.indices].astype(np.int64), A.indptr[:-1]) > 0 if A.nnz else np.zeros(A.shape[0], bool)
            v[y] = cov
        return v

    def _covered_agg(self, eng: _Engine, sel_free: list[int]) -> float:
        """Covered aggregated weight of the locked sites plus ``sel_free``."""
        sel = np.asarray(list(self.locked) + list(sel_free), dtype=np.int64)
        return float(eng.w.sum()) - eng.cost(eng.nearest_two(sel)[0])

    def _round_lp(self, xv: np.ndarray) -> list[int]:
        """Free columns in decreasing LP value (index breaks ties) while ``p`` / the budget allow."""
        order = np.lexsort((np.arange(xv.size), -xv))
        order = order[self.free[order] & (xv[order] > 1e-6)]
        if self.budget is None:
            return [int(j) for j in order[: self.p]]
        out: list[int] = []
        room = self.budget
        for j in order:
            if self.cost[j] <= room + 1e-12:
                out.append(int(j))
                room -= self.cost[j]
        return out

    def _bound_uncapacitated(
        self,
        eng: _Engine,
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
        if method in ("auto", "heuristic") and A.nnz <= LP_MAX_NNZ and deadline - time.perf_counter() > 0.5:
            t0 = time.perf_counter()
            lp, x, y = self.build()
            r = lp.solve(mip=False, time_limit=max(0.6 * (deadline - time.perf_counter()), 0.5),
                         solver="primal" if A.nnz <= LP_SIMPLEX_MAX_NNZ else "ipm")
            lp_optimal = bool(r["optimal"])
            if r["row_dual"] is not None:
                u_start = np.clip(np.abs(r["row_dual"][: A.shape[0]]), 0.0, w)
                val, _ = _mclp_dual_value(AT, w, u_start, self.locked, self.free, self.p, self.cost,
                                          self.budget)
                if val < bound:
                    bound, bound_method = val, "lp"
            if r["x"] is not None and method == "auto":
                lp_x = r["x"][x]
                if _gap(cur, bound) > mip_gap:
                    cand = self._round_lp(lp_x)
                    cand, _ = _swap_search(eng, cand, self.locked, self.free, cost=self.cost,
                                           budget=self.budget, deadline=deadline)
                    v = self._covered_agg(eng, cand)
                    if v > cur + 1e-9 * max(W, 1.0):
                        sel_free, cur = cand, v
                        method_used.append("lp-round")
            timings["lp"] = time.perf_counter() - t0
        if not lp_optimal and _gap(cur, bound) > mip_gap and deadline - time.perf_counter() > 0.05:
            if u_start is None:
                on = np.zeros(self.n_cand)
                on[self.locked] = 1.0
                on[np.asarray(sel_free, dtype=np.int64)] = 1.0
                cnt = A1 @ on
                u_start = np.where(cnt == 0, w, np.where(cnt == 1, 0.5 * w, 0.0))
            lag, _ = _mclp_lagrangian(A1, AT, w, u_start, self.locked, self.free, self.p, self.cost,
                                      self.budget, cur,
                                      deadline=min(deadline, time.perf_counter() + 0.25 * time_limit))
            if lag < bound:
                bound, bound_method = lag, "lagrangian"
        return bound, bound_method, sel_free, lp_x

    def _restricted_milp(
        self, eng: _Engine, sel_free: list[int], lp_x: np.ndarray, cur: float, deadline: float,
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
    def solve(self, time_limit: float = 60.0, method: str = "auto", mip_gap: float = MIP_GAP) -> SitingResult:
        """Solve the model.

        Parameters
        ----------
        time_limit : float
            Seconds for the whole solve (the MILP gets what remains after the heuristic).
        method : {"auto", "heuristic", "greedy", "milp"}
            ``auto``: greedy + swap + bound (LP with rounding, or Lagrangian), then, only while
            the gap is open, the MILP when the aggregated model has at most :data:`MILP_MAX_NNZ`
            cover pairs, else the MILP restricted to the LP support. ``heuristic``: greedy + swap
            and a bound (LP when small enough, else Lagrangian); the selection is the heuristic's. ``greedy``: as ``heuristic`` without the
            swap search (for comparisons). ``milp``: the MILP alone (no heuristic,
            no warm start), as a reference.
        mip_gap : float
            Relative gap at which HiGHS stops and a result counts as proven optimal.

        Returns
        -------
        SitingResult
        """
        t_start = time.perf_counter()
        deadline = t_start + time_limit
        A, w = self.agg.matrix, self.agg.weights
        eng = _Engine(A, w, 1.0)
        timings: dict[str, float] = {}
        W = float(w.sum())
        sel_free: list[int] = []
        method_used: list[str] = []
        bound = _INF
        bound_method = "trivial"
        bound = W  # everything coverable
        lp_x = None
        if method not in ("auto", "heuristic", "greedy", "milp"):
            raise InputError("method 应为 auto、heuristic、greedy 或 milp",
                             "method must be auto, heuristic, greedy or milp", field="method")
        if method != "milp":
            t0 = time.perf_counter()
            d1 = np.ones(eng.n)
            for j in self.locked:
                eng.apply_col(int(j), d1)
            sel_free, _ = _lazy_greedy(eng, d1, self.free, self.p, cost=self.cost, budget=self.budget)
            if self.budget is not None:  # best single affordable site (guarantee fix)
                d0 = np.ones(eng.n)
                for j in self.locked:
                    eng.apply_col(int(j), d0)
                g = eng.all_gains(d0)
                g[~self.free | (self.cost > self.budget)] = -1
                k = int(np.argmax(g))
                if g[k] > 0 and g[k] > W - eng.cost(d1) - (W - eng.cost(d0)):
                    sel_free = [k]
            timings["greedy"] = time.perf_counter() - t0
            method_used.append("greedy")
            t0 = time.perf_counter()
            if method != "greedy":
                sel_free, moves = _swap_search(eng, sel_free, self.locked, self.free, cost=self.cost,
                                               budget=self.budget,
                                               deadline=min(deadline, t_start + 0.4 * time_limit))
                method_used.append("swap")
            timings["swap"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            sel = np.asarray(list(self.locked) + sel_free, dtype=np.int64)
            d1, d2, _ = eng.nearest_two(sel)
            if self.capacity is None:
                bound, bound_method, sel_free, lp_x = self._bound_uncapacitated(
                    eng, sel_free, method, deadline, time_limit, mip_gap, timings, method_used)
            else:
                lag = _lagrangian_bound(eng, self.locked, self.free, self.p, self.cost, self.budget,
                                        eng.cost(d1), (d1 + d2) / 2,
                                        deadline=min(deadline, time.perf_counter() + 0.25 * time_limit))
                if W - lag < bound:
                    bound, bound_method = W - lag, "lagrangian"
            timings["bound"] = time.perf_counter() - t0 - timings.get("lp", 0.0)
        x_sel = np.asarray(sel_free, dtype=np.int64)
        obj_agg = None
        if self.capacity is not None and method != "milp":
            lp, x, y = self.build()
            sel = np.asarray(list(self.locked) + sel_free, dtype=np.int64)
            fixv = np.zeros(self.n_cand)
            fixv[sel] = 1.0
            r = lp.solve(mip=False, time_limit=max(deadline - time.perf_counter(), 1.0), fix=(x, fixv))
            obj_agg = r["objective"] or 0.0
            start_vec = r["x"]
        nnz = A.nnz
        run_milp = method == "milp" or (method == "auto" and nnz <= MILP_MAX_NNZ)
        cur_obj = (W - eng.cost(eng.nearest_two(np.asarray(list(self.locked) + sel_free, dtype=np.int64))[0])
                   if self.capacity is None else obj_agg) if method != "milp" else 0.0
        if _gap(cur_obj, bound) <= mip_gap and method != "milp":
            run_milp = False
        if run_milp:
            t0 = time.perf_counter()
            lp, x, y = self.build()
            if self.capacity is None:
                start_vec = self._start_vector(lp, x, y, np.asarray(list(self.locked) + sel_free, dtype=np.int64)) if method != "milp" else None
            elif method == "milp":
                start_vec = None
            r = lp.solve(mip=True, time_limit=max(deadline - time.perf_counter(), 0.5), mip_gap=mip_gap,
                         start=start_vec)
            timings["milp"] = time.perf_counter() - t0
            if r["x"] is not None and (method == "milp" or r["objective"] > cur_obj + 1e-9 * max(W, 1)):
                xs = np.flatnonzero(r["x"][x] > 0.5)
                sel_free = [int(j) for j in xs if self.free[j]]
                cur_obj = r["objective"]
                if self.capacity is not None:
                    start_vec = r["x"]
                method_used.append("milp")
            elif method != "milp":
                method_used.append("milp")
            if np.isfinite(r["bound"]) and r["bound"] < bound:
                bound, bound_method = r["bound"], "milp"
        elif (method == "auto" and self.capacity is None and lp_x is not None
              and _gap(cur_obj, bound) > mip_gap and deadline - time.perf_counter() > 1.0):
            t0 = time.perf_counter()
            better = self._restricted_milp(eng, sel_free, lp_x, cur_obj, deadline, mip_gap)
            timings["milp"] = time.perf_counter() - t0
            method_used.append("restricted-milp")
            if better is not None:
                sel_free = better
        elif (method in ("heuristic", "auto") and self.capacity is not None and nnz <= LP_MAX_NNZ
              and _gap(cur_obj, bound) > mip_gap and deadline - time.perf_counter() > 0.5):
            t0 = time.perf_counter()
            lp, x, y = self.build()
            r = lp.solve(mip=False, time_limit=deadline - time.perf_counter())
            if r["bound"] is not None and r["bound"] < bound:
                bound, bound_method = r["bound"], "lp"
            timings["bound"] = timings.get("bound", 0.0) + time.perf_counter() - t0
        # final figures on the original rows
        sel, marg, _ = _order_and_marginals(eng, self.locked, sel_free)
        const = 0.0  # aggregated weight already includes every coverable row
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
        bound = bound + const
        bound = max(bound, objective)
        if self.capacity is None and bound_method in ("trivial",):
            bound = max(bound, objective)
        gap = _gap(objective, bound)
        name = "+".join(method_used) if method != "milp" else "milp"
        res = SitingResult(
            selected=sel, covered=covered, objective=objective, upper_bound=float(bound), gap=gap,
            method=name, proven_optimal=gap <= mip_gap, marginal=marg, timings=timings, sense="max",
            bound_method=bound_method, served=served,
        )
        return self._finish(res, t_start)


# --------------------------------------------------------------------------------------------------
# LSCP
# --------------------------------------------------------------------------------------------------
class SetCover(_Base):
    r"""Location set covering problem (LSCP), partial: fewest (or cheapest) new sites reaching a share.

    Sets
        I demand rows (aggregated), J candidates, L ⊆ J locked sites, N_i candidates covering i.
    Parameters
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
        self.cost = np.ones(self.n_cand) if cost is None else _as_vector(cost, self.n_cand, "cost", positive=True)
        self.unit_cost = cost is None
        self.coverable = float(self.agg.weights.sum())
        self.need = self.target_share * self.coverable

    def build(self) -> tuple[_Lp, np.ndarray, np.ndarray]:
        """Assemble the MILP from the blocks; returns (lp, x columns, y columns)."""
        A, w = self.agg.matrix, self.agg.weights
        lp = _Lp("min")
        c = self.cost.copy()
        c[self.locked] = 0.0
        x = lp.add_cols(c, 0.0, 1.0, True)
        y = lp.add_cols(np.zeros(A.shape[0]), 0.0, 1.0, False)
        _coverage_block(lp, A, x, y)
        lp.add_rows(np.array([self.need * (1 - 1e-9)]), np.array([_INF]), np.zeros(y.size), y, w)
        _locked_block(lp, x, self.locked)
        return lp, x, y

    def solve(self, time_limit: float = 60.0, method: str = "auto", mip_gap: float = MIP_GAP) -> SitingResult:
        """Solve the model (see :meth:`MaxCoverage.solve` for ``method``)."""
        t_start = time.perf_counter()
        deadline = t_start + time_limit
        A, w = self.agg.matrix, self.agg.weights
        eng = _Engine(A, w, 1.0)
        timings: dict[str, float] = {}
        W = self.coverable
        tol = 1e-9 * max(W, 1.0)
        need = self.need

        def covered_w(d1: np.ndarray) -> float:
            return W - eng.cost(d1)

        sel_free: list[int] = []
        method_used: list[str] = []
        cost_for_greedy = None if self.unit_cost else self.cost
        if method != "milp":
            t0 = time.perf_counter()
            d1 = np.ones(eng.n)
            for j in self.locked:
                eng.apply_col(int(j), d1)
            sel_free, _ = _lazy_greedy(eng, d1, self.free, self.n_cand, cost=cost_for_greedy,
                                       stop=lambda d: covered_w(d) >= need - tol)
            timings["greedy"] = time.perf_counter() - t0
            method_used.append("greedy")
            t0 = time.perf_counter()
            # redundancy removal: drop sites (most expensive / latest first) while the target holds
            changed = True
            while changed:
                changed = False
                order = sorted(range(len(sel_free)), key=lambda q: (-self.cost[sel_free[q]], -q))
                for q in order:
                    trial = sel_free[:q] + sel_free[q + 1:]
                    d, _, _ = eng.nearest_two(np.asarray(list(self.locked) + trial, dtype=np.int64))
                    if covered_w(d) >= need - tol:
                        sel_free = trial
                        changed = True
                        break
            timings["swap"] = time.perf_counter() - t0
            method_used.append("drop")
        obj = float(self.cost[sel_free].sum()) if sel_free else 0.0
        # knapsack lower bound: individual gains are upper bounds on what each site can add
        t0 = time.perf_counter()
        d0 = np.ones(eng.n)
        for j in self.locked:
            eng.apply_col(int(j), d0)
        g = eng.all_gains(d0)
        g[~self.free] = 0
        residual = need - covered_w(d0)
        bound, bound_method = 0.0, "trivial"
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
            bound = lb
            bound_method = "knapsack"
        timings["bound"] = time.perf_counter() - t0
        nnz = A.nnz
        run_milp = method == "milp" or (method == "auto" and nnz <= MILP_MAX_NNZ and _gap(obj, bound) > mip_gap)
        if run_milp:
            t0 = time.perf_counter()
            lp, x, y = self.build()
            start = None
            if method != "milp":
                start = np.zeros(lp.n_col)
                start[x[np.asarray(list(self.locked) + sel_free, dtype=np.int64)]] = 1.0
                d, _, _ = eng.nearest_two(np.asarray(list(self.locked) + sel_free, dtype=np.int64))
                start[y] = 1.0 - d
            r = lp.solve(mip=True, time_limit=max(deadline - time.perf_counter(), 0.5), mip_gap=mip_gap,
                         start=start)
            timings["milp"] = time.perf_counter() - t0
            if r["x"] is not None and (method == "milp" or r["objective"] < obj - 1e-9):
                xs = np.flatnonzero(r["x"][x] > 0.5)
                sel_free = [int(j) for j in xs if self.free[j]]
                obj = float(self.cost[sel_free].sum())
            method_used.append("milp")
            if np.isfinite(r["bound"]) and r["bound"] > bound:
                bound, bound_method = r["bound"], "milp"
        elif nnz <= LP_MAX_NNZ and _gap(obj, bound) > mip_gap and deadline - time.perf_counter() > 0.5:
            t0 = time.perf_counter()
            lp, x, y = self.build()
            r = lp.solve(mip=False, time_limit=deadline - time.perf_counter())
            if r["bound"] is not None and r["bound"] > bound:
                bound, bound_method = r["bound"], "lp"
                if self.unit_cost:
                    bound = float(np.ceil(bound - 1e-6))
            timings["bound"] += time.perf_counter() - t0
        sel, marg, _ = _order_and_marginals(eng, self.locked, sel_free)
        on = np.zeros(self.n_cand, dtype=bool)
        on[sel] = True
        A0 = self.A0
        cum = np.concatenate([[0], np.cumsum(on[A0.indices].astype(np.int64))])
        covered = (cum[A0.indptr[1:]] - cum[A0.indptr[:-1]]) > 0
        objective = float(self.cost[sel_free].sum()) if sel_free else 0.0
        bound = min(bound, objective)
        gap = _gap(objective, bound)
        res = SitingResult(
            selected=sel, covered=covered, objective=objective, upper_bound=float(bound), gap=gap,
            method="+".join(method_used) if method != "milp" else "milp",
            proven_optimal=gap <= mip_gap, marginal=marg, timings=timings, sense="min",
            bound_method=bound_method,
        )
        return self._finish(res, t_start)


# --------------------------------------------------------------------------------------------------
# p-median
# --------------------------------------------------------------------------------------------------
class PMedian(_Base):
    r"""p-median: minimise total weighted travel time to the nearest selected site.

    Sets
        I demand rows (aggregated), J candidates, L ⊆ J locked sites, N_i candidates reachable from i
        within the cut-off (stored entries of row i of ``times``).
    Parameters
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
        self.p = _check_p(p, int(self.free.sum()))
        tmax = float(self.A0.data.max()) if self.A0.nnz else 1.0
        self.penalty = float(penalty) if penalty is not None else 2.0 * max(tmax, 1e-9)
        if not np.isfinite(self.penalty) or self.penalty < tmax:
            raise InputError("penalty 应不小于最大通行时间", "penalty must be ≥ the largest stored time",
                             field="penalty")
        self.capacity = None if capacity is None else _as_vector(capacity, self.n_cand, "capacity")
        self.use_rate = float(use_rate)

    def build(self) -> tuple[_Lp, np.ndarray, np.ndarray, np.ndarray]:
        """Assemble the MILP; returns (lp, x, z, u columns)."""
        A, w = self.agg.matrix, self.agg.weights
        lp = _Lp("min")
        x = lp.add_cols(np.zeros(self.n_cand), 0.0, 1.0, True)
        rows_of = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        z, u = _assignment_block(lp, A, w[rows_of] * A.data, penalty_cost=w * self.penalty, equality=True)
        _linking_block(lp, A, z, x)
        if self.capacity is not None:
            _capacity_block(lp, A, z, x, w * self.use_rate, self.capacity)
        _cardinality_block(lp, x, self.free, self.p)
        _locked_block(lp, x, self.locked)
        return lp, x, z, u

    def _assign_lp(self, sel: np.ndarray) -> tuple[float, np.ndarray]:
        lp, x, z, u = self.build()
        fixv = np.zeros(self.n_cand)
        fixv[sel] = 1.0
        r = lp.solve(mip=False, time_limit=120.0, fix=(x, fixv))
        return float(r["objective"]), r["x"]

    def solve(self, time_limit: float = 60.0, method: str = "auto", mip_gap: float = MIP_GAP) -> SitingResult:
        """Solve the model (see :meth:`MaxCoverage.solve` for ``method``)."""
        t_start = time.perf_counter()
        deadline = t_start + time_limit
        A, w = self.agg.matrix, self.agg.weights
        P = self.penalty
        eng = _Engine(A, w, P)
        timings: dict[str, float] = {}
        sel_free: list[int] = []
        method_used: list[str] = []
        bound, bound_method = 0.0, "trivial"
        const = self.uncoverable * P
        obj_agg = _INF
        start_vec = None
        if method != "milp":
            t0 = time.perf_counter()
            d1 = np.full(eng.n, P)
            for j in self.locked:
                eng.apply_col(int(j), d1)
            sel_free, _ = _lazy_greedy(eng, d1, self.free, self.p)
            timings["greedy"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            sel_free, _ = _swap_search(eng, sel_free, self.locked, self.free,
                                       deadline=min(deadline, t_start + 0.4 * time_limit))
            timings["swap"] = time.perf_counter() - t0
            method_used += ["greedy", "swap"]
            sel = np.asarray(list(self.locked) + sel_free, dtype=np.int64)
            d1, d2, _ = eng.nearest_two(sel)
            obj_agg = eng.cost(d1)
            t0 = time.perf_counter()
            if self.capacity is None:
                lag = _lagrangian_bound(eng, self.locked, self.free, self.p, None, None, obj_agg, d1,
                                        deadline=min(deadline, time.perf_counter() + 0.25 * time_limit))
                bound, bound_method = max(lag, 0.0), "lagrangian"
            else:
                obj_agg, start_vec = self._assign_lp(sel)
            timings["bound"] = time.perf_counter() - t0
        nnz = A.nnz
        run_milp = method == "milp" or (method == "auto" and nnz <= MILP_MAX_NNZ // 2
                                        and _gap(obj_agg, bound) > mip_gap)
        if run_milp:
            t0 = time.perf_counter()
            lp, x, z, u = self.build()
            if method != "milp" and start_vec is None:
                start_vec = np.zeros(lp.n_col)
                sel = np.asarray(list(self.locked) + sel_free, dtype=np.int64)
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
            elif method == "milp":
                start_vec = None
            r = lp.solve(mip=True, time_limit=max(deadline - time.perf_counter(), 0.5), mip_gap=mip_gap,
                         start=start_vec)
            timings["milp"] = time.perf_counter() - t0
            if r["x"] is not None and (method == "milp" or r["objective"] < obj_agg - 1e-9 * max(obj_agg, 1)):
                xs = np.flatnonzero(r["x"][x] > 0.5)
                sel_free = [int(j) for j in xs if self.free[j]]
            method_used.append("milp")
            if np.isfinite(r["bound"]) and r["bound"] > bound:
                bound, bound_method = r["bound"], "milp"
        elif nnz <= LP_MAX_NNZ // 2 and _gap(obj_agg, bound) > mip_gap and deadline - time.perf_counter() > 0.5:
            t0 = time.perf_counter()
            lp, x, z, u = self.build()
            r = lp.solve(mip=False, time_limit=deadline - time.perf_counter())
            if r["bound"] is not None and r["bound"] > bound:
                bound, bound_method = r["bound"], "lp"
            timings["bound"] = timings.get("bound", 0.0) + time.perf_counter() - t0
        sel, marg, _ = _order_and_marginals(eng, self.locked, sel_free)
        # objective and assignment on the original rows
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
        bound = bound + const
        bound = min(bound, objective)
        gap = _gap(objective, bound)
        res = SitingResult(
            selected=sel, covered=covered, objective=objective, upper_bound=float(bound), gap=gap,
            method="+".join(method_used) if method != "milp" else "milp",
            proven_optimal=gap <= mip_gap, marginal=marg, timings=timings, sense="min",
            bound_method=bound_method, assignment=assignment,
        )
        return self._finish(res, t_start)


# --------------------------------------------------------------------------------------------------
# Functional API (DESIGN §4.3)
# --------------------------------------------------------------------------------------------------
def solve_max_coverage(
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


def solve_p_median(
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


def generate_candidates(
    cells_xy: np.ndarray,
    weights: np.ndarray,
    n: int,
    exclusion: object | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Candidate sites from population-weighted k-means over (uncovered) cells.

    Centroids are moved to the nearest cell with people that lies outside the exclusion polygons,
    so every candidate sits where people live and building is allowed.

    Parameters
    ----------
    cells_xy : numpy.ndarray
        (n_cells, 2) metric coordinates of the cells to serve (e.g. uncovered cells).
    weights : numpy.ndarray
        Population per cell.
    n : int
        Number of candidates wanted (fewer if there are fewer eligible cells).
    exclusion : shapely geometry or GeoSeries/GeoDataFrame, optional
        Areas where no site may go (water, protected land), same CRS as ``cells_xy``.
    seed : int
        Random seed of k-means.

    Returns
    -------
    numpy.ndarray
        Indices into ``cells_xy`` of the chosen cells, unique, in cluster order.
    """
    from sklearn.cluster import KMeans

    xy = np.asarray(cells_xy, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] != w.shape[0]:
        raise InputError("cells_xy 应为 (n, 2) 坐标且与 weights 等长",
                         "cells_xy must be (n, 2) coordinates matching weights", field="cells_xy")
    eligible = w > 0
    if exclusion is not None:
        import shapely

        geom = exclusion
        if hasattr(geom, "union_all"):
            geom = geom.union_all()
        elif hasattr(geom, "unary_union"):
            geom = geom.unary_union
        pts = shapely.points(xy[:, 0], xy[:, 1])
        eligible &= ~shapely.covered_by(pts, geom)
    idx = np.flatnonzero(eligible)
    if idx.size == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    k = int(min(n, idx.size))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed)
    km.fit(xy[w > 0], sample_weight=w[w > 0])
    from scipy.spatial import cKDTree

    tree = cKDTree(xy[idx])
    out: list[int] = []
    taken: set[int] = set()
    for c in km.cluster_centers_:
        _, near = tree.query(c, k=min(8, idx.size))
        for q in np.atleast_1d(near):
            cell = int(idx[q])
            if cell not in taken:
                taken.add(cell)
                out.append(cell)
                break
    return np.asarray(out, dtype=np.int64)
