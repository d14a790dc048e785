"""The data a county really has: an outline, one coarse population raster, roads without classes
and one facility layer without a type column (issue 10's minimal scenario), on real Macau data.

Checks end to end: demand on a fine 100 m grid (not one point per 1 km cell), 城区 and seat derived
from the grid, ``null`` for the services without facilities, national age shares with their
warning, and school coverage against an independent reference (brute-force snapping and a plain
Dijkstra, ``tests/reference.py``) within 2 percentage points.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml

from coverage import pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minimal(shared_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("minimal")
    mac = shared_data / "macau"
    # roads without any attribute: the class is unknown, every line walkable
    roads = gpd.read_file(mac / "osm_geofabrik_shp" / "gis_osm_roads_free_1.shp")
    gpd.GeoDataFrame(geometry=roads.geometry.values, crs=roads.crs).to_file(d / "roads.gpkg", layer="roads")
    # one facility layer of one type, no type column: the Amap primary schools (GCJ-02)
    amap = pd.read_csv(mac / "amap_poi_csv" / "macau_amap_education_culture.csv", encoding="utf-8-sig")
    schools = amap[amap["type"].astype(str).str.contains("小学")][["id", "name", "lon_gcj02", "lat_gcj02"]]
    schools.columns = ["编号", "名称", "经度", "纬度"]
    schools.to_csv(d / "小学.csv", index=False, encoding="utf-8-sig")
    scn = {
        "name": "澳门 最小输入",
        "area": {"boundary": {"path": str(shared_data / "china_admin" / "seed_admin_boundaries_amap.gpkg"),
                              "layer": "wgs84_converted", "where": "adcode = '820000'"}},
        "population": {"total": str(mac / "worldpop" / "mac_pd_2020_1km.tif"), "kind": "density"},
        "network": {"roads": {"path": str(d / "roads.gpkg"), "layer": "roads"}},
        "facilities": [{"path": str(d / "小学.csv"), "crs": "gcj02", "ftype": "primary"}],
        "standards": "cn-default",
    }
    yml = d / "scenario.yaml"
    yml.write_text(yaml.safe_dump(scn, allow_unicode=True), encoding="utf-8")
    inputs = pipeline.load_inputs(yml)
    model = pipeline.build_model(inputs)
    result = pipeline.evaluate_model(model)
    with rasterio.open(mac / "worldpop" / "mac_pd_2020_1km.tif") as src:
        n_source = int(np.isfinite(src.read(1)).sum())
    return inputs, model, result, len(schools), n_source


def test_fine_grid_not_one_point_per_coarse_cell(minimal):
    from test_pipeline import (
        _check_cell_snaps,
        _check_circles_from_kept_nodes,
        _check_gaps_with_the_tree,
        _check_nearest_cell,
    )

    inputs, model, result, _, n_source = minimal
    _check_cell_snaps(model)  # the centres snapped while the cells were made: as the points
    _check_nearest_cell(model)
    _check_gaps_with_the_tree(result)
    _check_circles_from_kept_nodes(result)
    assert abs(inputs.grid.transform.a) == pytest.approx(100.0)
    assert inputs.grid.method == "roads" and inputs.grid.source_resolution_m > 500
    assert len(model.cells) > 10 * n_source
    grid = result.summary["population_grid"]
    assert grid["resolution_m"] == pytest.approx(100.0) and grid["method"] == "roads"


def test_urban_and_seat_derived_and_said(minimal):
    inputs, model, result, _, _ = minimal
    codes = {w["code"] for w in result.summary["warnings"]}
    assert {"urban_derived", "seat_derived", "population_spread", "assumed_age_shares"} <= codes
    assert model.cells["urban"].mean() > 0.5  # Macau is a city
    assert inputs.seat is not None
    urc = result.summary["urban_rural_circle"]
    assert urc["population_covered"] is not None and urc["population_covered"] > 0


def test_services_without_facilities_are_null_not_zero(minimal):
    _, _, result, _, _ = minimal
    cats = result.summary["categories"]
    for service in ("clinic", "elderly", "fitness"):
        assert cats[service]["population_covered"] is None and cats[service]["share_covered"] is None
        assert cats[service].get("note")
    # only primary schools were given: the school service (kindergartens too) is unknown as a whole,
    # the primary-school rule has its figure
    assert cats["school"]["population_covered"] is None
    rows = result.by_unit[(result.by_unit["rule_id"] == "school_primary_urban_15min") & (result.by_unit["unit_code"] == "")]
    assert rows["covered"].notna().all() and float(rows["covered"].iloc[0]) > 0


def test_national_shares_with_their_warning(minimal):
    from coverage import settings

    inputs, _, result, _, _ = minimal
    w = next(x for x in result.summary["warnings"] if x["code"] == "assumed_age_shares")
    assert "national" in w["en"] and "全国" in w["zh"]
    share = inputs.grid.groups["age6_11"].sum() / inputs.grid.total.sum()
    assert share == pytest.approx(settings.NATIONAL_AGE_SHARES["age6_11"], rel=1e-6)


def test_school_coverage_against_an_independent_reference(minimal):
    import reference

    _, model, result, n_schools, _ = minimal
    assert n_schools >= 5
    rule = "school_primary_urban_15min"
    cells = model.cells
    pop = float(cells.loc[cells["urban"], "age6_11"].sum())
    ours = result.by_unit[(result.by_unit["rule_id"] == rule) & (result.by_unit["unit_code"] == "")]
    ours_share = float(ours["covered"].iloc[0]) / pop
    ref_share = reference.rule_coverage(model, rule) / pop
    assert 0.05 < ref_share < 1.0
    assert abs(ours_share - ref_share) <= 0.02, (ours_share, ref_share)
