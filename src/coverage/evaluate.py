"""Coverage by unit and group, presence rules, per-1000 checks and the ranked gap table.

Pure table functions: no network code. The pipeline adds, for every circle rule of the preset, a
column ``t_<rule id>`` to the demand cells (minutes or metres to the nearest facility of the rule's
types on the rule's mode graph; ``inf`` when not reached or without road access), plus ``no_road``.

* :func:`circle_coverage` — per rule × unit: population of the rule's group, covered, share;
* :func:`service_coverage` — per service × unit, urban cells judged by the urban headline rules and
  rural cells by the rural ones (what ``summary.json`` ``categories.<service>`` reports);
* :func:`summary` — the ``summary.json`` dictionary (DESIGN §4.2);
* :func:`presence` — "at least N facilities per 乡镇/街道/行政村/县" rules;
* :func:`provision` — capacity per 1000 people of a group vs target (托位, 床位, m² …);
* :func:`uncovered_clusters` — uncovered cells of a rule grouped into places worth a project;
* :func:`gap_table` — everything above as ranked 项目库 rows (约束性 first, then people).

**No data is not zero** (DESIGN §4.2): a rule whose input is absent — no facility of its types in
the inputs, or no seat for the 15 km circle — is listed by :func:`no_data_rules`; its covered
people and shares are NaN (``null`` with a ``note`` in ``summary.json``), a service figure that
would count its people is NaN too, and :func:`gap_table` gives one ``missing_data`` row per service
instead of a gap row for every cell cluster, unit and village.

Population-weighted figures count each cell once per rule; a unit's share is ``covered /
population`` (NaN — ``None`` in JSON — when the unit has nobody of the group). The county row has
``unit_code == ""`` and equals the sum of the unit rows.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
import shapely
from shapely import STRtree
from shapely.geometry import Point

from coverage import _kernels, categories, settings
from coverage.errors import InputError
from coverage.standards import UNIT_KINDS, CircleRule, Preset, UrbanRuralCircle, load_preset

#: ``unit_code`` of the county total rows.
COUNTY_CODE: str = ""
#: ``unit_name`` of the county total rows.
COUNTY_NAME: str = "全县"
#: ``unit_code`` / ``unit_name`` given to cells that fall in no unit.
UNASSIGNED_CODE: str = "?"
UNASSIGNED_NAME: str = "未归属乡镇"

#: Default straight-line distance (m) within which a facility counts for a 行政村 point; the rule's
#: own ``within_m`` wins unless :func:`presence` is given ``within_m``.
VILLAGE_WITHIN_M: float = 1000.0

#: Column order of :func:`gap_table` (internal names; ``coverage.report.excel`` maps them to the
#: project-bank headers of DESIGN §4.4).
GAP_COLUMNS: list[str] = [
    "year", "service", "ftype_label", "project_name", "construction", "county", "unit_name",
    "village", "lon", "lat", "scale", "population", "new_covered", "indicator", "nature", "cost",
    "lead", "priority", "note", "kind", "unit_code", "rule_id",
    "service_key", "ftype", "scale_value", "scale_unit", "rank_people", "per_wan",
]

_NATURE_ORDER = {"约束性": 0, "预期性": 1}
_KIND_ORDER = {"missing_data": 0, "missing_facility": 1, "uncovered_cluster": 2, "below_target": 3,
               "proposed_site": 4, "service_suggestion": 5}

#: What a figure without input data shows in the terminal, the CSV, the report and the map.
NO_DATA: str = "无设施数据 / no data"

AnyCircle = CircleRule | UrbanRuralCircle


# --- helpers -----------------------------------------------------------------------------------


def _preset(preset: Preset | str) -> Preset:
    return preset if isinstance(preset, Preset) else load_preset(preset)


def _need(df: pd.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(
            f"{what}缺少列 {missing}。请先由流程(pipeline)生成这些列,或检查列名。",
            f"{what} lacks column(s) {missing}; let the pipeline add them or check the names",
            field=", ".join(missing),
        )


def unit_index(cells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell the position of its unit in ``codes``, the codes (sorted) and their names.

    Codes are ``unit_code`` as text, a missing or empty one :data:`UNASSIGNED_CODE`; a code's name
    is the ``unit_name`` of its first cell (missing: :data:`UNASSIGNED_NAME`, as for every cell in
    no unit; without the column the code itself). One hash pass over the column (none for a
    categorical one: its codes are read), the few distinct values cleaned, for all the rules of a
    call (not a text copy and factorisation per rule).

    Parameters
    ----------
    cells : pandas.DataFrame
        Demand cells with ``unit_code`` (and ``unit_name``).

    Returns
    -------
    idx : numpy.ndarray of int64
        Per cell, the position of its unit in ``codes``.
    codes : numpy.ndarray of object
        The units' codes, sorted, each used by a cell.
    names : numpy.ndarray of object
        The units' names, aligned with ``codes``.
    """
    _need(cells, ["unit_code"], "需求格网 demand cells ")
    raw_idx, raw_uniq = _factorize(cells["unit_code"])
    clean = pd.Series(np.asarray(raw_uniq, dtype=object), dtype=object).astype("string")
    clean = clean.fillna(UNASSIGNED_CODE).replace("", UNASSIGNED_CODE).to_numpy(dtype=object)
    fidx, codes = pd.factorize(np.append(clean, UNASSIGNED_CODE), sort=True)  # the last: NA cells
    idx = fidx[raw_idx].astype(np.int64)
    codes = np.asarray(codes, dtype=object)
    used = np.bincount(idx, minlength=len(codes)) > 0
    if not used.all():  # "?" without a cell in no unit
        idx = (np.cumsum(used) - 1)[idx]
        codes = codes[used]
    first = pd.Series(idx).drop_duplicates()  # first cell of each code, as factorize(sort=True) + unique
    first_pos = np.zeros(len(codes), dtype=np.int64)
    first_pos[first.to_numpy()] = first.index.to_numpy()
    if "unit_name" in cells.columns:
        names = cells["unit_name"].iloc[first_pos].astype("string").fillna(UNASSIGNED_NAME).to_numpy(dtype=object)
    else:
        names = codes.copy()
    names = np.where(codes == UNASSIGNED_CODE, UNASSIGNED_NAME, names).astype(object)
    return idx, codes, names


def _factorize(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``pandas.factorize`` of a column (missing: -1); a categorical column from its codes.

    The demand cells' ``unit_code`` is categorical (:func:`coverage.demand.cells`): its codes are
    read as they are instead of hashing a million strings. The values need not be distinct or
    in any order: every caller maps them on.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy().astype(np.int64), np.asarray(col.cat.categories, dtype=object)
    idx, uniq = pd.factorize(col.to_numpy(), use_na_sentinel=True)
    return idx, np.asarray(uniq, dtype=object)


def _group(cells: pd.DataFrame, group: str) -> np.ndarray:
    _need(cells, [group], "需求格网 demand cells ")
    col = cells[group]
    v = col.to_numpy() if col.dtype == np.float64 else pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(v) & (v >= 0)
    # people as they are (no copy of a million cells) unless some are missing, negative or infinite
    return v if keep.all() else np.where(keep & (v > 0), v, 0.0)


class _Columns:
    """The numeric columns one call reads, each converted once (groups, sides; times are read as they are)."""

    def __init__(self, cells: pd.DataFrame) -> None:
        self.cells = cells
        self._group: dict[str, np.ndarray] = {}
        self._side: dict[str, np.ndarray] = {}
        self._times: dict[str, np.ndarray] = {}

    def group(self, group: str) -> np.ndarray:
        if group not in self._group:
            self._group[group] = _group(self.cells, group)
        return self._group[group]

    def side(self, applies_to: str) -> np.ndarray:
        if applies_to not in self._side:
            self._side[applies_to] = applies_mask(self.cells, applies_to)
        return self._side[applies_to]

    def times(self, rule: AnyCircle) -> np.ndarray:
        if rule.column not in self._times:
            self._times[rule.column] = _times(self.cells, rule)
        return self._times[rule.column]


def applies_mask(cells: pd.DataFrame, applies_to: str) -> np.ndarray:
    """Cells a rule applies to: all, urban only or rural only (``urban`` column).

    Parameters
    ----------
    cells : pandas.DataFrame
        Demand cells.
    applies_to : {"all", "urban", "rural"}

    Returns
    -------
    numpy.ndarray of bool
    """
    if applies_to == "all":
        return np.ones(len(cells), dtype=bool)
    _need(cells, ["urban"], "需求格网 demand cells ")
    urban = cells["urban"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return urban if applies_to == "urban" else ~urban


def _times(cells: pd.DataFrame, rule: AnyCircle) -> np.ndarray:
    """``t_<id>`` as floats, without a copy; an :class:`InputError` when the column is missing.

    ``NaN`` (not reached) needs no ``inf``: ``NaN <= threshold`` is False, as for ``inf``.
    """
    col = rule.column
    if col not in cells.columns:
        raise InputError(
            f"需求格网缺少服务圈时间列 {col}(规则 {rule.id})。流程须为每条服务圈规则计算该列。",
            f"demand cells lack the circle column {col} (rule {rule.id}); the pipeline must add "
            "one per circle rule",
            field=col,
        )
    t = cells[col]
    if t.dtype == np.float64:  # already numbers: as pd.to_numeric would leave them, without its checks
        return t.to_numpy()
    return pd.to_numeric(t, errors="coerce").to_numpy(dtype=float)


def covered_mask(cells: pd.DataFrame, rule: AnyCircle) -> np.ndarray:
    """Cells covered by a rule: applicable (urban/rural) and ``t_<id> <= threshold``.

    Parameters
    ----------
    cells : pandas.DataFrame
        Demand cells with ``t_<rule.id>`` and (for urban/rural rules) ``urban``.
    rule : CircleRule or UrbanRuralCircle
        The rule.

    Returns
    -------
    numpy.ndarray of bool
    """
    return applies_mask(cells, rule.applies_to) & (_times(cells, rule) <= rule.threshold)


def no_data_rules(
    preset: Preset | str, facilities: pd.DataFrame | None, seat: Any = None
) -> dict[str, str]:
    """Rules whose input is absent: no facility of the rule's types, or no seat for the 15 km circle.

    Parameters
    ----------
    preset : Preset or str
        The preset (active circle, presence and provision rules, and the 15 km circle).
    facilities : pandas.DataFrame or None
        The facility table (``ftype``); ``None`` counts as empty.
    seat : object, optional
        The county seat; ``None`` means the 15 km circle has no data.

    Returns
    -------
    dict
        Rule id → bilingual note (``无设施数据：… / no data: …``), in the preset's order.
    """
    preset = _preset(preset)
    have = set() if facilities is None or "ftype" not in facilities else set(facilities["ftype"].astype(str))
    out: dict[str, str] = {}
    for rule in [*preset.active_circles(), *preset.active_presence(), *preset.active_provision()]:
        types = list(getattr(rule, "ftypes", []) or [])
        if types and not have & set(types):
            out[rule.id] = (f"无设施数据：输入中没有{preset.service_label(rule.service)}设施（{_type_names(types)}） / "
                            f"no data: the inputs hold no facility of the types {', '.join(types)}")
    urc = preset.urban_rural()
    if urc is not None and seat is None:
        out[urc.id] = ("无数据：未给出城区中心（area.seat），也无法从人口推算，15公里城乡服务圈无法计算 / "
                       "no data: no seat given (area.seat) nor derivable from the population grid")
    return out


def _type_names(types: list[str]) -> str:
    return "、".join(dict.fromkeys(categories.FTYPES[t].label.split("/")[0] for t in types if t in categories.FTYPES))


def _no_data_rows(t: pd.DataFrame, nd_pop: np.ndarray | None, note: str,
                  keys: tuple[np.ndarray, np.ndarray, np.ndarray], units: pd.DataFrame | None) -> pd.DataFrame:
    """Blank ``covered`` and ``share`` of the rows where people depend on a rule without data."""
    t["note"] = ""
    if nd_pop is None:
        return t
    miss = _by_unit(keys, nd_pop, nd_pop, units)["population"].to_numpy() > 0
    t.loc[miss, ["covered", "share"]] = np.nan
    t.loc[miss, "note"] = note
    return t


def _share(pop: float, cov: float) -> float:
    return cov / pop if pop > 0 else float("nan")


def _by_unit(
    keys: tuple[np.ndarray, np.ndarray, np.ndarray], pop: np.ndarray, cov: np.ndarray,
    units: pd.DataFrame | None,
) -> pd.DataFrame:
    # keys from unit_index (once per call) + bincount: no text work per rule
    idx, uniq, first_names = keys
    g = pd.DataFrame({
        "unit_code": uniq, "unit_name": first_names,
        "population": np.bincount(idx, weights=pop, minlength=len(uniq)),
        "covered": np.bincount(idx, weights=cov, minlength=len(uniq)),
    })
    if units is not None and len(units):
        u = pd.DataFrame({"unit_code": units["code"].astype(str), "unit_name": units["name"].astype(str)})
        g = u.merge(g.drop(columns="unit_name"), on="unit_code", how="outer")
        extra = pd.Series(first_names, index=uniq)
        g["unit_name"] = g["unit_name"].fillna(g["unit_code"].map(extra))
        g[["population", "covered"]] = g[["population", "covered"]].fillna(0.0)
        g = g.sort_values("unit_code", kind="stable").reset_index(drop=True)
    total = pd.DataFrame(
        {"unit_code": [COUNTY_CODE], "unit_name": [COUNTY_NAME],
         "population": [float(pop.sum())], "covered": [float(cov.sum())]}
    )
    out = pd.concat([total, g], ignore_index=True)
    out["share"] = [_share(p, c) for p, c in zip(out["population"], out["covered"])]
    return out


def _rules(preset: Preset, include_urban_rural: bool, cells: pd.DataFrame) -> list[AnyCircle]:
    rules: list[AnyCircle] = list(preset.active_circles())
    urc = preset.urban_rural()
    if include_urban_rural and urc is not None and urc.column in cells.columns:
        rules.append(urc)
    return rules


# --- coverage ----------------------------------------------------------------------------------


def circle_coverage(
    cells: pd.DataFrame,
    preset: Preset | str,
    *,
    units: pd.DataFrame | None = None,
    include_urban_rural: bool = True,
    no_data: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Coverage of every circle rule by unit and for the county.

    A cell is covered by a rule when it is applicable (``urban`` True for urban rules, False for
    rural ones, any for ``all``) and ``t_<rule id> <= threshold``. Population is the rule's demand
    group summed over the applicable cells; each cell counts once per rule.

    Parameters
    ----------
    cells : pandas.DataFrame
        Demand cells: ``unit_code``, ``unit_name``, ``urban``, the group columns and one
        ``t_<rule id>`` per enabled circle rule (minutes or metres; ``inf``/NaN = not reached).
    preset : Preset or str
        A loaded preset or a name/path for :func:`coverage.standards.load_preset`.
    units : pandas.DataFrame, optional
        Units table (``code``, ``name``); units without any cell get rows with population 0.
    include_urban_rural : bool
        Add the 15 km circle (rule id ``urban_rural_15km``, service ``urban_rural``) when the
        preset has it and the cells carry its column (it is skipped when the column is missing,
        e.g. without a county seat).
    no_data : mapping, optional
        :func:`no_data_rules`: these rules' ``covered`` and ``share`` are NaN and ``note`` says why.

    Returns
    -------
    pandas.DataFrame
        Long table, per rule the county row first (``unit_code == ""``) then units by code:
        ``rule_id, service, group, applies_to, mode, threshold, threshold_unit, nature,
        target_share, unit_code, unit_name, population, covered, share, note, meets_target``.

    Raises
    ------
    coverage.errors.InputError
        A ``t_<id>`` column, a group column, ``unit_code`` or ``urban`` is missing.
    """
    preset = _preset(preset)
    keys = unit_index(cells)
    col = _Columns(cells)
    frames = []
    for rule in _rules(preset, include_urban_rural, cells):
        pop = col.group(rule.group) * col.side(rule.applies_to)
        cov = np.where(col.side(rule.applies_to) & (col.times(rule) <= rule.threshold), pop, 0.0)
        t = _by_unit(keys, pop, cov, units)
        t["note"] = ""
        if no_data and rule.id in no_data:
            t[["covered", "share"]] = np.nan
            t["note"] = no_data[rule.id]
        meta = {
            "rule_id": rule.id, "service": rule.service, "group": rule.group,
            "applies_to": rule.applies_to, "mode": rule.mode, "threshold": rule.threshold,
            "threshold_unit": rule.unit, "nature": rule.nature, "target_share": rule.target_share,
        }
        for k, v in reversed(meta.items()):
            t.insert(0, k, v)
        frames.append(t)
    cols = ["rule_id", "service", "group", "applies_to", "mode", "threshold", "threshold_unit",
            "nature", "target_share", "unit_code", "unit_name", "population", "covered", "share", "note"]
    if not frames:
        out = pd.DataFrame(columns=[*cols, "meets_target"])
        return out
    out = pd.concat(frames, ignore_index=True)
    ts = pd.to_numeric(out["target_share"], errors="coerce")
    out["meets_target"] = pd.array(
        [None if np.isnan(t) or np.isnan(s) else bool(s >= t - 1e-12) for t, s in zip(ts, out["share"])],
        dtype="boolean",
    )
    return out


def service_cells(
    cells: pd.DataFrame, preset: Preset | str, service: str
) -> tuple[np.ndarray, np.ndarray]:
    """People counted for a service and people covered, per cell (headline rules per side).

    Parameters
    ----------
    cells : pandas.DataFrame
        Demand cells with the ``t_<rule id>`` columns and ``urban``.
    preset : Preset or str
        The preset.
    service : str
        Service key.

    Returns
    -------
    tuple of numpy.ndarray
        ``(population, covered)`` per cell; zeros for a service without headline rules.
    """
    return _service_cells(_Columns(cells), _preset(preset), service)


def _service_cells(col: _Columns, preset: Preset, service: str) -> tuple[np.ndarray, np.ndarray]:
    pop = np.zeros(len(col.cells))
    cov = np.zeros(len(col.cells))
    for side, rules in preset.headline(service).items():
        side_mask = col.side(side)
        for rule in rules:
            g = col.group(rule.group) * side_mask
            pop += g
            cov += np.where(col.times(rule) <= rule.threshold, g, 0.0)
    return pop, cov


def service_coverage(
    cells: pd.DataFrame, preset: Preset | str, *, units: pd.DataFrame | None = None,
    no_data: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per-service coverage: urban cells by the urban headline rules, rural cells by the rural ones.

    For each service the preset's ``services.<key>.headline`` lists circle rules per side
    (``urban``, ``rural``, ``all``). Population = the sum, over sides and their rules, of the rule's
    group on that side's cells; covered likewise. Rules on one side use different groups, so nobody
    is counted twice (e.g. school: children 3–5 to kindergartens plus children 6–11 to primary
    schools).

    Parameters
    ----------
    cells : pandas.DataFrame
        Demand cells as for :func:`circle_coverage`.
    preset : Preset or str
        The preset.
    units : pandas.DataFrame, optional
        Units table (``code``, ``name``) to list units without cells.
    no_data : mapping, optional
        :func:`no_data_rules`. A row (unit or county) with people counted by a headline rule without
        data gets NaN ``covered`` and ``share`` and a ``note``: a partial figure would read as a gap.

    Returns
    -------
    pandas.DataFrame
        ``service, unit_code, unit_name, population, covered, share, note`` (county row first).
    """
    preset = _preset(preset)
    keys = unit_index(cells)
    col = _Columns(cells)
    frames = []
    for service in categories.SERVICES:
        if not preset.headline(service):
            continue
        pop, cov = _service_cells(col, preset, service)
        t = _by_unit(keys, pop, cov, units)
        nd_pop, notes = None, []
        for side, rules in preset.headline(service).items():
            for rule in rules:
                if no_data and rule.id in no_data:
                    g = col.group(rule.group) * col.side(side)
                    nd_pop = g if nd_pop is None else nd_pop + g
                    notes.append(no_data[rule.id])
        t = _no_data_rows(t, nd_pop, "；".join(dict.fromkeys(notes)), keys, units)
        t.insert(0, "service", service)
        frames.append(t)
    if not frames:
        return pd.DataFrame(columns=["service", "unit_code", "unit_name", "population", "covered", "share", "note"])
    return pd.concat(frames, ignore_index=True)


def _num(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x) or math.isinf(x):
            return None
        return round(x, 6)
    if x is pd.NA:
        return None
    return x


def _note(x: Any) -> dict[str, str]:
    return {"note": str(x)} if isinstance(x, str) and x else {}


def _block(table: pd.DataFrame) -> dict[str, Any]:
    county = table[table["unit_code"] == COUNTY_CODE].iloc[0]
    units = table[table["unit_code"] != COUNTY_CODE]
    return {
        "population": _num(county["population"]),
        "population_covered": _num(county["covered"]),
        "share_covered": _num(county["share"]),
        **_note(county.get("note")),
        "by_unit": [
            {"code": str(r.unit_code), "name": str(r.unit_name), "population": _num(r.population),
             "covered": _num(r.covered), "share": _num(r.share), **_note(getattr(r, "note", ""))}
            for r in units.itertuples(index=False)
        ],
    }


def _circle_spec(rule: AnyCircle) -> dict[str, Any]:
    d: dict[str, Any] = {"rule": rule.id, "mode": rule.mode, rule.unit: _num(rule.threshold),
                         "group": rule.group}
    return d


def summary(  # noqa: PLR0913 - the tables a caller has already are keyword-only
    cells: pd.DataFrame,
    preset: Preset | str,
    scenario_name: str,
    *,
    units: pd.DataFrame | None = None,
    presence_df: pd.DataFrame | None = None,
    provision_df: pd.DataFrame | None = None,
    no_data: Mapping[str, str] | None = None,
    coverage_df: pd.DataFrame | None = None,
    service_df: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The ``summary.json`` dictionary (DESIGN §4.2), JSON-ready (NaN → ``None``).

    Parameters
    ----------
    cells : pandas.DataFrame
        Demand cells as for :func:`circle_coverage`; ``pop`` is the total population and an optional
        boolean ``no_road`` marks cells without road access.
    preset : Preset or str
        The preset.
    scenario_name : str
        Scenario name (``scenario`` key).
    units : pandas.DataFrame, optional
        Units table (``code``, ``name``) so that units without cells are listed.
    presence_df, provision_df : pandas.DataFrame, optional
        Results of :func:`presence` and :func:`provision`; their county rows are added as
        ``presence`` / ``provision`` lists.
    no_data : mapping, optional
        :func:`no_data_rules`: figures that depend on these rules are ``None`` with a ``note``
        (service, unit, rule, 15 km circle, presence ``found``/``ok``, provision ``value``/``ok``);
        the rules are listed under ``no_data`` ({``rule``, ``note``}).
    coverage_df : pandas.DataFrame, optional
        :func:`circle_coverage` of the same ``cells``, ``preset``, ``units`` and ``no_data`` when the
        caller has it already (the pipeline does); computed here otherwise.
    service_df : pandas.DataFrame, optional
        :func:`service_coverage` of the same ``cells``, ``preset``, ``units`` and ``no_data``, likewise.

    Returns
    -------
    dict
        ``scenario``, ``preset``, ``population_basis``, ``population_total``, ``no_road_access``,
        ``categories.<service>`` {``label``, ``population``, ``population_covered``,
        ``share_covered``, ``circle`` {``urban``/``rural``/``all``: {``mode``, ``minutes`` or
        ``metres``, ``rules``}}, ``by_unit``}, ``urban_rural_circle`` (same keys, or ``None`` when
        the 15 km column is missing) and ``rules`` (county figure of every circle rule).
    """
    preset = _preset(preset)
    no_data = dict(no_data or {})
    pop = _group(cells, "pop")
    no_road = 0.0
    if "no_road" in cells.columns:
        no_road = float(pop[cells["no_road"].astype("boolean").fillna(False).to_numpy(dtype=bool)].sum())
    out: dict[str, Any] = {
        "scenario": scenario_name,
        "preset": preset.name,
        "preset_files": list(preset.files),
        "population_basis": preset.population_basis,
        "population_total": _num(pop.sum()),
        "no_road_access": _num(no_road),
        "categories": {},
        "urban_rural_circle": None,
    }
    svc = service_df if service_df is not None else service_coverage(cells, preset, units=units, no_data=no_data)
    for service in categories.SERVICES:
        sides = preset.headline(service)
        if not sides:
            continue
        block = _block(svc[svc["service"] == service])
        circle = {}
        for side, rules in sides.items():
            first = rules[0]
            circle[side] = {"mode": first.mode, first.unit: _num(first.threshold),
                            "rules": [_circle_spec(r) for r in rules]}
        out["categories"][service] = {"label": preset.service_label(service), **block,
                                      "circle": circle}
    cov = coverage_df if coverage_df is not None else circle_coverage(cells, preset, units=units, no_data=no_data)
    urc = preset.urban_rural()
    if urc is not None and urc.column in cells.columns:
        block = _block(cov[cov["rule_id"] == urc.id])
        out["urban_rural_circle"] = {"label": urc.label, **block,
                                     "circle": {"mode": urc.mode, "metres": _num(urc.metres)}}
    county = cov[cov["unit_code"] == COUNTY_CODE]
    out["rules"] = [
        {"id": r.rule_id, "service": r.service, "group": r.group, "applies_to": r.applies_to,
         "mode": r.mode, r.threshold_unit: _num(r.threshold), "nature": r.nature,
         "population": _num(r.population), "covered": _num(r.covered), "share": _num(r.share),
         "target_share": _num(r.target_share),
         "meets_target": None if pd.isna(r.meets_target) else bool(r.meets_target), **_note(r.note)}
        for r in county.itertuples(index=False)
    ]
    if presence_df is not None and len(presence_df):
        c = presence_df[presence_df["level"] == "county"]
        out["presence"] = [
            {"id": r.rule_id, "service": r.service, "unit_kind": r.unit_kind,
             "required": _num(r.required), "found": _num(r.found), "ok": bool(r.ok)}
            if r.rule_id not in no_data else
            {"id": r.rule_id, "service": r.service, "unit_kind": r.unit_kind,
             "required": _num(r.required), "found": None, "ok": None, "note": no_data[r.rule_id]}
            for r in c.itertuples(index=False)
        ]
    if provision_df is not None and len(provision_df):
        c = provision_df[provision_df["unit_code"] == COUNTY_CODE]
        out["provision"] = [
            {"id": r.rule_id, "service": r.service, "indicator": r.indicator,
             "value": _num(r.value), "target": _num(r.target), "comparison": r.comparison,
             "ok": bool(r.ok), "capacity": _num(r.capacity), "capacity_unit": r.capacity_unit}
            if r.rule_id not in no_data else
            {"id": r.rule_id, "service": r.service, "indicator": r.indicator,
             "value": None, "target": _num(r.target), "comparison": r.comparison,
             "ok": None, "capacity": None, "capacity_unit": r.capacity_unit, "note": no_data[r.rule_id]}
            for r in c.itertuples(index=False)
        ]
    out["no_data"] = [{"rule": k, "note": v} for k, v in no_data.items()]
    return out


# --- presence ----------------------------------------------------------------------------------


def _to_crs(gdf: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    if crs is not None and gdf.crs is not None and gdf.crs != crs:
        return gdf.to_crs(crs)
    return gdf


def assign_units(points: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> pd.Series:
    """Code of the unit each point lies in (point-in-polygon; ``NaN`` outside every unit).

    Parameters
    ----------
    points : geopandas.GeoDataFrame
        Points (e.g. facilities).
    units : geopandas.GeoDataFrame
        Units with ``code`` and polygon geometry (reprojected to the points' CRS if needed).

    Returns
    -------
    pandas.Series
        Unit code per point, aligned with ``points.index``. A point on a shared border goes to the
        unit with the smaller code (deterministic).
    """
    units = _to_crs(units, points.crs)
    if len(points) == 0 or len(units) == 0:
        return pd.Series(np.nan, index=points.index, dtype=object)
    tree = STRtree(units.geometry.values)
    pi, ui = tree.query(points.geometry.values, predicate="intersects")
    codes = units["code"].astype(str).to_numpy()
    df = pd.DataFrame({"p": pi, "code": codes[ui]}).sort_values(["p", "code"], kind="stable")
    df = df.drop_duplicates("p")
    out = pd.Series(np.nan, index=range(len(points)), dtype=object)
    out.loc[df["p"].to_numpy()] = df["code"].to_numpy()
    out.index = points.index
    return out


def _lonlat(geoms: gpd.GeoSeries) -> tuple[np.ndarray, np.ndarray]:
    if len(geoms) == 0:
        return np.array([]), np.array([])
    pts = geoms.representative_point()
    if geoms.crs is None:
        return np.full(len(geoms), np.nan), np.full(len(geoms), np.nan)
    ll = gpd.GeoSeries(pts, crs=geoms.crs).to_crs(4326)
    return ll.x.to_numpy(), ll.y.to_numpy()


def _unit_population(cells: pd.DataFrame | None, group: str,
                     keys: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> pd.Series:
    """People of ``group`` per unit code (sorted); ``keys`` from :func:`unit_index` if the caller has them."""
    if cells is None:
        return pd.Series(dtype=float)
    idx, codes, _ = keys if keys is not None else unit_index(cells)
    # the same grouped (compensated) sums as a groupby on the code texts, on integer keys
    s = pd.Series(_group(cells, group)).groupby(idx).sum()
    return pd.Series(s.to_numpy(), index=codes[s.index.to_numpy()])


def _unit_populations(cells: pd.DataFrame | None) -> Callable[[str], pd.Series]:
    """:func:`_unit_population` per group for many rules: the unit keys found once, when first asked."""
    keys: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    done: dict[str, pd.Series] = {}

    def get(group: str) -> pd.Series:
        if group not in done:
            if cells is not None and not keys:
                keys.append(unit_index(cells))
            done[group] = _unit_population(cells, group, keys[0] if keys else None)
        return done[group]

    return get


def _nearest_village(cells: pd.DataFrame | None, villages: gpd.GeoDataFrame) -> np.ndarray | None:
    """Per cell the position of its nearest village point, ``-1`` for a cell in no village (``None`` without cells or villages).

    As for the clusters (:func:`uncovered_clusters`): when the villages carry ``unit_code``, a cell
    takes only the villages of its own 乡镇, and a cell of a unit without villages (a 街道's
    communities are not 行政村) belongs to none; otherwise the nearest of all.
    """
    if cells is None or not isinstance(cells, gpd.GeoDataFrame) or len(villages) == 0 or len(cells) == 0:
        return None
    cells = _to_crs(cells, villages.crs)
    vp = villages.geometry.representative_point()
    vxy = np.column_stack([vp.x.to_numpy(), vp.y.to_numpy()])
    xy = shapely.get_coordinates(cells.geometry.array)
    if "unit_code" not in villages.columns or "unit_code" not in cells.columns:
        return np.asarray(cKDTree(vxy).query(xy, workers=-1)[1])  # the same answer on every core
    out = np.full(len(cells), -1, dtype=np.int64)
    # the cells grouped by the code's position (a categorical's codes: no text per cell), looked up
    # by the code's text as the villages give it; a cell without a code takes no village
    pos, codes = _factorize(cells["unit_code"])
    of_pos = pd.Series(np.arange(len(cells))).groupby(pos).indices
    of_unit = {str(codes[k]): rows for k, rows in of_pos.items() if k >= 0}
    for code, vrows in pd.Series(np.arange(len(villages))).groupby(villages["unit_code"].astype(str).to_numpy()).indices.items():
        rows = of_unit.get(code)
        if rows is not None:
            out[rows] = vrows[cKDTree(vxy[vrows]).query(xy[rows])[1]]
    return out


def _village_population(
    cells: pd.DataFrame | None, villages: gpd.GeoDataFrame, group: str, nearest: np.ndarray | None = None,
) -> np.ndarray:
    """Population of ``group`` per village: each cell goes to its nearest village point (:func:`_nearest_village`)."""
    if nearest is None:
        nearest = _nearest_village(cells, villages)
    if nearest is None or cells is None:
        return np.full(len(villages), np.nan)
    inside = nearest >= 0
    return np.bincount(nearest[inside], weights=_group(cells, group)[inside], minlength=len(villages))


def presence(
    facilities: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    villages: gpd.GeoDataFrame | None,
    preset: Preset | str,
    *,
    cells: pd.DataFrame | None = None,
    within_m: float | None = None,
) -> pd.DataFrame:
    """Check "at least N facilities of types X per unit of kind K" rules.

    Facilities are assigned to units (乡镇/街道) by point-in-polygon. For ``行政村`` rules a village
    "has" a facility when one lies within ``within_m`` metres in a straight line of the village
    (distance 0 inside a village polygon); the default is the rule's ``within_m`` (1,000 m in the
    built-in presets) because village polygons are rarely available. ``县`` rules count the
    facilities inside all units.

    ``required`` per unit = ``max(min_count, ceil(population / per_population))`` when the rule has
    ``per_population`` and ``cells`` are given, else ``min_count``. Every rule also gets a county
    row (``level == "county"``, ``unit_code == ""``): for unit and village rules ``required`` is
    the number of units that must pass (all, or ``ceil(target_share × n)``) and ``found`` the
    number that pass; for ``县`` rules it counts facilities.

    Parameters
    ----------
    facilities : geopandas.GeoDataFrame
        Points with ``ftype`` (and ``category``).
    units : geopandas.GeoDataFrame
        ``code``, ``name``, ``kind`` (街道/镇/乡/其他), polygons.
    villages : geopandas.GeoDataFrame or None
        ``code``, ``name``, ``unit_code``, points or polygons; ``None`` skips village rules.
    preset : Preset or str
        The preset.
    cells : pandas.DataFrame, optional
        Demand cells (``unit_code``, groups; a GeoDataFrame also gives village populations by
        nearest village point) for the ``population`` column and ``per_population`` rules.
    within_m : float, optional
        Override every village rule's distance.

    Returns
    -------
    pandas.DataFrame
        ``rule_id, service, unit_kind, level, unit_code, unit_name, parent_code, parent_name,
        population, required, found, ok, nature, target_share, lon, lat``.
    """
    preset = _preset(preset)
    _need(facilities, ["ftype"], "设施表 facilities ")
    _need(units, ["code", "name", "kind"], "乡镇(街道)边界 units ")
    crs = units.crs
    fac = _to_crs(facilities, crs)
    fac_unit = assign_units(fac, units)
    ucode = units["code"].astype(str).to_numpy()
    uname = dict(zip(ucode, units["name"].astype(str)))
    ulon, ulat = _lonlat(units.geometry)
    vill = None
    if villages is not None and len(villages):
        _need(villages, ["code", "name"], "行政村 villages ")
        vill = _to_crs(villages, crs).reset_index(drop=True)
        vlon, vlat = _lonlat(vill.geometry)
    unit_pop = _unit_populations(cells)

    nearest: list[np.ndarray | None] = []  # each cell's nearest village, found once
    rows: list[dict[str, Any]] = []
    for rule in preset.active_presence():
        is_type = fac["ftype"].isin(rule.ftypes).to_numpy()
        base = {"rule_id": rule.id, "service": rule.service, "unit_kind": rule.unit_kind,
                "nature": rule.nature, "target_share": rule.target_share}
        inside = fac_unit.notna().to_numpy()
        if rule.level == "county":
            found = int((is_type & inside).sum())
            pop_total = float(unit_pop(rule.group).sum()) if cells is not None else np.nan
            rows.append({**base, "level": "county", "unit_code": COUNTY_CODE, "unit_name": COUNTY_NAME,
                         "parent_code": "", "parent_name": "", "population": pop_total,
                         "required": rule.min_count, "found": found, "ok": found >= rule.min_count,
                         "lon": np.nan, "lat": np.nan})
            continue
        unit_rows: list[dict[str, Any]] = []
        if rule.level == "unit":
            kinds = set(UNIT_KINDS[rule.unit_kind])
            sel = units["kind"].astype(str).isin(kinds).to_numpy()
            counts = pd.Series(fac_unit[is_type].to_numpy()).value_counts()
            upop = unit_pop(rule.group)
            for i in np.flatnonzero(sel).tolist():
                code = ucode[i]
                p = float(upop.get(code, 0.0)) if cells is not None else np.nan
                req = rule.min_count
                if rule.per_population and cells is not None and p > 0:
                    req = max(req, int(math.ceil(p / rule.per_population)))
                found = int(counts.get(code, 0))
                unit_rows.append({**base, "level": "unit", "unit_code": code, "unit_name": uname[code],
                                  "parent_code": "", "parent_name": "", "population": p,
                                  "required": req, "found": found, "ok": found >= req,
                                  "lon": ulon[i], "lat": ulat[i]})
        else:  # village
            if vill is None:
                continue
            d = rule.within_m if within_m is None else float(within_m)
            counts = np.zeros(len(vill), dtype=int)
            sub = fac[is_type]
            if len(sub):
                tree = STRtree(sub.geometry.values)
                vi, _ = tree.query(vill.geometry.values, predicate="dwithin", distance=d)
                counts = np.bincount(vi, minlength=len(vill))
            if not nearest:
                nearest.append(_nearest_village(cells, vill))
            vpop = _village_population(cells, vill, rule.group, nearest[0])
            vparent = vill["unit_code"].astype(str).to_numpy() if "unit_code" in vill else np.full(len(vill), "")
            vcodes = [str(v) for v in vill["code"].to_numpy()]
            vnames = [str(v) for v in vill["name"].to_numpy()]
            for i in range(len(vill)):
                found = int(counts[i])
                unit_rows.append({**base, "level": "village", "unit_code": vcodes[i],
                                  "unit_name": vnames[i], "parent_code": vparent[i],
                                  "parent_name": uname.get(vparent[i], ""), "population": vpop[i],
                                  "required": rule.min_count, "found": found,
                                  "ok": found >= rule.min_count, "lon": vlon[i], "lat": vlat[i]})
        n = len(unit_rows)
        n_ok = sum(r["ok"] for r in unit_rows)
        req = int(math.ceil(rule.target_share * n - 1e-9)) if rule.target_share else n
        pops = [r["population"] for r in unit_rows]
        rows.append({**base, "level": "county", "unit_code": COUNTY_CODE, "unit_name": COUNTY_NAME,
                     "parent_code": "", "parent_name": "",
                     "population": float(np.nansum(pops)) if cells is not None else np.nan,
                     "required": req, "found": n_ok, "ok": n_ok >= req, "lon": np.nan, "lat": np.nan})
        rows.extend(unit_rows)
    cols = ["rule_id", "service", "unit_kind", "level", "unit_code", "unit_name", "parent_code",
            "parent_name", "population", "required", "found", "ok", "nature", "target_share", "lon", "lat"]
    out = pd.DataFrame(rows, columns=cols)
    return out.astype({"required": int, "found": int, "ok": bool}) if len(out) else out


# --- provision ---------------------------------------------------------------------------------


def provision(
    facilities: gpd.GeoDataFrame,
    cells: pd.DataFrame,
    units: gpd.GeoDataFrame,
    preset: Preset | str,
) -> pd.DataFrame:
    """Capacity per ``per`` people of a group, per unit and for the county, vs the preset targets.

    ``value = capacity / population × per`` (``per`` = 1000 for 托位/床位 per 1000, 1 for m² per
    person); a rule with ``per: null`` compares the county's total capacity with the target (e.g.
    养老服务床位总量). Capacity sums the ``capacity`` of facilities of the rule's types inside the
    unit whose ``capacity_unit`` equals the rule's or is empty; facilities with no capacity count 0
    and are reported in ``n_no_capacity``.

    Parameters
    ----------
    facilities : geopandas.GeoDataFrame
        ``ftype``, ``capacity``, optional ``capacity_unit``, points.
    cells : pandas.DataFrame
        Demand cells (``unit_code`` and the group columns).
    units : geopandas.GeoDataFrame
        ``code``, ``name``, polygons.
    preset : Preset or str
        The preset.

    Returns
    -------
    pandas.DataFrame
        ``rule_id, service, indicator, level, unit_code, unit_name, capacity, capacity_unit,
        n_facilities, n_no_capacity, population, value, target, comparison, ok, deficit, decisive,
        nature``; ``deficit`` is the capacity missing to reach the target (0 when met); ``decisive``
        marks the rows that decide the rule (the county row, or every unit row for
        ``level: unit``).
    """
    preset = _preset(preset)
    _need(facilities, ["ftype"], "设施表 facilities ")
    fac = _to_crs(facilities, units.crs)
    fac_unit = assign_units(fac, units).to_numpy()
    cap = pd.to_numeric(fac["capacity"], errors="coerce").to_numpy(float) if "capacity" in fac else np.full(len(fac), np.nan)
    cunit = (fac["capacity_unit"].astype("string").fillna("").str.strip().to_numpy(dtype=object)
             if "capacity_unit" in fac else np.full(len(fac), "", dtype=object))
    ucode = units["code"].astype(str).tolist()
    uname = units["name"].astype(str).tolist()
    unit_pop = _unit_populations(cells)
    rows: list[dict[str, Any]] = []
    for rule in preset.active_provision():
        sel = (fac["ftype"].isin(rule.ftypes).to_numpy() & pd.notna(fac_unit)
               & ((cunit == "") | (cunit == rule.capacity_unit)))
        c = np.where(np.isnan(cap), 0.0, cap)
        df = pd.DataFrame({"u": fac_unit[sel], "c": c[sel], "missing": np.isnan(cap[sel])})
        agg = df.groupby("u").agg(capacity=("c", "sum"), n=("c", "size"), nm=("missing", "sum"))
        upop = unit_pop(rule.group)
        base = {"rule_id": rule.id, "service": rule.service, "indicator": rule.indicator or rule.label,
                "capacity_unit": rule.capacity_unit, "target": rule.target,
                "comparison": rule.comparison, "nature": rule.nature}

        def row(level: str, code: str, name: str, capacity: float, n: int, nm: int, pop: float,
                decisive: bool) -> dict[str, Any]:
            if rule.per is None:
                value = capacity
                deficit = max(0.0, rule.target - capacity)
            else:
                value = capacity / pop * rule.per if pop > 0 else float("nan")
                deficit = max(0.0, rule.target * pop / rule.per - capacity)
            ok = rule.passes(value)
            if ok:
                deficit = 0.0
            return {**base, "level": level, "unit_code": code, "unit_name": name,
                    "capacity": capacity, "n_facilities": n, "n_no_capacity": nm,
                    "population": pop, "value": value, "ok": ok, "deficit": deficit,
                    "decisive": decisive}

        tot_cap = float(agg["capacity"].sum()) if len(agg) else 0.0
        tot_pop = float(upop.sum())
        rows.append(row("county", COUNTY_CODE, COUNTY_NAME, tot_cap, int(agg["n"].sum()) if len(agg) else 0,
                        int(agg["nm"].sum()) if len(agg) else 0, tot_pop, rule.level == "county"))
        if rule.per is None:
            continue
        for code, name in zip(ucode, uname):
            a = agg.loc[code] if code in agg.index else None
            rows.append(row("unit", code, name, float(a["capacity"]) if a is not None else 0.0,
                            int(a["n"]) if a is not None else 0, int(a["nm"]) if a is not None else 0,
                            float(upop.get(code, 0.0)), rule.level == "unit"))
    cols = ["rule_id", "service", "indicator", "level", "unit_code", "unit_name", "capacity",
            "capacity_unit", "n_facilities", "n_no_capacity", "population", "value", "target",
            "comparison", "ok", "deficit", "decisive", "nature"]
    return pd.DataFrame(rows, columns=cols)


# --- clusters ----------------------------------------------------------------------------------


def reach_m(rule: AnyCircle, speeds: Mapping[str, float] | None = None) -> float:
    """Straight-line radius a rule's threshold stands for (metres rule: itself; minutes × speed).

    Parameters
    ----------
    rule : CircleRule or UrbanRuralCircle
        The rule.
    speeds : mapping, optional
        The scenario's speeds in km/h, keyed as for the road graphs (``"walk"``, ``"ebike"``, drive
        ``"unknown"``; see :mod:`coverage.network`). Missing keys fall back to
        ``settings.WALK_KMH``, ``settings.EBIKE_KMH`` and ``settings.DRIVE_KMH_UNKNOWN``, read at
        call time.

    Returns
    -------
    float
        Metres. Used to split large uncovered clusters into project-sized areas.
    """
    if rule.unit == "metres":
        return float(rule.threshold)
    speeds = speeds or {}
    default = {"walk": settings.WALK_KMH, "ebike": settings.EBIKE_KMH, "drive": settings.DRIVE_KMH_UNKNOWN}
    kmh = speeds.get("unknown" if rule.mode == "drive" else rule.mode, default[rule.mode])
    return float(rule.threshold) * settings.kmh_to_m_per_min(float(kmh))


class ClusterCells:
    """What :func:`uncovered_clusters` reads from the cells, read once for the rules of one call site.

    The cell coordinates, the unit of every cell (:func:`unit_index`), the groups' people, the
    urban/rural masks and the cell spacing are the same for every rule on the same cells: a caller
    running several rules (``evaluate_model``, 11 rules on a million cells) builds one and passes
    it to every call. Each array is computed on first use, once even when rules run in threads.

    Parameters
    ----------
    cells : pandas.DataFrame or geopandas.GeoDataFrame
        The demand cells (as for :func:`uncovered_clusters`); not copied, not to be changed while
        in use.
    cell_xy : numpy.ndarray, optional
        ``(n, 2)`` coordinates of every cell when already read (``shapely.get_coordinates`` of the
        geometry).
    """

    def __init__(self, cells: pd.DataFrame, cell_xy: np.ndarray | None = None) -> None:
        if cell_xy is not None and np.shape(cell_xy) != (len(cells), 2):
            raise ValueError(f"cell_xy must hold one (x, y) per cell: {np.shape(cell_xy)} for {len(cells)} cells")
        self.cells = cells
        self._xy = None if cell_xy is None else np.asarray(cell_xy, dtype=float)
        self._cols = _Columns(cells)
        self._units: tuple[np.ndarray, np.ndarray] | None = None
        self._spacing: dict[float, float] = {}
        self._nodes: tuple[_Nodes | None] | None = None
        self._xy_cols: np.ndarray | None = None
        self._villages: dict[tuple[int, str], tuple[gpd.GeoDataFrame, tuple[Any, ...]]] = {}
        self._lock = threading.RLock()

    def xy(self) -> np.ndarray:
        """``(n, 2)`` coordinates of every cell (the geometry's, or the ``x``, ``y`` columns)."""
        with self._lock:
            if self._xy is None:
                cells = self.cells
                if isinstance(cells, gpd.GeoDataFrame):
                    self._xy = shapely.get_coordinates(cells.geometry.array)
                else:
                    _need(cells, ["x", "y"], "需求格网 demand cells ")
                    self._xy = cells[["x", "y"]].to_numpy(float)
            return self._xy

    def xy_of(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), 2)`` coordinates of the cells ``rows``, each column contiguous."""
        with self._lock:
            if self._xy_cols is None:
                self._xy_cols = np.ascontiguousarray(self.xy().T)
            cols = self._xy_cols
        out = np.empty((2, len(rows)))
        np.take(cols[0], rows, out=out[0])
        np.take(cols[1], rows, out=out[1])
        return out.T

    def village_table(self, villages: gpd.GeoDataFrame, crs: Any) -> tuple[Any, ...]:
        """The villages as arrays for naming clusters (:func:`_village_table`), read once."""
        with self._lock:
            key = (id(villages), str(crs))
            if key not in self._villages:
                self._villages[key] = (villages, _village_table(villages, crs))  # villages kept: id stays theirs
            return self._villages[key][1]

    def group(self, group: str) -> np.ndarray:
        """People of ``group`` per cell (0 where missing or not positive)."""
        with self._lock:
            return self._cols.group(group)

    def side(self, applies_to: str) -> np.ndarray:
        """Cells a rule applies to (:func:`applies_mask`)."""
        with self._lock:
            return self._cols.side(applies_to)

    def units(self) -> tuple[np.ndarray, np.ndarray]:
        """Per cell the position of its unit in the sorted codes, and the codes (:func:`unit_index`)."""
        with self._lock:
            if self._units is None:
                idx, codes, _ = unit_index(self.cells)
                self._units = idx, codes
            return self._units

    def nodes(self, rows: np.ndarray) -> _Nodes | None:
        """Grid nodes of the cells ``rows``, or ``None`` when the cells are not all on one grid.

        From :func:`_lattice` and the raster keys of all the cells, read once.
        """
        with self._lock:
            if self._nodes is None:
                lat = _lattice(self.xy())
                self._nodes = (None if lat is None else _Nodes(lat[1], lat[2], lat[0]),)
                if lat is not None:
                    self._nodes[0].keys(1)  # type: ignore[union-attr]
            full = self._nodes[0]
        return None if full is None or not len(rows) else full.subset(rows)

    def spacing(self, cluster_m: float) -> float:
        """Cell spacing (:func:`_cell_spacing`) of all the cells."""
        with self._lock:
            if cluster_m not in self._spacing:
                self._spacing[cluster_m] = _cell_spacing(self.xy(), cluster_m)
            return self._spacing[cluster_m]


_CLUSTER_COLUMNS = ["rule_id", "service", "cluster_id", "population", "pop_total", "n_cells", "unit_code",
                    "unit_name", "village", "village_code", "village_dist_m", "x", "y", "lon", "lat"]


def uncovered_clusters(  # noqa: PLR0913 - keyword options of one documented call
    cells: gpd.GeoDataFrame,
    rule: AnyCircle,
    *,
    min_people: float = 50.0,
    cluster_m: float = 150.0,
    split_m: float | None = None,
    villages: gpd.GeoDataFrame | None = None,
    village_max_m: float = 3000.0,
    speeds: Mapping[str, float] | None = None,
    cell_xy: np.ndarray | None = None,
    shared: ClusterCells | None = None,
) -> gpd.GeoDataFrame:
    """Group the uncovered cells of a rule into clusters worth a project.

    Uncovered cells (applicable to the rule, with people of its group, ``t_<id>`` above the
    threshold) are joined when closer than ``cluster_m`` (single linkage: connected components of
    the "closer than ``cluster_m``" graph; 150 m joins the 8 neighbours on a 100 m grid). A cluster
    wider than ``split_m`` (default :func:`reach_m` of the rule, e.g. 1,200 m for 15 min walking) is
    split by population-weighted k-means into ``ceil(area / (π split_m²))`` parts, so each part is
    roughly what one new facility can serve: k-means++ seeding and Lloyd iterations compiled for all
    the wide clusters of the rule in one call (:func:`coverage._kernels.weighted_kmeans`, fixed
    uniforms, so a cluster's parts depend on its own cells only and a run repeats exactly; it
    replaced 848 scikit-learn fits taking 3.4 s on a 16× county). Clusters below ``min_people`` (of
    the rule's group) are dropped.

    Parameters
    ----------
    cells : geopandas.GeoDataFrame
        Demand cells (points in a metric CRS) with ``t_<id>``, groups, ``unit_code``, ``unit_name``
        and ``urban``.
    rule : CircleRule or UrbanRuralCircle
        The rule.
    min_people : float
        Smallest cluster kept (people of the rule's group).
    cluster_m : float
        Linking distance in metres.
    split_m : float, optional
        Largest radius of a cluster before it is split; ``0`` disables splitting.
    villages : geopandas.GeoDataFrame, optional
        ``code``, ``name`` (and ``unit_code``) points or polygons; adds the nearest village,
        only villages of the cluster's unit when ``unit_code`` is given, within ``village_max_m``.
    village_max_m : float
        Farthest village (metres, straight line) still used to name a cluster.
    speeds : mapping, optional
        The scenario's speeds (``network.speeds``), for the default ``split_m`` (see :func:`reach_m`).
    cell_xy : numpy.ndarray, optional
        ``(n, 2)`` coordinates of every cell (``shapely.get_coordinates`` of the geometry), when the
        caller runs several rules on the same cells: read once instead of once per rule.
    shared : ClusterCells, optional
        The cells' coordinates, units, groups and spacing read once for several rules on the same
        ``cells`` (then ``cell_xy`` is not needed): the same result as without it.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per cluster, largest first: ``rule_id, service, cluster_id, population,
        pop_total, n_cells, unit_code, unit_name, village, village_code, village_dist_m, x, y, lon,
        lat, geometry`` (population-weighted centroid, CRS of the cells).

    Raises
    ------
    ValueError
        ``cell_xy`` not one ``(x, y)`` per cell, or ``shared`` built on other cells.
    """
    crs = getattr(cells, "crs", None)
    if shared is None:
        shared = ClusterCells(cells, cell_xy)
    elif shared.cells is not cells:
        raise ValueError("shared must be built on the same cells")
    g = shared.group(rule.group)
    idx = _kernels.uncovered_rows(np.ascontiguousarray(_times(cells, rule)), float(rule.threshold),
                                  shared.side(rule.applies_to), g)
    if len(idx) == 0:
        return _no_clusters(crs)
    xy = shared.xy_of(idx)
    w = g[idx]
    pt = shared.group("pop")[idx] if "pop" in cells.columns else w
    labels = _link_labels(xy, cluster_m, shared.nodes(idx))
    if split_m is None:
        split_m = reach_m(rule, speeds)
    if split_m and len(idx) > 1:
        labels = _split_wide(labels, xy, w, split_m, lambda: shared.spacing(cluster_m))
    # per cluster: people of the group, all people, cells, weighted centre, main unit (most people
    # of the group; the lowest code on a tie) and that unit's name as first met in the cluster
    used = np.bincount(labels) > 0
    lab = (np.cumsum(used) - 1)[labels]  # labels numbered 0.. in their order (np.unique's inverse)
    sums = _kernels.label_sums(lab, int(used.sum()), w, np.ascontiguousarray(pt, dtype=float), xy[:, 0], xy[:, 1])
    keep = np.flatnonzero(sums[0] >= min_people)
    if not len(keep):
        return _no_clusters(crs)
    units = _main_units(cells, shared, idx, lab, w, sums[0] >= min_people)
    df = _cluster_table(rule, keep, sums, units)
    geom = gpd.GeoSeries(gpd.points_from_xy(df["x"].to_numpy(), df["y"].to_numpy()), crs=crs)
    if crs is not None:
        ll = geom.to_crs(4326)
        df["lon"], df["lat"] = ll.x.to_numpy(), ll.y.to_numpy()
    else:
        df["lon"], df["lat"] = np.nan, np.nan
    vt = shared.village_table(villages, crs) if villages is not None and len(villages) else None
    df["village"], df["village_code"], df["village_dist_m"] = _nearest_villages(df, vt, village_max_m)
    return gpd.GeoDataFrame(df[_CLUSTER_COLUMNS], geometry=geom.values, crs=crs)


def _no_clusters(crs: Any) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: [] for c in _CLUSTER_COLUMNS}, geometry=[], crs=crs)


def _cluster_table(rule: AnyCircle, keep: np.ndarray, sums: tuple[np.ndarray, ...],
                   units: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """One row per kept cluster, largest first, then by ``x``, then by ``y`` (a stable sort), numbered from 1.

    ``keep``: the kept clusters; ``sums``: per cluster people of the group, all people, cells and
    the group's ``Σ w·x``, ``Σ w·y`` (:func:`coverage._kernels.label_sums`); ``units``: main unit
    code and name per kept cluster.
    """
    popc, ptc, nc, sx, sy = sums
    cx = sx[keep] / popc[keep]
    cy = sy[keep] / popc[keep]
    code, name = units
    order = np.lexsort((cy, cx, -popc[keep]))
    k = keep[order]
    df = pd.DataFrame({
        "rule_id": np.full(len(k), rule.id, dtype=object), "service": np.full(len(k), rule.service, dtype=object),
        "cluster_id": np.arange(1, len(k) + 1), "population": popc[k], "pop_total": ptc[k],
        "n_cells": nc[k].astype(np.int64), "unit_code": code[order], "unit_name": name[order],
        "x": cx[order], "y": cy[order],
    })
    return df


def _village_table(villages: gpd.GeoDataFrame, crs: Any) -> tuple[Any, ...]:
    """Villages as arrays for :func:`_nearest_villages`: points, names, codes and rows per unit."""
    v = _to_crs(villages, crs).reset_index(drop=True)
    vp = v.geometry.representative_point()
    vxy = np.column_stack([vp.x.to_numpy(), vp.y.to_numpy()])
    vname = v["name"].astype(str).to_numpy()
    vcode = v["code"].astype(str).to_numpy() if "code" in v else np.full(len(v), "")
    if "unit_code" not in v:
        return vxy, vname, vcode, None, None, None
    vu, vinv = np.unique(v["unit_code"].astype(str).to_numpy(), return_inverse=True)
    vorder = np.argsort(vinv, kind="stable")
    vstart = np.searchsorted(vinv[vorder], np.arange(len(vu) + 1))
    return vxy, vname, vcode, vu, vorder, vstart


def _nearest_villages(df: pd.DataFrame, table: tuple[Any, ...] | None,
                      village_max_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Name, code and distance of each cluster's nearest village within ``village_max_m``.

    ``table``: the villages (:func:`_village_table`, ``None``: none). Only villages of the
    cluster's unit when the villages carry ``unit_code``; ``""``, ``""``, ``NaN`` where none.
    """
    n = len(df)
    vil = np.full(n, "", dtype=object)
    vcd = np.full(n, "", dtype=object)
    vdist = np.full(n, np.nan)
    if table is None:
        return vil, vcd, vdist
    vxy, vname, vcode, vu, vorder, vstart = table
    x, y = df["x"].to_numpy(), df["y"].to_numpy()
    if vu is not None:  # only villages of the cluster's own unit (街道 often have none)
        cu = df["unit_code"].astype(str).to_numpy()
        pos = np.minimum(np.searchsorted(vu, cu), max(len(vu) - 1, 0))
        ok = vu[pos] == cu
        groups = [(np.flatnonzero(ok & (pos == u)), vorder[vstart[u]:vstart[u + 1]]) for u in np.unique(pos[ok])]
    else:
        groups = [(np.arange(n), np.arange(len(vxy)))]
    for rows_all, cand in groups:
        step = max(1, 1_000_000 // max(len(cand), 1))  # distance blocks of about a million
        for s0 in range(0, len(rows_all), step):
            rows = rows_all[s0:s0 + step]
            dd = np.hypot(vxy[cand, 0][None, :] - x[rows, None], vxy[cand, 1][None, :] - y[rows, None])
            j = np.argmin(dd, axis=1)
            dj = dd[np.arange(len(rows)), j]
            near = dj <= village_max_m
            r, c = rows[near], cand[j[near]]
            vil[r], vcd[r], vdist[r] = vname[c], vcode[c], dj[near]
    return vil, vcd, vdist


#: Lloyd iterations and relative tolerance of the k-means that splits wide clusters.
_KMEANS_MAX_ITER, _KMEANS_TOL = 30, 1e-3


def _split_wide(labels: np.ndarray, xy: np.ndarray, w: np.ndarray, split_m: float,
                spacing: Callable[[], float]) -> np.ndarray:
    """Split every cluster reaching farther than ``split_m`` from its weighted centre into parts.

    A wide cluster of ``n`` cells gets ``k = min(n, max(2, ceil(n · spacing² / (π split_m²))))``
    parts (``spacing()``: the cell spacing, asked only when some cluster is wide) by
    population-weighted k-means (:func:`coverage._kernels.weighted_kmeans`: k-means++ seeding, at
    most 30 Lloyd iterations, tolerance 1e-3, the same uniforms for every cluster, so a cluster's
    parts depend on its own cells only and a run repeats exactly). Part 0 keeps the cluster's label,
    parts 1 … k-1 get new labels after ``labels.max()``, cluster by cluster in label order.
    """
    labels = np.asarray(labels, dtype=np.int64)
    x, y = np.ascontiguousarray(xy[:, 0], dtype=float), np.ascontiguousarray(xy[:, 1], dtype=float)
    w = np.ascontiguousarray(w, dtype=float)
    size, _, _, _, reach = _kernels.label_reach(labels, x, y, w, int(labels.max()) + 1)
    wide = np.flatnonzero((size >= 2) & (reach > split_m))
    if not len(wide):
        return labels
    sp = spacing()
    n = size[wide]
    ks = np.minimum(n, np.maximum(2, np.ceil(n * sp**2 / (math.pi * split_m**2)))).astype(np.int64)
    rank = np.full(len(size), -1, dtype=np.int64)
    rank[wide] = np.arange(len(wide))
    ptr = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
    sel = _kernels.rows_of_labels(labels, rank, ptr)  # the wide clusters' cells, cluster by cluster
    kmax = int(ks.max())
    u = np.random.default_rng(0).random(1 + (kmax - 1) * (2 + int(np.log(kmax))))
    part = _kernels.weighted_kmeans(x[sel], y[sel], w[sel], ptr, ks, u, _KMEANS_MAX_ITER, _KMEANS_TOL)
    base = labels.max() + 1 + np.concatenate([[0], np.cumsum(ks - 1)[:-1]])
    new = labels.copy()
    moved = part > 0
    new[sel[moved]] = (np.repeat(base, n) + part - 1)[moved]
    return new


def _main_units(cells: pd.DataFrame, shared: ClusterCells, idx: np.ndarray, lab: np.ndarray, w: np.ndarray,
                kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per kept cluster (in label order), its main unit's code and that unit's name.

    The main unit has the most people of the group (the lowest code on a tie); its name is the
    ``unit_name`` of the cluster's first cell in that unit (``idx``: the cells, ``lab``: their
    clusters, ``kept``: per cluster whether kept). The units of the cells come from ``shared``,
    read once for all the rules.
    """
    uall, ucodes = shared.units()
    # (cluster, unit) pairs in order of their first cell: clusters, units, first cells, people
    pl, pu, first, pw = _kernels.cluster_unit_pairs(lab, kept, uall, idx, np.ascontiguousarray(w, dtype=float))
    o = np.lexsort((pu, -pw, pl))
    o = o[np.r_[True, pl[o][1:] != pl[o][:-1]]]  # the best pair of each cluster
    code = ucodes[pu[o]]
    if "unit_name" in cells.columns:
        nm = cells["unit_name"].iloc[first[o]].astype("string").fillna(UNASSIGNED_NAME)
        nm = nm.to_numpy(dtype=object)
    else:
        nm = code
    nm = np.where(code == UNASSIGNED_CODE, UNASSIGNED_NAME, nm).astype(object)
    return np.asarray(code, dtype=object), nm


#: A lattice search looks at most this many neighbour offsets before falling back to a KD-tree.
_MAX_OFFSETS = 80


def _lattice(xy: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """Integer ``(i, j)`` of points on a regular axis-aligned grid with steps ``(sx, sy)``.

    Returns ``None`` when the points are not all on one grid (to a millionth of a step) or when two
    points share a node; demand cells read from a raster always are on one.
    """
    if len(xy) < 2:
        return None
    steps = []
    for a in (xy[:, 0], xy[:, 1]):
        u = np.sort(pd.unique(a))  # the distinct values (few on a grid) without sorting them all
        d = np.diff(u)
        steps.append(float(d.min()) if len(d) else 1.0)
    sx, sy = steps
    if not (sx > 0 and sy > 0):
        return None
    ij = np.empty(xy.shape, dtype=np.int64)
    for c, s in ((0, sx), (1, sy)):  # per column, in place: no (n, 2) temporaries
        a = xy[:, c]
        o = float(a.min())
        f = a - o
        f /= s
        np.rint(f, out=f)
        if f.max() > 2**30:
            return None
        ij[:, c] = f
        f *= s
        f += o
        f -= a
        if np.abs(f, out=f).max() > 1e-6 * min(sx, sy):
            return None
    return ij, sx, sy


def _offsets(sx: float, sy: float, r: float, half: bool) -> np.ndarray:
    """Lattice offsets ``(di, dj) != 0`` within ``r`` (with ``half``: one of each ± pair), nearest first."""
    ki, kj = int(r // sx) + 1, int(r // sy) + 1
    if (2 * ki + 1) * (2 * kj + 1) > 4 * _MAX_OFFSETS:
        return np.empty((0, 2), dtype=np.int64)
    gi, gj = np.meshgrid(np.arange(-ki, ki + 1), np.arange(-kj, kj + 1), indexing="ij")
    di, dj = gi.ravel(), gj.ravel()
    d2 = (di * sx) ** 2 + (dj * sy) ** 2
    ok = (d2 <= r * r * (1 + 1e-9)) & (d2 > 0)
    if half:
        ok &= (di > 0) | ((di == 0) & (dj > 0))
    order = np.argsort(d2[ok], kind="stable")
    return np.column_stack([di[ok][order], dj[ok][order]])


#: Largest lookup grid (cells) of the lattice linking; larger extents sort keys instead.
_DENSE_MAX = 50_000_000


def _components(n: int, a_parts: list[np.ndarray], b_parts: list[np.ndarray]) -> np.ndarray:
    """Connected-component labels of ``n`` points linked by the pairs ``(a, b)``."""
    a = np.concatenate(a_parts) if a_parts else np.empty(0, dtype=np.int64)
    b = np.concatenate(b_parts) if b_parts else np.empty(0, dtype=np.int64)
    adj = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(adj, directed=False)[1]


def _keys(ij: np.ndarray, pad: int) -> tuple[np.ndarray, int]:
    width = int(ij[:, 1].max()) + 2 * pad + 1
    return ij[:, 0] * width + (ij[:, 1] + pad), width


class _Nodes:
    """Points' nodes on a grid of steps ``(sx, sy)``: ``ij`` (from 0) and raster keys, on demand.

    Built on the points' own nodes, or as :meth:`subset` of a superset's (then a subset's keys are
    the superset's keys: the same neighbours one step away, no new pass over the grid).
    """

    _PAD = 1  # spare columns of the raster keys: links one step away at most

    def __init__(self, sx: float, sy: float, ij: np.ndarray | None, base: _Nodes | None = None,
                 rows: np.ndarray | None = None) -> None:
        self.sx, self.sy = sx, sy
        self._ij = ij
        self._base, self._rows = base, rows
        self._keys: tuple[np.ndarray, int, bool] | None = None
        self._ij_rows: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> _Nodes:
        """The nodes of the points ``rows`` (their keys taken from these)."""
        return _Nodes(self.sx, self.sy, None, self, rows)

    def ij(self) -> np.ndarray:
        """``(n, 2)`` integer nodes, from 0 on both axes."""
        if self._ij is None:
            base = self._base
            assert base is not None and self._rows is not None
            if base._ij_rows is None:
                base._ij_rows = np.ascontiguousarray(base.ij().T)
            self._ij = _kernels.gather_nodes(base._ij_rows, self._rows).T  # columns contiguous
        return self._ij

    def keys(self, pad: int) -> tuple[np.ndarray, int, bool]:
        """Raster keys (:func:`coverage._kernels.raster_keys`) with ``pad`` (at most 1) spare columns."""
        if self._keys is None:
            if self._base is not None:
                key, width, increasing = self._base.keys(self._PAD)
                self._keys = key[self._rows], width, increasing  # a subset in order stays increasing
            else:
                ij = self.ij()
                self._keys = _kernels.raster_keys(ij[:, 0], ij[:, 1], self._PAD)
        assert pad <= self._PAD
        return self._keys


def _link_near(nodes: _Nodes, offs: np.ndarray) -> np.ndarray | None:
    """Components of points linked to neighbours one step away at most (``None``: two on one node).

    Keys in raster order (rows north to south), one merge pass over the sorted keys per offset
    (:func:`coverage._kernels.link_keys`): linear in the points, not in the grid's extent.
    """
    key, width, increasing = nodes.keys(1)
    if increasing:  # cells read from a raster: in this order already
        order, sk = np.empty(0, dtype=np.int64), key
    else:
        order = np.argsort(key, kind="stable")
        sk = key[order]
        if not (np.diff(sk) > 0).all():
            return None
    deltas = np.abs(-offs[:, 1] * width + offs[:, 0]).astype(np.int64)
    return _kernels.link_keys(sk, deltas, order)  # type: ignore[no-any-return]


def _link_far(ij: np.ndarray, offs: np.ndarray, pad: int) -> np.ndarray | None:
    """Components of points on grid nodes ``ij`` linked by ``offs`` (``None``: two on one node).

    A lookup grid of point numbers (one gather per offset) when the extent is at most
    :data:`_DENSE_MAX` nodes, else sorted keys and ``searchsorted``.
    """
    n = len(ij)
    shape = (int(ij[:, 0].max()) + 2 * pad + 1, int(ij[:, 1].max()) + 2 * pad + 1)
    a_parts, b_parts = [], []
    if shape[0] * shape[1] <= _DENSE_MAX:
        grid = np.full(shape, -1, dtype=np.int64)
        gi, gj = ij[:, 0] + pad, ij[:, 1] + pad
        grid[gi, gj] = np.arange(n)
        if (grid >= 0).sum() != n:
            return None
        for di, dj in offs:
            nb = grid[gi + di, gj + dj]
            hit = nb >= 0
            a_parts.append(np.flatnonzero(hit))
            b_parts.append(nb[hit])
        return _components(n, a_parts, b_parts)
    key, width = _keys(ij, pad)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    if len(sk) >= 2 and not (np.diff(sk) > 0).all():
        return None
    for di, dj in offs:
        want = key + di * width + dj
        pos = np.minimum(np.searchsorted(sk, want), n - 1)
        hit = sk[pos] == want
        a_parts.append(np.flatnonzero(hit))
        b_parts.append(order[pos[hit]])
    return _components(n, a_parts, b_parts)


def _link_labels(xy: np.ndarray, cluster_m: float, nodes: _Nodes | None = None) -> np.ndarray:
    """Single-linkage labels: connected components of "closer than or at ``cluster_m``".

    Points on a regular grid (demand cells) are linked through the few grid offsets within
    ``cluster_m``: with neighbours one step away at most (150 m on a 100 m grid) by a union-find
    over the cells' keys in raster order, one merge pass per offset
    (:func:`coverage._kernels.link_keys`, linear in the cells, not in the grid's extent; keys sorted
    first when the cells come in another order), farther through a lookup grid or sorted cell keys
    and ``searchsorted`` (n log n, a fixed handful of neighbours per cell); other points through a
    KD-tree's pairs. Components are numbered in the order of
    their first point, as :func:`scipy.sparse.csgraph.connected_components` numbers them.
    ``nodes``: the points' grid nodes when known (from the grid of a superset of the points: the
    same components), else found by :func:`_lattice`.
    """
    n = len(xy)
    if nodes is None:
        lat = _lattice(xy)
        nodes = None if lat is None else _Nodes(lat[1], lat[2], lat[0])
    offs = _offsets(nodes.sx, nodes.sy, cluster_m, half=True) if nodes is not None else np.empty((0, 2))
    if nodes is not None and (len(offs) or cluster_m < min(nodes.sx, nodes.sy)):
        pad = int(np.abs(offs).max()) if len(offs) else 0
        labels = _link_near(nodes, offs) if pad <= 1 else _link_far(nodes.ij(), offs, pad)
        if labels is not None:
            return labels
    pairs = cKDTree(xy).query_pairs(cluster_m, output_type="ndarray")
    adj = (coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)) if len(pairs)
           else coo_matrix((n, n)))
    return connected_components(adj, directed=False)[1]


def _cell_spacing(xy_all: np.ndarray, cluster_m: float, sample: int = 5000) -> float:
    """Median distance from the first ``sample`` cells to their nearest other cell.

    The nearest cell of a sample cell is no farther than its nearest *sample* cell (``D`` at most),
    so only the cells within ``D`` of the samples' bounding box are searched: the same answer as a
    KD-tree over every cell, without building one over a million cells.
    """
    q = xy_all[: min(len(xy_all), sample)]
    if len(q) == 0:
        return cluster_m
    if len(q) > 1:
        d_in, _ = cKDTree(q).query(q, k=2)
        reach = float(d_in[:, 1].max())
        lo, hi = q.min(axis=0) - reach, q.max(axis=0) + reach
        x, y = xy_all[:, 0], xy_all[:, 1]  # per column: ~10x faster than a 2-D mask and all(axis=1)
        near = np.flatnonzero((x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]))
        pool = xy_all[near]
    else:
        pool = xy_all
    d, _ = cKDTree(pool).query(q, k=2)
    return float(np.median(d[:, 1]))


# --- gap table ---------------------------------------------------------------------------------


def _place(unit: str, village: str) -> str:
    unit = unit or ""
    village = village or ""
    if village and village.startswith(unit):
        return village
    return f"{unit}{village}"


def _ftype_label(preset: Preset, ftype: str | None) -> str:
    if ftype is None:
        return "流动公共服务点"
    return preset.project(ftype).label


def _scale_text(scale: float, unit: str) -> str:
    """``1,009,800m²``: whole numbers with thousands separators, never scientific notation."""
    if scale is None or not np.isfinite(scale):
        return ""
    v = f"{scale:,.0f}" if float(scale).is_integer() or abs(scale) >= 100 else f"{scale:,.1f}"
    return f"{v}{unit}"


def _present(preset: Preset, presence_df: pd.DataFrame | None) -> set[tuple[str, str]]:
    """(ftype, unit or village code) pairs where a presence rule already finds the type."""
    out: set[tuple[str, str]] = set()
    if presence_df is None or not len(presence_df):
        return out
    prules = {r.id: r for r in preset.presence}
    ok = presence_df[(presence_df["level"] != "county") & presence_df["ok"].astype(bool)]
    for rid, code in zip(ok["rule_id"], ok["unit_code"].astype(str)):
        rule = prules.get(rid)
        for f in rule.ftypes if rule is not None else []:
            out.add((f, code))
    return out


def _tier(preset: Preset, ftype: str, people: float, has: Any) -> tuple[str | None, str, float, list[str]]:
    """Lowest-justified facility type for a gap: (type or None, suggestion, its yearly cost, reasons).

    Walks ``ftype`` → ``lower`` … skipping a type the place already has (``has(type)``) or whose
    ``min_people`` the gap does not reach; with none left, the last template's ``suggestion``.
    """
    reasons: list[str] = []
    cur: str | None = ftype
    last = preset.project(ftype)
    seen: set[str] = set()
    while cur is not None and cur not in seen:
        seen.add(cur)
        t = last = preset.project(cur)
        if t.one_per_place and has(cur):
            reasons.append(f"已有{t.label},不重复新建")
            cur = t.lower
            continue
        if t.min_people and people < t.min_people:
            reasons.append(f"{people:,.0f}人低于{t.label}最低服务人口{t.min_people:,.0f}人")
            cur = t.lower
            continue
        return cur, "", 0.0, reasons
    return None, last.suggestion or "流动服务", float(last.suggestion_cost_wan), reasons


class _Rows:
    """Collects raw gap rows (before merging per site and ranking)."""

    def __init__(self, preset: Preset, county: str, year: int) -> None:
        self.preset, self.county, self.year = preset, county, int(year)
        self.rows: list[dict[str, Any]] = []

    def add(self, rule: Any, ftype: str | None, **kw: Any) -> None:
        p = self.preset
        service = kw.pop("service", rule.service)
        label_type = kw.pop("lead_type", ftype)
        domain = p.project(ftype).domain if ftype else None
        in_services = service in categories.SERVICES
        row = {
            "year": self.year,
            "service": domain or (p.service_label(service) if in_services else "15公里城乡服务圈"),
            "ftype_label": _ftype_label(p, ftype), "project_name": "", "construction": "新建",
            "county": self.county, "unit_name": "", "village": "", "lon": np.nan, "lat": np.nan,
            "scale": "", "population": np.nan, "new_covered": np.nan,
            "indicator": getattr(rule, "indicator", "") or getattr(rule, "label", ""),
            "nature": rule.nature, "cost": np.nan,
            "lead": p.lead(service, label_type) if (label_type and in_services) else (
                p.lead(service, None) if in_services else "发展改革局"),
            "priority": "", "note": "", "kind": "", "unit_code": "", "rule_id": rule.id,
            "service_key": service, "ftype": ftype or "", "scale_value": np.nan, "scale_unit": "",
            "rank_people": 0.0, "per_wan": np.nan,
            "_vcode": "", "_x": np.nan, "_y": np.nan, "_src": "other",
        }
        row.update(kw)
        row["scale"] = _scale_text(row["scale_value"], row["scale_unit"])
        self.rows.append(row)

    def suggestion(self, rule: Any, ftype: str | None, text: str, cost: float, place: str,
                   reasons: list[str], **kw: Any) -> None:
        """A gap too small for a building: a service, not a construction project."""
        self.add(rule, None, lead_type=ftype, kind="service_suggestion", construction="流动服务",
                 project_name=f"{place}{text.split('(')[0]}项目", cost=float(cost),
                 scale_value=1.0, scale_unit="处", **kw)
        r = self.rows[-1]
        r["ftype_label"] = text
        r["note"] = ";".join([*reasons, "不新建设施,建议" + text + (f",年运行费用约{cost:g}万元" if cost else "")]
                             + ([r["note"]] if r["note"] else []))


def _cluster_rows(out: _Rows, clusters: pd.DataFrame, rules: Mapping[str, Any], no_data: Mapping[str, str],
                  present: set[tuple[str, str]], share_of: Mapping[tuple[str, str], float]) -> None:
    preset = out.preset
    for c in clusters.itertuples(index=False):
        rule = rules.get(c.rule_id)
        if rule is None or c.rule_id in no_data:
            continue
        unit_code, vcode = str(c.unit_code), str(getattr(c, "village_code", "") or "")
        village = str(getattr(c, "village", "") or "")
        place = _place(str(c.unit_name), village)
        people = float(c.population)
        base = {"unit_code": unit_code, "unit_name": str(c.unit_name), "village": village, "_vcode": vcode,
                "lon": float(c.lon), "lat": float(c.lat), "_x": float(getattr(c, "x", np.nan)),
                "_y": float(getattr(c, "y", np.nan)), "population": people, "new_covered": people,
                "rank_people": people, "_src": "cluster"}
        share = share_of.get((rule.id, unit_code))
        note = (f"{rule.label}未覆盖 {people:,.0f} 人"
                + (f";本乡镇覆盖率 {share:.0%}" if share is not None and not np.isnan(share) else "")
                + ";新增覆盖人口=该片区未覆盖人口(上限)")
        ftype = rule.proposed_ftype
        if ftype is None:  # the 15 km circle: outreach or roads, not a building
            out.suggestion(rule, None, "流动公共服务点", 0.0, place,
                           ["位于15公里城乡服务圈外,或改善道路 (S0 L722, L500)"], note=note, **base)
            continue

        def has(f: str, u: str = unit_code, v: str = vcode) -> bool:
            return (f, u) in present or bool(v and (f, v) in present)

        chosen, text, cost, reasons = _tier(preset, ftype, people, has)
        if chosen is None:
            out.suggestion(rule, ftype, text, cost, place, reasons, note=note, **base)
            continue
        tmpl = preset.project(chosen)
        svc = categories.SERVICES.get(rule.service)
        noun = ((svc.noun if svc else "") or tmpl.label) if chosen == ftype else tmpl.label
        scale = tmpl.size_for(people)
        out.add(rule, chosen, kind="uncovered_cluster", project_name=f"{place}片区{noun}补短板项目",
                scale_value=scale, scale_unit=tmpl.scale_unit, cost=tmpl.cost_for(scale),
                construction=tmpl.construction, note=";".join([note, *reasons]), **base)


def _presence_rows(out: _Rows, presence_df: pd.DataFrame, no_data: Mapping[str, str]) -> None:
    preset, county_name = out.preset, out.county
    prules = {r.id: r for r in preset.presence}
    how = "新增覆盖人口=该{}尚无此类设施的人口(全部受益)"
    for rid, grp in presence_df.groupby("rule_id", sort=False):
        rule = prules.get(rid)
        if rule is None or rid in no_data:
            continue
        county = grp[grp["level"] == "county"]
        parts = grp[grp["level"] != "county"]
        ftype = rule.proposed_ftype
        tmpl = preset.project(ftype)
        if rule.level == "county":
            r = county.iloc[0]
            if r["ok"]:
                continue
            miss = int(r["required"] - r["found"])
            pop = float(r["population"]) if pd.notna(r["population"]) else np.nan
            out.add(rule, ftype, kind="missing_facility", project_name=f"{county_name}{tmpl.label}建设项目",
                    scale_value=tmpl.size_for(0) * miss, scale_unit=tmpl.scale_unit, population=pop,
                    new_covered=pop, cost=tmpl.cost_for(tmpl.size_for(0)) * miss,
                    construction=tmpl.construction, rank_people=pop if np.isfinite(pop) else 0.0,
                    note=f"{rule.label}:现有 {int(r['found'])},需 {int(r['required'])};" + how.format("县"),
                    _src="presence")
            continue
        failing = parts[~parts["ok"].astype(bool)].copy()
        if rule.target_share is not None:
            if len(county) and bool(county.iloc[0]["ok"]):
                continue
            need = int(county.iloc[0]["required"] - county.iloc[0]["found"]) if len(county) else len(failing)
            failing = failing.assign(_p=failing["population"].fillna(0.0)).sort_values(
                ["_p", "unit_code"], ascending=[False, True], kind="stable").head(max(need, 0))
        for r in failing.itertuples(index=False):
            miss = int(r.required - r.found)
            pop = float(r.population) if pd.notna(r.population) else np.nan
            if r.level == "village":
                unit_name, village, unit_code, vcode = str(r.parent_name), str(r.unit_name), str(r.parent_code), str(r.unit_code)
            else:
                unit_name, village, unit_code, vcode = str(r.unit_name), "", str(r.unit_code), ""
            place = _place(unit_name, village)
            base = {"unit_code": unit_code, "unit_name": unit_name, "village": village, "_vcode": vcode,
                    "lon": float(r.lon), "lat": float(r.lat), "population": pop, "new_covered": pop,
                    "rank_people": pop if np.isfinite(pop) else 0.0, "_src": "presence",
                    "note": f"{rule.label}:现有 {int(r.found)},需 {int(r.required)};"
                            + how.format("村" if village else "乡镇(街道)")}
            if village and tmpl.min_people and np.isfinite(pop) and pop < tmpl.min_people:
                out.suggestion(rule, ftype, tmpl.suggestion or "流动服务", tmpl.suggestion_cost_wan, place,
                               [f"{pop:,.0f}人低于{tmpl.label}最低服务人口{tmpl.min_people:,.0f}人"], **base)
                continue
            size = tmpl.size_for(pop if np.isfinite(pop) else 0)
            out.add(rule, ftype, kind="missing_facility", project_name=f"{place}{tmpl.label}建设项目",
                    scale_value=size * miss, scale_unit=tmpl.scale_unit, cost=tmpl.cost_for(size) * miss,
                    construction=tmpl.construction, **base)


def _provision_rows(out: _Rows, provision_df: pd.DataFrame, no_data: Mapping[str, str]) -> None:
    """Capacity deficits, split over townships and capped, never one huge line.

    A county deficit is split over the townships short of it (largest first), each line capped at
    the template's ``max_scale``; what is left is flagged in the note.
    """
    preset, county_name = out.preset, out.county
    vrules = {r.id: r for r in preset.provision}
    bad = provision_df[provision_df["decisive"].astype(bool) & ~provision_df["ok"].astype(bool)]
    for r in bad.itertuples(index=False):
        rule = vrules.get(r.rule_id)
        if rule is None or r.rule_id in no_data:
            continue
        ftype = rule.proposed_ftype
        tmpl = preset.project(ftype)
        deficit = float(math.ceil(r.deficit)) if r.deficit > 0 else 1.0  # ">" met with equality: one more
        cap = float(tmpl.max_scale) if tmpl.max_scale else float("inf")
        value = "—" if pd.isna(r.value) else f"{r.value:.2f}"
        head = f"{rule.indicator or rule.label}:现状 {value},目标 {rule.comparison}{rule.target:g}"
        if r.unit_code == COUNTY_CODE:
            units = provision_df[(provision_df["rule_id"] == r.rule_id) & (provision_df["level"] == "unit")
                                 & (provision_df["deficit"] > 0)].sort_values(
                ["deficit", "unit_code"], ascending=[False, True], kind="stable")
            parts = [(str(u.unit_code), str(u.unit_name), float(math.ceil(u.deficit)), float(u.population))
                     for u in units.itertuples(index=False)] or [("", "", deficit, float(r.population))]
        else:
            parts = [(str(r.unit_code), str(r.unit_name), deficit, float(r.population))]
        left = deficit
        for code, name, d, pop in parts:
            size = min(d, cap, left)
            if size <= 0:
                break
            left -= size
            cost = (round(tmpl.cost_per_unit_wan * size, 1) if tmpl.cost_per_unit_wan is not None
                    and tmpl.scale_unit == rule.capacity_unit else
                    (float(tmpl.cost_wan) if tmpl.cost_wan is not None else float("nan")))
            eq = (size / rule.target * rule.per) if rule.per and rule.target > 0 else pop
            note = (f"{head};本项目 {_scale_text(size, rule.capacity_unit)}"
                    + (f"(单个项目上限 {_scale_text(cap, rule.capacity_unit)})" if d > cap else "")
                    + ";新增覆盖人口=按指标折算的受益人口(规模÷目标×每千人);选址待定")
            out.add(rule, ftype, kind="below_target", project_name=f"{name or county_name}{tmpl.label}扩容补短板项目",
                    unit_code=code, unit_name=name, scale_value=size, scale_unit=rule.capacity_unit,
                    population=pop, new_covered=float(eq), cost=cost, note=note, rank_people=float(eq),
                    construction="新建/改扩建")
        if left > 0 and out.rows:
            out.rows[-1]["note"] += (f";全县缺口 {_scale_text(deficit, rule.capacity_unit)},其余 "
                                     f"{_scale_text(left, rule.capacity_unit)} 建议通过改扩建现有设施、社会力量分年度补足")


_SRC_ORDER = {"presence": 0, "cluster": 1, "other": 2}


def _site_key(r: Mapping[str, Any], i: int) -> tuple:
    if r["kind"] in ("below_target", "missing_data") or r["unit_code"] == COUNTY_CODE and not r["village"]:
        return ("row", i)
    if r["village"]:
        return ("v", r["unit_code"], r["village"], r["ftype_label"])
    if r["_src"] == "presence":
        return ("u", r["unit_code"], r["ftype_label"])
    return ("c", r["unit_code"], round(r["_x"], 1), round(r["_y"], 1), r["ftype_label"], i)


def _merge_sites(preset: Preset, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per site: indicators hitting the same village (or unit) with the same facility merge.

    One facility serves the site: its people are the largest member's (a cluster, or the village or
    unit of a presence row), not a sum; the scale and cost follow from them.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(_site_key(r, i), []).append(r)
    out = []
    for grp in groups.values():
        if len(grp) == 1:
            out.append(grp[0])
            continue
        grp = sorted(grp, key=lambda r: (_SRC_ORDER[r["_src"]], _NATURE_ORDER.get(r["nature"], 9)))
        m = dict(grp[0])

        def people(col: str, g: list[dict[str, Any]] = grp) -> float:
            vals = [float(r[col]) for r in g if pd.notna(r[col])]
            return max(vals) if vals else np.nan

        m["population"], m["new_covered"] = people("population"), people("new_covered")
        m["rank_people"] = m["new_covered"] if pd.notna(m["new_covered"]) else 0.0
        m["indicator"] = "；".join(dict.fromkeys(r["indicator"] for r in grp if r["indicator"]))
        m["rule_id"] = ",".join(dict.fromkeys(r["rule_id"] for r in grp))
        m["nature"] = "约束性" if any(r["nature"] == "约束性" for r in grp) else m["nature"]
        if m["ftype"] and m["kind"] != "service_suggestion":
            tmpl = preset.project(m["ftype"])
            size = max(tmpl.size_for(m["population"] if pd.notna(m["population"]) else 0),
                       max(float(r["scale_value"]) for r in grp))
            if tmpl.max_scale:
                size = min(size, float(tmpl.max_scale))
            m["scale_value"], m["cost"] = size, tmpl.cost_for(size)
            m["scale"] = _scale_text(size, m["scale_unit"])
        else:
            m["cost"] = max(float(r["cost"]) for r in grp)
        n_cl = sum(r["_src"] == "cluster" for r in grp)
        m["note"] = "；".join(dict.fromkeys(r["note"] for r in grp if r["note"])) + (
            f"；合并{len(grp)}条缺口(含{n_cl}处未覆盖片区),同一选址一个项目")
        out.append(m)
    return out


def _from_lonlat(lon: float, lat: float, crs: Any) -> tuple[float, float]:
    p = gpd.GeoSeries([Point(lon, lat)], crs=4326).to_crs(crs).iloc[0]
    return float(p.x), float(p.y)


def _place_sites(rows: list[dict[str, Any]], cells: pd.DataFrame | None, cell_tree: Any = None) -> None:
    """Put cluster and township rows on a populated cell, each cell used once.

    A cluster row takes the free populated cell nearest its centre, a village row the one nearest
    the village point, a township row (a missing facility, or a capacity shortfall of a 乡镇) the
    township's most populous free cell: a reference position where the people are, to be replaced
    by the actual plot (the note says so). ``cell_tree`` (over every cell's centre, in order) is
    used when every cell is populated: it is then the tree this function would build.
    """
    if cells is None or not isinstance(cells, gpd.GeoDataFrame) or not len(cells) or cells.crs is None:
        return
    pop = _group(cells, "pop") if "pop" in cells.columns else np.ones(len(cells))
    live = np.flatnonzero(pop > 0)
    if not len(live):
        return
    if cell_tree is not None and len(live) == len(cells) == cell_tree.n:
        tree = cell_tree
        xy = np.asarray(tree.data)
    else:
        xy = shapely.get_coordinates(cells.geometry.array[live])
        tree = cKDTree(xy)
    uidx, ucodes, _ = unit_index(cells)
    uidx = uidx[live]
    live_pop = pop[live]
    # live cells of each unit, ascending: one sort instead of a text comparison over every cell per unit
    order = np.argsort(uidx, kind="stable")
    ends = np.cumsum(np.bincount(uidx, minlength=len(ucodes)))
    unit_of = {str(c): k for k, c in enumerate(ucodes)}
    used: set[int] = set()
    picked: dict[int, int] = {}
    by_unit: dict[str, np.ndarray] = {}
    todo = [i for i, r in enumerate(rows)
            if not (r["kind"] == "missing_data" or (r["kind"] == "below_target" and not r["unit_code"]))]
    # village points given in lon/lat: into the cells' CRS in one transform
    conv = [i for i in todo if not (np.isfinite(rows[i]["_x"]) and np.isfinite(rows[i]["_y"]))
            and rows[i]["village"] and np.isfinite(rows[i]["lon"])]
    if conv:
        p = gpd.GeoSeries(gpd.points_from_xy([rows[i]["lon"] for i in conv], [rows[i]["lat"] for i in conv]),
                          crs=4326).to_crs(cells.crs)
        for i, x_, y_ in zip(conv, p.x.to_numpy(), p.y.to_numpy()):
            rows[i]["_x"], rows[i]["_y"] = float(x_), float(y_)
    at = [i for i in todo if np.isfinite(rows[i]["_x"]) and np.isfinite(rows[i]["_y"])]
    near: dict[int, np.ndarray] = {}
    if at:  # the 32 nearest live cells of every located row, in one query
        _, nn = tree.query(np.array([[rows[i]["_x"], rows[i]["_y"]] for i in at]), k=min(32, len(live)))
        nn = np.asarray(nn).reshape(len(at), -1)
        near = dict(zip(at, nn))
    for i in todo:
        r = rows[i]
        if i in near:
            cand = near[i]
        elif (r["_src"] == "presence" or r["kind"] == "below_target") and r["unit_code"]:
            if r["unit_code"] not in by_unit:
                k = unit_of.get(str(r["unit_code"]))
                m = order[(ends[k - 1] if k else 0):ends[k]] if k is not None else order[:0]
                by_unit[r["unit_code"]] = m[np.argsort(-live_pop[m], kind="stable")]
            cand = by_unit[r["unit_code"]][:64]
        else:
            continue
        j = next((int(j) for j in cand if int(j) not in used), None)
        if j is not None:
            used.add(j)
            picked[i] = j
    if not picked:
        return
    pts = gpd.GeoSeries(gpd.points_from_xy(xy[list(picked.values()), 0], xy[list(picked.values()), 1]),
                        crs=cells.crs).to_crs(4326)
    for (i, _j), lon, lat in zip(picked.items(), pts.x, pts.y):
        rows[i]["lon"], rows[i]["lat"] = float(lon), float(lat)
        if rows[i]["kind"] == "below_target":
            rows[i]["note"] = rows[i]["note"].replace(
                "选址待定", "坐标为乡镇人口最密处的参考位置,宜优先扩建现有设施,实际地块待定")


def _missing_data_rows(out: _Rows, rules: Mapping[str, Any], no_data: Mapping[str, str]) -> None:
    preset, county_name = out.preset, out.county
    every = {**rules, **{r.id: r for r in preset.presence}, **{r.id: r for r in preset.provision}}
    by_service: dict[str, list[Any]] = {}
    for rid in no_data:
        if rid in every:
            by_service.setdefault(every[rid].service, []).append(every[rid])
    for service, rs in by_service.items():
        label = preset.service_label(service) if service in categories.SERVICES else "15公里城乡服务圈"
        out.add(rs[0], None, service=service, kind="missing_data", construction="", ftype_label="",
                project_name=f"{county_name}{label}设施数据缺失（先补充数据）", service_label=label,
                indicator="；".join(dict.fromkeys(r.label or r.id for r in rs)),
                nature="约束性" if any(r.nature == "约束性" for r in rs) else "预期性",
                note="；".join(dict.fromkeys(no_data[r.id] for r in rs))
                + "。补充设施数据后重新运行 / add the facility layer and run again",
                rule_id=",".join(r.id for r in rs), rank_people=float("inf"))
        row = out.rows[-1]
        row["service"] = row.pop("service_label")
        row["ftype_label"] = ""


def gap_table(  # noqa: PLR0913 - issue 11: to narrow/split
    cov: pd.DataFrame | None,
    presence_df: pd.DataFrame | None,
    provision_df: pd.DataFrame | None,
    clusters: pd.DataFrame | None,
    preset: Preset | str,
    county_name: str,
    year: int,
    *,
    high_min_people: float = 1000.0,
    no_data: Mapping[str, str] | None = None,
    cells: pd.DataFrame | None = None,
    cell_tree: Any = None,
) -> pd.DataFrame:
    """Turn coverage, presence and provision gaps into ranked project-bank (项目库) rows.

    Row kinds:

    * ``uncovered_cluster`` — a cluster of :func:`uncovered_clusters` gets the *lowest* facility
      type that closes it: the rule's ``propose`` type, moved down the template's ``lower`` chain
      (乡镇卫生院 → 村卫生室, 小学 → 教学点, 区域养老服务中心 → 农村互助幸福院 …) when the unit or
      village already has a ``one_per_place`` type (a presence rule finds it: never a duplicate
      卫生院 or 村卫生室) or the cluster is below the type's ``min_people``; ``new_covered`` is the cluster's people (an upper bound).
    * ``service_suggestion`` — a gap below every tier's minimum (or a 15 km circle cluster, or a
      tiny village failing a presence rule): a 流动服务/巡诊/校车 suggestion, no building, cost 0
      or the template's ``suggestion_cost_wan`` (a year).
    * ``missing_facility`` — a unit or village failing a presence rule (for share rules only as
      many units as the target needs, most populous first); ``new_covered`` is the village or
      unit's people of the rule's group (the note says so).
    * ``below_target`` — a decisive provision row below target; a county deficit is split over the
      townships short of it, each line at most the template's ``max_scale`` (the rest flagged);
      ``new_covered`` is the people-equivalent of the line (``scale / target × per``).
    * ``missing_data`` — one row per service whose rules lack input (``no_data``), ranked first.

    Rows for the same site (same village, or same unit for township rules, and the same facility
    type) merge into one, all indicators listed. With ``cells`` (the demand cells, metric CRS),
    every site row sits on a populated cell (nearest the cluster centre or village point, or the
    township's most populous free cell), never two rows on one cell.

    Ranking: ``missing_data`` first, then 约束性 before 预期性 (within each, building rows before
    ``service_suggestion`` rows), then ``per_wan`` (new covered people per 万元, cost floored at
    1 万元) descending, then people. ``priority`` is 高 (约束性), 中
    (预期性 with ≥ ``high_min_people`` people) or 低. :func:`select_bank` picks the 项目库 rows.

    Parameters
    ----------
    cov : pandas.DataFrame or None
        :func:`circle_coverage` output (used for the unit coverage share in ``note``).
    presence_df, provision_df : pandas.DataFrame or None
        :func:`presence` and :func:`provision` output.
    clusters : pandas.DataFrame or None
        :func:`uncovered_clusters` output (one or several rules).
    preset : Preset or str
        The preset.
    county_name : str
        县(区) name for the ``county`` column and county-level project names.
    year : int
        年度.
    high_min_people : float
        People needed for a 预期性 row to be 中 rather than 低.
    no_data : mapping, optional
        :func:`no_data_rules`.
    cells : pandas.DataFrame, optional
        Demand cells (GeoDataFrame) to place the sites on populated cells.
    cell_tree : scipy.spatial.cKDTree, optional
        A KD-tree over every cell's centre, in order (:meth:`coverage.model.Model.cell_tree`), when
        the caller has one: used instead of building one when every cell is populated (the
        same answer).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GAP_COLUMNS`, ranked, index 0..n-1.
    """
    preset = _preset(preset)
    no_data = dict(no_data or {})
    rules: dict[str, Any] = {r.id: r for r in preset.circles}
    urc = preset.urban_rural_circle
    if urc is not None:
        rules[urc.id] = urc
    share_of: dict[tuple[str, str], float] = {}
    if cov is not None and len(cov):
        share_of = {(r, u): s for r, u, s in zip(cov["rule_id"], cov["unit_code"], cov["share"])}
    out = _Rows(preset, county_name, year)
    present = _present(preset, presence_df)
    if presence_df is not None and len(presence_df):
        _presence_rows(out, presence_df, no_data)
    if clusters is not None and len(clusters):
        _cluster_rows(out, clusters, rules, no_data, present, share_of)
    if provision_df is not None and len(provision_df):
        _provision_rows(out, provision_df, no_data)
    _missing_data_rows(out, rules, no_data)
    rows = _merge_sites(preset, out.rows)
    _place_sites(rows, cells, cell_tree)
    res = pd.DataFrame(rows, columns=GAP_COLUMNS)
    if not len(res):
        return res
    cost = pd.to_numeric(res["cost"], errors="coerce")
    newc = pd.to_numeric(res["new_covered"], errors="coerce")
    res["per_wan"] = newc / cost.clip(lower=1.0)
    res["_n"] = np.where(res["kind"] == "missing_data", -1, res["nature"].map(_NATURE_ORDER).fillna(9) * 2
                         + (res["kind"] == "service_suggestion"))  # suggestions after the buildings
    res["_e"] = res["per_wan"].fillna(-1.0)
    res["_k"] = res["kind"].map(_KIND_ORDER).fillna(9)
    res = res.sort_values(
        ["_n", "_e", "rank_people", "_k", "rule_id", "unit_code", "project_name"],
        ascending=[True, False, False, True, True, True, True], kind="stable",
    ).drop(columns=["_n", "_e", "_k"]).reset_index(drop=True)
    res["priority"] = np.where(
        res["nature"] == "约束性", "高", np.where(res["rank_people"] >= high_min_people, "中", "低")
    )
    # unique project names (two clusters near the same village)
    dup = res.groupby("project_name").cumcount()
    res.loc[dup > 0, "project_name"] = [
        (n[:-2] + f"({k + 1})项目") if n.endswith("项目") else f"{n}({k + 1})"
        for n, k in zip(res.loc[dup > 0, "project_name"], dup[dup > 0])
    ]
    return res


#: Default number of rows of the 项目库 sheet; the rest go to 储备项目.
BANK_TOP: int = 50


def select_bank(gaps: pd.DataFrame, top: int | None = BANK_TOP, budget: float | None = None) -> np.ndarray:
    """Which ranked gap rows form the 项目库 (the rest are 储备项目).

    Rows are taken in rank order while fewer than ``top`` are chosen; with ``budget`` (万元) a row
    whose cost would exceed what is left is passed over (a later, cheaper row may still fit; a row
    without a cost estimate costs nothing here).

    Parameters
    ----------
    gaps : pandas.DataFrame
        :func:`gap_table` output (ranked).
    top : int or None
        Most rows in the 项目库; ``None`` for no limit.
    budget : float or None
        Total 估算投资 (万元) of the 项目库; ``None`` for no limit.

    Returns
    -------
    numpy.ndarray
        Boolean mask, ``True`` for 项目库 rows.
    """
    n = len(gaps)
    keep = np.zeros(n, dtype=bool)
    cost = (pd.to_numeric(gaps["cost"], errors="coerce").fillna(0.0).to_numpy(float)
            if "cost" in gaps.columns else np.zeros(n))
    left = float("inf") if budget is None else float(budget)
    limit = n if top is None else max(int(top), 0)
    chosen = 0
    for i in range(n):
        if chosen >= limit:
            break
        if cost[i] > left + 1e-9:
            continue
        keep[i] = True
        chosen += 1
        left -= cost[i]
    return keep

__all__ = [
    "unit_index",
    "ClusterCells",
    "COUNTY_CODE",
    "GAP_COLUMNS",
    "NO_DATA",
    "VILLAGE_WITHIN_M",
    "BANK_TOP",
    "assign_units",
    "circle_coverage",
    "covered_mask",
    "gap_table",
    "no_data_rules",
    "presence",
    "provision",
    "reach_m",
    "select_bank",
    "service_coverage",
    "summary",
    "uncovered_clusters",
]
