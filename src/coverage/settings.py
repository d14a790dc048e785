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
#: Drive speed for a way whose class is missing or unknown (e.g. imagery-derived networks), km/h.
DRIVE_KMH_UNKNOWN: float = 30.0

#: Highway classes a pedestrian may use. Motorways and trunk roads are excluded from walking.
WALK_EXCLUDE: frozenset[str] = frozenset({"motorway", "motorway_link", "trunk", "trunk_link", "construction", "proposed", "raceway", "bus_guideway", "abandoned", "platform"})
#: Highway classes a car may use (plus their ``*_link`` variants).
DRIVE_CLASSES: frozenset[str] = frozenset(DRIVE_KMH)

#: Longest off-network leg (cell or facility → nearest road node), metres. Beyond it a cell is
#: reported as "no road access" (无道路可达), never silently dropped.
SNAP_MAX_M: float = 1000.0
#: Speed of the off-network leg, km/h (always on foot).
SNAP_KMH: float = WALK_KMH

#: Components of the road graph smaller than this many nodes are dropped (islands from clipping,
#: parking aisles). Demand and facilities are then snapped to the kept nodes only.
MIN_COMPONENT_NODES: int = 20

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


def kmh_to_m_per_min(kmh: float) -> float:
    """Convert km/h to metres per minute."""
    return kmh * 1000.0 / 60.0
