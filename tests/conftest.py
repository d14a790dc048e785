"""Shared test fixtures: where the real data lives, and the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Real data sets (never copied into the project); CI puts ../shared beside the checkout.
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ``../shared/data``; fails loudly when it is missing (CI always has it)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}; put ../shared beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return ROOT
