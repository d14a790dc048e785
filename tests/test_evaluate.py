"""Tests of coverage.evaluate against plain-Python references and hand-made cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from shapely.geometry import Point, box

from coverage import evaluate as ev
from coverage.errors import InputError
from coverage.standards import load_preset

CRS = 4547  # CGCS2000 3-degree GK CM 114E (metric)
GROUPS = ["pop", "age0_2", "age3_5", "age6_11", "age12_14", "age60plus"]
PRESET = load_preset("cn-default")
DATA = Path(__file__).resolve().parents[1] / "data"


def random_cells(seed: int, n: int = 60, n_units: int = 3, inf_share: float = 0.2) -> gpd.GeoDataFrame:
    """Small random demand table with one time column per circle rule of cn-default."""
    rng = np.random.default_rng(seed)
    ncols = 10
    row, col = np.divmod(np.arange(n), ncols)
    df = gpd.GeoDataFrame(
        {"cell": np.arange(n), "row": row, "col": col},
        geometry=gpd.points_from_xy(500000 + col * 100.0, 3900000 + row * 100.0), crs=CRS,
    )
    df["pop"] = rng.integers(0, 50, n).astype(float)
    for g in GROUPS[1:]:
        df[g] = np.round(df["pop"] * rng.uniform(0, 0.2, n), 2)
    u = rng.integers(0, n_units, n)
    df["unit_code"] = [f"U{i}" for i in u]
    df["unit_name"] = [f"单元{i}" for i in u]
    df["urban"] = rng.random(n) < 0.5
    rules = [*PRESET.active_circles(), PRESET.urban_rural()]
    for r in rules:
        t = rng.uniform(0, 2 * r.threshold, n)
        t[rng.random(n) < inf_share] = np.inf
        df[r.column] = t
    df["no_road"] = rng.random(n) < 0.1
    return df


def reference_rule(cells: pd.DataFrame, rule) -> dict[str, tuple[float, float]]:
    """Plain loops: per unit (and '' for the county) → (population, covered)."""
    out: dict[str, list[float]] = {"": [0.0, 0.0]}
    for _, c in cells.iterrows():
        ok = rule.applies_to == "all" or (rule.applies_to == "urban") == bool(c["urban"])
        p = float(c[rule.group]) if ok else 0.0
        cov = p if (ok and c[rule.column] <= rule.threshold) else 0.0
        for key in ("", c["unit_code"]):
            out.setdefault(key, [0.0, 0.0])
            out[key][0] += p
            out[key][1] += cov
    return {k: (v[0], v[1]) for k, v in out.items()}


@pytest.mark.parametrize("seed", range(5))
def test_circle_coverage_matches_reference(seed):
    cells = random_cells(seed)
    cov = ev.circle_coverage(cells, PRESET)
    rules = [*PRESET.active_circles(), PRESET.urban_rural()]
    assert list(dict.fromkeys(cov["rule_id"])) == [r.id for r in rules]
    for rule in rules:
        ref = reference_rule(cells, rule)
        got = cov[cov["rule_id"] == rule.id].set_index("unit_code")
        assert set(got.index) == set(ref)
        for code, (p, c) in ref.items():
            assert got.at[code, "population"] == pytest.approx(p)
            assert got.at[code, "covered"] == pytest.approx(c)
            if p > 0:
                assert got.at[code, "share"] == pytest.approx(c / p)
            else:
                assert math.isnan(got.at[code, "share"])


@pytest.mark.parametrize("seed", range(3))
def test_service_coverage_matches_reference(seed):
    cells = random_cells(seed)
    svc = ev.service_coverage(cells, PRESET)
    for service in ["school", "clinic", "elderly", "fitness"]:
        sides = PRESET.headline(service)
        pop = cov = 0.0
        for _, c in cells.iterrows():
            side = "urban" if c["urban"] else "rural"
            for r in sides.get(side, []):
                pop += c[r.group]
                cov += c[r.group] if c[r.column] <= r.threshold else 0.0
        row = svc[(svc["service"] == service) & (svc["unit_code"] == "")].iloc[0]
        assert row["population"] == pytest.approx(pop)
        assert row["covered"] == pytest.approx(cov)


@hsettings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), factor=st.floats(1.0, 5.0), rule_i=st.integers(0, 9))
def test_coverage_never_drops_when_threshold_grows(seed, factor, rule_i):
    cells = random_cells(seed, n=40)
    rules = PRESET.active_circles()
    rule = rules[rule_i % len(rules)]
    bigger = PRESET.model_copy(deep=True)
    r2 = bigger.circle(rule.id)
    if r2.minutes is not None:
        r2.minutes = r2.minutes * factor
    else:
        r2.metres = r2.metres * factor
    a = ev.circle_coverage(cells, PRESET).query("rule_id == @rule.id").set_index("unit_code")
    b = ev.circle_coverage(cells, bigger).query("rule_id == @rule.id").set_index("unit_code")
    assert (b["covered"] >= a["covered"] - 1e-9).all()
    assert (b["population"] == a["population"]).all()


@hsettings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 50), n_units=st.integers(1, 5))
def test_shares_bounded_and_totals_are_sums(seed, n, n_units):
    cells = random_cells(seed, n=n, n_units=n_units)
    for table in (ev.circle_coverage(cells, PRESET), ev.service_coverage(cells, PRESET)):
        key = "rule_id" if "rule_id" in table else "service"
        s = table["share"].dropna()
        assert ((s >= 0) & (s <= 1 + 1e-12)).all()
        assert (table["covered"] <= table["population"] + 1e-9).all()
        for _, grp in table.groupby(key):
            total = grp[grp["unit_code"] == ""].iloc[0]
            units = grp[grp["unit_code"] != ""]
            assert total["population"] == pytest.approx(units["population"].sum())
            assert total["covered"] == pytest.approx(units["covered"].sum())


def test_circle_coverage_is_deterministic_and_lists_empty_units():
    cells = random_cells(1)
    units = pd.DataFrame({"code": ["U0", "U1", "U2", "U9"], "name": ["单元0", "单元1", "单元2", "空单元"]})
    a = ev.circle_coverage(cells, PRESET, units=units)
    b = ev.circle_coverage(cells.sample(frac=1, random_state=3), PRESET, units=units)
    pd.testing.assert_frame_equal(a, b)
    u9 = a[a["unit_code"] == "U9"]
    assert len(u9) == len(PRESET.active_circles()) + 1
    assert (u9["population"] == 0).all() and u9["share"].isna().all()


def test_missing_time_column_is_an_input_error():
    cells = random_cells(0).drop(columns=["t_clinic_rural_30min"])
    with pytest.raises(InputError) as ei:
        ev.circle_coverage(cells, PRESET)
    assert ei.value.problem.field == "t_clinic_rural_30min"
    # the 15 km column is optional (no county seat → no urban_rural rows)
    cov = ev.circle_coverage(random_cells(0).drop(columns=["t_urban_rural_15km"]), PRESET)
    assert "urban_rural_15km" not in set(cov["rule_id"])


def test_summary_shape_and_values():
    cells = random_cells(2)
    s = ev.summary(cells, PRESET, "测试")
    json.dumps(s)  # JSON-ready (no NaN objects that break strict consumers)
    assert s["scenario"] == "测试"
    assert s["population_total"] == pytest.approx(cells["pop"].sum())
    assert s["no_road_access"] == pytest.approx(cells.loc[cells["no_road"], "pop"].sum())
    clinic = s["categories"]["clinic"]
    assert clinic["circle"]["urban"]["mode"] == "walk" and clinic["circle"]["urban"]["minutes"] == 15
    assert clinic["circle"]["rural"]["mode"] == "drive" and clinic["circle"]["rural"]["minutes"] == 30
    # urban cells judged by the 15-min walk rule, rural cells by the 30-min drive rule
    u = cells["urban"]
    exp = (cells.loc[u & (cells["t_clinic_urban_15min"] <= 15), "pop"].sum()
           + cells.loc[~u & (cells["t_clinic_rural_30min"] <= 30), "pop"].sum())
    assert clinic["population_covered"] == pytest.approx(exp)
    assert clinic["share_covered"] == pytest.approx(exp / cells["pop"].sum())
    assert sum(b["population"] for b in clinic["by_unit"]) == pytest.approx(cells["pop"].sum())
    assert {"code", "name", "population", "covered", "share"} <= set(clinic["by_unit"][0])
    urc = s["urban_rural_circle"]
    assert urc["circle"] == {"mode": "drive", "metres": 15000}
    assert urc["population_covered"] == pytest.approx(
        cells.loc[cells["t_urban_rural_15km"] <= 15000, "pop"].sum())


# --- presence / provision on hand-made cases ----------------------------------------------------


@pytest.fixture()
def tiny():
    """Two units (镇 A west, 街道 B east), three villages in A, a handful of facilities."""
    units = gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["龙泉镇", "城关街道"], "kind": ["镇", "街道"]},
        geometry=[box(500000, 3900000, 501000, 3901000), box(501000, 3900000, 502000, 3901000)],
        crs=CRS,
    )
    villages = gpd.GeoDataFrame(
        {"code": ["A1", "A2", "A3"], "name": ["石门村", "桥头村", "河湾村"], "unit_code": ["A", "A", "A"]},
        geometry=[Point(500100, 3900100), Point(500900, 3900900), Point(500100, 3900900)], crs=CRS,
    )
    fac = gpd.GeoDataFrame(
        {
            "ftype": ["village_clinic", "village_clinic", "township_health_center", "kindergarten",
                      "nursery", "nursery", "regional_elderly_center", "day_care"],
            "capacity": [np.nan, 2, 20, 90, 30, np.nan, 40, 10],
            "capacity_unit": ["", "床位", "床位", "园位", "托位", "托位", "床位", ""],
        },
        geometry=[Point(500150, 3900100),   # 50 m from 石门村
                  Point(500900, 3900100),   # 800 m from 石门村 and from 桥头村
                  Point(500500, 3900500), Point(501500, 3900500),
                  Point(501500, 3900600), Point(500400, 3900400),
                  Point(500600, 3900600), Point(501200, 3900200)],
        crs=CRS,
    )
    cells = gpd.GeoDataFrame(
        {"pop": [1000.0, 3000.0, 6000.0], "age60plus": [200.0, 300.0, 500.0],
         "unit_code": ["A", "A", "B"], "unit_name": ["龙泉镇", "龙泉镇", "城关街道"],
         "urban": [False, False, True]},
        geometry=[Point(500100, 3900150), Point(500850, 3900850), Point(501500, 3900500)], crs=CRS,
    )
    for g in ["age0_2", "age3_5", "age6_11", "age12_14"]:
        cells[g] = cells["pop"] * 0.03
    return units, villages, fac, cells


def test_presence_hand_made(tiny):
    units, villages, fac, cells = tiny
    pr = ev.presence(fac, units, villages, PRESET, cells=cells).set_index(["rule_id", "unit_code"])
    # 卫生院 per 乡镇: A (镇) has one
    assert pr.loc[("clinic_thc_per_township", "A"), "found"] == 1
    assert pr.loc[("clinic_thc_per_township", "A"), "ok"]
    assert ("clinic_thc_per_township", "B") not in pr.index  # B is a 街道
    # CHSC per 街道: B has none
    assert not pr.loc[("clinic_chsc_per_street", "B"), "ok"]
    assert pr.loc[("clinic_chsc_per_street", ""), "required"] == 1
    assert pr.loc[("clinic_chsc_per_street", ""), "found"] == 0
    # village clinics within 1000 m: 石门村 has 2 (50 m and 800 m), 桥头村 1 (800 m), 河湾村 0
    d = math.dist((500100, 3900900), (500150, 3900100))
    assert d > 800
    expected = {"A1": 2, "A2": 1, "A3": int(d <= 1000) + int(math.dist((500100, 3900900), (500900, 3900100)) <= 1000)}
    for code, n in expected.items():
        assert pr.loc[("clinic_village_clinic_per_village", code), "found"] == n
    assert pr.loc[("clinic_village_clinic_per_village", "A1"), "parent_name"] == "龙泉镇"
    # with a 100 m rule only 石门村 has one
    pr100 = ev.presence(fac, units, villages, PRESET, within_m=100).set_index(["rule_id", "unit_code"])
    assert pr100.loc[("clinic_village_clinic_per_village", "A1"), "found"] == 1
    assert pr100.loc[("clinic_village_clinic_per_village", "A2"), "found"] == 0
    assert pr100.loc[("clinic_village_clinic_per_village", ""), "found"] == 1  # villages passing
    assert pr100.loc[("clinic_village_clinic_per_village", ""), "required"] == 3
    # regional elderly centre in >= 50 % of 2 units: A has one → 1 of 2 → ok
    assert pr.loc[("elderly_regional_center_half_units", ""), "required"] == 1
    assert pr.loc[("elderly_regional_center_half_units", ""), "ok"]
    # county care facility: none
    assert not pr.loc[("elderly_county_care_per_county", ""), "ok"]
    # kindergarten per 街道: B has one
    assert pr.loc[("school_kindergarten_per_street", "B"), "ok"]
    # population columns from cells
    assert pr.loc[("clinic_chsc_per_street", "B"), "population"] == 6000


def test_presence_per_population_rule(tiny):
    units, villages, fac, cells = tiny
    cells = cells.copy()
    cells.loc[2, "pop"] = 250_000  # street of 250k needs ceil(2.5) = 3 CHSCs
    pr = ev.presence(fac, units, villages, PRESET, cells=cells).set_index(["rule_id", "unit_code"])
    assert pr.loc[("clinic_chsc_per_street", "B"), "required"] == 3


def test_provision_hand_made(tiny):
    units, villages, fac, cells = tiny
    pv = ev.provision(fac, cells, units, PRESET).set_index(["rule_id", "unit_code"])
    # 托位: A has one nursery without capacity (counts 0), B has 30; people A 4000, B 6000
    r = pv.loc[("childcare_places_per_1000", "B")]
    assert r["capacity"] == 30 and r["value"] == pytest.approx(5.0) and r["ok"]
    r = pv.loc[("childcare_places_per_1000", "A")]
    assert r["capacity"] == 0 and r["n_no_capacity"] == 1 and not r["ok"]
    assert r["deficit"] == pytest.approx(4.5 * 4 - 0)
    r = pv.loc[("childcare_places_per_1000", "")]
    assert r["value"] == pytest.approx(30 / 10000 * 1000) and not r["ok"] and r["decisive"]
    assert r["deficit"] == pytest.approx(45 - 30)
    # beds per 1000 aged 60+: A: 40 (centre) / 500 × 1000 = 80; B: day_care 10 (unit '' counts) / 500
    assert pv.loc[("elderly_beds_per_1000_aged", "A"), "value"] == pytest.approx(80)
    assert pv.loc[("elderly_beds_per_1000_aged", "B"), "value"] == pytest.approx(20)
    assert pv.loc[("elderly_beds_per_1000_aged", ""), "value"] == pytest.approx(50)
    assert pv.loc[("elderly_beds_per_1000_aged", ""), "ok"]
    # absolute totals (kongtong: 3925 beds) give a county row only
    kt = ev.provision(fac, cells, units, load_preset("kongtong")).query("rule_id == 'elderly_beds_total'")
    assert list(kt["unit_code"]) == [""]
    assert kt.iloc[0]["capacity"] == 50 and kt.iloc[0]["deficit"] == 3875 and not kt.iloc[0]["ok"]


def test_provision_strict_comparison():
    p = load_preset("huaibei")
    r = {x.id: x for x in p.provision}["sports_area_per_person"]
    assert not r.passes(2.6) and r.passes(2.61) and not r.passes(float("nan"))


# --- clusters and the gap table -----------------------------------------------------------------


def blob_cells() -> gpd.GeoDataFrame:
    """Two separate uncovered blobs on a 100 m grid plus covered cells between them."""
    pts, pop, t = [], [], []
    for r in range(3):
        for c in range(3):  # blob 1: 9 cells × 10 people at the west
            pts.append((500000 + c * 100, 3900000 + r * 100)); pop.append(10.0); t.append(np.inf)
        for c in range(20, 22):  # blob 2: 6 cells × 5 people 2 km east
            pts.append((500000 + c * 100, 3900000 + r * 100)); pop.append(5.0); t.append(40.0)
        for c in range(10, 12):  # covered cells
            pts.append((500000 + c * 100, 3900000 + r * 100)); pop.append(100.0); t.append(3.0)
    g = gpd.GeoDataFrame({"pop": pop, "t_clinic_rural_30min": t},
                         geometry=[Point(x, y) for x, y in pts], crs=CRS)
    g["urban"] = False
    g["unit_code"] = np.where(g.geometry.x < 500500, "A", "B")
    g["unit_name"] = np.where(g.geometry.x < 500500, "龙泉镇", "城关镇")
    return g


def test_uncovered_clusters_two_blobs():
    cells = blob_cells()
    villages = gpd.GeoDataFrame({"code": ["A1"], "name": ["石门村"], "unit_code": ["A"]},
                                geometry=[Point(500100, 3900150)], crs=CRS)
    rule = PRESET.circle("clinic_rural_30min")
    cl = ev.uncovered_clusters(cells, rule, min_people=10, cluster_m=150, villages=villages)
    assert list(cl["population"]) == [90.0, 30.0]
    assert list(cl["n_cells"]) == [9, 6]
    assert list(cl["unit_name"]) == ["龙泉镇", "城关镇"]
    assert list(cl["village"]) == ["石门村", ""]  # no village in 城关镇
    assert cl.iloc[0]["x"] == pytest.approx(500100) and cl.iloc[0]["y"] == pytest.approx(3900100)
    assert 113.9 < cl.iloc[0]["lon"] < 114.1 and 35 < cl.iloc[0]["lat"] < 36
    # min_people drops the small blob; a too-short link splits nothing but isolates cells
    assert list(ev.uncovered_clusters(cells, rule, min_people=50)["population"]) == [90.0]
    assert len(ev.uncovered_clusters(cells, rule, min_people=0, cluster_m=50)) == 15
    # splitting a wide cluster into project-sized parts keeps every person once
    parts = ev.uncovered_clusters(cells, rule, min_people=0, split_m=100)
    assert parts["population"].sum() == pytest.approx(120.0)
    assert len(parts) > 2


def test_reach_m_follows_the_scenario_speeds():
    walk = PRESET.circle("clinic_urban_15min")  # 15 min on foot
    drive = PRESET.circle("clinic_rural_30min")
    assert ev.reach_m(walk) == pytest.approx(15 * 4.8 * 1000 / 60)  # 1,200 m at the default 4.8 km/h
    assert ev.reach_m(walk, {"walk": 2.4}) == pytest.approx(600.0)  # a slower scenario walk halves it
    assert ev.reach_m(walk, {"ebike": 20.0}) == pytest.approx(1200.0)  # other modes' speeds: no effect
    assert ev.reach_m(drive, {"unknown": 40.0}) == pytest.approx(20_000.0)
    # the default split radius of uncovered clusters follows the speed: at 0.2 km/h the drive rule
    # reaches 100 m, so both blobs are split; people are still counted once
    cells = blob_cells()
    assert len(ev.uncovered_clusters(cells, drive, min_people=0)) == 2
    slow = ev.uncovered_clusters(cells, drive, min_people=0, speeds={"unknown": 0.2})
    assert len(slow) > 2
    assert slow["population"].sum() == pytest.approx(120.0)


def test_gap_table_ranking_and_names(tiny):
    units, villages, fac, cells = tiny
    pr = ev.presence(fac, units, villages, PRESET, cells=cells)
    pv = ev.provision(fac, cells, units, PRESET)
    bc = blob_cells()
    cl = ev.uncovered_clusters(bc, PRESET.circle("clinic_rural_30min"), min_people=10,
                               villages=gpd.GeoDataFrame({"code": ["A1"], "name": ["石门村"], "unit_code": ["A"]},
                                                         geometry=[Point(500100, 3900150)], crs=CRS))
    gt = ev.gap_table(None, pr, pv, cl, PRESET, "测试县", 2026)
    assert list(gt.columns) == ev.GAP_COLUMNS
    # 约束性 rows first, then people gained per 万元 descending inside each nature
    nat = list(gt["nature"])
    assert nat == sorted(nat, key={"约束性": 0, "预期性": 1}.get)
    for _, grp in gt.groupby(["nature", gt["kind"] == "service_suggestion"]):  # suggestions after buildings
        eff = list(grp["per_wan"].fillna(-1.0))
        assert eff == sorted(eff, reverse=True)
    assert set(gt.loc[gt["nature"] == "约束性", "priority"]) == {"高"}
    names = set(gt["project_name"])
    assert "城关街道社区卫生服务中心建设项目" in names
    assert "测试县县级失能半失能特困人员照护服务机构建设项目" in names
    assert gt["project_name"].is_unique
    # 90 people far from a 卫生院, in a 乡镇 and village that have one each → 巡诊, no building
    row = gt[gt["project_name"] == "龙泉镇石门村巡诊点项目"].iloc[0]
    assert row["kind"] == "service_suggestion" and row["new_covered"] == 90 and row["lead"] == "卫健局"
    assert row["ftype"] == "" and row["year"] == 2026 and row["construction"] == "流动服务"
    assert row["cost"] == 2.0 and "已有乡镇卫生院,不重复新建" in row["note"]
    # the 托位 shortfall is a below_target row sized by the deficit (45 − 30 = 15 托位)
    tw = gt[(gt["kind"] == "below_target") & (gt["rule_id"] == "childcare_places_per_1000")].iloc[0]
    assert tw["scale_value"] == 15 and tw["scale"] == "15托位" and tw["service"] == "幼有所育"
    # the regional-centre share rule passes → no project for it
    assert "elderly_regional_center_half_units" not in set(gt["rule_id"])
    # deterministic
    pd.testing.assert_frame_equal(gt, ev.gap_table(None, pr, pv, cl, PRESET, "测试县", 2026))


def test_gap_table_share_rule_proposes_only_what_is_needed():
    units = gpd.GeoDataFrame(
        {"code": list("ABCD"), "name": ["甲镇", "乙镇", "丙镇", "丁镇"], "kind": ["镇"] * 4},
        geometry=[box(500000 + i * 1000, 3900000, 501000 + i * 1000, 3901000) for i in range(4)], crs=CRS)
    fac = gpd.GeoDataFrame({"ftype": ["township_health_center"] * 4},
                           geometry=[Point(500500 + i * 1000, 3900500) for i in range(4)], crs=CRS)
    cells = pd.DataFrame({"pop": [100.0, 400.0, 300.0, 200.0], "unit_code": list("ABCD"),
                          "unit_name": ["甲镇", "乙镇", "丙镇", "丁镇"]})
    pr = ev.presence(fac, units, None, PRESET, cells=cells)
    gt = ev.gap_table(None, pr, None, None, PRESET, "县", 2026)
    reg = gt[gt["rule_id"] == "elderly_regional_center_half_units"]
    # 0 of 4 towns have a centre; 50 % needs 2 → the two most populous: 乙镇 (400), 丙镇 (300)
    assert list(reg["unit_name"]) == ["乙镇", "丙镇"]


# --- demo data (written by coverage.demo; skipped until it exists) ------------------------------


@pytest.mark.skipif(not (DATA / "facilities" / "facilities.csv").is_file()
                    or not (DATA / "boundaries" / "townships.gpkg").is_file(),
                    reason="demo data not generated yet")
def test_presence_on_demo_data():
    from coverage import categories

    units = gpd.read_file(DATA / "boundaries" / "townships.gpkg", layer="townships")
    assert {"code", "name", "kind"} <= set(units.columns)
    vpath = DATA / "boundaries" / "villages.gpkg"
    villages = gpd.read_file(vpath) if vpath.is_file() else None
    raw = pd.read_csv(DATA / "facilities" / "facilities.csv", dtype=str)
    cls = categories.classify(raw["类型"])
    fac = gpd.GeoDataFrame(
        {"ftype": cls["ftype"].to_numpy(), "name": raw["名称"]},
        geometry=gpd.points_from_xy(raw["经度"].astype(float), raw["纬度"].astype(float)), crs=4326,
    ).dropna(subset=["ftype"])
    metric = units.estimate_utm_crs() if units.crs.is_geographic else units.crs
    units = units.to_crs(metric)
    fac = fac.to_crs(metric)
    if villages is not None:
        villages = villages.to_crs(metric)
    pr = ev.presence(fac, units, villages, PRESET)
    county = pr[pr["level"] == "county"]
    assert set(county["rule_id"]) >= {"clinic_thc_per_township", "elderly_county_care_per_county"}
    # independent count: 卫生院 per 镇/乡 by a plain spatial join
    towns = units[units["kind"].isin(["镇", "乡"])]
    j = gpd.sjoin(fac[fac["ftype"] == "township_health_center"], towns[["code", "geometry"]],
                  predicate="within")
    counts = j["code"].value_counts()
    got = pr[(pr["rule_id"] == "clinic_thc_per_township") & (pr["level"] == "unit")]
    for r in got.itertuples():
        assert r.found == counts.get(r.unit_code, 0)


def test_threshold_is_inclusive_and_nan_is_not_reached():
    cells = random_cells(4, n=3)
    cells["urban"] = True
    cells["t_clinic_urban_15min"] = [15.0, 15.000001, np.nan]
    cells["pop"] = [1.0, 10.0, 100.0]
    row = ev.circle_coverage(cells, PRESET).query("rule_id == 'clinic_urban_15min' and unit_code == ''")
    assert row.iloc[0]["covered"] == 1.0 and row.iloc[0]["population"] == 111.0


# --- linking uncovered cells on the grid -------------------------------------------------------


def _kdtree_labels(xy: np.ndarray, r: float) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    p = cKDTree(xy).query_pairs(r, output_type="ndarray")
    adj = coo_matrix((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=(len(xy),) * 2)
    return connected_components(adj, directed=False)[1]


@pytest.mark.parametrize("dense_max", [50_000_000, 10])  # lookup grid, then sorted keys
def test_grid_linking_equals_kdtree_pairs(monkeypatch, dense_max):
    """Cells on a regular grid are linked through grid offsets; the components are those of the
    KD-tree's "closer than or at cluster_m" pairs, on and off the grid and with duplicates."""
    monkeypatch.setattr(ev, "_DENSE_MAX", dense_max)
    rng = np.random.default_rng(0)
    for trial in range(40):
        ij = np.unique(rng.integers(0, 60, (int(rng.integers(2, 2500)), 2)), axis=0)
        s = float(rng.choice([100.0, 30.0, 250.0]))
        xy = ij * [s, s * float(rng.choice([1.0, 1.5]))] + [465050.0, 3929650.0]
        if trial % 7 == 0:
            xy = xy + rng.normal(0, 1, xy.shape)  # off the grid: the KD-tree path
        if trial % 11 == 0:
            xy = np.vstack([xy, xy[:3]])  # two cells on one node
        r = float(rng.choice([150.0, 100.0, 50.0, 300.0, 141.43]))
        assert (ev._link_labels(xy, r) == _kdtree_labels(xy, r)).all(), (trial, s, r)


def test_cell_spacing_equals_full_kdtree():
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(3)
    for t in range(30):
        xy = rng.random((int(rng.integers(2, 20000)), 2)) * float(rng.choice([1e3, 1e5]))
        if t % 3 == 0:
            xy = np.round(xy / 100) * 100
        k = int(rng.choice([5000, 50]))
        d, _ = cKDTree(xy).query(xy[:k], k=2)
        assert ev._cell_spacing(xy, 150.0, sample=k) == float(np.median(d[:, 1]))


def test_village_population_takes_only_cells_of_the_villages_own_township(tiny):
    """Each cell goes to the nearest village of its own 乡镇 (checked by a plain loop); the 街道's
    cell, nearest to 桥头村 but in no 行政村, counts for no village."""
    units, villages, fac, cells = tiny
    pr = ev.presence(fac, units, villages, PRESET, cells=cells).set_index(["rule_id", "unit_code"])
    want = dict.fromkeys(villages["code"], 0.0)
    for c in cells.itertuples():
        mine = villages[villages["unit_code"] == c.unit_code]
        if len(mine):
            d = [math.dist((c.geometry.x, c.geometry.y), (v.x, v.y)) for v in mine.geometry]
            want[mine["code"].iloc[int(np.argmin(d))]] += c.pop
    assert want == {"A1": 1000.0, "A2": 3000.0, "A3": 0.0}
    for code, people in want.items():
        assert pr.loc[("clinic_village_clinic_per_village", code), "population"] == people


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["b", "a", "", None, "c"]), min_size=1, max_size=30), st.data())
def test_unit_index_categorical_codes_as_text(codes, data):
    """The cells' ``unit_code`` is categorical (coverage.demand.cells); a unit index read from its
    codes equals the one hashed from the same values as text, missing and empty codes included,
    with unused categories left out and the categories in any order."""
    names = [None if c is None else f"名{c}" for c in codes]
    text = pd.DataFrame({"unit_code": pd.Series(codes, dtype=object), "unit_name": pd.Series(names, dtype=object)})
    extra = data.draw(st.lists(st.sampled_from(["z", "y"]), unique=True))  # categories no cell has
    cats = data.draw(st.permutations(sorted({c for c in codes if c is not None} | set(extra))))
    cat = text.assign(unit_code=pd.Categorical(codes, categories=cats),
                      unit_name=pd.Series(names, dtype=object).astype("category"))
    for got, want in zip(ev.unit_index(cat), ev.unit_index(text), strict=True):
        assert list(got) == list(want)


@hsettings(max_examples=60, deadline=None)
@given(st.data())
def test_nearest_village_is_the_nearest_of_the_cells_own_township(data):
    """Each cell's village (one tree search over all townships, the township a far third
    coordinate) is the nearest village point of its own 乡镇 by a plain scan, -1 when its 乡镇 has
    no village; ties may go to any of the nearest."""
    n_cells = data.draw(st.integers(1, 40))
    n_vil = data.draw(st.integers(1, 12))
    coord = st.floats(-2000.0, 2000.0, allow_nan=False).map(lambda v: round(v, 0))  # ties happen
    cx = data.draw(st.lists(coord, min_size=n_cells, max_size=n_cells))
    cy = data.draw(st.lists(coord, min_size=n_cells, max_size=n_cells))
    vx = data.draw(st.lists(coord, min_size=n_vil, max_size=n_vil))
    vy = data.draw(st.lists(coord, min_size=n_vil, max_size=n_vil))
    cu = data.draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=n_cells, max_size=n_cells))
    vu = data.draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n_vil, max_size=n_vil))
    cells = gpd.GeoDataFrame({"unit_code": cu}, geometry=gpd.points_from_xy(cx, cy), crs=32650)
    villages = gpd.GeoDataFrame({"unit_code": vu}, geometry=gpd.points_from_xy(vx, vy), crs=32650)
    got = ev._nearest_village(cells, villages)
    for i in range(n_cells):
        own = [j for j in range(n_vil) if vu[j] == cu[i]]
        if not own:
            assert got[i] == -1
            continue
        d = {j: math.hypot(vx[j] - cx[i], vy[j] - cy[i]) for j in own}
        assert got[i] in own and d[got[i]] == pytest.approx(min(d.values()), abs=1e-9)
