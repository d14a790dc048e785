"""coverage.compare: gains and losses between a baseline and a plan (property tests)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coverage import compare, evaluate
from coverage.standards import load_preset

PRESET = load_preset("cn-default")
RULES = PRESET.active_circles()
GROUPS = ["pop", "age0_2", "age3_5", "age6_11", "age12_14", "age60plus"]


def _cells(rng: np.random.Generator, n: int, times: np.ndarray | None = None) -> gpd.GeoDataFrame:
    data = {
        "cell": np.arange(n), "unit_code": rng.choice(["A", "B", "C"], n),
        "urban": rng.random(n) < 0.5,
    }
    data["unit_name"] = [f"单元{c}" for c in data["unit_code"]]
    pop = rng.integers(0, 200, n).astype(float)
    data["pop"] = pop
    for g in GROUPS[1:]:
        data[g] = np.floor(pop * rng.random(n) * 0.3)
    for k, r in enumerate(RULES):
        data[r.column] = times[:, k] if times is not None else rng.choice([5.0, 12.0, 25.0, np.inf], n)
    return gpd.GeoDataFrame(data, geometry=gpd.points_from_xy(np.arange(n) * 100.0, np.zeros(n)), crs=3857)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60))
def test_gained_minus_lost_is_the_change(seed, n):
    rng = np.random.default_rng(seed)
    base = _cells(rng, n)
    plan = base.copy()
    for r in RULES:  # shuffle some times: coverage moves both ways
        plan[r.column] = rng.permutation(base[r.column].to_numpy())
    d = compare.unit_diff(base, plan, PRESET)
    assert (d["gained"] >= 0).all() and (d["lost"] >= 0).all()
    for service, g in d.groupby("service"):
        county = g[g["unit_code"] == ""].iloc[0]
        units = g[g["unit_code"] != ""]
        assert county["covered_plan"] - county["covered_base"] == pytest.approx(county["gained"] - county["lost"], abs=1e-6)
        assert units["gained"].sum() == pytest.approx(county["gained"], abs=1e-6)
        # the baseline side equals the evaluation's own per-service figure
        ref = evaluate.service_coverage(base, PRESET)
        ref = ref[(ref["service"] == service) & (ref["unit_code"] == "")]
        assert county["covered_base"] == pytest.approx(float(ref["covered"].iloc[0]), abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_only_shorter_times_never_lose_anyone(seed, n):
    rng = np.random.default_rng(seed)
    base = _cells(rng, n)
    plan = base.copy()
    for r in RULES:
        plan[r.column] = np.minimum(base[r.column].to_numpy(), rng.choice([1.0, np.inf], n))
    d = compare.unit_diff(base, plan, PRESET)
    assert (d["lost"] == 0).all()
    cells = compare.cell_diff(base, plan, PRESET)
    assert (cells["lost"] == 0).all() if len(cells) else True


def test_identical_runs_differ_in_nothing():
    base = _cells(np.random.default_rng(1), 50)
    d = compare.unit_diff(base, base.copy(), PRESET)
    assert (d["gained"] == 0).all() and (d["lost"] == 0).all()
    assert len(compare.cell_diff(base, base.copy(), PRESET)) == 0


def test_hand_case_one_cell_gains():
    """Two urban cells; the plan brings the elderly in cell 1 within 15 min (hand-computed: +40)."""
    base = _cells(np.random.default_rng(0), 2)
    base["urban"] = True
    base["age60plus"] = [30.0, 40.0]
    for r in RULES:
        base[r.column] = np.inf
    plan = base.copy()
    rule = next(r for r in RULES if r.service == "elderly" and r.applies_to == "urban")
    plan.loc[1, rule.column] = 10.0
    d = compare.unit_diff(base, plan, PRESET)
    row = d[(d["service"] == "elderly") & (d["unit_code"] == "")].iloc[0]
    assert row["gained"] == pytest.approx(40.0) and row["lost"] == 0.0
