"""Generator of the embedded synthetic demo county 示例县 (合成示例数据 / synthetic demo data).

示例县 is fictional. It sits around 107.9° E, 35.3° N (loess tableland in the east, mountains in the
west), covers about 1,500 km² and has about 400,000 residents: a 城区 of four 街道, ten 乡镇 with
market towns, about 135 行政村 (the mountain ones remote), an OSM-style road network, a 100 m
population raster with age groups, facilities of the four mission services and candidate sites.

Everything is drawn from ``numpy.random.default_rng(seed)``, so one seed always gives the same data.
The committed files under the repository's ``data/`` folder are ``generate(data_dir)`` with
:data:`coverage.settings.DEMO_SEED`; regenerate them with ``python -m coverage.demo data``.

Files written (all labelled 合成示例数据 / synthetic demo data):

* ``boundaries/county.gpkg`` (layers ``county``, ``chengqu``), ``boundaries/townships.gpkg``
  (``townships``), ``boundaries/villages.gpkg`` (``villages``), EPSG:4490;
* ``facilities/facilities.csv`` (schools, 托育, clinics; WGS-84), ``facilities/elderly_fitness_amap.xlsx``
  (elderly and fitness facilities as an Amap export, GCJ-02), ``facilities/candidates.csv``;
* ``population/pop_100m.tif`` and ``population/pop_<group>_100m.tif`` (EPSG:4545, 100 m);
* ``roads/roads.gpkg`` (layer ``roads``: ``highway``, ``name``, ``oneway``, ``maxspeed``; EPSG:4545).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon, box

from coverage import settings
from coverage.crs import wgs84_to_gcj02

__all__ = [
    "generate", "demo_data_dir", "SYNTHETIC_NOTE", "COUNTY_CODE", "COUNTY_NAME", "METRIC_EPSG",
    # building blocks reused by coverage.demo_region (the synthetic prefecture 示例市)
    "Road", "drop_isolated", "grid_streets", "lines", "node_roads", "noisy_ring", "village_name", "wiggle",
    "write_gpkg", "write_tif", "write_xlsx",
]

#: Label written into every file (metadata, a column or a layer description).
SYNTHETIC_NOTE = "合成示例数据 / synthetic demo data (示例县 is fictional; made by coverage.demo)"
COUNTY_CODE = "629901"
COUNTY_NAME = "示例县"
#: Internal metric CRS of the demo: CGCS2000 / 3-degree Gauss–Krüger CM 108E.
METRIC_EPSG = 4545
CENTER_LON, CENTER_LAT = 107.9, 35.3
CELL = 100.0

_TOWN_NAMES_ZHEN = ["柳湖镇", "龙泉镇", "安平镇", "新店镇", "河西镇", "三里塬镇"]
_TOWN_NAMES_XIANG = ["石门乡", "峡口乡", "麻川乡", "青岭乡"]
_JIEDAO_NAMES = ["城关街道", "东关街道", "西关街道", "北关街道"]
_EW_NAMES = ["人民路", "建设路", "南关路", "北关路", "育才路", "滨河路", "文化路", "崇信路", "和平路"]
_NS_NAMES = ["解放路", "中山路", "新华路", "东风路", "兴华路", "迎宾路", "西大街", "青年路", "光明路"]
_VIL_FIRST = list("王李张刘杨陈赵马何高石柳杜白郭崔苏安景韩罗曹潘孙吕田朱魏宋冯")
_VIL_PLAIN = ["塬", "庄", "堡", "台", "寨", "河", "川", "坪", "营", "店", "湾", "园"]
_VIL_MOUNT = ["沟", "峁", "岔", "洼", "岭", "峪", "山", "坡", "崖", "梁"]

_PROFILE_URBAN = {"age0_2": 0.026, "age3_5": 0.030, "age6_11": 0.075, "age12_14": 0.036, "age60plus": 0.15}
_PROFILE_RURAL = {"age0_2": 0.018, "age3_5": 0.024, "age6_11": 0.065, "age12_14": 0.034, "age60plus": 0.27}
_PROFILE_MOUNT = {"age0_2": 0.014, "age3_5": 0.020, "age6_11": 0.055, "age12_14": 0.030, "age60plus": 0.32}


# ----------------------------------------------------------------------------------------------
# small geometry helpers
# ----------------------------------------------------------------------------------------------


def wiggle(  # noqa: PLR0913 - issue 11: to narrow/split
    p: NDArray,
    q: NDArray,
    rng: np.random.Generator,
    amp: float,
    step: float = 80.0,
    modes: int = 4,
    zig: float = 0.0,
    zig_period: float = 700.0,
    over_start: float = 0.0,
    over_end: float = 0.0,
) -> NDArray:
    """Polyline from ``p`` to ``q`` bending sideways (a graph over the chord, never self-crossing).

    ``amp`` scales smooth sine bends (fraction of the chord); ``zig`` adds switchbacks of that
    lateral half-width (metres) every ``zig_period`` metres; ``over_*`` extends the ends straight
    along the chord by that many metres (an overshoot that the noding step trims after it finds
    the junction).
    """
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    d = q - p
    length = float(np.hypot(*d))
    u = d / length
    nrm = np.array([-u[1], u[0]])
    n = max(int(math.ceil(length / step)), 1) + 1
    t = np.linspace(0.0, 1.0, n)
    off = np.zeros(n)
    for k in range(1, modes + 1):
        off += rng.normal(0.0, amp * length / k) * np.sin(k * np.pi * t)
    if zig > 0 and length > 2 * zig_period:
        periods = max(int(round(length / zig_period)), 1)
        base_t = t
        t = np.union1d(t, np.linspace(0.0, 1.0, periods * 10 + 1))
        off = np.interp(t, base_t, off) + zig * rng.uniform(0.7, 1.0) * np.sin(2 * np.pi * periods * t)
    # keep the last ~150 m straight so that ends meet other lines cleanly
    env = np.clip(np.minimum(t, 1 - t) * length / 150.0, 0.0, 1.0)
    pts = p[None, :] + t[:, None] * d[None, :] + (off * env)[:, None] * nrm[None, :]
    if over_start > 0:
        pts = np.vstack([p - u * over_start, pts])
    if over_end > 0:
        pts = np.vstack([pts, q + u * over_end])
    return pts


def noisy_ring(rng: np.random.Generator, a: float, b: float, n: int, harm: float, rough: float) -> NDArray:
    """Closed noisy ellipse (radii ``a`` × ``b``) as an ``(n, 2)`` array of vertices."""
    th = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    r = a * b / np.sqrt((b * np.cos(th)) ** 2 + (a * np.sin(th)) ** 2)
    f = np.zeros(n)
    for k in range(2, 7):
        f += rng.uniform(0.3, 1.0) * harm / k * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    noise = rng.normal(0.0, rough, n)
    noise = np.convolve(np.concatenate([noise[-3:], noise, noise[:3]]), np.ones(7) / 7, mode="valid")
    r = r * (1.0 + f + noise)
    return np.column_stack([r * np.cos(th), r * np.sin(th)])


def lines(arrays: list[NDArray]) -> NDArray:
    """Object array of LineStrings from a list of ``(n, 2)`` coordinate arrays."""
    out = np.empty(len(arrays), dtype=object)
    out[:] = [LineString(a) for a in arrays]
    return out


@dataclass
class Road:
    """One generated road: its vertices (metres) and OSM ``highway`` class."""

    xy: NDArray
    highway: str
    name: str | None = None
    oneway: str | None = None
    maxspeed: str | None = None


@dataclass
class _Build:
    """Everything the generator makes, in the metric CRS (local coordinates already shifted)."""

    county: Polygon
    chengqu: Polygon
    units: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    pop: dict[str, NDArray]
    transform: object
    facilities: pd.DataFrame
    amap: pd.DataFrame
    candidates: pd.DataFrame
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# noding: make lines meet at exactly shared vertices
# ----------------------------------------------------------------------------------------------


def node_roads(roads: list[Road], trim: float = 8.0) -> list[Road]:
    """Insert every crossing of two lines as a vertex of both and cut short overshooting ends.

    Coordinates are rounded to 0.1 m afterwards; both lines receive the same rounded vertex, so
    junctions are exactly shared vertices.
    """
    geoms = lines([r.xy for r in roads])
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    inter = shapely.intersection(geoms[left], geoms[right])
    parts, idx = shapely.get_parts(inter, return_index=True)
    types = shapely.get_type_id(parts)
    # points from crossings; overlaps (line parts) contribute their end points
    pt_mask = types == 0
    xy_pts = shapely.get_coordinates(parts[pt_mask])
    own = idx[pt_mask]
    line_mask = types == 1
    if line_mask.any():
        bnd = shapely.boundary(parts[line_mask])
        bparts, bidx = shapely.get_parts(bnd, return_index=True)
        xy_pts = np.vstack([xy_pts, shapely.get_coordinates(bparts)])
        own = np.concatenate([own, idx[line_mask][bidx]])
    line_ids = np.concatenate([left[own], right[own]])
    pts_all = np.vstack([xy_pts, xy_pts])
    order = np.argsort(line_ids, kind="stable")
    line_ids, pts_all = line_ids[order], pts_all[order]
    bounds = np.searchsorted(line_ids, np.arange(len(roads) + 1))
    out: list[Road] = []
    for i, road in enumerate(roads):
        xy = road.xy
        jp = pts_all[bounds[i] : bounds[i + 1]]
        if len(jp):
            seg = np.hypot(*np.diff(xy, axis=0).T)
            vd = np.concatenate([[0.0], np.cumsum(seg)])
            jd = shapely.line_locate_point(geoms[i], shapely.points(jp))
            dist = np.concatenate([vd, jd])
            coords = np.vstack([xy, jp])
            isj = np.concatenate([np.zeros(len(vd), bool), np.ones(len(jd), bool)])
            o = np.lexsort((~isj, dist))
            dist, coords, isj = dist[o], coords[o], isj[o]
            # drop vertices within 5 cm of a junction, and duplicate junctions
            keep_v = np.ones(len(dist), bool)
            jdist = dist[isj]
            pos = np.searchsorted(jdist, dist)
            lo_d = np.abs(dist - jdist[np.clip(pos - 1, 0, len(jdist) - 1)])
            hi_d = np.abs(dist - jdist[np.clip(pos, 0, len(jdist) - 1)])
            keep_v[~isj & (np.minimum(lo_d, hi_d) < 0.05)] = False
            jk = np.nonzero(isj)[0]
            keep_v[jk[1:][np.diff(dist[jk]) < 0.05]] = False
            dist, coords, isj = dist[keep_v], coords[keep_v], isj[keep_v]
            jpos = np.nonzero(isj)[0]
            lo, hi = 0, len(coords) - 1
            if len(jpos):
                if 0 < dist[jpos[0]] - dist[0] < trim:
                    lo = jpos[0]
                if 0 < dist[-1] - dist[jpos[-1]] < trim:
                    hi = jpos[-1]
            xy = coords[lo : hi + 1]
        xy = np.round(xy, 1)
        dup = np.concatenate([[True], np.any(np.diff(xy, axis=0) != 0, axis=1)])
        xy = xy[dup]
        if len(xy) >= 2:
            out.append(Road(xy, road.highway, road.name, road.oneway, road.maxspeed))
    return out


def drop_isolated(roads: list[Road]) -> list[Road]:
    """Remove lines that share no vertex with any other line (orphan driveways after clipping)."""
    keys = [list(map(tuple, r.xy)) for r in roads]
    count: dict[tuple, int] = {}
    for k in keys:
        for v in set(k):
            count[v] = count.get(v, 0) + 1
    return [r for r, k in zip(roads, keys) if any(count[v] > 1 for v in k)]


# ----------------------------------------------------------------------------------------------
# the county
# ----------------------------------------------------------------------------------------------


def _mountain(x: NDArray, y: NDArray) -> NDArray:
    """Mountain score 0 (tableland) … 1 (mountain) in local metres; mountains lie to the west."""
    u = -(np.asarray(x) * 0.93 + np.asarray(y) * 0.37)
    s = np.clip((u - 4500.0) / 7000.0, 0.0, 1.0)
    return s * s * (3 - 2 * s)


def grid_streets(  # noqa: C901 - issue 11: to narrow/split
    rng: np.random.Generator,
    centre: NDArray,
    half_w: float,
    half_h: float,
    spacing: tuple[float, float],
    drop: float,
    stub_p: float,
    stub_len: tuple[float, float],
) -> tuple[list[tuple[NDArray, int, str]], list[NDArray]]:
    """A jittered street grid: returns street polylines (xy, index from centre, 'ew'|'ns') and stubs.

    Streets are cut into blocks; a share ``drop`` of blocks is left out (dead ends, irregularity).
    Stubs (driveways into blocks) start at a vertex of their street.
    """
    def positions(half: float) -> NDArray:
        pos = [0.0]
        while pos[-1] < half:
            pos.append(pos[-1] + rng.uniform(*spacing))
        neg = [0.0]
        while neg[-1] > -half:
            neg.append(neg[-1] - rng.uniform(*spacing))
        arr = np.array(sorted(set(neg + pos)))
        return arr + rng.uniform(0.3, 0.7) * spacing[0]  # the centre itself is mid-block

    xs = centre[0] + positions(half_w)
    ys = centre[1] + positions(half_h)
    streets: list[tuple[NDArray, int, str]] = []
    stubs: list[NDArray] = []
    for orient, fixed_list, cross in (("ew", ys, xs), ("ns", xs, ys)):
        mid = int(np.argmin(np.abs(fixed_list - (centre[1] if orient == "ew" else centre[0]))))
        for li, fixed in enumerate(fixed_list):
            rank = li - mid
            is_art = rank % 5 == 0
            run: list[NDArray] = []
            for a, b in zip(cross[:-1], cross[1:]):
                dropped = (not is_art) and rng.random() < drop
                if dropped:
                    if len(run) >= 2:
                        streets.append((np.array(run), rank, orient))
                    run = []
                    continue
                pts = [a]
                for f0, f1 in ((0.2, 0.42), (0.58, 0.8)):
                    if is_art or rng.random() >= stub_p:
                        continue
                    s = a + (b - a) * rng.uniform(f0, f1)
                    pts.append(s)
                    side = 1 if rng.random() < 0.5 else -1
                    ln = rng.uniform(*stub_len)
                    if orient == "ew":
                        stubs.append(np.array([[s, fixed], [s, fixed + side * ln]]))
                    else:
                        stubs.append(np.array([[fixed, s], [fixed + side * ln, s]]))
                pts.append(b)
                for v in pts:
                    if not run or run[-1] != v:
                        run.append(v)
            if len(run) >= 2:
                streets.append((np.array(run), rank, orient))
    out = []
    for vals, rank, orient in streets:
        fixed = ys if orient == "ew" else xs
        mid = int(np.argmin(np.abs(fixed - (centre[1] if orient == "ew" else centre[0]))))
        f = fixed[mid + rank]
        xy = np.column_stack([vals, np.full(len(vals), f)]) if orient == "ew" else np.column_stack([np.full(len(vals), f), vals])
        out.append((xy, rank, orient))
    return out, stubs


def _clip_lines(xy: NDArray, poly: Polygon, min_len: float = 30.0) -> list[NDArray]:
    """Parts of a polyline inside ``poly`` (longer than ``min_len``)."""
    g = shapely.intersection(LineString(xy), poly)
    res = []
    for part in shapely.get_parts(g):
        if part.geom_type == "LineString" and part.length >= min_len:
            res.append(np.asarray(part.coords))
    return res


def village_name(rng: np.random.Generator, mountain: bool, used: set[str]) -> str:
    """A village name not yet in ``used`` (mountain or plain suffixes), added to ``used``."""
    suffixes = _VIL_MOUNT if mountain else _VIL_PLAIN
    for _ in range(1000):
        first = str(rng.choice(_VIL_FIRST))
        mid = "家" if rng.random() < 0.45 else ""
        pre = str(rng.choice(["", "", "", "上", "下", "前", "后", "东", "西", "大", "小"]))
        name = f"{pre}{first}{mid}{rng.choice(suffixes)}村"
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError("could not find a unique village name")


def _outline(rng: np.random.Generator) -> tuple[Polygon, Polygon]:
    """The county outline (about 1,500 km²) and the 城区, in local coordinates (origin = county seat).

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream (draws the two noisy rings).

    Returns
    -------
    county, chengqu : shapely.Polygon
    """
    ring = noisy_ring(rng, 24000.0, 20000.0, 260, harm=0.22, rough=0.012)
    county = Polygon(ring)
    county = shapely.affinity.scale(county, *(2 * [math.sqrt(1.5e9 / county.area)]), origin=(0, 0))
    county = county.buffer(0)
    cq_ring = noisy_ring(rng, 3300.0, 2700.0, 90, harm=0.15, rough=0.01)
    chengqu = Polygon(cq_ring).buffer(0)
    return county, chengqu


def _town_seats(rng: np.random.Generator, county: Polygon) -> NDArray:
    """Seats of the ten 乡镇: one 4.6 km from the county seat, nine in a ring 55–66 % of the way to the border.

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    county : shapely.Polygon
        The county outline (local coordinates).

    Returns
    -------
    numpy.ndarray
        ``(10, 2)`` seat coordinates.
    """
    ang0 = rng.uniform(0, 2 * np.pi)
    c_ang = rng.uniform(0, 2 * np.pi)
    seats = [np.array([4600.0 * np.cos(c_ang), 4600.0 * np.sin(c_ang)])]
    for k in range(9):
        a = ang0 + 2 * np.pi * k / 9 + rng.uniform(-0.15, 0.15)
        direction = np.array([np.cos(a), np.sin(a)])
        far = LineString([(0, 0), tuple(direction * 80000)])
        hit = shapely.intersection(far, county.exterior)
        rmax = min(np.hypot(*np.asarray(p.coords[0])) for p in shapely.get_parts(hit)) if not hit.is_empty else 18000.0
        seats.append(direction * rmax * rng.uniform(0.55, 0.66))
    return np.array(seats)


def _townships(seats: NDArray, county: Polygon, chengqu: Polygon) -> list[dict]:
    """The ten 乡镇 as Voronoi cells of their seats, cut to the county outside the 城区.

    The four most mountainous seats are 乡, the others 镇; slivers left by the largest-part rule go
    to the neighbour that touches them most, so the units and the 城区 tile the county exactly.

    Parameters
    ----------
    seats : numpy.ndarray
        ``(10, 2)`` seats from :func:`_town_seats`.
    county, chengqu : shapely.Polygon
        Outline and 城区 (local coordinates).

    Returns
    -------
    list of dict
        ``code``, ``name``, ``kind`` (乡 or 镇), ``seat``, ``geometry`` per township, in seat order.
    """
    mscore = _mountain(seats[:, 0], seats[:, 1])
    order_m = np.argsort(-mscore[1:], kind="stable") + 1
    xiang_idx = set(order_m[:4].tolist())
    zhen_i, xiang_i = 0, 0
    unit_rows = []
    vor = shapely.voronoi_polygons(shapely.multipoints(seats), extend_to=county.buffer(5000))
    cells = list(shapely.get_parts(vor))
    for i, s in enumerate(seats):
        cell = next(c for c in cells if c.contains(Point(s)))
        poly = cell.intersection(county).difference(chengqu)
        poly = max(shapely.get_parts(poly), key=lambda g: g.area) if poly.geom_type != "Polygon" else poly
        if i in xiang_idx:
            name, kind, code = _TOWN_NAMES_XIANG[xiang_i], "乡", f"{COUNTY_CODE}{200 + xiang_i:03d}000"
            xiang_i += 1
        else:
            name, kind, code = _TOWN_NAMES_ZHEN[zhen_i], "镇", f"{COUNTY_CODE}{100 + zhen_i:03d}000"
            zhen_i += 1
        unit_rows.append({"code": code, "name": name, "kind": kind, "seat": s, "geometry": poly})
    # give slivers cut off by the largest-part rule back to a neighbour: rebuild as exact tiling
    covered = shapely.union_all([r["geometry"] for r in unit_rows] + [chengqu])
    rest = county.difference(covered)
    for part in shapely.get_parts(rest):
        if part.area < 1.0:
            continue
        best = max(unit_rows, key=lambda r: r["geometry"].buffer(1.0).intersection(part).area)
        best["geometry"] = best["geometry"].union(part)
    return unit_rows


def _jiedao(rng: np.random.Generator, chengqu: Polygon) -> list[dict]:
    """The four 街道: quarters of the 城区 around a slightly shifted centre.

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    chengqu : shapely.Polygon
        The 城区 (local coordinates).

    Returns
    -------
    list of dict
        ``code``, ``name``, ``kind`` (街道), ``seat``, ``geometry``, in the order of :data:`_JIEDAO_NAMES`.
    """
    sx, sy = rng.uniform(-300, 300), rng.uniform(-300, 300)
    big = 20000.0
    quads = [box(sx, sy, big, big), box(-big, sy, sx, big), box(-big, -big, sx, sy), box(sx, -big, big, sy)]
    jd_rows = []
    for q, nm in zip(quads, ["东关街道", "北关街道", "西关街道", "城关街道"]):
        g = chengqu.intersection(q)
        seat = np.asarray(g.representative_point().coords[0]) * 0.5 + np.asarray(g.centroid.coords[0]) * 0.5
        if not g.contains(Point(seat)):
            seat = np.asarray(g.representative_point().coords[0])
        jd_rows.append({"name": nm, "kind": "街道", "seat": seat, "geometry": g})
    jd_rows.sort(key=lambda r: _JIEDAO_NAMES.index(r["name"]))
    for k, r in enumerate(jd_rows):
        r["code"] = f"{COUNTY_CODE}{k + 1:03d}000"
    return jd_rows


def _village_points(rng: np.random.Generator, county: Polygon, chengqu: Polygon, seats: NDArray, unit_rows: list[dict]) -> NDArray:
    """Village centres by dart throwing: 138 points, sparser in the mountains, away from seats and unit borders.

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    county, chengqu : shapely.Polygon
        Outline and 城区 (local coordinates).
    seats : numpy.ndarray
        The township seats (no village within 1.1 km of one).
    unit_rows : list of dict
        The townships (no village within 500 m of a border).

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` village centres, in the order they were drawn.
    """
    excl = shapely.union_all([chengqu.buffer(900)] + [Point(s).buffer(1100) for s in seats])
    inner_bnd = shapely.union_all([r["geometry"].boundary for r in unit_rows] + [county.exterior])
    shapely.prepare(excl)
    shapely.prepare(county)
    minx, miny, maxx, maxy = county.bounds
    vil_xy: list[NDArray] = []
    target = 138
    for _ in range(40000):
        if len(vil_xy) >= target:
            break
        p = np.array([rng.uniform(minx, maxx), rng.uniform(miny, maxy)])
        pt = Point(p)
        if not county.contains(pt) or excl.contains(pt):
            continue
        m = float(_mountain(p[0], p[1]))
        dmin = 2250.0 + 1400.0 * m
        if vil_xy and np.min(np.hypot(*(np.array(vil_xy) - p).T)) < dmin:
            continue
        if inner_bnd.distance(pt) < 500.0:
            continue
        vil_xy.append(p)
    return np.array(vil_xy)


def _villages(rng: np.random.Generator, vil: NDArray, unit_rows: list[dict]) -> list[dict]:
    """行政村 records: code (by township, north to south), name, township, remoteness.

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream (draws the names).
    vil : numpy.ndarray
        Village centres from :func:`_village_points`.
    unit_rows : list of dict
        The townships (each village gets the one containing it).

    Returns
    -------
    list of dict
        ``code``, ``name``, ``unit_code``, ``remote`` (mountain score > 0.55), ``xy``, ``m`` (mountain
        score); later steps add ``lane`` and ``pop``.
    """
    vil_m = _mountain(vil[:, 0], vil[:, 1])
    vil_unit = []
    for p in vil:
        pt = Point(p)
        vil_unit.append(next(r["code"] for r in unit_rows if r["geometry"].contains(pt)))
    used: set[str] = set()
    vrows = []
    counters: dict[str, int] = {}
    order_v = sorted(range(len(vil)), key=lambda i: (vil_unit[i], -vil[i][1], vil[i][0]))
    for i in order_v:
        uc = vil_unit[i]
        counters[uc] = counters.get(uc, 0) + 1
        remote = bool(vil_m[i] > 0.55)
        vrows.append(
            {
                "code": f"{uc[:9]}{200 + counters[uc]:03d}",
                "name": village_name(rng, remote, used),
                "unit_code": uc,
                "remote": remote,
                "xy": vil[i],
                "m": float(vil_m[i]),
            }
        )
    return vrows


def _chengqu_roads(rng: np.random.Generator, chengqu: Polygon) -> list[Road]:
    """The 城区's street grid (named arterials, some one-way lanes), service stubs and the ring road 环城路.

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    chengqu : shapely.Polygon
        The 城区 (local coordinates).

    Returns
    -------
    list of Road
        The ring road last.
    """
    roads: list[Road] = []
    streets, stubs = grid_streets(rng, np.zeros(2), 3900.0, 3400.0, (120.0, 150.0), 0.07, 0.8, (25.0, 45.0))
    cq_clip = chengqu.buffer(4.0)
    cq_in10 = chengqu.buffer(-10.0)
    shapely.prepare(cq_in10)
    ew_i, ns_i = 0, 0
    art_names: dict[tuple[int, str], str] = {}
    for xy, rank, orient in streets:
        key = (rank, orient)
        nm: str | None
        ms: str | None
        if rank == 0:
            hw, nm, ms = "primary", ("人民路" if orient == "ew" else "解放路"), "40"
        elif rank % 5 == 0:
            if key not in art_names:
                if orient == "ew":
                    ew_i += 1
                    art_names[key] = _EW_NAMES[ew_i % len(_EW_NAMES)]
                else:
                    ns_i += 1
                    art_names[key] = _NS_NAMES[ns_i % len(_NS_NAMES)]
            hw, nm, ms = "secondary", art_names[key], ("40" if abs(rank) == 5 else None)
        else:
            hw, nm, ms = "residential", None, None
        for part in _clip_lines(xy, cq_clip):
            ow = None
            if hw == "residential" and rank % 7 == 3 and part.shape[0] > 3:
                ow = "yes"
                if rank % 2:
                    part = part[::-1]
            roads.append(Road(part, hw, nm, ow, ms))
    for st in stubs:
        if cq_in10.contains(Point(st[1])):
            roads.append(Road(st, "service"))
    ring_xy = np.asarray(chengqu.exterior.coords)
    roads.append(Road(ring_xy, "secondary", "环城路", None, "40"))
    return roads


def _market_town_roads(rng: np.random.Generator, unit_rows: list[dict]) -> tuple[list[Road], list[Road]]:
    """Street grids of the ten market towns (main streets ``tertiary``, named after the town).

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    unit_rows : list of dict
        The townships with their seats.

    Returns
    -------
    roads : list of Road
        Every street and service stub.
    main : list of Road
        The main streets alone (the base the village connectors may join).
    """
    roads: list[Road] = []
    town_main: list[Road] = []
    for r in unit_rows:
        s = r["seat"]
        stem = r["name"][:-1]
        hw_ = rng.uniform(450, 700)
        hh_ = rng.uniform(350, 600)
        tstreets, tstubs = grid_streets(rng, s, hw_, hh_, (135.0, 175.0), 0.1, 0.6, (25.0, 45.0))
        clip = Point(s).buffer(max(hw_, hh_) * 1.05).intersection(box(s[0] - hw_, s[1] - hh_, s[0] + hw_, s[1] + hh_))
        for xy, rank, orient in tstreets:
            if rank == 0:
                hw, nm = "tertiary", f"{stem}{'大街' if orient == 'ew' else '路'}"
            else:
                hw, nm = "residential", None
            for part in _clip_lines(xy, clip):
                rd = Road(part, hw, nm)
                roads.append(rd)
                if rank == 0:
                    town_main.append(rd)
        clip_in = clip.buffer(-5.0)
        for st in tstubs:
            if clip_in.contains(Point(st[1])):
                roads.append(Road(st, "service"))
    return roads, town_main


def _intertown_links(pts_all: NDArray) -> list[tuple[int, int, str, str, str | None]]:
    """Which seats the main roads join.

    国道327线 runs west–east and 省道218线 south–north through the county seat; 县道 follow a
    minimum spanning tree of the seats (Prim) plus up to three short extra links.

    Parameters
    ----------
    pts_all : numpy.ndarray
        ``(11, 2)``: the county seat (row 0, the origin) and the township seats.

    Returns
    -------
    list of tuple
        ``(from, to, highway, name, maxspeed)`` per road, rows of ``pts_all``.
    """
    west = int(np.argmin(pts_all[1:, 0])) + 1
    east = int(np.argmax(pts_all[1:, 0])) + 1
    south = int(np.argmin(pts_all[1:, 1])) + 1
    north = int(np.argmax(pts_all[1:, 1])) + 1
    main_edges: list[tuple[int, int, str, str, str | None]] = []
    main_edges += [(west, 0, "trunk", "国道327线", "80"), (0, east, "trunk", "国道327线", "80")]
    if south not in (west, east) and north not in (west, east):
        main_edges += [(south, 0, "primary", "省道218线", None), (0, north, "primary", "省道218线", None)]
    linked = {frozenset(e[:2]) for e in main_edges}
    # minimum spanning tree over all seats (Prim), then a few short extra links
    n = len(pts_all)
    dmat = np.hypot(*(pts_all[:, None, :] - pts_all[None, :, :]).transpose(2, 0, 1))
    in_tree = {0}
    mst = []
    while len(in_tree) < n:
        best: tuple[float, int, int] | None = None
        for a in sorted(in_tree):
            for b in range(n):
                if b in in_tree:
                    continue
                if best is None or dmat[a, b] < best[0]:
                    best = (dmat[a, b], a, b)
        assert best is not None  # some seat is still outside the tree
        in_tree.add(best[2])
        mst.append((best[1], best[2]))
    extra = sorted(
        ((dmat[a, b], a, b) for a in range(1, n) for b in range(a + 1, n)),
    )
    edges = [e for e in mst if frozenset(e) not in linked]
    for d, a, b in extra:
        if len(edges) >= len(mst) + 3:
            break
        if frozenset((a, b)) in linked or (a, b) in edges or (b, a) in edges or d > 16000:
            continue
        edges.append((a, b))
    xno = 100
    for a, b in edges:
        xno += 1
        main_edges.append((a, b, "secondary", f"县道X{xno}", None))
    return main_edges


def _intertown_roads(
    rng: np.random.Generator, pts_all: NDArray, links: list[tuple[int, int, str, str, str | None]], chengqu: Polygon
) -> list[Road]:
    """Draw the main roads of :func:`_intertown_links` (wigglier in the mountains; ending on the ring road).

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    pts_all : numpy.ndarray
        County seat and township seats.
    links : list of tuple
        From :func:`_intertown_links`.
    chengqu : shapely.Polygon
        The 城区: a road to the county seat stops 4 m past its ring.

    Returns
    -------
    list of Road
    """
    main_roads: list[Road] = []
    ring_line = chengqu.exterior
    for a, b, hw, nm, ms in links:
        p, q = pts_all[a].copy(), pts_all[b].copy()
        over_s = over_e = 0.0
        if a == 0:
            t = LineString([q, p])
            p = np.asarray(shapely.intersection(t, ring_line).representative_point().coords[0])
            over_s = 4.0
        if b == 0:
            t = LineString([p, q])
            q = np.asarray(shapely.intersection(t, ring_line).representative_point().coords[0])
            over_e = 4.0
        mm = float(_mountain(*(0.5 * (p + q))))
        xy = wiggle(p, q, rng, amp=0.03 + 0.04 * mm, step=90, zig=250.0 * mm, over_start=over_s, over_end=over_e)
        main_roads.append(Road(xy, hw, nm, None, ms))
    return main_roads


def _connector_target(net: list[Road], c: NDArray) -> tuple[NDArray, NDArray, float, int]:
    """Where a village's connector joins the network: the nearest point of the nearest road (15 m from its ends).

    Parameters
    ----------
    net : list of Road
        The roads a connector may join so far.
    c : numpy.ndarray
        The village centre.

    Returns
    -------
    tgt : numpy.ndarray
        The joining point (80 m east of ``c`` when the village is already on a road).
    u : numpy.ndarray
        Unit vector from ``c`` to ``tgt``.
    length : float
        Distance from ``c`` to ``tgt``.
    j : int
        The road joined, an index of ``net``.
    """
    geoms = lines([r.xy for r in net])
    tree = shapely.STRtree(geoms)
    j = int(tree.query_nearest(Point(c))[0])
    g = geoms[j]
    dd = float(np.clip(g.project(Point(c)), 15.0, max(g.length - 15.0, 15.0)))
    tgt = np.asarray(g.interpolate(dd).coords[0])
    u = tgt - c
    length = float(np.hypot(*u))
    if length < 60:  # already on a road: make a short spur
        tgt = c + np.array([80.0, 0.0])
        u = tgt - c
        length = 80.0
    return tgt, u / length, length, j


def _lane_branches(rng: np.random.Generator, lane: NDArray, mid: int, u: NDArray, remote: bool) -> list[Road]:
    """Side lanes across a village's main lane and courtyard driveways off the lanes' vertices.

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    lane : numpy.ndarray
        The main lane's vertices; ``mid`` is the vertex the connector leaves from.
    mid : int
        Index of that vertex.
    u : numpy.ndarray
        Unit vector of the connector's direction.
    remote : bool
        A mountain village (fewer, rougher branches).

    Returns
    -------
    list of Road
        Side lanes, then driveways.
    """
    roads: list[Road] = []
    nrm = np.array([-u[1], u[0]])
    nside = int(rng.integers(1, 4)) if remote else int(rng.integers(3, 7))
    sides: list[NDArray] = []
    for _k in range(nside):
        fr = rng.uniform(0.1, 0.9)
        idx = int(round(fr * (len(lane) - 1)))
        if abs(idx - mid) < 2:
            continue
        o = lane[idx]
        sa = rng.uniform(-0.3, 0.3)
        sd = u * math.cos(sa) + nrm * math.sin(sa)
        l1, l2 = rng.uniform(60, 200), rng.uniform(60, 200)
        side = wiggle(o - sd * l1, o + sd * l2, rng, amp=0.04, step=40, modes=2)
        roads.append(Road(side, "track" if remote else "service"))
        sides.append(side)
    # courtyard driveways off the lane vertices (main lane and side lanes)
    for ln_xy, pp in [(lane, 0.35 if remote else 0.8)] + [(sl, 0.2 if remote else 0.55) for sl in sides]:
        for k in range(1, len(ln_xy) - 1):
            if (ln_xy is lane and abs(k - mid) < 1) or rng.random() > pp:
                continue
            o = ln_xy[k]
            tdir = ln_xy[k + 1] - ln_xy[k - 1]
            tdir = tdir / np.hypot(*tdir)
            perp = np.array([-tdir[1], tdir[0]]) * (1.0 if rng.random() < 0.5 else -1.0)
            roads.append(Road(np.array([o, o + perp * rng.uniform(18, 35)]), "service"))
    return roads


def _field_tracks(
    rng: np.random.Generator, lane: NDArray, mid: int, remote: bool, inside: Polygon, branch_inside: Polygon,
    off_chengqu: Polygon,
) -> list[Road]:
    """Field tracks from a village's main lane (0.7–1.8 km, some with branches).

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    lane : numpy.ndarray
        The main lane's vertices.
    mid : int
        The connector's vertex on the lane (no track starts within two vertices of it).
    remote : bool
        A mountain village (fewer tracks).
    inside, branch_inside : shapely.Polygon
        Where a track and a branch must end (the county 300 m and 200 m in from its border).
    off_chengqu : shapely.Polygon
        Where a track must not end (the 城区 and 300 m around it).

    Returns
    -------
    list of Road
    """
    roads: list[Road] = []
    ntr = int(rng.integers(1, 3)) if remote else int(rng.integers(4, 8))
    for _k in range(ntr):
        idx = int(rng.integers(0, len(lane)))
        if abs(idx - mid) < 2:
            continue
        o = lane[idx]
        a = rng.uniform(0, 2 * np.pi)
        e = o + np.array([math.cos(a), math.sin(a)]) * rng.uniform(700, 1800)
        if not inside.contains(Point(e)) or off_chengqu.contains(Point(e)):
            continue
        tr_xy = wiggle(o, e, rng, amp=0.05, step=80, modes=3)
        roads.append(Road(tr_xy, "track"))
        for _b in range(int(rng.integers(0, 4))):
            bi = int(rng.integers(2, len(tr_xy) - 1)) if len(tr_xy) > 4 else None
            if bi is None:
                break
            bo = tr_xy[bi]
            ba = a + rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.6)
            be = bo + np.array([math.cos(ba), math.sin(ba)]) * rng.uniform(250, 700)
            if branch_inside.contains(Point(be)):
                roads.append(Road(wiggle(bo, be, rng, amp=0.05, step=80, modes=2), "track"))
    return roads


def _village_roads(rng: np.random.Generator, vrows: list[dict], base: list[Road], county: Polygon, chengqu: Polygon) -> list[Road]:
    """Each village's main lane, its connector to the network, side lanes, driveways and field tracks.

    Villages are taken nearest-first from the base network; each connector joins the base or an
    earlier village's connector. The main lane is stored in the village record (``lane``).

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    vrows : list of dict
        The villages (:func:`_villages`); ``lane`` is added to each.
    base : list of Road
        Roads a connector may join: main roads, market-town main streets, the ring road.
    county, chengqu : shapely.Polygon
        Outline and 城区 (limits of the field tracks).

    Returns
    -------
    list of Road
        Per village: lane, connector, side lanes, driveways, tracks.
    """
    inside, branch_inside, off_chengqu = county.buffer(-300.0), county.buffer(-200.0), chengqu.buffer(300.0)
    for g in (off_chengqu, inside, branch_inside):
        shapely.prepare(g)
    base_multi = shapely.MultiLineString([r.xy for r in base])
    dist0 = [float(shapely.distance(Point(v["xy"]), base_multi)) for v in vrows]
    net = list(base)
    roads: list[Road] = []
    yno = 0
    for vi in sorted(range(len(vrows)), key=lambda i: (dist0[i], i)):
        v = vrows[vi]
        c, remote = v["xy"], v["remote"]
        tgt, u, length, j = _connector_target(net, c)
        nrm = np.array([-u[1], u[0]])
        # main lane through the village, across the connector direction
        ang = rng.uniform(-0.5, 0.5)
        dirl = nrm * math.cos(ang) + u * math.sin(ang)
        half = rng.uniform(180, 280) if remote else rng.uniform(280, 480)
        lane = wiggle(c - dirl * half, c + dirl * half, rng, amp=0.03, step=40, modes=2)
        mid = len(lane) // 2
        start = lane[mid]
        roads.append(Road(lane, "unclassified" if remote else "residential"))
        # connector from the lane's middle vertex to the network
        if remote:
            con = wiggle(start, tgt, rng, amp=0.10, step=70, modes=5, zig=rng.uniform(200, 320), zig_period=650, over_end=4.0)
            chw, cname = "track", None
        else:
            con = wiggle(start, tgt, rng, amp=0.05, step=90, modes=3, over_end=4.0)
            if j < len(net) and net[j].highway in ("trunk", "primary", "secondary") and length > 1500:
                yno += 1
                chw, cname = "tertiary", f"乡道Y{yno:03d}"
            else:
                chw, cname = "unclassified", None
        crd = Road(con, chw, cname)
        roads.append(crd)
        net.append(crd)
        v["lane"] = lane
        roads += _lane_branches(rng, lane, mid, u, remote)
        roads += _field_tracks(rng, lane, mid, remote, inside, branch_inside, off_chengqu)
    return roads


def _road_network(
    rng: np.random.Generator, county: Polygon, chengqu: Polygon, seats: NDArray, unit_rows: list[dict], vrows: list[dict]
) -> list[Road]:
    """The whole road network, noded (crossings shared as vertices) and without isolated pieces.

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    county, chengqu : shapely.Polygon
        Outline and 城区.
    seats : numpy.ndarray
        Township seats.
    unit_rows : list of dict
        The townships.
    vrows : list of dict
        The villages (each gets its ``lane``).

    Returns
    -------
    list of Road
    """
    roads = _chengqu_roads(rng, chengqu)
    town_roads, town_main = _market_town_roads(rng, unit_rows)
    roads += town_roads
    pts_all = np.vstack([np.zeros((1, 2)), seats])  # 0 = county seat
    main_roads = _intertown_roads(rng, pts_all, _intertown_links(pts_all), chengqu)
    roads += main_roads
    base = main_roads + town_main + [r for r in roads if r.name == "环城路"]
    roads += _village_roads(rng, vrows, base, county, chengqu)
    roads = node_roads(node_roads(roads), trim=0.0)
    return drop_isolated(roads)


def _age_groups(rng: np.random.Generator, pop: NDArray, urban_frac: NDArray, grid: tuple[NDArray, NDArray]) -> dict[str, NDArray]:
    """Age-group rasters: shares between the urban, rural and mountain profiles, with cell noise.

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    pop : numpy.ndarray
        Persons per cell (−1 outside the county).
    urban_frac : numpy.ndarray
        Urban share per cell.
    grid : tuple of numpy.ndarray
        Cell-centre ``(X, Y)`` in local coordinates.

    Returns
    -------
    dict of str to numpy.ndarray
        float32 persons per cell for each of :data:`coverage.settings.AGE_GROUPS` (never above the
        total; −1 outside the county).
    """
    groups = {}
    mgrid = _mountain(grid[0], grid[1])
    valid = pop >= 0
    for gname in settings.AGE_GROUPS:
        rural = _PROFILE_RURAL[gname] * (1 - mgrid) + _PROFILE_MOUNT[gname] * mgrid
        share = _PROFILE_URBAN[gname] * urban_frac + rural * (1 - urban_frac)
        share = share * rng.lognormal(0.0, 0.08, pop.shape)
        val = np.round(np.where(valid, pop * share, -1.0), 2)
        val = np.where(valid, np.minimum(val, pop), -1.0)
        groups[gname] = val.astype("float32")
    return groups


def _frames(units_rows: list[dict], vrows: list[dict], roads: list[Road], shift: NDArray) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The units, villages and roads as GeoDataFrames in :data:`METRIC_EPSG` (local coordinates + ``shift``).

    Parameters
    ----------
    units_rows : list of dict
        街道 and 乡镇.
    vrows : list of dict
        The villages.
    roads : list of Road
        The road network.
    shift : numpy.ndarray
        ``(ox, oy)``: the county seat's metric coordinates.

    Returns
    -------
    units, villages, roads : geopandas.GeoDataFrame
        Road vertices rounded to 0.1 m.
    """
    ox, oy = float(shift[0]), float(shift[1])
    units = gpd.GeoDataFrame(
        {
            "code": [r["code"] for r in units_rows],
            "name": [r["name"] for r in units_rows],
            "kind": [r["kind"] for r in units_rows],
            "seat_x": [float(r["seat"][0] + ox) for r in units_rows],
            "seat_y": [float(r["seat"][1] + oy) for r in units_rows],
        },
        geometry=[shapely.affinity.translate(r["geometry"], ox, oy) for r in units_rows],
        crs=f"EPSG:{METRIC_EPSG}",
    )
    villages = gpd.GeoDataFrame(
        {
            "code": [v["code"] for v in vrows],
            "name": [v["name"] for v in vrows],
            "unit_code": [v["unit_code"] for v in vrows],
            "remote": [v["remote"] for v in vrows],
        },
        geometry=[Point(v["xy"] + shift) for v in vrows],
        crs=f"EPSG:{METRIC_EPSG}",
    )
    road_gdf = gpd.GeoDataFrame(
        {
            "highway": [r.highway for r in roads],
            "name": [r.name for r in roads],
            "oneway": [r.oneway for r in roads],
            "maxspeed": [r.maxspeed for r in roads],
        },
        geometry=lines([np.round(r.xy + shift, 1) for r in roads]),
        crs=f"EPSG:{METRIC_EPSG}",
    )
    return units, villages, road_gdf


def _build(seed: int = settings.DEMO_SEED) -> _Build:
    """Build the whole demo county in memory (metric CRS EPSG:4545).

    The steps draw from one random stream in a fixed order (outline, seats, 街道, villages, roads,
    population, age groups, facilities), so one seed always gives the same county.

    Parameters
    ----------
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    _Build
    """
    rng = np.random.default_rng(seed)
    to_m = Transformer.from_crs(4326, METRIC_EPSG, always_xy=True)
    cx, cy = to_m.transform(CENTER_LON, CENTER_LAT)
    ox, oy = float(round(cx / CELL) * CELL), float(round(cy / CELL) * CELL)
    shift = np.array([ox, oy])

    county, chengqu = _outline(rng)
    seats = _town_seats(rng, county)
    unit_rows = _townships(seats, county, chengqu)
    units_rows = _jiedao(rng, chengqu) + sorted(unit_rows, key=lambda r: r["code"])
    vrows = _villages(rng, _village_points(rng, county, chengqu, seats, unit_rows), unit_rows)
    roads = _road_network(rng, county, chengqu, seats, unit_rows, vrows)
    pop, transform, urban_frac, grid = _population(rng, county, chengqu, unit_rows, vrows, roads, ox, oy)
    groups = _age_groups(rng, pop, urban_frac, grid)
    units, villages, road_gdf = _frames(units_rows, vrows, roads, shift)
    sh = lambda g: shapely.affinity.translate(g, ox, oy)  # noqa: E731
    fac, amap, cand, extra = _facilities(rng, road_gdf, units, villages, vrows, sh(county), sh(chengqu), shift)
    return _Build(
        county=sh(county),
        chengqu=sh(chengqu),
        units=units,
        villages=villages,
        roads=road_gdf,
        pop={"total": pop.astype("float32"), **groups},
        transform=transform,
        facilities=fac,
        amap=amap,
        candidates=cand,
        extra=extra,
    )


def _population(rng, county, chengqu, unit_rows, vrows, roads, ox, oy):
    """Persons per 100 m cell (−1 outside the county); also the urban share per cell."""
    from rasterio import features
    from affine import Affine
    from scipy import ndimage

    minx, miny, maxx, maxy = county.bounds
    x0 = math.floor(minx / CELL) * CELL - CELL
    y1 = math.ceil(maxy / CELL) * CELL + CELL
    ncols = int(math.ceil((maxx + CELL - x0) / CELL))
    nrows = int(math.ceil((y1 - (miny - CELL)) / CELL))
    tr_local = Affine(CELL, 0.0, x0, 0.0, -CELL, y1)
    transform = Affine(CELL, 0.0, x0 + ox, 0.0, -CELL, y1 + oy)
    inside = features.rasterize([(county, 1)], out_shape=(nrows, ncols), transform=tr_local, fill=0, dtype="uint8").astype(bool)
    in_cq = features.rasterize([(chengqu, 1)], out_shape=(nrows, ncols), transform=tr_local, fill=0, dtype="uint8").astype(bool)
    in_cq &= inside
    road_mask = features.rasterize(
        [(LineString(r.xy), 1) for r in roads], out_shape=(nrows, ncols), transform=tr_local, fill=0, dtype="uint8", all_touched=True
    ).astype(bool)
    droad = ndimage.distance_transform_edt(~road_mask) * CELL
    cols = np.arange(ncols)
    rows = np.arange(nrows)
    X = x0 + (cols[None, :] + 0.5) * CELL + 0 * rows[:, None]
    Y = y1 - (rows[:, None] + 0.5) * CELL + 0 * cols[None, :]
    noise = rng.lognormal(0.0, 0.3, (nrows, ncols))

    def spread(w: NDArray, total: float) -> NDArray:
        w = np.where(inside, w, 0.0)
        s = w.sum()
        return w * (total / s) if s > 0 else w

    # 城区
    r = np.hypot(X, Y)
    w = (0.35 + np.exp(-((r / 2000.0) ** 2))) * np.where(droad <= 150, 1.0, 0.25) * noise
    urban = spread(np.where(in_cq, w, 0.0), rng.uniform(145000, 158000))
    # market towns
    towns = np.zeros_like(urban)
    for ur in unit_rows:
        s = ur["seat"]
        sig = rng.uniform(330, 480)
        w = np.exp(-0.5 * ((X - s[0]) ** 2 + (Y - s[1]) ** 2) / sig**2) * noise
        w = np.where((droad <= 200) & ~in_cq, w, 0.0)
        towns += spread(w, rng.uniform(4500, 11000) if ur["kind"] == "镇" else rng.uniform(2500, 4500))
    # villages
    vpop = np.zeros_like(urban)
    for v in vrows:
        s = v["xy"]
        sig = rng.uniform(170, 260) if not v["remote"] else rng.uniform(130, 200)
        d2 = (X - s[0]) ** 2 + (Y - s[1]) ** 2
        w = np.exp(-0.5 * d2 / sig**2) * noise
        w = np.where((d2 < (3.5 * sig) ** 2) & ~in_cq, w, 0.0)
        total = rng.uniform(1000, 2400) * (1 - 0.25 * v["m"]) if not v["remote"] else rng.uniform(250, 750)
        v["pop"] = total
        vpop += spread(w, total)
    # rural background along roads (thin in the mountains)
    m = _mountain(X, Y)
    w = np.where((droad <= 300) & ~in_cq, (1 - 0.85 * m) * noise, 0.0)
    w = np.where(droad <= 100, w, w * 0.4)
    back = spread(w, rng.uniform(16000, 22000))
    total = urban + towns + vpop + back
    total = np.round(total, 1)
    urban_frac = np.where(total > 0, (urban + 0.5 * towns) / np.maximum(total, 1e-9), 0.0)
    urban_frac = np.clip(urban_frac, 0.0, 1.0)
    pop = np.where(inside, total, -1.0)
    return pop, transform, urban_frac, (X, Y)


def _snap_near_road(rng, road_tree, road_geoms, xy: NDArray, off: tuple[float, float] = (12.0, 50.0)) -> NDArray:
    """A point ``off`` metres from the road point nearest ``xy`` (so always near a road)."""
    j = int(road_tree.query_nearest(Point(xy))[0])
    g = road_geoms[j]
    p = np.asarray(g.interpolate(g.project(Point(xy))).coords[0])
    a = rng.uniform(0, 2 * np.pi)
    return p + np.array([math.cos(a), math.sin(a)]) * rng.uniform(*off)


@dataclass
class _Placing:
    """What the facility steps share: the random stream, road indexes, the county's inside, the rows made so far."""

    rng: np.random.Generator
    road_geoms: NDArray  # roads other than service ways and tracks
    road_tree: shapely.STRtree
    all_geoms: NDArray  # every road
    all_tree: shapely.STRtree
    inner: Polygon  # the county 60 m in from its border, prepared
    chengqu: Polygon
    cq_c: NDArray  # centroid of the 城区
    rows: list[dict] = field(default_factory=list)  # facilities.csv
    amap_rows: list[dict] = field(default_factory=list)  # elderly_fitness_amap.xlsx
    cand: list[dict] = field(default_factory=list)  # candidates.csv

    def place(self, xy: ArrayLike, spread: float = 0.0, near_any: bool = False) -> NDArray:
        """A site near a road close to ``xy`` (moved by normal noise of ``spread`` m first), inside the county.

        Parameters
        ----------
        xy : array_like
            The intended place.
        spread : float
            Standard deviation of a random move before snapping, metres.
        near_any : bool
            Near any road (villages); otherwise near a road other than service ways and tracks.

        Returns
        -------
        numpy.ndarray
        """
        for _ in range(50):
            p = np.asarray(xy, float) + self.rng.normal(0, spread, 2) if spread else np.asarray(xy, float)
            tree, geoms = (self.all_tree, self.all_geoms) if near_any else (self.road_tree, self.road_geoms)
            q = _snap_near_road(self.rng, tree, geoms, p)
            if self.inner.contains(Point(q)):
                return q
        raise RuntimeError("could not place a facility inside the county")

    def add(
        self, name: str, ftype: str, tier: str, cap: int | None, unit: str, xy: NDArray, csv: bool = True,
        area: int | None = None,
    ) -> None:
        """One facility: a row of ``facilities.csv`` (``csv=True``) or of the Amap-style list."""
        rec = {"name": name, "type": ftype, "tier": tier, "cap": cap, "unit": unit, "x": xy[0], "y": xy[1], "area": area}
        (self.rows if csv else self.amap_rows).append(rec)

    def cadd(self, name: str, ctype: str, nature: str, area: int, inv: int, xy: NDArray) -> None:
        """One candidate site (area m², investment 万元)."""
        self.cand.append({"name": name, "type": ctype, "nature": nature, "area": area, "inv": inv, "x": xy[0], "y": xy[1]})


@dataclass
class _VillagePicks:
    """The villages as rows (``vil_list``) and the choices later steps share.

    ``plain_idx``: the plain villages; ``far_remote``: the remote ones, most mountainous first;
    ``without``: those left without a clinic (村卫生室).
    """

    vil_list: list
    plain_idx: list[int]
    far_remote: list[int]
    without: set[int]


def _in_unit(g: Polygon) -> NDArray:
    """A point surely inside ``g``."""
    return np.asarray(g.representative_point().coords[0])


def _xy(v: Any) -> list[float]:
    """A village row's point as ``[x, y]``."""
    return [v.geometry.x, v.geometry.y]


def _town_clinics(pl: _Placing, jd: gpd.GeoDataFrame, tw: gpd.GeoDataFrame) -> None:
    """County hospitals, 社区卫生服务中心/站 in the 街道 and a 卫生院 in every 乡镇 (three 中心卫生院).

    Parameters
    ----------
    pl : _Placing
        Where the rows go.
    jd, tw : geopandas.GeoDataFrame
        The 街道 and the 乡镇.
    """
    rng, cq_c = pl.rng, pl.cq_c
    pl.add("示例县人民医院", "综合医院", "县级", 420, "床位", pl.place(cq_c, 300))
    pl.add("示例县中医医院", "中医医院", "县级", 180, "床位", pl.place(cq_c + [900, -500], 200))
    for _, u in jd.iterrows():
        c = _in_unit(u.geometry)
        pl.add(f"{u['name'][:-2]}社区卫生服务中心", "社区卫生服务中心", "社区级", int(rng.integers(10, 31)), "床位", pl.place(c, 150))
        for k in range(int(rng.integers(2, 5))):
            p = _in_unit(u.geometry.buffer(-150)) + rng.normal(0, 500, 2)
            if not u.geometry.contains(Point(p)):
                p = _in_unit(u.geometry)
            pl.add(f"{u['name'][:-2]}第{'一二三四'[k]}社区卫生服务站", "社区卫生服务站", "社区级", None, "床位", pl.place(p, 100))
    central_types = set(rng.choice(np.arange(len(tw)), 3, replace=False).tolist())
    for k, (_, u) in enumerate(tw.iterrows()):
        s = np.array([u["seat_x"], u["seat_y"]])
        t = "中心卫生院" if k in central_types else ("卫生院" if k % 2 else "乡镇卫生院")
        pl.add(f"{u['name']}{'中心' if t == '中心卫生院' else ''}卫生院", t, "乡镇级", int(rng.integers(20, 61)), "床位", pl.place(s, 150))


def _village_picks(rng: np.random.Generator, villages: gpd.GeoDataFrame, vrows: list[dict]) -> _VillagePicks:
    """Choose the 15 % of villages without a clinic: two thirds the most mountainous, the rest plain at random.

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    villages : geopandas.GeoDataFrame
        The villages.
    vrows : list of dict
        Their internal records (mountain score).

    Returns
    -------
    _VillagePicks
    """
    vil_list = list(villages.itertuples())
    remote_idx = [i for i, v in enumerate(vil_list) if v.remote]
    plain_idx = [i for i, v in enumerate(vil_list) if not v.remote]
    n_without = int(round(0.15 * len(vil_list)))
    far_remote = sorted(remote_idx, key=lambda i: -_vrows_by_code(vrows, vil_list[i].code)["m"])
    without = set(far_remote[: min(len(far_remote), n_without * 2 // 3)])
    rest = [i for i in plain_idx if i not in without]
    without |= set(rng.choice(rest, n_without - len(without), replace=False).tolist())
    return _VillagePicks(vil_list=vil_list, plain_idx=plain_idx, far_remote=far_remote, without=without)


def _village_clinics(pl: _Placing, picks: _VillagePicks) -> None:
    """A 村卫生室 in every village but ``picks.without`` (60 % without beds), and one 药店 in the 城区."""
    rng = pl.rng
    for i, v in enumerate(picks.vil_list):
        if i in picks.without:
            continue
        c = np.array([v.geometry.x, v.geometry.y])
        cap = None if rng.random() < 0.6 else int(rng.integers(1, 3))
        pl.add(f"{v.name}卫生室", "村卫生室", "村级", cap, "床位", pl.place(c, 60, near_any=True))
    pl.add("百姓大药房城关店", "药店", "", None, "", pl.place(pl.cq_c + [300, 300], 200))


def _city_schools(pl: _Placing) -> None:
    """The 城区's kindergartens, primary and middle schools, the 实验学校 and five 托育 centres."""
    rng, cq_c, chengqu = pl.rng, pl.cq_c, pl.chengqu
    for k in range(14):
        p = cq_c + rng.normal(0, 1300, 2)
        if not chengqu.buffer(-100).contains(Point(p)):
            p = cq_c + rng.normal(0, 600, 2)
        nm = f"示例县第{k + 1}幼儿园" if k < 6 else f"{['阳光', '金苗', '育才', '蓝天', '小太阳', '启明', '童心', '博雅'][k - 6]}幼儿园"
        pl.add(nm, "幼儿园", "社区级", int(rng.integers(4, 13)) * 45, "学位", pl.place(p, 80))
    for k in range(8):
        p = cq_c + rng.normal(0, 1300, 2)
        if not chengqu.buffer(-100).contains(Point(p)):
            p = cq_c + rng.normal(0, 600, 2)
        pl.add(f"示例县第{'一二三四五六七八'[k]}小学", "小学", "县级", int(rng.integers(12, 37)) * 45, "学位", pl.place(p, 80))
    for k in range(3):
        p = cq_c + rng.normal(0, 1200, 2)
        if not chengqu.buffer(-100).contains(Point(p)):
            p = cq_c
        pl.add(f"示例县第{'一二三'[k]}中学", "初中", "县级", int(rng.integers(24, 49)) * 50, "学位", pl.place(p, 100))
    pl.add("示例县实验学校", "九年一贯制学校", "县级", 1800, "学位", pl.place(cq_c + [-1200, -900], 150))
    for k in range(5):
        p = cq_c + rng.normal(0, 1300, 2)
        pl.add(f"{['爱贝', '优优', '小星星', '童趣', '贝乐'][k]}托育中心", "托育机构", "社区级", int(rng.integers(3, 9)) * 10, "托位", pl.place(p, 100))


def _rural_schools(pl: _Placing, tw: gpd.GeoDataFrame, picks: _VillagePicks, vrows: list[dict]) -> None:
    """Schools of the 乡镇 (three 九年制), kindergartens and primary schools of the big plain villages, 教学点 in the mountains.

    Parameters
    ----------
    pl : _Placing
        Where the rows go.
    tw : geopandas.GeoDataFrame
        The 乡镇.
    picks : _VillagePicks
        The villages.
    vrows : list of dict
        Their internal records (population).
    """
    rng, vil_list = pl.rng, picks.vil_list
    nine_units = set(rng.choice(np.arange(len(tw)), 3, replace=False).tolist())
    for k, (_, u) in enumerate(tw.iterrows()):
        s = np.array([u["seat_x"], u["seat_y"]])
        stem = u["name"]
        pl.add(f"{stem}中心幼儿园", "幼儿园", "乡镇级", int(rng.integers(3, 9)) * 30, "学位", pl.place(s, 250))
        pl.add(f"{stem}中心小学", "小学", "乡镇级", int(rng.integers(6, 19)) * 45, "学位", pl.place(s, 250))
        if k in nine_units:
            pl.add(f"{stem}九年制学校", "九年一贯制学校", "乡镇级", int(rng.integers(6, 16)) * 50, "学位", pl.place(s, 300))
        else:
            pl.add(f"{stem}初级中学", "初中", "乡镇级", int(rng.integers(6, 19)) * 50, "学位", pl.place(s, 300))
        if k < 2:
            pl.add(f"{stem}托育园", "托育机构", "乡镇级", int(rng.integers(2, 5)) * 10, "托位", pl.place(s, 250))
    big_plain = sorted(picks.plain_idx, key=lambda i: -_vrows_by_code(vrows, vil_list[i].code).get("pop", 0))
    for i in big_plain[:16]:
        v = vil_list[i]
        pl.add(f"{v.name[:-1]}幼儿园", "幼儿园", "村级", int(rng.integers(2, 5)) * 30, "学位", pl.place(_xy(v), 80, near_any=True))
    for i in big_plain[3:24]:
        v = vil_list[i]
        pl.add(f"{v.name[:-1]}小学", "小学", "村级", int(rng.integers(3, 9)) * 30, "学位", pl.place(_xy(v), 80, near_any=True))
    for i in picks.far_remote[:6]:
        v = vil_list[i]
        pl.add(f"{v.name[:-1]}教学点", "教学点", "村级", int(rng.integers(8, 41)), "学位", pl.place(_xy(v), 60, near_any=True))


def _elderly(pl: _Placing, jd: gpd.GeoDataFrame, tw_list: list, picks: _VillagePicks, shift: NDArray) -> set[int]:
    """Elderly-care facilities (the Amap list).

    County centres, township centres or 敬老院, 街道 day care, 长者之家, meal points, village
    互助幸福院, and two places that are not care facilities but share the words (殡仪馆, 便利店).

    Parameters
    ----------
    pl : _Placing
        Where the rows go.
    jd : geopandas.GeoDataFrame
        The 街道.
    tw_list : list
        The 乡镇 as rows.
    picks : _VillagePicks
        The villages.
    shift : numpy.ndarray
        The county seat's metric coordinates (for the mountain score).

    Returns
    -------
    set of int
        Positions in ``tw_list`` of the three most mountainous 乡镇, left with no elderly facility.
    """
    rng, cq_c, vil_list = pl.rng, pl.cq_c, picks.vil_list
    pl.add("示例县养老服务中心", "县级养老服务中心", "县级", 220, "床位", pl.place(cq_c + [500, 800], 200), csv=False)
    pl.add("示例县失能半失能特困人员供养服务中心", "失能照护机构", "县级", 120, "床位", pl.place(cq_c + [-600, -700], 200), csv=False)
    mscore = _mountain(np.array([u.seat_x for u in tw_list]) - shift[0], np.array([u.seat_y for u in tw_list]) - shift[1])
    no_elderly = set(np.argsort(-mscore, kind="stable")[:3].tolist())
    others = [k for k in range(len(tw_list)) if k not in no_elderly]
    regional = set(others[:: 1][: (len(tw_list) + 1) // 2])
    for k, u in enumerate(tw_list):
        if k in no_elderly:
            continue
        s = np.array([u.seat_x, u.seat_y])
        if k in regional:
            t = "区域养老服务中心" if k % 2 else "乡镇区域性养老服务中心"
            pl.add(f"{u.name}区域养老服务中心", t, "乡镇级", int(rng.integers(30, 81)), "床位", pl.place(s, 300), csv=False)
        else:
            pl.add(f"{u.name}敬老院", "敬老院", "乡镇级", int(rng.integers(20, 51)), "床位", pl.place(s, 400), csv=False)
    for _, u in jd.iterrows():
        for k in range(int(rng.integers(2, 4))):
            p = _in_unit(u.geometry) + rng.normal(0, 450, 2)
            t = "日间照料中心" if k % 2 == 0 else "老年人日间照料中心"
            pl.add(f"{u['name'][:-2]}第{'一二三'[k]}社区日间照料中心", t, "社区级", int(rng.integers(10, 31)), "床位", pl.place(p, 100), csv=False)
    for k in range(3):
        pl.add(f"{['幸福', '康乐', '夕阳红'][k]}长者之家", "长者之家", "社区级", int(rng.integers(8, 21)), "床位", pl.place(cq_c + rng.normal(0, 1100, 2), 100), csv=False)
    for k in range(6):
        pl.add(f"老年助餐点{k + 1}号", "助餐点" if k % 2 else "老年助餐点", "社区级", None, "", pl.place(cq_c + rng.normal(0, 1200, 2), 100), csv=False)
    ok_units = {tw_list[k].code for k in range(len(tw_list)) if k not in no_elderly}
    ok_vil = [i for i in picks.plain_idx if vil_list[i].unit_code in ok_units]
    pick = rng.choice(ok_vil, min(11, len(ok_vil)), replace=False).tolist()
    for n_, i in enumerate(pick):
        v = vil_list[i]
        t = "农村互助幸福院" if n_ < 8 else "日间照料中心"
        nm = f"{v.name[:-1]}互助幸福院" if n_ < 8 else f"{v.name[:-1]}日间照料中心"
        pl.add(nm, t, "村级", int(rng.integers(5, 16)), "床位", pl.place(_xy(v), 80, near_any=True), csv=False)
    pl.add("示例县殡仪馆", "殡仪馆", "", None, "", pl.place(cq_c + [2600, -1800], 300), csv=False)
    pl.add("老年用品便利店", "便利店", "", None, "", pl.place(cq_c + [200, -300], 200), csv=False)
    return no_elderly


def _fitness(pl: _Placing, tw_list: list, picks: _VillagePicks) -> None:
    """Fitness facilities (the Amap list, with areas in m²).

    County venues, 城区 paths and courts, courts in every other 乡镇 and 健身路径 in about 62 % of
    the villages that have a clinic.
    """
    rng, cq_c, vil_list = pl.rng, pl.cq_c, picks.vil_list
    pl.add("示例县全民健身中心", "全民健身中心", "县级", None, "", pl.place(cq_c + [700, 200], 150), csv=False, area=6800)
    pl.add("滨河体育公园", "体育公园", "县级", None, "", pl.place(cq_c + [-1500, 300], 200), csv=False, area=32000)
    pl.add("城北体育公园", "体育公园", "县级", None, "", pl.place(cq_c + [200, 1900], 200), csv=False, area=18000)
    pl.add("滨河健身步道", "健身步道", "县级", None, "", pl.place(cq_c + [-1800, -200], 200), csv=False, area=4200)
    for k in range(14):
        p = cq_c + rng.normal(0, 1300, 2)
        pl.add(f"城区健身路径{k + 1}号", "健身路径", "社区级", None, "", pl.place(p, 80), csv=False, area=int(rng.integers(150, 400)))
    for k in range(7):
        p = cq_c + rng.normal(0, 1300, 2)
        t = "笼式多功能运动场" if k % 2 == 0 else "多功能运动场"
        pl.add(f"社区{t}{k + 1}号", t, "社区级", None, "", pl.place(p, 80), csv=False, area=int(rng.integers(6, 13)) * 100)
    for k, u in enumerate(tw_list):
        if k % 2 == 0:
            s = np.array([u.seat_x, u.seat_y])
            pl.add(f"{u.name}笼式多功能运动场", "笼式多功能运动场", "乡镇级", None, "", pl.place(s, 250), csv=False, area=800)
    fit_vil = [i for i in range(len(vil_list)) if (i not in picks.without) and rng.random() < 0.62]
    for i in fit_vil:
        v = vil_list[i]
        pl.add(f"{v.name}健身路径", "健身路径", "村级", None, "", pl.place(_xy(v), 70, near_any=True), csv=False, area=int(rng.integers(120, 301)))


def _candidates(pl: _Placing, tw_list: list, picks: _VillagePicks, county: Polygon) -> None:
    """Candidate sites.

    Idle village schools, village committees, planned plots in the 城区 and six 乡镇, and five new
    service points far from every village.

    Parameters
    ----------
    pl : _Placing
        Where the rows go.
    tw_list : list
        The 乡镇 as rows.
    picks : _VillagePicks
        The villages.
    county : shapely.Polygon
        The county (metric CRS), whose bounds the far points are drawn in.
    """
    rng, cq_c, chengqu, vil_list = pl.rng, pl.cq_c, pl.chengqu, picks.vil_list
    idle = rng.choice(np.arange(len(vil_list)), 14, replace=False).tolist()
    for i in idle:
        v = vil_list[i]
        pl.cadd(f"{v.name[:-1]}原小学闲置校舍", "闲置校舍", "转型", int(rng.integers(8, 31)) * 100, int(rng.integers(5, 31)) * 10, pl.place(_xy(v), 120, near_any=True))
    rest_v = [i for i in range(len(vil_list)) if i not in idle]
    comm = rng.choice(rest_v, 26, replace=False).tolist()
    for i in comm:
        v = vil_list[i]
        pl.cadd(f"{v.name}村委会", "村委会", "改扩建", int(rng.integers(2, 7)) * 100, int(rng.integers(3, 16)) * 10, pl.place(_xy(v), 40, near_any=True))
    for k in range(10):
        a = 2 * np.pi * k / 10 + rng.uniform(-0.2, 0.2)
        p = cq_c + np.array([math.cos(a), math.sin(a)]) * rng.uniform(1500, 2600)
        if not chengqu.contains(Point(p)):
            p = cq_c + (p - cq_c) * 0.6
        pl.cadd(f"城区规划公共服务用地{chr(65 + k)}", "规划用地", "新建", int(rng.integers(20, 101)) * 100, int(rng.integers(30, 121)) * 10, pl.place(p, 100))
    for u in tw_list[:6]:
        s = np.array([u.seat_x, u.seat_y])
        pl.cadd(f"{u.name}规划公共服务用地", "规划用地", "新建", int(rng.integers(15, 61)) * 100, int(rng.integers(20, 81)) * 10, pl.place(s, 400))
    # gaps: points far from every village and town
    vxy = np.array([[v.geometry.x, v.geometry.y] for v in vil_list])
    minx, miny, maxx, maxy = county.bounds
    n_gap = 0
    cq2000 = chengqu.buffer(2000)
    shapely.prepare(cq2000)
    for _ in range(4000):
        if n_gap >= 5:
            break
        p = np.array([rng.uniform(minx, maxx), rng.uniform(miny, maxy)])
        if not pl.inner.contains(Point(p)) or cq2000.contains(Point(p)):
            continue
        if np.min(np.hypot(*(vxy - p).T)) < 1800:
            continue
        n_gap += 1
        pl.cadd(f"规划新建服务点{n_gap}号", "规划用地", "新建", int(rng.integers(10, 41)) * 100, int(rng.integers(20, 61)) * 10, pl.place(p, 0))


def _facilities(
    rng: np.random.Generator, road_gdf: gpd.GeoDataFrame, units: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
    vrows: list[dict], county: Polygon, chengqu: Polygon, shift: NDArray,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Facilities of the four services, the Amap-style elderly/fitness list and candidate sites.

    Every site is snapped near a road inside the county; the steps draw from the random stream in
    a fixed order (clinics, schools, elderly, fitness, candidates).

    Parameters
    ----------
    rng : numpy.random.Generator
        The generator's random stream.
    road_gdf, units, villages : geopandas.GeoDataFrame
        Roads, 街道/乡镇 and villages (metric CRS).
    vrows : list of dict
        The villages' internal records (mountain score, population).
    county, chengqu : shapely.Polygon
        Outline and 城区 (metric CRS).
    shift : numpy.ndarray
        The county seat's metric coordinates.

    Returns
    -------
    facilities, amap, candidates : pandas.DataFrame
        Rows of ``facilities.csv``, of the Amap list and of ``candidates.csv`` (metric x, y).
    extra : dict
        ``no_elderly_units`` and ``no_clinic_villages`` (names), for the docs and tests.
    """
    major = road_gdf[~road_gdf["highway"].isin(["service", "track"])]
    road_geoms = np.asarray(major.geometry.values)
    all_geoms = np.asarray(road_gdf.geometry.values)
    inner = county.buffer(-60)
    shapely.prepare(inner)
    pl = _Placing(rng=rng, road_geoms=road_geoms, road_tree=shapely.STRtree(road_geoms), all_geoms=all_geoms,
                  all_tree=shapely.STRtree(all_geoms), inner=inner, chengqu=chengqu,
                  cq_c=np.asarray(chengqu.centroid.coords[0]))
    jd = units[units["kind"] == "街道"]
    tw = units[units["kind"] != "街道"]
    _town_clinics(pl, jd, tw)
    picks = _village_picks(rng, villages, vrows)
    _village_clinics(pl, picks)
    _city_schools(pl)
    _rural_schools(pl, tw, picks, vrows)
    tw_list = list(tw.itertuples())
    no_elderly = _elderly(pl, jd, tw_list, picks, shift)
    _fitness(pl, tw_list, picks)
    _candidates(pl, tw_list, picks, county)
    extra = {"no_elderly_units": [tw_list[k].name for k in sorted(no_elderly)],
             "no_clinic_villages": sorted(picks.vil_list[i].name for i in picks.without)}
    return pd.DataFrame(pl.rows), pd.DataFrame(pl.amap_rows), pd.DataFrame(pl.cand), extra


def _vrows_by_code(vrows: list[dict], code: str) -> dict:
    """The internal village record with this code."""
    for v in vrows:
        if v["code"] == code:
            return v
    raise KeyError(code)


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------


def _to_lonlat(x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
    tr = Transformer.from_crs(METRIC_EPSG, 4326, always_xy=True)
    lon, lat = tr.transform(np.asarray(x, float), np.asarray(y, float))
    return np.asarray(lon), np.asarray(lat)


def _unit_of(units: gpd.GeoDataFrame, x: NDArray, y: NDArray) -> list[str]:
    pts = gpd.GeoDataFrame(geometry=shapely.points(np.column_stack([x, y])), crs=units.crs)
    j = gpd.sjoin(pts, units[["name", "geometry"]], how="left", predicate="within")
    j = j[~j.index.duplicated(keep="first")]
    return j["name"].fillna("").tolist()


def write_gpkg(gdf: gpd.GeoDataFrame, path: Path, layer: str, description: str, spatial_index: bool = True) -> None:
    """Write one GPKG layer with a description, byte-identical between runs (fixed change date)."""
    import pyogrio

    # a fixed gpkg_contents.last_change keeps the file byte-identical between runs
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2026-01-01T00:00:00.000Z"})
    gdf.to_file(
        path,
        layer=layer,
        driver="GPKG",
        engine="pyogrio",
        layer_options={"DESCRIPTION": description, "SPATIAL_INDEX": "YES" if spatial_index else "NO"},
    )


def write_tif(path: Path, arr: NDArray, transform: object, description: str) -> None:
    """Write a float32 persons-per-cell GeoTIFF in :data:`METRIC_EPSG`, tagged as synthetic."""
    import rasterio

    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "height": arr.shape[0],
        "width": arr.shape[1],
        "crs": f"EPSG:{METRIC_EPSG}",
        "transform": transform,
        "nodata": -1.0,
        "compress": "deflate",
        "predictor": 3,
        "zlevel": 9,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr.astype("float32"), 1)
        dst.update_tags(SOURCE=SYNTHETIC_NOTE, UNITS="persons per 100 m cell / 每100米格网人口")
        dst.set_band_description(1, description)


def generate(out_dir: Path, seed: int = settings.DEMO_SEED) -> dict[str, Path]:
    """Generate the synthetic demo county 示例县 into ``out_dir``.

    Parameters
    ----------
    out_dir : pathlib.Path
        Folder to write into; ``boundaries/``, ``facilities/``, ``population/`` and ``roads/`` are
        created inside it and existing files of the same names are replaced.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed always gives the same data.

    Returns
    -------
    dict of str to pathlib.Path
        File key (``county``, ``townships``, ``villages``, ``facilities``, ``elderly_fitness``,
        ``candidates``, ``pop``, ``pop_<group>``, ``roads``) → path written.
    """
    out_dir = Path(out_dir)
    b = _build(seed)
    paths: dict[str, Path] = {}
    for sub in ("boundaries", "facilities", "population", "roads"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)

    # boundaries
    p = out_dir / "boundaries" / "county.gpkg"
    p.unlink(missing_ok=True)
    county = gpd.GeoDataFrame({"code": [COUNTY_CODE], "name": [COUNTY_NAME]}, geometry=[b.county], crs=f"EPSG:{METRIC_EPSG}")
    write_gpkg(county.to_crs(4490), p, "county", f"示例县县界 county outline — {SYNTHETIC_NOTE}")
    cq = gpd.GeoDataFrame({"code": [COUNTY_CODE], "name": ["示例县城区"]}, geometry=[b.chengqu], crs=f"EPSG:{METRIC_EPSG}")
    write_gpkg(cq.to_crs(4490), p, "chengqu", f"城区 urban core — {SYNTHETIC_NOTE}")
    paths["county"] = p

    p = out_dir / "boundaries" / "townships.gpkg"
    p.unlink(missing_ok=True)
    slon, slat = _to_lonlat(b.units["seat_x"].to_numpy(), b.units["seat_y"].to_numpy())
    tws = b.units.drop(columns=["seat_x", "seat_y"]).assign(seat_lon=np.round(slon, 6), seat_lat=np.round(slat, 6))
    tws = tws[["code", "name", "kind", "seat_lon", "seat_lat", "geometry"]].to_crs(4490)
    write_gpkg(tws, p, "townships", f"乡镇/街道 townships and subdistricts — {SYNTHETIC_NOTE}")
    paths["townships"] = p

    p = out_dir / "boundaries" / "villages.gpkg"
    p.unlink(missing_ok=True)
    write_gpkg(b.villages.to_crs(4490), p, "villages", f"行政村 villages (points) — {SYNTHETIC_NOTE}")
    paths["villages"] = p

    # facilities.csv (WGS-84)
    f = b.facilities
    lon, lat = _to_lonlat(f["x"].to_numpy(), f["y"].to_numpy())
    prefix = {"幼儿园": "JY", "小学": "JY", "初中": "JY", "九年一贯制学校": "JY", "教学点": "JY", "托育机构": "TY"}
    counters: dict[str, int] = {}
    ids = []
    for t in f["type"]:
        pre = prefix.get(t, "WS")
        counters[pre] = counters.get(pre, 0) + 1
        ids.append(f"{pre}{counters[pre]:03d}")
    fac = pd.DataFrame(
        {
            "编号": ids,
            "名称": f["name"],
            "类型": f["type"],
            "级别": f["tier"],
            "规模": [("" if c is None or (isinstance(c, float) and np.isnan(c)) else int(c)) for c in f["cap"]],
            "规模单位": f["unit"],
            "乡镇": _unit_of(b.units, f["x"].to_numpy(), f["y"].to_numpy()),
            "经度": np.round(lon, 6),
            "纬度": np.round(lat, 6),
            "来源": "合成示例数据（synthetic demo data）",
        }
    )
    p = out_dir / "facilities" / "facilities.csv"
    fac.to_csv(p, index=False, encoding="utf-8-sig", lineterminator="\n")
    paths["facilities"] = p

    # elderly_fitness_amap.xlsx (GCJ-02)
    a = b.amap
    lon, lat = _to_lonlat(a["x"].to_numpy(), a["y"].to_numpy())
    glon, glat = wgs84_to_gcj02(lon, lat)
    units_a = _unit_of(b.units, a["x"].to_numpy(), a["y"].to_numpy())
    amap = pd.DataFrame(
        {
            "序号": np.arange(1, len(a) + 1),
            "名称": a["name"],
            "类型": a["type"],
            "地址": [f"甘肃省示例县{u}" for u in units_a],
            "经度": np.round(glon, 6),
            "纬度": np.round(glat, 6),
            "床位": [(None if (c is None or (isinstance(c, float) and np.isnan(c)) or u_ != "床位") else int(c)) for c, u_ in zip(a["cap"], a["unit"])],
            "面积(㎡)": [(None if (v is None or (isinstance(v, float) and np.isnan(v))) else int(v)) for v in a["area"]],
        }
    )
    p = out_dir / "facilities" / "elderly_fitness_amap.xlsx"
    write_xlsx(amap, p)
    paths["elderly_fitness"] = p

    # candidates.csv
    c = b.candidates
    lon, lat = _to_lonlat(c["x"].to_numpy(), c["y"].to_numpy())
    cand = pd.DataFrame(
        {
            "编号": [f"HX{k + 1:03d}" for k in range(len(c))],
            "名称": c["name"],
            "类型": c["type"],
            "建设性质": c["nature"],
            "可用面积": c["area"],
            "估算投资(万元)": c["inv"],
            "乡镇": _unit_of(b.units, c["x"].to_numpy(), c["y"].to_numpy()),
            "经度": np.round(lon, 6),
            "纬度": np.round(lat, 6),
            "来源": "合成示例数据（synthetic demo data）",
        }
    )
    p = out_dir / "facilities" / "candidates.csv"
    cand.to_csv(p, index=False, encoding="utf-8-sig", lineterminator="\n")
    paths["candidates"] = p

    # population
    p = out_dir / "population" / "pop_100m.tif"
    write_tif(p, b.pop["total"], b.transform, "常住人口 residents per 100 m cell")
    paths["pop"] = p
    for g, label in settings.AGE_GROUPS.items():
        p = out_dir / "population" / f"pop_{g}_100m.tif"
        write_tif(p, b.pop[g], b.transform, f"{label} residents per 100 m cell")
        paths[f"pop_{g}"] = p

    # roads
    p = out_dir / "roads" / "roads.gpkg"
    p.unlink(missing_ok=True)
    write_gpkg(b.roads, p, "roads", f"道路 road network (OSM highway classes) — {SYNTHETIC_NOTE}", spatial_index=False)
    paths["roads"] = p
    return paths


def write_xlsx(df: pd.DataFrame, path: Path) -> None:
    """Write a table as an Amap-style export workbook (GCJ-02 note sheet), byte-identical between runs."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "高德POI导出"
    ws.append(list(df.columns))
    for row in df.itertuples(index=False):
        ws.append([None if (isinstance(v, float) and np.isnan(v)) else (v.item() if hasattr(v, "item") else v) for v in row])
    info = wb.create_sheet("说明")
    info.append(["说明", SYNTHETIC_NOTE])
    info.append(["坐标系", "GCJ-02（高德）"])
    fixed = _dt.datetime(2026, 1, 1)
    wb.properties.creator = "coverage.demo"
    wb.properties.title = "示例县养老与健身设施（高德导出） / elderly and fitness facilities"
    wb.properties.description = SYNTHETIC_NOTE
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.save(path)
    # rewrite the zip with fixed member dates so that the same seed gives the same bytes
    with zipfile.ZipFile(path) as zin:
        members = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for name, data in members:
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2026-01-01T00:00:00Z", data)
            zout.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data, compress_type=zipfile.ZIP_DEFLATED)


def demo_data_dir(seed: int = settings.DEMO_SEED) -> Path:
    """Folder holding the demo county's files, generating them into a cache if none are shipped.

    Looks in this order: ``coverage/_demo/data`` inside the installed package (wheels include the
    repository's ``data/`` there), the repository's ``data/`` folder (when it holds
    ``roads/roads.gpkg``), and ``~/.cache/covplan/demo-<seed>`` (generated on first use;
    ``$XDG_CACHE_HOME`` replaces ``~/.cache`` when set). The shipped data are used only for the
    default seed :data:`coverage.settings.DEMO_SEED`.

    Parameters
    ----------
    seed : int
        Seed used if the data must be generated into the cache.

    Returns
    -------
    pathlib.Path
    """
    import coverage

    if seed == settings.DEMO_SEED:
        pkg = Path(coverage.__file__).parent / "_demo" / "data"
        if (pkg / "roads" / "roads.gpkg").is_file():
            return pkg
        repo = Path(__file__).resolve().parents[2] / "data"
        if (repo / "roads" / "roads.gpkg").is_file():
            return repo
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covplan" / f"demo-{seed}"
    if not (base / "roads" / "roads.gpkg").is_file():
        generate(base, seed=seed)
    return base


def _main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m coverage.demo OUT_DIR [SEED]\n生成合成示例县数据 / write the synthetic demo county")
        return 0 if argv else 2
    seed = int(argv[1]) if len(argv) > 1 else settings.DEMO_SEED
    paths = generate(Path(argv[0]), seed=seed)
    for k, p in paths.items():
        print(f"{k}: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
