"""Outputs: interactive map, Excel project bank, GeoPackage and HTML report."""
