"""Aggregation of demand rows that reach the same candidates (the main speed lever)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["Aggregation", "aggregate_rows"]


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
