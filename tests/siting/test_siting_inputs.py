"""Input checks of the siting models (coverage.siting.inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from coverage import siting
from coverage.errors import InputError


def test_bad_inputs_raise_bilingual_errors():
    cover = sp.csr_matrix(np.eye(3, dtype=bool))
    with pytest.raises(InputError, match="weights"):
        siting.solve_max_coverage(cover, np.ones(2), 1)
    with pytest.raises(InputError, match="locked"):
        siting.solve_max_coverage(cover, np.ones(3), 1, locked=[5])
    with pytest.raises(InputError, match="cost"):
        siting.solve_max_coverage(cover, np.ones(3), None, budget=2.0)
    with pytest.raises(InputError, match="target_share"):
        siting.solve_set_cover(cover, np.ones(3), 1.5)
