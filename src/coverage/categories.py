"""The service vocabulary: four mission services, their facility types, and a name classifier.

Planners' files name facility types in many ways: Chinese administrative names (村卫生室,
中心卫生院, 日间照料中心), Amap (高德) POI types (``医疗保健服务;综合医院;综合医院``, ``smallType`` 诊所),
OSM tags (``amenity=clinic``, Geofabrik ``fclass`` ``pitch``) and English words. :func:`classify`
maps each to a service key (``category``) and a facility-type key (``ftype``) with an ordered list
of keyword rules, **specific before general** (社区卫生服务中心 before 卫生服务, 中心卫生院 before 医院,
区域/综合养老服务中心 before 县级养老服务中心). The first rule that matches wins; some rules exclude
(宠物医院, 药房, 驾校, 大学 …) so that a broader rule cannot catch them. Names that no rule maps are
listed by :func:`unmapped_report` so that a planner can add a ``columns:``/type fix.

Assumptions (documented, overridable by giving the ``ftype`` key itself in the type column):

* a bare "学校"/"school" is taken as a primary school (``primary``);
* "中学"/"middle school" is taken as a junior middle school (``junior``); 高中/高级中学 are excluded
  (not a mission service);
* specialist hospitals (口腔医院, 专科医院 …) are hospitals (``county_hospital`` tier);
* commercial gyms (健身中心/健身房, OSM ``fitness_centre``) count as ``fitness_center``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from coverage.settings import AGE_GROUPS


@dataclass(frozen=True)
class Service:
    """One of the four mission services and every name it goes by in the outputs.

    This is the one place for a service's labels: the map, the workbook, the report, the CSV and
    the terminal read them from here.

    Parameters
    ----------
    key : str
        Internal key (``school``, ``clinic``, ``elderly``, ``fitness``); never shown to planners.
    label : str
        Chinese long label, the 服务领域 of the project bank (``学校/教育``).
    short : str
        Chinese short label for compound names (``服务圈-学校``, ``未覆盖人口-养老``).
    english : str
        English label (``Schools``).
    colour : str
        Colour of the service on the map and in the report's charts (``#rrggbb``).
    sheet : str
        Name of the service's sheet in ``gaps.xlsx`` (Excel forbids ``/`` in sheet names).
    noun : str
        Facility noun of generated project names (``养老服务设施``); empty means the name of the
        facility type to build (schools: 幼儿园, 小学 …).
    """

    key: str
    label: str
    short: str = ""
    english: str = ""
    colour: str = "#636363"
    sheet: str = ""
    noun: str = ""


@dataclass(frozen=True)
class FacilityType:
    """A facility type inside a service.

    Parameters
    ----------
    key : str
        Type key, e.g. ``"village_clinic"``.
    label : str
        Chinese label(s), the first one is the main name (e.g. ``"村卫生室"``).
    service : str
        Service key (``school``, ``clinic``, ``elderly``, ``fitness``).
    tier : str
        Default tier: ``county``, ``township``, ``village`` or ``community``.
    capacity_unit : str
        Unit of the ``capacity`` column: 托位, 园位, 学位, 床位 or m².
    age_groups : tuple of str
        Target age groups (keys of ``settings.AGE_GROUPS``); empty means the whole population.
    """

    key: str
    label: str
    service: str
    tier: str
    capacity_unit: str
    age_groups: tuple[str, ...] = ()

    @property
    def age_group(self) -> str:
        """Target group as one string: ``"all"`` or group keys joined by ``+``."""
        return "+".join(self.age_groups) if self.age_groups else "all"


#: The four mission services, in display order.
SERVICES: dict[str, Service] = {
    s.key: s
    for s in [
        Service("school", "学校/教育", "学校", "Schools", "#1f77b4", "学校教育"),
        Service("clinic", "医疗卫生", "医疗", "Health", "#d62728", "医疗卫生", "医疗卫生服务设施"),
        Service("elderly", "养老服务", "养老", "Elderly care", "#9467bd", "养老服务", "养老服务设施"),
        Service("fitness", "体育健身", "体育", "Fitness", "#2ca02c", "体育健身", "全民健身设施"),
    ]
}
assert all(s.short and s.english and s.sheet and "/" not in s.sheet for s in SERVICES.values())


def service_label(service: object, *, short: bool = False) -> str:
    """Chinese label of a service key (``school`` → ``学校/教育``); any other value unchanged.

    Parameters
    ----------
    service : object
        A service key, or a label already (e.g. a preset's 服务领域 such as ``病有所医``).
    short : bool
        Return the short label (``学校``) instead of the long one.

    Returns
    -------
    str
        The label; ``""`` for a missing value (None or NaN).
    """
    if service is None or (isinstance(service, float) and np.isnan(service)):
        return ""
    s = SERVICES.get(str(service))
    if s is None:
        return str(service)
    return s.short if short else s.label


#: Tiers and their Chinese names.
TIERS: dict[str, str] = {"county": "县级", "township": "乡镇级", "village": "村级", "community": "社区级"}

_T = FacilityType
#: Every facility type by key (order = display order).
FTYPES: dict[str, FacilityType] = {
    t.key: t
    for t in [
        # school
        _T("nursery", "托育机构", "school", "community", "托位", ("age0_2",)),
        _T("kindergarten", "幼儿园", "school", "township", "园位", ("age3_5",)),
        _T("primary", "小学", "school", "township", "学位", ("age6_11",)),
        _T("junior", "初中", "school", "township", "学位", ("age12_14",)),
        _T("nine_year", "九年一贯制学校", "school", "township", "学位", ("age6_11", "age12_14")),
        _T("teaching_point", "教学点", "school", "village", "学位", ("age6_11",)),
        # clinic
        _T("county_hospital", "县级医院/人民医院/中医院", "clinic", "county", "床位"),
        _T("township_health_center", "乡镇卫生院/中心卫生院", "clinic", "township", "床位"),
        _T("community_health_center", "社区卫生服务中心", "clinic", "township", "床位"),
        _T("community_health_station", "社区卫生服务站", "clinic", "community", "床位"),
        _T("village_clinic", "村卫生室", "clinic", "village", "床位"),
        _T("private_clinic", "诊所/门诊部", "clinic", "community", "床位"),
        # elderly
        _T("county_care_center", "县级养老服务中心/失能半失能照护机构/特困人员供养服务机构", "elderly", "county", "床位", ("age60plus",)),
        _T("regional_elderly_center", "区域养老服务中心/综合养老服务中心", "elderly", "township", "床位", ("age60plus",)),
        _T("day_care", "日间照料中心", "elderly", "community", "床位", ("age60plus",)),
        _T("elder_home", "长者之家/农村互助幸福院/互助老人幸福院", "elderly", "village", "床位", ("age60plus",)),
        _T("meal_point", "助餐点/老年食堂", "elderly", "community", "床位", ("age60plus",)),
        _T("nursing_home", "敬老院/养老院/福利院/护理院", "elderly", "township", "床位", ("age60plus",)),
        # fitness
        _T("fitness_center", "全民健身中心", "fitness", "county", "m²"),
        _T("sports_park", "体育公园", "fitness", "county", "m²"),
        _T("fitness_path", "健身路径", "fitness", "village", "m²"),
        _T("multi_court", "多功能运动场/笼式足球场/篮球场", "fitness", "village", "m²"),
        _T("trail", "健身步道", "fitness", "community", "m²"),
        _T("stadium", "体育场/体育馆", "fitness", "county", "m²"),
    ]
}
del _T

assert all(g in AGE_GROUPS for t in FTYPES.values() for g in t.age_groups)

# Ordered rules: (regex on the normalised name, ftype key or None to exclude, rule name).
# Normalisation: NFKC, lower case, "_" and "-" → space. First match wins.
#: Chinese ordinal numerals in abbreviated school names (县一中, 城关二小, 第十二中).
_NUM = "[一二三四五六七八九十]{1,3}"
_RULES_SRC: list[tuple[str, str | None]] = [
    # --- exclusions that a broader rule would otherwise catch
    (r"宠物|动物|兽医|veterinar|\bpet\b|animal", None),
    (r"保险|社保|人寿|insurance", None),
    (r"药房|药店|大药|医药|保健品|医疗保健用品|医疗器械|眼镜|pharmacy|chemist|drugstore", None),
    (r"疗养院|度假|sanatorium|resort", None),
    (r"驾校|驾驶|培训|补习|辅导|教育咨询|早教|driving school|tutor", None),
    (r"体育用品|器材店|器材销售|专卖店|用品店", None),
    # --- elderly (before clinic: 护理院, 养老 …)
    (r"失能|半失能|特困|供养", "county_care_center"),
    (r"区域性?养老|综合养老|(镇|乡|街道)(综合)?养老服务中心|regional elderly", "regional_elderly_center"),
    (r"县级?养老服务中心|县级养老|county care|county elderly", "county_care_center"),
    (r"日间照料|日照中心|托老|养老驿站|elderly day ?care|adult day ?care", "day_care"),
    (r"长者之家|幸福院|互助院|老年之家|互助养老|elder home", "elder_home"),
    (r"助餐|老年食堂|长者食堂|长者饭堂|爱心食堂|meal point|senior meal", "meal_point"),
    (r"敬老院|养老院|福利院|护理院|养老公寓|老年公寓|颐养|nursing home|care home|retirement home|old people|elderly home|aged care|social facility=nursing home", "nursing_home"),
    (r"养老服务中心|养老服务站|养老", "regional_elderly_center"),
    # --- clinic
    (r"社区卫生服务中心|社区医疗服务中心|community health cent", "community_health_center"),
    (r"社区卫生服务站|卫生服务站|社区医疗服务站|community health station", "community_health_station"),
    (r"卫生服务中心", "community_health_center"),
    (r"中心卫生院|乡镇卫生院|卫生院|township health|health cent", "township_health_center"),
    (r"村卫生室|村卫生站|卫生室|卫生所|village clinic", "village_clinic"),
    (r"人民医院|中医院|中医医院|县医院|县级医院|综合医院|妇幼保健|专科医院|医院|hospital", "county_hospital"),
    (r"诊所|门诊|医务室|卫生站|clinic|doctors|dentist|medical cent", "private_clinic"),
    # --- school
    (r"托育|托儿所|育婴|nursery|child ?care|creche|daycare|day care", "nursery"),
    (r"幼儿园|幼稚园|幼儿学校|学前|kindergarten|pre ?school", "kindergarten"),
    (rf"{_NUM}幼(?!儿[^园])|(中心|实验|机关)幼(?!儿[^园])", "kindergarten"),  # 县一幼, 中心幼
    (r"大学|学院|高等院校|高校|职业|职中|职高|技工|技术学校|中专|卫校|党校|成人教育|夜校|高中|高级中学|university|college|vocational|high school", None),
    (r"九年一贯|九年制|一贯制|nine year", "nine_year"),  # 十二年一贯制 too
    (r"教学点|teaching point", "teaching_point"),
    (r"初中|初级中学|中学|middle school|junior|secondary", "junior"),
    # abbreviations: 县一中, 二中, 附中, 民中 (not 一中路, 一中家属院, 第一中心医院)
    (rf"(?:{_NUM}|附|民|实验)中(?![路街巷道桥站心医药家宿小区门口转间央])", "junior"),
    (r"小学|primary", "primary"),
    # 城关二小, 实小, 附小, 中心校, 完小, 村小 (not 二小区, 一小时, 小组)
    (rf"(?:{_NUM}|实|附)小(?![区组卖吃店路街巷时块])|中心校|完小|完全小学|村小(?![区组卖吃店路街巷])", "primary"),
    (r"学校|school", "primary"),
    # --- fitness
    (r"全民健身|健身中心|健身房|健身馆|fitness cent|fitness center|sports cent|gym\b", "fitness_center"),
    (r"体育公园|sports park", "sports_park"),
    (r"健身路径|健身器材|户外健身|健身点|健身广场|健身苑|fitness station|fitness path|outdoor fitness", "fitness_path"),
    (r"健身步道|步道|绿道|\btrails?\b|footpath", "trail"),
    (r"多功能运动场|笼式|篮球|足球|排球|网球|羽毛球|乒乓球|门球|运动场(?!馆)|球场|pitch|\bcourt\b", "multi_court"),
    (r"体育场|体育馆|体育中心|游泳|stadium|sports hall|swimming", "stadium"),
]
_RULES: list[tuple[re.Pattern[str], str | None, str]] = [
    (re.compile(p), k, p) for p, k in _RULES_SRC
]


def normalise(name: object) -> str:
    """Normalise a type name for matching: NFKC, lower case, ``_``/``-`` → space, trimmed."""
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return ""
    s = unicodedata.normalize("NFKC", str(name)).strip().lower()
    s = s.replace("_", " ").replace("-", " ")
    return re.sub(r"\s+", " ", s)


def _match(text: str) -> tuple[str | None, str] | None:
    for pat, key, src in _RULES:
        if pat.search(text):
            return key, src
    return None


def _classify_one(name: object) -> tuple[str | None, str | None]:
    """Return ``(ftype or None, rule or None)``; ``rule`` is set for exclusions too."""
    raw = "" if name is None else unicodedata.normalize("NFKC", str(name)).strip().lower()
    if raw in FTYPES:
        return raw, "key"
    s = normalise(name)
    if not s or s == "nan":
        return None, None
    # Amap joins several types with "|" (main type first): the first part that any rule matches
    # decides, whether it maps or is excluded.
    for part in s.split("|"):
        part = part.strip()
        if not part:
            continue
        hit = _match(part)
        if hit is None:
            continue
        key, src = hit
        return (key, src) if key else (None, f"excluded: {src}")
    return None, None


def classify(names: Iterable[object]) -> pd.DataFrame:
    """Map facility-type names to service and facility-type keys.

    Parameters
    ----------
    names : iterable of str
        Type names as written in the source: Chinese names (``村卫生室``), Amap types
        (``医疗保健服务;综合医院;综合医院``, ``诊所``), OSM tags or ``fclass`` values
        (``amenity=clinic``, ``pitch``), English words, or the ``ftype`` keys themselves.

    Returns
    -------
    pandas.DataFrame
        One row per input name, in input order (``RangeIndex``), columns ``name`` (the input),
        ``category`` (service key or NaN), ``ftype`` (type key or NaN) and ``rule`` (the matching
        rule's pattern, ``"key"`` for an exact key, ``"excluded: …"`` for names deliberately left
        out such as 药房 or 宠物医院, NaN when nothing matched).
    """
    names = list(names)
    uniq = pd.unique(pd.Series(names, dtype="object"))
    lookup = {}
    for u in uniq:
        key, rule = _classify_one(u)
        lookup[u if u == u else "\0nan"] = (
            FTYPES[key].service if key else np.nan,
            key if key else np.nan,
            rule if rule else np.nan,
        )
    rows = [lookup[n if n == n else "\0nan"] for n in names]
    out = pd.DataFrame(rows, columns=["category", "ftype", "rule"], dtype="object")
    out.insert(0, "name", pd.Series(names, dtype="object"))
    return out


def unmapped_report(names: Iterable[object]) -> pd.DataFrame:
    """List the names that :func:`classify` leaves without a category, most frequent first.

    Parameters
    ----------
    names : iterable of str
        Type names as given to :func:`classify`.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``count`` and ``excluded`` (True when a rule deliberately left the name
        out, e.g. 药房), sorted by count (descending) then name. Empty names are skipped.
    """
    c = classify(names)
    c = c[c["category"].isna() & c["name"].map(lambda v: bool(normalise(v)) and normalise(v) != "nan")]
    if c.empty:
        return pd.DataFrame({"name": pd.Series([], dtype="object"), "count": pd.Series([], dtype="int64"),
                             "excluded": pd.Series([], dtype="bool")})
    c = c.assign(name=c["name"].astype(str), excluded=c["rule"].notna())
    rep = c.groupby("name", sort=False).agg(count=("name", "size"), excluded=("excluded", "first")).reset_index()
    rep = rep.sort_values(["count", "name"], ascending=[False, True], kind="stable").reset_index(drop=True)
    rep["count"] = rep["count"].astype("int64")
    return rep


def service_of(ftype: str) -> str:
    """Return the service key of a facility-type key (``KeyError`` if unknown)."""
    return FTYPES[ftype].service


def ftypes_of(service: str) -> list[str]:
    """Return the facility-type keys of a service, in display order."""
    return [k for k, t in FTYPES.items() if t.service == service]


__all__ = [
    "FTYPES",
    "SERVICES",
    "TIERS",
    "FacilityType",
    "Service",
    "classify",
    "ftypes_of",
    "normalise",
    "service_label",
    "service_of",
    "unmapped_report",
]
