"""Tests of ``coverage.report.tables``: whole people that add up, Chinese words, codes as text."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coverage.report.tables import excel_text, from_excel_text, group_label, people_table, round_people


def test_round_people_by_hand() -> None:
    # 1.4 + 1.4 + 1.2 = 4: one goes up: the largest fraction, the first row on a tie
    assert list(round_people([1.4, 1.4, 1.2], 4)) == [2, 1, 1]
    assert list(round_people([3.0, 2.9, 0.2], 5)) == [3, 2, 0]
    assert list(round_people([3.0, 2.9, 0.2], 6)) == [3, 3, 0]
    # without a total: each on its own, halves up; missing stays missing
    out = round_people([0.5, 1.5, np.nan, 8262.999990448356])
    assert out[0] == 1 and out[1] == 2 and out[2] is pd.NA and out[3] == 8263


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=40))
def test_round_people_adds_up(values: list[float]) -> None:
    total = math.fsum(values)
    got = round_people(values, total)
    assert int(got.sum()) == math.floor(total + 0.5)
    for g, v in zip(got, values, strict=True):
        assert math.floor(v) <= g <= math.ceil(v)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5e4, allow_nan=False), st.sampled_from([0.0, 0.3, 0.77, 1.0])),
                min_size=1, max_size=30))
def test_people_table_rows_add_up_and_stay_consistent(rows: list[tuple[float, float]]) -> None:
    pop = [p for p, _ in rows]
    cov = [p * s for p, s in rows]
    df = pd.DataFrame({"code": [f"{i:012d}" for i in range(len(rows))], "name": "乡",
                       "population": pop, "covered": cov})
    out, total = people_table(df)
    assert total["population"] == int(out["population"].sum()) == math.floor(math.fsum(pop) + 0.5)
    assert total["covered"] == int(out["covered"].sum())
    assert abs(total["covered"] - math.fsum(cov)) <= 0.5 + 1e-6
    assert (out["uncovered"] == out["population"] - out["covered"]).all()
    assert (out["covered"] >= 0).all() and (out["uncovered"] >= 0).all()
    assert list(out["code"]) == list(df["code"])


def test_county_row_is_the_total() -> None:
    df = pd.DataFrame({"unit_code": ["", "1", "2"], "unit_name": ["全县", "甲", "乙"],
                       "population": [10.0, 4.6, 5.4], "covered": [10.0, 4.6, 5.4]})
    out, total = people_table(df)
    assert list(out["name"]) == ["甲", "乙"]
    assert list(out["population"]) == [5, 5] and list(out["uncovered"]) == [0, 0]  # fully covered stays so
    assert total == {"population": 10, "covered": 10, "uncovered": 0, "share": pytest.approx(1.0)}


def test_words_and_codes() -> None:
    assert group_label("age60plus") == "60岁及以上"
    assert group_label("age6_11+age12_14") == "6–11岁、12–14岁"
    assert group_label("pop") == "全体常住人口"
    assert excel_text("629901001000") == '="629901001000"' and excel_text("") == ""
    assert from_excel_text('="629901001000"') == "629901001000"


def test_people_table_found_by_hypothesis() -> None:
    """Two fully covered rows of 1.6 and 1.2 people round to 1 each: the covered total's last person
    goes to a row below its population (it went to a full row: covered 2 of 1, uncovered −1)."""
    rows = [(1.625, 1.0), (1.1875, 1.0), (28786.8125, 0.77), (28786.8125, 0.77)]
    df = pd.DataFrame({"code": [f"{i:012d}" for i in range(4)], "name": "乡",
                       "population": [p for p, _ in rows], "covered": [p * s for p, s in rows]})
    out, total = people_table(df)
    assert (out["uncovered"] >= 0).all() and (out["covered"] <= out["population"]).all()
    assert total["covered"] == math.floor(math.fsum(p * s for p, s in rows) + 0.5)
