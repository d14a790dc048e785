"""Plan versus baseline: who gains and who loses coverage, by service and 乡镇/街道.

Both scenarios are evaluated with the same standards preset (the baseline's). Cells are matched by
their grid id (``cell``); a cell present in only one scenario (e.g. a future-year population raster)
counts with zero people on the other side. Per cell and service, with ``c`` the people covered:

* gained = max(c_plan − c_base, 0)   (people newly covered, 新增覆盖人口)
* lost   = max(c_base − c_plan, 0)   (people losing coverage, 失去覆盖人口)

so that covered_plan − covered_base = gained − lost in every unit and in the county.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from coverage import categories, evaluate
from coverage.standards import Preset

DIFF_COLUMNS = [
    "service", "unit_code", "unit_name", "population_base", "population_plan",
    "covered_base", "covered_plan", "gained", "lost", "share_base", "share_plan", "share_change",
]


def _per_cell(cells: pd.DataFrame, preset: Preset, service: str) -> pd.DataFrame:
    pop, cov = evaluate.service_cells(cells, preset, service)
    return pd.DataFrame(
        {"pop": pop, "cov": cov, "unit_code": cells["unit_code"].to_numpy(),
         "unit_name": cells["unit_name"].to_numpy()},
        index=pd.Index(cells["cell"].to_numpy(), name="cell"),
    )


def _joined(base_cells: pd.DataFrame, plan_cells: pd.DataFrame, preset: Preset, service: str) -> pd.DataFrame:
    """Both runs' people and covered people per cell (outer join on ``cell``), with gained/lost."""
    b = _per_cell(base_cells, preset, service)
    p = _per_cell(plan_cells, preset, service)
    j = b.merge(p, left_index=True, right_index=True, how="outer", suffixes=("_b", "_p"))
    j[["pop_b", "cov_b", "pop_p", "cov_p"]] = j[["pop_b", "cov_b", "pop_p", "cov_p"]].fillna(0.0)
    j["unit_code"] = j["unit_code_p"].fillna(j["unit_code_b"])
    j["unit_name"] = j["unit_name_p"].fillna(j["unit_name_b"])
    delta = j["cov_p"] - j["cov_b"]
    j["gained"] = np.maximum(delta, 0.0)
    j["lost"] = np.maximum(-delta, 0.0)
    return j


def cell_diff(base_cells: gpd.GeoDataFrame, plan_cells: gpd.GeoDataFrame, preset: Preset) -> gpd.GeoDataFrame:
    """Per-cell gains and losses for every service with headline rules.

    Parameters
    ----------
    base_cells, plan_cells : geopandas.GeoDataFrame
        Demand cells of the two runs with their ``t_<rule id>`` columns (``pipeline.circle_times``).
    preset : Preset
        Standards preset used for both.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per (service, cell) where anything changed: ``service``, ``cell``, ``unit_code``,
        ``unit_name``, ``pop_base``, ``pop_plan``, ``covered_base``, ``covered_plan``, ``gained``,
        ``lost``, geometry (cell centre).
    """
    geom = pd.concat([
        base_cells.set_index("cell").geometry, plan_cells.set_index("cell").geometry
    ])
    geom = geom[~geom.index.duplicated()]
    frames = []
    for service in categories.SERVICES:
        if not preset.headline(service):
            continue
        j = _joined(base_cells, plan_cells, preset, service)
        out = pd.DataFrame({
            "service": service, "cell": j.index.to_numpy(),
            "unit_code": j["unit_code"].to_numpy(), "unit_name": j["unit_name"].to_numpy(),
            "pop_base": j["pop_b"].to_numpy(), "pop_plan": j["pop_p"].to_numpy(),
            "covered_base": j["cov_b"].to_numpy(), "covered_plan": j["cov_p"].to_numpy(),
            "gained": j["gained"].to_numpy(), "lost": j["lost"].to_numpy(),
        })
        changed = (out["gained"] > 0) | (out["lost"] > 0) | (out["pop_base"] != out["pop_plan"])
        frames.append(out[changed.to_numpy()])
    crs = base_cells.crs
    if not frames:
        return gpd.GeoDataFrame(columns=["service", "cell", "gained", "lost"], geometry=[], crs=crs)
    df = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(df, geometry=geom.reindex(df["cell"]).to_numpy(), crs=crs)


def unit_diff(base_cells: gpd.GeoDataFrame, plan_cells: gpd.GeoDataFrame, preset: Preset) -> pd.DataFrame:
    """Coverage difference by service and 乡镇/街道, with a county row (``unit_code`` ``""``) first.

    Parameters
    ----------
    base_cells, plan_cells : geopandas.GeoDataFrame
        Demand cells of the two runs with their ``t_<rule id>`` columns.
    preset : Preset
        Standards preset used for both.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DIFF_COLUMNS`.
    """
    rows = []
    for service in categories.SERVICES:
        if not preset.headline(service):
            continue
        j = _joined(base_cells, plan_cells, preset, service)
        groups = [("", "全县 / county", j)] + [
            (code, str(g["unit_name"].iloc[0]), g) for code, g in j.groupby("unit_code", sort=True)
        ]
        for code, name, g in groups:
            pb, pp = float(g["pop_b"].sum()), float(g["pop_p"].sum())
            cb, cp = float(g["cov_b"].sum()), float(g["cov_p"].sum())
            sb = cb / pb if pb > 0 else np.nan
            sp = cp / pp if pp > 0 else np.nan
            rows.append({
                "service": service, "unit_code": code, "unit_name": name,
                "population_base": pb, "population_plan": pp, "covered_base": cb, "covered_plan": cp,
                "gained": float(g["gained"].sum()), "lost": float(g["lost"].sum()),
                "share_base": sb, "share_plan": sp, "share_change": sp - sb,
            })
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)
