"""County figures of the 2020 census (七普, NBS 2022 county tabulation): age shares and population.

The tables are those of ``shared/data/china_county_census_2020`` (from the ``tudigong`` project):

* ``tudigong_ages.csv``: per county (``CODE`` = 6-digit adcode, ``NAME``) the share of residents in
  the 5-year bands ``AGES_0`` (under 1), ``AGES_1-4``, ``AGES_5-9``, ``AGES_10-14``, …,
  ``AGES_80-84``, ``AGES_85P`` (they sum to 1 up to rounding), plus ``AGES_0-14``, ``AGES_15-64``,
  ``AGES_65P`` and ``AGES_W_15-49``.
* ``tudigong_population.csv``: ``POPU`` (resident population), ``POPU_URB`` (urban share) and more.

Both are UTF-8 with a byte-order mark. The package ships no copy: the caller (``covplan prepare``)
passes the path; :data:`AGES_CSV` and :data:`POPULATION_CSV` are ``None`` until configured.

Mapping bands onto :data:`coverage.settings.AGE_GROUPS`
-----------------------------------------------------
Inside a band every single year of age is taken to hold the same share (a uniform split). The band
``1–4`` holds 4 single years, the others 5. Hence::

    age0_2    = AGES_0 + 2/4·AGES_1-4                       (ages 0, 1, 2)
    age3_5    = 2/4·AGES_1-4 + 1/5·AGES_5-9                 (ages 3, 4, 5)
    age6_11   = 4/5·AGES_5-9 + 2/5·AGES_10-14               (ages 6–9, 10, 11)
    age12_14  = 3/5·AGES_10-14                              (ages 12, 13, 14)
    age60plus = AGES_60-64 + AGES_65-69 + … + AGES_80-84 + AGES_85P

The uniform split is an approximation: birth cohorts differ in size (China's births fell sharply
after 2016), so single-year shares inside a band are not equal; errors of a few per cent of a group
are to be expected.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path
from typing import TypedDict

import pandas as pd

from coverage import settings
from coverage.errors import InputError

#: Default path of ``tudigong_ages.csv``; None: the caller must pass ``path``.
AGES_CSV: Path | None = None
#: Default path of ``tudigong_population.csv``; None: the caller must pass ``path``.
POPULATION_CSV: Path | None = None

#: The single-year bands of the census table: column → (first age, last age; None = open).
BANDS: dict[str, tuple[int, int | None]] = {
    "AGES_0": (0, 0),
    "AGES_1-4": (1, 4),
    **{f"AGES_{a}-{a + 4}": (a, a + 4) for a in range(5, 85, 5)},
    "AGES_85P": (85, None),
}

#: Age groups (``settings.AGE_GROUPS`` keys) as single-year ranges (last None = open-ended).
GROUP_AGES: dict[str, tuple[int, int | None]] = {
    "age0_2": (0, 2),
    "age3_5": (3, 5),
    "age6_11": (6, 11),
    "age12_14": (12, 14),
    "age60plus": (60, None),
}


def band_weights(first: int, last: int | None) -> dict[str, Fraction]:
    """Fractions of each census band that fall in the ages ``first``…``last`` (uniform split).

    Parameters
    ----------
    first : int
        First single year of age of the group.
    last : int or None
        Last single year (inclusive); None for an open-ended group (e.g. 60 and over).

    Returns
    -------
    dict
        Band column → fraction (only bands with a non-zero fraction). An open band (85+) counts
        wholly when the group is open and starts at or below 85.
    """
    out: dict[str, Fraction] = {}
    for col, (b0, b1) in BANDS.items():
        if b1 is None:  # the open band (85+) cannot be split by single year
            if last is None and first <= b0:
                out[col] = Fraction(1)
            elif last is None or last >= b0:
                raise ValueError(f"age group {first}-{last} splits the open band {col}")
            continue
        hi = b1 if last is None else min(b1, last)
        lo = max(b0, first)
        if hi >= lo:
            out[col] = Fraction(hi - lo + 1, b1 - b0 + 1)
    return out


def _read(path: str | Path | None, default: Path | None, what_zh: str, what_en: str) -> tuple[Path, pd.DataFrame]:
    p = path if path is not None else default
    if p is None:
        raise InputError(
            f"没有给出七普{what_zh}表的路径；请传入 path（如 china_county_census_2020/tudigong_{what_en}.csv）。",
            f"no path given for the 2020-census {what_en} table; pass path (e.g. "
            f"china_county_census_2020/tudigong_{what_en}.csv).",
            field="path",
        )
    p = Path(p)
    if not p.is_file():
        raise InputError(
            f"找不到七普{what_zh}表：{p}。请检查路径。",
            f"2020-census {what_en} table not found: {p}. Check the path.",
            file=p,
        )
    df = pd.read_csv(p, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    if "CODE" not in df.columns:
        raise InputError(
            f"{p.name} 缺少 CODE 列（6 位行政区划代码）。",
            f"{p.name} has no CODE column (6-digit adcode).",
            file=p,
            field="CODE",
        )
    df["CODE"] = df["CODE"].str.strip()
    return p, df


def _row(df: pd.DataFrame, p: Path, adcode: str) -> tuple[int, pd.Series]:
    code = str(adcode).strip()
    hits = df.index[df["CODE"] == code]
    if len(hits) == 0:
        raise InputError(
            f"七普县级表 {p.name} 中没有行政区划代码 {code}。请使用 6 位县级代码（如 620802 崆峒区）；"
            f"若该县近年撤并或改名，请改用 2020 年时的代码。",
            f"adcode {code} is not in the 2020-census county table {p.name}. Use a 6-digit county "
            f"code (e.g. 620802 for 崆峒区); if the county was merged or renamed after 2020, use its "
            f"2020 code.",
            file=p,
            field="CODE",
        )
    i = int(hits[0])
    # the row number Excel/WPS shows: the header is row 1, the first county row 2
    return i + 2, df.loc[i]


def _number(row: pd.Series, col: str, p: Path, rowno: int) -> float:
    raw = str(row.get(col, "")).strip()
    try:
        v = float(raw)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise InputError(
            f"{p.name} 中 {row.get('NAME', '')}（{row['CODE']}）的 {col} 没有可用数值（{raw!r}）。"
            f"请为该县另行提供年龄结构或人口数。",
            f"{p.name} has no usable value of {col} for {row.get('NAME', '')} ({row['CODE']}): "
            f"{raw!r}. Supply the age structure or population of this county another way.",
            file=p,
            row=rowno,
            field=col,
        )
    return v


def age_shares(
    adcode: str, path: str | Path | None = None, *, normalise: bool = True
) -> dict[str, float]:
    """Shares of a county's residents in each age group of ``settings.AGE_GROUPS`` (2020 census).

    Parameters
    ----------
    adcode : str
        6-digit county adcode, e.g. ``"620802"`` (崆峒区).
    path : str or Path, optional
        ``tudigong_ages.csv``; defaults to :data:`AGES_CSV` (unset: pass it).
    normalise : bool
        Divide by the sum of the 19 bands so that they add up to exactly 1. The published bands
        sum to 1 ± 0.0004 (rounding) except for one defective row (扎赉诺尔区 150703, sum 0.458),
        where only the proportions are usable; a row off by more than 1 % also gives a warning.

    Returns
    -------
    dict
        ``{"age0_2": …, "age3_5": …, "age6_11": …, "age12_14": …, "age60plus": …}``, shares of
        the whole population (0–1), from the 5-year bands split uniformly by single year (see the
        module docstring).

    Raises
    ------
    InputError
        Missing file, unknown adcode, or a county without figures (e.g. 金门县).
    """
    p, df = _read(path, AGES_CSV, "年龄", "ages")
    missing = [c for c in BANDS if c not in df.columns]
    if missing:
        raise InputError(
            f"{p.name} 缺少年龄段列 {', '.join(missing)}；请使用 tudigong ages.csv 格式。",
            f"{p.name} lacks the age-band columns {', '.join(missing)}; use the tudigong ages.csv layout.",
            file=p,
            field=missing[0],
        )
    rowno, row = _row(df, p, adcode)
    bands = {c: _number(row, c, p, rowno) for c in BANDS}
    total = sum(bands.values())
    if total <= 0:
        raise InputError(
            f"{p.name} 中 {row.get('NAME', '')}（{row['CODE']}）的年龄段比例全为 0。请另行提供年龄结构。",
            f"{p.name}: the age bands of {row.get('NAME', '')} ({row['CODE']}) are all 0. Supply "
            f"the age structure another way.",
            file=p,
            row=rowno,
        )
    if abs(total - 1.0) > 0.01:
        warnings.warn(
            f"{p.name} 第{rowno}行 {row.get('NAME', '')}（{row['CODE']}）的年龄段比例之和为 {total:.4f}"
            f"（应为 1）；{'已按比例归一。' if normalise else '未归一。'} / the age bands of "
            f"{row.get('NAME', '')} ({row['CODE']}, row {rowno}) sum to {total:.4f}, not 1; "
            f"{'rescaled to 1.' if normalise else 'not rescaled.'}",
            stacklevel=2,
        )
    if normalise:
        bands = {c: v / total for c, v in bands.items()}
    out: dict[str, float] = {}
    for group in settings.AGE_GROUPS:
        first, last = GROUP_AGES[group]
        out[group] = float(sum(float(w) * bands[c] for c, w in band_weights(first, last).items()))
    return out


def band_shares(adcode: str, path: str | Path | None = None) -> dict[str, float]:
    """The raw 5-year band shares of a county (``AGES_0`` … ``AGES_85P``), as in the table.

    Parameters
    ----------
    adcode : str
        6-digit county adcode.
    path : str or Path, optional
        ``tudigong_ages.csv``; defaults to :data:`AGES_CSV`.

    Returns
    -------
    dict
        Band column → share (they sum to about 1).
    """
    p, df = _read(path, AGES_CSV, "年龄", "ages")
    rowno, row = _row(df, p, adcode)
    return {c: _number(row, c, p, rowno) for c in BANDS}


class CountyPopulation(TypedDict):
    """A county's 2020 census figures, as :func:`population` returns them (a plain dict)."""

    adcode: str
    name: str
    population: float
    urban_share: float


def population(adcode: str, path: str | Path | None = None) -> CountyPopulation:
    """Resident population and urban share of a county (2020 census).

    Parameters
    ----------
    adcode : str
        6-digit county adcode.
    path : str or Path, optional
        ``tudigong_population.csv``; defaults to :data:`POPULATION_CSV` (unset: pass it).

    Returns
    -------
    CountyPopulation
        ``{"adcode": str, "name": str, "population": float (POPU), "urban_share": float
        (POPU_URB, 0–1)}``.

    Raises
    ------
    InputError
        Missing file, unknown adcode, or a county without figures.
    """
    p, df = _read(path, POPULATION_CSV, "人口", "population")
    rowno, row = _row(df, p, adcode)
    return {
        "adcode": str(row["CODE"]),
        "name": str(row.get("NAME", "")),
        "population": _number(row, "POPU", p, rowno),
        "urban_share": _number(row, "POPU_URB", p, rowno),
    }
