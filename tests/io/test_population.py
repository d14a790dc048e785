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
