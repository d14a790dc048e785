"""``covplan batch``: the synthetic prefecture 示例市 on real Dask clusters, and two real counties.

Every batch here runs real prepare + run per county on a ``dask.distributed.LocalCluster`` (or in
process with ``workers=0``); counties are kept few and small (about 170 km² each).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml
from typer.testing import CliRunner

from coverage import batch
from coverage.cli import app
from coverage.demo_region import region_data_dir

REPO = Path(__file__).resolve().parents[1]
DEMO_REGION = REPO / "scenarios" / "demo_prefecture_batch.yaml"
#: Columns of region_summary.csv that depend on the machine, not on the inputs.
RUN_COLUMNS = ["seconds", "peak_mb", "worker", "status"]


def _region(tmp: Path, counties, **over) -> Path:
    data = yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))
    data["counties"] = counties
    data.update(over)
    p = tmp / "region.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def _figures(folder: Path) -> dict:
    s = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return {"population_total": s["population_total"], "categories": s["categories"],
            "urban_rural_circle": s.get("urban_rural_circle")}


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> Path:
    """示例县, 东塬县 and 南川县; 南川县 has a broken standards file."""
    d = tmp_path_factory.mktemp("region3")
    (d / "broken.yaml").write_text("name: broken\ncircles: [[[\n", encoding="utf-8")
    return _region(d, ["629901", "东塬县", "629903"],
                   standards={"default": "cn-default", "南川县": str(d / "broken.yaml")})


@pytest.fixture(scope="module")
def run2(three, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("b2") / "out"
    res = CliRunner().invoke(app, ["batch", str(three), "--out", str(out), "--workers", "2"])
    return out, res


def test_cli_two_workers_one_county_fails_alone(run2):
    out, res = run2
    assert res.exit_code == 2, res.output + repr(res.exception)
    table = pd.read_csv(out / "region_summary.csv", dtype={"adcode": str}, encoding="utf-8-sig")
    assert table["county"].tolist() == ["示例县", "东塬县", "南川县"]
    assert table["status"].tolist() == ["ok", "ok", "failed"]
    msg = table.loc[2, "message"]
    assert "broken.yaml" in msg
    assert "南川县" in res.output and "broken.yaml" in res.output
    assert not (out / "南川县").exists()  # nothing half-written for the failed county
    for c in ("示例县", "东塬县"):
        names = {p.name for p in (out / c).iterdir()}
        assert {"scenario.yaml", "summary.json", "gaps.xlsx", "map.html", "report.html", "layers.gpkg",
                "coverage_by_unit.csv", "quality.json", batch.BATCH_FILE} <= names
        assert table.loc[table["county"] == c, "peak_mb"].iloc[0] > 50
    ok = table[table["status"] == "ok"]
    assert sorted(ok["rank"].astype(int)) == [1, 2]
    assert (ok["population"] > 50_000).all()
    for s in ("school", "clinic", "elderly", "fitness"):
        assert ((ok[f"{s}_share"] > 0) & (ok[f"{s}_share"] <= 1)).all()


def test_region_files(run2):
    from openpyxl import load_workbook

    out, _ = run2
    wb = load_workbook(out / "region_summary.xlsx")
    assert "县(区)" in [c.value for c in wb["分县汇总"][1]]
    g = load_workbook(out / "gaps.xlsx")
    assert {"项目库", "示例县", "东塬县"} <= set(g.sheetnames)
    bank = pd.read_excel(out / "gaps.xlsx", sheet_name="项目库")
    assert list(bank.columns)[:7] == ["序号", "年度", "服务领域", "设施类别", "项目名称", "建设性质", "县(区)"]
    assert set(bank["县(区)"]) == {"示例县", "东塬县"}
    n_county = sum(len(pd.read_excel(out / c / "gaps.xlsx", sheet_name="项目库")) for c in ("示例县", "东塬县"))
    assert len(bank) == n_county
    html = (out / "map.html").read_text(encoding="utf-8")
    assert "合成示例数据" in html and 'href="%E7%A4%BA%E4%BE%8B%E5%8E%BF/map.html"' in html
    assert "http://" not in html.split("<body", 1)[1].replace("http://www.w3.org", "")


def test_county_equals_single_run_of_its_scenario(run2, tmp_path):
    out, _ = run2
    res = CliRunner().invoke(app, ["run", str(out / "东塬县" / "scenario.yaml"), "--out", str(tmp_path / "single")])
    assert res.exit_code == 0, res.output
    assert _figures(tmp_path / "single") == _figures(out / "东塬县")


def test_prepared_county_is_clipped_and_uses_cross_border_facilities(run2):
    out, _ = run2
    scn = yaml.safe_load((out / "示例县" / "scenario.yaml").read_text(encoding="utf-8"))
    assert scn["output"]["synthetic"] is True
    roads = gpd.read_file(out / "示例县" / scn["network"]["roads"]["path"])
    allr = gpd.read_file(region_data_dir() / "roads" / "roads.gpkg")
    assert 0 < len(roads) < len(allr)  # only the county's window (plus buffer)
    fac = pd.read_csv(out / "示例县" / "facilities" / "facilities0_facilities.csv", encoding="utf-8-sig")
    assert "东塬县" in set(fac["所属县"])  # a neighbour's facility within 3 km of the border is usable


def test_one_worker_gives_identical_outputs(run2, three, tmp_path):
    out2, _ = run2
    res = batch.run_batch(three, tmp_path / "one", workers=1)
    assert res.exit_code == 2
    a = pd.read_csv(out2 / "region_summary.csv", encoding="utf-8-sig").drop(columns=RUN_COLUMNS)
    b = pd.read_csv(tmp_path / "one" / "region_summary.csv", encoding="utf-8-sig").drop(columns=RUN_COLUMNS)
    pd.testing.assert_frame_equal(a.drop(columns="message"), b.drop(columns="message"))
    for c in ("示例县", "东塬县"):
        assert _figures(out2 / c) == _figures(tmp_path / "one" / c)
        assert (out2 / c / "coverage_by_unit.csv").read_bytes() == (tmp_path / "one" / c / "coverage_by_unit.csv").read_bytes()


def test_resume_skips_finished_counties(run2, three):
    out, _ = run2
    before = {c: (out / c / "summary.json").stat().st_mtime_ns for c in ("示例县", "东塬县")}
    res = batch.run_batch(three, out, workers=0)
    assert [r["status"] for r in res.records] == ["skipped", "skipped", "failed"]
    assert {c: (out / c / "summary.json").stat().st_mtime_ns for c in before} == before
    # a county whose folder was edited by hand is not skipped, and not overwritten either
    note = out / "东塬县" / "我的笔记.txt"
    note.write_text("planner's note", encoding="utf-8")
    jobs = batch.plan_jobs(*batch.load_region(three))
    assert batch._finished(jobs[0], out) is not None and batch._finished(jobs[1], out) is None
    note.unlink()


def test_out_dir_with_other_files_is_refused(three, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "规划说明.docx").write_bytes(b"x")
    res = CliRunner().invoke(app, ["batch", str(three), "--out", str(out), "--workers", "0"])
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert [p.name for p in out.iterdir()] == ["规划说明.docx"]


def test_existing_scheduler(tmp_path):
    from distributed import LocalCluster

    region = _region(tmp_path, ["629904"])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        res = CliRunner().invoke(app, ["batch", str(region), "--out", str(tmp_path / "out"), "--scheduler", cluster.scheduler_address])
    assert res.exit_code == 0, res.output + repr(res.exception)
    table = pd.read_csv(tmp_path / "out" / "region_summary.csv", encoding="utf-8-sig")
    assert table["county"].tolist() == ["北岭县"] and table["worker"].iloc[0].startswith("tcp://")
    assert (tmp_path / "out" / "北岭县" / "map.html").is_file()


def test_validate_region_files(tmp_path):
    res = CliRunner().invoke(app, ["validate", str(DEMO_REGION)])
    assert res.exit_code == 0, res.output
    bad = _region(tmp_path, ["629901", "不存在县"], roadz="x")
    res = CliRunner().invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1 and "roadz" in res.output
    bad = _region(tmp_path, ["629901", "不存在县"])
    res = CliRunner().invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1 and "不存在县" in res.output


def test_counties_within_a_prefecture():
    region, base = batch.load_region(DEMO_REGION)
    jobs = batch.plan_jobs(region, base)
    assert [(j.adcode, j.name) for j in jobs] == [("629901", "示例县"), ("629902", "东塬县"), ("629903", "南川县"), ("629904", "北岭县")]
    assert len({j.hash for j in jobs}) == 4 and all(j.error is None for j in jobs)


def test_synthetic_prefecture_is_deterministic(tmp_path):
    from coverage.demo_region import generate_region

    a = generate_region(tmp_path / "a", seed=7)
    b = generate_region(tmp_path / "b", seed=7)
    for k in ("roads", "pop", "facilities", "candidates", "admin"):
        assert a[k].read_bytes() == b[k].read_bytes(), k
    counties = gpd.read_file(a["admin"], layer="districts").to_crs(4545)
    assert counties.area.between(100e6, 400e6).all()
    assert shapely.union_all(counties.geometry.values).area == pytest.approx(counties.area.sum(), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# real data: 澳门 and 西乡县 from their own files, one two-county region
# ----------------------------------------------------------------------------------------------


def test_real_counties_macau_and_xixiang(shared_data, tmp_path):
    edges = gpd.read_file(shared_data / "shaanxi_xixiang" / "road_network_pred_2021" / "edges.shp")
    xy = shapely.get_coordinates(edges.geometry.values)
    c = xy[np.argmin(np.hypot(xy[:, 0] - 107.766, xy[:, 1] - 32.983))]
    fac = tmp_path / "西乡县设施.csv"
    pd.DataFrame({"名称": ["西乡县人民医院", "城关小学"], "类型": ["人民医院", "小学"],
                  "经度": [c[0], c[0]], "纬度": [c[1], c[1] + 1e-4]}).to_csv(fac, index=False)
    shp = shared_data / "macau" / "osm_geofabrik_shp"
    region = {
        "name": "澳门与西乡县 真实数据批量测试",
        "admin": str(shared_data / "china_admin" / "seed_admin_boundaries_amap.gpkg"),
        "census": str(shared_data / "china_county_census_2020"),
        "counties": [
            {"area": "820000", "roads": str(shp / "gis_osm_roads_free_1.shp"),
             "population": str(shared_data / "macau" / "worldpop" / "mac_pd_2020_1km.tif"),
             "pois": [str(shp / "gis_osm_pois_free_1.shp")],
             "facilities": [{"path": str(shared_data / "macau" / "amap_poi_csv" / "macau_amap_medical_healthcare.csv"), "crs": "gcj02"}]},
            {"area": "610724", "roads": str(shared_data / "shaanxi_xixiang" / "road_network_pred_2021" / "edges.shp"),
             "population": str(shared_data / "china_worldpop_10km" / "worldpop_ppp_2020_10km_china_bbox.tif"),
             "facilities": [{"path": str(fac), "crs": "wgs84"}]},
        ],
    }
    p = tmp_path / "region.yaml"
    p.write_text(yaml.safe_dump(region, allow_unicode=True), encoding="utf-8")
    res = batch.run_batch(p, tmp_path / "out", workers=0)
    assert res.exit_code == 0, res.describe()
    t = res.table.set_index("adcode")
    assert t.loc["820000", "county"].startswith("澳门") and t.loc["610724", "county"] == "西乡县"
    assert 400_000 < t.loc["820000", "population"] < 1_000_000  # WorldPop 1 km density × cell area
    assert 250_000 < t.loc["610724", "population"] < 450_000  # 10 km grid; census 321,535
    assert t.loc["820000", "clinic_share"] > 0.5  # a dense city with 1,383 Amap medical POIs
    scn = yaml.safe_load((tmp_path / "out" / "西乡县" / "scenario.yaml").read_text(encoding="utf-8"))
    assert scn["population"]["groups"]["age60plus"]["share"] > 0.15  # the county's own census shares
    import zipfile

    from coverage import pipeline
    day = tuple(int(x) for x in pipeline.run_date().split("-"))
    for book in sorted((tmp_path / "out").rglob("gaps.xlsx")):  # the run's date, not the clock's time
        with zipfile.ZipFile(book) as z:
            assert {i.date_time for i in z.infolist()} == {(*day, 0, 0, 0)}, book


# ----------------------------------------------------------------------------------------------
# roads from several files (issue 13): clipped per file to the county window, then combined
# ----------------------------------------------------------------------------------------------


def _macau_region(tmp: Path, shared_data: Path, roads: list[str], name: str) -> Path:
    shp = shared_data / "macau" / "osm_geofabrik_shp"
    region = {"name": name, "admin": str(shared_data / "china_admin" / "seed_admin_boundaries_amap.gpkg"),
              "census": str(shared_data / "china_county_census_2020"), "counties": ["820000"], "roads": roads,
              "population": str(shared_data / "macau" / "worldpop" / "mac_pd_2020_1km.tif"),
              "pois": [str(shp / "gis_osm_pois_free_1.shp")]}
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(region, allow_unicode=True), encoding="utf-8")
    return p


def test_real_roads_split_into_two_files_give_the_same_figures(shared_data, tmp_path):
    """澳门's Geofabrik roads, cut west/east along a meridian through the county into two GPKGs.

    * Lines cut geometrically (``clip_by_rect``): every line crossing the cut ends at the same
      vertex in both files and the graph joins them there (all 166 crossings meet exactly), so
      routes are unchanged; the cut adds one node per crossing, which can become the nearest
      node of a population cell or facility, so the shares may move by a few ten-thousandths
      (measured: at most 0.0005).
    * Whole lines split by their position, with an overlap band present in both files (as
      neighbouring provinces' extracts hold the ways across their border): the duplicates are
      dropped and the figures are identical.
    """
    shp = shared_data / "macau" / "osm_geofabrik_shp" / "gis_osm_roads_free_1.shp"
    roads = gpd.read_file(shp)
    xc = float(np.median(shapely.get_coordinates(roads.geometry.values)[:, 0]))  # 113.553, across 澳门半岛 and 氹仔
    west, east = roads.copy(), roads.copy()
    west["geometry"] = shapely.clip_by_rect(roads.geometry.values, -180, -90, xc, 90)
    east["geometry"] = shapely.clip_by_rect(roads.geometry.values, xc, -90, 180, 90)
    west[~west.geometry.is_empty].to_file(tmp_path / "west.gpkg", engine="pyogrio")
    east[~east.geometry.is_empty].to_file(tmp_path / "east.gpkg", engine="pyogrio")
    x = roads.geometry.representative_point().x
    roads[x < xc + 0.005].to_file(tmp_path / "west_whole.gpkg", engine="pyogrio")
    roads[x >= xc - 0.005].to_file(tmp_path / "east_whole.gpkg", engine="pyogrio")

    runs = {}
    for name, files in (("one", [str(shp)]), ("cut", [str(tmp_path / "west.gpkg"), str(tmp_path / "east.gpkg")]),
                        ("whole", [str(tmp_path / "west_whole.gpkg"), str(tmp_path / "east_whole.gpkg")])):
        res = batch.run_batch(_macau_region(tmp_path, shared_data, files, name), tmp_path / name, workers=0)
        assert res.exit_code == 0, res.describe()
        runs[name] = res.table.iloc[0]
    one, cut, whole = runs["one"], runs["cut"], runs["whole"]
    assert _figures(tmp_path / "whole" / one["county"]) == _figures(tmp_path / "one" / one["county"])
    assert cut["population"] == pytest.approx(one["population"], rel=1e-9)
    for s in ("school", "clinic", "fitness"):
        assert 0.3 < one[f"{s}_share"] < 1
        assert cut[f"{s}_share"] == pytest.approx(one[f"{s}_share"], abs=0.002), s
        assert whole[f"{s}_share"] == one[f"{s}_share"]
    assert cut["circle15_share"] == pytest.approx(one["circle15_share"], abs=0.002)
    assert cut["standards_passed"] == one["standards_passed"]
    # the county folder holds one combined layer, clipped to the window, with the OSM fields
    scn = yaml.safe_load((tmp_path / "cut" / one["county"] / "scenario.yaml").read_text(encoding="utf-8"))
    lines = gpd.read_file(tmp_path / "cut" / one["county"] / scn["network"]["roads"]["path"])
    assert scn["network"]["class_field"] == "highway"
    assert {"highway", "oneway", "maxspeed"} <= set(lines.columns)
    assert set(lines["oneway"].dropna()) <= {"yes", "-1", "no"} and "yes" in set(lines["oneway"])


def test_several_pbfs_and_mixed_road_files(shared_data, tmp_path):
    """Several PBFs (one not reaching the county), and a PBF with a line file, combined per window."""
    from types import SimpleNamespace

    pbf = shared_data / "helsinki" / "osm" / "Helsinki.osm.pbf"
    other = shared_data / "sao_paulo" / "osm" / "spo_osm.pbf"
    w = shapely.box(24.93, 60.16, 24.96, 60.175)  # central Helsinki
    single, _cls, _osm = batch._road_lines(str(pbf), w, tmp_path, 0)
    assert len(single) > 100
    (tmp_path / "a").mkdir()
    spec = batch._stage_roads(SimpleNamespace(roads=[str(pbf), str(other), str(pbf)]), w, tmp_path / "a")
    both = gpd.read_file(spec.rsplit(":EPSG", 1)[0])
    assert len(both) == len(single)  # the same ways from two (overlapping) PBFs once; São Paulo holds none here
    # a PBF with a Geofabrik-style line file (fclass, oneway F/T/B): one class field, OSM oneway values
    geo = single.rename(columns={"highway": "fclass"}).assign(oneway=np.where(single["oneway"] == "yes", "F", "B"))
    geo["geometry"] = geo.geometry.translate(0.001, 0.0)
    geo.to_file(tmp_path / "geo.gpkg", engine="pyogrio")
    (tmp_path / "b").mkdir()
    spec = batch._stage_roads(SimpleNamespace(roads=[str(pbf), str(tmp_path / "geo.gpkg")]), w, tmp_path / "b")
    mixed = gpd.read_file(spec.rsplit(":EPSG", 1)[0])
    assert "fclass" not in mixed.columns and mixed["highway"].notna().all()
    assert (mixed["oneway"] == "yes").sum() == 2 * (single["oneway"] == "yes").sum() > 0
    # OSM classes and a Chinese class field cannot share one column; osmnx only alone
    single.rename(columns={"highway": "道路等级"}).to_file(tmp_path / "cn.gpkg", engine="pyogrio")
    (tmp_path / "c").mkdir()
    with pytest.raises(batch.InputError, match="class fields"):
        batch._stage_roads(SimpleNamespace(roads=[str(pbf), str(tmp_path / "cn.gpkg")]), w, tmp_path / "c")
    with pytest.raises(batch.InputError, match="osmnx"):
        batch._stage_roads(SimpleNamespace(roads=["osmnx", str(pbf)]), w, tmp_path / "c")
