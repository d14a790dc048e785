"""The fixed analysis grid: coarse rasters spread along the roads, finer ones summed (issue 10).

References are plain loops and shapely clips on small cases; properties are checked with
hypothesis; the demo's 100 m rasters summed to 1 km and spread back are run through the pipeline.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import yaml
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, box

from coverage.io.population import (
    PopulationGrid,
    line_segments,
    read_population,
    road_length_grid,
    source_resolution_m,
    spread_along_roads,
    spread_weighted,
)

_METRIC = "EPSG:4547"
_OX, _OY = 500_000.0, 2_500_000.0


def _overlap(a, b) -> float:
    """Area of the overlap of two rectangles (xmin, ymin, xmax, ymax), plain arithmetic."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _coarse(pop: np.ndarray, size: float = 1000.0, origin=(_OX, _OY)) -> PopulationGrid:
    return PopulationGrid(
        total=pop.astype("float64"), groups={"age60plus": pop * 0.2}, crs=_METRIC,
        transform=Affine(size, 0, origin[0], 0, -size, origin[1]),
    )


# ------------------------------------------------------------------------------------------------
# road length per cell
# ------------------------------------------------------------------------------------------------


def test_road_length_grid_against_shapely_clips():
    rng = np.random.default_rng(7)
    tr, shape = Affine(100.0, 0, 0.0, 0, -100.0, 1000.0), (10, 10)
    pts = rng.uniform(5, 995, size=(40, 4))
    lines = [LineString([(a, b), (c, d)]) for a, b, c, d in pts]
    ref = np.zeros(shape)
    crossings = np.zeros(shape)
    for r in range(shape[0]):
        for c in range(shape[1]):
            cell = box(c * 100, 1000 - (r + 1) * 100, (c + 1) * 100, 1000 - r * 100)
            for ln in lines:
                piece = ln.intersection(cell)
                ref[r, c] += piece.length
                crossings[r, c] += 2 if piece.length > 0 else 0
    seg = line_segments(np.array(lines, dtype=object))
    step = 12.5
    got = road_length_grid(*seg, tr, shape, step=step)
    assert got.sum() == pytest.approx(sum(ln.length for ln in lines), rel=1e-12)
    # each time a road crosses a cell edge, at most one piece (≤ step) lands on the wrong side
    assert (np.abs(got - ref) <= step * crossings + 1e-9).all()
    fine = road_length_grid(*seg, tr, shape, step=0.05)
    np.testing.assert_allclose(fine, ref, atol=0.05 * crossings.max() + 1e-9)


def test_line_segments_multilines_and_other_types():
    ml = shapely.MultiLineString([[(0, 0), (1, 0), (1, 2)], [(5, 5), (6, 5)]])
    x0, y0, x1, y1 = line_segments([ml, shapely.Point(3, 3), None, LineString([(0, 0), (0, 3)])])
    assert len(x0) == 4
    assert np.hypot(x1 - x0, y1 - y0).sum() == pytest.approx(1 + 2 + 1 + 3)


# ------------------------------------------------------------------------------------------------
# spread_weighted against plain loops
# ------------------------------------------------------------------------------------------------


def _reference_weighted(pop, origin, size, fx0, fy1, res, w):
    """Fine cell f of coarse cell c gets pop_c × A(c∩f)·w_f / Σ_f' A(c∩f')·w_f' (uniform by area if Σ = 0)."""
    out = np.zeros(w.shape)
    for r in range(pop.shape[0]):
        for c in range(pop.shape[1]):
            if pop[r, c] == 0:
                continue
            cb = (origin[0] + c * size, origin[1] - (r + 1) * size, origin[0] + (c + 1) * size, origin[1] - r * size)
            a = np.zeros(w.shape)
            for i in range(w.shape[0]):
                for j in range(w.shape[1]):
                    a[i, j] = _overlap(cb, (fx0 + j * res, fy1 - (i + 1) * res, fx0 + (j + 1) * res, fy1 - i * res))
            aw = a * w
            out += pop[r, c] * (aw / aw.sum() if aw.sum() > 0 else a / a.sum())
    return out


def test_spread_weighted_matches_loops_on_misaligned_grids():
    rng = np.random.default_rng(3)
    pop = np.array([[120.0, 0.0, 35.0], [80.0, 400.0, 10.0]])
    origin = (_OX + 130.0, _OY - 70.0)  # coarse edges fall inside fine cells
    grid = _coarse(pop, origin=origin)
    seen = {}

    def weight(tr, shape):
        w = rng.uniform(0, 1, shape) * (rng.uniform(0, 1, shape) < 0.3)
        w[:, :4] = 0.0  # the whole first coarse column gets no weight: uniform there
        seen.update(tr=tr, w=w)
        return w

    out = spread_weighted(grid, weight, _METRIC, resolution=300.0)
    tr = seen["tr"]
    assert tr.a == 300.0 and tr.c % 300 == 0 and tr.f % 300 == 0
    ref = _reference_weighted(pop, origin, 1000.0, tr.c, tr.f, 300.0, seen["w"])
    np.testing.assert_allclose(out.total, ref, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(out.groups["age60plus"], ref * 0.2, rtol=1e-10, atol=1e-9)
    assert out.details["uniform_cells"] == 2  # (0,0) and (1,0)
    assert out.total.sum() == pytest.approx(pop.sum(), rel=1e-12)


def test_spread_along_roads_puts_people_on_roads_and_skips_motorways():
    pop = np.array([[1000.0, 600.0]])
    grid = _coarse(pop)
    roads = gpd.GeoDataFrame(
        {"highway": ["residential", "motorway", "track"]},
        geometry=[
            LineString([(_OX + 100, _OY - 150), (_OX + 500, _OY - 150)]),  # 400 m in fine row 1, cols 1–4
            LineString([(_OX + 1050, _OY - 550), (_OX + 1950, _OY - 550)]),  # motorway: ignored
            LineString([(_OX + 150, _OY - 850), (_OX + 150, _OY - 750)]),  # 50 m in fine (7, 1), 50 m in (8, 1)
        ],
        crs=_METRIC,
    )
    out = spread_along_roads(grid, roads, resolution=100.0)
    assert out.method == "roads"
    blocks = out.total.reshape(1, 10, 2, 10).sum(axis=(1, 3))  # fine cols 0–9 | 10–19
    np.testing.assert_allclose(blocks.ravel(), pop.ravel(), rtol=1e-12)
    # coarse (0,0): 500 m of road, 400 of them along fine row 1 (100 m per cell), 100 m across rows 7/8
    np.testing.assert_allclose(out.total[1, 1:5], 200.0)
    np.testing.assert_allclose(out.total[7:9, 1], 100.0)
    assert out.total[:, :10].sum() == pytest.approx(1000.0)
    # coarse (0,1) has only a motorway: uniform, 6 people per fine cell
    np.testing.assert_allclose(out.total[:, 10:], 6.0)
    assert out.details["uniform_cells"] == 1


# ------------------------------------------------------------------------------------------------
# properties (hypothesis)
# ------------------------------------------------------------------------------------------------


#: Origin of the property tests' coarse grids: a multiple of every fine cell size drawn (100–300 m),
#: so that the fine grid (whose edges are multiples of its cell size) nests in the coarse one.
_PX, _PY = 499_800.0, 2_499_600.0


def _blocks(fine: np.ndarray, tr: Affine, shape: tuple[int, int], size: float, res: float) -> np.ndarray:
    """Sum a fine grid (which nests in the coarse grid at ``(_PX, _PY)``) back onto the coarse cells."""
    nr, nc = shape
    k = int(round(size / res))
    full = np.zeros((nr * k, nc * k))
    if fine.sum() == 0:
        return full.reshape(nr, k, nc, k).sum(axis=(1, 3))
    r0, c0 = int(round((_PY - tr.f) / res)), int(round((tr.c - _PX) / res))
    assert math.isclose((_PY - tr.f) / res, r0) and math.isclose((tr.c - _PX) / res, c0)
    full[r0:r0 + fine.shape[0], c0:c0 + fine.shape[1]] = fine
    return full.reshape(nr, k, nc, k).sum(axis=(1, 3))


@st.composite
def _cases(draw):
    nr, nc = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    k = draw(st.sampled_from([2, 3, 4, 5]))  # fine cells per coarse side
    size = 100.0 * k * draw(st.integers(1, 3))
    res = size / k
    values = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.01, 1e5)), min_size=nr * nc, max_size=nr * nc))
    pop = np.array(values).reshape(nr, nc)
    seed = draw(st.integers(0, 2**31 - 1))
    sparse = draw(st.floats(0.0, 1.0))
    # an area: a random rectangle holding at least the first coarse cell's centre
    fx = draw(st.floats(0.0, 0.45)), draw(st.floats(0.55, 1.0))
    fy = draw(st.floats(0.0, 0.45)), draw(st.floats(0.55, 1.0))
    return pop, size, res, seed, sparse, fx, fy


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_property_each_source_cell_keeps_its_people_and_nobody_lands_outside(case):
    pop, size, res, seed, sparse, fx, fy = case
    nr, nc = pop.shape
    rng = np.random.default_rng(seed)
    grid = _coarse(pop, size=size, origin=(_PX, _PY))

    def weight(tr, shape):
        return rng.exponential(1.0, shape) * (rng.uniform(0, 1, shape) < sparse)

    # without an area the fine grid nests in the coarse one: every block sums to its source cell
    out = spread_weighted(grid, weight, _METRIC, resolution=res)
    tol = 1e-9 * max(pop.max(), 1.0)
    np.testing.assert_allclose(_blocks(out.total, out.transform, pop.shape, size, res), pop, rtol=1e-9, atol=tol)
    np.testing.assert_allclose(
        _blocks(out.groups["age60plus"], out.transform, pop.shape, size, res), pop * 0.2, rtol=1e-9, atol=tol
    )
    assert (out.total >= 0).all()

    # with an area: nobody on a cell whose centre is outside, and the grand total is kept
    w, h = nc * size, nr * size
    area_box = box(_PX + fx[0] * w, _PY - fy[1] * h, _PX + fx[1] * w, _PY - fy[0] * h)
    area = gpd.GeoDataFrame(geometry=[area_box], crs=_METRIC)
    inside = shapely.contains_xy(area_box, *grid.centres())
    clipped = _coarse(np.where(inside, pop, 0.0), size=size, origin=(_PX, _PY))  # as read_population clips (centre rule)
    out = spread_weighted(clipped, weight, _METRIC, resolution=res, area=area)
    xs, ys = out.centres()
    has = out.total > 0
    if shapely.contains_xy(area_box, xs, ys).any():
        assert shapely.contains_xy(area_box, xs[has], ys[has]).all()
    assert out.total.sum() == pytest.approx(clipped.total.sum(), rel=1e-9, abs=1e-6)
    if out.details["moved_across_source_cells"] == 0:
        # moved edge cells stayed in their source cell: per-cell totals exact here too
        np.testing.assert_allclose(
            _blocks(out.total, out.transform, pop.shape, size, res), clipped.total, rtol=1e-9, atol=tol
        )


# ------------------------------------------------------------------------------------------------
# the demo: 100 m rasters summed to 1 km, spread back along the roads
# ------------------------------------------------------------------------------------------------


def _sum_to(src_path: Path, dst_path: Path, k: int) -> None:
    """Write ``src`` summed over k×k blocks (from the raster's own origin) as a GeoTIFF."""
    with rasterio.open(src_path) as s:
        a = s.read(1).astype("float64")
        a[(a == s.nodata) | ~np.isfinite(a)] = 0.0
        tr, crs = s.transform, s.crs
    nr, nc = -(-a.shape[0] // k) * k, -(-a.shape[1] // k) * k
    b = np.zeros((nr, nc))
    b[: a.shape[0], : a.shape[1]] = a
    c = b.reshape(nr // k, k, nc // k, k).sum(axis=(1, 3))
    with rasterio.open(
        dst_path, "w", driver="GTiff", height=c.shape[0], width=c.shape[1], count=1, dtype="float64",
        crs=crs, transform=tr * Affine.scale(k),
    ) as d:
        d.write(c, 1)


def _split(src_path: Path, dst_path: Path, k: int) -> None:
    """Write ``src`` with every cell split into k×k cells of 1/k² of its people."""
    with rasterio.open(src_path) as s:
        a = s.read(1).astype("float64")
        a[(a == s.nodata) | ~np.isfinite(a)] = 0.0
        tr, crs = s.transform, s.crs
    b = np.kron(a, np.ones((k, k))) / (k * k)
    with rasterio.open(
        dst_path, "w", driver="GTiff", height=b.shape[0], width=b.shape[1], count=1, dtype="float64",
        crs=crs, transform=tr * Affine.scale(1 / k),
    ) as d:
        d.write(b, 1)


def _scenario_1km(repo_root: Path, tmp_path: Path, make=_sum_to, k: int = 10, tag: str = "1km") -> Path:
    scen = repo_root / "scenarios"
    sc = yaml.safe_load((scen / "demo_baseline.yaml").read_text(encoding="utf-8"))

    def absolute(v: str) -> str:
        return str((scen / v).resolve())

    for key in ("boundary", "units", "villages", "urban"):
        sc["area"][key]["path"] = absolute(sc["area"][key]["path"])
    sc["network"]["roads"]["path"] = absolute(sc["network"]["roads"]["path"])
    for f in sc["facilities"]:
        f["path"] = absolute(f["path"])
    sc["candidates"]["path"] = absolute(sc["candidates"]["path"])
    pop = sc["population"]
    make(Path(absolute(pop["total"])), tmp_path / f"pop_{tag}.tif", k)
    pop["total"] = str(tmp_path / f"pop_{tag}.tif")
    for g, v in list(pop["groups"].items()):
        make(Path(absolute(v)), tmp_path / f"{g}_{tag}.tif", k)
        pop["groups"][g] = str(tmp_path / f"{g}_{tag}.tif")
    out = tmp_path / f"demo_{tag}.yaml"
    out.write_text(yaml.safe_dump(sc, allow_unicode=True), encoding="utf-8")
    return out


#: Largest difference in a service's coverage share between the 1 km run spread along the roads
#: and the 100 m run. Measured: 0.3–1.9 pp (school +0.3, clinic +0.2, elderly +0.1, fitness −1.9);
#: spreading the same 1 km cells uniformly gives up to 7.0 pp (fitness 55.8 % against 62.8 %), so
#: 3 pp tells the road weighting from a uniform spread while leaving room for other demo seeds.
COVERAGE_PP: float = 3.0


def test_demo_1km_spread_back_along_roads_matches_100m(repo_root, tmp_path):
    from coverage import pipeline

    yml = _scenario_1km(repo_root, tmp_path)
    coarse = pipeline.load_inputs(yml)
    grid = coarse.grid
    assert grid.method == "roads" and grid.source_resolution_m == pytest.approx(1000.0)
    assert grid.transform.a == 100.0 and grid.crs.equals(coarse.crs)
    warn = [p for p in coarse.problems if p.code == "population_spread"]
    assert len(warn) == 1 and warn[0].severity == "warning" and "1,000 m" in warn[0].en

    # totals per 1 km cell, against the 1 km raster's own values (cells whose centre is in the county)
    with rasterio.open(tmp_path / "pop_1km.tif") as s:
        src, tr1 = s.read(1), s.transform
    county = coarse.boundary.union_all()
    r1, c1 = np.indices(src.shape)
    cx, cy = tr1 * (c1 + 0.5, r1 + 0.5)
    kept = np.where(shapely.contains_xy(county, cx, cy), src, 0.0)
    off_c, off_r = (~tr1) * (grid.transform.c, grid.transform.f)
    assert off_c * 10 == pytest.approx(round(off_c * 10)) and off_r * 10 == pytest.approx(round(off_r * 10))
    big = np.zeros((src.shape[0] * 10, src.shape[1] * 10))
    r0, c0 = int(round(off_r * 10)), int(round(off_c * 10))
    big[r0:r0 + grid.shape[0], c0:c0 + grid.shape[1]] = grid.total
    back = big.reshape(src.shape[0], 10, src.shape[1], 10).sum(axis=(1, 3))
    assert grid.details["moved_across_source_cells"] == 0
    np.testing.assert_allclose(back, kept, rtol=1e-9, atol=1e-6)
    # nobody outside the county
    xs, ys = grid.centres()
    assert shapely.contains_xy(county, xs[grid.total > 0], ys[grid.total > 0]).all()
    # age groups follow: each group's 1 km totals kept too
    with rasterio.open(tmp_path / "age60plus_1km.tif") as s:
        g1 = np.where(shapely.contains_xy(county, cx, cy), s.read(1), 0.0)
    gbig = np.zeros_like(big)
    gbig[r0:r0 + grid.shape[0], c0:c0 + grid.shape[1]] = grid.groups["age60plus"]
    np.testing.assert_allclose(gbig.reshape(src.shape[0], 10, src.shape[1], 10).sum(axis=(1, 3)), g1, rtol=1e-9, atol=1e-6)

    fine_run = pipeline.evaluate_model(pipeline.build_model(pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")))
    coarse_run = pipeline.evaluate_model(pipeline.build_model(coarse))
    assert fine_run.model.inputs.grid.method == "native"
    figures = {}
    for cat, v in fine_run.summary["categories"].items():
        a, b = v["share_covered"], coarse_run.summary["categories"][cat]["share_covered"]
        figures[cat] = (round(a * 100, 2), round(b * 100, 2))
        assert abs(a - b) * 100 <= COVERAGE_PP, (cat, a, b)
    assert "population_spread" in {w["code"] for w in coarse_run.summary["warnings"]}
    print(json.dumps(figures, ensure_ascii=False))


def test_demo_50m_rasters_are_summed_onto_the_100m_grid(repo_root, tmp_path):
    from coverage.inputs import load_inputs

    base = load_inputs(repo_root / "scenarios" / "demo_baseline.yaml").grid
    assert base.method == "native" and base.source_resolution_m == pytest.approx(100.0)
    fine = load_inputs(_scenario_1km(repo_root, tmp_path, make=_split, k=2, tag="50m"))
    grid = fine.grid
    assert grid.method == "resampled" and grid.source_resolution_m == pytest.approx(50.0)
    assert "population_spread" not in {p.code for p in fine.problems}
    assert grid.transform.a == 100.0
    # the 100 m grid's own cells come back (4 × 50 m cells summed), up to float rounding
    off_c, off_r = (~grid.transform) * (base.transform.c, base.transform.f)
    oc, orow = int(round(off_c)), int(round(off_r))
    assert math.isclose(off_c, oc, abs_tol=1e-9) and math.isclose(off_r, orow, abs_tol=1e-9)
    sub = grid.total[orow:orow + base.shape[0], oc:oc + base.shape[1]]
    np.testing.assert_allclose(sub, base.total, rtol=1e-6, atol=1e-6)
    assert grid.total.sum() == pytest.approx(base.total.sum(), rel=1e-9)
    np.testing.assert_allclose(
        grid.groups["age60plus"][orow:orow + base.shape[0], oc:oc + base.shape[1]], base.groups["age60plus"],
        rtol=1e-6, atol=1e-6,
    )


# ------------------------------------------------------------------------------------------------
# real data
# ------------------------------------------------------------------------------------------------


def test_xixiang_10km_worldpop_spread_along_imagery_roads(shared_data):
    from coverage.crs import local_metric_crs
    from coverage.io import read_vector

    outline = gpd.read_file(
        shared_data / "china_admin" / "seed_admin_boundaries_amap.gpkg", layer="wgs84_converted",
        where="adcode = '610724'",
    )
    c = outline.union_all().centroid
    crs = local_metric_crs(c.x, c.y)
    area = outline.to_crs(crs)
    tif = shared_data / "china_worldpop_10km" / "worldpop_ppp_2020_10km_china_bbox.tif"
    assert 8000 < source_resolution_m(tif, area) < 9500
    native = read_population(tif, {"age60plus": {"share": 0.2}}, area=area, target_crs=4326)
    roads = read_vector(shared_data / "shaanxi_xixiang" / "road_network_pred_2021" / "edges.shp")
    out = spread_along_roads(native, roads, resolution=100.0, area=area, crs=crs)
    n_src = int((native.total > 0).sum())
    n_fine = int((out.total > 0).sum())
    assert out.method == "roads" and out.crs.equals(crs)
    assert n_fine > 300 * n_src  # measured: 43 source cells, 35,511 populated 100 m cells
    assert out.total.sum() == pytest.approx(native.total.sum(), rel=1e-9)
    assert out.groups["age60plus"].sum() == pytest.approx(0.2 * native.total.sum(), rel=1e-9)
    # independent total: numpy over the raster cells whose centre is inside the county
    with rasterio.open(tif) as s:
        a = s.read(1).astype("float64")
        a[~np.isfinite(a)] = 0.0
        r, cc = np.indices(a.shape)
        x, y = s.transform * (cc + 0.5, r + 0.5)
    ref = float(a[shapely.contains_xy(outline.to_crs(4326).union_all(), x, y)].sum())
    assert out.total.sum() == pytest.approx(ref, rel=1e-9)
    # every person inside the county; nearly all on cells with a road (one 10 km cell has none)
    xs, ys = out.centres()
    assert shapely.contains_xy(area.union_all(), xs[out.total > 0], ys[out.total > 0]).all()
    assert out.details["uniform_cells"] <= 2
    assert math.isclose(out.details["road_km"], 3027, rel_tol=0.01)
