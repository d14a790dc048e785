"""Input checks shared by the siting models (one place for each message)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from coverage.errors import InputError

__all__ = ["as_csr", "as_weights", "as_locked", "as_vector", "check_p"]


def as_csr(matrix: object, name: str, *, keep_values: bool) -> sp.csr_matrix:
    """Check a demand × candidates matrix and return a sorted CSR copy with int64 indices.

    Parameters
    ----------
    matrix : scipy.sparse matrix or numpy.ndarray
        Cover pattern (any nonzero covers; a dense array is accepted) or, with ``keep_values``,
        times of the reachable pairs (sparse only: the stored entries are the reachable pairs).
    name : str
        Name of the argument, for messages.
    keep_values : bool
        Keep the stored values (times, finite and ≥ 0); otherwise store 0.0 for every cover pair.

    Returns
    -------
    scipy.sparse.csr_matrix

    Raises
    ------
    coverage.errors.InputError
        Not a matrix, or invalid times.
    """
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


def as_weights(weights: object, n: int) -> np.ndarray:
    """Check one finite, non-negative weight per demand row; return them as float64.

    Parameters
    ----------
    weights : array-like
        Weight per demand row.
    n : int
        Number of demand rows.

    Returns
    -------
    numpy.ndarray
    """
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


def as_locked(locked: object, n_cand: int) -> np.ndarray:
    """Locked candidates as sorted unique int64 indices (from indices or a boolean mask).

    Parameters
    ----------
    locked : array-like of int or bool, or None
        Always-selected candidates.
    n_cand : int
        Number of candidates.

    Returns
    -------
    numpy.ndarray
    """
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


def as_vector(values: object, n: int, name: str, *, positive: bool = False) -> np.ndarray:
    """Check one finite value per candidate (> 0 with ``positive``, else ≥ 0); return float64.

    Parameters
    ----------
    values : array-like
        Cost or capacity per candidate.
    n : int
        Number of candidates.
    name : str
        Name of the argument, for messages.
    positive : bool
        Require values > 0.

    Returns
    -------
    numpy.ndarray
    """
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



def check_p(p: int | None, n_free: int, name: str = "p") -> int:
    """Check the number of new sites; return it capped at the number of free candidates.

    Parameters
    ----------
    p : int or None
        Number of new sites.
    n_free : int
        Candidates that are not locked.
    name : str
        Name of the argument, for messages.

    Returns
    -------
    int
    """
    if p is None or int(p) != p or p < 0:
        raise InputError(
            f"{name} 应为非负整数（新增站点数）", f"{name} must be a non-negative integer (new sites)",
            field=name,
        )
    return int(min(p, n_free))
