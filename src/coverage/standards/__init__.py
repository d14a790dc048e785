"""Standards presets: service circles, presence rules and per-1000 targets, with their sources.

A preset is a YAML file. The built-in ones live beside this module (package data):

* ``cn-default`` — national defaults: rules from national texts (``basis: national``: the
  national 托位 and sports-area targets, one 卫生院 per 乡镇, one 村卫生室 per 行政村 …) plus the
  service circles and rules the seed plans share, each marked ``basis: reference`` (参考) with the
  seed plan it comes from (urban 15-minute circles, the rural 30-minute health circle, the 15 km
  城乡服务圈 …), so the demo can run every service;
* ``gb50180`` — GB 50180-2018 5/10/15-minute living-circle tiers for urban cells (non-inclusive:
  each tier counts only its own facility types), rural cells as in ``cn-default``;
* ``kongtong``, ``renhuai``, ``huaibei``, ``nanqiao`` — the seed counties (崆峒区 S0, 仁怀市 S1,
  淮北市 S2, 南谯区 S4; ``document:`` names the plan). Each ``extends: cn-default``; a rule its own
  plan states is restated with ``basis: own`` and a source citing that plan, and every other rule
  stays 参考 (:meth:`Preset.is_reference`).

Every rule carries ``source`` (seed and line, e.g. ``"S0 L722"``, or a national text in 《》, see
:mod:`coverage.standards.documents`), ``verified`` (``true`` only when the number is stated in a
cited text we hold; the travel mode is never stated by the seeds and is described in ``note``) and
``basis``:

* ``own`` — stated (or, with ``verified: false``, derived) in the preset's own document;
* ``national`` — from a national text; in a county preset it is shown as 参考·国家;
* ``reference`` — from another county's plan, or our assumption: shown as 参考.

``nature`` is 约束性 (binding) or 预期性 (expected); binding gaps rank first in the gap table. A
user's own new rule defaults to ``basis: own``; a rule overridden by id keeps its parent's basis
unless the override sets it.

A user preset names a built-in (or another file) in ``extends:`` and lists only what changes.
Rules in ``circles``, ``presence`` and ``provision`` are merged **by id**: a rule with a known id
overrides the keys it gives (e.g. only ``minutes``), a new id adds a rule, and ``enabled: false``
switches a rule off. Mappings (``services``, ``projects``, ``urban_rural_circle``) are merged key by
key; lists inside them (e.g. a headline's rule ids) are replaced.

>>> from coverage.standards import load_preset
>>> p = load_preset("cn-default")
>>> p.circle("clinic_rural_30min").minutes
30.0
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coverage import categories
from coverage.errors import InputError
from coverage.settings import AGE_GROUPS

#: Folder of the built-in preset files (package data).
BUILTIN_DIR: Path = Path(__file__).resolve().parent

#: Demand groups a rule may name: the total population and the age groups of ``settings``.
GROUPS: tuple[str, ...] = ("pop", *AGE_GROUPS)

#: Unit kinds a presence rule may name, and the ``kind`` values of the units table they select.
#: ``行政村`` rules use the villages table; ``县`` rules count the whole county.
UNIT_KINDS: dict[str, tuple[str, ...]] = {
    "乡镇": ("镇", "乡"),
    "街道": ("街道",),
    "乡镇(街道)": ("街道", "镇", "乡"),
    "镇": ("镇",),
    "乡": ("乡",),
    "行政村": (),
    "县": (),
}

#: Rule lists merged by ``id`` when a preset extends another one.
RULE_LISTS: tuple[str, ...] = ("circles", "presence", "provision")

Nature = Literal["约束性", "预期性"]

#: Where a rule comes from (see the module docstring): the preset's own document, a national text, or
#: elsewhere (another county's plan, or our derivation or assumption) — shown as 参考.
Basis = Literal["own", "national", "reference"]

#: Chinese labels of ``basis`` (a county preset shows ``national`` as 参考·国家, see
#: :meth:`Preset.basis_label`).
BASIS_LABELS: dict[str, str] = {"own": "本规划", "national": "国家", "reference": "参考"}
Mode = Literal["walk", "ebike", "drive"]

_STRICT = ConfigDict(extra="forbid")


def _check_ftypes(v: list[str]) -> list[str]:
    bad = [f for f in v if f not in categories.FTYPES]
    if bad:
        raise ValueError(
            f"unknown facility type(s) {bad}; known: {', '.join(categories.FTYPES)}"
        )
    if not v:
        raise ValueError("at least one facility type is needed")
    return v


def _check_group(v: str) -> str:
    if v not in GROUPS:
        raise ValueError(f"unknown demand group {v!r}; use one of {', '.join(GROUPS)}")
    return v


class _Rule(BaseModel):
    """Fields every rule shares."""

    model_config = _STRICT

    id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    service: str
    label: str = ""
    indicator: str = ""
    nature: Nature = "预期性"
    source: str = Field(min_length=1)
    verified: bool
    basis: Basis = "own"
    note: str = ""
    enabled: bool = True

    @field_validator("service")
    @classmethod
    def _service_known(cls, v: str) -> str:
        if v not in categories.SERVICES:
            raise ValueError(f"unknown service {v!r}; use one of {', '.join(categories.SERVICES)}")
        return v


class _TypedRule(_Rule):
    """A rule about facilities of ``ftypes`` serving people of ``group``; ``propose`` is the type to build where it fails.

    The checks of these three fields live here, once.
    """

    ftypes: list[str]
    group: str = "pop"
    propose: str | None = None

    @field_validator("ftypes")
    @classmethod
    def _ftypes_known(cls, v: list[str]) -> list[str]:
        return _check_ftypes(v)

    @field_validator("group")
    @classmethod
    def _group_known(cls, v: str) -> str:
        return _check_group(v)

    @field_validator("propose")
    @classmethod
    def _propose_known(cls, v: str | None) -> str | None:
        if v is not None and v not in categories.FTYPES:
            raise ValueError(f"propose: unknown facility type {v!r}")
        return v


class CircleRule(_TypedRule):
    """A service circle: people of ``group`` within ``minutes`` (or ``metres``) of a facility.

    The pipeline supplies a column ``t_<id>`` on the demand cells (minutes or metres to the nearest
    facility of ``ftypes`` on the ``mode`` graph, ``inf`` when not reached). A cell is covered when
    ``t_<id> <= threshold``. ``applies_to`` restricts the rule to urban or rural cells.
    """

    applies_to: Literal["urban", "rural", "all"] = "all"
    mode: Mode
    minutes: float | None = Field(default=None, gt=0)
    metres: float | None = Field(default=None, gt=0)
    target_share: float | None = Field(default=None, ge=0, le=1)
    tier: str = ""


    @model_validator(mode="after")
    def _one_threshold(self) -> "CircleRule":
        if (self.minutes is None) == (self.metres is None):
            raise ValueError("give exactly one of 'minutes' or 'metres'")
        return self

    @property
    def threshold(self) -> float:
        """The threshold in the rule's unit (minutes or metres)."""
        return float(self.minutes if self.minutes is not None else self.metres)  # type: ignore[arg-type]

    @property
    def unit(self) -> str:
        """``"minutes"`` or ``"metres"``."""
        return "minutes" if self.minutes is not None else "metres"

    @property
    def column(self) -> str:
        """Name of the time/distance column on the demand cells: ``t_<id>``."""
        return f"t_{self.id}"

    @property
    def proposed_ftype(self) -> str:
        """Facility type to propose for an uncovered cluster (``propose`` or the first ftype)."""
        return self.propose or self.ftypes[0]


class UrbanRuralCircle(BaseModel):
    """The 15 km 城乡服务圈: people within ``metres`` by road of the 城区 (county seat)."""

    model_config = _STRICT

    id: str = Field(default="urban_rural_15km", pattern=r"^[A-Za-z0-9_]+$")
    label: str = "以城区为中心的15公里城乡服务圈"
    indicator: str = "15公里城乡服务圈"
    mode: Mode = "drive"
    metres: float = Field(default=15000.0, gt=0)
    group: str = "pop"
    applies_to: Literal["all"] = "all"
    nature: Nature = "预期性"
    target_share: float | None = Field(default=None, ge=0, le=1)
    source: str = Field(min_length=1)
    verified: bool
    basis: Basis = "own"
    note: str = ""
    enabled: bool = True

    @field_validator("group")
    @classmethod
    def _group_known(cls, v: str) -> str:
        return _check_group(v)

    @property
    def service(self) -> str:
        """Pseudo-service key of the 15 km circle: ``"urban_rural"``."""
        return "urban_rural"

    @property
    def minutes(self) -> None:
        """Always ``None`` (the 15 km circle is a distance)."""
        return None

    @property
    def tier(self) -> str:
        """No tier."""
        return ""

    @property
    def threshold(self) -> float:
        """The threshold in metres."""
        return float(self.metres)

    @property
    def unit(self) -> str:
        """Always ``"metres"``."""
        return "metres"

    @property
    def column(self) -> str:
        """Name of the distance column on the demand cells: ``t_<id>``."""
        return f"t_{self.id}"

    @property
    def proposed_ftype(self) -> str | None:
        """No facility type: a gap of the 15 km circle is a road or service-outreach question."""
        return None


class PresenceRule(_TypedRule):
    """At least ``min_count`` facilities of ``ftypes`` in every unit of ``unit_kind``.

    ``per_population`` adds one required facility per that many residents (e.g. 1 社区卫生服务中心
    per 3–10万 residents). ``target_share`` makes it a county-level share rule (e.g. 区域养老服务中心
    in ≥ 50 % of 乡镇(街道)); without it every unit must pass. For ``行政村`` a village "has" a facility
    when one lies within ``within_m`` metres (straight line) of the village point or polygon, since
    village polygons are rarely available.
    """

    unit_kind: str
    min_count: int = Field(default=1, ge=1)
    per_population: float | None = Field(default=None, gt=0)
    target_share: float | None = Field(default=None, gt=0, le=1)
    within_m: float = Field(default=1000.0, ge=0)


    @field_validator("unit_kind")
    @classmethod
    def _kind_known(cls, v: str) -> str:
        v = v.replace("（", "(").replace("）", ")")
        if v not in UNIT_KINDS:
            raise ValueError(f"unknown unit_kind {v!r}; use one of {', '.join(UNIT_KINDS)}")
        return v

    @property
    def level(self) -> str:
        """``"village"`` (行政村), ``"county"`` (县) or ``"unit"`` (乡镇/街道)."""
        return {"行政村": "village", "县": "county"}.get(self.unit_kind, "unit")

    @property
    def proposed_ftype(self) -> str:
        """Facility type to propose where the rule fails."""
        return self.propose or self.ftypes[0]


class ProvisionRule(_TypedRule):
    """Capacity of ``ftypes`` per ``per`` people of ``group`` compared with ``target``.

    ``per: null`` makes it an absolute total (e.g. 养老服务床位总量 3925 张). Facilities count when their
    ``capacity_unit`` equals the rule's or is empty. ``level`` says whether the county figure
    (``county``) or every unit (``unit``) must meet the target; both are always reported.
    """

    capacity_unit: str
    per: float | None = Field(default=1000.0, gt=0)
    target: float = Field(ge=0)
    comparison: Literal[">=", ">"] = ">="
    level: Literal["county", "unit"] = "county"



    def passes(self, value: float) -> bool:
        """Whether a computed value meets the target (NaN never passes)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return value > self.target if self.comparison == ">" else value >= self.target

    @property
    def proposed_ftype(self) -> str:
        """Facility type to propose where the target is missed."""
        return self.propose or self.ftypes[0]


#: Any rule of a preset.
AnyRule = CircleRule | UrbanRuralCircle | PresenceRule | ProvisionRule


class ServiceInfo(BaseModel):
    """Per-service settings: Chinese label (服务领域), lead department and headline rules.

    ``headline`` maps ``urban`` / ``rural`` / ``all`` to circle-rule ids; ``summary.json``'s
    ``categories.<service>`` judges urban cells by the ``urban`` rules, rural cells by the ``rural``
    rules, and every cell by the ``all`` rules. Rules on one side must use different demand groups
    (so nobody is counted twice).
    """

    model_config = _STRICT

    label: str
    lead: str
    headline: dict[Literal["urban", "rural", "all"], list[str]] = Field(default_factory=dict)
    source: str = ""
    verified: bool = False


class ProjectTemplate(BaseModel):
    """How a gap becomes a project-bank row for a facility type.

    ``scale`` (in ``scale_unit``) is the default size of one new facility; with ``per_1000`` the size
    grows with the group population of the gap, ``ceil(people × per_1000 / 1000)``, capped by
    ``max_scale``. Cost = ``cost_per_unit_wan × scale`` when given, else ``cost_wan`` (万元).
    ``lead`` and ``domain`` override the service's department and label (e.g. 托育 → 卫健局).

    Tiers (the project bank never proposes more than a gap needs): ``min_people`` is the smallest
    number of people (of the gap's rule group) one new facility of this type must serve; a gap below
    it, or (``one_per_place``: the standard gives one per 乡镇/村, e.g. 卫生院, 村卫生室) in a unit or
    village where a presence rule already finds this type, moves to the ``lower`` type (e.g. 乡镇卫生院
    → 村卫生室); with no lower type left it becomes a ``suggestion`` (流动服务, 巡诊, 校车 …: no
    building, ``suggestion_cost_wan`` a year). ``max_scale`` also caps one line of a capacity
    deficit: a larger deficit is split over townships and the rest flagged, never one huge line.
    """

    model_config = _STRICT

    label: str
    construction: str = "新建"
    scale: float = Field(gt=0)
    scale_unit: str
    per_1000: float | None = Field(default=None, gt=0)
    group: str | None = None
    max_scale: float | None = Field(default=None, gt=0)
    cost_wan: float | None = Field(default=None, ge=0)
    cost_per_unit_wan: float | None = Field(default=None, ge=0)
    lead: str | None = None
    domain: str | None = None
    min_people: float | None = Field(default=None, ge=0)
    one_per_place: bool = False
    lower: str | None = None
    suggestion: str | None = None
    suggestion_cost_wan: float = Field(default=0.0, ge=0)
    source: str = Field(min_length=1)
    verified: bool
    note: str = ""

    @field_validator("group")
    @classmethod
    def _group_ok(cls, v: str | None) -> str | None:
        return None if v is None else _check_group(v)

    @field_validator("lower")
    @classmethod
    def _lower_ok(cls, v: str | None) -> str | None:
        return None if v is None else _check_ftypes([v])[0]

    def size_for(self, people: float) -> float:
        """Scale of one project serving ``people`` of the template's group."""
        s = float(self.scale)
        if self.per_1000 is not None and people and people > 0:
            s = max(s, float(math.ceil(people * self.per_1000 / 1000.0)))
        if self.max_scale is not None:
            s = min(s, float(self.max_scale))
        return s

    def cost_for(self, scale: float) -> float:
        """Estimated investment in 万元 (NaN when the template gives no cost)."""
        if self.cost_per_unit_wan is not None:
            return round(self.cost_per_unit_wan * scale, 1)
        if self.cost_wan is not None:
            return float(self.cost_wan)
        return float("nan")


class Preset(BaseModel):
    """A resolved standards preset (after ``extends:`` merging)."""

    model_config = _STRICT

    name: str
    title: str = ""
    description: str = ""
    extends: str | None = None
    county: str = ""
    document: str | None = None
    population_basis: Literal["常住", "户籍"] = "常住"
    services: dict[str, ServiceInfo] = Field(default_factory=dict)
    circles: list[CircleRule] = Field(default_factory=list)
    presence: list[PresenceRule] = Field(default_factory=list)
    provision: list[ProvisionRule] = Field(default_factory=list)
    urban_rural_circle: UrbanRuralCircle | None = None
    projects: dict[str, ProjectTemplate] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list)

    @field_validator("services")
    @classmethod
    def _services_known(cls, v: dict[str, ServiceInfo]) -> dict[str, ServiceInfo]:
        bad = [k for k in v if k not in categories.SERVICES]
        if bad:
            raise ValueError(f"unknown service(s) {bad}; use {', '.join(categories.SERVICES)}")
        return v

    @field_validator("projects")
    @classmethod
    def _projects_known(cls, v: dict[str, ProjectTemplate]) -> dict[str, ProjectTemplate]:
        bad = [k for k in v if k not in categories.FTYPES]
        if bad:
            raise ValueError(f"unknown facility type(s) {bad} in projects")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Preset":
        for kind in RULE_LISTS:
            ids = [r.id for r in getattr(self, kind)]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"duplicate rule id(s) {dup} in {kind}")
        circles = {r.id: r for r in self.circles}
        if self.urban_rural_circle is not None and self.urban_rural_circle.id in circles:
            raise ValueError("urban_rural_circle.id clashes with a circle rule id")
        for key, info in self.services.items():
            for side, ids in info.headline.items():
                groups = []
                for rid in ids:
                    r = circles.get(rid)
                    if r is None:
                        raise ValueError(f"services.{key}.headline.{side}: no circle rule {rid!r}")
                    if r.service != key:
                        raise ValueError(
                            f"services.{key}.headline.{side}: rule {rid!r} is of service {r.service!r}"
                        )
                    if r.applies_to not in (side, "all"):
                        raise ValueError(
                            f"services.{key}.headline.{side}: rule {rid!r} applies to {r.applies_to}"
                        )
                    if r.enabled:
                        groups.append(r.group)
                if len(groups) != len(set(groups)):
                    raise ValueError(
                        f"services.{key}.headline.{side}: two rules use the same demand group "
                        "(people would be counted twice)"
                    )
        return self

    @field_validator("document")
    @classmethod
    def _document_known(cls, v: str | None) -> str | None:
        from coverage.standards.documents import documents

        if v is not None and v not in documents():
            raise ValueError(f"unknown document {v!r}; known: {', '.join(documents())}")
        return v

    # --- provenance --------------------------------------------------------------------------
    def is_reference(self, rule: AnyRule) -> bool:
        """Whether a rule is shown as 参考 (reference) in this preset.

        A rule with ``basis: reference`` always is. In a county preset (``county`` set) a
        ``national`` rule is too: it is a national default, not a target of the county's plan. In
        ``cn-default`` and ``gb50180`` (no county) national rules are the preset's own basis.

        Parameters
        ----------
        rule : CircleRule, PresenceRule, ProvisionRule or UrbanRuralCircle

        Returns
        -------
        bool
        """
        return rule.basis == "reference" or (rule.basis == "national" and bool(self.county))

    def basis_label(self, rule: AnyRule) -> str:
        """Chinese label of a rule's basis in this preset.

        Returns
        -------
        str
            ``本规划`` (the county's own plan), ``国家`` (national text, in a preset without county),
            ``参考·国家`` (national default in a county preset) or ``参考`` (another plan, or derived).
        """
        if rule.basis == "national" and self.county:
            return "参考·国家"
        return BASIS_LABELS[rule.basis]

    def rules(self, active: bool = True) -> list[AnyRule]:
        """Every rule: circles, the 15 km circle, presence and provision rules, in that order.

        Parameters
        ----------
        active : bool, default True
            Only enabled rules.

        Returns
        -------
        list
        """
        out: list[AnyRule] = [*self.circles]
        if self.urban_rural_circle is not None:
            out.append(self.urban_rural_circle)
        out += [*self.presence, *self.provision]
        return [r for r in out if r.enabled or not active]

    def rule(self, rule_id: str) -> AnyRule:
        """The rule with this id, of any kind (the 15 km circle included; ``KeyError`` if none).

        Parameters
        ----------
        rule_id : str
            E.g. a ``rule_id`` of the coverage, presence, provision or gap tables.

        Returns
        -------
        CircleRule, UrbanRuralCircle, PresenceRule or ProvisionRule
        """
        for r in self.rules(active=False):
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    # --- accessors -------------------------------------------------------------------------
    def active_circles(self) -> list[CircleRule]:
        """Enabled circle rules, in file order."""
        return [r for r in self.circles if r.enabled]

    def active_presence(self) -> list[PresenceRule]:
        """Enabled presence rules, in file order."""
        return [r for r in self.presence if r.enabled]

    def active_provision(self) -> list[ProvisionRule]:
        """Enabled provision rules, in file order."""
        return [r for r in self.provision if r.enabled]

    def urban_rural(self) -> UrbanRuralCircle | None:
        """The 15 km circle when present and enabled."""
        u = self.urban_rural_circle
        return u if u is not None and u.enabled else None

    def circle(self, rule_id: str) -> CircleRule:
        """The circle rule with this id (``KeyError`` if none)."""
        for r in self.circles:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def headline(self, service: str) -> dict[str, list[CircleRule]]:
        """Enabled headline rules of a service by side (``urban``/``rural``/``all``)."""
        info = self.services.get(service)
        if info is None:
            return {}
        out: dict[str, list[CircleRule]] = {}
        for side, ids in info.headline.items():
            rules = [self.circle(i) for i in ids if self.circle(i).enabled]
            if rules:
                out[side] = rules
        return out

    def service_label(self, service: str) -> str:
        """Chinese label of a service (服务领域)."""
        if service in self.services:
            return self.services[service].label
        if service in categories.SERVICES:
            return categories.SERVICES[service].label
        return service

    def lead(self, service: str, ftype: str | None = None) -> str:
        """Lead department (牵头单位) for a service, or the facility type's override."""
        if ftype and ftype in self.projects and self.projects[ftype].lead:
            return self.projects[ftype].lead  # type: ignore[return-value]
        info = self.services.get(service)
        return info.lead if info else ""

    def project(self, ftype: str) -> ProjectTemplate:
        """Project template for a facility type (a plain one-unit default when the preset has none)."""
        if ftype in self.projects:
            return self.projects[ftype]
        ft = categories.FTYPES[ftype]
        return ProjectTemplate(
            label=ft.label.split("/")[0], scale=1, scale_unit="处",
            source="default (no template in preset)", verified=False,
        )


# --- loading -----------------------------------------------------------------------------------


def list_presets() -> list[str]:
    """Names of the built-in presets (the YAML files beside this module), sorted.

    Returns
    -------
    list of str
        E.g. ``["cn-default", "gb50180", "huaibei", "kongtong", "nanqiao", "renhuai"]``.
    """
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _resolve(name_or_path: str | Path, base: Path | None) -> Path:
    s = str(name_or_path)
    cand = Path(s)
    looks_like_path = cand.suffix.lower() in (".yaml", ".yml") or "/" in s or "\\" in s
    if looks_like_path:
        if not cand.is_absolute() and base is not None:
            cand = base / cand
        if cand.is_file():
            return cand.resolve()
        raise InputError(
            f"找不到标准预设文件 {cand}。请检查路径,或使用内置预设: {', '.join(list_presets())}",
            f"standards preset file {cand} not found; check the path or use a built-in preset: "
            f"{', '.join(list_presets())}",
            file=cand,
        )
    builtin = BUILTIN_DIR / f"{s}.yaml"
    if builtin.is_file():
        return builtin
    raise InputError(
        f"未知的标准预设 {s!r}。内置预设: {', '.join(list_presets())};也可给出 YAML 文件路径。",
        f"unknown standards preset {s!r}; built-in presets: {', '.join(list_presets())}, "
        "or give a path to a YAML file",
        field="standards",
    )


@functools.lru_cache(maxsize=64)
def _parse_cached(path: str, mtime_ns: int) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (safe loader)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = copy.deepcopy(_parse_cached(str(path), path.stat().st_mtime_ns))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        raise InputError(
            f"标准预设不是有效的 YAML: {exc}。请修正该行。",
            f"standards preset is not valid YAML: {exc}; fix that line",
            file=path, row=row,
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(
            "标准预设的顶层必须是键值映射(name:, circles: …)。",
            "the top level of a standards preset must be a mapping (name:, circles: …)",
            file=path,
        )
    return data


def _deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _merge_rules(
    base: list[dict], over: Any, kind: str, path: Path, origins: dict[tuple[str, str], Path]
) -> list[dict]:
    if over is None:
        return base
    if not isinstance(over, list):
        raise InputError(
            f"'{kind}' 必须是规则列表(每条以 - id: 开头)。",
            f"'{kind}' must be a list of rules (each starting with '- id:')",
            file=path, field=kind,
        )
    out = [dict(r) for r in base]
    index = {r["id"]: i for i, r in enumerate(out)}
    for n, rule in enumerate(over):
        if not isinstance(rule, dict) or not isinstance(rule.get("id"), str) or not rule.get("id"):
            raise InputError(
                f"{kind} 第 {n + 1} 条规则缺少 id。每条规则都需要唯一的 id,用于覆盖或停用。",
                f"rule {n + 1} in '{kind}' has no id; every rule needs a unique id (used to override "
                "or disable it)",
                file=path, field=f"{kind}[{n}].id",
            )
        rid = rule["id"]
        if rid in index:
            out[index[rid]] = _deep_merge(out[index[rid]], rule)
        else:
            index[rid] = len(out)
            out.append(copy.deepcopy(rule))
        origins[(kind, rid)] = path
    return out


def _file_label(path: Path) -> str:
    """``builtin:<name>`` for a built-in preset, else the file path."""
    return f"builtin:{path.stem}" if path.parent == BUILTIN_DIR else str(path)


def _load_raw(path: Path, chain: list[Path]) -> tuple[dict[str, Any], dict[tuple[str, str], Path]]:
    if path in chain:
        cycle = " → ".join(str(p.name) for p in [*chain, path])
        raise InputError(
            f"标准预设的 extends 形成循环: {cycle}。",
            f"standards presets extend each other in a cycle: {cycle}",
            file=path, field="extends",
        )
    raw = _read_yaml(path)
    origins: dict[tuple[str, str], Path] = {}
    parent = raw.get("extends")
    if parent:
        if not isinstance(parent, str):
            raise InputError(
                "extends 必须是一个预设名或文件路径。", "'extends' must be one preset name or path",
                file=path, field="extends",
            )
        base, origins = _load_raw(_resolve(parent, path.parent), [*chain, path])
        files = [*base.get("files", []), _file_label(path)]
    else:
        base, files = {}, [_file_label(path)]
    merged: dict[str, Any] = dict(base)
    for key, value in raw.items():
        if key in RULE_LISTS:
            merged[key] = _merge_rules(base.get(key, []), value, key, path, origins)
        elif key in ("services", "projects", "urban_rural_circle") and key in base:
            if not isinstance(value, dict):
                raise InputError(
                    f"'{key}' 必须是键值映射。", f"'{key}' must be a mapping",
                    file=path, field=key,
                )
            merged[key] = _deep_merge(base[key], value)
            for sub in value:
                origins[(key, str(sub))] = path
        else:
            merged[key] = copy.deepcopy(value)
            origins[(key, "")] = path
    merged.setdefault("name", path.stem)
    if "name" not in raw:
        merged["name"] = path.stem
    merged["files"] = files
    return merged, origins


def _explain(exc: ValidationError, merged: dict[str, Any], origins: dict, top: Path) -> InputError:
    err = exc.errors()[0]
    loc = list(err["loc"])
    file = top
    key_parts: list[str] = []
    if loc and loc[0] in RULE_LISTS and len(loc) > 1 and isinstance(loc[1], int):
        kind, i = loc[0], loc[1]
        rid = merged.get(kind, [{}])[i].get("id", i) if i < len(merged.get(kind, [])) else i
        file = origins.get((kind, rid), top)
        key_parts.append(f"{kind}[id={rid}]")
        loc = loc[2:]
    elif loc and loc[0] in ("services", "projects") and len(loc) > 1:
        file = origins.get((loc[0], str(loc[1])), top)
        key_parts.append(f"{loc[0]}.{loc[1]}")
        loc = loc[2:]
    elif loc:
        file = origins.get((str(loc[0]), ""), top)
    else:  # a whole-preset check: its message starts with the key, e.g. "services.clinic.headline…"
        import re

        m = re.match(r"(?:Value error, )?([A-Za-z_][\w.]*):", str(err.get("msg", "")))
        if m:
            key_parts.append(m.group(1))
            head = m.group(1).split(".")
            if len(head) > 1:
                file = origins.get((head[0], head[1]), top)
    key_parts.extend(str(x) for x in loc)
    key = ".".join(key_parts) or "(preset)"
    msg = err.get("msg", "invalid value")
    n = len(exc.errors())
    more = f" (+{n - 1} more)" if n > 1 else ""
    return InputError(
        f"标准预设中 {key} 的值无效: {msg}{more}。请按 docs 中的预设格式修正。",
        f"invalid value at {key} in the standards preset: {msg}{more}; fix it (see the preset "
        "format in coverage.standards)",
        file=file, field=key,
    )


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a standards preset by built-in name or file path, resolving ``extends:``.

    Parameters
    ----------
    name_or_path : str or pathlib.Path
        A built-in name (see :func:`list_presets`, e.g. ``"cn-default"``) or a path to a YAML file.
        A file's ``extends:`` may name a built-in or a path relative to the file.

    Returns
    -------
    Preset
        The merged, validated preset. ``files`` lists the files merged, base first.

    Raises
    ------
    coverage.errors.InputError
        Unknown name, missing file, bad YAML, an ``extends`` cycle, or an invalid value; the
        message names the file and the key (e.g. ``circles[id=clinic_rural_30min].minutes``).
    """
    if isinstance(name_or_path, Preset):  # already loaded
        return name_or_path
    path = _resolve(name_or_path, Path.cwd())
    merged, origins = _load_raw(path, [])
    try:
        return Preset.model_validate(merged)
    except ValidationError as exc:
        raise _explain(exc, merged, origins, path) from None


__all__ = [
    "BASIS_LABELS",
    "BUILTIN_DIR",
    "GROUPS",
    "UNIT_KINDS",
    "AnyRule",
    "Basis",
    "CircleRule",
    "PresenceRule",
    "Preset",
    "ProjectTemplate",
    "ProvisionRule",
    "ServiceInfo",
    "UrbanRuralCircle",
    "list_presets",
    "load_preset",
]
