"""`covplan site` and `covplan compare` end to end on the demo county."""

from __future__ import annotations

import json

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from coverage.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site_out(tmp_path_factory, repo_root):
    out = tmp_path_factory.mktemp("site") / "out"
    res = CliRunner().invoke(app, [
        "site", str(repo_root / "scenarios" / "demo_baseline.yaml"), "--category", "elderly",
        "--add", "4", "--out", str(out),
    ])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_site_proposes_sites_that_close_elderly_gaps(site_out, repo_root):
    out, text = site_out
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    siting = s["siting"]
    assert siting["model"] == "MCLP" and len(siting["selected"]) == 4
    assert 0.0 <= siting["gap"] <= 0.01  # within 1 % of the proven bound
    cands = pd.read_csv(repo_root / "data" / "facilities" / "candidates.csv", encoding="utf-8-sig")
    assert set(siting["selected"]) <= set(cands["编号"])
    cmp = pd.read_csv(out / "comparison.csv", dtype={"unit_code": str}, keep_default_na=False)
    county = cmp[(cmp["service"] == "elderly") & (cmp["unit_code"] == "")].iloc[0]
    # the people the chosen sites newly cover are exactly the plan's gain over the baseline
    assert county["gained"] == pytest.approx(siting["new_covered"], rel=1e-6)
    assert county["lost"] == 0
    assert county["share_plan"] > county["share_base"]
    assert s["categories"]["elderly"]["population_covered"] == pytest.approx(county["covered_plan"], rel=1e-9)


def test_site_projects_lead_the_project_bank(site_out):
    wb = openpyxl.load_workbook(site_out[0] / "gaps.xlsx")
    rows = list(wb["项目库"].iter_rows(values_only=True))
    head, body = rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]
    assert "新增覆盖人口" in head
    proposed = [r for r in body if str(r["备注"]).startswith("选址第")]
    assert len(proposed) == 4
    assert all(r["新增覆盖人口"] > 0 and r["建设性质"] in {"新建", "改扩建", "转型"} for r in proposed)
    assert "方案比较" in wb.sheetnames


def test_site_needs_add_or_target(repo_root, tmp_path):
    res = CliRunner().invoke(app, ["site", str(repo_root / "scenarios" / "demo_baseline.yaml"),
                                   "--category", "elderly", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "--add" in res.output
    assert not (tmp_path / "o").exists()


def test_compare_plan_with_baseline(repo_root, tmp_path):
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["compare", str(repo_root / "scenarios" / "demo_baseline.yaml"),
                                   str(repo_root / "scenarios" / "demo_plan.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    cmp = pd.read_csv(out / "comparison.csv", dtype={"unit_code": str}, keep_default_na=False)
    el = cmp[cmp["service"] == "elderly"].set_index("unit_name")
    # the plan adds elderly centres in 麻川乡, 青岭乡 and 峡口乡 and removes nothing
    assert (cmp["lost"] == 0).all()
    for town in ("麻川乡", "青岭乡", "峡口乡"):
        assert el.loc[town, "gained"] > 0
    assert el.loc["城关街道", "gained"] == 0
    assert "覆盖变化" in (out / "map.html").read_text(encoding="utf-8")  # the diff layer's legend
    import pyogrio

    change = pyogrio.read_dataframe(out / "layers.gpkg", layer="coverage_change")
    assert change["gained"].sum() == pytest.approx(cmp[cmp["unit_code"] == ""]["gained"].sum(), rel=1e-6)
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["scenario"] == "示例县 养老服务补短板方案"
    assert s["comparison"]["base"] == "示例县 现状评估"


def test_siting_rules_for_a_service_or_a_facility_type():
    from coverage.errors import InputError
    from coverage.plans import siting_rules
    from coverage.standards import load_preset

    preset = load_preset("cn-default")
    service, sides, fixed = siting_rules(preset, "elderly")
    assert service == "elderly" and fixed is None and set(sides) == {"urban", "rural"}
    # a facility type takes only the rules that count it: kindergartens, not primary schools
    service, sides, fixed = siting_rules(preset, "kindergarten")
    assert service == "school" and fixed == "kindergarten"
    assert all("kindergarten" in r.ftypes for rules in sides.values() for r in rules)
    assert sum(len(r) for r in sides.values()) == 2
    with pytest.raises(InputError) as err:
        siting_rules(preset, "swimming")
    assert "swimming" in str(err.value) and "未知" in str(err.value)


def test_generated_candidates_respect_exclusion_polygons(repo_root):
    import geopandas as gpd

    from coverage import pipeline
    from coverage.plans import candidate_sites

    model = pipeline.evaluate_model(pipeline.build_model(pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml"))).model
    chengqu = gpd.read_file(repo_root / "data" / "boundaries" / "county.gpkg", layer="chengqu")
    zone = chengqu.to_crs(model.cells.crs).union_all()
    free = candidate_sites(model, "elderly", generate=15)
    free = free[free["source"] == "generated"]
    assert len(free) == 15 and free.within(zone).any()  # unserved old people live in the 城区 too
    kept = candidate_sites(model, "elderly", generate=15, exclude=chengqu)
    gen = kept[kept["source"] == "generated"]
    assert len(gen) == 15 and not gen.within(zone).any()
    assert (kept["source"] == "candidates").sum() == 61  # the scenario's own candidates stay


def test_site_clinics_close_clinic_gaps(repo_root, tmp_path):
    out = tmp_path / "clinic"
    res = CliRunner().invoke(app, [
        "site", str(repo_root / "scenarios" / "demo_baseline.yaml"), "--category", "clinic",
        "--add", "3", "--out", str(out),
    ])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    cmp = pd.read_csv(out / "comparison.csv", dtype={"unit_code": str}, keep_default_na=False)
    county = cmp[(cmp["service"] == "clinic") & (cmp["unit_code"] == "")].iloc[0]
    assert len(s["siting"]["selected"]) == 3 and s["siting"]["gap"] <= 0.01
    # what the solver counted is what the re-evaluated plan shows
    assert county["gained"] == pytest.approx(s["siting"]["new_covered"], rel=1e-6) and county["gained"] > 0
    assert county["lost"] == 0


def test_service_cover_matches_one_search_per_site(repo_root):
    """The cover matrix of the school service (kindergartens and primary schools share a mode and a
    threshold, so they share searches over the union of their cells) against an independent count:
    a (rule, cell) row is covered by a site exactly when ``access.nearest`` from that site alone
    reaches the cell within the rule's threshold and the site's type counts for the rule."""
    import numpy as np

    from coverage import access, pipeline, plans

    model = pipeline.build_model(pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml"))
    cands = model.inputs.candidates
    cover, weights, locked, rows = plans.service_cover(model, "school", cands)
    fac = model.inputs.facilities
    existing = fac[fac["category"] == "school"].reset_index(drop=True)
    n_exist = len(existing)
    assert list(locked) == list(range(n_exist)) and cover.shape == (len(rows), n_exist + len(cands))
    ftypes = np.concatenate([existing["ftype"].to_numpy(), plans.candidate_ftypes(model, "school", cands)])
    rules = {r.id: r for rs in model.inputs.preset.headline("school").values() for r in rs}
    assert len({(pipeline.mode_of(r, model.inputs.scenario), r.threshold) for r in rules.values()}) < len(rules)
    rng = np.random.default_rng(7)
    cover = cover.tocsc()
    for j in rng.choice(cover.shape[1], 12, replace=False):
        site = existing.iloc[[j]] if j < n_exist else cands.iloc[[j - n_exist]]
        got = cover[:, [j]].toarray().ravel()
        want = np.zeros(len(rows), dtype=bool)
        for rid, idx in rows.groupby("rule_id").indices.items():
            rule = rules[rid]
            mode = pipeline.mode_of(rule, model.inputs.scenario)
            t = access.nearest(model.graphs[mode], model.snapped_cells[mode], access.snap(model.graphs[mode], site),
                               limit=rule.threshold)[rule.unit].to_numpy()
            want[idx] = (t[rows["cell"].to_numpy()[idx]] <= rule.threshold) & (ftypes[j] in rule.ftypes)
        assert np.array_equal(got, want), j
    assert np.allclose(weights, [model.cells[rules[r].group].iloc[c] for r, c in zip(rows["rule_id"], rows["cell"])])
