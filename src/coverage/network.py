"""Road graphs for travel-time analysis: :class:`RoadGraph` and its builders.

A :class:`RoadGraph` is a directed graph held as NumPy arrays in compressed sparse row (CSR) form:
node coordinates ``x, y`` in one metric CRS, ``indptr``/``indices`` and two edge weights, ``minutes``
and ``metres``. Two-way roads are stored once in each direction. Nothing in the analysis touches
networkx; :meth:`RoadGraph.to_networkx` exists only for checks and plots.

Builders
--------
* :func:`read_osm` — OpenStreetMap ``.osm.pbf`` (through pyrosm) or ``.osm`` XML (through osmnx).
* :func:`read_lines` — a GPKG/SHP line layer, with an OSM ``highway`` or Geofabrik ``fclass`` road
  class field, or with no class at all (imagery-derived networks). Lines are joined where they share
  a vertex (coordinates equal after rounding to ``snap_m``, default 1 cm, in the metric CRS) and split
  at every shared vertex and at every line end.
* :func:`from_lines` — the same from lines already read (:func:`coverage.io.roads.read_road_lines`;
  ``covplan run`` reads the road file once, in the inputs stage); every mode in one call, the
  mode-independent work done once.
* :func:`from_graphml`, :func:`from_networkx` — osmnx-style MultiDiGraphs.
* :func:`from_edges` — plain arrays (used by the builders above and by tests).

Modes and speeds (``coverage.settings``; override with ``speeds=``)
-------------------------------------------------------------------
* ``walk``: every way whose class is not in ``settings.WALK_EXCLUDE``, both directions, at
  ``settings.WALK_KMH``. One-way tags are ignored (pedestrians may walk both ways).
* ``ebike``: every walkable or drivable way except motorways (``WALK_EXCLUDE`` minus trunk roads),
  both directions, at ``settings.EBIKE_KMH``.
* ``drive``: classes in ``settings.DRIVE_KMH`` and their ``*_link`` variants, at the tagged
  ``maxspeed`` where it parses ("50", "50 km/h", "30 mph"; "0", "none", "RU:urban" do not) and the class
  speed otherwise; ways with no class at all drive at ``settings.DRIVE_KMH_UNKNOWN``. One-way tags are
  respected: ``yes/true/1`` (and ``junction=roundabout``) forward, ``-1/reverse`` backward,
  ``no/false/0`` both; in Geofabrik layers (values only ``F``/``T``/``B``) ``F`` = forward, ``T`` =
  against the line direction, ``B`` = both.

``speeds`` maps a mode name (``"walk"``, ``"ebike"``) or a drive class (``"primary"``, …, and
``"unknown"``) to km/h.

Parallel edges between the same pair of nodes keep only the quickest (least ``minutes``) one.

Components (the rule)
---------------------
Weakly connected components are computed with ``scipy.sparse.csgraph.connected_components``
(``connection="weak"``). Components with fewer than ``settings.MIN_COMPONENT_NODES`` nodes are
dropped (islands from clipping, parking aisles), except that the largest component is always kept.
Nodes used by no edge of the mode are removed first. Kept components are labelled 0, 1, … from the
largest (ties: lowest node number first) in ``RoadGraph.component``; counts are in
:meth:`RoadGraph.summary` and in an INFO log line. Demand and facilities are snapped onto the road
segments of kept components only (:func:`segment_index`, :func:`coverage.access.snap`).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS, Transformer

from coverage import settings
from coverage.crs import local_metric_crs
from coverage.errors import InputError
from coverage.io.roads import CLASS_FIELDS, RoadLines, find_class_field, read_road_lines, transform_vertices
from coverage.io.roads import CN_CLASS_FIELDS as CN_CLASS_FIELDS  # re-exported (network.CN_CLASS_FIELDS)

log = logging.getLogger(__name__)

MODES = ("walk", "ebike", "drive")
#: Classes a ``class_map`` may map to besides ``settings.DRIVE_KMH`` (walk-only or no-car ways).
WALK_ONLY_CLASSES = ("footway", "path", "pedestrian", "steps", "cycleway", "bridleway")
#: Class values that mean "no class" (the way is then treated like an unclassified line).
_NO_CLASS = {"", "unknown", "none", "nan", "null"}


# --------------------------------------------------------------------------------------------------
# the graph
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class RoadGraph:
    """A directed road graph in CSR form (NumPy arrays only).

    Attributes
    ----------
    x, y : ndarray of float64
        Node coordinates in the metric CRS ``crs``.
    indptr : ndarray of int64
        CSR row pointer, length ``n_nodes + 1``; the edges leaving node ``u`` are
        ``indptr[u]:indptr[u+1]``.
    indices : ndarray of int64
        Head node of each edge.
    minutes, metres : ndarray of float64
        Travel time and length of each edge.
    mode : {"walk", "ebike", "drive"}
    crs : pyproj.CRS
        The metric CRS of ``x, y``.
    component : ndarray of int32
        Weak-component label of each node (0 = largest).
    osmid : ndarray or None
        Source node id (OSM id where known).
    stats : dict
        Build figures reported by :meth:`summary`.
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    minutes: NDArray[np.float64]
    metres: NDArray[np.float64]
    mode: str
    crs: CRS
    component: NDArray[np.int32]
    osmid: NDArray | None = None
    stats: dict = field(default_factory=dict)
    _tree: Any = field(default=None, repr=False)  # SegmentIndex for snapping (lazy, segment_index())
    _ws: Any = field(default=None, repr=False)  # search workspace of coverage.access (lazy)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.x.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of directed edges."""
        return int(self.indices.shape[0])

    def weights(self, weight: str = "minutes") -> NDArray[np.float64]:
        """Return the edge weight array ``"minutes"`` or ``"metres"``."""
        if weight == "minutes":
            return self.minutes
        if weight in ("metres", "meters", "length"):
            return self.metres
        raise ValueError(f"unknown weight {weight!r}; use 'minutes' or 'metres'")

    def tails(self) -> NDArray[np.int64]:
        """Tail node of every edge (the CSR row expanded)."""
        return np.repeat(np.arange(self.n_nodes, dtype=np.int64), np.diff(self.indptr))

    def csr(self, weight: str = "minutes"):
        """The graph as a ``scipy.sparse.csr_array`` of shape ``(n_nodes, n_nodes)``.

        Parameters
        ----------
        weight : {"minutes", "metres"}

        Returns
        -------
        scipy.sparse.csr_array
            Row = tail, column = head, data = weight. No duplicate entries.
        """
        from scipy.sparse import csr_array

        n = self.n_nodes
        return csr_array((self.weights(weight), self.indices, self.indptr), shape=(n, n))

    def to_networkx(self):
        """The graph as a ``networkx.DiGraph`` with node ``x, y`` and edge ``minutes, metres``.

        For checks and plots only; the analysis never uses networkx.
        """
        import networkx as nx

        G = nx.DiGraph(crs=self.crs, mode=self.mode)
        G.add_nodes_from(
            (i, {"x": float(self.x[i]), "y": float(self.y[i])}) for i in range(self.n_nodes)
        )
        u = self.tails()
        G.add_edges_from(
            (int(a), int(b), {"minutes": float(t), "metres": float(m)})
            for a, b, t, m in zip(u, self.indices, self.minutes, self.metres)
        )
        return G

    def edges_gdf(self):
        """The edges as a GeoDataFrame of straight segments (``u, v, minutes, metres``)."""
        import geopandas as gpd
        import shapely

        u = self.tails()
        v = self.indices
        coords = np.empty((len(u), 2, 2))
        coords[:, 0, 0], coords[:, 0, 1] = self.x[u], self.y[u]
        coords[:, 1, 0], coords[:, 1, 1] = self.x[v], self.y[v]
        geom = shapely.linestrings(coords)
        return gpd.GeoDataFrame(
            {"u": u, "v": v, "minutes": self.minutes, "metres": self.metres},
            geometry=geom,
            crs=self.crs,
        )

    def length_km(self) -> float:
        """Length of the road network in km, counting a two-way road once."""
        u = self.tails()
        v = self.indices
        n = max(self.n_nodes, 1)
        key = np.minimum(u, v).astype(np.int64) * n + np.maximum(u, v)
        order = np.lexsort((self.metres, key))
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        return float(self.metres[order][first].sum() / 1000.0)

    def summary(self) -> dict:
        """Key figures: nodes, edges, km, components kept and dropped, mode, CRS."""
        out = {
            "mode": self.mode,
            "crs": self.crs.to_string(),
            "nodes": self.n_nodes,
            "edges": self.n_edges,
            "length_km": round(self.length_km(), 3),
            "components_kept": int(self.component.max()) + 1 if self.n_nodes else 0,
        }
        out.update(self.stats)
        return out


# --------------------------------------------------------------------------------------------------
# tag parsing
# --------------------------------------------------------------------------------------------------

_SPEED_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?", re.IGNORECASE)


def parse_maxspeed(values: Iterable[Any]) -> NDArray[np.float64]:
    """Parse OSM ``maxspeed`` values to km/h (NaN where unknown).

    Accepts numbers and strings such as ``"50"``, ``"50 km/h"``, ``"30 mph"``, ``"50;60"`` (first
    value) and lists (first parseable). ``0``, ``"none"``, ``"signals"``, ``"RU:urban"`` → NaN.

    Parameters
    ----------
    values : array_like

    Returns
    -------
    ndarray of float64
    """
    if isinstance(values, np.ndarray):  # each distinct value parsed once
        raw, codes, _ = _distinct(values)
        if len(raw) < len(codes):
            return np.append(parse_maxspeed(raw), np.nan)[codes]
    vals = list(values) if not isinstance(values, (str, bytes)) else [values]
    out = np.full(len(vals), np.nan)
    for i, v in enumerate(vals):
        if isinstance(v, (list, tuple)):
            v = next((w for w in v if w is not None), None)
        if v is None:
            continue
        if isinstance(v, (int, float, np.integer, np.floating)):
            f = float(v)
            if math.isfinite(f) and f > 0:
                out[i] = f
            continue
        m = _SPEED_RE.match(str(v))
        if m:
            f = float(m.group(1))
            if m.group(2) and m.group(2).lower() == "mph":
                f *= 1.609344
            if f > 0:
                out[i] = f
    return out


def parse_oneway(values: Iterable[Any], junction: Iterable[Any] | None = None) -> NDArray[np.int8]:
    """Parse one-way tags to ``1`` (forward only), ``-1`` (backward only) or ``0`` (both ways).

    OSM: ``yes/true/1`` → 1, ``-1/reverse`` → -1, anything else → 0; ``junction=roundabout`` implies 1
    where ``oneway`` is not set. Geofabrik (all values in ``F/T/B``): ``F`` → 1, ``T`` → -1, ``B`` → 0.
    Booleans: True → 1.

    Parameters
    ----------
    values : array_like
    junction : array_like, optional

    Returns
    -------
    ndarray of int8
    """
    if junction is None and isinstance(values, np.ndarray):  # each distinct value parsed once
        raw, codes, _ = _distinct(values)
        if len(raw) < len(codes):
            return np.append(parse_oneway(raw), np.int8(0))[codes]
    s = pd.Series(list(values), dtype=object)
    txt = s.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    txt = txt.str.strip().str.lower()
    nonempty = set(txt[txt != ""].unique())
    out = np.zeros(len(s), dtype=np.int8)
    if nonempty and nonempty <= {"f", "t", "b"}:
        out[(txt == "f").to_numpy()] = 1
        out[(txt == "t").to_numpy()] = -1
    else:
        out[txt.isin(["yes", "true", "1", "t", "y"]).to_numpy()] = 1
        out[txt.isin(["-1", "reverse"]).to_numpy()] = -1
    if junction is not None:
        j = pd.Series(list(junction), dtype=object).astype(str).str.lower().to_numpy()
        out[(txt == "").to_numpy() & (j == "roundabout")] = 1
    return out


def _clean_class(values: Iterable[Any]) -> NDArray:
    """Road classes as lower-case str, ``""`` for no class; lists take their first element."""
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append("")
            continue
        t = str(v).strip().lower()
        out.append("" if t in _NO_CLASS else t)
    return np.asarray(out, dtype=object)


def _distinct(values: Iterable[Any]) -> tuple[list, NDArray[np.intp], NDArray[np.int64]]:
    """``(distinct values, code of each value, count of each distinct value)``; code -1 = missing.

    Strings (with ``None``/NaN for missing) and plain numbers are grouped with :func:`pandas.factorize`
    (in order of first appearance); anything else (lists, mixed types, where ``1 == 1.0 == True``
    would merge values that print differently) is kept one value per entry.
    """
    arr = values if isinstance(values, np.ndarray) else None
    if arr is not None and arr.ndim == 1 and (
        arr.dtype.kind in "iufbUS"
        or (arr.dtype == object and pd.api.types.infer_dtype(arr, skipna=True) in ("string", "empty"))
    ):
        codes, uniq = pd.factorize(arr, use_na_sentinel=True)
        counts = np.bincount(codes[codes >= 0], minlength=len(uniq)).astype(np.int64)
        return list(uniq), np.asarray(codes, dtype=np.intp), counts
    raw = list(values)
    return raw, np.arange(len(raw), dtype=np.intp), np.ones(len(raw), dtype=np.int64)


_REF = re.compile(r"^([GSXYZCQ])\s*(\d+)")
_GB = re.compile(r"^(\d{4})\d{2}(?:\.0+)?$")


def _cn_class(value: str) -> str | None:
    """OSM class of one Chinese road-class value (GB code, route number or name), or None."""
    v = value.strip()
    m = _GB.match(v)
    if m:
        name = settings.ROAD_GB_CODE.get(m.group(1))
        return None if name is None else _cn_class(name)
    best: str | None = None
    for part in re.split(r"[;；,，/、\s]+", v.upper()):
        m = _REF.match(part)
        if m is None:
            continue
        letter, digits = m.groups()
        cls: str | None
        if letter in "GS" and len(digits) in (1, 2, 4):
            cls = "motorway"  # national / provincial expressway (G4, G4511, S15)
        else:
            cls = _cn_class(settings.ROAD_REF_PREFIX[letter])
        # several route numbers on one way ("G107;S256"): the higher class
        if cls is not None and (best is None or _RANK.index(cls) < _RANK.index(best)):
            best = cls
    if best is not None:
        return best
    for key, name_cls in settings.ROAD_CN_CLASS.items():
        if key in v:
            return name_cls
    return None


_RANK = ("motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential", "track")


def road_class(
    values: Iterable[Any],
    class_map: dict[Any, str] | None = None,
    osm: bool = True,
    field: str | None = None,
    file: str | Path | None = None,
) -> NDArray:
    """Turn a road class, route-number or code field into the OSM classes that carry speeds.

    Order per value: the user's ``class_map`` (``network.class_map`` in the scenario; keys compared
    as text, case ignored); then, for an OSM field (``osm=True``: ``highway``, ``fclass``), the
    value itself; otherwise a GB/T 13923 code (``420101`` → 国道, :data:`settings.ROAD_GB_CODE`), a
    route number (``G107``, ``S302``, ``X215``; :data:`settings.ROAD_REF_PREFIX`; expressways
    ``G4``/``G4511``/``S15`` → ``motorway``) or a Chinese class name (国道, 县道, 二级公路, 支路;
    :data:`settings.ROAD_CN_CLASS`). Values of a Chinese field that none of these recognise get no
    class (walkable, driven at ``settings.DRIVE_KMH_UNKNOWN``) and are logged as a warning.

    Parameters
    ----------
    values : array-like
        The field's values (str, numbers or None).
    class_map : dict, optional
        ``{value: class}``; a class is a key of ``settings.DRIVE_KMH``, a ``*_link`` of one, a
        walk-only class (:data:`WALK_ONLY_CLASSES`) or ``"unknown"``.
    osm : bool
        True when the field holds OSM classes (kept as they are).
    field, file : optional
        Named in messages.

    Returns
    -------
    numpy.ndarray
        Lower-case OSM class per value, ``""`` for no class.

    Raises
    ------
    InputError
        A ``class_map`` value that is not a known class.
    """
    links = {f"{c}_link" for c in ("motorway", "trunk", "primary", "secondary", "tertiary")}
    allowed = set(settings.DRIVE_KMH) | links | set(WALK_ONLY_CLASSES) | {"unknown"}
    cmap: dict[str, str] = {}
    for k, c in (class_map or {}).items():
        c2 = str(c).strip().lower()
        if c2 not in allowed:
            raise InputError(
                zh=f"network.class_map 中“{k}: {c}”的道路等级未知。可用：{', '.join(sorted(allowed))}。",
                en=f"network.class_map maps {k!r} to the unknown class {c!r}; use one of: {', '.join(sorted(allowed))}.",
                file=file, field="network.class_map",
            )
        cmap[str(k).strip().lower()] = "" if c2 == "unknown" else c2
    # each distinct value is classified once (a layer has a handful of classes, not one per way)
    raw, codes, counts = _distinct(values)
    cleaned = _clean_class(raw)
    res = np.empty(len(raw) + 1, dtype=object)
    res[-1] = ""  # code -1: a missing value
    cache: dict[str, str] = {}
    unknown: dict[str, int] = {}
    for i, (v, c) in enumerate(zip(raw, cleaned)):
        if c == "":
            res[i] = ""
            continue
        if isinstance(v, float) and v.is_integer():
            c = str(int(v))  # codes read as numbers: 420101.0
        if c in cmap:
            res[i] = cmap[c]
        elif osm or c in allowed or c in settings.WALK_EXCLUDE:
            res[i] = c  # OSM field, or an OSM class in another field (Overture ``class``)
        else:
            if c not in cache:
                cache[c] = _cn_class(str(c)) or ""
                if cache[c] == "":
                    unknown[c] = 0
            res[i] = cache[c]
            if c in unknown:
                unknown[c] += int(counts[i])
    out = res[codes]
    if unknown:
        top = ", ".join(f"{k}×{n}" for k, n in sorted(unknown.items(), key=lambda kv: -kv[1])[:8])
        log.warning(
            "%s%s: %d road(s) of unrecognised class (%s) are driven at %g km/h; map them with "
            "network.class_map / 无法识别的道路等级按 %g km/h 处理，可在 network.class_map 中指定",
            Path(str(file)).name + " " if file else "", field or "", sum(unknown.values()), top,
            settings.DRIVE_KMH_UNKNOWN, settings.DRIVE_KMH_UNKNOWN,
        )
    return out


def _mode_speeds(
    mode: str, cls: NDArray, maxspeed: NDArray[np.float64], speeds: dict | None
) -> NDArray[np.float64]:
    """km/h per way for ``mode``; NaN where the way is not usable in that mode.

    The class speeds are looked up once per distinct class (:func:`_class_speeds`), then a drive
    way's parsed ``maxspeed`` replaces its class speed.
    """
    cls = np.asarray(cls, dtype=object)
    codes, uniq = pd.factorize(cls, use_na_sentinel=True)
    if len(cls) and (codes < 0).any():  # not the str classes of road_class / _clean_class
        return _class_speeds(mode, cls, maxspeed, speeds)
    base = _class_speeds(mode, np.asarray(uniq, dtype=object), np.full(len(uniq), np.nan), speeds)
    kmh = base[codes]
    if mode == "drive":
        tagged = np.isfinite(maxspeed) & np.isfinite(kmh)
        kmh[tagged] = maxspeed[tagged]
    return kmh


def _class_speeds(
    mode: str, cls: NDArray, maxspeed: NDArray[np.float64], speeds: dict | None
) -> NDArray[np.float64]:
    """km/h per way for ``mode`` (one entry per way); NaN where the way is not usable in that mode."""
    speeds = dict(speeds or {})
    n = len(cls)
    kmh = np.full(n, np.nan)
    no_class = cls == ""
    if mode == "walk":
        ok = no_class | ~np.isin(cls, list(settings.WALK_EXCLUDE))
        kmh[ok] = float(speeds.get("walk", settings.WALK_KMH))
    elif mode == "ebike":
        exclude = set(settings.WALK_EXCLUDE) - {"trunk", "trunk_link"}
        ok = no_class | ~np.isin(cls, list(exclude))
        kmh[ok] = float(speeds.get("ebike", settings.EBIKE_KMH))
    elif mode == "drive":
        table = dict(settings.DRIVE_KMH)
        table.update({k: float(v) for k, v in speeds.items() if k not in MODES})
        unknown = float(table.pop("unknown", settings.DRIVE_KMH_UNKNOWN))
        base = np.array([c[:-5] if c.endswith("_link") else c for c in cls], dtype=object)
        for c, v in table.items():
            kmh[base == c] = v
        kmh[no_class] = unknown
        tagged = np.isfinite(maxspeed) & np.isfinite(kmh)
        kmh[tagged] = maxspeed[tagged]
    else:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    return kmh


# --------------------------------------------------------------------------------------------------
# segment index for snapping onto roads
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class SegmentIndex:
    """The road segments of a :class:`RoadGraph` and a spatial index to find the nearest one.

    A segment is an undirected pair of nodes joined by an edge in at least one direction, drawn as the
    straight line between them (the graph keeps no curved geometry). Built by :func:`segment_index`.

    The spatial index is a dense bucket grid over *index points*: the nodes (standing for the
    segments ending there) followed by the midpoints of the pieces of long segments. The grid has at
    most ``max(2 × index points, 1024)`` buckets (their side grows where the extent would need
    more), so memory is linear in the number of index points.

    Attributes
    ----------
    a, b : ndarray of int32
        End nodes of each segment; positions along it are measured from ``a`` (0) to ``b`` (1).
    e_ab, e_ba : ndarray of int32
        CSR position of the edge ``a → b`` / ``b → a``, -1 where that direction is not allowed.
    node_ptr, node_seg : ndarray of int64 / int32
        CSR index node → segments ending there.
    piece_seg : ndarray of int32
        Segment of each extra index point (index point ``n_nodes + i``).
    px, py : ndarray of float64
        Coordinates of the index points (nodes first).
    reach : float
        Every point of a segment lies within ``reach`` metres of an index point of that segment.
    x0, y0, cell : float
        Origin and side of the bucket grid; bucket ``(i, j)`` holds ``x0 + i·cell <= x < x0 + (i+1)·cell``.
    nx, ny : int
        Number of bucket columns and rows (a bucket's key is ``i * ny + j``).
    ptr, order : ndarray of int32
        Bucket ``k`` holds index points ``order[ptr[k]:ptr[k+1]]`` (``ptr`` has ``nx * ny + 1`` entries).
    """

    a: NDArray[np.int32]
    b: NDArray[np.int32]
    e_ab: NDArray[np.int32]
    e_ba: NDArray[np.int32]
    node_ptr: NDArray[np.int64]
    node_seg: NDArray[np.int32]
    piece_seg: NDArray[np.int32]
    px: NDArray[np.float64]
    py: NDArray[np.float64]
    reach: float
    x0: float
    y0: float
    cell: float
    nx: int
    ny: int
    ptr: NDArray[np.int32]
    order: NDArray[np.int32]

    @property
    def n_segments(self) -> int:
        """Number of segments."""
        return int(self.a.shape[0])


#: Smallest bucket side of :func:`segment_index` (CRS units; it changes the work, never the answer).
_MIN_BUCKET = 1e-3


def segment_index(graph: RoadGraph) -> SegmentIndex:
    """The :class:`SegmentIndex` of ``graph`` (built on first use and cached on the graph).

    Segments no longer than ``L = max(mean length, 2 × median length)`` are found through their end
    nodes (a point of such a segment is within ``L / 2`` of one end); longer ones are also cut into
    ``ceil(length / L)`` equal pieces whose midpoints are indexed. So the index holds at most
    ``n_nodes + 2 × n_segments`` points (memory linear in the graph) and ``reach <= L / 2``; on an
    urban graph with no long segments the index points are the nodes. The buckets have side ``L``,
    or an integer multiple of it where the extent would otherwise need more than twice as many
    buckets as index points (a dense grid: 4 bytes per bucket, no search for a bucket's entries).
    O(n + m log m) time (one sort of the bucket keys).

    Parameters
    ----------
    graph : RoadGraph

    Returns
    -------
    SegmentIndex
    """
    idx = graph._tree
    if isinstance(idx, SegmentIndex):
        return idx
    from coverage import _kernels

    if graph.n_edges + graph.n_nodes >= 2**31 - 1:
        raise ValueError("graph too large for the segment index (2**31 nodes + edges)")
    a, b, e_ab, e_ba, node_ptr, node_seg = _kernels.build_segments(graph.indptr, graph.indices, graph.n_nodes)
    length = np.hypot(graph.x[b] - graph.x[a], graph.y[b] - graph.y[a])
    real = length > 0
    if real.any():
        L = max(float(length[real].mean()), 2.0 * float(np.median(length[real])))
    else:
        L = 1.0
    # buckets no smaller than a millimetre: roads a hair's breadth long (1e-300 m apart) made the
    # buckets so small that a point metres away fell outside any bucket index and found no road
    L = max(L, _MIN_BUCKET)
    long_ = length > L
    reach = float(length[~long_].max(initial=0.0)) / 2.0
    px, py = graph.x, graph.y
    piece_seg = np.zeros(0, dtype=np.int32)
    if long_.any():
        ls = np.flatnonzero(long_)
        m = np.ceil(length[ls] / L).astype(np.int64)
        reach = max(reach, float((length[ls] / m).max()) / 2.0)
        piece_seg = np.repeat(ls, m).astype(np.int32)
        start = np.cumsum(m) - m
        frac = (np.arange(int(m.sum())) - np.repeat(start, m) + 0.5) / np.repeat(m, m)
        xa, ya = graph.x[a[piece_seg]], graph.y[a[piece_seg]]
        px = np.concatenate([graph.x, xa + frac * (graph.x[b[piece_seg]] - xa)])
        py = np.concatenate([graph.y, ya + frac * (graph.y[b[piece_seg]] - ya)])
    x0 = float(px.min()) if len(px) else 0.0
    y0 = float(py.min()) if len(py) else 0.0
    w = float(px.max()) - x0 if len(px) else 0.0
    h = float(py.max()) - y0 if len(py) else 0.0
    # a dense grid of buckets of side L, or k·L where that would hold more buckets than twice the
    # index points (memory stays linear: 4 bytes per bucket)
    most = max(2 * len(px), 1024)
    k = max(1.0, math.floor(math.sqrt((w / L + 1.0) * (h / L + 1.0) / most)))
    while (math.floor(w / (k * L)) + 1) * (math.floor(h / (k * L)) + 1) > most:
        k += 1.0
    cell = k * L
    nx = int(math.floor(w / cell)) + 1
    ny = int(math.floor(h / cell)) + 1
    px = np.ascontiguousarray(px, dtype=np.float64)
    py = np.ascontiguousarray(py, dtype=np.float64)
    ptr, order = _kernels.bucket_grid(px, py, x0, y0, cell, nx, ny)
    idx = SegmentIndex(a=a, b=b, e_ab=e_ab, e_ba=e_ba, node_ptr=node_ptr, node_seg=node_seg, piece_seg=piece_seg,
                       px=px, py=py,
                       reach=reach, x0=x0, y0=y0, cell=cell, nx=nx, ny=ny, ptr=ptr, order=order)
    graph._tree = idx
    return idx


# --------------------------------------------------------------------------------------------------
# the common builder
# --------------------------------------------------------------------------------------------------


def _components(indptr, indices, n):
    """Weak components: ``(n_components, labels)`` (compiled union–find; far less memory than ``scipy.sparse.csgraph.connected_components``, which copies the graph to float64)."""
    from coverage import _kernels

    nc, labels = _kernels.weak_components(indptr, indices, int(n))
    return int(nc), labels


def from_edges(  # noqa: PLR0913 - issue 11: to narrow/split
    x: ArrayLike,
    y: ArrayLike,
    u: ArrayLike,
    v: ArrayLike,
    minutes: ArrayLike,
    metres: ArrayLike,
    mode: str = "walk",
    crs: Any = None,
    min_component_nodes: int | None = None,
    osmid: ArrayLike | None = None,
    drop_unused: bool = False,
    stats: dict | None = None,
) -> RoadGraph:
    """Build a :class:`RoadGraph` from directed edge arrays (node coordinates already metric).

    Self-loops are dropped; parallel edges keep the one with the least ``minutes``. Then the
    component rule of the module docstring applies.

    Parameters
    ----------
    x, y : array_like
        Node coordinates in ``crs``.
    u, v : array_like of int
        Tail and head node numbers of each directed edge.
    minutes, metres : array_like of float
        Edge weights (non-negative).
    mode : {"walk", "ebike", "drive"}
    crs : CRS-like, optional
        Metric CRS of ``x, y`` (default EPSG:3857 only as a label for synthetic graphs).
    min_component_nodes : int, optional
        Default ``settings.MIN_COMPONENT_NODES``; ``1`` keeps every node.
    osmid : array_like, optional
        Source ids of the nodes.
    drop_unused : bool
        Remove nodes that no edge uses before the component rule.
    stats : dict, optional
        Extra figures for :meth:`RoadGraph.summary`.

    Returns
    -------
    RoadGraph
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    minutes = np.asarray(minutes, dtype=np.float64)
    metres = np.asarray(metres, dtype=np.float64)
    if not (len(u) == len(v) == len(minutes) == len(metres)):
        raise ValueError("u, v, minutes and metres must have the same length")
    if len(u) and (min(u.min(), v.min()) < 0 or max(u.max(), v.max()) >= len(x)):
        raise ValueError("edge end outside the node arrays")
    if np.any(~np.isfinite(minutes)) or np.any(minutes < 0) or np.any(metres < 0):
        raise ValueError("edge weights must be finite and non-negative")
    mode = str(mode)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    crs = CRS.from_user_input(crs) if crs is not None else CRS.from_epsg(3857)
    min_n = settings.MIN_COMPONENT_NODES if min_component_nodes is None else int(min_component_nodes)
    stats = dict(stats or {})
    osmid = None if osmid is None else np.asarray(osmid)

    n = len(x)
    keep: NDArray[np.bool_] = u != v
    if not keep.all():
        u, v, minutes, metres = u[keep], v[keep], minutes[keep], metres[keep]
    del keep

    # sort edges by (tail, head, minutes, metres) and keep the first of each (tail, head): the
    # quickest of parallel edges; this order is already the CSR order. Temporaries are freed as soon
    # as they are used (a 1 M-node, 4 M-edge graph must build in well under 1 GB).
    key = u * max(n, 1) + v
    order = np.lexsort((metres, minutes, key))
    key = key[order]
    first = np.empty(len(key), dtype=bool)
    first[:1] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    del key
    sel = order if first.all() else order[first]
    del order, first
    tail = u[sel]
    indices = v[sel]
    minutes = minutes[sel]
    metres = metres[sel]
    del sel, u, v
    return _from_csr_edges(x, y, tail, indices, minutes, metres, mode, crs, min_n, osmid, drop_unused, stats)


def _from_csr_edges(  # noqa: PLR0913
    x: NDArray[np.float64], y: NDArray[np.float64], tail: NDArray[np.int64], indices: NDArray[np.int64],
    minutes: NDArray[np.float64], metres: NDArray[np.float64], mode: str, crs: CRS, min_n: int,
    osmid: NDArray | None, drop_unused: bool, stats: dict,
) -> RoadGraph:
    """The tail of :func:`from_edges`: edges already without self-loops and parallels, in CSR order (by tail, then head)."""
    n = len(x)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(tail, minlength=n), out=indptr[1:])

    node_keep = np.ones(n, dtype=bool)
    if drop_unused:
        node_keep[:] = False
        node_keep[tail] = True
        node_keep[indices] = True

    # components on the nodes still in play
    n_comp, labels = _components(indptr, indices, n)
    sizes = np.bincount(labels, weights=node_keep.astype(np.float64), minlength=n_comp).astype(np.int64)
    real = sizes > 0
    comp_ok = sizes >= min_n
    if real.any() and not comp_ok.any():
        comp_ok[int(np.argmax(sizes))] = True  # always keep the largest
    node_keep &= comp_ok[labels]
    stats.setdefault("nodes_in", int(n))
    stats["components_total"] = int(real.sum())
    stats["components_dropped"] = int((real & ~comp_ok).sum())
    stats["nodes_dropped_small_components"] = int(sizes[real & ~comp_ok].sum())
    stats["min_component_nodes"] = int(min_n)

    n2 = int(node_keep.sum())
    if n2 < n:
        # renumbering is monotone, so the kept edges stay in CSR order
        new_id = np.full(n, -1, dtype=np.int64)
        new_id[node_keep] = np.arange(n2)
        ekeep = node_keep[tail]
        ekeep &= node_keep[indices]
        tail = new_id[tail[ekeep]]
        indices = new_id[indices[ekeep]]
        minutes, metres = minutes[ekeep], metres[ekeep]
        del new_id, ekeep
        indptr = np.zeros(n2 + 1, dtype=np.int64)
        np.cumsum(np.bincount(tail, minlength=n2), out=indptr[1:])
    del tail
    v2 = indices

    # relabel kept components: 0 = largest, ties by lowest node
    old_lab = labels[node_keep]
    comp_ids, first_node, inverse = np.unique(old_lab, return_index=True, return_inverse=True)
    csize = np.bincount(inverse)
    rank_order = np.lexsort((first_node, -csize))
    rank = np.empty(len(comp_ids), dtype=np.int32)
    rank[rank_order] = np.arange(len(comp_ids), dtype=np.int32)
    component = rank[inverse].astype(np.int32)

    g = RoadGraph(
        x=np.ascontiguousarray(x[node_keep]),
        y=np.ascontiguousarray(y[node_keep]),
        indptr=indptr,
        indices=np.ascontiguousarray(v2),
        minutes=np.ascontiguousarray(minutes),
        metres=np.ascontiguousarray(metres),
        mode=mode,
        crs=crs,
        component=component,
        osmid=None if osmid is None else osmid[node_keep],
        stats=stats,
    )
    if stats.get("components_dropped"):
        log.info(
            "road graph (%s): kept %d components (%d nodes), dropped %d components smaller than %d nodes",
            mode, len(comp_ids), n2, stats["components_dropped"], min_n,
        )
    return g


def _resolve_crs(lon: NDArray, lat: NDArray, crs: Any) -> CRS:
    if crs is not None:
        c = CRS.from_user_input(crs)
        if c.is_geographic:
            raise InputError(
                zh=f"路网的内部坐标系必须是投影坐标系（米），而不是 {c.to_string()}。",
                en=f"the internal road CRS must be metric (projected), not {c.to_string()}.",
                field="crs",
            )
        return c
    if len(lon) == 0:
        raise InputError(zh="路网中没有任何道路。", en="the road network has no roads.")
    clon = (np.nanmin(lon) + np.nanmax(lon)) / 2.0
    clat = (np.nanmin(lat) + np.nanmax(lat)) / 2.0
    return local_metric_crs(float(clon), float(clat))


def _project(lon: NDArray, lat: NDArray, src: Any, dst: CRS) -> tuple[NDArray, NDArray]:
    t = Transformer.from_crs(CRS.from_user_input(src), dst, always_xy=True)
    x, y = t.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _from_ways(  # noqa: PLR0913 - issue 11: to narrow/split
    node_x: NDArray,
    node_y: NDArray,
    node_crs: Any,
    u: NDArray,
    v: NDArray,
    metres: NDArray | None,
    cls: NDArray,
    oneway: NDArray,
    maxspeed: NDArray,
    mode: str,
    crs: Any,
    speeds: dict | None,
    min_component_nodes: int | None,
    osmid: NDArray | None = None,
    source: str = "",
    already_directed: bool = False,
) -> RoadGraph:
    """Undirected (or already directed) ways between node numbers → RoadGraph for ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    node_crs = CRS.from_user_input(node_crs)
    if crs is not None:
        dst = _resolve_crs(np.empty(0), np.empty(0), crs)  # the lon/lat of the nodes are not needed
    else:
        if node_crs.is_geographic:
            lon, lat = node_x, node_y
        else:
            lon, lat = _project(node_x, node_y, node_crs, CRS.from_epsg(4326))
        used = np.zeros(len(node_x), dtype=bool)
        used[u] = True
        used[v] = True
        dst = _resolve_crs(lon[used], lat[used], crs)
    if node_crs.equals(dst):
        x, y = np.asarray(node_x, float), np.asarray(node_y, float)
    else:
        x, y = _project(node_x, node_y, node_crs, dst)
    if metres is None:
        metres = np.hypot(x[u] - x[v], y[u] - y[v])
    metres = np.asarray(metres, dtype=np.float64)
    kmh = _mode_speeds(mode, cls, np.asarray(maxspeed, dtype=np.float64), speeds)
    ok = np.isfinite(kmh) & (kmh > 0) & np.isfinite(metres)
    minutes = metres / (kmh * 1000.0 / 60.0)
    if mode == "drive":
        ow = np.zeros(len(u), dtype=np.int8) if already_directed else np.asarray(oneway, np.int8)
        if already_directed:
            ow[:] = 1
    else:
        ow = np.zeros(len(u), dtype=np.int8)
    fwd = ok & (ow >= 0)
    bwd = ok & (ow <= 0)
    uu = np.concatenate([u[fwd], v[bwd]])
    vv = np.concatenate([v[fwd], u[bwd]])
    mm = np.concatenate([minutes[fwd], minutes[bwd]])
    ll = np.concatenate([metres[fwd], metres[bwd]])
    stats = {"source": source, "ways_in": int(len(u)), "ways_used": int(ok.sum())}
    g = from_edges(
        x, y, uu, vv, mm, ll, mode=mode, crs=dst, min_component_nodes=min_component_nodes,
        osmid=osmid, drop_unused=True, stats=stats,
    )
    if g.n_nodes == 0:
        raise InputError(
            zh=f"{source} 中没有可用于“{mode}”方式的道路。",
            en=f"no road usable for mode '{mode}' in {source}.",
            file=source or None,
        )
    return g


# --------------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------------


def read_osm(
    path: str | Path,
    mode: str = "walk",
    crs: Any = None,
    bbox: tuple[float, float, float, float] | None = None,
    polygon: Any = None,
    speeds: dict | None = None,
    min_component_nodes: int | None = None,
) -> RoadGraph:
    """Read an OpenStreetMap extract (``.osm.pbf`` or ``.osm`` XML) into a :class:`RoadGraph`.

    PBF files go through pyrosm (``get_network(network_type="walking"|"driving"|"all")``, one edge per
    pair of consecutive OSM nodes); XML files through ``osmnx.graph_from_xml(simplify=False,
    retain_all=True)``. Ways are then filtered by their ``highway`` tag for ``mode`` (module docstring).

    Parameters
    ----------
    path : str or Path
    mode : {"walk", "ebike", "drive"}
    crs : CRS-like, optional
        Metric CRS for the graph; default :func:`coverage.crs.local_metric_crs` of the data's centre.
    bbox : (min_lon, min_lat, max_lon, max_lat), optional
        Keep only ways with both ends inside.
    polygon : shapely Polygon in lon/lat, optional
        Keep only ways with both ends inside.
    speeds : dict, optional
        Speed overrides in km/h (see module docstring).
    min_component_nodes : int, optional
        Default ``settings.MIN_COMPONENT_NODES``.

    Returns
    -------
    RoadGraph
    """
    path = Path(path)
    if not path.exists():
        raise InputError(zh=f"找不到路网文件 {path}。", en=f"road file {path} not found.", file=path)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    name = path.name.lower()
    if name.endswith(".pbf"):
        return _read_pbf(path, mode, crs, bbox, polygon, speeds, min_component_nodes)
    if name.endswith(".osm") or name.endswith(".xml"):
        import osmnx as ox

        G = ox.graph_from_xml(path, bidirectional=(mode != "drive"), simplify=False, retain_all=True)
        return from_networkx(
            G, mode=mode, crs=crs, speeds=speeds, min_component_nodes=min_component_nodes,
            bbox=bbox, polygon=polygon, source=str(path),
        )
    raise InputError(
        zh=f"不支持的 OSM 文件类型：{path.name}（请用 .osm.pbf 或 .osm）。",
        en=f"unsupported OSM file type: {path.name} (use .osm.pbf or .osm).",
        file=path,
    )


def _inside(lon: NDArray, lat: NDArray, bbox, polygon) -> NDArray[np.bool_]:
    inside = np.ones(len(lon), dtype=bool)
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        inside &= (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)
    if polygon is not None:
        import shapely

        inside &= shapely.contains_xy(polygon, lon, lat) | shapely.intersects_xy(polygon, lon, lat)
    return inside


def _read_pbf(path, mode, crs, bbox, polygon, speeds, min_component_nodes) -> RoadGraph:
    import pyrosm

    ntype = {"walk": "walking", "drive": "driving", "ebike": "all"}[mode]
    bounding = polygon if polygon is not None else (list(bbox) if bbox is not None else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        osm = pyrosm.OSM(str(path), bounding_box=bounding)
        res = osm.get_network(network_type=ntype, nodes=True)
    if res is None or res[1] is None or len(res[1]) == 0:
        raise InputError(
            zh=f"{path} 中没有道路（pyrosm 未返回任何 {ntype} 路网）。",
            en=f"no roads in {path} (pyrosm returned no {ntype} network).",
            file=path,
        )
    nodes, edges = res
    ids = pd.Index(nodes["id"].to_numpy())
    if not ids.is_unique:
        keep = ~ids.duplicated()
        nodes = nodes[keep]
        ids = pd.Index(nodes["id"].to_numpy())
    u = ids.get_indexer(edges["u"].to_numpy())
    v = ids.get_indexer(edges["v"].to_numpy())
    good = (u >= 0) & (v >= 0)
    edges = edges[good]
    u, v = u[good].astype(np.int64), v[good].astype(np.int64)
    col = lambda c: edges[c].to_numpy() if c in edges.columns else np.full(len(edges), None, object)  # noqa: E731
    cls = _clean_class(col("highway"))
    g = _from_ways(
        nodes["lon"].to_numpy(float), nodes["lat"].to_numpy(float), "EPSG:4326", u, v,
        edges["length"].to_numpy(float), cls, parse_oneway(col("oneway"), col("junction")),
        parse_maxspeed(col("maxspeed")), mode, crs, speeds, min_component_nodes,
        osmid=ids.to_numpy(), source=str(path),
    )
    return g


def from_networkx(
    G: Any,
    mode: str = "walk",
    crs: Any = None,
    speeds: dict | None = None,
    min_component_nodes: int | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    polygon: Any = None,
    source: str = "networkx graph",
) -> RoadGraph:
    """Convert an osmnx-style (Multi)(Di)Graph into a :class:`RoadGraph`.

    Nodes need ``x`` and ``y`` (in ``G.graph["crs"]``, default EPSG:4326). Edges may carry ``length``
    (metres; otherwise the straight-line length is used), ``highway``, ``oneway`` and ``maxspeed``.
    In a directed graph each edge is taken as drawn (osmnx already stores two-way roads both ways), so
    for ``drive`` the edges are kept as directed; ``walk`` and ``ebike`` use every edge both ways.
    Edges without a ``highway`` tag are treated as unclassified lines, except when the graph came
    from OSM (``source`` is a .osm file), where they are not roads and are skipped.

    Parameters
    ----------
    G : networkx graph
    mode : {"walk", "ebike", "drive"}
    crs : CRS-like, optional
        Metric CRS for the result (default: local metric CRS of the data's centre).
    speeds : dict, optional
    min_component_nodes : int, optional
    bbox, polygon : optional
        Lon/lat clip, as in :func:`read_osm`.
    source : str
        Name used in messages.

    Returns
    -------
    RoadGraph
    """
    node_ids = list(G.nodes)
    idx = {nid: i for i, nid in enumerate(node_ids)}
    nx_ = np.fromiter((G.nodes[n].get("x", np.nan) for n in node_ids), float, len(node_ids))
    ny_ = np.fromiter((G.nodes[n].get("y", np.nan) for n in node_ids), float, len(node_ids))
    node_crs = CRS.from_user_input(G.graph.get("crs", "EPSG:4326"))
    m = G.number_of_edges()
    u = np.empty(m, dtype=np.int64)
    v = np.empty(m, dtype=np.int64)
    length = np.full(m, np.nan)
    hw: list = [None] * m
    ms: list = [None] * m
    for k, (a, b, d) in enumerate(G.edges(data=True)):
        u[k], v[k] = idx[a], idx[b]
        length[k] = float(d["length"]) if d.get("length") is not None else np.nan
        hw[k] = d.get("highway")
        ms[k] = d.get("maxspeed")
    keep = np.ones(m, dtype=bool)
    if source.lower().endswith((".osm", ".xml")):
        keep &= np.array([h is not None for h in hw], dtype=bool)
    if bbox is not None or polygon is not None:
        if node_crs.is_geographic:
            lon, lat = nx_, ny_
        else:
            lon, lat = _project(nx_, ny_, node_crs, CRS.from_epsg(4326))
        ins = _inside(lon, lat, bbox, polygon)
        keep &= ins[u] & ins[v]
    sel = np.flatnonzero(keep)
    u, v, length = u[sel], v[sel], length[sel]
    cls = _clean_class([hw[i] for i in sel])
    maxspeed = parse_maxspeed([ms[i] for i in sel])
    metres = None if np.isnan(length).all() else length
    if metres is not None and np.isnan(metres).any():
        # fill missing lengths with straight-line metres (great circle)
        from coverage.crs import haversine_m

        lon, lat = (nx_, ny_) if node_crs.is_geographic else _project(nx_, ny_, node_crs, CRS.from_epsg(4326))
        straight = haversine_m(lon[u], lat[u], lon[v], lat[v])
        metres = np.where(np.isnan(metres), straight, metres)
    osmid = np.asarray(node_ids, dtype=object)
    try:
        osmid = osmid.astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        pass
    return _from_ways(
        nx_, ny_, node_crs, u, v, metres, cls, np.zeros(len(u), np.int8), maxspeed, mode,
        crs, speeds, min_component_nodes, osmid=osmid, source=source,
        already_directed=bool(G.is_directed()),
    )


def from_graphml(
    path: str | Path,
    mode: str = "drive",
    crs: Any = None,
    speeds: dict | None = None,
    min_component_nodes: int | None = None,
) -> RoadGraph:
    """Read an osmnx GraphML file (``osmnx.load_graphml``) into a :class:`RoadGraph`.

    Parameters
    ----------
    path : str or Path
    mode : {"walk", "ebike", "drive"}
    crs, speeds, min_component_nodes
        As in :func:`from_networkx`.

    Returns
    -------
    RoadGraph
    """
    import osmnx as ox

    path = Path(path)
    if not path.exists():
        raise InputError(zh=f"找不到路网文件 {path}。", en=f"road file {path} not found.", file=path)
    G = ox.load_graphml(path)
    return from_networkx(
        G, mode=mode, crs=crs, speeds=speeds, min_component_nodes=min_component_nodes,
        source=str(path),
    )


@overload
def read_lines(  # noqa: PLR0913
    path: str | Path,
    mode: str = "walk",
    class_field: str | None = None,
    layer: str | int | None = None,
    crs: Any = None,
    speeds: dict | None = None,
    min_component_nodes: int | None = None,
    snap_m: float = 0.01,
    oneway_field: str | None = "oneway",
    maxspeed_field: str | None = "maxspeed",
    join_m: float = 0.0,
    class_map: dict[Any, str] | None = None,
) -> RoadGraph: ...
@overload
def read_lines(  # noqa: PLR0913
    path: str | Path,
    *,
    mode: list[str] | tuple[str, ...],
    class_field: str | None = None,
    layer: str | int | None = None,
    crs: Any = None,
    speeds: dict | None = None,
    min_component_nodes: int | None = None,
    snap_m: float = 0.01,
    oneway_field: str | None = "oneway",
    maxspeed_field: str | None = "maxspeed",
    join_m: float = 0.0,
    class_map: dict[Any, str] | None = None,
) -> dict[str, RoadGraph]: ...
def read_lines(  # noqa: PLR0913 - issue 11: to narrow/split
    path: str | Path,
    mode: str | Sequence[str] = "walk",
    class_field: str | None = None,
    layer: str | int | None = None,
    crs: Any = None,
    speeds: dict | None = None,
    min_component_nodes: int | None = None,
    snap_m: float = 0.01,
    oneway_field: str | None = "oneway",
    maxspeed_field: str | None = "maxspeed",
    join_m: float = 0.0,
    class_map: dict[Any, str] | None = None,
) -> RoadGraph | dict[str, RoadGraph]:
    """Read a line layer (GPKG, SHP, GeoJSON …) of roads into a :class:`RoadGraph`.

    Lines are joined where they share a vertex: coordinates are rounded to ``snap_m`` metres in the
    metric CRS and compared exactly. Each line is split at every vertex used more than once in the
    layer (crossings drawn with a shared vertex, T-junctions) and at its ends; bridges drawn without
    a shared vertex stay unconnected, as they should.

    Parameters
    ----------
    path : str or Path
    mode : {"walk", "ebike", "drive"} or sequence of them
        With a sequence, the file is read once and a dict ``{mode: RoadGraph}`` is returned.
    class_field : str, optional
        Road-class field. ``None`` looks for ``highway`` then ``fclass``, then Chinese fields
        (:data:`CN_CLASS_FIELDS`: GB/T 13923 ``GB``/``gbcode`` codes, ``RN``/``ref`` route numbers,
        等级 names; see :func:`road_class`); with none, every line is walkable and drivable at
        ``settings.DRIVE_KMH_UNKNOWN``.
    layer : str or int, optional
    crs : CRS-like, optional
        Metric CRS of the graph (default local metric CRS of the data's centre). A layer with no CRS
        is taken as EPSG:4326 if its coordinates look like degrees (with a warning), else refused.
    speeds : dict, optional
    min_component_nodes : int, optional
    snap_m : float
        Vertex matching tolerance (rounding grid) in metres.
    oneway_field, maxspeed_field : str or None
        Field names used when present.
    join_m : float
        Join each dangling line end (a vertex no other line uses) to the nearest vertex of another
        line within this many metres (0 = off), for layers whose lines stop a few metres short of
        each other. Dangling ends within ``settings.DANGLING_GAP_M`` of another line that stay
        unjoined are counted in ``stats["dangling_near"]`` (out of ``stats["dangling_ends"]``).
    class_map : dict, optional
        ``{value: class}`` for class values of the layer (``network.class_map``), see
        :func:`road_class`.

    Returns
    -------
    RoadGraph, or dict of mode → RoadGraph when ``mode`` is a sequence
    """
    path = Path(path)
    if not path.exists():
        raise InputError(zh=f"找不到路网文件 {path}。", en=f"road file {path} not found.", file=path)
    lines = read_road_lines(path, layer=layer, class_field=class_field, oneway_field=oneway_field,
                            maxspeed_field=maxspeed_field)
    graphs = from_lines(
        lines, [mode] if isinstance(mode, str) else list(mode), class_field=class_field, crs=crs,
        speeds=speeds, min_component_nodes=min_component_nodes, snap_m=snap_m, oneway_field=oneway_field,
        maxspeed_field=maxspeed_field, join_m=join_m, class_map=class_map,
    )
    return graphs[mode] if isinstance(mode, str) else graphs


def from_lines(  # noqa: PLR0913, PLR0915
    lines: RoadLines,
    modes: Sequence[str],
    class_field: str | None = None,
    crs: Any = None,
    speeds: dict | None = None,
    min_component_nodes: int | None = None,
    snap_m: float = 0.01,
    oneway_field: str | None = "oneway",
    maxspeed_field: str | None = "maxspeed",
    join_m: float = 0.0,
    class_map: dict[Any, str] | None = None,
) -> dict[str, RoadGraph]:
    """The road graph of each mode from lines already read (:func:`coverage.io.roads.read_road_lines`).

    What :func:`read_lines` does after reading the file (it calls this), with the same parameters:
    the graphs are identical array for array. The work that does not depend on the mode (the
    vertices in the metric CRS, their joining, dangling ends, the split into segments, the order of
    the directed segments) is done once; each mode then only picks its segments, their speeds and
    the quickest of parallel edges.

    Parameters
    ----------
    lines : coverage.io.roads.RoadLines
        Must hold the fields the graph uses (the class field, ``oneway_field``, ``maxspeed_field``
        where the layer has them).
    modes : sequence of {"walk", "ebike", "drive"}
    class_field, crs, speeds, min_component_nodes, snap_m, oneway_field, maxspeed_field, join_m, class_map
        As in :func:`read_lines`.

    Returns
    -------
    dict
        ``{mode: RoadGraph}`` in the order of ``modes``.
    """
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown mode {m!r}; use one of {MODES}")
    path = lines.path
    src_crs = lines.crs
    if src_crs is None:
        b = lines.bounds
        if lines.n_features and -180 <= b[0] <= b[2] <= 180 and -90 <= b[1] <= b[3] <= 90:
            warnings.warn(
                f"{path.name}: 路网图层没有坐标系（缺少 .prj），按 EPSG:4326 经纬度处理 / the road layer "
                "has no CRS (no .prj); assuming EPSG:4326 lon/lat",
                UserWarning,
                stacklevel=2,
            )
            src_crs = CRS.from_epsg(4326)
        else:
            raise InputError(
                zh=f"路网图层 {path.name} 没有坐标系，且坐标不像经纬度；请补上 .prj 或在配置中写明 crs。",
                en=f"road layer {path.name} has no CRS and its coordinates are not lon/lat; add a .prj "
                "or state the crs in the scenario.",
                file=path,
            )
    if lines.n_parts == 0:
        raise InputError(zh=f"{path.name} 中没有线要素。", en=f"no line features in {path.name}.", file=path)
    if crs is None:  # the local metric CRS of the lines' lon/lat extent
        lonlat = lines.xy if src_crs.is_geographic else _line_coords(lines, src_crs, CRS.from_epsg(4326))
        lo = np.nanmin(lonlat, axis=0) if len(lonlat) else np.full(2, np.nan)
        hi = np.nanmax(lonlat, axis=0) if len(lonlat) else np.full(2, np.nan)
        del lonlat
        dst = _resolve_crs(np.array([lo[0], hi[0]]), np.array([lo[1], hi[1]]), crs)
    else:
        dst = _resolve_crs(np.empty(0), np.empty(0), crs)
    coords = _line_coords(lines, src_crs, dst)

    columns = list(lines.columns)
    if class_field is None:
        class_field, osm_field = find_class_field(columns)
    elif class_field not in columns:
        raise InputError(
            zh=f"{path.name} 中没有道路等级字段“{class_field}”。",
            en=f"road class field '{class_field}' not in {path.name}.",
            file=path, field=class_field,
        )
    else:
        osm_field = class_field.lower() in CLASS_FIELDS
    n_lines = lines.n_parts
    cls = (
        road_class(lines.part_values(class_field), class_map, osm=osm_field, field=class_field, file=path)
        if class_field
        else np.full(n_lines, "", object)
    )
    oneway = (
        _per_part(lines, oneway_field, parse_oneway)
        if oneway_field and oneway_field in columns
        else np.zeros(n_lines, np.int8)
    )
    maxspeed = (
        _per_part(lines, maxspeed_field, parse_maxspeed)
        if maxspeed_field and maxspeed_field in columns
        else np.full(n_lines, np.nan)
    )

    line = lines.line
    vid, first_pos = _vertex_ids(np.round(coords / snap_m).astype(np.int64))
    vx, vy = coords[first_pos, 0], coords[first_pos, 1]
    start = np.ones(len(line), dtype=bool)
    start[1:] = line[1:] != line[:-1]
    end = np.ones(len(line), dtype=bool)
    end[:-1] = line[1:] != line[:-1]
    vid, dangling = _join_dangling(vid, line, start | end, vx, vy, line[first_pos], join_m)
    uses = np.bincount(vid, minlength=len(first_pos))
    is_break = start | end | (uses[vid] > 1)
    del uses
    step = np.zeros(len(line))
    d = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
    step[1:] = np.where(start[1:], 0.0, d)
    del d, coords
    cum = np.cumsum(step)
    del step
    eu, ev, elen, eline = _split(is_break, line, vid, cum)
    del cum, is_break, vid
    if len(eu) == 0:
        _empty_error(path)
    out_crs = CRS.from_user_input(crs) if crs is not None else dst
    dedup = _DirectedSegments(eu.astype(np.int64), ev.astype(np.int64), len(vx))
    del eu, ev
    min_n = settings.MIN_COMPONENT_NODES if min_component_nodes is None else int(min_component_nodes)
    graphs = {}
    for m in modes:
        kmh = _mode_speeds(m, cls, maxspeed, speeds)[eline]
        ok = np.isfinite(kmh) & (kmh > 0) & np.isfinite(elen)
        minutes = elen / (kmh * 1000.0 / 60.0)
        del kmh
        ow = oneway[eline] if m == "drive" else np.zeros(len(eline), dtype=np.int8)
        tail, head, mm, ll = dedup.edges(ok & (ow >= 0), ok & (ow <= 0), minutes, elen)
        del minutes, ow
        stats = {"source": str(path), "ways_in": int(len(eline)), "ways_used": int(ok.sum())}
        g = _from_csr_edges(vx, vy, tail, head, mm, ll, m, out_crs, min_n, None, True, stats)
        del tail, head, mm, ll
        if g.n_nodes == 0:
            raise InputError(
                zh=f"{path} 中没有可用于“{m}”方式的道路。",
                en=f"no road usable for mode '{m}' in {path}.",
                file=str(path),
            )
        graphs[m] = _with_stats(g, dangling)
    return graphs


def _line_coords(lines: RoadLines, src: CRS, dst: CRS) -> NDArray[np.float64]:
    """The lines' vertices in ``dst``, as :meth:`geopandas.GeoSeries.to_crs` gives them."""
    return transform_vertices(lines.xy, lines.z, src, dst)


def _per_part(lines: RoadLines, name: str, parse: Any) -> NDArray:
    """``parse`` (:func:`parse_oneway`, :func:`parse_maxspeed`) on the values of the features that have parts, spread to their parts."""
    pf = lines.part_feature
    first = np.ones(len(pf), dtype=bool)
    first[1:] = pf[1:] != pf[:-1]
    vals = np.asarray(lines.fields[name])[pf[first]]
    return np.asarray(parse(vals))[np.cumsum(first) - 1]


def _vertex_ids(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(vertex id of each row, first row of each vertex)`` of ``np.unique(keys, axis=0)`` (rows in lexicographic order).

    Rows of two integers are packed into one int64 (same order) when their ranges allow it: a 1-D
    sort instead of a sort of row records.
    """
    if len(keys):
        lo = keys.min(axis=0)
        span = keys.max(axis=0) - lo + 1
        if int(span[0]) * int(span[1]) < 2**62:
            packed = (keys[:, 0] - lo[0]) * span[1] + (keys[:, 1] - lo[1])
            _, first_pos, vid = np.unique(packed, return_index=True, return_inverse=True)
            return vid.ravel().astype(np.int64), first_pos
    _, first_pos, vid = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return vid.ravel().astype(np.int64), first_pos


class _DirectedSegments:
    """Both directions of every segment, sorted once by (tail, head) for all modes.

    :meth:`edges` then gives a mode's edges in the order and with the choice of :func:`from_edges`
    (CSR order; of parallel edges the one with the least ``minutes``, then ``metres``), without a
    sort per mode: only the few parallel groups are sorted.
    """

    def __init__(self, u: NDArray[np.int64], v: NDArray[np.int64], n: int) -> None:
        self.m = len(u)
        uu = np.concatenate([u, v])
        vv = np.concatenate([v, u])
        key = uu * max(n, 1) + vv
        order = np.argsort(key, kind="stable")
        order = order[uu[order] != vv[order]]  # no self-loops
        self.order = order
        self.key = key[order]
        self.tail = uu[order]
        self.head = vv[order]

    def edges(
        self, fwd: NDArray[np.bool_], bwd: NDArray[np.bool_], minutes: NDArray[np.float64], metres: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """``(tail, head, minutes, metres)`` of the edges ``u → v`` where ``fwd`` and ``v → u`` where ``bwd``."""
        pick = np.concatenate([fwd, bwd])[self.order]
        pos = self.order[pick]
        key = self.key[pick]
        seg = np.where(pos < self.m, pos, pos - self.m)
        mm, ll = minutes[seg], metres[seg]
        del seg
        same = key[1:] == key[:-1]
        if same.any():  # parallel edges: keep the least minutes, then the least metres
            grouped = np.zeros(len(key), dtype=bool)
            grouped[1:] |= same
            grouped[:-1] |= same
            idx = np.flatnonzero(grouped)
            o = np.lexsort((ll[idx], mm[idx], key[idx]))
            ko = key[idx][o]
            lead = np.ones(len(o), dtype=bool)
            lead[1:] = ko[1:] != ko[:-1]
            keep = ~grouped
            keep[idx[o[lead]]] = True
            sel = np.flatnonzero(keep)
            return self.tail[pick][sel], self.head[pick][sel], mm[sel], ll[sel]
        return self.tail[pick], self.head[pick], mm, ll


def _with_stats(g: RoadGraph, extra: dict) -> RoadGraph:
    g.stats.update(extra)
    return g


def _join_dangling(
    vid: NDArray[np.int64], line: NDArray, is_end: NDArray[np.bool_], vx: NDArray, vy: NDArray,
    vline: NDArray, join_m: float,
) -> tuple[NDArray[np.int64], dict]:
    """Dangling line ends (end vertices no other line uses): count those that almost touch another line, and join those within ``join_m`` to the nearest vertex of another line."""
    from scipy.spatial import cKDTree

    uses = np.bincount(vid, minlength=len(vx))
    ends = np.flatnonzero(is_end & (uses[vid] == 1))
    stats = {"dangling_ends": int(len(ends)), "dangling_near": 0, "dangling_joined": 0}
    if len(ends) == 0 or len(vx) < 2:
        return vid, stats
    gap = max(float(settings.DANGLING_GAP_M), float(join_m))
    tree = cKDTree(np.column_stack([vx, vy]), balanced_tree=False, compact_nodes=False)  # built 2x faster
    pts = np.column_stack([vx[vid[ends]], vy[vid[ends]]])
    own = line[ends]

    def nearest_other(rows: NDArray[np.int64], k: int) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        """Per end of ``rows``: found, distance and vertex of the nearest other line's vertex among its ``k`` nearest, and whether all ``k`` lay within the gap."""
        d, j = tree.query(pts[rows], k=k, distance_upper_bound=gap)
        d, j = d.reshape(len(rows), k), j.reshape(len(rows), k)
        ok = np.isfinite(d) & (j < len(vx))
        jj = np.where(ok, j, 0)
        full = ok[:, -1].copy()  # the k-th neighbour is within the gap too: there may be more
        ok &= vline[jj] != own[rows][:, None]  # a vertex of another line
        first = np.where(ok.any(axis=1), ok.argmax(axis=1), -1)
        at = np.arange(len(rows)), np.maximum(first, 0)
        return first >= 0, np.where(first >= 0, d[at], np.inf), jj[at], full

    k = min(16, len(vx))
    has, near_d, near_v, full = nearest_other(np.arange(len(ends)), k)
    # a densely drawn line can fill an end's k nearest vertices with its own: look further (more
    # neighbours, within the same gap) for those ends until another line's vertex or the gap is reached
    more = np.flatnonzero(~has & full)
    while len(more) and k < len(vx):
        k = min(4 * k, len(vx))
        h, nd, nv, f = nearest_other(more, k)
        has[more], near_d[more], near_v[more] = h, nd, nv
        more = more[~h & f]
    join = has & (near_d <= join_m)
    vid = vid.copy()
    vid[ends[join]] = near_v[join]
    stats["dangling_near"] = int((has & ~join).sum())
    stats["dangling_joined"] = int(join.sum())
    return vid, stats


def _split(is_break, line, vid, cum, rounds: int = 3):
    """Edges between consecutive break vertices of each line.

    Closed rings (an edge from a node to itself) get extra breaks at 1/3 and 2/3 of their vertices,
    and a second edge joining the same two nodes as an earlier one gets a break at its middle vertex,
    so that no road length is lost to self-loops or to parallel-edge de-duplication.
    """
    is_break = is_break.copy()
    for _ in range(rounds + 1):
        bpos = np.flatnonzero(is_break)
        same = line[bpos[1:]] == line[bpos[:-1]]
        a, b = bpos[:-1][same], bpos[1:][same]
        eu, ev = vid[a], vid[b]
        lo, hi = np.minimum(eu, ev), np.maximum(eu, ev)
        key = lo.astype(np.int64) * (int(vid.max()) + 1) + hi
        _, first = np.unique(key, return_index=True)
        dup = np.ones(len(key), dtype=bool)
        dup[first] = False
        loop = eu == ev
        inner = (b - a) > 1
        fix_loop = loop & ((b - a) >= 3)
        fix_dup = dup & ~loop & inner
        if not (fix_loop.any() or fix_dup.any()):
            break
        is_break[a[fix_loop] + (b[fix_loop] - a[fix_loop]) // 3] = True
        is_break[a[fix_loop] + 2 * (b[fix_loop] - a[fix_loop]) // 3] = True
        is_break[a[fix_dup] + (b[fix_dup] - a[fix_dup]) // 2] = True
    return eu, ev, cum[b] - cum[a], line[a]


def _empty_error(path: Path) -> RoadGraph:
    raise InputError(zh=f"{path.name} 中没有可用的道路段。", en=f"no usable road segment in {path.name}.", file=path)
