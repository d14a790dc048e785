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
