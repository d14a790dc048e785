r"""Interactive meeting map (``map.html``) that works with no network at all.

County meeting rooms are often on an intranet, and public CDNs are unreliable from China, so the
page loads **no** network resource: Leaflet's JavaScript and CSS are inlined from the PyPI package
``xstatic-leaflet`` (the same Leaflet 1.9.3 that folium 0.20 pins; its CSS images are inlined as
``data:`` URIs), folium's other default assets (jQuery, Bootstrap, awesome-markers, Font Awesome)
are dropped, and markers are plain Leaflet ``CircleMarker``\\ s coloured by facility type. Legend,
title, the synthetic-data banner and the source block are plain HTML elements; the service switcher
(one service per view), the north arrow and the 乡镇 name labels are small inline scripts.

A basemap is optional: ``tiles="none"`` (default, fully offline, plain background), ``"osm"``,
``"amap"`` (高德, GCJ-02: every overlay is shifted from WGS-84 to GCJ-02 so it lines up with the
tiles) or ``"tianditu"`` (天地图, CGCS2000 ≈ WGS-84, needs the user's key).

The file is deterministic (folium's random element ids are renamed in order of appearance) and is
written atomically.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import os
import re
from collections.abc import Callable, Collection, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from jinja2 import Template
from shapely.ops import polylabel

from coverage import settings
from coverage.crs import wgs84_to_gcj02
from coverage.categories import FTYPES, SERVICES, TIERS, service_label
from coverage.report._util import atomic_target
from coverage.errors import InputError

__all__ = [
    "TILES",
    "inline_assets",
    "map_services",
    "normalise_ids",
    "write_map",
]

#: Facility-type palettes per service (assigned to the sorted facility types in turn).
_FTYPE_PALETTES: dict[str, list[str]] = {
    "school": ["#08519c", "#3182bd", "#6baed6", "#9ecae1", "#17becf", "#1f3a93"],
    "clinic": ["#a50f15", "#de2d26", "#fb6a4a", "#fc9272", "#e377c2", "#7f2704"],
    "elderly": ["#54278f", "#756bb1", "#9e9ac8", "#bcbddc", "#8c6d31", "#c51b8a"],
    "fitness": ["#006d2c", "#31a354", "#74c476", "#a1d99b", "#bcbd22", "#00441b"],
}
_OTHER_PALETTE = ["#636363", "#969696", "#8c564b", "#e6550d", "#bdbdbd", "#252525"]
#: Coverage-share classes of the choropleth: (lower bound, colour, label).
_SHARE_CLASSES: list[tuple[float, str, str]] = [
    (0.95, "#1a9850", "≥95%"),
    (0.85, "#91cf60", "85–95%"),
    (0.70, "#fee08b", "70–85%"),
    (0.50, "#fc8d59", "50–70%"),
    (-math.inf, "#d73027", "<50%"),
]
#: Uncovered-people classes of a demand cell: (lower bound, colour, label).
_POP_CLASSES: list[tuple[float, str, str]] = [
    (500.0, "#67000d", "≥500人"),
    (200.0, "#cb181d", "200–500人"),
    (50.0, "#fb6a4a", "50–200人"),
    (-math.inf, "#fcbba1", "<50人"),
]

TileChoice = Literal["none", "osm", "amap", "tianditu"]
#: Basemaps: name → list of (url template, attribution, subdomains).
TILES: dict[str, list[tuple[str, str, str]]] = {
    "osm": [
        (
            "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
            "abc",
        )
    ],
    "amap": [
        (
            "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8"
            "&x={x}&y={y}&z={z}",
            "&copy; 高德地图 AutoNavi",
            "1234",
        )
    ],
    "tianditu": [
        (
            "https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
            "&LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
            "&TILECOL={x}&tk={key}",
            "&copy; 天地图 Tianditu",
            "01234567",
        ),
        (
            "https://t{s}.tianditu.gov.cn/cva_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
            "&LAYER=cva&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
            "&TILECOL={x}&tk={key}",
            "&copy; 天地图 Tianditu",
            "01234567",
        ),
    ],
}

_COORD_DECIMALS = 6  # 1e-6° ≈ 0.1 m: facilities, candidates and proposed sites
#: Polygons and aggregated points are drawn at 1e-5° (≈ 1 m), as integers (see ``_encode``).
_COMPACT_DECIMALS = 5
#: Douglas–Peucker tolerance of polygons on the map, metres (the GeoPackage keeps the full outline).
MAP_SIMPLIFY_M: float = 25.0
#: Most uncovered-people points per service layer: blocks are merged 2 × 2 until there are fewer.
MAP_MAX_POINTS: int = 12_000


# --------------------------------------------------------------------------------------------
# offline assets
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def inline_assets() -> tuple[str, str]:
    """Leaflet's JavaScript and CSS, ready to inline, from the installed ``xstatic-leaflet``.

    The CSS's ``url(images/….png)`` references are replaced by ``data:`` URIs so that the page
    never asks for a file beside it.

    Returns
    -------
    tuple of str
        ``(javascript, css)``.
    """
    base = resources.files("xstatic.pkg.leaflet") / "data"
    js = (base / "leaflet.js").read_text(encoding="utf-8")
    css = (base / "leaflet.css").read_text(encoding="utf-8")

    def to_data_uri(match: re.Match[str]) -> str:
        name = match.group(1)
        payload = base64.b64encode((base / "images" / name).read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{payload})"

    css = re.sub(r"url\(\s*['\"]?images/([\w.-]+\.png)['\"]?\s*\)", to_data_uri, css)
    # An inline <script> must not contain a closing tag.
    js = js.replace("</script", "<\\/script")
    return js, css


_ID_RE = re.compile(r"(?<=_)[0-9a-f]{32}(?![0-9a-zA-Z])")


def normalise_ids(text: str) -> str:
    """Replace folium/branca's random 32-hex element ids by counters in order of appearance.

    Parameters
    ----------
    text : str
        Rendered HTML.

    Returns
    -------
    str
        The same HTML with ids ``000001``, ``000002`` … (stable for the same inputs).
    """
    mapping: dict[str, str] = {}

    def repl(m: re.Match[str]) -> str:
        key = m.group(0)
        if key not in mapping:
            mapping[key] = f"{len(mapping) + 1:06d}"
        return mapping[key]

    return _ID_RE.sub(repl, text)


# --------------------------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------------------------


def _display_frame(
    gdf: gpd.GeoDataFrame | None, gcj02: bool, simplify_m: float = 0.0
) -> gpd.GeoDataFrame | None:
    """Reproject to EPSG:4326, optionally shift to GCJ-02, round coordinates; drop empty rows.

    With ``simplify_m`` polygons and lines are first simplified by that many metres (in a metric
    CRS, topology preserved); points are never moved.
    """
    if gdf is None or len(gdf) == 0:
        return None
    if gdf.crs is None:
        raise InputError(
            "图层没有坐标参考系（CRS），无法绘制地图；请在读取数据时设置 CRS。",
            "a layer has no CRS, so it cannot be drawn; set the CRS when reading it.",
            field="geometry",
        )
    if simplify_m > 0:
        gdf = _simplified(gdf, simplify_m)
    out = gdf.to_crs(4326) if not gdf.crs.equals("EPSG:4326") else gdf.copy()
    geoms = np.asarray(out.geometry.array, dtype=object)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    out = out.loc[keep].copy()
    geoms = geoms[keep]
    if len(out) == 0:
        return None

    def shift(coords: np.ndarray) -> np.ndarray:
        if gcj02:
            lon, lat = wgs84_to_gcj02(coords[:, 0], coords[:, 1])
            coords = np.column_stack([lon, lat])
        return np.round(coords, _COORD_DECIMALS)

    out = out.set_geometry(gpd.GeoSeries(shapely.transform(geoms, shift), index=out.index, crs=4326))
    return out


def _simplified(gdf: gpd.GeoDataFrame, tol_m: float) -> gpd.GeoDataFrame:
    """Polygons and lines simplified by ``tol_m`` metres (geographic layers via a local metric CRS)."""
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    kind = shapely.get_type_id(geoms)
    if not np.isin(kind, [1, 2, 3, 5, 6]).any():  # no lines or polygons
        return gdf
    metric = gdf if gdf.crs.is_projected else gdf.to_crs(gdf.estimate_utm_crs())
    # plain Douglas–Peucker (several times faster than the topology-preserving variant on the
    # outlines of a large county's circles). GEOS's Douglas–Peucker returns valid polygons (it
    # repairs a ring it made cross; a sliver that collapses becomes empty and is dropped), so
    # they are not checked again (is_valid took ~0.2 s on a large county's circles)
    simple = shapely.simplify(np.asarray(metric.geometry.array, dtype=object), tol_m, preserve_topology=False)
    simple = np.where(np.isin(kind, [1, 2, 3, 5, 6]), simple, np.asarray(metric.geometry.array, dtype=object))
    out = metric.set_geometry(gpd.GeoSeries(simple, index=metric.index, crs=metric.crs))
    return out if gdf.crs.is_projected else out.to_crs(gdf.crs)


def _feature_collection(gdf: gpd.GeoDataFrame, props: pd.DataFrame) -> dict[str, Any]:
    """GeoJSON FeatureCollection with the given properties and ids ``"0"``, ``"1"`` …."""
    features = []
    records = props.to_dict(orient="records")
    for i, (geom, rec) in enumerate(zip(gdf.geometry.array, records)):
        clean = {k: _json_value(v) for k, v in rec.items()}
        features.append(
            {
                "type": "Feature",
                "id": str(i),
                "properties": clean,
                "geometry": json.loads(shapely.to_geojson(geom)),
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _json_value(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v if isinstance(v, (str, int, bool)) else str(v)


def _need(gdf: gpd.GeoDataFrame, column: str, layer: str) -> None:
    if column not in gdf.columns:
        raise InputError(
            f"地图图层“{layer}”缺少字段 '{column}'；请检查上游结果。",
            f"map layer '{layer}' lacks the column '{column}'; check the upstream result.",
            field=column,
        )


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return str(v)


def _classify(value: float, classes: list[tuple[float, str, str]]) -> str:
    for lower, colour, _ in classes:
        if value >= lower:
            return colour
    return classes[-1][1]


def _service_sort_key(service: str) -> tuple[int, str]:
    order = list(SERVICES)
    return (order.index(service) if service in order else len(order), service)


# --------------------------------------------------------------------------------------------
# compact layers: quantised, delta-encoded geometry decoded in the page
# --------------------------------------------------------------------------------------------

#: Decoder of :func:`_encode`'s payload into a GeoJSON FeatureCollection (feature property ``i`` =
#: row number, which indexes the layer's property arrays ``P``).
_DECODE_JS = """<script>
function covDecode(d) {
  var s = d.s, f = [];
  function R(a) { var o = [], x = 0, y = 0;
    for (var k = 0; k < a.length; k += 2) { x += a[k]; y += a[k + 1]; o.push([x / s, y / s]); }
    return o; }
  for (var i = 0; i < d.g.length; i++) {
    var t = typeof d.t === "string" ? d.t : d.t[i], g = d.g[i], c;
    if (t === "Point") c = [g[0] / s, g[1] / s];
    else if (t === "LineString") c = R(g);
    else if (t === "Polygon" || t === "MultiLineString") c = g.map(R);
    else c = g.map(function (p) { return p.map(R); });
    f.push({type: "Feature", properties: {i: i}, geometry: {type: t, coordinates: c}});
  }
  return {type: "FeatureCollection", features: f};
}
</script>"""


def _encode(gdf: gpd.GeoDataFrame, decimals: int = _COMPACT_DECIMALS) -> dict[str, Any]:
    """Geometry as integers of ``10**-decimals`` degrees, each ring or line as the first position then differences (``[x0, y0, dx1, dy1, …]``); repeated positions after rounding are dropped.

    Returns ``{"s": 10**decimals, "t": geometry type (or one per row), "g": [coordinates …]}``, for
    ``covDecode`` in the page. Five decimals are about 1 m.
    """
    q = 10**decimals

    def ring(coords: np.ndarray) -> list[int]:
        a = np.rint(np.asarray(coords)[:, :2] * q).astype(np.int64)
        if len(a) > 1:
            a = a[np.r_[True, (np.diff(a, axis=0) != 0).any(axis=1)]]
        d = a.copy()
        d[1:] -= a[:-1]
        return d.ravel().tolist()

    def poly(p: Any) -> list[list[int]]:
        return [ring(p.exterior.coords), *[ring(r.coords) for r in p.interiors]]

    geoms = np.asarray(gdf.geometry.array, dtype=object)
    types = [g.geom_type for g in geoms]
    if set(types) == {"Point"}:
        xy = np.rint(shapely.get_coordinates(geoms) * q).astype(np.int64)
        return {"s": q, "t": "Point", "g": xy.tolist()}
    out = []
    for g, t in zip(geoms, types):
        if t == "Point":
            out.append(np.rint(np.array([g.x, g.y]) * q).astype(np.int64).tolist())
        elif t == "LineString":
            out.append(ring(g.coords))
        elif t == "MultiLineString":
            out.append([ring(x.coords) for x in g.geoms])
        elif t == "Polygon":
            out.append(poly(g))
        elif t == "MultiPolygon":
            out.append([poly(x) for x in g.geoms])
        else:
            raise ValueError(f"cannot draw a {t} on the map")
    return {"s": q, "t": types[0] if len(set(types)) == 1 else types, "g": out}


def _js(obj: Any) -> str:
    """Compact JSON that is safe inside an inline ``<script>``."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


class _RawMacro(MacroElement):
    """A MacroElement whose rendered parts go into the page as they are (see :class:`_Raw`).

    branca's ``MacroElement.render`` wraps each rendered macro in ``Element(text)``, which lexes
    and compiles it as a Jinja template again: for a compact layer that is megabytes of encoded
    features (0.6 s of a 16× map), and a ``{{`` in a facility's name would be read as template
    syntax.
    """

    def render(self, **kwargs: Any) -> Any:  # branca: None here, text for a plain Element
        """Add the rendered ``header``, ``html`` and ``script`` macros to the figure, then render the children."""
        figure = self.get_root()
        assert isinstance(figure, Figure), "You cannot render this Element if it is not in a Figure."
        macros = self._template.module.__dict__
        for part, target in (("header", figure.header), ("html", figure.html), ("script", figure.script)):
            macro = macros.get(part)
            if macro is not None:
                target.add_child(_Raw(macro(self, kwargs)), name=self.get_name())
        for element in self._children.values():
            element.render(**kwargs)


class _GeoJson(folium.GeoJson, _RawMacro):
    """folium's GeoJson with its features put into the page as they are (:class:`_RawMacro`)."""


class _CompactLayer(_RawMacro):
    """A layer drawn from :func:`_encode`'s payload, styled and labelled by small JS expressions.

    The expressions see ``i`` (the feature's row) and ``P`` (the layer's property arrays). A
    layer can reuse the decoded features of an earlier one (``shared``), so the 乡镇 outlines are
    written once for the boundary layer and every coverage choropleth.
    """

    _template = Template("""
{% macro script(this, kwargs) %}
{%- if this.payload %}
var {{ this.data_name }} = covDecode({{ this.payload }});
{%- endif %}
(function () {
  var P = {{ this.props }};
  var S = function (f) { var i = f.properties.i; return {{ this.style }}; };
  L.geoJson({{ this.data_name }}, {
    style: S,
    {%- if this.marker %}
    pointToLayer: function (f, ll) { return L.circleMarker(ll, Object.assign({{ this.marker }}, S(f))); },
    {%- endif %}
    {%- if this.tooltip %}
    onEachFeature: function (f, l) { var i = f.properties.i; l.bindTooltip({{ this.tooltip }}); },
    {%- endif %}
  }).addTo({{ this._parent.get_name() }});
})();
{% endmacro %}
""")

    def __init__(
        self,
        gdf: gpd.GeoDataFrame | None,
        props: dict[str, Sequence[Any]],
        style: str,
        *,
        tooltip: str = "",
        marker: dict[str, Any] | None = None,
        shared: _CompactLayer | None = None,
    ) -> None:
        super().__init__()
        self._name = "CompactLayer"
        if shared is None:
            if gdf is None:
                raise ValueError("a compact layer needs features or a shared layer")
            self.payload = _js(_encode(gdf))
            self.data_name = f"{self.get_name()}_data"
        else:
            self.payload = ""
            self.data_name = shared.data_name
        self.props = _js({k: [_json_value(v) for v in vals] for k, vals in props.items()})
        self.style = style
        self.tooltip = tooltip
        self.marker = _js(marker) if marker else ""


class _Raw(Element):
    """Text put into the page as it is.

    branca's ``Element(text)`` takes its text for a Jinja template: it lexes and compiles the inline
    Leaflet, the styles and the what-if panel's data on every map (0.6 s of a 16× map) and would
    read a ``{{`` in them (a title, a name) as template syntax.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "Raw"
        self.text = text

    def render(self, **kwargs: Any) -> str:
        """The text, unchanged."""
        return self.text


class _Code(_RawMacro):
    """Inline JavaScript in the map's script, in the order of the map's children.

    ``__PARENT__`` in the code becomes the parent layer's variable name.
    """

    _template = Template("""
{% macro script(this, kwargs) %}
{{ this.code | replace("__PARENT__", this._parent.get_name()) }}
{% endmacro %}
""")

    def __init__(self, code: str) -> None:
        super().__init__()
        self._name = "Code"
        self.code = code


def _merge_points(cells: gpd.GeoDataFrame, max_points: int = MAP_MAX_POINTS) -> gpd.GeoDataFrame:
    """Uncovered people per service summed into square blocks (``settings.MAP_BLOCK_M``, doubled until a service has at most ``max_points``), at the people-weighted centre.

    Only ``service`` and ``pop`` are kept: the map shows how many people lack what, where; the
    per-cell rows stay in layers.gpkg.
    """
    frames = []
    metric = cells if cells.crs is None or cells.crs.is_projected else cells.to_crs(cells.estimate_utm_crs())
    x, y = metric.geometry.x.to_numpy(), metric.geometry.y.to_numpy()
    service = metric["service"].map(_text).to_numpy()
    pop = pd.to_numeric(metric["pop"], errors="coerce").fillna(0.0).to_numpy(dtype="float64")
    for sv in pd.unique(service):
        m = service == sv
        px, py, pp = x[m], y[m], pop[m]
        block = float(settings.MAP_BLOCK_M)
        while len(pp) > max_points:
            key = np.floor(px / block) * 1e9 + np.floor(py / block)
            _, inv = np.unique(key, return_inverse=True)
            w = np.bincount(inv, weights=pp)
            safe = np.where(w > 0, w, 1.0)
            px = np.where(w > 0, np.bincount(inv, weights=px * pp) / safe, np.bincount(inv, weights=px) / np.bincount(inv))
            py = np.where(w > 0, np.bincount(inv, weights=py * pp) / safe, np.bincount(inv, weights=py) / np.bincount(inv))
            pp = w
            block *= 2
        frames.append(gpd.GeoDataFrame({"service": sv, "pop": pp}, geometry=gpd.points_from_xy(px, py),
                                       crs=metric.crs))
    out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=metric.crs)
    return out


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------


def _geojson(
    data: dict[str, Any],
    style: Callable[[dict], dict] | None,
    *,
    marker: folium.CircleMarker | None = None,
    tooltip_fields: Sequence[str] = (),
    popup_fields: Sequence[str] = (),
) -> folium.GeoJson:
    tooltip = folium.GeoJsonTooltip(fields=list(tooltip_fields)) if tooltip_fields else None
    popup = folium.GeoJsonPopup(fields=list(popup_fields)) if popup_fields else None
    return _GeoJson(
        data,
        style_function=style,
        marker=marker,
        tooltip=tooltip,
        popup=popup,
        embed=True,
        zoom_on_click=False,
    )


#: Fill of a unit whose figure has no input data (the service has no facility in the inputs).
NO_DATA_FILL = "#cccccc"


class _Overlays:
    """The map's overlays, listed in the layer control bottom to top, and the legend blocks.

    A *common* overlay (乡镇边界, 乡镇名称, 15公里城乡服务圈 …) is one layer. A per-service *kind*
    (乡镇覆盖率, 服务圈, 未覆盖人口, 覆盖变化, 设施) is one entry of the layer control holding one
    sub-layer per service, of which only the shown service's is in it (:func:`_switcher_js` swaps
    them). Legend blocks carry their service (``""`` for every service).
    """

    def __init__(self, m: folium.Map, shown: str | None) -> None:
        self.m = m
        self.shown = shown
        self.order: list[folium.FeatureGroup] = []
        self.kinds: dict[str, tuple[folium.FeatureGroup, dict[str, folium.FeatureGroup]]] = {}
        self.legend: list[tuple[str, str]] = []

    def common(self, name: str) -> folium.FeatureGroup:
        """A new overlay of the layer control, shown on opening."""
        group = folium.FeatureGroup(name=name, show=True)
        group.add_to(self.m)
        self.order.append(group)
        return group

    def sub(self, kind: str, service: str) -> folium.FeatureGroup:
        """The sub-layer of ``service`` in the overlay ``kind`` (created on first use), in it only when shown."""
        if kind not in self.kinds:
            self.kinds[kind] = (self.common(kind), {})
        parent, subs = self.kinds[kind]
        group = folium.FeatureGroup(name=f"{kind}-{service}", control=False, show=service == self.shown)
        group.add_to(parent)
        subs[service] = group
        return group


#: Layer-control names of the per-service overlays.
KIND_SHARE = "乡镇覆盖率"
KIND_CIRCLES = "服务圈"
KIND_UNCOVERED = "未覆盖人口"
KIND_CHANGE = "覆盖变化（方案比较）"
KIND_FACILITIES = "设施"
#: Layer-control names of the 乡镇 outlines and their name labels.
LAYER_UNITS = "乡镇（街道）边界"
LAYER_LABELS = "乡镇（街道）名称"


def map_services(layers: dict[str, gpd.GeoDataFrame | None]) -> list[str]:
    """Services that have a layer on the map (share columns, facilities, uncovered, circles, change), in display order."""
    found: set[str] = set()
    units = layers.get("units")
    if units is not None:
        found |= {c[len("share_"):] for c in units.columns if c.startswith("share_")}
    for name, col in (("facilities", "category"), ("uncovered", "service"), ("circles", "service"),
                      ("change", "service")):
        gdf = layers.get(name)
        if gdf is not None and col in gdf.columns:
            found |= {s for s in gdf[col].map(_text) if s}
    return sorted(found, key=_service_sort_key)


def _label_points(units: gpd.GeoDataFrame) -> list[list[Any]]:
    """``[lat, lon, name]`` of each named unit at its pole of inaccessibility (largest part), largest unit first."""
    rows = []
    for geom, name in zip(units.geometry.array, units["name"].map(_text) if "name" in units else []):
        if not name or geom is None or geom.is_empty:
            continue
        parts = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
        part = max(parts, key=lambda p: p.area)
        if part.geom_type == "Polygon":
            minx, miny, maxx, maxy = part.bounds
            pt = polylabel(part, tolerance=max(maxx - minx, maxy - miny) / 100 or 1e-6)
        else:
            pt = part.representative_point()
        rows.append((geom.area, [round(pt.y, _COMPACT_DECIMALS), round(pt.x, _COMPACT_DECIMALS), name]))
    return [r for _, r in sorted(rows, key=lambda t: -t[0])]


def _add_units(ov: _Overlays, units: gpd.GeoDataFrame, no_data: Collection[str] = ()) -> None:
    names = units["name"].map(_text) if "name" in units else pd.Series("", index=units.index)
    kinds = units["kind"].map(_text) if "kind" in units else pd.Series("", index=units.index)
    outline = _CompactLayer(
        units, {"n": names.tolist(), "k": kinds.tolist()},
        '{color: "#444444", weight: 1.2, fillOpacity: 0.0, fill: false}',
        tooltip='"乡镇（街道）：" + P.n[i] + "<br>类型：" + P.k[i]',
    )
    outline.add_to(ov.common(LAYER_UNITS))
    points = _label_points(units)
    if points:
        _Code(_LABELS_JS.replace("__P__", _js(points)).replace("__MAP__", ov.m.get_name())).add_to(
            ov.common(LAYER_LABELS))
    services = sorted(
        (c[len("share_") :] for c in units.columns if c.startswith("share_")), key=_service_sort_key
    )
    for service in services:
        share = pd.to_numeric(units[f"share_{service}"], errors="coerce").to_numpy(dtype="float64")
        colours = [_classify(s, _SHARE_CLASSES) if np.isfinite(s) else NO_DATA_FILL for s in share]
        missing = "无设施数据" if service in no_data else "无人口"
        pct = [f"{s * 100:.1f}%" if np.isfinite(s) else missing for s in share]
        # the outlines are decoded once (the boundary layer's); each choropleth adds its colours
        _CompactLayer(
            None, {"n": names.tolist(), "v": pct, "c": colours},
            '{color: "#555555", weight: 0.8, fillColor: P.c[i], fillOpacity: 0.55}',
            tooltip=f'"乡镇（街道）：" + P.n[i] + "<br>{service_label(service, short=True)}覆盖率：" + P.v[i]',
            shared=outline,
        ).add_to(ov.sub(KIND_SHARE, service))
    if services:
        items = "".join(
            f'<div><span class="cov-swatch" style="background:{c}"></span>{html.escape(lbl)}</div>'
            for _, c, lbl in _SHARE_CLASSES
        )
        ov.legend.append(("", f"<div class='cov-legend-h'>乡镇（街道）覆盖率</div>{items}"))
        for service in sorted(set(no_data) & set(services), key=_service_sort_key):
            ov.legend.append((service, f'<div><span class="cov-swatch" style="background:{NO_DATA_FILL}">'
                                       "</span>无设施数据</div>"))


def _add_facilities(ov: _Overlays, fac: gpd.GeoDataFrame) -> None:
    _need(fac, "category", "facilities")
    fac = fac.copy()
    for col in ("name", "ftype", "type_raw", "tier", "capacity_unit"):
        if col not in fac.columns:
            fac[col] = ""
    if "capacity" not in fac.columns:
        fac["capacity"] = np.nan
    fac["category"] = fac["category"].map(_text)
    fac["ftype"] = fac["ftype"].map(_text)
    for service in sorted(fac["category"].unique(), key=_service_sort_key):
        sub = fac[fac["category"] == service]
        ftypes = sorted(sub["ftype"].unique())
        palette = _FTYPE_PALETTES.get(service, _OTHER_PALETTE)
        colour = {ft: palette[i % len(palette)] for i, ft in enumerate(ftypes)}
        label_of: dict[str, str] = {}
        for ft in ftypes:
            raws = sub.loc[sub["ftype"] == ft, "type_raw"].map(_text)
            raws = raws[raws != ""]
            if len(raws):
                counts = raws.value_counts()
                best = sorted(counts.index[counts == counts.max()])[0]
                label_of[ft] = best
            else:
                label_of[ft] = FTYPES[ft].label.split("/")[0] if ft in FTYPES else (ft or "未分类")
        capacity = pd.to_numeric(sub["capacity"], errors="coerce").to_numpy(dtype="float64")
        scale = [
            f"{c:g} {_text(u)}".strip() if np.isfinite(c) else "—"
            for c, u in zip(capacity, sub["capacity_unit"])
        ]
        props = pd.DataFrame(
            {
                "名称": sub["name"].map(_text).to_numpy(),
                "类型": [
                    _text(r) or label_of[ft] for r, ft in zip(sub["type_raw"], sub["ftype"])
                ],
                "级别": [TIERS.get(_text(t), _text(t) or "—") for t in sub["tier"]],
                "规模": scale,
                "_fill": [colour[ft] for ft in sub["ftype"]],
            }
        )
        label = service_label(service)
        _geojson(
            _feature_collection(sub, props),
            lambda f: {"fillColor": f["properties"]["_fill"]},
            marker=folium.CircleMarker(
                radius=6, color="#ffffff", weight=1.5, fill=True, fill_opacity=0.95
            ),
            tooltip_fields=["名称"],
            popup_fields=["名称", "类型", "级别", "规模"],
        ).add_to(ov.sub(KIND_FACILITIES, service))
        items = "".join(
            f'<div><span class="cov-dot" style="background:{colour[ft]}"></span>'
            f"{html.escape(label_of[ft])}</div>"
            for ft in ftypes
        )
        ov.legend.append((service, f"<div class='cov-legend-h'>{html.escape(label)}设施</div>{items}"))


def _add_uncovered(ov: _Overlays, cells: gpd.GeoDataFrame) -> None:
    cells = cells.copy()
    cells["service"] = cells["service"].map(_text)
    palette = _js([c for _, c, _ in _POP_CLASSES])
    services = sorted(cells["service"].unique(), key=_service_sort_key)
    for service in services:
        sub = cells[cells["service"] == service]
        pop = pd.to_numeric(sub["pop"], errors="coerce").fillna(0.0).to_numpy(dtype="float64")
        cls = [next(k for k, (lo, _, _) in enumerate(_POP_CLASSES) if p >= lo or k == len(_POP_CLASSES) - 1)
               for p in pop]
        _CompactLayer(
            sub, {"n": [f"{p:.0f}" for p in pop], "c": cls},
            f"{{fillColor: {palette}[P.c[i]]}}",
            tooltip=f'"{service_label(service, short=True)}未覆盖人口：" + P.n[i] + "人"',
            marker={"radius": 4, "stroke": False, "fill": True, "fillOpacity": 0.85},
        ).add_to(ov.sub(KIND_UNCOVERED, service))
    if services:
        items = "".join(
            f'<div><span class="cov-dot cov-small" style="background:{c}"></span>'
            f"{html.escape(lbl)}</div>"
            for _, c, lbl in _POP_CLASSES
        )
        ov.legend.append(("", f"<div class='cov-legend-h'>未覆盖人口（每格）</div>{items}"))


def _add_change(ov: _Overlays, cells: gpd.GeoDataFrame) -> None:
    """Plan vs baseline: cells where people gain (green) or lose (red) coverage, one sub-layer per service."""
    _need(cells, "gained", "change")
    _need(cells, "lost", "change")
    gained = pd.to_numeric(cells["gained"], errors="coerce").fillna(0.0).to_numpy(dtype="float64")
    lost = pd.to_numeric(cells["lost"], errors="coerce").fillna(0.0).to_numpy(dtype="float64")
    service = (cells["service"].map(_text) if "service" in cells else pd.Series([""] * len(cells))).to_numpy()
    keep = (gained > 0) | (lost > 0)
    if not keep.any():
        return
    for sv in sorted(pd.unique(service[keep]), key=_service_sort_key):
        m = keep & (service == sv)
        g, lo = gained[m], lost[m]
        _CompactLayer(
            cells[m], {"d": [f"+{a:.0f}人" if a > 0 else f"-{b:.0f}人" for a, b in zip(g, lo)],
                       "g": [int(a > 0) for a in g]},
            '{fillColor: P.g[i] ? "#1a9850" : "#d73027"}',
            tooltip=f'"服务：{service_label(sv, short=True)}<br>变化：" + P.d[i]',
            marker={"radius": 4, "stroke": False, "fill": True, "fillOpacity": 0.85},
        ).add_to(ov.sub(KIND_CHANGE, sv))
    ov.legend.append((
        "",
        "<div class='cov-legend-h'>覆盖变化（方案比较）</div>"
        '<div><span class="cov-dot cov-small" style="background:#1a9850"></span>新增覆盖</div>'
        '<div><span class="cov-dot cov-small" style="background:#d73027"></span>失去覆盖</div>',
    ))


def _add_circles(ov: _Overlays, circles: gpd.GeoDataFrame) -> None:
    _need(circles, "service", "circles")
    circles = circles.copy()
    circles["service"] = circles["service"].map(_text)
    for service in sorted(circles["service"].unique(), key=_service_sort_key):
        sub = circles[circles["service"] == service]
        colour = SERVICES[service].colour if service in SERVICES else "#636363"
        _CompactLayer(
            sub, {}, f'{{color: "{colour}", weight: 1.5, fillColor: "{colour}", fillOpacity: 0.15}}',
        ).add_to(ov.sub(KIND_CIRCLES, service))
        ov.legend.append((service,
            f'<div><span class="cov-swatch" style="background:{colour}33;border:1.5px solid '
            f'{colour}"></span>{html.escape(service_label(service, short=True))}服务圈</div>'
        ))


def _add_simple(
    ov: _Overlays,
    gdf: gpd.GeoDataFrame,
    label: str,
    style: dict[str, Any],
    marker: folium.CircleMarker | None,
    legend_html: str,
) -> None:
    cols = {"名称": "name", "服务": "category", "说明": "note"}
    data = {}
    for zh, col in cols.items():
        if col in gdf.columns:
            vals = gdf[col].map(_text)
            if zh == "服务":
                vals = vals.map(service_label)
            data[zh] = vals.to_numpy()
    if "service" in gdf.columns and "服务" not in data:
        data["服务"] = gdf["service"].map(_text).map(service_label).to_numpy()
    props = pd.DataFrame(data, index=range(len(gdf)))
    group = ov.common(label)
    if marker is None and not (gdf.geom_type == "Point").all():  # outlines: the compact encoding
        fields = list(data)[:2]
        tip = ' + "<br>" + '.join(f'"{f}：" + P[{_js(f)}][i]' for f in fields)
        _CompactLayer(gdf, {f: list(data[f]) for f in fields}, _js(style), tooltip=tip).add_to(group)
    else:
        _geojson(
            _feature_collection(gdf, props),
            lambda f: dict(style),
            marker=marker,
            tooltip_fields=list(data)[:2],
        ).add_to(group)
    ov.legend.append(("", legend_html))


# --------------------------------------------------------------------------------------------
# page furniture
# --------------------------------------------------------------------------------------------

_PAGE_CSS = """
<style>
  html, body { margin: 0; padding: 0; font-family: "Microsoft YaHei", "PingFang SC",
    "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif; }
  .leaflet-container { background: #f2efe9; }
  /* metric scale bar only (Leaflet's second line is in miles) */
  .leaflet-control-scale-line + .leaflet-control-scale-line { display: none; }
  .cov-title { position: fixed; top: 10px; left: 50%; transform: translateX(-50%); z-index: 1000;
    max-width: calc(100vw - 580px); text-align: center;
    background: rgba(255,255,255,0.92); padding: 6px 16px; border-radius: 4px; font-size: 18px;
    font-weight: bold; box-shadow: 0 1px 4px rgba(0,0,0,0.3); }
  .cov-banner { position: fixed; top: 52px; left: 50%; transform: translateX(-50%); z-index: 1000;
    background: #fff3cd; color: #8a4b00; border: 2px dashed #d9822b; padding: 4px 14px;
    border-radius: 4px; font-size: 15px; font-weight: bold; }
  .cov-legend { position: fixed; bottom: 64px; left: 10px; z-index: 1000; max-height: calc(100vh - 220px);
    overflow-y: auto; background: rgba(255,255,255,0.92); padding: 8px 10px; border-radius: 4px;
    font-size: 12px; line-height: 18px; box-shadow: 0 1px 4px rgba(0,0,0,0.3); }
  .cov-legend-title { font-size: 14px; font-weight: bold; margin-bottom: 2px; }
  .cov-legend-h { font-weight: bold; margin-top: 4px; }
  .cov-swatch { display: inline-block; width: 14px; height: 10px; margin-right: 5px;
    vertical-align: middle; border: 1px solid #777; }
  .cov-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
    margin-right: 5px; vertical-align: middle; border: 1px solid #fff; box-shadow: 0 0 1px #000; }
  .cov-dot.cov-small { width: 7px; height: 7px; }
  .cov-line { display: inline-block; width: 16px; height: 0; margin-right: 5px;
    vertical-align: middle; border-top: 2px dashed #000; }
  .cov-switcher { background: rgba(255,255,255,0.95); padding: 6px 10px; border-radius: 4px;
    box-shadow: 0 1px 4px rgba(0,0,0,0.3); font-size: 14px; line-height: 22px; }
  .cov-switcher-h { font-weight: bold; font-size: 13px; }
  .cov-switcher label { display: block; cursor: pointer; white-space: nowrap; }
  .cov-north { background: rgba(255,255,255,0.9); border-radius: 4px; padding: 2px 5px;
    box-shadow: 0 1px 4px rgba(0,0,0,0.3); line-height: 0; }
  .cov-unit-label span { position: absolute; left: 0; top: 0; transform: translate(-50%, -50%);
    white-space: nowrap; font-size: 12px; font-weight: bold; color: #222; pointer-events: none;
    text-shadow: 0 0 2px #fff, 0 0 2px #fff, 0 0 3px #fff, 0 0 4px #fff; }
  .cov-source { position: fixed; right: 10px; bottom: 24px; z-index: 1000; max-width: 400px;
    background: rgba(255,255,255,0.92); padding: 5px 8px; border-radius: 4px; font-size: 11px;
    line-height: 15px; color: #333; box-shadow: 0 1px 4px rgba(0,0,0,0.3); }
  .cov-source .cov-note { color: #8a4b00; font-weight: bold; }
</style>
"""

#: 乡镇 name labels (``__P__``: ``[lat, lon, name]``, largest unit first) in the label layer. After
#: every zoom a label that would overlap one already placed (a larger unit's) is hidden.
_LABELS_JS = """(function () {
  var g = __PARENT__, map = __MAP__, M = [];
  __P__.forEach(function (p) {
    var s = document.createElement("span"); s.textContent = p[2];
    M.push(L.marker([p[0], p[1]], {icon: L.divIcon({className: "cov-unit-label", html: s, iconSize: null}),
      interactive: false, keyboard: false}).addTo(g));
  });
  function declutter() {
    if (!map.hasLayer(g)) return;
    var kept = [];
    M.forEach(function (m) {
      var el = m.getElement(); if (!el) return;
      var s = el.firstChild, r; s.style.visibility = ""; r = s.getBoundingClientRect();
      var clash = kept.some(function (k) {
        return r.left < k.right + 2 && k.left < r.right + 2 && r.top < k.bottom + 2 && k.top < r.bottom + 2; });
      if (clash) s.style.visibility = "hidden"; else kept.push(r);
    });
  }
  map.on("zoomend covlayout", declutter); g.on("add", declutter);
})();"""

#: North arrow (inline SVG) under the zoom buttons; the map is north-up (Web Mercator).
_NORTH_JS = """(function () {
  var c = L.control({position: "topleft"});
  c.onAdd = function () {
    var d = L.DomUtil.create("div", "cov-north"); d.title = "指北针 / north";
    d.innerHTML = '<svg width="28" height="44" viewBox="0 0 28 44" role="img" aria-label="北 N">' +
      '<text x="14" y="12" text-anchor="middle" font-size="13" font-weight="bold" font-family="sans-serif">N</text>' +
      '<polygon points="14,15 23,41 14,35" fill="#222"/>' +
      '<polygon points="14,15 5,41 14,35" fill="#fff" stroke="#222" stroke-width="1"/></svg>';
    return d;
  };
  c.addTo(__MAP__);
})();"""

#: The service switcher: radio buttons (top right, above the layer control); a choice puts that
#: service's sub-layer in every per-service overlay and takes the others out, shows its legend
#: blocks, retitles the page, selects it in the 情景推演 panel and restacks the overlays in order.
_SWITCHER_JS = """(function () {
  var map = __MAP__, K = __K__, ORDER = __ORDER__, T = __T__, box;
  function restack() { ORDER.forEach(function (g) { if (map.hasLayer(g)) g.bringToFront(); }); }
  function show(key) {
    K.forEach(function (k) { for (var s in k[1]) {
      if (s === key) k[0].addLayer(k[1][s]); else k[0].removeLayer(k[1][s]); } });
    document.querySelectorAll("[data-cov-service]").forEach(function (e) {
      e.style.display = e.getAttribute("data-cov-service") === key ? "" : "none"; });
    var t = document.querySelector(".cov-title"); if (t) t.textContent = T[key];
    document.title = T[key];
    box.setAttribute("data-service", key);
    box.querySelectorAll("input").forEach(function (c) { c.checked = c.value === key; });
    var sel = document.getElementById("cov-wi-service");
    var o = sel && sel.querySelector('option[data-key="' + key + '"]');
    if (o && sel.value !== o.value) { sel.value = o.value; sel.dispatchEvent(new Event("change")); }
    restack(); map.fire("covlayout");
  }
  var c = L.control({position: "topright"});
  c.onAdd = function () {
    box = L.DomUtil.create("div", "cov-switcher"); box.innerHTML = __HTML__;
    L.DomEvent.disableClickPropagation(box); L.DomEvent.disableScrollPropagation(box);
    box.addEventListener("change", function (e) { if (e.target.name === "cov-service") show(e.target.value); });
    return box;
  };
  c.addTo(map);
  map.on("overlayadd", restack);
  show(__SHOWN__);
})();"""


def _legend_item(service: str, item: str, shown: str | None) -> str:
    """A legend block; one of a service is wrapped in ``data-cov-service`` (hidden unless ``shown``)."""
    if not service:
        return item
    hide = "" if service == shown else ' style="display:none"'
    return f'<div data-cov-service="{html.escape(service)}"{hide}>{item}</div>'


def _switcher_js(ov: _Overlays, services: Sequence[str], titles: dict[str, str], no_data: Collection[str]) -> str:
    """The switcher's script for :data:`_SWITCHER_JS` (layer variables by name; labels from :func:`service_label`)."""
    kinds = ",".join(
        "[" + parent.get_name() + ",{" + ",".join(f"{_js(s)}:{g.get_name()}" for s, g in subs.items()) + "}]"
        for parent, subs in ov.kinds.values()
    )
    radios = '<div class="cov-switcher-h">服务 / Service</div>' + "".join(
        f'<label><input type="radio" name="cov-service" value="{html.escape(s)}"> '
        f"{html.escape(service_label(s))}{'（无设施数据）' if s in no_data else ''}</label>"
        for s in services
    )
    return (
        _SWITCHER_JS.replace("__MAP__", ov.m.get_name()).replace("__K__", f"[{kinds}]")
        .replace("__ORDER__", "[" + ",".join(g.get_name() for g in ov.order) + "]")
        .replace("__T__", _js(titles)).replace("__HTML__", _js(radios)).replace("__SHOWN__", _js(ov.shown))
    )


#: The note every map carries (the 《地图管理条例》: published maps need a 审图号).
MAP_NOTE = "示意图，不作为权属依据。公开出版或展示的地图须依法送审并取得审图号。"


def _source_block(run: dict[str, Any] | None, synthetic: bool, tiles: str) -> str:
    """数据来源 (input files), 制图日期, 标准预设 and 底图 of the run, the synthetic-data line and :data:`MAP_NOTE`."""
    run = run or {}
    lines = []
    files = list(dict.fromkeys(str(s["file"]) for s in run.get("sources") or [] if s.get("file")))
    if files:
        lines.append("数据来源：" + "、".join(files))
    if run.get("date"):
        lines.append(f"制图日期：{run['date']}")
    preset, preset_title = _text(run.get("preset")), _text(run.get("preset_title"))
    if preset or preset_title:
        both = f"{preset_title}（{preset}）" if preset and preset_title and preset != preset_title else preset_title or preset
        lines.append(f"标准预设：{both}")
    basemap = {"none": "无底图（离线）", "osm": "OpenStreetMap", "amap": "高德地图（GCJ-02）", "tianditu": "天地图"}
    lines.append(f"底图：{basemap[tiles]}")
    body = "".join(f"<div>{html.escape(x)}</div>" for x in lines)
    if synthetic or run.get("synthetic"):
        body += '<div class="cov-note">合成示例数据（synthetic demo data），不代表任何真实地区。</div>'
    return f'<div class="cov-source" id="cov-source">{body}<div class="cov-note">{MAP_NOTE}</div></div>'


def _tile_layers(m: folium.Map, tiles: str, tianditu_key: str | None) -> None:
    if tiles == "none":
        return
    for i, (url, attr, subdomains) in enumerate(TILES[tiles]):
        if tiles == "tianditu":
            url = url.replace("{key}", str(tianditu_key))
        folium.TileLayer(
            tiles=url,
            attr=attr,
            name={"osm": "OpenStreetMap", "amap": "高德地图", "tianditu": "天地图"}[tiles]
            + ("注记" if i else ""),
            subdomains=subdomains,
            max_zoom=18,
            overlay=bool(i),
            control=not bool(i),
        ).add_to(m)


# --------------------------------------------------------------------------------------------
# what-if panel: toggle listed sites, figures recomputed in the page
# --------------------------------------------------------------------------------------------

_WHATIF_CSS = """
<style>
  .cov-whatif { position: fixed; bottom: 30px; left: 50%; transform: translateX(-50%); z-index: 1000;
    width: 340px; max-height: 48vh; overflow-y: auto; background: rgba(255,255,255,0.95);
    padding: 8px 10px; border-radius: 4px; font-size: 12px; line-height: 17px;
    box-shadow: 0 1px 4px rgba(0,0,0,0.3); }
  .cov-whatif summary { font-size: 14px; font-weight: bold; cursor: pointer; }
  .cov-whatif table { border-collapse: collapse; width: 100%; margin: 4px 0; }
  .cov-whatif td, .cov-whatif th { border-bottom: 1px solid #ddd; padding: 1px 3px; text-align: right; }
  .cov-whatif td:first-child, .cov-whatif th:first-child { text-align: left; }
  .cov-whatif .cov-wi-note { color: #8a4b00; margin: 2px 0 4px 0; }
  .cov-whatif .cov-wi-sites { max-height: 150px; overflow-y: auto; border: 1px solid #ddd; padding: 2px; }
  .cov-whatif label { display: block; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
</style>
"""

#: The panel's script: ``covWhatIf(data, labels)`` builds the panel from :func:`coverage.pipeline.whatif_data`.
#: A group of (rule, cell) rows counts once when any of its sites is on; figures are rounded to
#: whole people only when shown.
_WHATIF_JS = """<script>
function covWhatIf(D, LBL) {
  var box = document.getElementById("cov-whatif"), svs = D.services, on = {}, cur = 0;
  svs.forEach(function (s) { on[s.key] = {}; s.on.forEach(function (i) { on[s.key][i] = true; }); });
  function esc(t) { var d = document.createElement("span"); d.textContent = t; return d.innerHTML; }
  function fmt(x) { return Math.round(x).toLocaleString("en-US"); }
  function pct(c, p) { return p > 0 ? (100 * c / p).toFixed(1) + "%" : "—"; }
  function calc(s) {
    var seen = new Uint8Array(s.w.length), add = 0, ua = new Float64Array(s.units.length);
    Object.keys(on[s.key]).forEach(function (i) {
      (s.sites[i] || []).forEach(function (g) {
        if (seen[g]) return; seen[g] = 1; add += s.w[g]; if (s.gu[g] >= 0) ua[s.gu[g]] += s.w[g]; });
    });
    return {c: s.base + add / 100, u: s.units.map(function (u, k) { return [u[0], u[1] + ua[k] / 100]; })};
  }
  function render() {
    var h = "<table><tr><th>服务 Service</th><th>覆盖人口 Covered</th><th>覆盖率 Share</th></tr>";
    svs.forEach(function (s) { var r = calc(s);
      h += '<tr><td>' + LBL[s.key] + '</td><td class="cov-wi-cov" data-service="' + s.key + '">' + fmt(r.c) +
        '</td><td class="cov-wi-share" data-service="' + s.key + '">' + pct(r.c, s.pop) + "</td></tr>"; });
    document.getElementById("cov-wi-figures").innerHTML = h + "</table>";
    var s = svs[cur], r = calc(s), t = "<table><tr><th>乡镇（街道）</th><th>覆盖人口</th><th>覆盖率</th></tr>";
    D.units.forEach(function (n, k) {
      t += '<tr class="cov-wi-unit"><td>' + esc(n) + "</td><td>" + fmt(r.u[k][1]) + "</td><td>" + pct(r.u[k][1], r.u[k][0]) + "</td></tr>"; });
    document.getElementById("cov-wi-units").innerHTML = t + "</table>";
  }
  function sites() {
    var s = svs[cur], h = "";
    D.sites.forEach(function (x, i) { if (!(i in s.ft)) return;
      h += '<label><input type="checkbox" data-site="' + i + '"' + (on[s.key][i] ? " checked" : "") + "> " +
        esc(x[0]) + "（" + (x[1] === "p" ? "新增 " : "拟建 ") + esc(s.ft[i]) + "）</label>"; });
    var el = document.getElementById("cov-wi-sites"); el.innerHTML = h;
    el.querySelectorAll("input").forEach(function (c) { c.addEventListener("change", function () {
      var k = svs[cur].key, i = c.getAttribute("data-site");
      if (c.checked) on[k][i] = true; else delete on[k][i]; render(); }); });
  }
  var sel = document.getElementById("cov-wi-service");
  sel.innerHTML = svs.map(function (s, k) {
    return '<option value="' + k + '" data-key="' + s.key + '">' + LBL[s.key] + "</option>"; }).join("");
  sel.addEventListener("change", function () { cur = +sel.value; sites(); render(); });
  L.DomEvent.disableClickPropagation(box); L.DomEvent.disableScrollPropagation(box);
  sites(); render();
}
</script>"""


def _add_whatif(root: Any, data: dict[str, Any] | None) -> None:
    """Add the 情景推演 panel (its CSS in the head, the panel and script in the body) when there is data."""
    if not data:
        return
    root.header.add_child(_Raw(_WHATIF_CSS), name="coverage_whatif_css")
    root.html.add_child(_Raw(_whatif_panel(data)), name="coverage_whatif")


def _whatif_panel(data: dict[str, Any]) -> str:
    """The 情景推演 panel (foldable, bottom centre): service choice, the listed sites' check boxes, figures and 乡镇 table.

    Parameters
    ----------
    data : dict
        :func:`coverage.pipeline.whatif_data` (site names, per service the base figures and the
        sites' sparse catchments as groups of people).

    Returns
    -------
    str
        HTML (the panel and its inline script).
    """
    labels = {s["key"]: service_label(s["key"], short=True) for s in data["services"]}
    return (
        '<details class="cov-whatif" id="cov-whatif"><summary>情景推演 / What if</summary>'
        '<div class="cov-wi-note">仅可切换下列点位（情景候选点位、方案新增设施），覆盖人口按其服务圈即时重算；'
        "其他位置请用 covplan compare。<br>Only the listed sites can be toggled; for any other site "
        "use covplan compare.</div>"
        '<div>服务 / Service：<select id="cov-wi-service"></select></div>'
        '<div class="cov-wi-sites" id="cov-wi-sites"></div>'
        '<div id="cov-wi-figures"></div><div id="cov-wi-units"></div></details>'
        + _WHATIF_JS
        + f"<script>covWhatIf({_js(data)}, {_js(labels)});</script>"
    )


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------


def _add_layers(ov: _Overlays, layers: dict[str, gpd.GeoDataFrame | None], no_data: Collection[str]) -> None:
    """Every present layer, bottom to top: 乡镇 and their labels, 城区, circles, 15 km circle, uncovered, change, facilities, candidates, proposed."""
    if layers["units"] is not None:
        _add_units(ov, layers["units"], no_data)
    if layers["derived_urban"] is not None:
        _add_simple(
            ov, layers["derived_urban"], "城区（推算）",
            {"color": "#b03060", "weight": 2, "dashArray": "2 4", "fillColor": "#b03060", "fillOpacity": 0.08},
            None, '<div><span class="cov-swatch" style="background:#b03060;opacity:.4"></span>城区（推算）</div>',
        )
    if layers["circles"] is not None:
        _add_circles(ov, layers["circles"])
    if layers["urban_rural_circle"] is not None:
        _add_simple(
            ov,
            layers["urban_rural_circle"],
            "15公里城乡服务圈",
            {"color": "#000000", "weight": 2, "dashArray": "6 4", "fill": False},
            None,
            '<div><span class="cov-line"></span>15公里城乡服务圈</div>',
        )
    if layers["uncovered"] is not None:
        _add_uncovered(ov, layers["uncovered"])
    if layers["change"] is not None:
        _add_change(ov, layers["change"])
    if layers["facilities"] is not None:
        _add_facilities(ov, layers["facilities"])
    if layers["candidates"] is not None:
        _add_simple(
            ov,
            layers["candidates"],
            "候选点位",
            {"color": "#333333", "fillColor": "#ffffff"},
            folium.CircleMarker(radius=4, weight=1.5, fill=True, fill_opacity=1.0),
            '<div><span class="cov-dot" style="background:#fff;border:1.5px solid #333">'
            "</span>候选点位</div>",
        )
    if layers["proposed"] is not None:
        _add_simple(
            ov,
            layers["proposed"],
            "规划新增设施",
            {"color": "#000000", "fillColor": "#ffd700"},
            folium.CircleMarker(radius=8, weight=3, fill=True, fill_opacity=1.0),
            '<div><span class="cov-dot" style="background:#ffd700;border:2px solid #000">'
            "</span>规划新增设施</div>",
        )


def check_tiles(tiles: str, tianditu_key: str | None = None) -> None:
    """Raise a bilingual :class:`InputError` for an unknown basemap or a 天地图 basemap without key.

    Parameters
    ----------
    tiles : str
        ``none``, ``osm``, ``amap`` or ``tianditu``.
    tianditu_key : str, optional
        The user's 天地图 key.
    """
    if tiles not in ("none", "osm", "amap", "tianditu"):
        raise InputError(
            f"未知底图 tiles='{tiles}'；可选 none、osm、amap、tianditu。",
            f"unknown basemap tiles='{tiles}'; use none, osm, amap or tianditu.",
            field="tiles",
        )
    if tiles == "tianditu" and not (tianditu_key and str(tianditu_key).strip()):
        raise InputError(
            "天地图底图需要密钥（tk）：请在天地图官网申请“浏览器端”密钥后传入 tianditu_key，"
            "或改用 tiles='none'。",
            "the Tianditu basemap needs a key (tk): get a browser key from Tianditu and pass "
            "tianditu_key, or use tiles='none'.",
            field="tianditu_key",
        )


def write_map(  # noqa: PLR0913 - issue 11: to narrow/split
    path: str | os.PathLike[str],
    *,
    units: gpd.GeoDataFrame | None = None,
    facilities: gpd.GeoDataFrame | None = None,
    uncovered: gpd.GeoDataFrame | None = None,
    circles: gpd.GeoDataFrame | None = None,
    urban_rural_circle: gpd.GeoDataFrame | None = None,
    candidates: gpd.GeoDataFrame | None = None,
    proposed: gpd.GeoDataFrame | None = None,
    change: gpd.GeoDataFrame | None = None,
    derived_urban: gpd.GeoDataFrame | None = None,
    whatif: dict[str, Any] | Callable[[], dict[str, Any] | None] | None = None,
    no_data: Collection[str] = (),
    title: str,
    synthetic: bool = False,
    tiles: TileChoice = "none",
    tianditu_key: str | None = None,
    service: str | None = None,
    run: dict[str, Any] | None = None,
) -> Path:
    """Write the interactive meeting map ``map.html`` (self-contained, no network needed).

    The map shows **one service at a time**: a switcher (服务 / Service, top right) puts that
    service's 乡镇覆盖率, 服务圈, 未覆盖人口, 覆盖变化 and 设施 layers on the map and its legend
    blocks in the legend, and retitles the page ``<title> · <服务>覆盖``; the 乡镇 outlines and name
    labels, the 15 km circle, 城区, candidates and proposed sites stay for every service. A north
    arrow, a metric scale bar and a block with the 数据来源, 制图日期, 标准预设, 底图 and the note
    :data:`MAP_NOTE` (示意图 … 审图号) are always drawn.

    Every layer is optional (``None`` or empty is skipped). Inputs may be in any CRS; they are
    reprojected to EPSG:4326 (and shifted to GCJ-02 for ``tiles="amap"``). Polygons (units,
    circles) are simplified by ``MAP_SIMPLIFY_M`` and, with the uncovered and change points,
    written as 1e-5° integers (≈ 1 m) decoded in the page; facilities, candidates and proposed
    sites keep 1e-6° GeoJSON with their popups. layers.gpkg keeps the full detail.

    Parameters
    ----------
    path : str or path-like
        Output file (written atomically: a temporary file beside it, then renamed).
    units : GeoDataFrame, optional
        乡镇/街道 polygons with ``code, name, kind`` and optional ``share_<service>`` columns
        (coverage share 0–1); each share column becomes that service's 乡镇覆盖率 choropleth.
    facilities : GeoDataFrame, optional
        Facility points with ``fid, name, category, ftype, type_raw, tier, capacity,
        capacity_unit``; one 设施 layer per ``category`` (学校/医疗卫生/养老服务/体育健身), colours by
        ``ftype``, popups 名称/类型/级别/规模.
    uncovered : GeoDataFrame, optional
        Demand-cell (or block) centres lacking a service: ``pop`` and ``service``; one layer per
        service (未覆盖人口), coloured by people. A service with more than
        ``MAP_MAX_POINTS`` points is summed into blocks (``settings.MAP_BLOCK_M``, doubled until it
        fits) at the people-weighted centre, so a large county's map stays light.
    circles : GeoDataFrame, optional
        Reached-area polygons with a ``service`` column (one 服务圈 per service).
    urban_rural_circle : GeoDataFrame, optional
        The 15 km 城乡服务圈 polygon(s).
    candidates, proposed : GeoDataFrame, optional
        Candidate sites and proposed new facilities (points; ``name`` and ``category`` shown when
        present).
    change : GeoDataFrame, optional
        Plan vs baseline (:func:`coverage.compare.cell_diff`): cell points with ``gained``,
        ``lost`` and ``service``; 覆盖变化 per service (green gained, red lost).
    derived_urban : GeoDataFrame, optional
        The 城区 derived from the population grid (:mod:`coverage.urban`): layer 城区（推算）.
    whatif : dict or callable, optional
        :func:`coverage.pipeline.whatif_data` (or a callable returning it, called once the layers are
        drawn, so that the caller may compute it in another thread meanwhile): the 情景推演 panel,
        where the listed sites are toggled and the per-service figures and the 乡镇 table are
        recomputed in the page.
    no_data : collection of str
        Services without facility data: their coverage layers say 无设施数据 (grey), not 0 %.
    title : str
        Map title (the scenario), shown at the top and in the browser tab followed by
        `` · <服务>覆盖`` of the shown service.
    synthetic : bool
        Show the banner "合成示例数据 / synthetic demo data".
    tiles : {"none", "osm", "amap", "tianditu"}
        Basemap. ``"none"`` (default) loads nothing from the network.
    tianditu_key : str, optional
        天地图 key (tk), required for ``tiles="tianditu"``.
    service : str, optional
        Service shown when the page opens (``covplan site --category``, else the worst covered,
        chosen by the caller); the first service on the map (in :data:`SERVICES` order) when it is
        ``None`` or has no layer.
    run : dict, optional
        ``summary.json["run"]`` (``date``, ``preset``, ``preset_title``, ``sources``: list of
        ``{"key", "file"}``, ``synthetic``) for the 数据来源 / 制图日期 / 标准预设 block.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    InputError
        Unknown ``tiles``, missing Tianditu key, a layer without CRS or a required column.
    """
    check_tiles(tiles, tianditu_key)
    gcj = tiles == "amap"
    if uncovered is not None and len(uncovered):
        _need(uncovered, "service", "uncovered")
        _need(uncovered, "pop", "uncovered")
        uncovered = _merge_points(uncovered)
    # outlines are simplified for the map's scale; points keep their place
    simplify = {"units": MAP_SIMPLIFY_M, "circles": MAP_SIMPLIFY_M, "urban_rural_circle": MAP_SIMPLIFY_M}
    layers = {
        name: _display_frame(gdf, gcj, simplify.get(name, 0.0))
        for name, gdf in [
            ("units", units),
            ("facilities", facilities),
            ("uncovered", uncovered),
            ("circles", circles),
            ("urban_rural_circle", urban_rural_circle),
            ("candidates", candidates),
            ("proposed", proposed),
            ("change", change),
            ("derived_urban", derived_urban),
        ]
    }
    present = [g for g in layers.values() if g is not None]
    if present:
        bounds = np.array([g.total_bounds for g in present])
        minx, miny = bounds[:, 0].min(), bounds[:, 1].min()
        maxx, maxy = bounds[:, 2].max(), bounds[:, 3].max()
    else:
        minx, miny, maxx, maxy = 73.5, 18.0, 135.0, 53.5  # China
    centre = [round((miny + maxy) / 2, 6), round((minx + maxx) / 2, 6)]

    m = folium.Map(
        location=centre,
        zoom_start=10,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,
    )
    # No CDN: drop folium's default assets and inline Leaflet from an installed package.
    m.default_js = []
    m.default_css = []
    js, css = inline_assets()
    root = m.get_root()
    assert isinstance(root, Figure)  # a folium Map always sits in a branca Figure
    root.header.add_child(_Raw(f"<style>{css}</style>"), name="leaflet_css")
    root.header.add_child(_Raw(f"<script>{js}</script>"), name="leaflet")
    root.header.add_child(_Raw(_PAGE_CSS), name="coverage_css")
    root.header.add_child(_Raw(_DECODE_JS), name="coverage_decode")
    _tile_layers(m, tiles, tianditu_key)

    services = map_services(layers)
    shown = service if service in services else (services[0] if services else None)
    titles = {s: f"{title} · {service_label(s)}覆盖" for s in services}
    root.title = titles.get(shown, title) if shown else title
    ov = _Overlays(m, shown)
    _add_layers(ov, layers, no_data)
    if present:
        m.fit_bounds([[miny, minx], [maxy, maxx]], padding=(10, 10))
    _Code(_NORTH_JS.replace("__MAP__", m.get_name())).add_to(m)
    if shown is not None:  # added before the layer control: the switcher sits above it
        _Code(_switcher_js(ov, services, titles, no_data)).add_to(m)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)

    furniture = [f'<div class="cov-title">{html.escape(root.title)}</div>']
    if synthetic:
        furniture.append('<div class="cov-banner">合成示例数据 / synthetic demo data</div>')
    if ov.legend:
        furniture.append(
            '<div class="cov-legend"><div class="cov-legend-title">图例</div>'
            + "".join(_legend_item(sv, item, shown) for sv, item in ov.legend)
            + "</div>"
        )
    furniture.append(_source_block(run, synthetic, tiles))
    root.html.add_child(_Raw("\n".join(furniture)), name="coverage_furniture")
    _add_whatif(root, whatif() if callable(whatif) else whatif)

    text = normalise_ids(root.render())
    out = Path(path)
    with atomic_target(out, suffix=".html") as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return out
