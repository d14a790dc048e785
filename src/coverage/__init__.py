"""coverage — public-service coverage planning for Chinese counties and cities.

Measures the 15-minute service circles (15分钟服务圈) and the 15 km urban–rural service circle
(15公里城乡服务圈) on a real road network, reports who is not served by 乡镇/街道 and age group, and
proposes sites that close the gaps.

The import name is ``coverage`` (the command is ``covplan``). It clashes with coverage.py, so never
install coverage.py or pytest-cov in the same environment.

Modules follow the data flow, inputs → model → analysis → outputs; no module imports a later stage:

* inputs: :mod:`coverage.settings`, :mod:`coverage.errors`, :mod:`coverage.crs`,
  :mod:`coverage.categories`, :mod:`coverage.io`, :mod:`coverage.scenario`
* model: :mod:`coverage.network` (RoadGraph), :mod:`coverage.demand`
* analysis: :mod:`coverage.access`, :mod:`coverage.evaluate`, :mod:`coverage.siting`
* generator of the synthetic demo county: :mod:`coverage.demo`
* command line: :mod:`coverage.cli`

Living beside numba (and spopt, libpysal, which import it)
----------------------------------------------------------
numba probes for coverage.py with ``try: import coverage / except ImportError`` (in
``numba/misc/coverage_support.py``) and, when the import succeeds, uses coverage.py's API
(``coverage.types.Tracer`` at import time in numba ≥ 0.61, ``coverage.Coverage.current()`` when
compiling). In an environment where this package is installed that import finds *us*, and
``import numba`` used to fail with "module 'coverage' has no attribute 'types'".

The answer numba should get is the true one: coverage.py is not installed (it cannot be, beside this
package). So every ``import coverage`` that numba's own code executes raises :class:`ImportError`,
whatever numba does with the module afterwards (this fails closed: if numba changes its probe,
it still sees no coverage.py rather than a foreign package):

* numba imported first: the probe imports this package; this file sees that its importer is a numba
  module and raises ``ImportError`` before defining anything (the half-made module is discarded,
  and a later ``import coverage`` by the user loads the package normally);
* this package imported first: ``import coverage`` would hit ``sys.modules`` without running this
  file again, so a finder at the front of ``sys.meta_path`` (:class:`_NumbaLoader`) runs every
  ``numba``/``numba.*`` module with builtins whose ``__import__`` refuses ``coverage``. Only numba's
  modules see those builtins; nothing is removed from ``sys.modules``, so other threads importing
  this package meanwhile are unaffected.
"""

from __future__ import annotations

import builtins
import sys
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__"]


def _is_numba(name: str) -> bool:
    return name == "numba" or name.startswith("numba.")


def _importer_is_numba() -> bool:
    """True when the module executing the ``import coverage`` now running is one of numba's."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name != __name__ and not name.startswith(("importlib", "_frozen_importlib")):
            return _is_numba(name)
        frame = frame.f_back
    return False


if _importer_is_numba():
    raise ImportError("`coverage` here is the covplan planning package, not coverage.py")


def _refuse_coverage(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                     level: int = 0) -> ModuleType:
    if level == 0 and (name == "coverage" or name.startswith("coverage.")):
        raise ImportError("`coverage` here is the covplan planning package, not coverage.py",
                          name=name)
    return builtins.__import__(name, globals, locals, fromlist, level)


_NUMBA_BUILTINS = {**builtins.__dict__, "__import__": _refuse_coverage}


class _NumbaLoader:
    """Loader of one numba module: runs the real loader with builtins that refuse ``coverage``."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # the real loader from now on (getsource, resources, …)
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        module.__dict__["__builtins__"] = _NUMBA_BUILTINS
        self.loader.exec_module(module)


class _NumbaFinder:
    """First meta-path finder: finds numba's modules with the other finders, wraps their loader."""

    covplan_numba_guard = True

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if not _is_numba(fullname):
            return None
        for finder in sys.meta_path:
            if getattr(finder, "covplan_numba_guard", False) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if hasattr(spec.loader, "exec_module"):
                    spec.loader = _NumbaLoader(spec.loader)  # type: ignore[assignment]  # a Loader by duck typing
                return spec
        return None


if not any(getattr(f, "covplan_numba_guard", False) for f in sys.meta_path):
    sys.meta_path.insert(0, _NumbaFinder())  # type: ignore[arg-type]
