"""The demo's project bank (issue 14): plausible projects, a list a county can submit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from coverage import evaluate as ev
from coverage import pipeline
from coverage.standards import load_preset


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, pipeline.RunResult]:
    out = tmp_path_factory.mktemp("bank") / "out"
    result = pipeline.run_demo(out)
    return out, result


def _sheet(out: Path, name: str) -> pd.DataFrame:
    return pd.read_excel(out / "gaps.xlsx", sheet_name=name, dtype={"乡镇(街道)": str})


def test_no_new_building_where_a_presence_rule_is_met(demo) -> None:
    _out, res = demo
    preset = load_preset(res.model.inputs.scenario.standards)
    pres, gaps = res.presence, res.gaps
    rules = {r.id: r for r in preset.presence}
    ok = pres[(pres["level"] != "county") & pres["ok"].astype(bool)]
    has = {(f, str(c)) for rid, c in zip(ok["rule_id"], ok["unit_code"]) for f in rules[rid].ftypes}
    built = gaps[gaps["kind"].isin(["uncovered_cluster", "missing_facility"])]
    for r in built.itertuples():
        if preset.project(r.ftype).one_per_place:
            assert (r.ftype, str(r.unit_code)) not in has, r.project_name
    # every 乡镇 of the demo has its 卫生院: not one new 乡镇卫生院
    assert not (gaps["ftype"] == "township_health_center").any()
    # no building below its type's minimum served population
    for r in built.itertuples():
        m = preset.project(r.ftype).min_people
        if r.kind == "uncovered_cluster" and m:
            assert r.population >= m, r.project_name
    sug = gaps[gaps["kind"] == "service_suggestion"]
    assert len(sug) and (sug["construction"] == "流动服务").all() and (sug["cost"] <= 15).all()


def test_one_row_per_site_and_capped_lines(demo) -> None:
    _out, res = demo
    g = res.gaps
    sites = g[g["kind"].isin(["uncovered_cluster", "missing_facility", "service_suggestion"])]
    village = sites[sites["village"] != ""]
    assert not village.duplicated(["unit_code", "village", "ftype_label"]).any()
    placed = sites.dropna(subset=["lon", "lat"])
    assert not placed.duplicated(["lon", "lat"]).any()  # no shared centroids
    # capacity lines are capped by the template's max_scale (no 3,349-bed line)
    preset = load_preset(res.model.inputs.scenario.standards)
    for r in g[g["kind"] == "below_target"].itertuples():
        cap = preset.project(r.ftype).max_scale
        assert cap is None or r.scale_value <= cap, r.project_name
    assert not g["scale"].astype(str).str.contains("e[+-]", regex=True).any()


def test_default_bank_at_most_50_with_total(demo) -> None:
    out, res = demo
    wb = openpyxl.load_workbook(out / "gaps.xlsx")
    assert wb.sheetnames[:3] == ["项目库", "储备项目", "分乡镇小计"]
    bank, reserve = _sheet(out, "项目库"), _sheet(out, "储备项目")
    assert 0 < len(bank) <= 50 and len(bank) + len(reserve) == len(res.gaps)
    sub = _sheet(out, "分乡镇小计")
    total = sub[(sub["清单"] == "项目库") & (sub["乡镇(街道)"] == "合计")].iloc[0]
    assert total["项目数"] == len(bank)
    assert total["估算投资(万元)"] == pytest.approx(bank["估算投资(万元)"].fillna(0).sum(), abs=0.05)
    assert total["新增覆盖人口"] == bank["新增覆盖人口"].fillna(0).sum()
    towns = sub[(sub["清单"] == "项目库") & (sub["乡镇(街道)"] != "合计")]
    assert towns["估算投资(万元)"].sum() == pytest.approx(total["估算投资(万元)"], abs=0.05)
    # ranked: 约束性 first
    nat = list(bank["指标性质"])
    assert nat == sorted(nat, key={"约束性": 0, "预期性": 1}.get)


def test_every_new_row_has_new_covered_people(demo) -> None:
    out, res = demo
    new = res.gaps[res.gaps["construction"] == "新建"]
    assert len(new) and pd.to_numeric(new["new_covered"], errors="coerce").notna().all()
    assert res.gaps["new_covered"].notna().all()
    ws = openpyxl.load_workbook(out / "gaps.xlsx")["项目库"]
    head = [c.value for c in ws[1]]
    j = head.index("新增覆盖人口") + 1
    assert all(isinstance(ws.cell(r, j).value, int) for r in range(2, ws.max_row + 1))
    assert ws.cell(2, j).number_format == "#,##0"


def test_select_bank_top_and_budget() -> None:
    g = pd.DataFrame({"cost": [100.0, 50.0, np.nan, 30.0, 10.0]})
    assert list(ev.select_bank(g, top=2)) == [True, True, False, False, False]
    assert list(ev.select_bank(g, top=None, budget=90)) == [False, True, True, True, True]
    assert ev.select_bank(g).all()


def test_bank_limits_write_top_and_budget(demo, tmp_path) -> None:
    from coverage.report.excel import write_gaps_xlsx

    _out, res = demo
    with pipeline.bank_limits(10, 200.0):
        top, budget = pipeline._BANK_LIMITS.get()
    assert (top, budget) == (10, 200.0) and pipeline._BANK_LIMITS.get()[0] == ev.BANK_TOP
    path = write_gaps_xlsx(tmp_path / "g.xlsx", res.gaps, res.summary, top=10, budget=200.0)
    bank = pd.read_excel(path, sheet_name="项目库")
    assert len(bank) <= 10 and bank["估算投资(万元)"].fillna(0).sum() <= 200.0


def test_capacity_rows_of_a_township_sit_in_it_where_people_live(demo) -> None:
    """A 乡镇's capacity shortfall (per-1000 rule) gets a reference position: a populated cell inside
    that 乡镇 (checked with the township polygon), not a centroid, not shared with another row."""
    import geopandas as gpd

    _out, res = demo
    g = res.gaps
    rows = g[(g["kind"] == "below_target") & (g["unit_code"] != "")]
    assert len(rows)
    assert rows[["lon", "lat"]].notna().all().all()
    units = res.model.inputs.units.to_crs(4326).set_index("code")
    pts = gpd.GeoSeries(gpd.points_from_xy(rows["lon"], rows["lat"]), crs=4326)
    for p, code in zip(pts, rows["unit_code"]):
        assert units.loc[code].geometry.buffer(1e-6).contains(p), code
    placed = g.dropna(subset=["lon", "lat"])
    assert not placed.duplicated(["lon", "lat"]).any()
    cells = res.model.cells.to_crs(4326)
    near = np.hypot(cells.geometry.x.to_numpy()[:, None] - pts.x.to_numpy(), cells.geometry.y.to_numpy()[:, None] - pts.y.to_numpy())
    j = near.argmin(axis=0)
    assert (near[j, np.arange(len(j))] < 1e-6).all() and (cells["pop"].to_numpy()[j] > 0).all()
    assert rows["note"].str.contains("参考位置").all()
