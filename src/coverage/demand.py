"""Demand points: populated raster cells with their age groups, 乡镇/街道 unit and urban flag.

Rules
-----
* Only cells with ``pop > 0`` become demand points, located at the cell centre.
* **Unit**: the unit whose polygon contains the cell centre (point in polygon; on overlapping units
  the first in the units table wins). Cells outside every unit get ``unit_code = ""`` and
  ``unit_name = ""``; their number and population are logged — they are still counted in totals.
* **Urban (城镇)**: a cell is urban when its centre lies in a unit of kind ``街道`` **or** inside the
  城区 polygon (``urban_area``) when one is given — drawn by the planner or derived from the
  population grid by :mod:`coverage.urban` (``area.urban: auto``, the default). Everything else is rural (乡村). This is the
  rule the 城区/乡村 split of the reports uses; towns (镇) count as rural unless the 城区 polygon
  covers them.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coverage.io.population import PopulationGrid, grid_xy

log = logging.getLogger(__name__)


def _contains(polys: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (point index, polygon index) with the point inside the polygon (``contains``: not on its boundary).

    The points are sorted by x once; each polygon tests only the points in its bounding box, on
    coordinates (``shapely.contains_xy`` on the prepared polygon, no point geometries).
    """
    order = np.argsort(x, kind="stable")
    xs = x[order]
    p_parts, u_parts = [], []
    for k, poly in enumerate(polys):
        if poly is None or shapely.is_empty(poly):
            continue
        minx, miny, maxx, maxy = shapely.bounds(poly)
        lo, hi = np.searchsorted(xs, minx, "left"), np.searchsorted(xs, maxx, "right")
        cand = order[lo:hi]
        cand = cand[(y[cand] >= miny) & (y[cand] <= maxy)]
        if not len(cand):
            continue
        shapely.prepare(poly)
        hit = cand[shapely.contains_xy(poly, x[cand], y[cand])]
        p_parts.append(hit)
        u_parts.append(np.full(len(hit), k, dtype=np.int64))
    if not p_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(p_parts).astype(np.int64), np.concatenate(u_parts)


def centres(grid: PopulationGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid positions and centre coordinates of the populated cells, in the order of :func:`cells`.

    Parameters
    ----------
    grid : PopulationGrid

    Returns
    -------
    rows, cols : numpy.ndarray
        int64 grid row and column of each cell with ``pop > 0``, row-major (sorted by cell id).
    x, y : numpy.ndarray
        The cells' centres in ``grid.crs`` (the coordinates of :func:`cells`' points).
    """
    total = np.asarray(grid.total, dtype="float64")
    rr, cc = np.nonzero(total > 0)  # row-major order = sorted by cell id
    x, y = grid_xy(grid.transform, cc + 0.5, rr + 0.5)
    return rr.astype(np.int64, copy=False), cc.astype(np.int64, copy=False), x, y


def cells(
    grid: PopulationGrid,
    units: gpd.GeoDataFrame | None = None,
    urban_area: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Turn a population grid into demand points.

    Parameters
    ----------
    grid : PopulationGrid
        From :func:`coverage.io.population.read_population`.
    units : geopandas.GeoDataFrame, optional
        乡镇/街道 units with ``code``, ``name``, ``kind`` (reprojected to the grid CRS if needed).
    urban_area : geopandas.GeoDataFrame, optional
        城区 polygon(s); cells inside are urban whatever their unit.

    Returns
    -------
    geopandas.GeoDataFrame
        Points at cell centres in ``grid.crs``, one per cell with ``pop > 0``, columns ``cell``
        (``row * ncols + col``), ``row``, ``col``, ``pop``, one column per age group,
        ``unit_code``, ``unit_name``, ``urban`` (bool), ``geometry``; sorted by ``cell``.
    """
    total = np.asarray(grid.total, dtype="float64")
    ncols = total.shape[1]
    rr, cc, x, y = centres(grid)
    n = len(rr)
    data: dict[str, object] = {
        "cell": rr * ncols + cc,
        "row": rr,
        "col": cc,
        "pop": total[rr, cc],
    }
    for name, arr in grid.groups.items():
        data[name] = np.asarray(arr, dtype="float64")[rr, cc]
    unit_of = np.full(n, -1, dtype=np.int64)  # per cell its unit's row in ``units``; -1: outside all
    codes_text = names_text = np.array([], dtype=object)
    urban = np.zeros(n, dtype=bool)
    if units is not None and len(units) and n:
        u = units.to_crs(grid.crs) if units.crs is not None and not units.crs.equals(grid.crs) else units
        pi, ui = _contains(np.asarray(u.geometry.values), x, y)
        order = np.lexsort((ui, pi))
        pi, ui = pi[order], ui[order]
        first = np.ones(len(pi), dtype=bool)
        first[1:] = pi[1:] != pi[:-1]
        unit_of[pi[first]] = ui[first]
        codes_text = u["code"].astype(str).to_numpy(dtype=object)
        names_text = u["name"].astype(str).to_numpy(dtype=object)
        if "kind" in u.columns:
            urban[pi[first]] = u["kind"].astype(str).to_numpy()[ui[first]] == "街道"
        outside = unit_of < 0
        if outside.any():
            log.warning(
                "%d populated cells (%.0f people) lie outside every unit; unit_code is empty",
                int(outside.sum()),
                float(data["pop"][outside].sum()),  # type: ignore[index]
            )
    if urban_area is not None and len(urban_area) and n:
        ua = urban_area.to_crs(grid.crs) if urban_area.crs is not None and not urban_area.crs.equals(grid.crs) else urban_area
        geom = shapely.union_all(np.asarray(ua.geometry.values))
        shapely.prepare(geom)
        urban |= shapely.contains_xy(geom, x, y)
    data["unit_code"] = _categorical(codes_text, unit_of)
    data["unit_name"] = _categorical(names_text, unit_of)
    data["urban"] = urban
    df = pd.DataFrame(data)
    return gpd.GeoDataFrame(df, geometry=_points(x, y, grid.crs), crs=grid.crs)


def _points(x: np.ndarray, y: np.ndarray, crs: object) -> gpd.array.GeometryArray:
    """``geopandas.points_from_xy``, made in blocks of rows.

    Making a point geometry holds the GIL; in blocks, the model's other thread (snapping the same
    centres onto the roads, :func:`coverage.model.build_model`) gets it between two blocks
    instead of waiting for the whole million.
    """
    step = 1 << 15
    parts = [shapely.points(x[i:i + step], y[i:i + step]) for i in range(0, len(x), step)]
    geoms = np.concatenate(parts) if parts else np.empty(0, dtype=object)
    return gpd.array.from_shapely(geoms, crs=crs)


def _categorical(per_unit: np.ndarray, unit_of: np.ndarray) -> pd.Categorical:
    """Per cell the text of its unit (``""`` outside every unit), categorical.

    Categorical because a few hundred units cover a million cells and every table of the run
    groups by them. The categories are the texts the cells have, sorted (as ``astype("category")``
    gives them), built from the units' few values without a string per cell.
    """
    values = np.append(np.asarray(per_unit, dtype=object), "")  # position -1 (outside): ""
    cats, inverse = np.unique(values, return_inverse=True)
    codes = inverse.astype(np.int64)[unit_of]
    return pd.Categorical.from_codes(codes, categories=pd.Index(cats)).remove_unused_categories()


__all__ = ["cells", "centres", "point_xy"]


def point_xy(points: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The coordinates of a frame of points such as the demand cells, without geopandas' per-row type checks.

    Parameters
    ----------
    points : geopandas.GeoDataFrame
        Point geometries.

    Returns
    -------
    x, y : numpy.ndarray of float64
        One value per row (NaN for a missing or empty point, as ``.x``/``.y`` give it).
    """
    xy = shapely.get_coordinates(points.geometry.array)
    if len(xy) != len(points):  # a missing or empty point: the slower way keeps the rows aligned
        return points.geometry.x.to_numpy(), points.geometry.y.to_numpy()
    return xy[:, 0], xy[:, 1]
