"""The Chinese documentation: the annotated 西乡县 scenario validates, and the docs keep up with the schema.

* ``scenarios/xixiang_annotated.yaml`` (real data from ``../shared/data``) loads, has no error in
  :func:`coverage.pipeline.validate`, and ``covplan validate`` exits 0 on it, also on a console
  whose encoding is GBK (Chinese Windows with output redirected), where a ``km²`` in a warning used
  to stop the command.
* Every key of the scenario schema (the pydantic models, walked recursively) is named in
  docs/情景文件.md, in docs/scenarios.md and in the annotated YAML, so a new key cannot go
  undocumented.
* The relative links of the Chinese docs and the README point at files that exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel

from coverage import pipeline
from coverage.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
XIXIANG = ROOT / "scenarios" / "xixiang_annotated.yaml"
DOCS_ZH = ("docs/情景文件.md", "docs/数据准备.md", "docs/安装.md")


def _models(ann: typing.Any) -> list[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for a in typing.get_args(ann) for m in _models(a)]


def schema_keys(model: type[BaseModel] = Scenario, seen: set | None = None) -> set[str]:
    """Every key a scenario file may hold: the fields of the models, recursively (``source`` is internal)."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    for name, f in model.model_fields.items():
        if f.exclude:
            continue
        keys.add(f.alias or name)
        for sub in _models(f.annotation):
            keys |= schema_keys(sub, seen)
    return keys


def test_schema_walk_finds_nested_keys():
    keys = schema_keys()
    # keys four levels deep (network.speeds.drive_kmh, population.groups.<g>.share) and in lists
    assert {"drive_kmh", "walk_kmh", "share"} <= keys
    assert "unit_name" not in keys  # a column name of candidate tables, not a scenario key
    assert {"boundary", "where", "spread_weight", "tier", "formats", "synthetic", "snap_m"} <= keys
    assert "source" not in keys
    assert "extends" not in keys  # popped before the schema: documented separately
    assert len(keys) >= 50


@pytest.mark.parametrize("doc", ["docs/情景文件.md", "docs/scenarios.md"])
def test_every_schema_key_is_documented(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    fenced = re.findall(r"```.*?```", text, re.S)
    inline = re.findall(r"`[^`\n]+`", re.sub(r"```.*?```", " ", text, flags=re.S))
    code = " ".join(inline + fenced)
    missing = sorted(k for k in schema_keys() | {"extends"} if not re.search(rf"(?<![\w]){re.escape(k)}(?![\w])", code))
    assert missing == [], f"{doc} does not name these scenario keys (in `code`): {missing}"


def test_annotated_yaml_names_every_key_with_a_chinese_comment():
    text = XIXIANG.read_text(encoding="utf-8")
    missing = sorted(k for k in schema_keys() | {"extends"} if not re.search(rf"(?<![\w]){re.escape(k)}(?![\w])", text))
    assert missing == []
    # every active key line is preceded by a comment or carries one (what it is, in Chinese)
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        m = re.match(r"^(\s*)([a-z_0-9]+):", ln)
        if not m:
            continue
        before = [x for x in lines[max(0, i - 12):i] if x.strip().startswith("#")]
        assert any(m.group(2) in x and re.search(r"[\u4e00-\u9fff]", x) for x in before) or (
            "#" in ln and re.search(r"[\u4e00-\u9fff]", ln.split("#", 1)[1])
        ) or m.group(2) in ("path", "layer", "where", "crs"), f"line {i + 1} ({m.group(2)}) has no Chinese comment"


def test_annotated_yaml_points_at_real_data(shared_data):
    sc = load_scenario(XIXIANG)
    assert sc.area.adcode == "610724"
    for p in (sc.area.boundary.path, sc.population.total, sc.network.roads.path, sc.population.census):
        assert p.exists(), p
        assert shared_data in p.parents, p  # ../../shared/data relative to scenarios/
    # the facilities are the placeholder shipped beside it, and the outputs say so
    assert [f.path.name for f in sc.facilities] == ["xixiang_facilities_placeholder.csv"]
    assert sc.output.synthetic is True
    # the 60+ share quoted in the comment is the county's census row (independent computation)
    ages = pd.read_csv(shared_data / "china_county_census_2020" / "tudigong_ages.csv", dtype={"CODE": str})
    row = ages[ages["CODE"] == "610724"].iloc[0]
    bands = ["AGES_0", "AGES_1-4"] + [f"AGES_{a}-{a + 4}" for a in range(5, 85, 5)] + ["AGES_85P"]
    old = sum(float(row[f"AGES_{a}-{a + 4}"]) for a in range(60, 85, 5)) + float(row["AGES_85P"])
    share = old / sum(float(row[b]) for b in bands)
    assert f"{share:.5f}" in XIXIANG.read_text(encoding="utf-8")


def test_annotated_yaml_validates(shared_data):
    probs = pipeline.validate(XIXIANG)
    errors = [str(p) for p in probs if p.severity == "error"]
    assert errors == []
    codes = {p.code for p in probs}
    # what the comments announce: census shares, spread 10 km grid, derived 城区 and seat
    assert {"assumed_age_shares", "population_spread", "urban_derived", "seat_derived"} <= codes
    spread = next(p for p in probs if p.code == "population_spread")
    assert "43" in spread.en  # 43 source cells of the 10 km grid, as docs/情景文件.md says


def test_covplan_validate_exits_0_on_a_gbk_console(shared_data):
    env = {**os.environ, "PYTHONIOENCODING": "gbk", "PYTHONPATH": str(ROOT / "src")}
    env.pop("PYTHONUTF8", None)
    res = subprocess.run(
        [sys.executable, "-c", "from coverage.cli import app; app()", "validate", str(XIXIANG)],
        capture_output=True, env=env, timeout=300, cwd=ROOT,
    )
    out = (res.stdout + res.stderr).decode("gbk")
    assert res.returncode == 0, out[-2000:]
    assert "通过 / OK" in out and "warning" in out
    assert "km?" in out  # the km² of a warning, replaced instead of stopping the command


@pytest.mark.parametrize("doc", [*DOCS_ZH, "docs/scenarios.md", "docs/prepare.md", "docs/使用说明.md", "README.md"])
def test_relative_links_resolve(doc):
    p = ROOT / doc
    text = p.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (p.parent / target).exists(), f"{doc}: broken link {target}"


def test_chinese_docs_link_their_english_twins():
    for zh, en in (("docs/情景文件.md", "scenarios.md"), ("docs/数据准备.md", "prepare.md")):
        head_zh = "\n".join((ROOT / zh).read_text(encoding="utf-8").splitlines()[:6])
        assert f"]({en})" in head_zh, zh
        head_en = "\n".join((ROOT / "docs" / en).read_text(encoding="utf-8").splitlines()[:6])
        assert f"]({Path(zh).name})" in head_en, en
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    guide = (ROOT / "docs" / "使用说明.md").read_text(encoding="utf-8")
    for doc in DOCS_ZH:
        assert f"({doc})" in readme, doc
        assert f"({Path(doc).name})" in guide, doc
