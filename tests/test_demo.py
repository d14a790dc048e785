"""Tests of the synthetic demo county 示例县 (``coverage.demo``) and of its committed ``data/`` files.

The committed files are read directly with geopandas/rasterio/pandas (not with the project's readers),
so these tests check the data themselves.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio import features

from coverage import crs as ccrs
from coverage import demo, settings

DATA = Path(__file__).resolve().parents[1] / "data"
METRIC = "EPSG:4545"

ELDERLY_WORDS = ("养老", "照料", "长者", "助餐", "敬老", "幸福院", "照护")
FITNESS_WORDS = ("健身", "运动场", "体育公园")
SCHOOL_WORDS = ("幼儿园", "小学", "初中", "九年一贯制", "教学点", "托育")
CLINIC_WORDS = ("卫生院", "卫生室", "卫生服务", "医院")


def _has(series: pd.Series, words: tuple[str, ...]) -> pd.Series:
    return series.astype(str).apply(lambda s: any(w in s for w in words))


@pytest.fixture(scope="module")
def pop() -> dict[str, np.ndarray]:
    out = {}
    with rasterio.open(DATA / "population" / "pop_100m.tif") as src:
        out["total"] = src.read(1)
        out["_profile"] = src.profile
        out["_tags"] = src.tags()
    for g in settings.AGE_GROUPS:
        with rasterio.open(DATA / "population" / f"pop_{g}_100m.tif") as src:
            assert src.transform == out["_profile"]["transform"]
            out[g] = src.read(1)
    return out


@pytest.fixture(scope="module")
def units() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "boundaries" / "townships.gpkg", layer="townships")


@pytest.fixture(scope="module")
def county() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "boundaries" / "county.gpkg", layer="county")


@pytest.fixture(scope="module")
def roads() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "roads" / "roads.gpkg", layer="roads")


@pytest.fixture(scope="module")
def facilities() -> gpd.GeoDataFrame:
    """All facility and candidate rows in the metric CRS, GCJ-02 rows converted back to WGS-84."""
    csv = pd.read_csv(DATA / "facilities" / "facilities.csv", encoding="utf-8-sig", dtype=str)
    xls = pd.read_excel(DATA / "facilities" / "elderly_fitness_amap.xlsx", sheet_name=0)
    cand = pd.read_csv(DATA / "facilities" / "candidates.csv", encoding="utf-8-sig", dtype=str)
    lon, lat = ccrs.gcj02_to_wgs84(xls["经度"].to_numpy(float), xls["纬度"].to_numpy(float))
    frames = [
        pd.DataFrame({"file": "csv", "type": csv["类型"], "lon": csv["经度"].astype(float), "lat": csv["纬度"].astype(float)}),
        pd.DataFrame({"file": "amap", "type": xls["类型"], "lon": lon, "lat": lat}),
        pd.DataFrame({"file": "cand", "type": cand["类型"], "lon": cand["经度"].astype(float), "lat": cand["纬度"].astype(float)}),
    ]
    df = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326").to_crs(METRIC)


def _road_nodes(roads: gpd.GeoDataFrame) -> set[tuple[float, float]]:
    """Reference: graph nodes = line end points plus vertices shared by two or more lines."""
    count: Counter = Counter()
    ends = set()
    for g in roads.geometry:
        c = [tuple(p) for p in np.asarray(g.coords)]
        count.update(set(c))
        ends.update((c[0], c[-1]))
    return ends | {v for v, n in count.items() if n >= 2}


# ---------------------------------------------------------------------------------------------
# population
# ---------------------------------------------------------------------------------------------


def test_population_total_and_grid(pop, county):
    prof = pop["_profile"]
    assert prof["dtype"] == "float32" and prof["nodata"] == -1
    assert prof["crs"].to_epsg() == 4545
    assert prof["transform"].a == 100 and prof["transform"].e == -100
    assert prof["transform"].c % 100 == 0 and prof["transform"].f % 100 == 0
    assert "synthetic" in pop["_tags"].get("SOURCE", "")
    t = pop["total"]
    total = float(t[t > 0].sum())
    assert 300_000 <= total <= 500_000
    # cells outside the county are nodata, cells well inside are not
    poly = county.to_crs(METRIC).geometry.iloc[0]
    inside = features.geometry_mask([poly], t.shape, prof["transform"], invert=True)
    deep = features.geometry_mask([poly.buffer(-300)], t.shape, prof["transform"], invert=True)
    far_out = ~features.geometry_mask([poly.buffer(300)], t.shape, prof["transform"], invert=True)
    assert np.all(t[deep] >= 0)
    assert np.all(t[far_out] == -1)
    assert np.all(t[~inside & (t >= 0)] < 50)  # only edge cells may disagree with the polygon


def test_age_groups_bounded_and_older_countryside(pop):
    t = pop["total"]
    valid = t >= 0
    for g in settings.AGE_GROUPS:
        a = pop[g]
        assert np.all(a[~valid] == -1)
        assert np.all(a[valid] >= 0)
        assert np.all(a[valid] <= t[valid])
    cq = gpd.read_file(DATA / "boundaries" / "county.gpkg", layer="chengqu").to_crs(METRIC).geometry.iloc[0]
    urban = features.geometry_mask([cq], t.shape, pop["_profile"]["transform"], invert=True) & valid
    rural = valid & ~urban
    share = lambda m: pop["age60plus"][m].sum() / t[m].sum()  # noqa: E731
    assert share(rural) > share(urban) + 0.05
    young = lambda m: pop["age0_2"][m].sum() / t[m].sum()  # noqa: E731
    assert young(urban) > young(rural)
    # the 城区 holds a large share but not everybody
    assert 0.25 < t[urban].sum() / t[valid].sum() < 0.5


# ---------------------------------------------------------------------------------------------
# boundaries
# ---------------------------------------------------------------------------------------------


def test_units_codes_and_tiling(units, county):
    assert units.crs.to_epsg() == 4490
    kinds = units["kind"].value_counts()
    assert 3 <= kinds.get("街道", 0) <= 5
    assert 8 <= kinds.get("镇", 0) + kinds.get("乡", 0) <= 12
    assert set(kinds.index) <= {"街道", "镇", "乡"}
    codes = units["code"]
    assert codes.is_unique
    assert codes.str.fullmatch(r"\d{12}").all()
    assert codes.str.startswith("629901").all()
    assert county["code"].iloc[0] == "629901" and county["name"].iloc[0] == "示例县"
    m = units.to_crs(METRIC)
    c = county.to_crs(METRIC).geometry.iloc[0]
    union = shapely.union_all(m.geometry.values)
    assert abs(union.area - c.area) / c.area < 0.01
    assert abs(m.area.sum() - union.area) / union.area < 0.01  # no overlaps
    assert 1_200e6 < c.area < 1_800e6
    # seats lie in their own unit
    seats = gpd.GeoDataFrame(geometry=gpd.points_from_xy(units["seat_lon"], units["seat_lat"]), crs=4490).to_crs(METRIC)
    assert all(g.contains(s) for g, s in zip(m.geometry, seats.geometry))


def test_villages_inside_their_township(units):
    v = gpd.read_file(DATA / "boundaries" / "villages.gpkg", layer="villages")
    assert len(v) >= 100
    assert v["code"].is_unique and v["code"].str.fullmatch(r"\d{12}").all()
    assert (v["code"].str[:9] == v["unit_code"].str[:9]).all()
    assert v["name"].str.endswith("村").all()
    assert v["remote"].any() and not v["remote"].all()
    j = gpd.sjoin(v.to_crs(METRIC), units.to_crs(METRIC)[["code", "geometry"]], predicate="within")
    assert len(j) == len(v)
    assert (j["unit_code"] == j["code_right"]).all()


# ---------------------------------------------------------------------------------------------
# roads
# ---------------------------------------------------------------------------------------------


def test_roads_classes_and_nodes(roads):
    assert roads.crs.to_epsg() == 4545
    assert list(roads.columns[:4]) == ["highway", "name", "oneway", "maxspeed"]
    assert set(roads["highway"]) <= set(settings.DRIVE_KMH)
    assert {"trunk", "primary", "secondary", "tertiary", "residential", "service", "track"} <= set(roads["highway"])
    assert set(roads["oneway"].dropna()) == {"yes"}
    assert roads["maxspeed"].notna().sum() > 0
    assert roads["name"].dropna().str.contains("路|街|道").all()
    nodes = _road_nodes(roads)
    assert 10_000 <= len(nodes) < 100_000


def test_roads_cross_only_at_shared_vertices(roads):
    nodes = _road_nodes(roads)
    geoms = np.asarray(roads.geometry.values)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    inter = shapely.intersection(geoms[left[keep]], geoms[right[keep]])
    parts = shapely.get_parts(inter)
    pts = shapely.get_coordinates(parts[shapely.get_type_id(parts) == 0])
    loose = [p for p in map(tuple, pts) if p not in nodes]
    assert len(loose) == 0


def test_roads_connected(roads):
    """Union-find over shared vertices: nearly all nodes form one network."""
    parent: dict = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for g in roads.geometry:
        c = [tuple(p) for p in np.asarray(g.coords)]
        r0 = find(c[0])
        for p in c[1:]:
            parent[find(p)] = r0
    sizes = Counter(find(a) for a in list(parent))
    assert sizes.most_common(1)[0][1] / len(parent) > 0.99


# ---------------------------------------------------------------------------------------------
# facilities
# ---------------------------------------------------------------------------------------------


def test_four_services_present(facilities):
    t = facilities.loc[facilities["file"] != "cand", "type"]
    for words in (SCHOOL_WORDS, CLINIC_WORDS, ELDERLY_WORDS, FITNESS_WORDS):
        assert _has(t, words).sum() >= 5
    assert (t == "村卫生室").sum() >= 80
    assert (t == "健身路径").sum() >= 40
    # a few rows that belong to no service (exercise the unmapped-name report)
    other = ~(_has(t, SCHOOL_WORDS) | _has(t, CLINIC_WORDS) | _has(t, ELDERLY_WORDS) | _has(t, FITNESS_WORDS))
    assert 2 <= other.sum() <= 4


def test_facilities_in_county_and_near_roads(facilities, county, roads):
    c = county.to_crs(METRIC).geometry.iloc[0]
    assert facilities.within(c).all()
    net = shapely.union_all(np.asarray(roads.geometry.values))
    d = shapely.distance(np.asarray(facilities.geometry.values), net)
    assert d.max() <= 300


def test_township_without_elderly_centre(facilities, units):
    eld = facilities[(facilities["file"] == "amap") & _has(facilities["type"], ELDERLY_WORDS)]
    j = gpd.sjoin(eld, units.to_crs(METRIC)[["code", "kind", "geometry"]], predicate="within")
    rural = units[units["kind"] != "街道"]
    without = set(rural["code"]) - set(j["code"])
    assert 1 <= len(without) < len(rural)


def test_candidates(facilities):
    c = facilities[facilities["file"] == "cand"]
    assert 40 <= len(c) <= 80
    raw = pd.read_csv(DATA / "facilities" / "candidates.csv", encoding="utf-8-sig", dtype=str)
    assert set(raw["建设性质"]) == {"转型", "改扩建", "新建"}
    assert raw["编号"].is_unique


# ---------------------------------------------------------------------------------------------
# generator: round trip and determinism (each generation takes several seconds)
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gcj02_round_trip_against_generator():
    """The committed Amap file's GCJ-02 points convert back to within 1 m of the generated points."""
    b = demo._build(settings.DEMO_SEED)
    xls = pd.read_excel(DATA / "facilities" / "elderly_fitness_amap.xlsx", sheet_name=0)
    assert len(xls) == len(b.amap)
    pts = gpd.GeoSeries(gpd.points_from_xy(b.amap["x"], b.amap["y"]), crs=METRIC).to_crs(4326)
    lon, lat = ccrs.gcj02_to_wgs84(xls["经度"].to_numpy(float), xls["纬度"].to_numpy(float))
    err = ccrs.haversine_m(lon, lat, pts.x.to_numpy(), pts.y.to_numpy())
    assert err.max() < 1.0
    # and the offset really was applied (GCJ-02 differs from WGS-84 by hundreds of metres here)
    raw = ccrs.haversine_m(xls["经度"], xls["纬度"], pts.x.to_numpy(), pts.y.to_numpy())
    assert raw.min() > 100


def _snapshot(d: Path) -> dict:
    out = {}
    for f in sorted((d / "population").glob("*.tif")):
        with rasterio.open(f) as src:
            out[f.name] = src.read(1)
    out["roads"] = gpd.read_file(d / "roads" / "roads.gpkg", layer="roads")
    out["townships"] = gpd.read_file(d / "boundaries" / "townships.gpkg")
    out["villages"] = gpd.read_file(d / "boundaries" / "villages.gpkg")
    out["facilities"] = pd.read_csv(d / "facilities" / "facilities.csv", encoding="utf-8-sig", dtype=str)
    out["candidates"] = pd.read_csv(d / "facilities" / "candidates.csv", encoding="utf-8-sig", dtype=str)
    out["amap"] = pd.read_excel(d / "facilities" / "elderly_fitness_amap.xlsx", sheet_name=0)
    return out


@pytest.mark.slow
def test_generate_is_deterministic(tmp_path):
    paths = demo.generate(tmp_path / "a")
    assert {"county", "townships", "villages", "facilities", "elderly_fitness", "candidates", "pop", "roads"} <= set(paths)
    assert all(p.is_file() for p in paths.values())
    # same seed → the same data as committed under data/ (generated once more, compared by value)
    a, b = _snapshot(tmp_path / "a"), _snapshot(DATA)
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        elif isinstance(a[k], gpd.GeoDataFrame):
            pd.testing.assert_frame_equal(pd.DataFrame(a[k].drop(columns="geometry")), pd.DataFrame(b[k].drop(columns="geometry")))
            assert a[k].geometry.geom_equals_exact(b[k].geometry, tolerance=0).all()
        else:
            pd.testing.assert_frame_equal(a[k], b[k])
    demo.generate(tmp_path / "c", seed=settings.DEMO_SEED + 1)
    c = _snapshot(tmp_path / "c")
    assert a["pop_100m.tif"].shape != c["pop_100m.tif"].shape or not np.array_equal(a["pop_100m.tif"], c["pop_100m.tif"])
    assert len(a["roads"]) != len(c["roads"]) or not a["roads"].geometry.geom_equals_exact(c["roads"].geometry, 0).all()


def test_demo_data_dir_finds_committed_data():
    d = demo.demo_data_dir()
    assert (d / "roads" / "roads.gpkg").is_file()
    assert (d / "population" / "pop_100m.tif").is_file()
