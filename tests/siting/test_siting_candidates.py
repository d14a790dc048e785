"""Candidate generation (coverage.siting.candidates)."""

from __future__ import annotations

import numpy as np

from coverage import siting


def test_generate_candidates_avoids_exclusion_and_empty_cells():
    from shapely.geometry import box

    rng = np.random.default_rng(2)
    xy = rng.random((400, 2)) * 1000
    w = rng.integers(0, 3, 400).astype(float)
    excl = box(0, 0, 500, 500)
    idx = siting.generate_candidates(xy, w, 10, exclusion=excl, seed=1)
    assert 0 < len(idx) <= 10 and len(set(idx.tolist())) == len(idx)
    assert np.all(w[idx] > 0)
    assert not np.any((xy[idx, 0] <= 500) & (xy[idx, 1] <= 500))
    again = siting.generate_candidates(xy, w, 10, exclusion=excl, seed=1)
    assert idx.tolist() == again.tolist()
