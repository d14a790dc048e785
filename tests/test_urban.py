"""城区 from the population grid (coverage.urban): hand-built grids, the demo's drawn 城区, Wuhan."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from pyproj import CRS

from coverage import demand, inputs, urban
from coverage.crs import haversine_m, local_metric_crs
from coverage.io.population import PopulationGrid, read_population
from coverage.scenario import Area

CRS_M = CRS.from_epsg(4547)
DEMO = "scenarios/demo_baseline.yaml"


def _grid(total: np.ndarray, cell: float = 1000.0) -> PopulationGrid:
    return PopulationGrid(np.asarray(total, dtype="float64"), {}, Affine(cell, 0, 0, 0, -cell, 0), CRS_M)


def test_connectivity_and_thresholds_on_a_hand_built_grid():
    """Two dense cells touching at a corner are two dense clusters (4-connectivity) but one urban
    cluster (8-connectivity); an edge neighbour joins them into an urban centre."""
    t = np.zeros((6, 6))
    t[1, 1] = t[2, 2] = 30_000  # 30,000/km² each; touching only diagonally
    t[4, 4] = 1_000             # 300–1,500/km², alone: 1,000 < 5,000 people, rural
    u = urban.classify(_grid(t))
    assert u.factor == 1
    assert u.klass[1, 1] == u.klass[2, 2] == urban.DENSE_CLUSTER
    assert u.label[1, 1] != u.label[2, 2]
    assert u.klass[4, 4] == urban.RURAL
    kinds = sorted(u.objects["kind"].tolist())
    assert kinds == [urban.URBAN_CLUSTER, urban.DENSE_CLUSTER, urban.DENSE_CLUSTER]
    assert u.objects.loc[u.objects["kind"] == urban.URBAN_CLUSTER, "population"].item() == 60_000
    # no urban centre: the 城区 is the most populous dense cluster only (ties: the first)
    assert u.urban_mask().sum() == 1
    t[1, 2] = 30_000  # now edge-connected: 90,000 people ≥ 50,000, an urban centre
    u = urban.classify(_grid(t))
    centre = u.klass == urban.URBAN_CENTRE
    assert centre[1, 1] and centre[1, 2] and centre[2, 2]
    assert u.urban_mask().sum() == centre.sum()


def test_gap_filling_fills_holes_and_adds_cells_with_five_of_eight_neighbours():
    t = np.zeros((8, 8))
    t[1:4, 1:4] = 10_000       # 3×3 ring with a hole in the middle
    t[2, 2] = 100
    t[4:6, 1:4] = 10_000       # two more rows below: a 5×3 block
    t[3, 3] = 100              # an edge notch: neighbours (2,2)?,(2,3),(3,2),(4,2),(4,3) in the centre
    u = urban.classify(_grid(t))
    centre = u.klass == urban.URBAN_CENTRE
    assert centre[2, 2], "the hole is filled"
    assert centre[3, 3], "the notch has ≥ 5 of 8 neighbours in the centre"
    # independent count: after filling, the whole 5×3 block and nothing else
    expect = np.zeros_like(centre)
    expect[1:6, 1:4] = True
    # cells outside the block have at most 3 neighbours in it: never added
    assert (centre == expect).all()


def test_the_1km_blocks_of_a_fine_grid_give_the_same_classes():
    rng = np.random.default_rng(3)
    coarse = rng.choice([0, 200, 800, 2_000, 20_000], size=(7, 9), p=[0.3, 0.2, 0.2, 0.2, 0.1]).astype(float)
    fine = np.repeat(np.repeat(coarse / 100.0, 10, axis=0), 10, axis=1)  # 100 m cells, same totals
    a = urban.classify(_grid(coarse))
    b = urban.classify(_grid(fine, 100.0))
    assert b.factor == 10
    np.testing.assert_allclose(b.population, a.population)
    assert (a.klass == b.klass).all()
    assert (urban.urban_cells(_grid(fine, 100.0)) == np.repeat(np.repeat(a.urban_mask(), 10, 0), 10, 1)).all()


def test_area_urban_defaults_to_auto_and_accepts_none():
    assert Area(boundary="b.gpkg").urban == "auto"
    assert Area(boundary="b.gpkg", urban=None).urban == "auto"
    assert Area(boundary="b.gpkg", urban="none").urban == "none"
    assert Area(boundary="b.gpkg", urban=False).urban == "none"  # YAML `urban: no`
    assert Area(boundary="b.gpkg", urban="c.gpkg").urban.path.name == "c.gpkg"


@pytest.fixture(scope="module")
def demo_inputs(repo_root):
    return inputs.load_inputs(repo_root / DEMO)


def test_demo_derived_urban_matches_the_drawn_chengqu(demo_inputs, repo_root, tmp_path):
    """The demo's 城区 polygon (county.gpkg, layer chengqu) against the derived one: overlap (IoU)
    and the share of people on the urban side, computed here with the demand cells."""
    given = demo_inputs.urban_area.to_crs(demo_inputs.crs)
    u = urban.classify(demo_inputs.grid)
    derived = urban.polygons(u).to_crs(demo_inputs.crs)
    a, b = given.geometry.union_all(), derived.geometry.union_all()
    iou = a.intersection(b).area / a.union(b).area
    assert iou > 0.8, iou  # 0.853
    c_given = demand.cells(demo_inputs.grid, None, given)
    c_derived = demand.cells(demo_inputs.grid, None, derived)
    total = c_given["pop"].sum()
    s_given = c_given.loc[c_given["urban"], "pop"].sum() / total      # 33.2 %
    s_derived = c_derived.loc[c_derived["urban"], "pop"].sum() / total  # 31.5 %
    assert abs(s_given - s_derived) < 0.03, (s_given, s_derived)
    same = c_given["urban"].to_numpy() == c_derived["urban"].to_numpy()
    assert c_given["pop"].to_numpy()[same].sum() / total > 0.97  # 98.2 % of people on the same side
    # the seat: the population-weighted centre of the urban centre, near the given 城关街道 seat
    x, y, kind = urban.seat_of(u, demo_inputs.grid)
    assert kind == urban.URBAN_CENTRE
    lon, lat = gpd.GeoSeries(gpd.points_from_xy([x], [y]), crs=demo_inputs.crs).to_crs(4326).iloc[0].coords[0]
    d = haversine_m(lon, lat, *demo_inputs.seat)
    assert d < 3000, d  # 1.8 km


def test_reading_path_derives_and_warns(repo_root, tmp_path):
    plan = tmp_path / "auto.yaml"
    plan.write_text(f"extends: {repo_root / DEMO}\narea: {{urban: auto, seat: null}}\n", encoding="utf-8")
    inp = inputs.load_inputs(plan)
    codes = {p.code for p in inp.problems}
    assert {"urban_derived", "seat_derived"} <= codes
    assert inp.urban_derived and inp.seat_derived and inp.seat is not None
    assert inp.urban_area.crs.equals(inp.crs)
    off = tmp_path / "off.yaml"
    off.write_text(f"extends: {repo_root / DEMO}\narea: {{urban: none}}\n", encoding="utf-8")
    inp = inputs.load_inputs(off)
    assert inp.urban_area is None and not inp.urban_derived and not inp.seat_derived
    assert not {"urban_derived", "seat_derived"} & {p.code for p in inp.problems}


def test_a_grid_without_towns_has_no_urban_and_no_seat():
    t = np.full((5, 5), 200.0)  # 200/km² everywhere: rural
    u = urban.classify(_grid(t))
    assert not u.urban_mask().any() and urban.polygons(u).empty
    assert urban.seat_of(u, _grid(t)) is None


def test_wuhan_central_districts_are_urban(shared_data):
    """WorldPop 100 m (ages 20+ only, so densities are ~20 % low): the six central districts lie in
    the derived 城区, the rural 汉南区 does not."""
    outline = gpd.read_file(shared_data / "wuhan" / "boundary" / "wuhan-boundary.shp")
    c = outline.geometry.union_all().centroid
    crs = local_metric_crs(c.x, c.y)
    grid = read_population(shared_data / "wuhan" / "worldpop" / "wuhan_pop_age20plus_100m.tif", {},
                           area=outline.to_crs(crs), target_crs=crs, kind="count")
    u = urban.classify(grid)
    assert 900 < u.factor * max(abs(grid.transform.a), abs(grid.transform.e)) < 1100  # about 1 km
    cells = demand.cells(grid, None, urban.polygons(u))
    adm = gpd.read_file(shared_data / "china_admin" / "seed_admin_boundaries_amap.gpkg", layer="wgs84_converted")
    adm = adm[adm["adcode"].astype(str).str.startswith("4201") & (adm["adcode"].astype(str) != "420100")].to_crs(crs)
    share = {}
    for r in adm.itertuples():
        inside = cells.within(r.geometry).to_numpy()
        share[r.name] = cells.loc[inside & cells["urban"], "pop"].sum() / cells.loc[inside, "pop"].sum()
    for name in ("江岸区", "江汉区", "硚口区", "汉阳区", "武昌区", "青山区"):
        assert share[name] > 0.98, (name, share[name])
    assert share["汉南区"] < 0.2
    assert 0.6 < cells.loc[cells["urban"], "pop"].sum() / cells["pop"].sum() < 0.85  # 74 %
    # the seat: in the main urban centre (6.5 M people), in central Wuhan
    x, y, kind = urban.seat_of(u, grid)
    lon, lat = gpd.GeoSeries(gpd.points_from_xy([x], [y]), crs=crs).to_crs(4326).iloc[0].coords[0]
    central = adm[adm["name"].isin(["江岸区", "江汉区", "硚口区", "汉阳区", "武昌区", "青山区", "洪山区"])].to_crs(4326)
    assert kind == urban.URBAN_CENTRE
    assert central.geometry.union_all().buffer(0.01).contains(gpd.points_from_xy([lon], [lat])[0])
