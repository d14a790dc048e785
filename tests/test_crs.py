"""coverage.crs: GCJ-02 / BD-09 conversions and the choice of metric CRS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coverage import crs

AMAP_FILES = [
    "macau_amap_medical_healthcare.csv",
    "macau_amap_education_culture.csv",
    "macau_amap_sports_leisure.csv",
]


@pytest.mark.parametrize("name", AMAP_FILES)
def test_gcj02_to_wgs84_matches_amap_wgs84_columns(shared_data, name):
    """The Amap exports carry both GCJ-02 and WGS-84 columns: our inverse must agree within 1 m."""
    df = pd.read_csv(shared_data / "macau" / "amap_poi_csv" / name, encoding="utf-8-sig")
    lon, lat = crs.gcj02_to_wgs84(df["lon_gcj02"], df["lat_gcj02"])
    err = crs.haversine_m(lon, lat, df["lon_wgs84"], df["lat_wgs84"])
    assert len(df) > 100
    assert np.nanmax(err) < 1.0
    # and the offset really is there (a no-op conversion would fail this)
    raw = crs.haversine_m(df["lon_gcj02"], df["lat_gcj02"], df["lon_wgs84"], df["lat_wgs84"])
    assert np.nanmedian(raw) > 100.0


@settings(max_examples=200, deadline=None)
@given(st.floats(74.0, 134.0), st.floats(18.0, 53.0))
def test_round_trips_inside_china(lon, lat):
    g = crs.wgs84_to_gcj02(lon, lat)
    back = crs.gcj02_to_wgs84(*g)
    assert crs.haversine_m(lon, lat, *back) < 0.01
    b = crs.wgs84_to_bd09(lon, lat)
    back = crs.bd09_to_wgs84(*b)
    assert crs.haversine_m(lon, lat, *back) < 0.01
    # the GCJ-02 offset is of the documented size (tens to ~700 m)
    assert 1.0 < float(crs.offset_metres(lon, lat)) < 1200.0


def test_outside_china_unchanged():
    lon, lat = crs.wgs84_to_gcj02([-46.63, 24.94], [-23.55, 60.17])
    assert np.allclose(lon, [-46.63, 24.94]) and np.allclose(lat, [-23.55, 60.17])


def test_to_wgs84_keywords():
    lon, lat = crs.wgs84_to_gcj02(113.55, 22.19)
    for key in ("gcj02", "GCJ-02", "gcj_02"):
        w = crs.to_wgs84(lon, lat, key)
        assert crs.haversine_m(113.55, 22.19, *w) < 0.01
    assert crs.to_wgs84(113.55, 22.19, "wgs84")[0] == pytest.approx(113.55)
    with pytest.raises(ValueError):
        crs.to_wgs84(1, 2, "bogus")


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [(106.7, 35.5, 4545), (105.4, 35.5, 4544), (113.55, 22.19, 4547), (114.3, 30.6, 4547),
     (-46.6, -23.5, 32723), (24.94, 60.17, 32635)],
)
def test_local_metric_crs(lon, lat, epsg):
    assert crs.local_metric_crs(lon, lat).to_epsg() == epsg


def test_haversine_known_distance():
    # one degree of latitude is about 111.2 km
    assert crs.haversine_m(0, 0, 0, 1) == pytest.approx(111195, rel=1e-3)
