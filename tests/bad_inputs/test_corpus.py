"""The bad-input corpus: every case through ``covplan validate`` and ``covplan run``.

Each case is one YAML file in ``cases/`` (see README.md there): a base scenario, what the case
breaks (a patch, small files, or a maker of :mod:`makers`), and what must happen. For each case:

* ``validate`` exits as expected, prints the expected problem code, bilingual, naming the file;
* ``run`` exits as expected; on an error it prints the same first error as ``validate`` and writes no
  output folder; on success the expected warning is recorded in ``summary.json``;
* no traceback is printed, and no file of the case is changed or deleted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import bases
import makers

from coverage.cli import app

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))
CJK = re.compile(r"[\u4e00-\u9fff]")


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="session")
def base_scenarios(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bases")
    return {"mini": (bases.build_mini(folder / "mini"), folder / "mini"), "macau": None, "_folder": folder}


def _base(base_scenarios: dict, name: str) -> tuple[dict, Path]:
    if name == "macau":
        if base_scenarios["macau"] is None:
            base_scenarios["macau"] = (bases.macau(), base_scenarios["_folder"])
    return copy.deepcopy(base_scenarios[name][0]), base_scenarios[name][1]


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file() and "out" not in p.relative_to(folder).parts
    }


def _invoke(args: list[str]) -> tuple[int, str, BaseException | None]:
    res = CliRunner().invoke(app, args)
    text = res.stdout + (res.stderr if res.stderr_bytes is not None else "")
    exc = res.exception if not isinstance(res.exception, SystemExit) else None
    return res.exit_code, text, exc


def _make_case(spec: dict, base_scenarios: dict, folder: Path) -> Path:
    scn, base_dir = _base(base_scenarios, spec.get("base", "mini"))
    folder.mkdir(parents=True)
    for name, text in (spec.get("files") or {}).items():
        (folder / name).write_text(text, encoding="utf-8")
    maker = spec.get("make")
    if maker and maker not in makers.AFTER_WRITE:
        getattr(makers, maker)(folder, scn, base_dir)
    patch = json.loads(json.dumps(spec.get("patch") or {}).replace("{case}", str(folder)).replace("{base}", str(base_dir)).replace("{demo}", str(bases.DEMO)))
    scn = _deep_merge(scn, patch)
    for key in spec.get("drop") or []:
        head, _, tail = key.partition(".")
        (scn[head] if tail else scn).pop(tail or head, None)
    yml = bases.write_scenario(scn, folder / "scenario.yaml")
    if maker in makers.AFTER_WRITE:
        getattr(makers, maker)(folder, scn, base_dir)
    return yml


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_input(case: Path, base_scenarios, tmp_path):
    spec = yaml.safe_load(case.read_text(encoding="utf-8"))
    exp = spec["expect"]
    yml = _make_case(spec, base_scenarios, tmp_path / "case")
    before = _snapshot(tmp_path / "case")

    code, text, exc = _invoke(["validate", str(yml)])
    assert exc is None and "Traceback" not in text, text
    assert code == exp["validate"], text
    key = f"({exp['code']})" if exp.get("code") else exp["mentions"][0]
    assert key in text, f"expected {key} in:\n{text}"
    line = next(x for x in text.splitlines() if key in x)
    assert CJK.search(line) and re.search(r"[A-Za-z]{4,} [A-Za-z]{2,}", line), f"not bilingual: {line}"
    for part in exp.get("mentions", []):
        assert part in line, f"{part!r} not named in: {line}"

    out = tmp_path / "case" / "out"
    code, run_text, exc = _invoke(["run", str(yml), "--out", str(out)])
    assert exc is None and "Traceback" not in run_text, run_text
    assert code == exp["run"], run_text
    if exp["run"]:
        assert not out.exists(), "a failed run must leave no output folder"
        first = next(x for x in text.splitlines() if x.startswith("[error]"))
        message = re.sub(r"\s+", "", first.split(": ", 1)[1].split(" / ")[0])
        assert message in re.sub(r"\s+", "", run_text), f"run should stop with validate's first error:\n{first}\n---\n{run_text}"
    else:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        codes = {w["code"] for w in summary["warnings"]}
        assert exp["code"] in codes, codes
        assert "注意 / warnings" in run_text
    assert _snapshot(tmp_path / "case") == before, "the case's own files were changed"


def test_warnings_reach_the_report_and_the_workbook(base_scenarios, tmp_path):
    """A warning that changes figures is printed by run and written where the planner reads it:
    summary.json, the report's banner and the workbook's 汇总 sheet."""
    import openpyxl

    spec = yaml.safe_load((Path(__file__).parent / "cases" / "no_age_groups.yaml").read_text(encoding="utf-8"))
    yml = _make_case(spec, base_scenarios, tmp_path / "case")
    out = tmp_path / "out"
    code, text, exc = _invoke(["run", str(yml), "--out", str(out)])
    assert code == 0 and exc is None, text
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    w = next(x for x in summary["warnings"] if x["code"] == "assumed_age_shares")
    assert "全国" in w["zh"] and "national" in w["en"]
    assert w["zh"][:30] in re.sub(r"\s+", "", text) or w["zh"][:12] in text
    report = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="warnings"' in report and w["zh"][:20] in report
    ws = openpyxl.load_workbook(out / "gaps.xlsx")["汇总"]
    cells = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert any(v.startswith("注意事项") for v in cells)
    assert any(w["zh"][:20] in v for v in cells)


def test_same_inputs_same_outputs(base_scenarios, tmp_path):
    """Two runs of one scenario write byte-identical summary.json and coverage_by_unit.csv, and
    gaps.xlsx with identical cell values."""
    import openpyxl

    scn, _ = _base(base_scenarios, "mini")
    yml = bases.write_scenario(scn, tmp_path / "scenario.yaml")
    for k in ("a", "b"):
        code, text, exc = _invoke(["run", str(yml), "--out", str(tmp_path / k)])
        assert code == 0 and exc is None, text
    for name in ("summary.json", "coverage_by_unit.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    def values(p: Path) -> dict:
        wb = openpyxl.load_workbook(p)
        return {ws.title: [[c.value for c in row] for row in ws.iter_rows()] for ws in wb.worksheets}

    assert values(tmp_path / "a" / "gaps.xlsx") == values(tmp_path / "b" / "gaps.xlsx")
