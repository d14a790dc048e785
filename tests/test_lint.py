"""The code checks CI runs, as tests (so `python -m pytest` is the one command): ruff (pyflakes,
numpy docstrings, max arguments, complexity) and mypy on ``src/``, configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def _tool(name: str) -> list[str]:
    exe = shutil.which(name, path=str(__import__("pathlib").Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return [exe]


def test_ruff_passes_on_src(repo_root):
    res = subprocess.run([*_tool("ruff"), "check", "src"], cwd=repo_root, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_mypy_passes_on_src(repo_root):
    res = subprocess.run([*_tool("mypy")], cwd=repo_root, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
