"""End to end on the embedded demo county: `covplan demo`, `covplan run`, `covplan validate`.

The demo is run once per module (about a minute); the tests then read its files as a planner's
tools would: summary.json, coverage_by_unit.csv, gaps.xlsx (openpyxl), layers.gpkg (pyogrio) and
map.html (headless Chromium).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import threading
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
import rasterio
from typer.testing import CliRunner

from browser import open_map
from coverage import evaluate
from coverage import inputs as inputs_mod
from coverage import pipeline
from coverage.cli import app

pytestmark = pytest.mark.slow

PROJECT_BANK = (
    "序号, 年度, 服务领域, 设施类别, 项目名称, 建设性质, 县(区), 乡镇(街道), 村(社区), 经度, 纬度, "
    "建设规模, 服务人口, 新增覆盖人口, 对应指标, 指标性质, 估算投资(万元), 牵头单位, 优先级, 备注"
).split(", ")
FILES = {"summary.json", "coverage_by_unit.csv", "gaps.xlsx", "layers.gpkg", "map.html", "report.html"}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "out"
    res = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


@pytest.fixture(scope="module")
def summary(demo_out) -> dict:
    return json.loads((demo_out[0] / "summary.json").read_text(encoding="utf-8"))


def test_demo_writes_every_file_and_says_where(demo_out):
    out, text = demo_out
    assert FILES <= {p.name for p in out.iterdir()}
    assert str(out.resolve()) in text.replace("\n", "")
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_summary_contract(summary):
    assert summary["scenario"] == "示例县 现状评估"
    for key in ("school", "clinic", "elderly", "fitness"):
        cat = summary["categories"][key]
        assert 0.0 <= cat["share_covered"] <= 1.0
        assert cat["population_covered"] <= cat["population"] + 1e-6
        assert cat["circle"]
        units = cat["by_unit"]
        assert {"code", "name", "population", "covered", "share"} <= set(units[0])
        # units add up to the county figure: nobody is counted twice or lost
        assert sum(u["covered"] for u in units) == pytest.approx(cat["population_covered"], rel=1e-9)
        assert sum(u["population"] for u in units) == pytest.approx(cat["population"], rel=1e-9)
    urc = summary["urban_rural_circle"]
    assert 0.0 < urc["share_covered"] < 1.0
    assert urc["population_covered"] <= summary["population_total"]


def test_population_total_is_the_raster_total(summary, repo_root):
    """Independent: the demo raster summed with rasterio (nodata −1 excluded)."""
    with rasterio.open(repo_root / "data" / "population" / "pop_100m.tif") as src:
        a = src.read(1)
        total = float(a[a != src.nodata].sum())
    assert summary["population_total"] == pytest.approx(total, rel=1e-6)


def test_demo_has_the_gaps_it_was_built_with(summary):
    """The demo leaves townships without an elderly centre and remote villages far from a clinic."""
    elderly = {u["name"]: u["share"] for u in summary["categories"]["elderly"]["by_unit"]}
    assert min(elderly[n] for n in ("峡口乡", "麻川乡", "青岭乡")) < 0.5
    assert summary["categories"]["clinic"]["share_covered"] < 1.0


def test_gaps_xlsx_columns_ranking_and_totals(demo_out, summary):
    wb = openpyxl.load_workbook(demo_out[0] / "gaps.xlsx")
    ws = wb["项目库"]
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == PROJECT_BANK
    body = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert len(body) > 10
    assert [r["序号"] for r in body] == list(range(1, len(body) + 1))
    natures = [r["指标性质"] for r in body]
    assert set(natures) <= {"约束性", "预期性"}
    # binding targets rank before expected ones
    assert natures == sorted(natures, key=lambda n: 0 if n == "约束性" else 1)
    assert {r["县(区)"] for r in body} == {"示例县"}
    # the summary sheet repeats summary.json's figures
    cells = [c for row in wb["汇总"].iter_rows(values_only=True) for c in row if isinstance(c, (int, float))]
    assert any(abs(c - summary["population_total"]) < 1 for c in cells)
    for cat in summary["categories"].values():
        assert any(abs(c - cat["population_covered"]) < 1 for c in cells)


def test_coverage_by_unit_csv_matches_summary(demo_out, summary):
    df = pd.read_csv(demo_out[0] / "coverage_by_unit.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    svc = df[(df["层级"] == "服务汇总") & (df["乡镇(街道)"] == "全县")]
    labels = {"school": "学校/教育", "clinic": "医疗卫生", "elderly": "养老服务", "fitness": "体育健身"}
    for key, cat in summary["categories"].items():
        row = svc[svc["服务领域"] == labels[key]]
        assert int(row["覆盖人口"].iloc[0]) == round(cat["population_covered"])  # whole people


def test_layers_gpkg_has_every_layer(demo_out):
    names = set(pyogrio.list_layers(demo_out[0] / "layers.gpkg")[:, 0])
    assert {"demand_cells", "facilities", "units", "uncovered", "gaps", "service_circles",
            "urban_rural_circle", "villages", "candidates"} <= names


@pytest.mark.browser
def test_demo_map_in_headless_chromium(demo_out, tmp_path, repo_root):
    rep = open_map(demo_out[0] / "map.html", tmp_path / "profile", repo_root / "tests" / "_artifacts" / "demo_map.png")
    assert rep.errors == []
    assert rep.requests == [rep.url], rep.requests[:5]
    text = " ".join(rep.overlays + rep.services)  # one service at a time: the switcher lists them
    for name in ("学校", "医疗卫生", "养老服务", "体育健身", "15公里城乡服务圈"):
        assert name in text
    assert "合成示例数据" in rep.banner


def test_coverage_matches_independent_reference(repo_root):
    """One 街道 and one rule, recomputed without the engine (networkx + brute force)."""
    inputs = pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")
    model = pipeline.build_model(inputs)
    result = pipeline.evaluate_model(model)
    code = "629901002000"  # 东关街道
    import reference

    ref = reference.rule_coverage(model, "elderly_urban_15min", unit_code=code)
    row = result.by_unit[(result.by_unit["rule_id"] == "elderly_urban_15min") & (result.by_unit["unit_code"] == code)]
    assert ref > 0
    assert float(row["covered"].iloc[0]) == pytest.approx(ref, rel=1e-9)


def test_validate_demo_ok_and_broken_scenario_fails(tmp_path, repo_root):
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(repo_root / "scenarios" / "demo_baseline.yaml")])
    assert ok.exit_code == 0, ok.output
    text = (repo_root / "scenarios" / "demo_baseline.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text.replace("../data/", str(repo_root / "data") + "/").replace("pop_100m.tif", "pop_missing.tif"),
        encoding="utf-8",
    )
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1
    assert "pop_missing.tif" in res.output


def test_run_on_bad_input_leaves_no_output(tmp_path, repo_root):
    text = (repo_root / "scenarios" / "demo_baseline.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text.replace("../data/", str(repo_root / "data") + "/").replace("roads.gpkg", "no_roads.gpkg"),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(bad), "--out", str(out)])
    assert res.exit_code == 1
    assert "no_roads.gpkg" in res.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_installed_layout_finds_demo_scenario():
    path = pipeline.demo_scenario_path()
    assert path.name == "demo_baseline.yaml" and path.is_file()
    shutil.disk_usage(path.parent)  # the folder is real


def test_tianditu_without_key_fails_before_the_run(tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["demo", "--tiles", "tianditu", "--out", str(out)])
    assert res.exit_code == 1
    assert "天地图" in res.output and "Tianditu" in res.output
    assert not out.exists()


def test_report_lists_every_township_and_the_standards(demo_out, summary):
    text = (demo_out[0] / "report.html").read_text(encoding="utf-8")
    for unit in summary["categories"]["elderly"]["by_unit"]:
        assert unit["name"] in text
    assert "每个行政村办好1个村卫生室" in text  # the rule's own words, not its id
    assert "117/138" in text  # villages with a 村卫生室 within 1 km, out of all 138


def test_plan_changes_remove_unknown_id_is_a_clear_error(tmp_path, repo_root):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"extends: {repo_root / 'scenarios' / 'demo_baseline.yaml'}\n"
        "name: 错误方案\nchanges:\n  remove: [NOPE-1]\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(plan), "--out", str(out)])
    assert res.exit_code == 1
    assert "NOPE-1" in res.output and "changes" in res.output
    assert not out.exists()


def test_plan_changes_remove_and_upgrade(tmp_path, repo_root):
    """Removing every 村卫生室 of one township lowers its village-clinic presence; an upgrade sticks."""
    base = pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")
    fac = base.facilities
    vc = fac[(fac["ftype"] == "village_clinic")]
    gone = vc["fid"].head(3).tolist()
    target = fac[fac["ftype"] == "township_health_center"]["fid"].iloc[0]
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"extends: {repo_root / 'scenarios' / 'demo_baseline.yaml'}\nname: 调整方案\nchanges:\n"
        f"  remove: [{', '.join(gone)}]\n  upgrade: [{{id: {target}, capacity: 999}}]\n",
        encoding="utf-8",
    )
    inp = pipeline.load_inputs(plan)
    assert len(inp.facilities) == len(fac) - 3
    assert not set(gone) & set(inp.facilities["fid"])
    assert inp.facilities.set_index("fid").loc[target, "capacity"] == 999


def test_supply_ratios_match_the_cells_written(demo_out, summary):
    """summary.json's E2SFCA figures are the group-weighted means of the cells in layers.gpkg."""
    ratios = summary["supply_ratio"]
    assert {"elderly_urban_15min", "elderly_rural_15min", "clinic_rural_30min"} <= set(ratios)
    cells = pyogrio.read_dataframe(demo_out[0] / "layers.gpkg", layer="demand_cells", read_geometry=False)
    for rid in ("elderly_urban_15min", "clinic_rural_30min"):
        r = ratios[rid]
        side = cells["urban"].astype(bool) if rid.endswith("urban_15min") else ~cells["urban"].astype(bool)
        w = cells[r["group"]].where(side, 0.0)
        v = cells[f"e2sfca_{rid}"]
        keep = w > 0
        # layers.gpkg keeps the ratios to 0.01 (compact storage): the mean is within half of that
        assert r["county"] == pytest.approx(float(np.average(v[keep], weights=w[keep])), abs=0.005 + 1e-9)
        assert r["capacity_unit"] == "床位" and r["per"] == 1000


def test_projected_facility_layer_keeps_its_own_crs(tmp_path, repo_root):
    """A facility GPKG in CGCS2000 Gauss–Krüger with no `crs:` in the scenario is read in its own
    CRS (not taken for lon/lat): positions match the CSV it was made from within 1 cm."""
    import geopandas as gpd

    from coverage.crs import haversine_m

    csv = pd.read_csv(repo_root / "data" / "facilities" / "facilities.csv", encoding="utf-8-sig")
    gdf = gpd.GeoDataFrame(csv, geometry=gpd.points_from_xy(csv["经度"], csv["纬度"]), crs=4326).to_crs(4545)
    gpkg = tmp_path / "fac.gpkg"
    gdf.drop(columns=["经度", "纬度"]).to_file(gpkg, layer="fac")
    text = (repo_root / "scenarios" / "demo_baseline.yaml").read_text(encoding="utf-8")
    text = text.replace("../data/", str(repo_root / "data") + "/").replace(
        f"- path: {repo_root / 'data'}/facilities/facilities.csv", f"- path: {gpkg}"
    )
    yml = tmp_path / "s.yaml"
    yml.write_text(text.replace("    crs: wgs84\n  - path", "  - path", 1), encoding="utf-8")
    inp = pipeline.load_inputs(yml)
    got = inp.facilities[inp.facilities["source"].astype(str).str.contains("fac.gpkg")]
    assert len(got) >= 240  # every mapped row of the CSV
    ref = csv.set_index("编号")
    fid = got["fid"].astype(str).str.split(":").str[-1]
    err = haversine_m(got["lon"], got["lat"], ref.loc[fid, "经度"].to_numpy(), ref.loc[fid, "纬度"].to_numpy())
    assert float(np.max(err)) < 0.01


def test_service_circles_layer_one_row_per_drawing(demo_out, summary):
    """layers.gpkg's service_circles: no two rows with the same polygon; every drawn rule listed once."""
    import geopandas as gpd

    from coverage.standards import load_preset

    c = gpd.read_file(demo_out[0] / "layers.gpkg", layer="service_circles")
    assert not c.geometry.to_wkb().duplicated().any()
    ids = [x for v in c["rule_id"] for x in v.split(";")]
    assert len(ids) == len(set(ids))
    rules = {r.id for r in load_preset(summary["preset"]).active_circles()}
    assert set(ids) == rules - {x["rule"] for x in summary.get("no_data") or []}


def test_model_keeps_grid_provenance_not_rasters(repo_root):
    """A built model keeps the grid's shape, transform and provenance but not its arrays; the caller's inputs keep theirs."""
    from coverage import pipeline

    inputs = pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")
    people = float(inputs.grid.total.sum())
    model = pipeline.build_model(inputs)
    light = model.inputs.grid
    assert light.shape == inputs.grid.shape and light.transform == inputs.grid.transform
    assert light.method == inputs.grid.method and light.source_resolution_m == inputs.grid.source_resolution_m
    assert light.groups == {} and light.total.strides == (0, 0)  # a view: no memory
    assert np.isnan(light.total.sum())  # a figure from it is not a number, never 0
    assert float(inputs.grid.total.sum()) == people and inputs.grid.groups  # the caller's are untouched
    assert float(model.cells["pop"].sum()) == pytest.approx(people)  # the cells hold the people
    result = pipeline.evaluate_model(model)
    assert result.summary["population_grid"]["resolution_m"] == pytest.approx(abs(inputs.grid.transform.a))


def _check_cell_snaps(model):
    """The model's cell snaps equal :func:`coverage.access.snap` of its cells' points."""
    from coverage import access

    for mode, g in model.graphs.items():
        ref = access.snap(g, model.cells)
        got = model.snapped_cells[mode]
        assert got.index.equals(ref.index), mode
        for k in ("seg", "u", "v", "e_uv", "e_vu", "node", "t", "leg_m", "leg_min", "ok"):
            assert np.array_equal(getattr(got, k), getattr(ref, k)), (mode, k)


def test_model_snaps_the_cells_it_makes(repo_root):
    """The model snaps the cells' centres while it makes their frame: the same as snapping the
    points; with a grid in another CRS than the roads, the points are reprojected first."""
    import dataclasses

    from pyproj import CRS

    from coverage import pipeline

    inputs = pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")
    model = pipeline.build_model(inputs)
    assert len(model.graphs) >= 2 and len(model.cells) > 10_000
    _check_cell_snaps(model)
    # the grid's numbers in a CRS whose origin is 1 km further east: its cells lie 1 km east
    js = inputs.crs.to_json_dict()
    easting = next(p for p in js["conversion"]["parameters"] if p["name"] == "False easting")
    easting["value"] -= 1000.0
    js.pop("id", None)  # no longer that EPSG code
    shifted = CRS.from_json_dict(js)
    other = dataclasses.replace(inputs, grid=dataclasses.replace(inputs.grid, crs=shifted))
    moved = pipeline.build_model(other)
    assert moved.cells.crs.equals(shifted)
    _check_cell_snaps(moved)
    mode = next(iter(model.graphs))
    assert not np.array_equal(moved.snapped_cells[mode].leg_m, model.snapped_cells[mode].leg_m)


def _check_nearest_cell(model, n=200, seed=0):
    """``Model.nearest_cell`` against brute force, at random points over the cells' extent."""
    import geopandas as gpd

    xs, ys = model.cells.geometry.x.to_numpy(), model.cells.geometry.y.to_numpy()
    rng = np.random.default_rng(seed)
    px = rng.uniform(xs.min() - 500, xs.max() + 500, n)
    py = rng.uniform(ys.min() - 500, ys.max() + 500, n)
    got = model.nearest_cell(gpd.GeoSeries(gpd.points_from_xy(px, py), crs=model.cells.crs))
    for k in range(n):
        d2 = (xs - px[k]) ** 2 + (ys - py[k]) ** 2
        assert d2[got[k]] == d2.min(), k


def test_nearest_cell_and_its_tree_built_once_across_threads(repo_root):
    """The cells' KD-tree is built once even when threads ask for it together (write_outputs
    starts its build beside the writing; the what-if panel asks for it too)."""
    from concurrent.futures import ThreadPoolExecutor

    from coverage import pipeline

    model = pipeline.build_model(pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml"))
    with ThreadPoolExecutor(4) as ex:
        trees = list(ex.map(lambda _: model.cell_tree(), range(8)))
    assert all(t is trees[0] for t in trees) and trees[0].n == len(model.cells)
    _check_nearest_cell(model)
    assert model.cell_tree() is trees[0]
    # a model still pickles and deep-copies (its lock is not kept, a new one is made), tree and all
    import copy
    import pickle

    for back in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert back._tree_lock is not model._tree_lock and back._cell_tree is not None
        assert back.cell_tree().n == len(model.cells)
        pd.testing.assert_frame_equal(back.cells, model.cells)


def _check_gaps_with_the_tree(result):
    """The gap table placed with the model's KD-tree equals the one placed with its own tree; with
    an unpopulated cell the given tree is not used (it would index other cells)."""
    from coverage import evaluate

    m, inputs = result.model, result.model.inputs
    no_data = evaluate.no_data_rules(inputs.preset, inputs.facilities, inputs.seat)
    cl = [c for c in result.clusters.values() if c is not None and len(c)]
    args = (result.by_unit, result.presence, result.provision, pd.concat(cl, ignore_index=True) if cl else None,
            inputs.preset, "县", 2030)
    own = evaluate.gap_table(*args, no_data=no_data, cells=m.cells)
    assert own["lon"].notna().sum() > 0
    pd.testing.assert_frame_equal(evaluate.gap_table(*args, no_data=no_data, cells=m.cells, cell_tree=m.cell_tree()), own)
    cells = m.cells.copy()
    cells.loc[cells.index[0], "pop"] = 0.0  # not a place for a site any more
    pd.testing.assert_frame_equal(evaluate.gap_table(*args, no_data=no_data, cells=cells, cell_tree=m.cell_tree()),
                                  evaluate.gap_table(*args, no_data=no_data, cells=cells))


def test_gap_sites_placed_with_the_model_tree(repo_root):
    from coverage import pipeline

    result = pipeline.evaluate_model(pipeline.build_model(pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")))
    _check_gaps_with_the_tree(result)


def _check_circles_from_kept_nodes(result):
    """The circles drawn from the nodes circle_times kept as reached (no second search) equal those
    drawn after a fresh search per rule; a model made for other facilities keeps none of them."""
    from coverage import pipeline
    from coverage.model import with_facilities

    m = result.model
    assert m._reached and all(r.dtype == bool for r in m._reached.values())  # kept by circle_times
    kept = pipeline.circle_polygons(m)
    fresh = copy.copy(m)
    fresh._reached = {}
    again = pipeline.circle_polygons(fresh)
    for a, b in zip(kept, again, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
            assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()
    assert not with_facilities(m, dataclasses.replace(m.inputs, facilities=m.inputs.facilities.iloc[:-1]))._reached


def _check_uncovered_blocks(result, block_m: float = 500.0):
    """The map's uncovered people summed into blocks (pipeline.uncovered_cells) against a plain
    loop over the cells: the people per block, their weighted centre, and the township of the
    block's most populous cell (the first in cell order on a tie), blocks in (x, y) order."""
    from coverage import pipeline

    cells = result.model.cells
    lack = pipeline.lacking(result)
    got = pipeline.uncovered_cells(result, block_m=block_m, lack=lack)
    xs, ys = cells.geometry.x.to_numpy(), cells.geometry.y.to_numpy()
    names = cells["unit_name"].astype(object).to_numpy()
    for service, short in lack.items():
        blocks: dict = {}
        for i in np.flatnonzero(short > 0.5):
            b = blocks.setdefault((math.floor(xs[i] / block_m), math.floor(ys[i] / block_m)), [0.0, 0.0, 0.0, -1.0, None])
            b[0] += short[i]
            b[1] += xs[i] * short[i]
            b[2] += ys[i] * short[i]
            if short[i] > b[3]:
                b[3], b[4] = short[i], names[i]
        rows = got[got["service"] == service]
        want = [blocks[k] for k in sorted(blocks)]
        assert len(rows) == len(want) > 0
        np.testing.assert_allclose(rows["pop"].to_numpy(), [w[0] for w in want], rtol=1e-9)
        np.testing.assert_allclose(rows.geometry.x.to_numpy(), [w[1] / w[0] for w in want], rtol=1e-9)
        np.testing.assert_allclose(rows.geometry.y.to_numpy(), [w[2] / w[0] for w in want], rtol=1e-9)
        assert rows["unit_name"].astype(object).tolist() == [w[4] for w in want]
    # a run without cells has no blocks (and no error)
    empty = dataclasses.replace(result, model=dataclasses.replace(result.model, cells=cells.iloc[:0]))
    assert len(pipeline.uncovered_cells(empty, block_m=block_m, lack={s: v[:0] for s, v in lack.items()})) == 0


def test_circles_from_kept_nodes(repo_root):
    from coverage import pipeline

    result = pipeline.evaluate_model(pipeline.build_model(pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")))
    _check_circles_from_kept_nodes(result)
    _check_uncovered_blocks(result)


@pytest.mark.parametrize("where", ["unit_shares", "write_gaps_xlsx", "write_map"])
def test_an_error_while_writing_leaves_nothing_and_stops_every_thread(repo_root, tmp_path, monkeypatch, where):
    """layers.gpkg is written in its own thread from the start and waits for the units layer: an
    error in the main thread before (unit_shares), while (the workbook) or after (the map) it is
    made ends the run with that error, stops the writer, and leaves no output folder and no
    temporary one behind."""
    from coverage import pipeline
    from coverage.report import excel
    from coverage.report import map as map_

    result = pipeline.evaluate_model(pipeline.build_model(pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")))

    def boom(*args, **kwargs):
        raise OSError(f"disk full in {where}")

    module = {"unit_shares": pipeline, "write_gaps_xlsx": excel, "write_map": map_}[where]
    monkeypatch.setattr(module, where, boom)
    out = tmp_path / "out"
    before = set(threading.enumerate())
    raised: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.write_outputs(result, out)
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            raised.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=180)
    assert not runner.is_alive(), "write_outputs hangs: a thread waits for a layer that never comes"
    assert len(raised) == 1 and isinstance(raised[0], OSError) and f"disk full in {where}" in str(raised[0])
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]  # every writer stopped


def test_project_year_follows_the_run_date(repo_root, monkeypatch):
    """Without ``output.year`` the project bank is for the year after the run's date, which
    ``SOURCE_DATE_EPOCH`` fixes (not the clock's year)."""
    from coverage import pipeline

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1900000000")  # 2030-03-17
    inputs = pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")
    assert inputs.scenario.output.year is None
    result = pipeline.evaluate_model(pipeline.build_model(inputs))
    assert result.summary["run"]["date"] == "2030-03-17"
    assert len(result.gaps) and set(result.gaps["year"]) == {2031}


def test_supply_ratios_count_facilities_without_capacity(repo_root):
    """Facilities of a rule's types without a capacity are left out of its E2SFCA ratio and counted."""
    from coverage import model as model_mod

    inputs = pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml")
    fac = inputs.facilities.copy()
    rule = next(r for r in inputs.preset.circles if r.id == "elderly_urban_15min")
    of_type = fac["ftype"].isin(rule.ftypes)
    cap = pd.to_numeric(fac["capacity"], errors="coerce")
    before = int((of_type & ~(cap > 0)).sum())
    blank = fac.index[of_type & (cap > 0)][:3]
    assert len(blank) == 3
    fac["capacity"] = fac["capacity"].astype(object)
    fac.loc[blank, "capacity"] = None
    m = pipeline.build_model(inputs_mod.with_scenario(inputs, inputs.scenario, fac))
    _, ratios = model_mod.supply_ratios(m, model_mod.circle_times(m))
    assert ratios[rule.id]["facilities_without_capacity"] == before + 3
    assert ratios[rule.id]["facilities"] == int((of_type & (cap > 0)).sum()) - 3


def test_supply_ratios_name_units_when_some_cells_have_no_code(repo_root):
    """Cells without a unit code (NaN) do not rename a unit: they form the 未归属乡镇 row, as in the
    coverage tables."""
    from coverage import model as model_mod

    m = pipeline.build_model(pipeline.load_inputs(repo_root / "scenarios" / "demo_baseline.yaml"))
    cells = model_mod.circle_times(m)
    tail = cells.index[-len(cells) // 10:]  # after the first cell of every unit
    cells["unit_code"] = cells["unit_code"].astype(object)
    cells["unit_name"] = cells["unit_name"].astype(object)
    cells.loc[tail, "unit_code"] = np.nan
    cells.loc[tail, "unit_name"] = "无代码的格网"
    _, ratios = model_mod.supply_ratios(m, cells)
    names = dict(zip(m.inputs.units["code"].astype(str), m.inputs.units["name"].astype(str), strict=True))
    names[evaluate.UNASSIGNED_CODE] = evaluate.UNASSIGNED_NAME
    rows = [u for r in ratios.values() for u in r["by_unit"]]
    assert rows and all(u["name"] == names[u["code"]] for u in rows)
    assert evaluate.UNASSIGNED_CODE in {u["code"] for u in rows}


@pytest.mark.parametrize("scenario", ["demo", pytest.param("macau", marks=pytest.mark.slow)])
def test_the_service_table_kept_for_the_files_is_the_one_counted(scenario, repo_root, shared_data):
    """write_outputs takes RunResult.by_service instead of computing it again: it is the table of
    the run's cells, rules and missing data, and summary.json counts from it."""
    path = repo_root / "scenarios" / "demo_baseline.yaml" if scenario == "demo" else repo_root / "tests" / "data" / "macau.yaml"
    result = pipeline.evaluate_model(pipeline.build_model(pipeline.load_inputs(path)))
    inputs = result.model.inputs
    again = evaluate.service_coverage(result.model.cells, inputs.preset, units=inputs.units,
                                      no_data=pipeline.no_data_of(result.summary))
    pd.testing.assert_frame_equal(result.by_service, again)
    county = again[again["unit_code"] == evaluate.COUNTY_CODE].set_index("service")
    for service, cat in result.summary["categories"].items():
        if cat["population_covered"] is not None:
            assert cat["population_covered"] == pytest.approx(float(county.at[service, "covered"]), rel=1e-9)
