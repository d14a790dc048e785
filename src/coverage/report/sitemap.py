"""A static map of a plan for the printed report: an inline SVG drawn from the geometries.

Township (乡镇/街道) outlines, the existing facilities of the service, the proposed (or added)
sites numbered by rank, and the people still outside the service's circle as dots sized by their
number. No tiles, no script, no network: the figure prints the same everywhere, and its text is
SVG text drawn by the reader's fonts (see :mod:`coverage.report.charts`). North is up; a metric
scale bar gives the size (the geometries are in the run's metric CRS).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from coverage.report.charts import coord as _f
from coverage.report.charts import svg_element as _svg
from coverage.report.charts import text_element as _text

__all__ = ["site_map_svg"]

_OUTLINE = "#555555"
_EXISTING = "#2f6f4f"
_PROPOSED = "#b42318"
_UNCOVERED = "#f79009"


def _path(geom: Any, tx: Any) -> str:
    """SVG path data of a (multi)polygon's rings."""
    parts = []
    polys = getattr(geom, "geoms", [geom])
    for poly in polys:
        if poly.is_empty or not hasattr(poly, "exterior"):
            continue
        for ring in [poly.exterior, *poly.interiors]:
            xy = np.asarray(ring.coords)
            if len(xy) < 3:
                continue
            px, py = tx(xy[:, 0], xy[:, 1])
            parts.append("M" + " L".join(f"{_f(a)},{_f(b)}" for a, b in zip(px, py, strict=True)) + " Z")
    return " ".join(parts)


def _nice(x: float) -> float:
    """The largest 1, 2 or 5 × 10^k not above ``x``."""
    k = 10 ** math.floor(math.log10(x))
    return max(m * k for m in (1, 2, 5) if m * k <= x)


def site_map_svg(  # noqa: PLR0913 - one layer per argument
    units: gpd.GeoDataFrame,
    existing: gpd.GeoDataFrame | None,
    proposed: gpd.GeoDataFrame,
    uncovered: gpd.GeoDataFrame | None = None,
    *,
    title: str = "选址方案示意图",
    existing_label: str = "现有设施",
    width: float = 960.0,
) -> str | None:
    """Static map of a plan as an SVG element.

    Parameters
    ----------
    units : geopandas.GeoDataFrame
        乡镇/街道 polygons with ``name`` (the map's extent).
    existing : geopandas.GeoDataFrame or None
        Existing facilities of the service (points).
    proposed : geopandas.GeoDataFrame
        Proposed or added sites (points); numbered by ``rank`` when present, else in row order.
    uncovered : geopandas.GeoDataFrame, optional
        People still outside the circle after the plan: points with ``pop``.
    title : str
        Figure title.
    existing_label : str
        Legend text of the existing facilities.
    width : float
        Width in px.

    Returns
    -------
    str or None
        An ``<svg>`` element; each proposed site a ``<g class="site" data-rank=...>``, each
        uncovered dot a ``<circle class="uncovered" data-people=...>``. ``None`` without units or
        sites.
    """
    if units is None or not len(units) or proposed is None or not len(proposed):
        return None
    crs = units.crs

    def same(g: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
        if g is None or not len(g):
            return None
        return g.to_crs(crs) if g.crs is not None and crs is not None and g.crs != crs else g

    existing, proposed_, uncovered = same(existing), same(proposed), same(uncovered)
    assert proposed_ is not None
    x0, y0, x1, y1 = units.total_bounds
    pad, top_h, legend_h = 12.0, 30.0, 58.0
    mw = width - 2 * pad
    scale = mw / max(x1 - x0, 1e-9)
    mh = min((y1 - y0) * scale, 720.0)
    scale = min(scale, mh / max(y1 - y0, 1e-9))
    ox = pad + (mw - (x1 - x0) * scale) / 2
    height = top_h + mh + legend_h

    def tx(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        return ox + (np.asarray(x) - x0) * scale, top_h + (y1 - np.asarray(y)) * scale

    body = [_text(width / 2, 20, title, 15, "middle", 'font-weight="bold"')]
    simple = shapely.simplify(units.geometry.to_numpy(), 0.7 / scale)
    for geom in simple:
        d = _path(geom, tx)
        if d:
            body.append(f'<path class="unit" d="{d}" fill="#f7f7f4" stroke="{_OUTLINE}" stroke-width="0.8"/>')
    if uncovered is not None:
        pop = uncovered["pop"].to_numpy(dtype=float)
        px, py = tx(uncovered.geometry.x.to_numpy(), uncovered.geometry.y.to_numpy())
        rmax = max(float(np.sqrt(pop.max())), 1e-9)
        for a, b, p in sorted(zip(px, py, pop, strict=True), key=lambda t: -t[2]):
            r = 0.8 + 5.0 * math.sqrt(p) / rmax
            body.append(f'<circle class="uncovered" data-people="{p:.2f}" cx="{_f(a)}" cy="{_f(b)}" r="{_f(r)}" '
                        f'fill="{_UNCOVERED}" fill-opacity="0.45" stroke="none"/>')
    reps = units.geometry.representative_point()
    lx, ly = tx(reps.x.to_numpy(), reps.y.to_numpy())
    for a, b, name in zip(lx, ly, units["name"].astype(str), strict=True):
        body.append(_text(a, b, name, 10, "middle", f'fill="{_OUTLINE}"'))
    if existing is not None:
        ex, ey = tx(existing.geometry.x.to_numpy(), existing.geometry.y.to_numpy())
        for a, b in zip(ex, ey, strict=True):
            body.append(f'<rect class="existing" x="{_f(a - 3)}" y="{_f(b - 3)}" width="6" height="6" '
                        f'fill="{_EXISTING}" stroke="#ffffff" stroke-width="0.8"/>')
    ranks = (proposed_["rank"].to_numpy() if "rank" in proposed_.columns
             else np.arange(1, len(proposed_) + 1))
    names = proposed_["name"].astype(str).to_numpy() if "name" in proposed_.columns else [""] * len(proposed_)
    sx, sy = tx(proposed_.geometry.x.to_numpy(), proposed_.geometry.y.to_numpy())
    for a, b, k, nm in zip(sx, sy, ranks, names, strict=True):
        body.append(f'<g class="site" data-rank="{int(k)}"><title>{escape(f"{int(k)}. {nm}")}</title>'
                    f'<circle cx="{_f(a)}" cy="{_f(b)}" r="9" fill="{_PROPOSED}" stroke="#ffffff" stroke-width="1.5"/>'
                    + _text(a, b + 3.8, str(int(k)), 11, "middle", 'fill="#ffffff" font-weight="bold"') + "</g>")
    # legend and scale bar
    y = top_h + mh + 22
    body.append(f'<circle cx="{_f(pad + 9)}" cy="{_f(y - 4)}" r="8" fill="{_PROPOSED}"/>')
    body.append(_text(pad + 22, y, "拟建点位(编号 = 排名) / proposed site (rank)", 11))
    body.append(f'<rect x="{_f(pad + 290)}" y="{_f(y - 7)}" width="6" height="6" fill="{_EXISTING}"/>')
    body.append(_text(pad + 302, y, existing_label, 11))
    if uncovered is not None:
        body.append(f'<circle cx="{_f(pad + 520)}" cy="{_f(y - 4)}" r="5" fill="{_UNCOVERED}" fill-opacity="0.45"/>')
        total = float(uncovered["pop"].sum())
        body.append(_text(pad + 530, y, f"方案后仍未覆盖人口(圆点面积∝人数,合计 {round(total):,} 人)", 11))
    bar_m = _nice((x1 - x0) / 5)
    bx, by = pad, top_h + mh + 44
    body.append(f'<line x1="{_f(bx)}" y1="{_f(by)}" x2="{_f(bx + bar_m * scale)}" y2="{_f(by)}" '
                f'stroke="#222222" stroke-width="3"/>')
    label = f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m"
    body.append(_text(bx + bar_m * scale + 6, by + 4, label + " · 上为北 / north up", 10))
    return _svg(width, height, body, title)
