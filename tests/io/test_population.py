"""Tests of the population reader: nodata, clipping, density → counts, sum-preserving warps."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from shapely.geometry import box

from coverage.errors import InputError
from coverage.io.population import PopulationGrid, cell_area_km2, read_population

DEMO = Path(__file__).resolve().parents[2] / "data" / "population"


def _wuhan(shared_data):
    w = shared_data / "wuhan"
    return (
        w / "worldpop" / "wuhan_pop_age20plus_100m.tif",
        w / "worldpop" / "wuhan_pop_age60plus_100m.tif",
        gpd.read_file(w / "boundary" / "wuhan-boundary.shp"),
    )


def _reference_clip(path, polygon) -> float:
    """numpy sum over cells whose centre lies in the polygon (shapely contains_xy)."""
    with rasterio.open(path) as s:
        a = s.read(1).astype("float64")
        a[(a == s.nodata) | ~np.isfinite(a)] = 0.0
        r, c = np.indices(a.shape)
        x, y = s.transform * (c + 0.5, r + 0.5)
    return float(a[shapely.contains_xy(polygon, x, y)].sum())


def test_wuhan_clip_native_grid(shared_data):
    tot, old, b = _wuhan(shared_data)
    g = read_population(tot, {"age60plus": old, "age0_2": {"share": 0.025}}, area=b, target_crs=4326)
    assert isinstance(g, PopulationGrid)
    poly = b.geometry.iloc[0]
    assert g.total.sum() == pytest.approx(_reference_clip(tot, poly), rel=1e-9)
    assert g.groups["age60plus"].sum() == pytest.approx(_reference_clip(old, poly), rel=1e-9)
    assert np.allclose(g.groups["age0_2"], g.total * 0.025)
    assert (g.total >= 0).all() and g.groups["age60plus"].shape == g.total.shape
    # nodata/outside cells are flagged and zero
    assert (g.total[g.nodata_mask] == 0).all()


@pytest.mark.slow
def test_wuhan_reprojected_sum_preserved(shared_data):
    tot, old, b = _wuhan(shared_data)
    ref_t = _reference_clip(tot, b.geometry.iloc[0])
    ref_o = _reference_clip(old, b.geometry.iloc[0])
    g = read_population(tot, {"age60plus": old}, area=b)
    assert g.crs.to_epsg() == 4547 and g.crs.is_projected
    assert abs(g.transform.a - 90) < 1e-9  # 3″ × 3″ at 30.7° N ≈ 80 m × 93 m → 90 m cells
    assert g.total.sum() == pytest.approx(ref_t, rel=0.01)
    assert g.groups["age60plus"].sum() == pytest.approx(ref_o, rel=0.01)
    assert (g.groups["age60plus"] <= g.total + 1e-6).mean() > 0.99


def test_macau_density(shared_data):
    f = shared_data / "macau" / "worldpop" / "mac_pd_2020_1km.tif"
    g = read_population(f, target_crs=4326)  # kind auto: "_pd_" → density
    with rasterio.open(f) as s:
        d = s.read(1).astype("float64")
        tr = s.transform
    d[d == -99999] = 0
    # independent cell area: spherical zone between two parallels
    R = 6371008.8
    areas = np.array([R**2 * math.radians(tr.a) * abs(math.sin(math.radians(tr.f + tr.e * i)) - math.sin(math.radians(tr.f + tr.e * (i + 1)))) for i in range(d.shape[0])]) / 1e6
    assert 0.75 < areas[0] < 0.85  # 30″ at 22° N ≈ 0.86 km × 0.93 km ≈ 0.80 km²
    expect = (d * areas[:, None]).sum()
    assert g.total.sum() == pytest.approx(expect, rel=1e-9)
    assert 600_000 < expect < 900_000  # Macau: about 0.68 M (WorldPop 2020)
    m = read_population(f)  # warped to the metric CRS
    assert m.crs.is_projected and m.total.sum() == pytest.approx(expect, rel=0.01)
    c = read_population(f, kind="count", target_crs=4326)
    assert c.total.sum() == pytest.approx(d.sum())


def test_china_10km_nan_nodata(shared_data):
    f = shared_data / "china_worldpop_10km" / "worldpop_ppp_2020_10km_china_bbox.tif"
    b = gpd.read_file(shared_data / "wuhan" / "boundary" / "wuhan-boundary.shp")
    g = read_population(f, area=b, target_crs=4326)
    assert np.isfinite(g.total).all()
    assert g.total.sum() == pytest.approx(_reference_clip(f, b.geometry.iloc[0]), rel=1e-9)
    assert 8e6 < g.total.sum() < 1.6e7  # Wuhan ≈ 12 M residents


def test_cell_area_projected():
    a = cell_area_km2(Affine(100, 0, 0, 0, -100, 0), 4545, (2, 3))
    assert a.shape == (2, 3) and np.allclose(a, 0.01)


def _write(tmp_path, arr, crs=4545, nodata=-1.0, name="p.tif", tr=None):
    p = tmp_path / name
    tr = tr or Affine(100, 0, 500000, 0, -100, 3900000)
    with rasterio.open(p, "w", driver="GTiff", height=arr.shape[0], width=arr.shape[1], count=1, dtype="float32", crs=crs, transform=tr, nodata=nodata) as d:
        d.write(arr.astype("float32"), 1)
    return p


def test_synthetic_clip_and_resample(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 10, (40, 50))
    a[0, 0] = -1  # nodata
    p = _write(tmp_path, a)
    area = gpd.GeoDataFrame(geometry=[box(501000, 3897000, 503000, 3899000)], crs=4545)
    g = read_population(p, area=area)
    # native grid: exactly the 20 × 20 cells whose centres are inside the box
    assert g.total.shape == (20, 20)
    assert g.total.sum() == pytest.approx(a[10:30, 10:30].sum())
    # coarser cells: the sum is kept
    g2 = read_population(p, area=area, resolution=200)
    assert g2.transform.a == 200 and g2.total.sum() == pytest.approx(a[10:30, 10:30].sum(), rel=1e-6)
    full = read_population(p)
    assert full.total.sum() == pytest.approx(a[a > 0].sum()) and full.nodata_mask[0, 0]


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError) as e:
        read_population(tmp_path / "none.tif")
    assert "找不到" in e.value.problem.zh and "not found" in e.value.problem.en and "none.tif" in str(e.value)
    a = np.ones((10, 10))
    a[3, 4] = -5
    with pytest.raises(InputError) as e:
        read_population(_write(tmp_path, a, name="neg.tif"))
    assert "负值" in e.value.problem.zh and "negative" in e.value.problem.en and "row 4" in e.value.problem.en
    p = _write(tmp_path, np.ones((10, 10)), name="ok.tif")
    far = gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)], crs=4326)
    with pytest.raises(InputError) as e:
        read_population(p, area=far)
    assert "不重叠" in e.value.problem.zh and "does not overlap" in e.value.problem.en and "ok.tif" in str(e.value)
    with pytest.raises(InputError) as e:
        read_population(p, groups={"age0_2": {"share": 2}})
    assert "share" in str(e.value)


@pytest.mark.skipif(not (DEMO / "pop_100m.tif").exists(), reason="demo data not generated yet")
def test_demo_rasters():
    groups = {g: DEMO / f"pop_{g}_100m.tif" for g in ("age0_2", "age3_5", "age6_11", "age12_14", "age60plus")}
    g = read_population(DEMO / "pop_100m.tif", groups)
    with rasterio.open(DEMO / "pop_100m.tif") as s:
        a = s.read(1)
        assert s.crs.to_epsg() == 4545
    assert g.crs.to_epsg() == 4545 and g.transform.a == 100
    assert g.total.sum() == pytest.approx(a[a != -1].sum(), rel=1e-6)
    for arr in g.groups.values():
        assert arr.shape == g.total.shape and (arr <= g.total + 1e-6).all()


# ------------------------------------------------------------------------------------------------
# dasymetric spreading (spread_over)
# ------------------------------------------------------------------------------------------------

from pyproj import CRS  # noqa: E402

from coverage.io.population import source_crs, spread_over  # noqa: E402

_METRIC = "EPSG:4547"


def _overlap(a, b) -> float:
    """Area of the overlap of two axis-aligned rectangles (xmin, ymin, xmax, ymax), plain arithmetic."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _tiny():
    """2×3 coarse cells of 1 km (origin 500 km E, 2 500 km N) and three square buildings."""
    ox, oy = 500_000.0, 2_500_000.0
    pop = np.array([[100.0, 200.0, 0.0], [50.0, 0.0, 300.0]])
    grid = PopulationGrid(
        total=pop.copy(), groups={"age60plus": pop * 0.1}, transform=Affine(1000.0, 0, ox, 0, -1000.0, oy), crs=_METRIC
    )
    squares = [
        (ox + 100, oy - 240, ox + 600, oy - 40),  # inside coarse (0,0), fine row 0, cols 0–2
        (ox + 1300, oy - 1200, ox + 1700, oy - 800),  # across coarse (0,1) / (1,1)
        (ox + 1900, oy - 1900, ox + 2300, oy - 1500),  # across coarse (1,1) / (1,2)
    ]
    b = gpd.GeoDataFrame(geometry=[box(*s) for s in squares], crs=_METRIC)
    return grid, squares, b, (ox, oy)


def _reference_spread(pop, squares, origin, res, k):
    """Plain loops: fine cell (i, j) of coarse cell (r, c) gets pop × (building area in both) / sum."""
    ox, oy = origin
    out = np.zeros((pop.shape[0] * k, pop.shape[1] * k))
    for r in range(pop.shape[0]):
        for c in range(pop.shape[1]):
            if pop[r, c] == 0:
                continue
            cbox = (ox + c * 1000, oy - (r + 1) * 1000, ox + (c + 1) * 1000, oy - r * 1000)
            w = {}
            for i in range(r * k, (r + 1) * k):
                for j in range(c * k, (c + 1) * k):
                    fbox = (ox + j * res, oy - (i + 1) * res, ox + (j + 1) * res, oy - i * res)
                    a = 0.0
                    for s in squares:
                        inter = (max(s[0], cbox[0]), max(s[1], cbox[1]), min(s[2], cbox[2]), min(s[3], cbox[3]))
                        a += _overlap(inter, fbox)
                    w[(i, j)] = a
            total_w = sum(w.values())
            for (i, j), a in w.items():
                out[i, j] += pop[r, c] * (a / total_w if total_w > 0 else 1.0 / (k * k))
    return out


def test_spread_over_matches_loops_and_keeps_coarse_totals():
    grid, squares, b, origin = _tiny()
    fine = spread_over(grid, b, resolution=250.0)
    ref = _reference_spread(grid.total, squares, origin, 250.0, 4)
    assert fine.shape == ref.shape and fine.crs.equals(CRS.from_user_input(_METRIC))
    assert fine.transform == Affine(250.0, 0, origin[0], 0, -250.0, origin[1])
    np.testing.assert_allclose(fine.total, ref, rtol=1e-12, atol=1e-9)
    # every coarse cell keeps its people exactly
    blocks = fine.total.reshape(2, 4, 3, 4).sum(axis=(1, 3))
    np.testing.assert_allclose(blocks, grid.total, rtol=1e-12, atol=1e-9)
    # the age group follows the total
    np.testing.assert_allclose(fine.groups["age60plus"], fine.total * 0.1, rtol=1e-12, atol=1e-12)
    # building square A (coarse (0,0)) spans fine columns 0, 1, 2 of fine row 0: 100 people as 150:250:100
    np.testing.assert_allclose(fine.total[0, :3], [30.0, 50.0, 20.0])
    # people of (0,1) all sit on the part of square B inside it (fine row 3, cols 5, 6)
    assert fine.total[3, 5] == pytest.approx(100.0) and fine.total[3, 6] == pytest.approx(100.0)


def test_spread_over_no_buildings_uniform():
    grid, _s, _b, origin = _tiny()
    empty = gpd.GeoDataFrame(geometry=[], crs=_METRIC)
    fine = spread_over(grid, empty, resolution=250.0)
    expected = np.kron(grid.total, np.ones((4, 4))) / 16.0
    np.testing.assert_allclose(fine.total, expected, rtol=1e-12)
    # coarse (1,0) has no building in the tiny case either: 50 people, 16 fine cells of 3.125
    grid2, _s, b, _o = _tiny()
    fine2 = spread_over(grid2, b, resolution=250.0)
    np.testing.assert_allclose(fine2.total[4:8, 0:4], 50.0 / 16.0)


def test_spread_over_count_weight_and_reprojected_layer():
    grid, squares, b, origin = _tiny()
    # count: each building counts once, at its representative point (here the square's centre)
    fine = spread_over(grid, b, resolution=250.0, weight="count")
    assert fine.total.sum() == pytest.approx(grid.total.sum(), rel=1e-12)
    assert fine.total[0, 1] == pytest.approx(100.0)  # square A's centre (x +350, y -140)
    # square B's centre (x +1500, y -1000) lies on the edge of coarse rows 0 and 1: it goes to
    # the row below (floor rule), coarse (1,1), which has nobody; so coarse (0,1) is uniform
    np.testing.assert_allclose(fine.total[0:4, 4:8], 200.0 / 16)
    # square C's centre (x +2100, y -1700) is in coarse (1,2): all 300 people there
    assert fine.total[6, 8] == pytest.approx(300.0)
    blocks = fine.total.reshape(2, 4, 3, 4).sum(axis=(1, 3))
    np.testing.assert_allclose(blocks, grid.total, rtol=1e-12, atol=1e-9)
    # the same squares in lon/lat: the output is in a local metric CRS, total kept
    ll = spread_over(grid, b.to_crs(4326), resolution=250.0)
    assert ll.crs.is_projected and ll.total.sum() == pytest.approx(grid.total.sum(), rel=1e-9)
    with pytest.raises(InputError):
        spread_over(grid, b, weight="volume")
    with pytest.raises(InputError):
        spread_over(grid, b, resolution=0)


def test_spread_over_area_moves_edge_cells_inside():
    grid, squares, b, origin = _tiny()
    ox, oy = origin
    # the area ends at x = ox + 2060: square C's fine cell col 8 (x 2000–2250) has its centre outside
    area = gpd.GeoDataFrame(geometry=[box(ox, oy - 2000, ox + 2060, oy)], crs=_METRIC)
    fine = spread_over(grid, b, resolution=250.0, area=area)
    assert fine.total.sum() == pytest.approx(grid.total.sum(), rel=1e-12)
    fr, fc = np.nonzero(fine.total > 0)
    x = ox + (fc + 0.5) * 250.0
    assert (x < ox + 2060).all()
    # coarse (1,2) (300 people) has only the part x 2000–2060 of square C inside the area: its
    # people land in fine cell (7, 8) (centre outside) and move to the nearest inside cell (7, 7)
    assert fine.total[6, 7] == pytest.approx(300.0 * 250 / 400)
    assert fine.total[7, 7] == pytest.approx(300.0 * 150 / 400)
    assert fine.total[:, 8:].sum() == 0


def test_spread_over_macau_total(shared_data):
    tif = shared_data / "macau" / "worldpop" / "mac_pd_2020_1km.tif"
    outline = gpd.read_file(
        shared_data / "china_admin" / "seed_admin_boundaries_amap.gpkg", layer="wgs84_converted",
        where="adcode = '820000'",
    ).to_crs(4326)
    # independent reference: density × spherical cell area over cells whose centre is inside
    with rasterio.open(tif) as s:
        d = s.read(1).astype("float64")
        t = s.transform
        ok = (d != s.nodata) & np.isfinite(d)
    rows, cols = np.indices(d.shape)
    lat_top, lat_bot = t.f + t.e * rows, t.f + t.e * (rows + 1)
    r_earth = 6371008.8
    km2 = r_earth**2 * math.radians(t.a) * np.abs(np.sin(np.radians(lat_top)) - np.sin(np.radians(lat_bot))) / 1e6
    cx, cy = t * (cols + 0.5, rows + 0.5)
    inside = shapely.contains_xy(outline.union_all(), cx, cy)
    ref = float((d * km2)[ok & inside].sum())
    assert 700_000 < ref < 800_000

    metric = outline.to_crs(_METRIC)
    grid = read_population(tif, {"age60plus": {"share": 0.2}}, area=metric, target_crs=source_crs(tif))
    blds = gpd.read_file(shared_data / "macau" / "osm_geofabrik_shp" / "gis_osm_buildings_a_free_1.shp").to_crs(_METRIC)
    fine = spread_over(grid, blds, resolution=100.0, area=metric)
    assert fine.total.sum() == pytest.approx(ref, rel=1e-9)
    assert fine.groups["age60plus"].sum() == pytest.approx(0.2 * ref, rel=1e-9)
    assert fine.crs.equals(CRS.from_user_input(_METRIC)) and fine.transform.a == 100.0
    # people sit on cells inside the outline, and mostly on cells with buildings
    fr, fc = np.nonzero(fine.total > 0)
    x, y = fine.transform * (fc + 0.5, fr + 0.5)
    assert shapely.contains_xy(metric.union_all(), np.asarray(x), np.asarray(y)).all()
    bx = shapely.bounds(blds.geometry.values)
    has_bld = np.zeros(fine.shape, bool)
    c0 = ((bx[:, 0] + bx[:, 2]) / 2 - fine.transform.c) // 100
    r0 = (fine.transform.f - (bx[:, 1] + bx[:, 3]) / 2) // 100
    okb = (c0 >= 0) & (c0 < fine.shape[1]) & (r0 >= 0) & (r0 < fine.shape[0])
    has_bld[r0[okb].astype(int), c0[okb].astype(int)] = True
    assert fine.total[has_bld].sum() > 0.9 * ref
