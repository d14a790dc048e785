"""Plain-language text of a preset's rules: each rule's target, basis and source, for planners.

``covplan standards NAME`` prints :func:`preset_text`; ``covplan standards`` prints
:func:`preset_line` for every built-in preset. Sources are resolved by
:mod:`coverage.standards.documents` to the document's title and the chapter / section / item of the
cited line, so nobody has to decode ``S0 L722``.
"""

from __future__ import annotations

from coverage import categories
from coverage.settings import AGE_GROUPS
from coverage.standards import (
    AnyRule,
    CircleRule,
    PresenceRule,
    Preset,
    ProvisionRule,
    UrbanRuralCircle,
)
from coverage.standards.documents import cite, documents

MODE_LABELS: dict[str, str] = {"walk": "步行", "ebike": "电动自行车", "drive": "驾车"}
SIDE_LABELS: dict[str, str] = {"urban": "城镇", "rural": "农村", "all": "全域"}


def group_label(group: str) -> str:
    """Chinese label of a demand group (``pop`` → 全体人口, ``age3_5`` → 3–5岁)."""
    return "全体人口" if group == "pop" else AGE_GROUPS.get(group, group)


def ftypes_label(ftypes: list[str]) -> str:
    """Facility types as Chinese labels joined by 、 (first label of each type)."""
    return "、".join(categories.FTYPES[f].label.split("/")[0] for f in ftypes)


def _share(x: float) -> str:
    return f"{x * 100:g}%"


def target_text(rule: AnyRule) -> str:
    """The rule's target in one line of plain Chinese.

    Parameters
    ----------
    rule : CircleRule, UrbanRuralCircle, PresenceRule or ProvisionRule

    Returns
    -------
    str
        E.g. ``城镇 3–5岁 居民步行 ≤15分钟 可达 幼儿园``, ``每个街道 ≥1 处 幼儿园``,
        ``≥50% 的乡镇(街道) 有 区域养老服务中心``, ``每千人 托位 ≥4.5``.
    """
    if isinstance(rule, UrbanRuralCircle):
        share = f",覆盖率 ≥{_share(rule.target_share)}" if rule.target_share is not None else ""
        return (f"{group_label(rule.group)} 距城区 ≤{rule.metres / 1000:g} 公里"
                f"(道路网络距离,{MODE_LABELS[rule.mode]}){share}")
    if isinstance(rule, CircleRule):
        limit = f"≤{rule.minutes:g}分钟" if rule.minutes is not None else f"≤{rule.metres:g}米"
        share = f",覆盖率 ≥{_share(rule.target_share)}" if rule.target_share is not None else ""
        return (f"{SIDE_LABELS[rule.applies_to]} {group_label(rule.group)} {MODE_LABELS[rule.mode]}{limit}"
                f" 可达 {ftypes_label(rule.ftypes)}{share}")
    if isinstance(rule, PresenceRule):
        what = f"≥{rule.min_count} 处 {ftypes_label(rule.ftypes)}"
        if rule.level == "county":
            return f"全县(区) {what}"
        if rule.level == "village":
            where = f"每个行政村(村点 {rule.within_m:g} 米内)"
            if rule.target_share is not None:
                return f"≥{_share(rule.target_share)} 的行政村(村点 {rule.within_m:g} 米内)有 {what}"
            return f"{where} {what}"
        if rule.target_share is not None:
            return f"≥{_share(rule.target_share)} 的{rule.unit_kind} 有 {what}"
        extra = f",另每 {rule.per_population / 10000:g} 万人 1 处" if rule.per_population else ""
        return f"每个{rule.unit_kind} {what}{extra}"
    if isinstance(rule, ProvisionRule):
        cmp = "≥" if rule.comparison == ">=" else ">"
        where = "全县(区)" if rule.level == "county" else "每个乡镇(街道)"
        if rule.per is None:
            return f"{where} {ftypes_label(rule.ftypes)} {rule.capacity_unit}总量 {cmp}{rule.target:g}"
        per = "人均" if rule.per == 1 else ("每千人" if rule.per == 1000 else f"每 {rule.per:g} 人")
        if rule.group != "pop":
            per = per.replace("人", f"名{group_label(rule.group)}人口") if rule.per != 1 else f"{group_label(rule.group)}人均"
        return f"{where} {per} {rule.capacity_unit} {cmp}{rule.target:g}({ftypes_label(rule.ftypes)})"
    raise TypeError(f"not a rule: {rule!r}")


def source_text(source: str) -> str:
    """A ``source`` as the planner reads it: the documents cited, with title and section.

    Parameters
    ----------
    source : str

    Returns
    -------
    str
        The cited documents joined by ``;``; the raw source when it cites no known document (an
        assumption or a user's own text).
    """
    cites = cite(source)
    if not cites:
        return source
    parts: list[str] = []
    for i, c in enumerate(cites):
        text = c.describe()
        if i and c.doc is cites[i - 1].doc:  # same document again: its title once
            text = text.removeprefix(f"《{c.doc.title}》").lstrip()
        parts.append(text)
    return ";".join(parts)


def rule_text(rule: AnyRule, preset: Preset) -> str:
    """Three to four lines for one rule: id, basis and label; target; source; note (if unverified).

    Parameters
    ----------
    rule : rule of ``preset``
    preset : Preset

    Returns
    -------
    str
    """
    flag = "" if rule.verified else " [待核实 / verify]"
    head = f"  {rule.id}  [{preset.basis_label(rule)}] {rule.label or rule.indicator} ({rule.nature}){flag}"
    lines = [head, f"      目标: {target_text(rule)}", f"      出处: {source_text(rule.source)}"]
    if not rule.verified and rule.note:
        lines.append(f"      说明: {' '.join(rule.note.split())}")
    return "\n".join(lines)


def counts(preset: Preset) -> tuple[int, int]:
    """Enabled rules that are the preset's own basis, and those shown as 参考.

    Returns
    -------
    tuple of int
        ``(own, reference)``: in a county preset ``own`` counts ``basis: own`` rules; in a preset
        without county it counts ``own`` and ``national`` rules.
    """
    rules = preset.rules()
    ref = sum(preset.is_reference(r) for r in rules)
    return len(rules) - ref, ref


def preset_line(preset: Preset) -> str:
    """One line for the preset list: name, title, counts of own and 参考 rules."""
    own, ref = counts(preset)
    kind = "本规划" if preset.county else "国家"
    return f"{preset.name:12s} {preset.title or preset.description[:60]}  ({kind} {own} 条, 参考 {ref} 条)"


def preset_text(preset: Preset) -> str:
    """The whole preset for ``covplan standards NAME``: header, then every enabled rule by kind.

    Parameters
    ----------
    preset : Preset

    Returns
    -------
    str
    """
    out = [f"{preset.name}: {preset.title}"]
    if preset.description:
        out.append(" ".join(preset.description.split()))
    if preset.document:
        doc = documents()[preset.document]
        meta = "、".join(x for x in (doc.issuer, doc.number, doc.date) if x)
        out.append(f"依据文件 / document: 《{doc.title}》" + (f"({meta})" if meta else ""))
    own, ref = counts(preset)
    if preset.county:
        out.append(f"规则: 本规划 {own} 条, 参考 {ref} 条(参考 = 国家默认或他地规划/推导,非本地规划目标)")
    else:
        out.append(f"规则: 国家 {own} 条, 参考 {ref} 条(参考 = 种子规划或推导,非国家文件)")
    out.append("")
    circles: list[AnyRule] = [*preset.active_circles()]
    urc = preset.urban_rural()
    if urc is not None:
        circles.append(urc)
    groups: list[tuple[str, list[AnyRule]]] = [
        ("服务圈 / circles", circles),
        ("配置要求 / presence", [*preset.active_presence()]),
        ("千人指标 / provision", [*preset.active_provision()]),
    ]
    for title, rules in groups:
        out.append(f"{title}:")
        out.extend(rule_text(r, preset) for r in rules)
    return "\n".join(out)


__all__ = [
    "counts",
    "ftypes_label",
    "group_label",
    "preset_line",
    "preset_text",
    "rule_text",
    "source_text",
    "target_text",
]
