"""Checks that need the road graph: who has no road access, what is cut off, ends that almost touch.

:mod:`coverage.inputs` checks the files; these checks run where the graphs are built and snapped
(:func:`coverage.pipeline.build_model`), so ``covplan validate`` and every computing command report
them alike. They are warnings: the figures can still be computed, but a planner must know that
they rest on a road network that may be broken.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from coverage import settings
from coverage.access import Snapped
from coverage.errors import Problem
from coverage.network import RoadGraph


def network_problems(
    graphs: Mapping[str, RoadGraph],
    population: pd.Series,
    snapped_cells: Mapping[str, Snapped],
    snapped_facilities: Mapping[str, Snapped],
    roads_file: str | Path | None = None,
) -> list[Problem]:
    """Warnings about the road network as the demand and the facilities see it.

    For each mode's graph: the share of people more than ``settings.SNAP_MAX_M`` from any kept road
    node (no road access) above ``settings.WARN_NO_ROAD_SHARE``; the share of people, and of
    facilities, snapped to a component other than the largest above ``settings.WARN_CUT_OFF_SHARE``.
    When either fires and the line reader found dangling ends that almost touch another line
    (``stats["dangling_near"]``), the message suggests ``network.snap_m``.

    Parameters
    ----------
    graphs : mapping of mode → RoadGraph
    population : pandas.Series
        People per demand cell, in the order of ``snapped_cells``.
    snapped_cells, snapped_facilities : mapping of mode → Snapped
    roads_file : path, optional
        Named in the problems.

    Returns
    -------
    list of Problem
        At most one warning per mode.
    """
    out: list[Problem] = []
    pop = np.asarray(population, dtype=float)
    total = float(pop.sum())
    for mode, g in graphs.items():
        sc, sf = snapped_cells[mode], snapped_facilities[mode]
        no_road = float(pop[~sc.ok].sum()) / total if total > 0 else 0.0
        cut_cells = sc.ok & (g.component[sc.node] != 0)
        cut_pop = float(pop[cut_cells].sum()) / total if total > 0 else 0.0
        cut_fac = (sf.ok & (g.component[sf.node] != 0)).sum()
        fac_share = float(cut_fac) / max(len(sf), 1)
        if not (no_road > settings.WARN_NO_ROAD_SHARE or cut_pop > settings.WARN_CUT_OFF_SHARE
                or fac_share > settings.WARN_CUT_OFF_SHARE):
            continue
        st = g.stats
        near = int(st.get("dangling_near", 0))
        dropped = int(st.get("nodes_dropped_small_components", 0))
        hint_zh = hint_en = ""
        if near:
            hint_zh = (f"路网中有 {near} 个断头端点离另一条道路不到 {settings.DANGLING_GAP_M:.0f} 米却没有连上（共 {st.get('dangling_ends', 0)} 个断头），"
                       f"可能是绘制时没有捕捉。可在情景中设置 network.snap_m: 10（把相距 10 米内的端点接上）后重新运行。")
            hint_en = (f"{near} dangling road ends lie within {settings.DANGLING_GAP_M:.0f} m of another road without touching it "
                       f"(of {st.get('dangling_ends', 0)} dead ends): the lines were probably drawn without snapping. "
                       f"Set network.snap_m: 10 in the scenario (joins ends within 10 m) and run again.")
        else:
            hint_zh = "请检查路网是否完整、是否与人口和设施覆盖同一范围。"
            hint_en = "Check that the road network is complete and covers the same area as the population and facilities."
        out.append(Problem(
            zh=(f"路网（{mode}）可能不连通：{no_road:.1%} 的人口离道路超过 {settings.SNAP_MAX_M:.0f} 米（按无道路可达计），"
                f"{cut_pop:.1%} 的人口和 {int(cut_fac)} 个设施位于与主路网不相连的路段上"
                f"{f'（另有 {dropped} 个节点属于过小的孤立路段，已舍去）' if dropped else ''}。覆盖率会因此偏低。{hint_zh}"),
            en=(f"the {mode} road network may be broken: {no_road:.1%} of the people are more than {settings.SNAP_MAX_M:.0f} m from a road "
                f"(counted as without road access), and {cut_pop:.1%} of the people and {int(cut_fac)} facilities are on parts not "
                f"connected to the main network{f' ({dropped} nodes on tiny islands were dropped)' if dropped else ''}. "
                f"Coverage will read too low. {hint_en}"),
            file=str(roads_file) if roads_file is not None else None, field="network.roads", severity="warning",
            code="network_disconnected",
        ))
    return out


__all__ = ["network_problems"]
