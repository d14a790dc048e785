"""The README's quick start is what CI runs, and its commands exist."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from coverage.cli import app


def _quick_start(readme: str) -> list[str]:
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S).group(1)
    return [ln for ln in block.splitlines() if ln and not ln.startswith("#")]


def test_ci_runs_the_readme_test_command_verbatim(repo_root):
    install, tests = _quick_start((repo_root / "README.md").read_text(encoding="utf-8"))
    assert "covplan demo" in install
    assert "pytest" in tests
    ci = (repo_root / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci


def test_every_readme_command_has_help():
    runner = CliRunner()
    for cmd in ("demo", "run", "validate", "site", "compare", "prepare", "standards"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0, (cmd, res.output)
        assert re.search(r"[\u4e00-\u9fff]", res.output), cmd  # Chinese help text


def test_standards_command_lists_presets_and_shows_sources():
    runner = CliRunner()
    res = runner.invoke(app, ["standards"])
    assert res.exit_code == 0
    for name in ("cn-default", "gb50180", "kongtong", "renhuai", "huaibei", "nanqiao"):
        assert name in res.output
    res = runner.invoke(app, ["standards", "cn-default"])
    assert res.exit_code == 0
    # rule with its source: the plan's title and section, not the seed code "S1 L75"
    assert "clinic_rural_30min" in res.output and "《仁怀市公共服务发展行动方案(2023—2025年)》" in res.output
    assert "待核实" in res.output  # unverified values are flagged
    res = runner.invoke(app, ["standards", "no-such-preset"])
    assert res.exit_code == 1
