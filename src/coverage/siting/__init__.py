"""Siting: choose facility sites that close coverage gaps (MCLP, LSCP, p-median).

One object per model, in the style of spopt: :class:`MaxCoverage` (maximal covering location
problem), :class:`SetCover` (location set covering, partial), :class:`PMedian` (minimise total
weighted travel time). Each writes its formulation in its docstring and is assembled from the same
building blocks (coverage rows, cardinality/budget row, capacity rows, locked sites), which produce
plain sparse arrays for HiGHS (``highspy``) without a modelling layer.

How a model is solved (``method="auto"``)
-----------------------------------------
1. **Aggregation.** Demand rows that reach exactly the same candidates (same sparse column pattern,
   and for p-median the same times) are merged and their weights summed. Rows that reach no
   candidate are set aside and reported (``uncoverable_weight``). This is the main speed lever: on
   spatial instances it typically shrinks the rows several-fold (``n_rows`` → ``n_rows_aggregated``).
2. **Lazy greedy** with a priority queue of marginal gains over the sparse columns (ties broken by
   the lower candidate index, so results are deterministic).
3. **Swap (interchange) local search**: the best 1-swap is found exactly for all (out, in) pairs at
   once from per-demand nearest/second-nearest (cover counts for MCLP) with one sparse group-by per
   iteration.
4. **Bound.** MCLP (uncapacitated): the LP relaxation in HiGHS — primal simplex up to
   :data:`limits.LP_SIMPLEX_MAX_NNZ` aggregated cover pairs (fast here: the covering LP is
   usually integral or nearly so), interior point without crossover up to
   :data:`limits.LP_MAX_NNZ`. The bound is
   not read from the solver's objective but recomputed from its row duals with the closed-form
   Lagrangian of the coverage rows (``Σ_i max(0, w_i − u_i)`` + the ``p`` largest ``Σ_i u_i a_ij``),
   which is valid for any multipliers. The LP solution is rounded (largest x first) and improved by
   the swap search. When the LP is not run, the same Lagrangian is minimised by projected subgradient
   (Polyak steps, sparse matrix–vector products). Other models: a Lagrangian bound on the assignment
   rows and the LP relaxation when the model is not too large.
5. **Exact or restricted MILP**, only when the gap is still open: the full MILP in HiGHS when the
   aggregated model is small enough (:data:`limits.MILP_MAX_NNZ`), warm-started from the heuristic and
   stopped at ``time_limit`` or ``mip_gap``; for larger MCLPs, the MILP restricted to the columns of
   the LP support and the incumbent (a heuristic: it can only improve the selection, the bound stays
   the LP's). The best bound is reported as ``upper_bound`` (maximisation) or lower bound
   (minimisation, same attribute) with the relative ``gap``; ``proven_optimal`` is set when the gap
   is closed (≤ ``mip_gap``).

The heuristic part is deterministic. The MILP part is deterministic for a given HiGHS version unless
the time limit stops it (then the incumbent depends on the machine's speed); it only replaces the
heuristic selection when it is strictly better.

Modules (one seam each; the package re-exports the public API)
---------------------------------------------------------------
* :mod:`~coverage.siting.models` — :class:`MaxCoverage`, :class:`SetCover`, :class:`PMedian` and
  the functions ``solve_*``;
* :mod:`~coverage.siting.base` — the ``solve`` skeleton the three models share;
* :mod:`~coverage.siting.heuristics` — lazy greedy and swap search;
* :mod:`~coverage.siting.bounds` — Lagrangian bounds;
* :mod:`~coverage.siting.lp` — the HiGHS wrapper and the constraint blocks;
* :mod:`~coverage.siting.aggregation`, :mod:`~coverage.siting.inputs`,
  :mod:`~coverage.siting.result`, :mod:`~coverage.siting.candidates`;
* :mod:`~coverage.siting.limits` — the size limits of ``method="auto"`` (read at solve time: set
  ``siting.limits.MILP_MAX_NNZ``, not a copy).
"""

from __future__ import annotations

from coverage.siting import limits
from coverage.siting.aggregation import Aggregation, aggregate_rows
from coverage.siting.candidates import generate_candidates
from coverage.siting.models import (
    MaxCoverage, PMedian, SetCover, solve_max_coverage, solve_p_median, solve_set_cover,
)
from coverage.siting.result import SitingResult

__all__ = [
    "SitingResult",
    "Aggregation",
    "aggregate_rows",
    "MaxCoverage",
    "SetCover",
    "PMedian",
    "solve_max_coverage",
    "solve_set_cover",
    "solve_p_median",
    "generate_candidates",
    "limits",
]
