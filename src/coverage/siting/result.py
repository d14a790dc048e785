"""The result of every siting model (:class:`SitingResult`) and its optimality gap."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SitingResult", "relative_gap"]


@dataclass
class SitingResult:
    """Result of a siting model.

    Attributes
    ----------
    selected : numpy.ndarray
        Candidate indices (columns of the input matrix). Locked sites first (in index order), then
        the new sites in greedy order of their marginal contribution to the final set.
    covered : numpy.ndarray
        Bool per input demand row: reached by a selected site (MCLP/LSCP: within the cover; capacitated
        MCLP: fully served; p-median: some selected site within the cut-off).
    objective : float
        Covered weight (MCLP), number or cost of the new sites (LSCP), total weighted time including
        penalties (p-median).
    upper_bound : float
        Best proven bound on the optimum: an upper bound for maximisation problems (MCLP), a lower
        bound for minimisation problems (LSCP, p-median).
    gap : float
        Relative optimality gap, ``|bound - objective| / max(|bound|, |objective|)`` (0 when both are 0).
    method : str
        How the selection was obtained, e.g. ``"greedy+swap"``, ``"greedy+swap+milp"``, ``"milp"``.
    proven_optimal : bool
        True when ``gap`` ≤ the requested MIP gap.
    marginal : numpy.ndarray
        Per entry of ``selected``: weight newly covered (MCLP/LSCP) or weighted time saved (p-median)
        when the sites are added in the order of ``selected``.
    timings : dict
        Seconds per stage (``aggregate``, ``greedy``, ``swap``, ``bound``, ``milp``, ``total``).
    sense : str
        ``"max"`` or ``"min"``.
    bound_method : str
        Where the bound comes from (``"lagrangian"``, ``"lp"``, ``"milp"``, ``"trivial"``).
    n_rows, n_rows_aggregated : int
        Demand rows before and after aggregation (rows with no candidate or zero weight dropped).
    uncoverable_weight : float
        Weight of demand rows that no candidate can reach (excluded from the model and, for LSCP, from
        the denominator of the target share).
    total_weight : float
        Sum of all weights.
    assignment : numpy.ndarray or None
        p-median: selected candidate serving each demand row (-1: none within the cut-off).
    served : numpy.ndarray or None
        Capacitated MCLP: share of each demand row's weight that is served (0..1).
    """

    selected: np.ndarray
    covered: np.ndarray
    objective: float
    upper_bound: float
    gap: float
    method: str
    proven_optimal: bool
    marginal: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    sense: str = "max"
    bound_method: str = ""
    n_rows: int = 0
    n_rows_aggregated: int = 0
    uncoverable_weight: float = 0.0
    total_weight: float = 0.0
    assignment: np.ndarray | None = None
    served: np.ndarray | None = None

    @property
    def bound(self) -> float:
        """Alias of :attr:`upper_bound` that reads naturally for minimisation problems."""
        return self.upper_bound


def relative_gap(obj: float, bound: float) -> float:
    """Relative optimality gap ``|bound − obj| / max(|bound|, |obj|)``, 0 when both are (nearly) 0.

    Parameters
    ----------
    obj : float
        Objective of a solution.
    bound : float
        Bound on the optimum (upper for maximisation, lower for minimisation).

    Returns
    -------
    float
        ≥ 0.
    """
    den = max(abs(obj), abs(bound))
    if den <= 1e-12:
        return 0.0
    return max(0.0, abs(bound - obj) / den)

