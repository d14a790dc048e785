"""Size limits that choose how ``method="auto"`` solves a model, and the default MIP gap.

The models read these at solve time (``limits.MILP_MAX_NNZ``), so changing them here, e.g. in a
test, takes effect on the next solve.
"""

from __future__ import annotations

#: Aggregated nonzeros (cover pairs) up to which ``method="auto"`` runs the exact MILP.
MILP_MAX_NNZ: int = 400_000
#: Aggregated nonzeros up to which ``method="auto"`` solves the LP relaxation for a bound when the
#: MILP is not run.
LP_MAX_NNZ: int = 1_500_000
#: Aggregated nonzeros up to which the MCLP LP relaxation is solved by the primal simplex; larger
#: LPs use the interior point method without crossover.
LP_SIMPLEX_MAX_NNZ: int = 400_000
#: Relative optimality gap at which a solution counts as proven optimal.
MIP_GAP: float = 1e-4
