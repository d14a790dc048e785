"""Small helpers shared by the report writers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def is_missing(v: Any) -> bool:
    """True for None, pandas NA/NaT and float NaN (the values written as empty cells)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float | np.floating):
        return bool(np.isnan(v))
    return False


# re-exported for the writers
from coverage._atomic import atomic_target  # noqa: E402,F401
