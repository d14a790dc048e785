"""Planner-facing figures: whole people that add up, Chinese words for internal keys, codes as text.

Everything a planner reads (``gaps.xlsx``, ``coverage_by_unit.csv``, ``report.html``, the map)
takes its people counts, labels and codes from here, so the files agree with each other:

* **Whole people that add up.** Population figures are sums of fractional raster cells
  (8262.999990448356). :func:`round_people` turns a column into whole people; given the printed
  total it uses largest-remainder rounding (each value goes to its floor or its ceiling, the ones
  with the largest fractions go up) so that the rows add up to the printed total exactly.
  :func:`people_table` applies it to a coverage-by-unit table: population and covered people are
  rounded to the county totals, covered people never exceed the population of their row, and
  未覆盖人口 is the difference of the two printed numbers. Shares are computed from the unrounded
  figures. ``summary.json`` keeps the unrounded figures (other programs read it).
* **No internal keys.** :data:`COLUMN_LABELS`, :data:`GROUP_LABELS`, :data:`APPLIES_TO_LABELS`,
  :data:`MODE_LABELS` and :func:`circle_label` give the Chinese words; service labels come from
  :data:`coverage.categories.SERVICES`.
* **Codes stay text in Excel.** A 12-digit 乡镇/街道 code in a CSV opened by double-click in Excel
  or WPS becomes the number 6.29901E+11. :func:`excel_text` writes it as the formula ``="…"``, the
  usual way to keep a CSV value text in Excel, WPS and LibreOffice; a program reading the CSV
  strips the ``="`` and ``"`` (:func:`from_excel_text`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coverage import categories, settings
from coverage.evaluate import COUNTY_CODE, COUNTY_NAME
from coverage.report._util import atomic_target, is_missing

__all__ = [
    "APPLIES_TO_LABELS",
    "CIRCLE_LABEL",
    "COLUMN_LABELS",
    "CSV_COLUMNS",
    "GROUP_LABELS",
    "MODE_LABELS",
    "circle_label",
    "coverage_csv_frame",
    "excel_text",
    "from_excel_text",
    "group_label",
    "people_table",
    "planner_frame",
    "round_people",
    "service_text",
    "target_groups",
    "write_coverage_csv",
]

#: Travel modes in Chinese.
MODE_LABELS: dict[str, str] = {"walk": "步行", "ebike": "电动自行车", "drive": "驾车", "bike": "自行车"}
#: Target groups in Chinese (``pop`` is everybody).
GROUP_LABELS: dict[str, str] = {"pop": "全体常住人口", **settings.AGE_GROUPS}
#: Where a circle rule applies.
APPLIES_TO_LABELS: dict[str, str] = {"urban": "城镇", "rural": "乡村", "all": "全域"}
#: Threshold units.
_UNIT_LABELS: dict[str, str] = {"minutes": "分钟", "metres": "米"}
#: Label of the 15 km urban–rural service circle (a "service" of its own in the tables).
CIRCLE_LABEL = "15公里城乡服务圈"
#: Internal column names → Chinese headers, for every table a planner reads.
COLUMN_LABELS: dict[str, str] = {
    "level": "层级",
    "service": "服务领域",
    "rule_id": "规则",
    "group": "对象人群",
    "applies_to": "适用范围",
    "circle": "服务圈",
    "unit_code": "乡镇(街道)代码",
    "code": "乡镇(街道)代码",
    "unit_name": "乡镇(街道)",
    "name": "乡镇(街道)",
    "population": "人口",
    "covered": "覆盖人口",
    "uncovered": "未覆盖人口",
    "share": "覆盖率(%)",
    "nature": "指标性质",
    "target_share": "目标覆盖率(%)",
    "meets_target": "是否达标",
    # scenario comparison (coverage.compare.unit_diff)
    "population_base": "人口(现状)",
    "population_plan": "人口(方案)",
    "covered_base": "覆盖人口(现状)",
    "covered_plan": "覆盖人口(方案)",
    "gained": "新增覆盖人口",
    "lost": "失去覆盖人口",
    "share_base": "覆盖率(现状)",
    "share_plan": "覆盖率(方案)",
    "share_change": "覆盖率变化",
}
#: Columns holding people (rounded to whole people by :func:`planner_frame`).
_PEOPLE_COLUMNS = {"population", "covered", "uncovered", "population_base", "population_plan",
                   "covered_base", "covered_plan", "gained", "lost"}
#: Columns of ``coverage_by_unit.csv``, in order.
CSV_COLUMNS: tuple[str, ...] = tuple(
    COLUMN_LABELS[k] for k in ("level", "service", "rule_id", "group", "applies_to", "circle",
                               "unit_code", "unit_name", "population", "covered", "uncovered",
                               "share", "nature", "target_share", "meets_target")
)
#: Chinese labels of the ``层级`` column of coverage_by_unit.csv (service summary vs single rule).
LEVELS = {"service": "服务汇总", "rule": "单项规则"}
_RULE_EXTRA = ("nature", "target_share", "meets_target")


# --------------------------------------------------------------------------------------------
# whole people
# --------------------------------------------------------------------------------------------


def round_people(
    values: Sequence[Any] | np.ndarray | pd.Series,
    total: float | None = None,
    *,
    cap: Sequence[Any] | np.ndarray | pd.Series | None = None,
) -> pd.arrays.IntegerArray:
    """Round people counts to whole people, so that they add up to a printed total.

    Parameters
    ----------
    values : array-like of float
        People counts (missing values stay missing and take no part).
    total : float, optional
        The total the rounded values must add up to (it is itself rounded to the nearest whole
        number). Without it each value is rounded to the nearest whole person on its own (halves
        up), for lists whose rows are not summed.
    cap : array-like of int, optional
        Upper bound per value (e.g. covered people ≤ the row's rounded population); honoured as
        long as the total allows it. With a cap, a value may go above its ceiling (never above its
        cap) when the rows that could take the total's last people are at their caps.

    Returns
    -------
    pandas.arrays.IntegerArray
        ``Int64`` values. With ``total``, each value is its floor or its ceiling, and the values
        with the largest fractional parts (ties: first row first) go up until the sum is the total
        (largest-remainder rounding).
    """
    v = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(dtype="float64")
    ok = np.isfinite(v)
    out = np.zeros(v.size, dtype="int64")
    if total is None or is_missing(total) or not np.isfinite(float(total)):
        out[ok] = np.floor(v[ok] + 0.5).astype("int64")
        arr = pd.array(out, dtype="Int64")
        arr[~ok] = pd.NA
        return arr  # type: ignore[return-value]
    idx = np.flatnonzero(ok)
    floor = np.floor(v[idx])
    rem = v[idx] - floor
    base = floor.astype("int64")
    k = int(np.floor(float(total) + 0.5)) - int(base.sum())
    if idx.size and k > 0:
        order = np.argsort(-rem, kind="stable")  # largest fractions first
        if cap is not None:
            # one more person at a time to the rows below their cap, largest fractions first, round
            # after round (a row may then pass its ceiling rather than its cap); only what no row
            # below its cap can take goes to the rows in plain order
            c = pd.to_numeric(pd.Series(np.asarray(cap, dtype=object)), errors="coerce").to_numpy(dtype="float64")[idx]
            room = np.where(np.isnan(c), np.inf, c) - base  # NaN cap: no bound
            while k > 0 and (room >= 1).any():
                take = order[room[order] >= 1][:k]
                base[take] += 1
                room[take] -= 1
                k -= len(take)
        q, r = divmod(k, idx.size)
        base += q
        base[order[:r]] += 1
    elif idx.size and k < 0:
        # only when the total is below the sum of the floors (inconsistent input): take from the
        # rows with the smallest fractions, whole values last, never below zero
        order = np.lexsort((rem, rem == 0))
        for i in order[base[order] > 0][:-k]:
            base[i] -= 1
    out[idx] = base
    arr = pd.array(out, dtype="Int64")
    arr[~ok] = pd.NA
    return arr  # type: ignore[return-value]


def people_table(
    table: pd.DataFrame,
    *,
    total_population: float | None = None,
    total_covered: float | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Whole-people version of a coverage-by-unit table, with its printed total row.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``code``/``unit_code``, ``name``/``unit_name``, ``population``, ``covered`` and
        optionally ``share``; other columns are kept. A county row (code ``""``, as written by
        :func:`coverage.evaluate.service_coverage`) is taken as the total and removed from the rows.
    total_population, total_covered : float, optional
        The county figures the rows must add up to (default: the county row if there is one,
        else the sum of the rows).

    Returns
    -------
    rows : pandas.DataFrame
        One row per unit: ``code`` (text), ``name``, ``population``, ``covered``, ``uncovered``
        (``Int64``, ``uncovered = population − covered``), ``share`` (0–1, from the unrounded
        figures; missing where nobody of the group lives), then the other columns.
    total : dict
        ``population``, ``covered``, ``uncovered`` (int, the sums of the rows) and ``share``
        (covered / population from the unrounded totals, ``None`` without people).
    """
    df = pd.DataFrame(table).rename(columns={"unit_code": "code", "unit_name": "name"}).copy()
    for c in ("code", "name", "population", "covered"):
        if c not in df.columns:
            df[c] = np.nan if c in ("population", "covered") else None
    df = df.drop(columns=[c for c in ("service", "level") if c in df.columns])
    df["code"] = [None if is_missing(c) else str(c) for c in df["code"]]
    county = df["code"] == COUNTY_CODE
    if county.any():
        crow = df[county].iloc[0]
        total_population = crow["population"] if total_population is None else total_population
        total_covered = crow["covered"] if total_covered is None else total_covered
        df = df[~county]
    df = df.reset_index(drop=True)
    pop = pd.to_numeric(df["population"], errors="coerce").astype("float64")
    cov = pd.to_numeric(df["covered"], errors="coerce").astype("float64")
    tp = float(pop.sum()) if total_population is None or is_missing(total_population) else float(total_population)
    tc = float(cov.sum()) if total_covered is None or is_missing(total_covered) else float(total_covered)
    share = pd.to_numeric(df["share"], errors="coerce") if "share" in df.columns else pd.Series(np.nan, index=df.index)
    share = share.where(share.notna(), cov / pop.where(pop > 0))
    pop_i = round_people(pop, tp)
    # covered people scaled to the rounded population, so that a fully covered row stays fully
    # covered and an uncovered one stays at 0; then rounded to the county total, capped by the row
    scaled = ((cov / pop) * pop_i.astype("float64")).where(pop > 0, cov)
    cov_i = round_people(scaled, tc, cap=pop_i)
    rest = [c for c in df.columns if c not in ("code", "name", "population", "covered", "uncovered", "share")]
    rows = pd.DataFrame({
        "code": df["code"], "name": df["name"], "population": pop_i, "covered": cov_i,
        "uncovered": pop_i - cov_i, "share": share.astype("float64"),
    })
    for c in rest:
        rows[c] = df[c].to_numpy()
    people, covered = int(rows["population"].sum()), int(rows["covered"].sum())
    total = {"population": people, "covered": covered, "uncovered": people - covered, "share": tc / tp if tp > 0 else None}
    return rows, total


# --------------------------------------------------------------------------------------------
# words
# --------------------------------------------------------------------------------------------


def service_text(service: Any) -> str:
    """Chinese name of a service as planners read it: the four services by :func:`coverage.categories.service_label`, the 15 km circle (``urban_rural…``) as :data:`CIRCLE_LABEL`, any other text (a preset's 服务领域 such as 病有所医) unchanged."""
    if not is_missing(service) and str(service).startswith("urban_rural"):
        return CIRCLE_LABEL
    return categories.service_label(service)


def group_label(group: Any) -> str:
    """Chinese name of a target group key (``age60plus`` → ``60岁及以上``); groups joined by ``+`` are listed with ``、``; other values are returned unchanged."""
    if is_missing(group) or str(group) == "":
        return ""
    return "、".join(GROUP_LABELS.get(g, g) for g in str(group).split("+"))


#: Chinese names of the scenario's input keys (``summary.json["run"]["sources"]``).
SOURCE_LABELS: dict[str, str] = {
    "scenario": "情景文件", "area.boundary": "县域边界", "area.units": "乡镇/街道", "area.villages": "行政村",
    "area.urban": "城区范围", "population.total": "人口栅格", "population.spread_over": "人口分配依据",
    "population.census": "人口普查表", "network.roads": "道路", "facilities": "设施清单", "candidates": "候选点位",
}


def source_label(key: Any) -> str:
    """Chinese name of an input key (``population.groups.age60plus`` → ``60岁及以上人口栅格``)."""
    k = "" if is_missing(key) else str(key)
    if k.startswith("population.groups."):
        return f"{GROUP_LABELS.get(k.rsplit('.', 1)[-1], '年龄组')}人口栅格"
    return SOURCE_LABELS.get(k.split("[")[0], SOURCE_LABELS.get(k.split(".")[0], "输入文件"))


def circle_label(circle: Any) -> str:
    """Describe a service circle in Chinese, e.g. ``步行15分钟`` or ``驾车15公里``.

    Parameters
    ----------
    circle : dict or str or None
        ``{"mode": ..., "minutes": ...}`` or ``{"mode": ..., "metres": ...}``, or a service's
        ``circle`` from ``summary.json`` with one such entry per side (``urban``, ``rural``,
        ``all``), described as ``城镇步行15分钟；乡村电动自行车15分钟`` (one text when the sides agree);
        a string is returned as is.

    Returns
    -------
    str
        The description, ``""`` when nothing is known.
    """
    if circle is None:
        return ""
    if not isinstance(circle, Mapping):
        return str(circle)
    sides = {k: v for k, v in circle.items() if k in APPLIES_TO_LABELS and isinstance(v, Mapping)}
    if sides:
        texts = {side: circle_label(spec) for side, spec in sides.items()}
        if len(set(texts.values())) == 1:
            return next(iter(texts.values()))
        return "；".join(APPLIES_TO_LABELS[s] + t for s, t in texts.items())
    mode = circle.get("mode")
    parts = [MODE_LABELS.get(str(mode), str(mode))] if mode else []
    if circle.get("minutes") is not None:
        parts.append(f"{_num(circle['minutes'])}分钟")
    elif circle.get("metres") is not None:
        metres = float(circle["metres"])
        parts.append(f"{_num(metres / 1000)}公里" if metres >= 1000 else f"{_num(metres)}米")
    return "".join(parts)


def target_groups(block: Mapping[str, Any] | None) -> str:
    """The target group(s) of a service as evaluate counts them, from its ``summary.json`` block.

    Parameters
    ----------
    block : dict or None
        ``summary["categories"][service]`` (its ``circle.<side>.rules[].group``) or
        ``summary["urban_rural_circle"]`` (everybody).

    Returns
    -------
    str
        E.g. ``3–5岁、6–11岁`` for schools, ``60岁及以上`` for elderly care, ``全体常住人口``.
    """
    if not block:
        return ""
    groups: list[str] = []
    circle = block.get("circle") or {}
    for spec in circle.values() if isinstance(circle, Mapping) else []:
        if isinstance(spec, Mapping):
            for r in spec.get("rules") or []:
                g = r.get("group") if isinstance(r, Mapping) else None
                if g and g not in groups:
                    groups.append(g)
    return "、".join(group_label(g) for g in groups) if groups else GROUP_LABELS["pop"]


def excel_text(value: Any) -> str:
    """A CSV cell that Excel, WPS and LibreOffice open as text: ``="629901001000"``; ``""`` when missing or empty."""
    if is_missing(value) or str(value) == "":
        return ""
    return '="' + str(value).replace('"', '""') + '"'


def from_excel_text(value: Any) -> str:
    """Undo :func:`excel_text` (``="629901001000"`` → ``629901001000``); other values unchanged."""
    s = "" if is_missing(value) else str(value)
    if s.startswith('="') and s.endswith('"'):
        return s[2:-1].replace('""', '"')
    return s


# --------------------------------------------------------------------------------------------
# coverage_by_unit.csv
# --------------------------------------------------------------------------------------------


def coverage_csv_frame(
    summary: Mapping[str, Any],
    service_table: pd.DataFrame,
    rule_table: pd.DataFrame | None = None,
    rule_labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The planner's coverage-by-unit table: Chinese headers and words, whole people.

    Parameters
    ----------
    summary : dict
        ``summary.json`` contents (for each service's circle and target groups).
    service_table : pandas.DataFrame
        :func:`coverage.evaluate.service_coverage` (``service, unit_code, unit_name, population,
        covered, share``, county row first).
    rule_table : pandas.DataFrame, optional
        :func:`coverage.evaluate.circle_coverage` (one block per ``rule_id``, county row first,
        with ``group, applies_to, mode, threshold, threshold_unit, nature, target_share,
        meets_target``).
    rule_labels : dict, optional
        Rule id → the rule's Chinese label (ids without one are shown by their circle).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CSV_COLUMNS`. Per service (level 服务汇总) and per rule (单项规则): the
        county row (乡镇(街道) = 全县, no code) first, then the units, whose 人口 and 覆盖人口 add up
        to the county row. 覆盖率(%) has one decimal. Codes are plain text here (see
        :func:`write_coverage_csv`).
    """
    cats = summary.get("categories") or {}
    rows: list[dict[str, Any]] = []

    def block(df: pd.DataFrame, fixed: dict[str, Any]) -> None:
        units, total = people_table(df)
        cty = df[df["unit_code"].astype(str) == COUNTY_CODE]
        county = {**(cty.iloc[0].to_dict() if len(cty) else {}), "code": "", "name": COUNTY_NAME, **total}
        for rec in [county, *units.to_dict("records")]:
            share = rec.get("share")
            rows.append({
                **fixed,
                "unit_code": rec["code"] or "", "unit_name": rec["name"],
                "population": rec["population"], "covered": rec["covered"], "uncovered": rec["uncovered"],
                "share": None if is_missing(share) else round(float(share) * 100, 1),
                **{k: rec.get(k, "") for k in _RULE_EXTRA},
            })

    st = pd.DataFrame(service_table)
    for key in [*(k for k in categories.SERVICES if k in set(st.get("service", []))),
                *sorted(set(st.get("service", [])) - set(categories.SERVICES))]:
        blk = cats.get(key) or {}
        block(st[st["service"] == key], {
            "level": LEVELS["service"], "service": categories.service_label(key), "rule_id": "",
            "group": target_groups(blk) if blk else "", "applies_to": "", "circle": circle_label(blk.get("circle")),
        })
    rt = pd.DataFrame(rule_table) if rule_table is not None else pd.DataFrame()
    labels = dict(rule_labels or {})
    for rid in dict.fromkeys(rt.get("rule_id", pd.Series(dtype=object)).tolist()):
        sub = rt[rt["rule_id"] == rid]
        first = sub.iloc[0]
        spec = {"mode": first.get("mode"), str(first.get("threshold_unit")): first.get("threshold")}
        svc = str(first.get("service"))
        ts = first.get("target_share")
        fixed = {
            "level": LEVELS["rule"],
            "service": service_text(svc),
            "rule_id": labels.get(rid) or circle_label(spec),
            "group": group_label(first.get("group")),
            "applies_to": APPLIES_TO_LABELS.get(str(first.get("applies_to")), ""),
            "circle": circle_label(spec),
        }
        keep = sub.assign(
            nature=sub["nature"].map(lambda v: "" if is_missing(v) else str(v)) if "nature" in sub else "",
            target_share=None if is_missing(ts) else round(float(ts) * 100, 1),
            meets_target=sub["meets_target"].map(_yes_no) if "meets_target" in sub else "",
        )
        block(keep, fixed)
    out = pd.DataFrame(rows)
    for k in COLUMN_LABELS:
        if k in ("code", "name"):
            continue
        if k not in out.columns:
            out[k] = ""
    out = out[[k for k in ("level", "service", "rule_id", "group", "applies_to", "circle", "unit_code",
                           "unit_name", "population", "covered", "uncovered", "share", "nature",
                           "target_share", "meets_target")]]
    return out.rename(columns=COLUMN_LABELS)


def write_coverage_csv(
    path: str | os.PathLike[str],
    summary: Mapping[str, Any],
    service_table: pd.DataFrame,
    rule_table: pd.DataFrame | None = None,
    rule_labels: Mapping[str, str] | None = None,
) -> Path:
    """Write ``coverage_by_unit.csv`` for planners (UTF-8 with BOM so that Excel reads Chinese).

    The table is :func:`coverage_csv_frame`; the 乡镇(街道)代码 column is written as ``="…"``
    (:func:`excel_text`) so that Excel and WPS keep 12-digit codes as text.

    Parameters
    ----------
    path : str or path-like
        Output file; written to a temporary file, then renamed.
    summary, service_table, rule_table, rule_labels
        As for :func:`coverage_csv_frame`.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    df = coverage_csv_frame(summary, service_table, rule_table, rule_labels)
    code = COLUMN_LABELS["unit_code"]
    df[code] = df[code].map(excel_text)
    with atomic_target(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False, encoding="utf-8-sig")
    return Path(path)


def planner_frame(df: pd.DataFrame, *, excel_codes: bool = False) -> pd.DataFrame:
    """A table with internal column names made readable: Chinese headers and service names, whole people, the county row (code ``""``) named 全县.

    Parameters
    ----------
    df : pandas.DataFrame
        E.g. :func:`coverage.compare.unit_diff`. Columns without a Chinese label keep their name.
    excel_codes : bool
        Write codes as ``="…"`` (:func:`excel_text`), for a CSV.

    Returns
    -------
    pandas.DataFrame
        The converted copy. People columns are rounded on their own (no printed total here).
    """
    out = pd.DataFrame(df).copy()
    for c in out.columns:
        if c in _PEOPLE_COLUMNS:
            out[c] = round_people(out[c])
    if "service" in out.columns:
        out["service"] = [service_text(v) for v in out["service"]]
    code = "unit_code" if "unit_code" in out.columns else "code" if "code" in out.columns else None
    name = "unit_name" if "unit_name" in out.columns else "name" if "name" in out.columns else None
    if code is not None:
        county = out[code].astype(str) == COUNTY_CODE
        if name is not None:
            out.loc[county, name] = COUNTY_NAME
        out[code] = out[code].map(excel_text if excel_codes else (lambda v: "" if is_missing(v) else str(v)))
    return out.rename(columns=COLUMN_LABELS)


def _yes_no(v: Any) -> str:
    if is_missing(v) or v == "":
        return ""
    return "是" if bool(v) else "否"


def _num(x: Any) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"
