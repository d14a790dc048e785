"""Candidate sites where people live: population-weighted k-means over (uncovered) cells."""

from __future__ import annotations

import numpy as np

from coverage.errors import InputError

__all__ = ["generate_candidates"]


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
