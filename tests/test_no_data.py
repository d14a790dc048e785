"""No data is not zero (DESIGN §4.2): a service without facilities, the 15 km circle without a seat.

Unit cases on random cells (against the figures computed without the missing rules), then the demo
with the fitness facilities removed (every output file) and Macau with only the school file.
"""

from __future__ import annotations

import json

import numpy as np
import openpyxl
import pandas as pd
import pytest

from coverage import categories, evaluate as ev, pipeline
from tests.test_evaluate import PRESET, random_cells

FITNESS = set(categories.ftypes_of("fitness"))


def _facilities(without: str | None = None) -> pd.DataFrame:
    types = [t for t in categories.FTYPES if without is None or categories.service_of(t) != without]
    return pd.DataFrame({"ftype": types})


def test_no_data_rules_lists_rules_without_facilities_and_the_seat():
    nd = ev.no_data_rules(PRESET, _facilities("fitness"), seat=(107.9, 35.3))
    fit = {r.id for r in [*PRESET.active_circles(), *PRESET.active_presence(), *PRESET.active_provision()]
           if r.service == "fitness"}
    assert set(nd) == fit and all(v.startswith("无设施数据") and "no data" in v for v in nd.values())
    assert ev.no_data_rules(PRESET, _facilities(), seat=(107.9, 35.3)) == {}
    urc = PRESET.urban_rural()
    assert set(ev.no_data_rules(PRESET, _facilities(), seat=None)) == {urc.id}


def test_summary_nulls_only_what_has_no_data():
    cells = random_cells(5)
    nd = ev.no_data_rules(PRESET, _facilities("fitness"), seat=None)
    full = ev.summary(cells, PRESET, "x")
    part = ev.summary(cells, PRESET, "x", no_data=nd)
    fit = part["categories"]["fitness"]
    assert fit["population_covered"] is None and fit["share_covered"] is None and fit["note"]
    assert fit["population"] == full["categories"]["fitness"]["population"]  # the people are known
    assert all(u["covered"] is None and u["share"] is None and u["note"] for u in fit["by_unit"])
    urc = part["urban_rural_circle"]
    assert urc["population_covered"] is None and urc["note"].startswith("无数据")
    for key in ("school", "clinic", "elderly"):  # untouched
        assert part["categories"][key] == full["categories"][key]
    rules = {r["id"]: r for r in part["rules"]}
    assert all(rules[r]["covered"] is None for r in nd if r in rules)
    assert {x["rule"] for x in part["no_data"]} == set(nd)
    json.dumps(part, allow_nan=False)


def test_a_unit_without_people_of_the_missing_side_keeps_its_figure():
    """Only the urban elderly rule lacks data: units with no urban old people keep a figure."""
    cells = random_cells(7)
    cells.loc[cells["unit_code"] == "U0", "urban"] = False
    rule = next(r for side, rs in PRESET.headline("elderly").items() if side == "urban" for r in rs)
    svc = ev.service_coverage(cells, PRESET, no_data={rule.id: "无设施数据：test"})
    el = svc[svc["service"] == "elderly"].set_index("unit_code")
    full = ev.service_coverage(cells, PRESET).query("service == 'elderly'").set_index("unit_code")
    assert el.loc["U0", "covered"] == full.loc["U0", "covered"] and el.loc["U0", "note"] == ""
    assert np.isnan(el.loc["U1", "covered"]) and np.isnan(el.loc[ev.COUNTY_CODE, "covered"])


@pytest.fixture(scope="module")
def no_fitness(repo_root, tmp_path_factory):
    """The demo with the fitness rows taken out of its Amap workbook (elderly rows kept)."""
    tmp = tmp_path_factory.mktemp("nofit")
    x = pd.read_excel(repo_root / "data" / "facilities" / "elderly_fitness_amap.xlsx", sheet_name="高德POI导出")
    keep = x[(categories.classify(x["类型"])["category"] != "fitness").to_numpy()]
    assert len(keep) < len(x)
    keep.to_excel(tmp / "elderly.xlsx", index=False)
    yml = tmp / "scenario.yaml"
    yml.write_text(
        f"extends: {repo_root / 'scenarios' / 'demo_baseline.yaml'}\nfacilities:\n"
        f"  - {{path: {repo_root / 'data' / 'facilities' / 'facilities.csv'}, crs: wgs84}}\n"
        f"  - {{path: {tmp / 'elderly.xlsx'}, crs: gcj02}}\n", encoding="utf-8")
    inputs = pipeline.load_inputs(yml)
    assert not FITNESS & set(inputs.facilities["ftype"])
    result = pipeline.evaluate_model(pipeline.build_model(inputs))
    pipeline.write_outputs(result, tmp / "out")
    return result


def test_demo_without_fitness_summary_and_terminal(no_fitness):
    s = no_fitness.summary
    fit = s["categories"]["fitness"]
    assert fit["population_covered"] is None and fit["share_covered"] is None and "no data" in fit["note"]
    assert "no_facility_data" in {w["code"] for w in s["warnings"]}
    # the other services: the same figures as the cells give (nothing else became null)
    cells = no_fitness.model.cells
    for key in ("school", "clinic", "elderly"):
        pop, cov = ev.service_cells(cells, no_fitness.model.inputs.preset, key)
        assert s["categories"][key]["population_covered"] == pytest.approx(cov.sum(), abs=1e-3)
    text = no_fitness.describe()
    assert "(fitness): 无设施数据 / no data" in text and "(clinic): 覆盖" in text


def test_demo_without_fitness_files(no_fitness):
    out = no_fitness.out_dir
    csv = pd.read_csv(out / "coverage_by_unit.csv", dtype=str, keep_default_na=False)
    assert csv.loc[0, "覆盖人口"].isdigit()  # whole people, as without missing data
    fit = csv[(csv["层级"] == "服务汇总") & (csv["服务领域"] == "体育健身")]
    assert len(fit) == 1 + len(no_fitness.model.inputs.units)
    assert (fit["覆盖人口"] == ev.NO_DATA).all() and (fit["覆盖率(%)"] == ev.NO_DATA).all()
    other = csv[(csv["层级"] == "服务汇总") & (csv["服务领域"] != "体育健身")]
    assert not (other["覆盖人口"] == ev.NO_DATA).any()
    # gaps.xlsx: one row for the missing layer instead of a row per cluster, unit and village
    inputs, preset = no_fitness.model.inputs, no_fitness.model.inputs.preset
    gaps = no_fitness.gaps
    missing = gaps[gaps["kind"] == "missing_data"]
    assert len(missing) == 1 and gaps.index[gaps["kind"] == "missing_data"][0] == 0
    assert not (gaps["service_key"] == "fitness").sum() - 1
    without = ev.gap_table(
        ev.circle_coverage(no_fitness.model.cells, preset, units=inputs.units), no_fitness.presence,
        no_fitness.provision, None, preset, "示例县", 2027)  # what the rows would be without the rule
    assert (without["service_key"] == "fitness").sum() > 100
    wb = openpyxl.load_workbook(out / "gaps.xlsx", read_only=True)
    rows = list(wb["项目库"].iter_rows(values_only=True))
    assert "数据缺失" in str(rows[1][4])
    assert sum("体育" in str(r[2]) or "文体" in str(r[2]) for r in rows[1:]) == 1
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "无设施数据" in report
    page = (out / "map.html").read_text(encoding="utf-8")
    assert json.dumps("体育健身（无设施数据）")[1:-1] in page or "体育健身（无设施数据）" in page  # the switcher
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["categories"]["fitness"]["population_covered"] is None


def test_macau_with_only_the_school_file(repo_root, tmp_path):
    """Real data: the Amap education file alone. Clinics and elderly care have no data."""
    base = repo_root / "tests" / "data" / "macau.yaml"
    edu = (repo_root / ".." / "shared" / "data" / "macau" / "amap_poi_csv" / "macau_amap_education_culture.csv").resolve()
    yml = tmp_path / "macau_schools.yaml"
    yml.write_text(f"extends: {base}\nfacilities:\n  - path: {edu}\n    crs: gcj02\n"
                   "    columns: {lon: lon_gcj02, lat: lat_gcj02, type: type, id: id}\n", encoding="utf-8")
    inputs = pipeline.load_inputs(yml)
    have = set(inputs.facilities["category"])
    assert "school" in have and not {"clinic", "elderly"} & have  # the file holds a few sports venues too
    result = pipeline.evaluate_model(pipeline.build_model(inputs))
    cats = result.summary["categories"]
    assert cats["school"]["population_covered"] is not None and cats["school"]["population_covered"] > 0
    for key in ("clinic", "elderly"):
        assert cats[key]["population_covered"] is None and cats[key]["share_covered"] is None and cats[key]["note"], key
    gaps = result.gaps
    assert {"clinic", "elderly"} <= set(gaps.loc[gaps["kind"] == "missing_data", "service_key"])
    # one row each, never a gap row per place for a service without facilities
    for key in ("clinic", "elderly"):
        assert (gaps["service_key"] == key).sum() == 1
    assert "(clinic): 无设施数据 / no data" in result.describe()
