"""Heuristics shared by the siting models: lazy greedy and the 1-swap (interchange) local search.

Every model is solved as a "distance" problem on :class:`Engine`; the heuristics are deterministic
(ties go to the lower candidate index).
"""

from __future__ import annotations

import heapq
import time
from typing import Callable

import numpy as np
import scipy.sparse as sp

__all__ = ["Engine", "lazy_greedy", "swap_search", "order_and_marginals"]


class Engine:
    """Sparse bookkeeping of the distance problem ``min Σ_i w_i d_i(S)`` shared by every heuristic.

    ``d_i(S) = min(penalty, min over selected j with (i, j) stored of t_ij)``: MCLP and LSCP are the
    case ``t ≡ 0``, ``penalty = 1`` (cost = uncovered weight); p-median uses the times and its
    penalty time. The arrays ``d1`` passed to the methods hold each row's current ``d_i``.

    Parameters
    ----------
    csr : scipy.sparse.csr_matrix
        Aggregated demand × candidates, stored values = times (0 for cover pairs), int64 indices.
    w : numpy.ndarray
        Weight per row.
    penalty : float
        ``d_i`` of a row that no selected site reaches.
    """

    def __init__(self, csr: sp.csr_matrix, w: np.ndarray, penalty: float) -> None:
        self.csr = csr
        self.csc = csr.tocsc()
        self.csc.sort_indices()
        self.w = w
        self.P = float(penalty)
        self.n, self.m = csr.shape
        self.row_of_nnz = np.repeat(np.arange(self.n), np.diff(csr.indptr))

    def cost(self, d1: np.ndarray) -> float:
        """Total ``Σ_i w_i d1_i``."""
        return float(self.w @ d1)

    def gain_col(self, j: int, d1: np.ndarray) -> float:
        """Decrease of the cost if candidate ``j`` were added."""
        s, e = self.csc.indptr[j], self.csc.indptr[j + 1]
        r = self.csc.indices[s:e]
        diff = d1[r] - self.csc.data[s:e]
        return float(self.w[r] @ np.maximum(diff, 0.0))

    def apply_col(self, j: int, d1: np.ndarray) -> None:
        """Add candidate ``j``: update ``d1`` in place."""
        s, e = self.csc.indptr[j], self.csc.indptr[j + 1]
        r = self.csc.indices[s:e]
        d1[r] = np.minimum(d1[r], self.csc.data[s:e])

    def all_gains(self, d1: np.ndarray) -> np.ndarray:
        """:meth:`gain_col` of every candidate at once (one sparse group-by)."""
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


def lazy_greedy(
    eng: Engine,
    d1: np.ndarray,
    free: np.ndarray,
    k_max: int,
    *,
    cost: np.ndarray | None = None,
    budget: float | None = None,
    stop: Callable[[np.ndarray], bool] | None = None,
) -> tuple[list[int], list[float]]:
    """Lazy greedy: pop the best stale gain, refresh it, accept when still best. Mutates ``d1``.

    Parameters
    ----------
    eng : Engine
        The problem.
    d1 : numpy.ndarray
        Current ``d_i`` (after the locked sites); updated in place.
    free : numpy.ndarray
        Bool per candidate: may be chosen.
    k_max : int
        Most sites to add.
    cost, budget : optional
        Rank by gain per cost and stop adding what the remaining budget cannot pay.
    stop : callable, optional
        ``stop(d1)`` true ends the search (e.g. target share reached).

    Returns
    -------
    chosen : list of int
        Candidates in the order added (ties: lower index).
    marginal : list of float
        Gain of each when added.
    """
    gains = eng.all_gains(d1)
    ratio = gains / cost if cost is not None else gains
    heap = [(-float(ratio[j]), int(j)) for j in np.flatnonzero(free & (gains > 0))]
    heapq.heapify(heap)
    chosen: list[int] = []
    marg: list[float] = []
    remaining = budget if budget is not None else np.inf
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


def swap_search(  # noqa: C901 - issue 11: to narrow/split
    eng: Engine,
    sel_free: list[int],
    locked: np.ndarray,
    free: np.ndarray,
    *,
    cost: np.ndarray | None = None,
    budget: float | None = None,
    max_iter: int = 10_000,
    deadline: float = np.inf,
) -> tuple[list[int], int]:
    """Best-improvement 1-swap (and, with a budget, add) moves until no move improves.

    The best swap over all (out, in) pairs is found at once from each row's nearest and
    second-nearest selected site.

    Parameters
    ----------
    eng : Engine
        The problem.
    sel_free : list of int
        Starting free selection.
    locked : numpy.ndarray
        Locked sites (never swapped out).
    free : numpy.ndarray
        Bool per candidate: may be chosen.
    cost, budget : optional
        Swaps and adds must keep the selection within the budget.
    max_iter : int
        Most moves.
    deadline : float
        ``time.perf_counter()`` value at which to stop.

    Returns
    -------
    sel_free : list of int
        Improved free selection.
    moves : int
        Moves made.
    """
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
        slack = (budget - spent) if budget is not None else np.inf
        # add move (budget only)
        if budget is not None:
            assert cost is not None, "a budget comes with costs"
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
            Md = np.bincount(jj * eng.m + kk, weights=v[nz], minlength=ns * eng.m).astype(np.float64, copy=False)
            Md = Md.reshape(ns, eng.m)
            Md += gain[None, :]
            Md -= loss[nl:, None]
            Md[:, ~cand] = -np.inf
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
            delta = np.where(ok, delta, -np.inf)
            if delta.size:
                # tie-break: first by out position then by in index (M is sorted by row then column)
                b = int(np.argmax(delta))
                if delta[b] > best_delta:
                    best_delta, best_j, best_k = float(delta[b]), int(mj[b]), int(mk_[b])
        # swaps with a k outside M's row: delta = gain_k - loss_j; best gain among feasible k
        if cost is None:
            g = np.where(cand, gain, -np.inf)
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


def order_and_marginals(
    eng: Engine, locked: np.ndarray, free_sel: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Locked first, then the free sites in greedy order of their marginal gain within the set.

    Parameters
    ----------
    eng : Engine
        The problem.
    locked : numpy.ndarray
        Locked sites.
    free_sel : list of int
        Free selection.

    Returns
    -------
    selected : numpy.ndarray
        Locked sites, then the free ones in greedy order.
    marginal : numpy.ndarray
        Gain of each in that order.
    d1 : numpy.ndarray
        Final ``d_i``.
    """
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
