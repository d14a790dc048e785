"""What the command line sets for its own process (and the Python API does not): Python's collector thresholds."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coverage import settings
from coverage.cli import _GC_DEFAULT, _serving_gc
from coverage.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scenarios" / "demo_baseline.yaml"


@pytest.fixture
def thresholds_kept():
    """Whatever a test sets, the test process gets its collector back as it was."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_a_command_runs_with_few_collector_passes(thresholds_kept):
    gc.set_threshold(*_GC_DEFAULT)
    res = CliRunner().invoke(cli_app, ["validate", str(DEMO)])
    assert res.exit_code == 0, res.output
    assert settings.GC_THRESHOLDS is not None
    assert gc.get_threshold() == settings.GC_THRESHOLDS
    assert settings.GC_THRESHOLDS[0] > _GC_DEFAULT[0]


def test_the_covplan_process_has_them_and_the_python_api_leaves_python_alone():
    code = ("import gc, sys; from coverage import pipeline; before = gc.get_threshold(); "
            "pipeline.validate(sys.argv[1]); assert gc.get_threshold() == before, gc.get_threshold(); "
            "from coverage.cli import entry; sys.argv = ['covplan', 'validate', sys.argv[1]]\n"
            "try:\n    entry()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(gc.get_threshold())")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code, str(DEMO)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(tuple(settings.GC_THRESHOLDS))


def test_the_meeting_mode_serves_with_the_default_and_its_model_frozen(thresholds_kept):
    gc.set_threshold(*settings.GC_THRESHOLDS)
    model = [[i] for i in range(1000)]  # tracked objects (lists) alive when the model is built
    _serving_gc()
    assert gc.get_threshold() == _GC_DEFAULT
    assert gc.get_freeze_count() >= len(model)
    assert gc.is_tracked(model[0])


_FREED = """
import sys
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * 4096
if sys.argv[1] == 'covplan':
    from coverage.cli import _malloc_settings
    _malloc_settings()
block = b'x' * (24 << 20)  # a large array's worth, written
before = rss()
del block
print((before - rss()) >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings: Linux only")
def test_freed_arrays_stay_with_the_covplan_process_for_the_next_ones():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}

    def returned_mib(kind: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FREED, kind], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())

    assert returned_mib("plain") >= 20  # glibc's default: a block this large is mapped and given back
    assert returned_mib("covplan") <= 1  # kept (settings.MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD)
