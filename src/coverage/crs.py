"""Coordinate reference systems used in Chinese planning practice.

* :func:`local_metric_crs` picks the internal metric CRS for an area: the CGCS2000 3-degree
  Gauss–Krüger zone (EPSG:4534–4554, "CM" variants without a false-easting zone prefix) inside
  China, UTM elsewhere.
* GCJ-02 (火星坐标, used by Amap/高德 and Tencent) and BD-09 (Baidu/百度) are obfuscated offsets of
  WGS-84 with no EPSG code. :func:`gcj02_to_wgs84` and :func:`bd09_to_wgs84` invert them by fixed-point
  iteration to well under 1 m; the forward functions follow the widely published formulas.
* CGCS2000 (EPSG:4490) and WGS-84 differ by centimetres and are treated as equal at planning scale.

All functions are vectorised over NumPy arrays.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 formula
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0



def _out_of_china(lon: NDArray, lat: NDArray) -> NDArray:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _transform_lat(x: NDArray, y: NDArray) -> NDArray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: NDArray, y: NDArray) -> NDArray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray, NDArray]:
    return np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray, NDArray]:
    """Apply the GCJ-02 offset to WGS-84 coordinates (points outside China are unchanged).

    Parameters
    ----------
    lon, lat : array_like
        WGS-84 longitude and latitude in degrees.

    Returns
    -------
    tuple of ndarray
        GCJ-02 longitude and latitude.
    """
    lon, lat = _as_arrays(lon, lat)
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    out = _out_of_china(lon, lat)
    return np.where(out, lon, lon + dlon), np.where(out, lat, lat + dlat)


def gcj02_to_wgs84(
    lon: ArrayLike, lat: ArrayLike, tol_deg: float = 1e-9, max_iter: int = 30
) -> tuple[NDArray, NDArray]:
    """Remove the GCJ-02 offset by fixed-point iteration (error far below 1 m).

    Starts from the GCJ-02 point and repeats ``wgs = wgs - (forward(wgs) - gcj)`` until the step is
    below ``tol_deg`` (1e-9° ≈ 0.1 mm).

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 longitude and latitude in degrees (as exported by Amap/高德).
    tol_deg : float
        Convergence tolerance in degrees.
    max_iter : int
        Iteration cap; the offset is smooth, so 3–5 iterations are typical.

    Returns
    -------
    tuple of ndarray
        WGS-84 longitude and latitude.
    """
    glon, glat = _as_arrays(lon, lat)
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(max_iter):
        flon, flat = wgs84_to_gcj02(wlon, wlat)
        dlon, dlat = flon - glon, flat - glat
        wlon, wlat = wlon - dlon, wlat - dlat
        if np.all(np.abs(dlon) < tol_deg) and np.all(np.abs(dlat) < tol_deg):
            break
    return wlon, wlat


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray, NDArray]:
    """Convert GCJ-02 to BD-09 (Baidu) with the published formula."""
    x, y = _as_arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(
    lon: ArrayLike, lat: ArrayLike, tol_deg: float = 1e-10, max_iter: int = 30
) -> tuple[NDArray, NDArray]:
    """Invert :func:`gcj02_to_bd09` by fixed-point iteration."""
    blon, blat = _as_arrays(lon, lat)
    glon, glat = blon - 0.0065, blat - 0.006
    for _ in range(max_iter):
        flon, flat = gcj02_to_bd09(glon, glat)
        dlon, dlat = flon - blon, flat - blat
        glon, glat = glon - dlon, glat - dlat
        if np.all(np.abs(dlon) < tol_deg) and np.all(np.abs(dlat) < tol_deg):
            break
    return glon, glat


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray, NDArray]:
    """Convert WGS-84 to BD-09 (through GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray, NDArray]:
    """Convert BD-09 (Baidu) to WGS-84 (through GCJ-02), error far below 1 m."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str) -> tuple[NDArray, NDArray]:
    """Convert lon/lat declared as ``"gcj02"``, ``"bd09"`` or ``"wgs84"`` to WGS-84.

    Parameters
    ----------
    lon, lat : array_like
        Coordinates in degrees.
    crs : {"gcj02", "bd09", "wgs84"}
        The declared system (case-insensitive; ``"epsg:4326"`` and ``"cgcs2000"`` count as WGS-84).

    Returns
    -------
    tuple of ndarray
    """
    key = str(crs).lower().replace("-", "").replace("_", "")
    if key == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if key == "bd09":
        return bd09_to_wgs84(lon, lat)
    if key in {"wgs84", "epsg:4326", "4326", "cgcs2000", "epsg:4490", "4490"}:
        return _as_arrays(lon, lat)
    raise ValueError(f"unknown lon/lat system {crs!r}; use gcj02, bd09 or wgs84")


def offset_metres(lon: ArrayLike, lat: ArrayLike) -> NDArray:
    """Size of the GCJ-02 offset at WGS-84 points, in metres (0 outside China).

    Used to judge whether a layer declared in one system is really in another: points that land
    closer to road/POI data after a conversion of about this size were probably declared wrongly.
    """
    lon, lat = _as_arrays(lon, lat)
    glon, glat = wgs84_to_gcj02(lon, lat)
    return haversine_m(lon, lat, glon, glat)


def haversine_m(lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike) -> NDArray:
    """Great-circle distance in metres between lon/lat points (spherical Earth, R = 6,371,008.8 m)."""
    x1, y1, x2, y2 = (np.radians(np.asarray(a, dtype="float64")) for a in (lon1, lat1, lon2, lat2))
    a = np.sin((y2 - y1) / 2) ** 2 + np.cos(y1) * np.cos(y2) * np.sin((x2 - x1) / 2) ** 2
    return 2 * 6371008.8 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def local_metric_crs(lon: float, lat: float) -> CRS:
    """Choose the internal metric CRS for an area centred at ``(lon, lat)`` (WGS-84 degrees).

    Inside China (73.5°–136.5° E, 15°–55° N) this is the CGCS2000 3-degree Gauss–Krüger zone whose
    central meridian is nearest (EPSG:4534 for 75° E … EPSG:4554 for 135° E), the system Chinese
    planning offices use. Elsewhere it is the WGS-84 UTM zone.

    Parameters
    ----------
    lon, lat : float
        Centre of the area in degrees.

    Returns
    -------
    pyproj.CRS
    """
    if 73.5 <= lon <= 136.5 and 15.0 <= lat <= 55.0:
        cm = int(round(lon / 3.0)) * 3
        cm = min(max(cm, 75), 135)
        return CRS.from_epsg(4534 + (cm - 75) // 3)
    zone = int((lon + 180.0) // 6.0) + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
