"""The meeting session: the baseline, named variants, edits with undo/redo, plan YAML and export.

Data flow (one way): the scenario is read and modelled once (:func:`coverage.pipeline.load_inputs`,
:func:`~coverage.pipeline.build_model`, :func:`~coverage.pipeline.circle_times`); each variant owns
a :class:`coverage.incremental.LiveTimes` (per-rule nearest times) and a
:class:`coverage.incremental.CoverageTally` (figures), and a facility table that is always what
``apply_changes`` of the variant's plan YAML gives. An edit is a body shaped like a scenario's
``changes:`` (``add``, ``remove``, ``upgrade``) plus a ``move`` extension; it is checked entirely
before anything changes, with the same bilingual messages as ``covplan validate``/``run``.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from coverage import categories, evaluate, incremental, pipeline, plans, siting
from coverage import inputs as inputs_mod
from coverage._atomic import atomic_target, output_policy
from coverage.errors import InputError, Problem
from coverage.scenario import AddFacility, Changes, Upgrade

#: Columns of the facility table kept for a facility added in meeting mode (as ``apply_changes`` makes them).
_EDIT_KEYS = ("name", "ftype", "capacity", "tier")


def _problem_error(p: Problem) -> InputError:
    return InputError(p.zh, p.en, field=p.field, code=p.code)  # no file: the edit came from the page


def _schema_error(err: ValidationError) -> InputError:
    """A malformed ``changes`` body: the key path, what is wrong (in Chinese and English) and the value."""
    e = err.errors(include_url=False)[0]
    key = "changes." + ".".join(str(x) for x in e["loc"])
    zh = {"missing": "缺少必填项", "extra_forbidden": "未知的键（拼写错误？）", "float_parsing": "应为数字",
          "string_type": "应为文字", "list_type": "应为列表", "model_type": "应为键值对（映射）"}.get(e["type"], "取值无效")
    val = "" if e["type"] in ("missing", "model_type") else f"：{e.get('input')!r}"
    return InputError(f"{key}: {zh}{val}", f"{key}: {e['msg']}", field=key, code="schema")


@dataclass
class Variant:
    """One named variant: its facility table, live times, tally and undo/redo stacks."""

    name: str
    facilities: gpd.GeoDataFrame
    keys: dict[str, int]
    live: incremental.LiveTimes
    tally: incremental.CoverageTally
    undo: list[dict] = field(default_factory=list)
    redo: list[dict] = field(default_factory=list)


class Session:
    """A meeting-mode session on one baseline scenario.

    Parameters
    ----------
    scenario : str or Path
        The baseline scenario YAML.
    export_root : str or Path
        Folder under which variants are exported (one sub-folder per variant).
    progress : callable, optional
        Called with a short text per step while loading.
    """

    def __init__(self, scenario: str | Path, export_root: str | Path,
                 progress: Callable[[str], None] | None = None) -> None:
        self.path = Path(scenario).resolve()
        self.export_root = Path(export_root)
        self.lock = threading.RLock()
        self.version = 0
        self.listeners: list[Callable[[dict], None]] = []
        step = progress or (lambda _t: None)
        step("读取输入 / reading inputs")
        self.inputs = pipeline.load_inputs(self.path)
        self.model = pipeline.build_model(self.inputs, step)
        step("可达性 / access")
        self.cells = pipeline.circle_times(self.model)
        inp = self.inputs
        urc = inp.preset.urban_rural()
        self.rules: list[Any] = [*inp.preset.active_circles(), *([urc] if urc is not None else [])]
        self.groups = ["pop", *sorted({r.group for r in self.rules if r.group != "pop"})]
        self.cell_xy = np.column_stack([self.model.cells.geometry.x, self.model.cells.geometry.y])
        self.saved: set[Path] = set()
        self._next_id = 1
        base = self._new_variant("现状 baseline", inp.facilities.reset_index(drop=True))
        self.base_figures = self._figures(base)
        self.variants: dict[str, Variant] = {}
        self.current = "方案1"
        self.variants[self.current] = self._clone(base, self.current)

    # -- variants --------------------------------------------------------------------------------

    def _live_rules(self) -> list[incremental.LiveRule]:
        out = []
        for r in self.rules:
            fixed = getattr(r, "ftypes", None) is None
            out.append(incremental.LiveRule(
                r.id, pipeline.mode_of(r, self.inputs.scenario), float(r.threshold), r.unit,
                None if fixed else frozenset(r.ftypes),
                time=self.cells[r.column].to_numpy(dtype=float).copy() if fixed else np.zeros(0),
            ))
        return out

    def _new_variant(self, name: str, fac: gpd.GeoDataFrame) -> Variant:
        keys = {str(f): i for i, f in enumerate(fac["fid"])}
        live = incremental.LiveTimes(self.model.graphs, self.model.snapped_cells, self.cell_xy, self._live_rules(),
                                     fac, keys=list(range(len(fac))))
        tally = incremental.CoverageTally(self.cells, self.groups, [(r.id, float(r.threshold)) for r in self.rules],
                                          live.times())
        return Variant(name, fac, keys, live, tally)

    def _clone(self, v: Variant, name: str) -> Variant:
        live = copy.copy(v.live)
        live.rules = [copy.copy(r) for r in v.live.rules]
        for r in live.rules:
            r.time, r.source = r.time.copy(), r.source.copy()
        live.ftype, live.xy = dict(v.live.ftype), dict(v.live.xy)
        live.snaps = {m: dict(s) for m, s in v.live.snaps.items()}
        tally = copy.copy(v.tally)
        tally.bits, tally.count, tally.agg = v.tally.bits.copy(), v.tally.count.copy(), v.tally.agg.copy()
        return Variant(name, v.facilities.copy(), dict(v.keys), live, tally,
                       copy.deepcopy(v.undo), copy.deepcopy(v.redo))

    @property
    def variant(self) -> Variant:
        """The variant being edited."""
        return self.variants[self.current]

    def new_variant(self, name: str, copy_from: str | None = None) -> None:
        """Start a variant ``name`` from the baseline, or as a copy of ``copy_from``."""
        name = name.strip()
        if not name or len(name) > 40 or any(c in name for c in "/\\:*?\"<>|"):
            raise InputError("方案名称须为 1–40 个字符，且不含 / \\ : * ? \" < > |。",
                             "a variant name must have 1–40 characters and none of / \\ : * ? \" < > |.",
                             field="name", code="bad_variant_name")
        with self.lock:
            if name in self.variants:
                raise InputError(f"方案“{name}”已存在。", f"variant {name!r} already exists.", field="name",
                                 code="variant_exists")
            src = self.variants.get(copy_from) if copy_from else None
            if copy_from and src is None:
                raise self._unknown_variant(copy_from)
            if src is None:  # the baseline: a copy of the current variant with every edit undone
                v = self._clone(self.variants[self.current], name)
                while v.undo:
                    self._apply(v, v.undo.pop())
                v.redo.clear()
            else:
                v = self._clone(src, name)
            self.variants[name] = v
            self.current = name
            self._changed("variant")

    def select(self, name: str) -> None:
        """Make ``name`` the variant being edited."""
        with self.lock:
            if name not in self.variants:
                raise self._unknown_variant(name)
            self.current = name
            self._changed("variant")

    @staticmethod
    def _unknown_variant(name: str) -> InputError:
        return InputError(f"没有名为“{name}”的方案。", f"there is no variant named {name!r}.", field="variant",
                          code="unknown_variant")

    # -- edits -----------------------------------------------------------------------------------

    def apply(self, body: Any) -> dict[str, Any]:
        """Apply a ``changes``-shaped edit to the current variant (all or nothing) and return the figures.

        Raises
        ------
        InputError
            A malformed body, an unknown id or type, a point outside the area: nothing changed.
        """
        t0 = time.perf_counter()
        with self.lock:
            v = self.variant
            next_id = self._next_id
            try:
                ops = self._parse(body, v)
            except InputError:
                self._next_id = next_id  # a refused edit leaves everything as it was
                raise
            inverse = self._apply(v, ops)
            v.undo.append(inverse)
            v.redo.clear()
            self._changed("edit")
            out = self.summary()
        out["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return out

    def undo(self) -> dict[str, Any]:
        """Undo the last edit of the current variant (nothing to undo: unchanged)."""
        return self._step_back(True)

    def redo(self) -> dict[str, Any]:
        """Redo the last undone edit."""
        return self._step_back(False)

    def _step_back(self, undo: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        with self.lock:
            v = self.variant
            src, dst = (v.undo, v.redo) if undo else (v.redo, v.undo)
            if src:
                dst.append(self._apply(v, src.pop()))
                self._changed("edit")
            out = self.summary()
        out["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return out

    def reset(self) -> dict[str, Any]:
        """Back to the baseline (the current variant's edits are undone; redo keeps them)."""
        with self.lock:
            v = self.variant
            while v.undo:
                v.redo.append(self._apply(v, v.undo.pop()))
            self._changed("edit")
            return self.summary()

    def _parse(self, body: Any, v: Variant) -> dict[str, list]:
        """Check an edit body completely; return the ordered operations."""
        if not isinstance(body, dict):
            raise InputError("请求体应为 JSON 对象，如 {\"add\": [...], \"remove\": [...]}。",
                             "the request body must be a JSON object such as {\"add\": [...], \"remove\": [...]}.",
                             field="changes", code="schema")
        body = dict(body)
        moves = body.pop("move", [])
        if isinstance(body.get("add"), list):  # an id is optional here: a fresh N<k> is given
            body["add"] = [{"id": "", **a} if isinstance(a, dict) and "id" not in a else a for a in body["add"]]
        try:
            ch = Changes.model_validate(body)
        except ValidationError as err:
            raise _schema_error(err) from None
        if not isinstance(moves, list) or not all(
                isinstance(m, dict) and set(m) <= {"id", "lon", "lat"} and {"id", "lon", "lat"} <= set(m)
                and all(isinstance(m[k], (int, float)) and not isinstance(m[k], bool) for k in ("lon", "lat"))
                for m in moves):
            raise InputError("move 应为列表：[{id: 编号, lon: 经度, lat: 纬度}]。",
                             "move must be a list of {id, lon, lat}.", field="changes.move", code="schema")
        fids = set(v.keys)
        pending_ids = set(fids)
        adds = []
        for a in ch.add:
            if not a.id or a.id in pending_ids:
                a = a.model_copy(update={"id": self._fresh_id(pending_ids)})
            pending_ids.add(a.id)
            adds.append(a)
        gone = set(ch.remove)
        move_adds = []
        for m in moves:
            fid = str(m["id"])
            if fid in fids and fid not in gone:
                row = v.facilities.loc[v.facilities["fid"] == fid].iloc[0]
                move_adds.append(self._as_add(row).model_copy(update={"lon": float(m["lon"]), "lat": float(m["lat"])}))
        for fid in [*ch.remove, *[u.id for u in ch.upgrade], *[str(m["id"]) for m in moves]]:
            if fid not in fids:
                raise InputError(
                    f"设施编号 {fid} 不存在（或已删除）。请核对编号。",
                    f"facility id {fid} does not exist (or was removed). Check the id.",
                    field="changes", code="change_unknown_id")
        for p in self._check_points([*adds, *move_adds], ch.upgrade):
            raise _problem_error(p)
        return {"remove": list(ch.remove), "upgrade": list(ch.upgrade), "move": move_adds, "add": adds}

    def _check_points(self, adds: list[AddFacility], upgrades: list[Upgrade]) -> list[Problem]:
        """The checks of ``covplan validate`` on added facilities and upgrades (:func:`coverage.inputs.check_changes`)."""
        return inputs_mod.check_changes(adds, upgrades, self.inputs.boundary)

    def _fresh_id(self, taken: set[str]) -> str:
        while f"N{self._next_id}" in taken:
            self._next_id += 1
        out = f"N{self._next_id}"
        self._next_id += 1
        return out

    def _rows(self, adds: list[AddFacility], v: Variant) -> gpd.GeoDataFrame:
        """Facility rows for ``adds``, made by :func:`coverage.inputs.apply_changes` (as ``covplan run`` makes them)."""
        return inputs_mod.apply_changes(v.facilities.iloc[:0], Changes(add=adds), self.inputs.crs)

    def _apply(self, v: Variant, ops: dict[str, list]) -> dict[str, list]:  # noqa: C901 - issue 11: to narrow/split
        """Apply checked operations to ``v`` (removals, upgrades, moves, additions, then restores of whole rows); return the operations that undo them (``remove`` of the added ids and ``restore`` of the rows as they were)."""
        fac = v.facilities
        inverse: dict[str, list] = {"remove": [], "restore": []}
        changed: dict[str, np.ndarray] = {}

        def merge(ch: dict[str, np.ndarray]) -> None:
            for k, c in ch.items():
                changed[k] = np.union1d(changed[k], c) if k in changed else c

        def row_of(fid: str) -> gpd.GeoDataFrame:
            return fac.loc[fac["fid"] == fid].copy()

        def new_key(fid: str) -> int:
            key = v.keys[fid] = max([*v.live.ftype, *v.keys.values(), -1]) + 1
            return key

        def put(old: gpd.GeoDataFrame | None, new: gpd.GeoDataFrame) -> None:
            """Replace ``old`` (None: nothing) by ``new`` in the table and the live times."""
            nonlocal fac
            fid = str(new["fid"].iloc[0])
            x, y = float(new.geometry.x.iloc[0]), float(new.geometry.y.iloc[0])
            ftype = str(new["ftype"].iloc[0])
            if old is None:
                merge(v.live.add(new_key(fid), ftype, x, y))
            else:
                key = v.keys[fid]
                fac = fac.loc[fac["fid"] != fid]
                if str(old["ftype"].iloc[0]) != ftype:
                    merge(v.live.retype(key, ftype))
                if (float(old.geometry.x.iloc[0]), float(old.geometry.y.iloc[0])) != (x, y):
                    merge(v.live.move(key, x, y))
            fac = gpd.GeoDataFrame(pd.concat([fac, new], ignore_index=True), crs=self.inputs.crs)

        for fid in ops.get("remove", []):
            inverse["restore"].append(row_of(fid))
            merge(v.live.remove(v.keys.pop(fid)))
            fac = fac.loc[fac["fid"] != fid]
        for u in ops.get("upgrade", []):
            old = row_of(u.id)
            inverse["restore"].append(old)
            put(old, inputs_mod.apply_changes(old, Changes(upgrade=[u]), self.inputs.crs))
        for a in ops.get("move", []):
            old = row_of(a.id)
            inverse["restore"].append(old)
            put(old, self._rows([a], v))
        for a in ops.get("add", []):
            inverse["remove"].append(a.id)
            put(None, self._rows([a], v))
        for old in reversed(ops.get("restore", [])):  # whole rows back, latest state first undone
            fid = str(old["fid"].iloc[0])
            if fid in v.keys:
                inverse["restore"].append(row_of(fid))
                put(row_of(fid), old)
            else:
                inverse["remove"].append(fid)
                put(None, old)
        v.facilities = fac.reset_index(drop=True)
        rules = {r.id: r for r in v.live.rules}
        for rid, cells in changed.items():
            v.tally.update(rid, cells, rules[rid].time[cells])
        return inverse

    # -- figures ---------------------------------------------------------------------------------

    def _figures(self, v: Variant) -> dict[str, Any]:
        nd = evaluate.no_data_rules(self.inputs.preset, v.facilities, self.inputs.seat)
        return v.tally.categories(self.inputs.preset, units=self.inputs.units, no_data=nd)

    def summary(self, name: str | None = None) -> dict[str, Any]:
        """Figures of a variant (default: the current one) with the change against the baseline.

        Returns
        -------
        dict
            ``scenario``, ``variant``, ``version``, ``categories`` (as ``summary.json``, each with
            ``change`` {``population_covered``, ``share_covered``} and per unit ``change``),
            ``urban_rural_circle``, ``baseline`` (the baseline's figures), ``can_undo``, ``can_redo``.
        """
        with self.lock:
            v = self.variants[name or self.current]
            fig = self._figures(v)
            base = self.base_figures
            for key, cat in fig["categories"].items():
                b = base["categories"].get(key, {})
                cat["change"] = {"population_covered": _diff(cat.get("population_covered"), b.get("population_covered")),
                                 "share_covered": _diff(cat.get("share_covered"), b.get("share_covered"))}
                bu = {u["code"]: u for u in b.get("by_unit", [])}
                for u in cat["by_unit"]:
                    u["change"] = _diff(u.get("covered"), bu.get(u["code"], {}).get("covered"))
            return {
                "scenario": self.inputs.scenario.name, "variant": v.name, "version": self.version,
                "variants": list(self.variants), "categories": fig["categories"],
                "urban_rural_circle": fig["urban_rural_circle"], "baseline": base,
                "facilities": len(v.facilities), "can_undo": bool(v.undo), "can_redo": bool(v.redo),
            }

    def _changed(self, what: str) -> None:
        self.version += 1
        msg = {"type": what, "version": self.version, "variant": self.current}
        for fn in list(self.listeners):
            fn(msg)

    # -- layers for the page ---------------------------------------------------------------------

    def facilities_geojson(self, name: str | None = None) -> dict[str, Any]:
        """The variant's facilities as GeoJSON points (WGS-84) with id, name, service, type, capacity."""
        v = self.variants[name or self.current]
        base_ids = set(self.inputs.facilities["fid"])
        feats = []
        for r in v.facilities.itertuples(index=False):
            cap = None if pd.isna(r.capacity) else float(r.capacity)
            feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(r.lon), float(r.lat)]},
                          "properties": {"id": str(r.fid), "name": str(r.name), "service": str(r.category),
                                         "ftype": str(r.ftype), "type_label": categories.FTYPES[r.ftype].label
                                         if r.ftype in categories.FTYPES else str(r.ftype),
                                         "capacity": cap, "capacity_unit": str(r.capacity_unit or ""),
                                         "new": str(r.fid) not in base_ids}})
        return {"type": "FeatureCollection", "features": feats}

    def current_result(self, name: str | None = None) -> pipeline.RunResult:
        """A light :class:`coverage.pipeline.RunResult` of a variant (cells with the current times) for the map layers of :mod:`coverage.pipeline` (uncovered people, service circles)."""
        with self.lock:
            v = self.variants[name or self.current]
            cells = self.model.cells.copy()
            for col, t in v.live.times().items():
                cells[col] = t
            inp = inputs_mod.with_scenario(self.inputs, self.inputs.scenario, v.facilities)
            model = pipeline.with_facilities(self.model, inp)
            model.cells = cells
            nd = evaluate.no_data_rules(self.inputs.preset, v.facilities, self.inputs.seat)
            summ = {"categories": self._figures(v)["categories"],
                    "no_data": [{"rule": k, "note": n} for k, n in nd.items()]}
            return pipeline.RunResult(model=model, summary=summ, by_unit=pd.DataFrame(), gaps=pd.DataFrame(),
                                      presence=pd.DataFrame(), provision=pd.DataFrame())

    def checks(self, name: str | None = None) -> list[dict[str, Any]]:
        """The standards checks (presence and provision, county level) of a variant, as in report.html."""
        res = self.current_result(name)
        inp, cells = res.model.inputs, res.model.cells
        res.presence = evaluate.presence(inp.facilities, inp.units, inp.villages, inp.preset, cells=cells)
        res.provision = evaluate.provision(inp.facilities, cells, inp.units, inp.preset)
        df = pipeline.standards_checks(res)
        return [{k: (None if isinstance(x, float) and not np.isfinite(x) else x) for k, x in rec.items()}
                for rec in df.astype(object).where(df.notna(), None).to_dict(orient="records")]

    def best_sites(self, service: str, n: int, generate: int = 0) -> list[dict[str, Any]]:
        """``covplan site --category SERVICE --add N`` on the current variant: the proposals (not applied).

        Reuses :func:`coverage.plans.candidate_sites`, :func:`~coverage.plans.service_cover` and
        :func:`~coverage.plans.proposed_facilities` with :func:`coverage.siting.solve_max_coverage`.
        """
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 50:
            raise InputError(f"点位数须为 1–50 的整数，现为 {n!r}。", f"the number of sites must be an integer 1–50; got {n!r}.",
                             field="n", code="bad_n")
        res = self.current_result()
        model = res.model
        plans.siting_rules(model.inputs.preset, service)  # unknown service: the CLI's message
        cands = plans.candidate_sites(model, plans.siting_rules(model.inputs.preset, service)[0], generate)
        cover, weights, locked, _ = plans.service_cover(model, service, cands)
        sol = siting.solve_max_coverage(cover, weights, p=min(n, len(cands)), locked=locked, time_limit=20)
        prop = plans.proposed_facilities(model, service, cands, sol, len(locked))
        return [{"cid": str(r.cid), "name": str(r.name).split("（")[0], "service": str(r.category), "ftype": str(r.ftype),
                 "type_label": categories.FTYPES[r.ftype].label, "lon": float(r.lon), "lat": float(r.lat),
                 "capacity": None if pd.isna(r.capacity) else float(r.capacity), "new_covered": float(r.new_covered),
                 "rank": int(r.rank)} for r in prop.itertuples(index=False)]

    # -- plan YAML and export ----------------------------------------------------------------------

    def plan_changes(self, name: str | None = None) -> Changes:
        """The ``changes:`` that turn the baseline's facilities into the variant's (``apply_changes`` gives them back).

        A facility moved or added is an ``add`` (a moved one is also removed under its id); a
        changed type, capacity, name or tier of a baseline facility is an ``upgrade``. The
        baseline scenario's own ``changes`` come first (a plan's lists replace the baseline's).
        """
        v = self.variants[name or self.current]
        base = self.inputs.facilities.set_index("fid", drop=False)
        cur = v.facilities.set_index("fid", drop=False)
        own = self.inputs.scenario.changes
        own_added = {a.id for a in own.add}
        add = [a for a in own.add if a.id in cur.index and not self._differs(base.loc[a.id], cur.loc[a.id], geo=True)
               and not self._differs(base.loc[a.id], cur.loc[a.id])]
        remove = list(own.remove)
        upgrade = list(own.upgrade)
        for fid in base.index:
            if fid not in cur.index and fid not in own_added:
                remove.append(str(fid))
        for fid, row in cur.iterrows():
            fid = str(fid)
            if fid in base.index and fid not in own_added:
                b = base.loc[fid]
                if self._differs(b, row, geo=True):
                    remove.append(fid)
                    add.append(self._as_add(row))
                elif self._differs(b, row):
                    upgrade.append(Upgrade(id=fid, **{k: (None if pd.isna(row[k]) else row[k]) for k in _EDIT_KEYS
                                                       if not _same(b[k], row[k])}))
            elif fid not in base.index or self._differs(base.loc[fid], row, geo=True) or self._differs(base.loc[fid], row):
                add.append(self._as_add(row))
        return Changes(add=add, remove=remove, upgrade=upgrade)

    @staticmethod
    def _differs(a: pd.Series, b: pd.Series, geo: bool = False) -> bool:
        if geo:
            return not (_same(a["lon"], b["lon"]) and _same(a["lat"], b["lat"]))
        return not all(_same(a[k], b[k]) for k in _EDIT_KEYS)

    @staticmethod
    def _as_add(row: pd.Series) -> AddFacility:
        return AddFacility(id=str(row["fid"]), name=str(row["name"]), category=str(row["category"]),
                           ftype=str(row["ftype"]), lon=float(row["lon"]), lat=float(row["lat"]),
                           capacity=None if pd.isna(row["capacity"]) else float(row["capacity"]),
                           tier=str(row["tier"]) if isinstance(row["tier"], str) and row["tier"] else None)

    def plan_yaml(self, name: str | None = None, where: Path | None = None) -> str:
        """The variant as a plan scenario: ``extends:`` the baseline (relative to ``where``) + ``changes:``."""
        v = self.variants[name or self.current]
        where = (where or self.path.parent).resolve()
        import os

        rel = os.path.relpath(self.path, where)
        ch = self.plan_changes(v.name).model_dump(mode="json", exclude_defaults=False)
        ch["add"] = [{k: x for k, x in a.items() if x is not None and not (k == "crs" and x == "wgs84")} for a in ch["add"]]
        ch["upgrade"] = [{k: x for k, x in u.items() if x is not None} for u in ch["upgrade"]]
        doc = {"name": f"{self.inputs.scenario.name} · {v.name}", "extends": rel.replace(os.sep, "/"),
               "changes": {k: x for k, x in ch.items() if x}}
        head = (f"# covplan serve 会议模式方案 / meeting-mode variant “{v.name}”\n"
                f"# 复现 / reproduce: covplan run THIS.yaml ; covplan compare {rel} THIS.yaml\n")
        return head + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)

    def plan_path(self, name: str | None = None) -> Path:
        """Where :meth:`save_plan` writes: ``<scenario stem>-<variant>.yaml`` beside the scenario."""
        v = self.variants[name or self.current]
        return self.path.with_name(f"{self.path.stem}-{v.name}.yaml")

    def save_plan(self, name: str | None = None) -> Path:
        """Write the plan YAML beside the scenario (never over a file this session did not write)."""
        with self.lock:
            p = self.plan_path(name)
            if p.exists() and p not in self.saved:
                raise InputError(f"文件 {p.name} 已存在且不是本次会议写出的，不会覆盖。请换一个方案名称。",
                                 f"{p.name} exists and was not written by this session; it is not replaced. "
                                 "Use another variant name.", file=str(p), code="plan_exists")
            with atomic_target(p) as tmp:
                tmp.write_text(self.plan_yaml(name, p.parent), encoding="utf-8")
            self.saved.add(p)
            return p

    def export(self, name: str | None = None) -> tuple[Path, list[str]]:
        """Save the plan YAML and write its ``covplan compare`` outputs (gaps.xlsx, report.html, map.html …).

        This is :func:`coverage.plans.compare_scenarios` on the baseline and the saved plan file,
        i.e. exactly ``covplan compare BASELINE PLAN`` (it reads both again: tens of seconds).
        The folder is ``<export root>/<variant>`` under the ``--out`` rules of :mod:`coverage._atomic`.
        """
        with self.lock:
            v = self.variants[name or self.current]
            plan = self.save_plan(v.name)
        out = self.export_root / v.name
        with output_policy(out, protect=[self.path, plan]):
            result, _ = plans.compare_scenarios(self.path, plan, out)
        return out, result.files


def _same(a: Any, b: Any) -> bool:
    if (a is None or (isinstance(a, float) and np.isnan(a))) and (b is None or (isinstance(b, float) and np.isnan(b))):
        return True
    if a is None or b is None:
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)
