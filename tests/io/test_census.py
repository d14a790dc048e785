"""Tests of coverage.io.census on the real 2020 county census tables in shared/data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coverage import settings
from coverage.errors import InputError
from coverage.io import census


@pytest.fixture(scope="module")
def ages_csv(shared_data: Path) -> Path:
    return shared_data / "china_county_census_2020" / "tudigong_ages.csv"


@pytest.fixture(scope="module")
def pop_csv(shared_data: Path) -> Path:
    return shared_data / "china_county_census_2020" / "tudigong_population.csv"


def _raw_row(path: Path, code: str) -> dict[str, str]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["CODE"] == code:
                return row
    raise AssertionError(code)


def test_kongtong_shares_by_hand(ages_csv):
    # The raw row of 崆峒区 (620802), read with the csv module, not with the code under test.
    r = {k: float(v) for k, v in _raw_row(ages_csv, "620802").items() if k.startswith("AGES_")}
    assert r["AGES_0"] == 0.0106 and r["AGES_1-4"] == 0.0523  # the row is the one we think
    # Uniform split by single year: band 1–4 has 4 years, the others 5.
    expected = {
        "age0_2": r["AGES_0"] + 2 / 4 * r["AGES_1-4"],
        "age3_5": 2 / 4 * r["AGES_1-4"] + 1 / 5 * r["AGES_5-9"],
        "age6_11": 4 / 5 * r["AGES_5-9"] + 2 / 5 * r["AGES_10-14"],
        "age12_14": 3 / 5 * r["AGES_10-14"],
        "age60plus": r["AGES_60-64"] + r["AGES_65-69"] + r["AGES_70-74"] + r["AGES_75-79"]
        + r["AGES_80-84"] + r["AGES_85P"],
    }
    # With the published figures: 0.0106 + 0.02615 = 0.03675, and so on.
    assert expected["age0_2"] == pytest.approx(0.03675)
    assert expected["age60plus"] == pytest.approx(0.042 + 0.0472 + 0.0347 + 0.0252 + 0.0138 + 0.0065)
    raw = census.age_shares("620802", ages_csv, normalise=False)
    assert list(raw) == list(settings.AGE_GROUPS)
    for k, v in expected.items():
        assert raw[k] == pytest.approx(v, abs=1e-12), k
    # Normalised (default): divided by the sum of the 19 bands (exactly 1.0000 for this row).
    band_sum = sum(v for k, v in r.items() if k not in ("AGES_0-14", "AGES_15-64", "AGES_65P", "AGES_W_15-49"))
    assert band_sum == pytest.approx(1.0, abs=1e-9)
    got = census.age_shares("620802", ages_csv)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v / band_sum, abs=1e-12), k
    # 0–14 from the groups equals the table's own 0–14 band sum.
    child = got["age0_2"] + got["age3_5"] + got["age6_11"] + got["age12_14"]
    assert child == pytest.approx(r["AGES_0"] + r["AGES_1-4"] + r["AGES_5-9"] + r["AGES_10-14"])
    assert child == pytest.approx(r["AGES_0-14"], abs=5e-4)


def test_bands_sum_to_one_everywhere(ages_csv):
    n = 0
    with open(ages_csv, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["AGES_0"].startswith("#"):  # 金门县 has no figures
                continue
            if row["CODE"] == "150703":  # 扎赉诺尔区: a defective row, see the next test
                continue
            total = sum(float(row[c]) for c in census.BANDS)
            assert total == pytest.approx(1.0, abs=0.003), row["CODE"]
            n += 1
    assert n == 2988
    bands = census.band_shares("620802", ages_csv)
    assert list(bands) == list(census.BANDS) and len(bands) == 19
    assert sum(bands.values()) == pytest.approx(1.0, abs=0.003)


def test_defective_row_is_rescaled_with_a_warning(ages_csv):
    # 扎赉诺尔区 150703: its bands sum to 0.4578 in the published table.
    r = {k: float(v) for k, v in _raw_row(ages_csv, "150703").items() if k.startswith("AGES_")}
    with pytest.warns(UserWarning, match="0.4578"):
        got = census.age_shares("150703", ages_csv)
    assert got["age0_2"] == pytest.approx((0.0021 + 0.0104 / 2) / 0.4578, rel=1e-9)
    assert got["age12_14"] == pytest.approx(3 / 5 * r["AGES_10-14"] / 0.4578, rel=1e-9)


def test_band_weights_cover_each_year_once():
    # Every single year 0..84 belongs to exactly one band; 85+ is whole.
    covered = {}
    for first in range(0, 85):
        w = census.band_weights(first, first)
        assert len(w) == 1
        (col, frac), = w.items()
        covered.setdefault(col, 0)
        covered[col] += frac
    assert all(v == 1 for v in covered.values())
    assert census.band_weights(60, None)["AGES_85P"] == 1
    with pytest.raises(ValueError):
        census.band_weights(80, 90)


@given(st.integers(0, 84), st.integers(0, 84))
def test_band_weights_count_years(a, b):
    first, last = min(a, b), max(a, b)
    w = census.band_weights(first, last)
    # Sum over bands of fraction × band width = number of single years in the group.
    widths = {c: (hi - lo + 1) for c, (lo, hi) in census.BANDS.items() if hi is not None}
    assert sum(f * widths[c] for c, f in w.items()) == last - first + 1


def test_population_of_seeds(pop_csv):
    p = census.population("620802", pop_csv)
    assert p == {"adcode": "620802", "name": "崆峒区", "population": 504265.0, "urban_share": 0.6592}
    assert census.population("610724", pop_csv)["population"] == 321535


def test_unknown_adcode_is_bilingual(ages_csv, pop_csv):
    for fn, path in ((census.age_shares, ages_csv), (census.population, pop_csv)):
        with pytest.raises(InputError) as err:
            fn("999999", path)
        msg = str(err.value)
        assert "999999" in msg and "没有行政区划代码" in msg and "is not in" in msg
        assert err.value.problem.field == "CODE"


def test_county_without_figures(ages_csv, pop_csv):
    # 金门县 350527 is listed with #DIV/0! / empty values.
    with pytest.raises(InputError) as err:
        census.age_shares("350527", ages_csv)
    assert "金门县" in str(err.value) and err.value.problem.row == 1126  # line 1126 of the file (header = line 1), as Excel shows it
    with pytest.raises(InputError, match="POPU"):
        census.population("350527", pop_csv)


def test_path_required_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="no path given"):
        census.age_shares("620802")
    with pytest.raises(InputError, match="not found"):
        census.population("620802", tmp_path / "nope.csv")
