"""Tests of the scenario loader and of validate (every problem, bilingual, with file/row/field)."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

from coverage.errors import InputError
from coverage.pipeline import validate
from coverage.scenario import Scenario, Share, load_scenario

ROOT = Path(__file__).resolve().parents[1]
DEMO_YAML = ROOT / "scenarios" / "demo_baseline.yaml"
DATA = ROOT / "data"
HAVE_DEMO = (DATA / "facilities" / "elderly_fitness_amap.xlsx").exists() and (DATA / "population" / "pop_100m.tif").exists()
needs_demo = pytest.mark.skipif(not HAVE_DEMO, reason="demo data not generated yet")

MINIMAL = """\
name: 测试
area:
  boundary: b.gpkg
population:
  total: pop.tif
  groups: {age0_2: {share: 0.025}, age60plus: p60.tif, age3_5: 0.03}
facilities:
  - path: f.csv
    crs: gcj02
standards: cn-default
"""


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_resolves_paths(tmp_path):
    sc = load_scenario(_write(tmp_path, MINIMAL))
    assert isinstance(sc, Scenario)
    assert sc.area.boundary.path == (tmp_path / "b.gpkg").resolve()
    assert sc.population.groups["age60plus"] == (tmp_path / "p60.tif").resolve()
    assert sc.population.groups["age0_2"] == Share(share=0.025)
    assert sc.population.groups["age3_5"] == Share(share=0.03)  # a bare number is a share
    assert sc.facilities[0].crs == "gcj02" and sc.facilities[0].path.is_absolute()
    assert sc.population.basis == "常住" and sc.standards == "cn-default"


def test_unknown_key_names_path_and_line(tmp_path):
    text = MINIMAL.replace("  total: pop.tif", "  totl: pop.tif")
    with pytest.raises(InputError) as e:
        load_scenario(_write(tmp_path, text))
    prob = e.value.problem
    assert prob.field == "population.totl" and prob.row == 5
    assert "未知的键" in prob.zh and "unknown key 'totl'" in prob.en and "total" in prob.en  # lists allowed keys
    assert prob.file.endswith("s.yaml")


def test_schema_errors_all_listed(tmp_path):
    text = MINIMAL.replace("name: 测试\n", "").replace("share: 0.025", "share: 2").replace("crs: gcj02", "crs: gcj02\n    sheat: 1")
    probs = validate(_write(tmp_path, text))
    fields = {p.field for p in probs}
    assert "name" in fields
    assert any(f and f.startswith("population.groups.age0_2") for f in fields)
    assert "facilities.0.sheat" in fields
    assert all(p.severity == "error" and p.zh and p.en for p in probs)
    line = next(p.row for p in probs if p.field == "facilities.0.sheat")
    assert line == 9  # "name:" was removed, so sheat is on line 9


def test_yaml_syntax_error(tmp_path):
    p = _write(tmp_path, "name: x\narea:\n  boundary: [a\npopulation: 1\n")
    probs = validate(p)
    assert len(probs) == 1 and probs[0].row is not None
    assert "YAML" in probs[0].zh and "syntax" in probs[0].en
    with pytest.raises(InputError):
        load_scenario(p)


def test_missing_scenario_file(tmp_path):
    probs = validate(tmp_path / "nope.yaml")
    assert "找不到" in probs[0].zh and "not found" in probs[0].en


def test_missing_files_reported_together(tmp_path):
    probs = validate(_write(tmp_path, MINIMAL))
    missing = [p for p in probs if "not found" in p.en]
    named = " ".join(p.en for p in missing)
    for f in ("b.gpkg", "pop.tif", "p60.tif", "f.csv"):
        assert f in named
    assert all("找不到" in p.zh for p in missing)


@needs_demo
def test_demo_scenario_has_no_errors():
    probs = validate(DEMO_YAML)
    errors = [str(p) for p in probs if p.severity == "error"]
    assert errors == []
    sc = load_scenario(DEMO_YAML)
    assert sc.area.seat is not None and sc.standards == "cn-default"
    t = gpd.read_file(sc.area.units.path, layer=sc.area.units.layer)
    seat = t.loc[t["name"] == "城关街道", ["seat_lon", "seat_lat"]].iloc[0]
    assert sc.area.seat == pytest.approx((seat["seat_lon"], seat["seat_lat"]))


@needs_demo
def test_broken_demo_copy_reports_every_problem(tmp_path):
    """One scenario with many mistakes: validate names each one, with file/row/field, zh and en."""
    fac = (DATA / "facilities" / "facilities.csv").read_text(encoding="utf-8-sig").splitlines()
    head, rows = fac[0], fac[1:]
    cols = head.split(",")
    ilon, ilat = cols.index("经度"), cols.index("纬度")

    def edit(line, lon=None, lat=None, typ=None):
        parts = line.split(",")
        if lon is not None:
            parts[ilon] = lon
        if lat is not None:
            parts[ilat] = lat
        if typ is not None:
            parts[cols.index("类型")] = typ
        return ",".join(parts)

    rows[2] = edit(rows[2], lon="")  # line 4 of the file (header = 1, as Excel shows it): empty longitude
    rows[4] = edit(rows[4], lon="110.5")  # line 6: ~230 km east, outside the county
    rows[6] = edit(rows[6], typ="殡葬服务").replace(rows[6].split(",")[cols.index("名称")], "城关公墓")  # line 8: no service
    (tmp_path / "fac.csv").write_text("\ufeff" + "\n".join([head] + rows) + "\n", encoding="utf-8")
    shutil.copy(DATA / "facilities" / "elderly_fitness_amap.xlsx", tmp_path / "amap.xlsx")
    # empty villages layer
    v = gpd.read_file(DATA / "boundaries" / "villages.gpkg", layer="villages")
    v.iloc[:0].to_file(tmp_path / "villages.gpkg", layer="villages")
    # age raster far away from the county (no overlap)
    with rasterio.open(tmp_path / "far.tif", "w", driver="GTiff", height=5, width=5, count=1, dtype="float32",
                       crs=4326, transform=Affine(0.01, 0, 10.0, 0, -0.01, 50.0), nodata=-1) as d:
        d.write(np.ones((1, 5, 5), dtype="float32"))
    sc = yaml.safe_load(DEMO_YAML.read_text(encoding="utf-8"))
    absd = lambda p: str((DEMO_YAML.parent / p).resolve())  # noqa: E731
    for k in ("boundary", "units", "urban"):
        sc["area"][k]["path"] = absd(sc["area"][k]["path"])
    sc["area"]["villages"] = {"path": "villages.gpkg", "layer": "villages"}
    sc["population"]["total"] = str(tmp_path / "far.tif")
    sc["population"]["groups"] = {"age60plus": absd(sc["population"]["groups"]["age60plus"])}
    sc["network"]["roads"]["path"] = absd(sc["network"]["roads"]["path"])
    sc["facilities"] = [
        {"path": "fac.csv", "crs": "wgs84"},
        {"path": "amap.xlsx", "crs": "wgs84"},  # really GCJ-02
        {"path": "fac.csv", "crs": "marsgrid"},
    ]
    sc["candidates"] = {"path": "missing_candidates.csv"}
    sc["standards"] = "no_such_preset.yaml"
    sc["changes"] = {
        "add": [
            {"id": "N1", "name": "城东养老服务中心", "category": "elderly_center", "lon": 107.93, "lat": 35.30},
            {"id": "N2", "name": "新幼儿园", "category": "school", "ftype": "kindergarden", "lon": 107.92, "lat": 35.29},
            {"id": "N3", "name": "远处诊所", "category": "clinic", "lon": 100.0, "lat": 35.29},
        ],
        "remove": ["NO_SUCH_ID"],
    }
    p = tmp_path / "broken.yaml"
    p.write_text(yaml.safe_dump(sc, allow_unicode=True), encoding="utf-8")
    probs = validate(p)
    text = [str(x) for x in probs]

    def find(pred):
        hits = [x for x in probs if pred(x)]
        assert hits, "\n".join(text)
        return hits[0]

    # non-numeric / empty coordinate with its row
    e = find(lambda x: x.file and x.file.endswith("fac.csv") and x.row == 4 and x.field == "经度")
    assert "第 4 行" in e.zh and "row 4" in e.en and "empty" in e.en
    # outside the area, far: error naming line 6
    e = find(lambda x: x.file and x.file.endswith("fac.csv") and "outside the area" in x.en and x.severity == "error")
    assert e.row == 6 and "第 6" in e.zh
    # unmapped type: warning with the name
    e = find(lambda x: x.severity == "warning" and "殡葬服务" in x.zh)
    assert "殡葬服务" in e.en
    # a GCJ-02 file declared wgs84
    e = find(lambda x: x.field.endswith("crs") and x.file and x.file.endswith("amap.xlsx"))
    assert "gcj02" in e.en and "坐标系" in e.zh
    # unknown crs keyword
    e = find(lambda x: x.field == "crs" and "marsgrid" in x.en)
    assert "marsgrid" in e.zh
    # empty layer
    e = find(lambda x: x.file and x.file.endswith("villages.gpkg"))
    assert "空" in e.zh and "empty" in e.en
    # population raster not overlapping
    e = find(lambda x: x.file and x.file.endswith("far.tif"))
    assert "不重叠" in e.zh and "does not overlap" in e.en
    # missing candidates file and standards preset
    find(lambda x: "missing_candidates.csv" in x.en and "not found" in x.en and x.field == "candidates")
    find(lambda x: x.field == "standards" and "no_such_preset" in x.en)
    # changes
    e = find(lambda x: x.field == "changes.add[0].category")
    assert "elderly_center" in e.zh and "elderly_center" in e.en and e.row is not None
    find(lambda x: x.field == "changes.add[1].ftype" and "kindergarden" in x.en)
    e = find(lambda x: x.field == "changes.add[2].lon/lat")
    assert e.severity == "error" and "outside the area" in e.en
    find(lambda x: x.field == "changes.remove[0]" and "NO_SUCH_ID" in x.zh)
    # every problem is bilingual and printable
    for x in probs:
        assert x.zh and x.en and str(x).startswith(f"[{x.severity}]")


@needs_demo
def test_problems_keep_the_reading_order(tmp_path):
    """Population, then roads, then facilities, whichever of them is read beside another (``read_inputs``' threads)."""
    sc = yaml.safe_load(DEMO_YAML.read_text(encoding="utf-8"))
    absd = lambda p: str((DEMO_YAML.parent / p).resolve())  # noqa: E731
    for k in ("boundary", "units", "villages", "urban"):
        sc["area"][k]["path"] = absd(sc["area"][k]["path"])
    sc["population"]["total"] = absd(sc["population"]["total"])
    sc["population"]["groups"] = {g: absd(p) for g, p in sc["population"]["groups"].items()}
    sc["population"]["groups"]["age60plus"] = str(tmp_path / "no_elderly.tif")
    sc["network"]["roads"] = {"path": str(tmp_path / "no_roads.gpkg")}
    sc["facilities"] = [{"path": absd(sc["facilities"][0]["path"]), "crs": "wgs84"},
                        {"path": str(tmp_path / "no_amap.xlsx"), "crs": "gcj02"}]
    sc["candidates"] = {"path": str(tmp_path / "no_candidates.csv")}
    p = tmp_path / "three_missing.yaml"
    p.write_text(yaml.safe_dump(sc, allow_unicode=True), encoding="utf-8")
    missing = [x for x in validate(p) if "not found" in x.en]
    order = [next(n for n in ("no_elderly", "no_roads", "no_amap", "no_candidates") if n in x.en) for x in missing]
    assert order == ["no_elderly", "no_roads", "no_amap", "no_candidates"], [str(x) for x in missing]
