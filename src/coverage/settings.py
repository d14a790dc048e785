"""Settings in one place: speeds, caps and defaults that every module reads.

Values follow ``shared/STANDARDS.md`` §1; a scenario or a standards preset may override them. Change
them here (or pass explicit arguments) rather than editing constants in other modules.
"""

from __future__ import annotations

#: Walking speed in km/h (STANDARDS §1).
WALK_KMH: float = 4.8
#: E-bike speed in km/h, common in rural China (STANDARDS §1).
EBIKE_KMH: float = 15.0
#: Drive speeds by OSM ``highway`` class in km/h (STANDARDS §1; rural Chinese roads are slow, so the
#: defaults are low rather than flattering). ``*_link`` classes take their parent's speed.
DRIVE_KMH: dict[str, float] = {
    "motorway": 100.0,
    "trunk": 80.0,
    "primary": 60.0,
    "secondary": 50.0,
    "tertiary": 40.0,
    "unclassified": 30.0,
    "residential": 30.0,
    "living_street": 15.0,
    "road": 30.0,
    "service": 15.0,
    "track": 15.0,
}
#: Chinese road classes → the OSM class whose speed (``DRIVE_KMH``) and walk/e-bike rules they take
#: (:func:`coverage.network.road_class`). Administrative classes (公路行政等级, GB/T 917 route
#: letters), technical grades (公路技术等级, JTG B01) and urban road classes (城市道路, CJJ 37).
#: 国道 is taken as ``primary``, not ``trunk`` (OSM China's usual tag): ordinary 国道 run through
#: towns and villages, where people walk along them, and ``trunk`` is closed to walking here.
#: Keys are matched as substrings, in this order (first match wins).
ROAD_CN_CLASS: dict[str, str] = {
    "高速": "motorway",
    "快速路": "trunk",
    "国道": "primary",
    "省道": "secondary",
    "县道": "tertiary",
    "乡道": "unclassified",
    "村道": "unclassified",
    "专用公路": "unclassified",
    "其他公路": "unclassified",
    "主干": "primary",
    "次干": "secondary",
    "支路": "residential",
    "一级": "primary",
    "二级": "secondary",
    "三级": "tertiary",
    "四级": "unclassified",
    "等外": "track",
    "机耕": "track",
    "乡村道路": "unclassified",
    "村村通": "unclassified",
}
#: Route-number letters (路线编号 ``ref``/``RN``, GB/T 917-2017 公路路线标识规则和国道编号) → class.
#: Expressways carry one or two digits or four digits (G4, G60, G4511, S15, S3111); other
#: routes three digits (G107, S302, X215, Y008, Z001, C123).
ROAD_REF_PREFIX: dict[str, str] = {
    "G": "国道",
    "S": "省道",
    "X": "县道",
    "Y": "乡道",
    "Z": "专用公路",
    "C": "村道",
    "Q": "其他公路",
}
#: First four digits of the national basic-geographic feature code (GB/T 13923 基础地理信息要素分类与
#: 代码; ``GB`` field of 1:1万–1:25万 DLG road layers ``LRDL``) → class, under 4200 城际公路. **Not
#: verified against the standard's text**: 4201, 4203, 4204, 4205 and 4208 agree with a public
#: mapping-bureau tool that turns route letters into GB codes (G 420101, X 420301, Y 420400,
#: Z 420500, C 420800); 4202 省道 is inferred from the order. Other codes (43xxxx 城市道路, 44xxxx
#: 乡村道路) are not mapped: use ``network.class_map``.
ROAD_GB_CODE: dict[str, str] = {
    "4201": "国道",
    "4202": "省道",
    "4203": "县道",
    "4204": "乡道",
    "4205": "专用公路",
    "4208": "村道",
}
#: Drive speed for a way whose class is missing or unknown (e.g. imagery-derived networks), km/h.
DRIVE_KMH_UNKNOWN: float = 30.0

#: Highway classes a pedestrian may use. Motorways and trunk roads are excluded from walking.
WALK_EXCLUDE: frozenset[str] = frozenset({"motorway", "motorway_link", "trunk", "trunk_link", "construction", "proposed", "raceway", "bus_guideway", "abandoned", "platform"})

#: Longest off-network leg (cell or facility → nearest road node), metres. Beyond it a cell is
#: reported as "no road access" (无道路可达), never silently dropped.
SNAP_MAX_M: float = 1000.0
#: Speed of the off-network leg, km/h (always on foot).
SNAP_KMH: float = WALK_KMH

#: Components of the road graph smaller than this many nodes are dropped (islands from clipping,
#: parking aisles). Demand and facilities are then snapped to the kept nodes only.
MIN_COMPONENT_NODES: int = 20

#: glibc malloc arenas of a ``covplan`` process (Linux; the command line sets it at start, the Python
#: API leaves the process alone; 0 = glibc's default of 8 per core). Worker threads (snapping,
#: nearest searches, service circles) otherwise allocate in arenas of their own, and memory freed
#: there is not reused by the main thread: at 1.1 M cells one arena keeps the peak 0.15 GB lower at
#: no measured cost in time.
MALLOC_ARENAS: int = 1

#: glibc malloc's mmap and trim thresholds in a ``covplan`` process (bytes; Linux; set with
#: ``MALLOC_ARENAS``; 0 = glibc's defaults, which move with the blocks freed). Blocks under 32 MiB
#: (a million cells' column is 9 MB) come from the heap, and freed memory stays with the process
#: for the next array instead of going back to the kernel, which would hand it out again as fresh
#: zeroed pages: at 1.1 M cells a quarter fewer page faults and 1–2 s less CPU, the peak unchanged
#: (memory is only returned at the end, and the peak is reached near the end).
MALLOC_MMAP_THRESHOLD: int = 32 << 20
MALLOC_TRIM_THRESHOLD: int = 1 << 30

#: Thresholds of Python's cyclic garbage collector (``gc.set_threshold``) in a ``covplan`` process
#: (the command line sets them at start, the Python API leaves the process alone; None = Python's
#: default, 700, 10, 10). A county's demand cells are a million point geometries, which the collector
#: tracks: with the default it walks all of them a dozen times while they are made and read (1.1 s
#: of a 16 s run at 1.1 M cells; the meeting mode freezes the model once built, see
#: :func:`coverage.cli.serve`). Reference counting still frees everything at once; only garbage in
#: reference cycles waits longer (as mypy does, 200 000 new objects between young collections).
GC_THRESHOLDS: tuple[int, int, int] | None = (200_000, 30, 30)

#: Uncovered people are summed into blocks of this size (metres) on the meeting map, to keep
#: map.html light; layers.gpkg keeps every cell.
MAP_BLOCK_M: float = 300.0

#: Default random seed of the synthetic demo county.
DEMO_SEED: int = 20261127

#: Age groups used throughout (column names of demand tables) with Chinese labels.
AGE_GROUPS: dict[str, str] = {
    "age0_2": "0–2岁",
    "age3_5": "3–5岁",
    "age6_11": "6–11岁",
    "age12_14": "12–14岁",
    "age60plus": "60岁及以上",
}

#: National age shares (share of all residents) used when a scenario gives no age groups and the
#: county's own 2020 census row is not available. They are the population-weighted mean of the
#: 2,990 county rows of the 2020 census tabulation (NBS 2022, via the tudigong tables; 5-year bands
#: split uniformly by single year, as :func:`coverage.io.census.age_shares` does). Check: the 60+
#: share comes out at 18.73 %, against the census communique's 18.70 %. Every figure computed from
#: them is marked as assumed (``warnings`` code ``assumed_age_shares``).
NATIONAL_AGE_SHARES: dict[str, float] = {
    "age0_2": 0.03187,
    "age3_5": 0.03617,
    "age6_11": 0.07540,
    "age12_14": 0.03628,
    "age60plus": 0.18728,
}

#: Input checks (warnings unless stated): the share of people without road access (more than
#: ``SNAP_MAX_M`` from any road) above which a run warns.
WARN_NO_ROAD_SHARE: float = 0.02
#: The share of people, or of facilities, on road components cut off from the main network above
#: which a run warns that the network may be broken.
WARN_CUT_OFF_SHARE: float = 0.05
#: Dangling road ends closer than this to another road's vertex (metres) count as "almost touching".
DANGLING_GAP_M: float = 25.0
#: Facilities of the same type and name closer than this (metres) are one facility listed twice.
DUPLICATE_FACILITY_M: float = 50.0
#: An age-group raster may exceed the total by this relative tolerance (resampling) before the run
#: refuses it (error) or warns (cell level).
GROUP_TOLERANCE: float = 0.02
#: No age group of ``AGE_GROUPS`` is this large a share of a county's people (the largest, 60+, is
#: below 40 % in every county of the 2020 census): a group raster above it is refused as the total.
MAX_GROUP_SHARE: float = 0.6


def kmh_to_m_per_min(kmh: float) -> float:
    """Convert km/h to metres per minute."""
    return kmh * 1000.0 / 60.0
