"""The package is a good citizen of the planner's Python environment.

Our import name ``coverage`` is also coverage.py's; numba probes for coverage.py with
``import coverage`` (``numba/misc/coverage_support.py``), and spopt and libpysal import numba. Each
check runs in a fresh interpreter (imports are cached per process) with a temporary directory as
the working directory, so nothing in the checkout's root is importable by accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT


def run(code: str, cwd: Path, *, extra_path: Path | None = None, env: dict | None = None) -> str:
    """Run ``code`` in a fresh interpreter using this checkout's package; return its stdout."""
    paths = ([str(extra_path)] if extra_path else []) + [str(ROOT / "src")]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **(env or {})}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


OURS = f"""
import coverage, os
assert os.path.samefile(coverage.__file__, {str(ROOT / 'src' / 'coverage' / '__init__.py')!r}), coverage.__file__
import coverage.access
"""


@pytest.mark.parametrize("first", ["numba", "coverage"])
def test_numba_imports_beside_the_package_in_either_order(tmp_path, first):
    code = {
        "numba": "import numba\n" + OURS,
        "coverage": OURS + "import numba\n",
    }[first]
    out = run(code + """
import numba.misc.coverage_support as probe
print(probe.coverage_available, probe.get_active_coverage())

@numba.njit
def plus_one(x):
    return x + 1

print(plus_one(41))
""", tmp_path, env={"NUMBA_JIT_COVERAGE": "1"})  # the compiler asks for a collector too
    assert out.split() == ["False", "None", "42"]


def test_the_readme_one_liner(tmp_path):
    run("import numba; import coverage; import coverage.access", tmp_path)


@pytest.mark.parametrize("module", ["spopt", "libpysal"])
def test_pysal_imports_alone_and_after_the_package(tmp_path, module):
    pytest.importorskip(module)  # test extras; imported in the subprocesses only
    run(f"import {module}", tmp_path)
    run(f"import coverage.access\nimport {module}\nimport coverage.siting", tmp_path)


FAKE_NUMBA = '''
"""A numba whose probe uses an API no stub could foresee (and does not catch AttributeError)."""
try:
    import coverage
except ImportError:
    coverage_available = False
else:
    coverage_available = True
    coverage.some_future_api.current()
'''

FAKE_LATER = '''
"""A numba submodule that probes later, at call time, through importlib."""
import importlib


def probe():
    try:
        importlib.import_module("coverage")
        import coverage.types
    except ImportError:
        return "no coverage.py"
    return "found"
'''


@pytest.mark.parametrize("first", ["numba", "coverage"])
def test_a_changed_numba_probe_still_sees_no_coverage_py(tmp_path, first):
    fake = tmp_path / "fake"
    (fake / "numba").mkdir(parents=True)
    (fake / "numba" / "__init__.py").write_text(FAKE_NUMBA, encoding="utf-8")
    (fake / "numba" / "later.py").write_text(FAKE_LATER, encoding="utf-8")
    order = ["import numba", "import coverage"] if first == "numba" else ["import coverage", "import numba"]
    out = run("\n".join(order) + f"""
import numba.later, os
assert os.path.dirname(numba.__file__) == {str(fake / 'numba')!r}
assert coverage.__version__
print(numba.coverage_available)
print(numba.later.probe())
""", tmp_path, extra_path=fake)
    assert out.splitlines() == ["False", "no coverage.py"]
