"""Incremental service-circle times: one facility added, moved, removed or retyped at a time.

``covplan serve`` (meeting mode) answers "what if we build it here?" while people watch. A full
evaluation searches from every facility of every rule; an edit changes one facility, so
:class:`LiveTimes` keeps, **per circle rule, the nearest time and the nearest facility of every
demand cell** and updates only what the edit can change:

* **add** (or the new place of a move): one bounded search from the new facility on each rule that
  counts its type (:func:`coverage.access.nearest` with that single source); a cell takes the new
  time where it is shorter;
* **remove** (or the old place of a move): the cells whose nearest facility it was are searched
  again, from the remaining facilities of the rule that can possibly reach them (those within
  ``limit × fastest speed`` in a straight line of the cells' bounding box — nothing farther can
  arrive within the limit);
* **retype**: a removal on the rules that no longer count the facility, an addition on those that
  now do.

The times are exactly those of a fresh evaluation (:func:`coverage.pipeline.circle_times`) of the
final facility table, not merely close: the bounded multi-source search computes, per node, the
minimum over sources of the same floating-point path sums, and the minimum is the same whichever
way the sources are grouped (``tests/serve/test_incremental.py`` checks random edit sequences).
Only the nearest *facility* may differ on exact ties (equal times), which no figure uses.

:class:`CoverageTally` turns the times into the figures of ``summary.json`` without touching every
cell: the demand cells are grouped by (unit, urban, no-road, which rules cover them); an edit moves
only the changed cells between groups, and :func:`coverage.evaluate.summary` runs on the few
hundred group rows instead of the tens of thousands of cells (same code, same figures).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from coverage import access, settings
from coverage.network import RoadGraph

__all__ = ["CoverageTally", "LiveRule", "LiveTimes", "concat_snapped", "reach_speed"]


@dataclass
class LiveRule:
    """One circle rule kept up to date.

    Attributes
    ----------
    id : str
        Rule id (``t_<id>`` is its column of demand cells).
    mode : str
        Travel mode (key of the graphs).
    limit : float
        Threshold in ``weight`` units.
    weight : {"minutes", "metres"}
    ftypes : frozenset of str or None
        Facility types the rule counts; ``None``: a fixed source (the county seat), never edited.
    time : numpy.ndarray
        Per demand cell: time (or distance) to the nearest source, ``inf`` beyond the limit.
    source : numpy.ndarray of int64
        Per demand cell: key of the nearest facility, -1 for none (or a fixed source).
    """

    id: str
    mode: str
    limit: float
    weight: str
    ftypes: frozenset[str] | None
    time: NDArray[np.float64] = field(repr=False, default_factory=lambda: np.zeros(0))
    source: NDArray[np.int64] = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))

    @property
    def column(self) -> str:
        """The demand-cell column of the rule (``t_<id>``)."""
        return f"t_{self.id}"

    def counts(self, ftype: str) -> bool:
        """Whether the rule counts a facility of this type."""
        return self.ftypes is not None and ftype in self.ftypes


def concat_snapped(parts: Sequence[access.Snapped], index: Iterable[Any]) -> access.Snapped:
    """Several :class:`coverage.access.Snapped` (one graph) as one, with a new index.

    Parameters
    ----------
    parts : sequence of Snapped
        Snapped points of the same graph.
    index : iterable
        The labels of the result (one per point); searches report these as the facility found.

    Returns
    -------
    Snapped
    """
    idx = pd.Index(list(index))
    if not parts:
        e = np.zeros(0, np.int32)
        return access.Snapped(e, np.zeros(0), np.zeros(0), np.zeros(0, bool), idx)
    cat = {k: np.concatenate([getattr(p, k) for p in parts])
           for k in ("node", "leg_m", "leg_min", "ok", "u", "v", "t", "e_uv", "e_vu", "seg")}
    return access.Snapped(cat["node"], cat["leg_m"], cat["leg_min"], cat["ok"], idx, cat["u"], cat["v"],
                          cat["t"], cat["e_uv"], cat["e_vu"], cat["seg"])


def reach_speed(graph: RoadGraph, weight: str) -> float:
    """Largest straight-line distance covered per unit of ``weight`` (metres per minute, or 1 for metres).

    The fastest edge of the graph, or the walking leg to the road if that is faster: nothing gets
    farther than ``limit × reach_speed`` in a straight line within the limit.
    """
    if weight != "minutes":
        return 1.0
    mins, metres = graph.weights("minutes"), graph.weights("metres")
    ok = mins > 0
    edge = float(np.max(metres[ok] / mins[ok])) if ok.any() else 0.0
    return max(edge, settings.kmh_to_m_per_min(settings.SNAP_KMH))


class LiveTimes:
    """Per rule, the nearest time and facility of every demand cell, kept up to date edit by edit.

    Parameters
    ----------
    graphs : mapping
        Road graph per mode.
    cells : mapping
        Demand cells snapped per mode (:func:`coverage.access.snap`), in one order.
    cell_xy : numpy.ndarray
        ``(n_cells, 2)`` metric coordinates of the demand cells (for the reach test of a removal).
    rules : sequence of LiveRule
        The rules; a rule with ``ftypes=None`` must come with its ``time`` filled (fixed sources).
    facilities : geopandas.GeoDataFrame
        The facilities at the start: ``ftype`` and point geometry in the graphs' CRS; the row
        position is taken as the facility's key unless ``keys`` is given.
    keys : sequence of int, optional
        Integer key per facility row.
    """

    def __init__(self, graphs: Mapping[str, RoadGraph], cells: Mapping[str, access.Snapped],
                 cell_xy: NDArray[np.float64], rules: Sequence[LiveRule], facilities: gpd.GeoDataFrame,
                 keys: Sequence[int] | None = None) -> None:
        self.graphs = dict(graphs)
        self.cells = dict(cells)
        self.cell_xy = np.asarray(cell_xy, dtype=float)
        self.rules = list(rules)
        self._speed = {(r.mode, r.weight): reach_speed(self.graphs[r.mode], r.weight) for r in self.rules}
        keys = list(range(len(facilities))) if keys is None else [int(k) for k in keys]
        self.ftype: dict[int, str] = dict(zip(keys, facilities["ftype"].astype(str)))
        geom = facilities.geometry
        self.xy: dict[int, tuple[float, float]] = {k: (float(p.x), float(p.y)) for k, p in zip(keys, geom)}
        modes = sorted({r.mode for r in self.rules if r.ftypes is not None})
        self.snaps: dict[str, dict[int, access.Snapped]] = {}
        for mode in modes:
            s = access.snap(self.graphs[mode], facilities)
            self.snaps[mode] = {k: s.take([i]) for i, k in enumerate(keys)}
        n = len(self.cell_xy)
        for rule in self.rules:
            if rule.ftypes is None:
                rule.time = np.asarray(rule.time, dtype=float)
                rule.source = np.full(n, -1, dtype=np.int64)
                continue
            rule.time, rule.source = self._search(rule, [k for k in keys if rule.counts(self.ftype[k])], None)

    # -- searches --------------------------------------------------------------------------------

    def _search(self, rule: LiveRule, fkeys: list[int], sel: NDArray[np.int64] | None
                ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Nearest time and facility key of the cells ``sel`` (all when None) from the facilities ``fkeys``."""
        d = self.cells[rule.mode] if sel is None else self.cells[rule.mode].take(sel)
        n = len(d)
        if not fkeys:
            return np.full(n, np.inf), np.full(n, -1, dtype=np.int64)
        f = concat_snapped([self.snaps[rule.mode][k] for k in fkeys], fkeys)
        res = access.nearest(self.graphs[rule.mode], d, f, limit=rule.limit, weight=rule.weight)
        t = np.array(res[rule.weight].to_numpy(dtype=float), dtype=float)  # writable copy
        src = np.array([-1 if x is None else int(x) for x in res["facility"]], dtype=np.int64)
        return t, src

    def _snap(self, key: int) -> None:
        x, y = self.xy[key]
        for mode in self.snaps:
            g = self.graphs[mode]
            self.snaps[mode][key] = access.snap(g, gpd.GeoSeries(gpd.points_from_xy([x], [y]), crs=g.crs))

    def _place(self, key: int, rules: Iterable[LiveRule], changed: dict[str, set[int]]) -> None:
        """One bounded search from facility ``key`` per rule; cells take it where it is nearer."""
        for rule in rules:
            t, _ = self._search(rule, [key], None)
            better = np.flatnonzero(t < rule.time)
            if len(better):
                rule.time[better] = t[better]
                rule.source[better] = key
                changed.setdefault(rule.id, set()).update(better.tolist())

    def _drop(self, key: int, rules: Iterable[LiveRule], changed: dict[str, set[int]]) -> None:
        """The cells facility ``key`` served, searched again from the others that can reach them."""
        for rule in rules:
            lost = np.flatnonzero(rule.source == key)
            if not len(lost):
                continue
            xy = self.cell_xy[lost]
            lo, hi = xy.min(axis=0), xy.max(axis=0)
            reach = rule.limit * self._speed[(rule.mode, rule.weight)] + 1.0
            others = []
            for k, ft in self.ftype.items():
                if k == key or not rule.counts(ft):
                    continue
                p = np.asarray(self.xy[k])
                gap = np.maximum(np.maximum(lo - p, p - hi), 0.0)
                if float(np.hypot(*gap)) <= reach:
                    others.append(k)
            t, src = self._search(rule, others, lost)
            rule.time[lost] = t
            rule.source[lost] = src
            changed.setdefault(rule.id, set()).update(lost.tolist())

    # -- edits -----------------------------------------------------------------------------------

    def add(self, key: int, ftype: str, x: float, y: float) -> dict[str, NDArray[np.int64]]:
        """Add facility ``key`` of type ``ftype`` at metric ``(x, y)``.

        Returns
        -------
        dict
            Rule id → positions of the cells whose time changed.
        """
        if key in self.ftype:
            raise KeyError(f"facility key {key} already exists")
        self.ftype[key] = ftype
        self.xy[key] = (float(x), float(y))
        self._snap(key)
        changed: dict[str, set[int]] = {}
        self._place(key, [r for r in self.rules if r.counts(ftype)], changed)
        return _arrays(changed)

    def remove(self, key: int) -> dict[str, NDArray[np.int64]]:
        """Remove facility ``key``; returns the changed cells per rule (as :meth:`add`)."""
        ftype = self.ftype[key]
        changed: dict[str, set[int]] = {}
        self._drop(key, [r for r in self.rules if r.counts(ftype)], changed)
        del self.ftype[key], self.xy[key]
        for snaps in self.snaps.values():
            snaps.pop(key, None)
        return _arrays(changed)

    def move(self, key: int, x: float, y: float) -> dict[str, NDArray[np.int64]]:
        """Move facility ``key`` to metric ``(x, y)`` (a removal, then an addition of the same key)."""
        ftype = self.ftype[key]
        a = self.remove(key)
        b = self.add(key, ftype, x, y)
        return _merge(a, b)

    def retype(self, key: int, ftype: str) -> dict[str, NDArray[np.int64]]:
        """Change the type of facility ``key``: only the rules whose membership changes are searched."""
        old = self.ftype[key]
        changed: dict[str, set[int]] = {}
        self._drop(key, [r for r in self.rules if r.counts(old) and not r.counts(ftype)], changed)
        # a rule that stops counting the facility must not keep it as any cell's source
        self.ftype[key] = ftype
        self._place(key, [r for r in self.rules if r.counts(ftype) and not r.counts(old)], changed)
        return _arrays(changed)

    def times(self) -> dict[str, NDArray[np.float64]]:
        """Current ``t_<rule id>`` column per rule (copies)."""
        return {r.column: r.time.copy() for r in self.rules}


def _arrays(changed: dict[str, set[int]]) -> dict[str, NDArray[np.int64]]:
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in changed.items()}


def _merge(a: Mapping[str, NDArray[np.int64]], b: Mapping[str, NDArray[np.int64]]) -> dict[str, NDArray[np.int64]]:
    out = dict(a)
    for k, v in b.items():
        out[k] = np.union1d(out[k], v) if k in out else v
    return out


class CoverageTally:
    """Demand cells grouped by (unit, urban, no road access, rules covering them), kept up to date.

    :func:`coverage.evaluate.summary` on :meth:`frame` gives the figures of the full demand table:
    every figure is a sum of a group column over cells selected by unit, side and "covered by rule
    r", and the cells of one row agree on all of these.

    Parameters
    ----------
    cells : pandas.DataFrame
        Demand cells: ``unit_code``, ``unit_name``, ``urban``, ``no_road``, ``pop`` and the group
        columns.
    groups : sequence of str
        Group columns to carry (``pop`` and the age groups).
    rules : sequence of (rule id, threshold)
        The circle rules, in a fixed order.
    times : mapping
        ``t_<rule id>`` → per-cell times at the start.
    """

    def __init__(self, cells: pd.DataFrame, groups: Sequence[str], rules: Sequence[tuple[str, float]],
                 times: Mapping[str, NDArray[np.float64]]) -> None:
        self.groups = list(groups)
        self.rules = list(rules)
        self.bit = {rid: np.int64(1) << np.int64(i) for i, (rid, _) in enumerate(self.rules)}
        self.thr = dict(self.rules)
        codes = cells["unit_code"].astype(str).to_numpy()
        self.codes, unit = np.unique(codes, return_inverse=True)
        names = pd.Series(cells["unit_name"].astype(str).to_numpy()).groupby(unit).first()
        self.names = names.reindex(range(len(self.codes))).fillna("").to_numpy(dtype=object)
        urban = cells["urban"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        no_road = cells["no_road"].astype(bool).to_numpy() if "no_road" in cells else np.zeros(len(cells), bool)
        nb = len(self.rules)
        self.base = ((unit.astype(np.int64) * 2 + urban) * 2 + no_road) << np.int64(nb)
        self.G = np.column_stack([pd.to_numeric(cells[g], errors="coerce").fillna(0.0).to_numpy(dtype=float)
                                  for g in self.groups])
        self.bits = np.zeros(len(cells), dtype=np.int64)
        for rid, thr in self.rules:
            self.bits |= np.where(np.asarray(times[f"t_{rid}"]) <= thr, self.bit[rid], np.int64(0))
        self.n_keys = int(len(self.codes) * 4) << nb
        self._rebuild()

    def _rebuild(self) -> None:
        key = self.base | self.bits
        self.count = np.bincount(key, minlength=self.n_keys)
        self.agg = np.column_stack([np.bincount(key, weights=self.G[:, j], minlength=self.n_keys)
                                    for j in range(len(self.groups))]) if self.groups else np.zeros((self.n_keys, 0))

    def update(self, rule_id: str, cells: NDArray[np.int64], time: NDArray[np.float64]) -> None:
        """Move the ``cells`` whose time of ``rule_id`` changed (``time``: their new times) between rows."""
        if not len(cells):
            return
        old = self.base[cells] | self.bits[cells]
        b = self.bit[rule_id]
        newbits = np.where(np.asarray(time) <= self.thr[rule_id], self.bits[cells] | b, self.bits[cells] & ~b)
        moved = newbits != self.bits[cells]
        if not moved.any():
            return
        c, k0 = cells[moved], old[moved]
        self.bits[c] = newbits[moved]
        k1 = self.base[c] | self.bits[c]
        g = self.G[c]
        np.add.at(self.count, k0, -1)
        np.add.at(self.count, k1, 1)
        np.subtract.at(self.agg, k0, g)
        np.add.at(self.agg, k1, g)
        emptied = k0[self.count[k0] == 0]
        self.agg[emptied] = 0.0  # no rounding residue in a row without cells

    def frame(self) -> pd.DataFrame:
        """One row per non-empty group: unit, urban, no_road, group sums and ``t_<rule>`` (0 or inf)."""
        keys = np.flatnonzero(self.count)
        nb = len(self.rules)
        low = keys >> np.int64(nb)
        df = pd.DataFrame({
            "unit_code": self.codes[low >> 2], "unit_name": self.names[low >> 2],
            "urban": ((low >> 1) & 1).astype(bool), "no_road": (low & 1).astype(bool),
        })
        for j, g in enumerate(self.groups):
            df[g] = self.agg[keys, j]
        for rid, _ in self.rules:
            df[f"t_{rid}"] = np.where(keys & self.bit[rid], 0.0, np.inf)
        return df

    def categories(self, preset: Any, *, units: pd.DataFrame | None = None,
                   no_data: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The ``categories`` and ``urban_rural_circle`` blocks of ``summary.json`` for the current state.

        The same figures as :func:`coverage.evaluate.summary` (``population``,
        ``population_covered``, ``share_covered``, ``by_unit`` with every unit, ``None`` with a
        ``note`` where a headline rule has no data), summed from the group rows directly so that an
        edit costs milliseconds; ``tests/serve/test_incremental.py`` checks them against
        :func:`coverage.evaluate.summary` on the full cells.

        Returns
        -------
        dict
            ``{"categories": {service: {...}}, "urban_rural_circle": {...} or None}``.
        """
        from coverage import categories as cats

        no_data = dict(no_data or {})
        keys = np.flatnonzero(self.count)
        nb = len(self.rules)
        low = keys >> np.int64(nb)
        unit, urban = low >> 2, ((low >> 1) & 1).astype(bool)
        if units is not None and len(units):
            known = dict(zip(units["code"].astype(str), units["name"].astype(str)))
        else:
            known = {}
        for c, n in zip(self.codes, self.names):
            known.setdefault(str(c), str(n))
        order = sorted(known)
        pos = {c: i for i, c in enumerate(order)}
        upos = np.array([pos[str(c)] for c in self.codes], dtype=np.int64)[unit]
        col = {g: j for j, g in enumerate(self.groups)}

        def side(applies: str) -> NDArray[np.bool_]:
            return np.ones(len(keys), bool) if applies == "all" else (urban if applies == "urban" else ~urban)

        def block(parts: list[tuple[Any, str]]) -> dict[str, Any]:
            pop = np.zeros(len(order))
            cov = np.zeros(len(order))
            nd = np.zeros(len(order))
            notes = []
            for rule, applies in parts:
                w = self.agg[keys, col[rule.group]] * side(applies)
                pop += np.bincount(upos, weights=w, minlength=len(order))
                covered = (keys & self.bit[rule.id]) != 0
                cov += np.bincount(upos, weights=w * covered, minlength=len(order))
                if rule.id in no_data:
                    nd += np.bincount(upos, weights=w, minlength=len(order))
                    notes.append(no_data[rule.id])
            note = "；".join(dict.fromkeys(notes))

            def row(p: float, c: float, missing: bool) -> dict[str, Any]:
                if missing:
                    return {"population": _num(p), "covered": None, "share": None, "note": note}
                return {"population": _num(p), "covered": _num(c), "share": _num(c / p) if p > 0 else None}

            county = row(float(pop.sum()), float(cov.sum()), bool(nd.sum() > 0))
            out = {"population": county["population"], "population_covered": county["covered"],
                   "share_covered": county["share"]}
            if "note" in county:
                out["note"] = note
            out["by_unit"] = [{"code": c, "name": known[c], **row(float(pop[i]), float(cov[i]), bool(nd[i] > 0))}
                              for i, c in enumerate(order)]
            return out

        result: dict[str, Any] = {"categories": {}, "urban_rural_circle": None}
        for service in cats.SERVICES:
            sides = preset.headline(service)
            if not sides:
                continue
            parts = [(r, s) for s, rules in sides.items() for r in rules]
            result["categories"][service] = {"label": preset.service_label(service), **block(parts)}
        urc = preset.urban_rural()
        if urc is not None and urc.id in self.thr:
            result["urban_rural_circle"] = {"label": urc.label, **block([(urc, urc.applies_to)])}
        return result


def _num(x: float) -> float | None:
    """A figure as in ``summary.json``: rounded to 6 decimals, ``None`` for NaN or infinity."""
    return round(float(x), 6) if np.isfinite(x) else None
