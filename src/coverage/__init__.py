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
* analysis: :mod:`coverage.access`
* generator of the synthetic demo county: :mod:`coverage.demo`
* command line: :mod:`coverage.cli`
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
