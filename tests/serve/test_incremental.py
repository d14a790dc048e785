"""Incremental times equal a fresh evaluation of the final facility table, bit for bit, after any
sequence of additions, moves, removals and type changes; the tally's figures equal evaluate.summary."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest

from coverage import evaluate, incremental, pipeline
from coverage.inputs import with_scenario


def _fresh(session, live: incremental.LiveTimes):
    """circle_times of the final facility set, through pipeline.with_facilities (as a fresh run)."""
    keys = sorted(live.ftype)
    fac = gpd.GeoDataFrame(
        {"fid": [f"K{k}" for k in keys], "ftype": [live.ftype[k] for k in keys]},
        geometry=gpd.points_from_xy([live.xy[k][0] for k in keys], [live.xy[k][1] for k in keys]),
        crs=session.inputs.crs)
    model = pipeline.with_facilities(session.model, with_scenario(session.inputs, session.inputs.scenario, fac))
    return pipeline.circle_times(model), fac


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_edits_give_exactly_the_fresh_times(session, seed):
    rng = np.random.default_rng(seed)
    fac = session.inputs.facilities
    live = incremental.LiveTimes(session.model.graphs, session.model.snapped_cells, session.cell_xy,
                                 session._live_rules(), fac)
    tally = incremental.CoverageTally(session.cells, session.groups,
                                      [(r.id, float(r.threshold)) for r in session.rules], live.times())
    by_id = {r.id: r for r in live.rules}
    xy = session.cell_xy
    types = sorted(set(fac["ftype"]))
    nxt = len(fac)
    for _ in range(14):
        keys = sorted(live.ftype)
        op = rng.choice(["add", "remove", "move", "retype"])
        k = int(rng.choice(keys))
        c = xy[rng.integers(len(xy))] + rng.normal(0, 80, 2)
        if op == "add":
            ch = live.add(nxt, str(rng.choice(types)), *c)
            nxt += 1
        elif op == "remove":
            ch = live.remove(k)
        elif op == "move":
            ch = live.move(k, *c)
        else:
            ch = live.retype(k, str(rng.choice(types)))
        for rid, cells in ch.items():
            tally.update(rid, cells, by_id[rid].time[cells])
    fresh, fac2 = _fresh(session, live)
    for r in live.rules:
        assert np.array_equal(r.time, fresh[r.column].to_numpy()), r.id
        # the kept nearest facility reaches the cell in exactly its time
        got = r.source >= 0
        assert np.isfinite(r.time[got]).all()
    nd = evaluate.no_data_rules(session.inputs.preset, fac2, session.inputs.seat)
    want = evaluate.summary(fresh, session.inputs.preset, "x", units=session.inputs.units, no_data=nd)
    got = tally.categories(session.inputs.preset, units=session.inputs.units, no_data=nd)
    for key, cat in want["categories"].items():
        w = {k: v for k, v in cat.items() if k != "circle"}
        g = got["categories"][key]
        assert g["population"] == pytest.approx(w["population"], rel=1e-12)
        assert g["population_covered"] == pytest.approx(w["population_covered"], rel=1e-9, abs=1e-6)
        assert [u["code"] for u in g["by_unit"]] == [u["code"] for u in w["by_unit"]]
        for a, b in zip(g["by_unit"], w["by_unit"]):
            assert a["covered"] == pytest.approx(b["covered"], rel=1e-9, abs=1e-6)
            assert a.get("note") == b.get("note")


def test_a_removal_then_readding_restores_the_times(session):
    live = incremental.LiveTimes(session.model.graphs, session.model.snapped_cells, session.cell_xy,
                                 session._live_rules(), session.inputs.facilities)
    before = live.times()
    ft, (x, y) = live.ftype[3], live.xy[3]
    changed = live.remove(3)
    assert any(len(c) for c in changed.values())  # the facility served someone
    live.add(3, ft, x, y)
    after = live.times()
    assert all(np.array_equal(before[c], after[c]) for c in before)
