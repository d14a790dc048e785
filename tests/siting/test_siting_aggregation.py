"""Aggregation of demand rows (coverage.siting.aggregation)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from coverage import siting


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
