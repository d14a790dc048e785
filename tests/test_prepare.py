"""``covplan prepare``: raw data → scenario folder → ``covplan run``, on real data sets.

Every figure of the data-quality report that is checked here is recomputed independently: raster
cells read with rasterio, "centre inside" with shapely on the WGS-84 layer of the admin file (not
our GCJ-02 conversion), distances by numpy brute force, census figures read with pandas.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import yaml
from hypothesis import given, settings as hsettings, strategies as st
from pyproj import Transformer
from typer.testing import CliRunner

from coverage import network, settings
from coverage.cli import app
from coverage.crs import local_metric_crs
from coverage.errors import InputError
from coverage.prepare import far_from_nodes_share, osm_ftype, parse_facility_spec, parse_file_spec, prepare

ADMIN = ("china_admin", "seed_admin_boundaries_amap.gpkg")
GRID10 = ("china_worldpop_10km", "worldpop_ppp_2020_10km_china_bbox.tif")


def _brute_min_dist(px: np.ndarray, py: np.ndarray, nx_: np.ndarray, ny_: np.ndarray) -> np.ndarray:
    out = np.empty(len(px))
    for i in range(0, len(px), 64):
        d2 = (px[i:i + 64, None] - nx_[None, :]) ** 2 + (py[i:i + 64, None] - ny_[None, :]) ** 2
        out[i:i + 64] = np.sqrt(d2.min(axis=1))
    return out


def _outline_wgs(shared_data: Path, adcode: str):
    return gpd.read_file(shared_data.joinpath(*ADMIN), layer="wgs84_converted", where=f"adcode = '{adcode}'").union_all()


def _cells_inside(tif: Path, outline, density: bool = False):
    """Cell centres (lon/lat) and persons per cell of the raster cells whose centre is inside."""
    with rasterio.open(tif) as s:
        a = s.read(1).astype("float64")
        t = s.transform
        ok = np.isfinite(a) & (a != (s.nodata if s.nodata is not None else -1e300))
    rows, cols = np.indices(a.shape)
    if density:
        top, bot = np.radians(t.f + t.e * rows), np.radians(t.f + t.e * (rows + 1))
        a = a * 6371008.8**2 * math.radians(t.a) * np.abs(np.sin(top) - np.sin(bot)) / 1e6
    cx, cy = t * (cols + 0.5, rows + 0.5)
    inside = shapely.contains_xy(outline, cx, cy) & ok & (a > 0)
    return cx[inside], cy[inside], a[inside]


# ----------------------------------------------------------------------------------------------
# small pieces
# ----------------------------------------------------------------------------------------------


def test_osm_ftype_tags_and_names():
    assert osm_ftype("amenity=school") == "primary"
    assert osm_ftype("school", "西乡县第二中学") == "junior"       # the name refines inside the service
    assert osm_ftype("clinic", "峡口镇中心卫生院") == "township_health_center"
    assert osm_ftype("clinic", "城关中学") == "private_clinic"      # a name of another service is ignored
    assert osm_ftype("pitch") == "multi_court"
    assert osm_ftype("social_facility=day_care") == "day_care"      # elderly day care, not a nursery
    assert osm_ftype("leisure=fitness_station") == "fitness_path"
    assert osm_ftype("swimming_pool") is None
    assert osm_ftype("amenity=pharmacy") is None


def test_parse_facility_spec():
    assert parse_facility_spec("学校.shp::primary") == (Path("学校.shp"), None, "primary")
    assert parse_facility_spec("学校.gpkg:primary") == (Path("学校.gpkg"), None, "primary")
    assert parse_facility_spec("a.csv:gcj02:village_clinic") == (Path("a.csv"), "gcj02", "village_clinic")
    assert parse_facility_spec("t.shp:EPSG:4545:kindergarten") == (Path("t.shp"), "EPSG:4545", "kindergarten")
    assert parse_facility_spec("t.shp:EPSG:4545") == (Path("t.shp"), "EPSG:4545", None)
    assert parse_facility_spec("a.csv:gcj02") == (Path("a.csv"), "gcj02", None)
    with pytest.raises(InputError, match="ftype") as e:
        parse_facility_spec("a.csv:gcj02:school")
    assert "未知的设施类型" in e.value.problem.zh


def test_parse_file_spec():
    assert parse_file_spec("x/amap.xlsx:gcj02") == (Path("x/amap.xlsx"), "gcj02")
    assert parse_file_spec("t.shp:EPSG:4545") == (Path("t.shp"), "EPSG:4545")
    assert parse_file_spec("f.csv") == (Path("f.csv"), None)


@hsettings(max_examples=40, deadline=None)
@given(
    pts=st.lists(st.tuples(st.floats(0, 5000), st.floats(0, 5000), st.floats(0.1, 100)), min_size=1, max_size=30),
    nodes=st.lists(st.tuples(st.floats(0, 5000), st.floats(0, 5000)), min_size=1, max_size=30),
    limit=st.floats(10, 3000),
)
def test_far_share_matches_brute_force(pts, nodes, limit):
    p, n = np.array(pts), np.array(nodes)
    d = _brute_min_dist(p[:, 0], p[:, 1], n[:, 0], n[:, 1])
    ref = p[d > limit, 2].sum() / p[:, 2].sum()
    assert far_from_nodes_share(p[:, 0], p[:, 1], p[:, 2], n[:, 0], n[:, 1], limit) == pytest.approx(ref, abs=1e-12)


def test_bad_area_leaves_nothing(tmp_path, shared_data):
    out = tmp_path / "scn"
    with pytest.raises(InputError) as e:
        prepare(out, area="不存在县", admin_path=shared_data.joinpath(*ADMIN), population=shared_data.joinpath(*GRID10))
    assert "不存在县" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_name_without_admin_file_is_explained(tmp_path, shared_data):
    with pytest.raises(InputError, match="--admin"):
        prepare(tmp_path / "scn", area="崆峒区", population=shared_data.joinpath(*GRID10))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# 西乡县: imagery-derived roads without class, Amap outline, 10 km grid, census age shares
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xixiang(tmp_path_factory, shared_data) -> Path:
    d = tmp_path_factory.mktemp("xixiang")
    fac = d / "facilities.csv"
    # two facilities of a planner's table, placed on vertices of the real road layer
    edges = gpd.read_file(shared_data / "shaanxi_xixiang" / "road_network_pred_2021" / "edges.shp")
    xy = shapely.get_coordinates(edges.geometry.values)
    c = xy[np.argmin(np.hypot(xy[:, 0] - 107.766, xy[:, 1] - 32.983))]
    pd.DataFrame({"名称": ["西乡县人民医院", "城关小学"], "类型": ["人民医院", "小学"],
                  "经度": [c[0], c[0]], "纬度": [c[1], c[1] + 1e-4]}).to_csv(fac, index=False)
    out = d / "scn"
    res = CliRunner().invoke(app, [
        "prepare", str(out), "--area", "610724", "--admin", str(shared_data.joinpath(*ADMIN)),
        "--roads", str(shared_data / "shaanxi_xixiang" / "road_network_pred_2021" / "edges.shp"),
        "--facilities", f"{fac}:wgs84", "--population", str(shared_data.joinpath(*GRID10)),
        "--census", str(shared_data / "china_county_census_2020"),
    ])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "scenario.yaml" in res.output
    return out


@pytest.mark.slow
def test_xixiang_runs(xixiang, tmp_path):
    res = CliRunner().invoke(app, ["run", str(xixiang / "scenario.yaml"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    q = json.loads((xixiang / "quality.json").read_text(encoding="utf-8"))
    # the run resamples the clipped 10 km raster onto metric cells whose centres decide what lies
    # inside: on 43 coarse cells this moves the total, but not by much
    assert summary["population_total"] == pytest.approx(q["population"]["raster_total"], rel=0.2)


def test_xixiang_files(xixiang):
    assert sorted(p.name for p in xixiang.iterdir() if p.name != ".covplan-manifest.json") == ["area", "facilities", "population", "quality.json", "quality.md", "scenario.yaml"]
    scn = yaml.safe_load((xixiang / "scenario.yaml").read_text(encoding="utf-8"))
    assert scn["population"]["total"] == "population/pop.tif"     # the national grid was clipped
    assert "units" not in scn["area"]                               # no township data: one unit
    assert "class_field" not in scn["network"]                      # no road class in these lines
    assert Path(scn["network"]["roads"]["path"]).is_absolute()      # small line file referenced
    with rasterio.open(xixiang / "population" / "pop.tif") as s:
        assert s.width * s.height < 400                  # of 751 × 439 cells


def test_xixiang_population_and_census(xixiang, shared_data):
    q = json.loads((xixiang / "quality.json").read_text(encoding="utf-8"))
    _, _, pop = _cells_inside(shared_data.joinpath(*GRID10), _outline_wgs(shared_data, "610724"))
    assert q["population"]["raster_total"] == pytest.approx(pop.sum(), rel=1e-6)
    cen = pd.read_csv(shared_data / "china_county_census_2020" / "tudigong_population.csv", dtype={"CODE": str})
    popu = float(cen.loc[cen["CODE"] == "610724", "POPU"].iloc[0])
    assert q["census"]["population"] == popu
    assert q["census"]["raster_over_census"] == pytest.approx(pop.sum() / popu, abs=1e-4)
    ages = pd.read_csv(shared_data / "china_county_census_2020" / "tudigong_ages.csv", dtype={"CODE": str})
    row = ages[ages["CODE"] == "610724"].iloc[0]
    row = {k: float(v) for k, v in row.items() if str(k).startswith("AGES_")}
    bands = ["AGES_0", "AGES_1-4"] + [f"AGES_{a}-{a + 4}" for a in range(5, 85, 5)] + ["AGES_85P"]
    old = sum(row[f"AGES_{a}-{a + 4}"] for a in range(60, 85, 5)) + row["AGES_85P"]
    scn = yaml.safe_load((xixiang / "scenario.yaml").read_text(encoding="utf-8"))
    assert scn["population"]["groups"]["age60plus"]["share"] == pytest.approx(old / sum(row[b] for b in bands), abs=1e-5)


def test_xixiang_far_from_road_share(xixiang, shared_data):
    """Population > 1 km from any walk-graph node, against numpy brute force on the source grid."""
    q = json.loads((xixiang / "quality.json").read_text(encoding="utf-8"))
    outline = _outline_wgs(shared_data, "610724")
    lon, lat, pop = _cells_inside(shared_data.joinpath(*GRID10), outline)
    c = outline.centroid
    crs = local_metric_crs(c.x, c.y)
    g = network.read_lines(shared_data / "shaanxi_xixiang" / "road_network_pred_2021" / "edges.shp", mode="walk", crs=crs)
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    d = _brute_min_dist(np.asarray(x), np.asarray(y), g.x, g.y)
    ref = pop[d > settings.SNAP_MAX_M].sum() / pop.sum()
    assert 0.01 < ref < 0.5                                  # a real test: some people are far
    assert q["roads"]["pop_far_from_road_share"] == pytest.approx(ref, abs=1e-6)
    assert q["roads"]["walk_nodes"] == g.n_nodes
    assert q["facilities_off_network"] == 0
    assert "no CRS" in json.dumps(q["crs_issues"])          # the shapefile has no .prj


# ----------------------------------------------------------------------------------------------
# Macau: Geofabrik roads + POIs, WorldPop density, Amap outline and Amap POI export
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def macau(tmp_path_factory, shared_data) -> Path:
    d = tmp_path_factory.mktemp("macau")
    amap = shared_data / "macau" / "amap_poi_csv" / "macau_amap_medical_healthcare.csv"
    # the same Amap rows with only their GCJ-02 columns, wrongly declared as WGS-84
    df = pd.read_csv(amap, encoding="utf-8-sig")
    wrong = d / "amap_only_gcj.csv"
    df.drop(columns=["lon_wgs84", "lat_wgs84"]).rename(columns={"lon_gcj02": "经度", "lat_gcj02": "纬度"}).to_csv(wrong, index=False)
    shp = shared_data / "macau" / "osm_geofabrik_shp"
    out = d / "scn"
    res = CliRunner().invoke(app, [
        "prepare", str(out), "--area", "820000", "--admin", str(shared_data.joinpath(*ADMIN)),
        "--roads", str(shp / "gis_osm_roads_free_1.shp"),
        "--pois", str(shp / "gis_osm_pois_free_1.shp"), "--pois", str(shp / "gis_osm_pois_a_free_1.shp"),
        "--facilities", f"{amap}:gcj02", "--facilities", f"{wrong}:wgs84",
        "--population", str(shared_data / "macau" / "worldpop" / "mac_pd_2020_1km.tif"),
        "--census", str(shared_data / "china_county_census_2020"),
    ])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out


@pytest.mark.slow
def test_macau_runs(macau, tmp_path):
    res = CliRunner().invoke(app, ["run", str(macau / "scenario.yaml"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert (tmp_path / "run" / "gaps.xlsx").exists()


def test_macau_quality(macau, shared_data):
    q = json.loads((macau / "quality.json").read_text(encoding="utf-8"))
    outline = _outline_wgs(shared_data, "820000")
    _, _, pop = _cells_inside(shared_data / "macau" / "worldpop" / "mac_pd_2020_1km.tif", outline, density=True)
    assert q["population"]["raster_total"] == pytest.approx(pop.sum(), rel=1e-6)
    assert "error" in q["census"]                             # Macau is not in the mainland census
    assert q["population"]["age_groups"]["source"].startswith("national")
    # CRS check: the wrongly declared copy is caught, the right declaration is not
    flagged = {i["file"] for i in q["crs_issues"] if i["severity"] != "info"}
    assert flagged == {"amap_only_gcj.csv"}
    units = gpd.read_file(macau / "area" / "units.gpkg")
    assert units["approximate"].all() and len(units) >= 2
    # OSM POIs of the mapped fclass values inside the outline, counted independently
    shp = shared_data / "macau" / "osm_geofabrik_shp"
    keep = {"school", "kindergarten", "hospital", "clinic", "doctors", "nursing_home", "sports_centre", "stadium", "pitch", "fitness_centre"}
    ref = 0
    for f in ("gis_osm_pois_free_1.shp", "gis_osm_pois_a_free_1.shp"):
        g = gpd.read_file(shp / f)
        g = g[g["fclass"].isin(keep)]
        ref += int(shapely.contains_xy(outline, *shapely.get_coordinates(g.geometry.representative_point().values).T).sum())
    osm = next(r for r in q["facilities"] if r["file"] == "osm_facilities.gpkg")
    # OSM ↔ Amap duplicates are merged (Amap wins): the one real pair in Macau is a clinic written
    # in traditional script in OSM and simplified in Amap, 7.5 m apart
    d = q["duplicates"]
    assert d["merged"] == 1 and d["by_file"] == {"osm_facilities.gpkg": 1}
    ex = d["examples"][0]
    assert (ex["dropped"], ex["kept"]) == ("同善堂第二診所", "同善堂第二诊所") and ex["distance_m"] < 100
    assert ex["kept_source"].startswith("macau_amap_medical_healthcare.csv:")
    assert osm["inside_area"] == ref - 1
    assert len(gpd.read_file(macau / "facilities" / "osm_facilities.gpkg")) == osm["facilities"]
    assert "重复设施已合并 / duplicates merged: 1" in (macau / "quality.md").read_text(encoding="utf-8")
    # per 10k = count inside / population × 10 000
    n = sum(r["by_service"]["clinic"] for r in q["facilities"] if "by_service" in r)
    assert q["per_10k"]["clinic"]["per_10k"] == pytest.approx(n / pop.sum() * 1e4, abs=1e-3)


# ----------------------------------------------------------------------------------------------
# Beijing 延庆: real 乡镇/街道 polygons (dissolved for the outline) + 10 km grid
# ----------------------------------------------------------------------------------------------


def test_yanqing_real_units(tmp_path, shared_data):
    src = shared_data / "beijing_subdistricts" / "yanqing-all.geojson"
    yml = prepare(tmp_path / "yq", units=src, adcode="110119", population=shared_data.joinpath(*GRID10),
                  census_dir=shared_data / "china_county_census_2020")
    q = json.loads((yml.parent / "quality.json").read_text(encoding="utf-8"))
    units = gpd.read_file(yml.parent / "area" / "units.gpkg")
    raw = gpd.read_file(src)
    assert sorted(units["code"]) == sorted(str(c) for c in raw["code"])
    assert not units["approximate"].any() and q["units"]["approximate"] is False
    assert q["area"]["name"] == "延庆区"
    crs = local_metric_crs(116.0, 40.5)
    assert q["area"]["area_km2"] == pytest.approx(raw.to_crs(crs).union_all().area / 1e6, rel=1e-3)
    _, _, pop = _cells_inside(shared_data.joinpath(*GRID10), raw.union_all())
    assert q["population"]["raster_total"] == pytest.approx(pop.sum(), rel=1e-6)
    assert q["runnable"] is False                            # no roads here: said so


# ----------------------------------------------------------------------------------------------
# São Paulo: OSM PBF roads (clipped to a GPKG) + population hexagons (rasterised, totals kept)
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sao_paulo_pbf_and_hexagons(tmp_path, shared_data):
    sp = shared_data / "sao_paulo"
    hexes = pd.read_csv(sp / "population" / "spo_hexgrid.csv")
    fac = tmp_path / "schools.csv"
    s = hexes[hexes["schools"] > 0]
    pd.DataFrame({"name": [f"escola {i}" for i in s["id"]], "type": "school", "lon": s["lon"], "lat": s["lat"]}).to_csv(fac, index=False)
    yml = prepare(tmp_path / "sp", area=sp / "population" / "spo_hexgrid_EPSG32723.gpkg", roads=sp / "osm" / "spo_osm.pbf",
                  facilities=[f"{fac}:wgs84"], population=sp / "population" / "spo_hexgrid_EPSG32723.gpkg")
    q = json.loads((yml.parent / "quality.json").read_text(encoding="utf-8"))
    assert q["population"]["raster_total"] == pytest.approx(hexes["population"].sum(), rel=1e-5)
    assert (yml.parent / "network" / "roads.gpkg").exists()
    res = CliRunner().invoke(app, ["run", str(yml), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output + repr(res.exception)


# ----------------------------------------------------------------------------------------------
# 武汉 江岸区: a 100 m WorldPop raster of the whole city, clipped to one district
# ----------------------------------------------------------------------------------------------


def test_wuhan_district_clip(tmp_path, shared_data):
    tif = shared_data / "wuhan" / "worldpop" / "wuhan_pop_age20plus_100m.tif"
    yml = prepare(tmp_path / "wh", area="江岸区", admin_path=shared_data.joinpath(*ADMIN), population=tif,
                  census_dir=shared_data / "china_county_census_2020")
    scn = yaml.safe_load(yml.read_text(encoding="utf-8"))
    assert scn["population"] == {**scn["population"], "total": "population/pop.tif", "kind": "count", "basis": "常住"}
    q = json.loads((yml.parent / "quality.json").read_text(encoding="utf-8"))
    _, _, pop = _cells_inside(tif, _outline_wgs(shared_data, "420102"))
    assert q["population"]["raster_total"] == pytest.approx(pop.sum(), rel=1e-6)
    with rasterio.open(tif) as s, rasterio.open(yml.parent / "population" / "pop.tif") as c:
        assert c.width * c.height < s.width * s.height / 10      # really clipped
    # ages 20+ only: the raster holds about three quarters of the census residents, and says so
    assert 0.6 < q["census"]["raster_over_census"] < 0.85


# ----------------------------------------------------------------------------------------------
# Helsinki: a full OSM extract (roads and POIs in one PBF) with a 250 m population grid
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_helsinki_pbf_roads_and_pois(tmp_path, shared_data):
    hel = shared_data / "helsinki"
    grid = hel / "population" / "helsinki_population_grid_2020.gpkg"
    yml = prepare(tmp_path / "hel", area=grid, roads=hel / "osm" / "Helsinki.osm.pbf",
                  pois=[hel / "osm" / "Helsinki.osm.pbf"], population=grid)
    q = json.loads((yml.parent / "quality.json").read_text(encoding="utf-8"))
    # independent: the grid's own population column
    import geopandas as gpd

    cells = gpd.read_file(grid)
    assert q["population"]["raster_total"] == pytest.approx(cells["population"].sum(), rel=1e-5)
    fac = gpd.read_file(yml.parent / "facilities" / "osm_facilities.gpkg")
    assert {"school", "clinic"} <= set(fac["category"])  # POIs came out of the same PBF
    res = CliRunner().invoke(app, ["run", str(yml), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    s = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    # the extract has primary schools but no kindergarten: the kindergarten rules have no data, so
    # the school figure (which counts children 3–5 too) is null with a note, never a partial number
    school = s["categories"]["school"]
    assert school["share_covered"] is None and "kindergarten" in school["note"]
    primary = [r for r in s["rules"] if r["service"] == "school" and r["covered"] is not None]
    assert primary and all(0 < r["share"] <= 1 for r in primary if r["population"])


# ----------------------------------------------------------------------------------------------
# A type-less planner layer (GBK shapefile, --facilities PATH::ftype) beside an Amap export
# ----------------------------------------------------------------------------------------------


def test_typeless_planner_layer_wins_over_amap_duplicates(tmp_path, shared_data):
    import pyogrio

    amap = shared_data / "macau" / "amap_poi_csv" / "macau_amap_education_culture.csv"
    df = pd.read_csv(amap, encoding="utf-8-sig")
    prim = df[df["smallType"] == "小学"].head(6).reset_index(drop=True)
    # the planner's own school list: no type column, names with a bracketed campus, GBK DBF, no .cpg
    mine = gpd.GeoDataFrame({"学校名称": [f"{n}（本部）" for n in prim["name"]]},
                            geometry=gpd.points_from_xy(prim["lon_wgs84"], prim["lat_wgs84"]), crs=4326)
    shp = tmp_path / "学校.shp"
    pyogrio.write_dataframe(mine, shp, encoding="GBK")
    shp.with_suffix(".cpg").unlink()
    yml = prepare(tmp_path / "scn", area="820000", admin_path=shared_data.joinpath(*ADMIN),
                  population=shared_data / "macau" / "worldpop" / "mac_pd_2020_1km.tif",
                  facilities=[f"{shp}::primary", f"{amap}:gcj02"])
    y = yaml.safe_load(yml.read_text(encoding="utf-8"))
    entries = {Path(e["path"]).name: e for e in y["facilities"]}
    assert entries["学校.shp"]["ftype"] == "primary" and "crs" not in entries["学校.shp"]
    q = json.loads((tmp_path / "scn" / "quality.json").read_text(encoding="utf-8"))
    # every planner school is also in the Amap export: the Amap copies go, the planner's stay
    d = q["duplicates"]
    assert d["merged"] == 6 and d["by_file"] == {amap.name: 6}
    assert all(e["kept_source"].startswith("学校.shp:") and e["distance_m"] < 5 for e in d["examples"])
    assert {e["kept"] for e in d["examples"]} == set(mine["学校名称"])
    rows = {r["file"]: r["facilities"] for r in q["facilities"]}
    assert rows["学校.shp"] == 6
    # the Amap copy in the scenario folder lost exactly those rows; the original is untouched
    copy = pd.read_csv(tmp_path / "scn" / entries[amap.name]["path"], encoding="utf-8-sig")
    assert len(copy) == len(df) - 6 and not set(prim["id"]) & set(copy["id"])
    assert len(pd.read_csv(amap, encoding="utf-8-sig")) == len(df)
