"""`--out` never destroys anything, and bad `site`/`compare` arguments stop before any computation.

Real `covplan` processes (``python -m coverage.cli``), real folders. Refusals are instant, so most
tests use them; one module-scoped demo run (``--overwrite`` into a folder that already holds a
planner's files) checks what a full run leaves behind. Every test hashes the folders it hands to
covplan before and after: nothing that was there may be deleted or changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = {"summary.json", "coverage_by_unit.csv", "gaps.xlsx", "layers.gpkg", "map.html", "report.html"}


def covplan(*args: str | Path, cwd: Path | None = None, home: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``covplan ARGS`` as a planner would, with this checkout's code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "coverage.cli", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def tree_hash(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``folder`` (directories as ``"dir"``)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(res: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 1 with a one-line bilingual error naming ``words``, and no traceback."""
    text = res.stdout + res.stderr
    assert res.returncode == 1, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if "错误 / error" in line]
    assert len(errors) == 1, text
    for w in words:
        assert w in errors[0], (w, text)


def planner_folder(path: Path) -> Path:
    """A folder holding a planner's own work."""
    path.mkdir(parents=True)
    (path / "会议纪要.docx").write_bytes(b"minutes of the meeting")
    (path / "notes.txt").write_text("keep me\n", encoding="utf-8")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# refusals: instant, nothing touched


def test_folder_with_other_files_is_refused_and_kept(tmp_path):
    out = planner_folder(tmp_path / "work")
    before = tree_hash(tmp_path)
    res = covplan("demo", "--out", out)
    refused(res, "--overwrite", "输出目录", "output folder", "notes.txt")
    assert tree_hash(tmp_path) == before


def test_existing_file_is_refused(tmp_path):
    target = tmp_path / "result.xlsx"
    target.write_bytes(b"a planner's workbook")
    before = tree_hash(tmp_path)
    for extra in ([], ["--overwrite"]):
        refused(covplan("demo", "--out", target, *extra), "result.xlsx", "文件", "file")
    assert tree_hash(tmp_path) == before


def test_current_folder_is_refused_before_the_run(tmp_path):
    (tmp_path / "mine.txt").write_text("x", encoding="utf-8")
    before = tree_hash(tmp_path)
    for extra in ([], ["--overwrite"]):
        refused(covplan("demo", "--out", ".", *extra, cwd=tmp_path), "当前目录", "current folder")
    assert tree_hash(tmp_path) == before


def test_home_and_root_are_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    refused(covplan("demo", "--out", home, "--overwrite", home=home), "主目录", "home folder")
    refused(covplan("demo", "--out", "/", "--overwrite", home=home), "根目录", "root")
    assert list(home.iterdir()) == []


def scenario_folder(tmp_path: Path) -> Path:
    scn = tmp_path / "county" / "scn"
    scn.mkdir(parents=True)
    yml = scn / "scenario.yaml"
    yml.write_text((ROOT / "scenarios" / "demo_baseline.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return yml


def test_scenario_folder_and_its_parents_are_refused(tmp_path):
    yml = scenario_folder(tmp_path)
    before = tree_hash(tmp_path)
    for out in (yml.parent, yml.parent.parent):
        for extra in ([], ["--overwrite"]):
            refused(covplan("run", yml, "--out", out, *extra), "情景", "scenario")
    refused(covplan("site", yml, "--category", "elderly", "--add", "2", "--out", yml.parent), "情景", "scenario")
    refused(covplan("compare", ROOT / "scenarios" / "demo_baseline.yaml", yml, "--out", yml.parent.parent),
            "情景", "scenario")
    assert tree_hash(tmp_path) == before


def test_unwritable_out_fails_before_reading_anything(tmp_path):
    # the scenario does not exist: a pre-flight check of --out must speak first
    missing = tmp_path / "nope.yaml"
    res = covplan("run", missing, "--out", "/proc/covplan-out")
    refused(res, "/proc/covplan-out", "无法", "cannot")
    assert "nope.yaml" not in res.stdout + res.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    refused(covplan("run", missing, "--out", blocker / "sub"), "a-file")


# ---------------------------------------------------------------------------------------------
# site / compare argument checks: before any computation, so a missing scenario is not reached


@pytest.mark.parametrize("args, words", [
    (["--add", "0"], ["--add", "≥ 1"]),
    (["--add", "-2"], ["--add", "≥ 1"]),
    (["--target-share", "1.5"], ["--target-share", "(0, 1]"]),
    (["--target-share", "0"], ["--target-share", "(0, 1]"]),
    (["--target-share", "nan"], ["--target-share", "(0, 1]"]),
    (["--add", "2", "--target-share", "0.9"], ["--add", "--target-share"]),
    ([], ["--add", "--target-share"]),
    (["--add", "2", "--generate", "-1"], ["--generate"]),
    (["--add", "2", "--time-limit", "0"], ["--time-limit"]),
])
def test_site_arguments_are_checked_first(tmp_path, args, words):
    res = covplan("site", tmp_path / "nope.yaml", "--category", "elderly", *args, "--out", tmp_path / "o")
    refused(res, *words)
    assert "nope.yaml" not in res.stdout + res.stderr
    assert list(tmp_path.iterdir()) == []


def test_compare_same_file_twice_warns(tmp_path):
    blocker = tmp_path / "x.txt"
    blocker.write_text("x", encoding="utf-8")
    yml = ROOT / "scenarios" / "demo_baseline.yaml"
    res = covplan("compare", yml, yml, "--out", blocker)
    assert "同一个" in res.stderr and "same file" in res.stderr
    refused(res, "x.txt")


# ---------------------------------------------------------------------------------------------
# one full run: --overwrite into a planner's folder


@pytest.fixture(scope="module")
def overwritten(tmp_path_factory):
    base = tmp_path_factory.mktemp("ow")
    out = planner_folder(base / "work")
    (out / "report.html").write_text("<p>an old report</p>", encoding="utf-8")  # one of our names
    before = tree_hash(out)
    res = covplan("demo", "--out", out, "--overwrite")
    assert res.returncode == 0, res.stdout + res.stderr
    return base, out, before, res


@pytest.mark.slow
def test_overwrite_keeps_the_planners_files(overwritten):
    base, out, before, res = overwritten
    after = tree_hash(out)
    for name in ("会议纪要.docx", "notes.txt", "sub", "sub/data.csv"):
        assert after[name] == before[name]
    assert after["report.html"] != before["report.html"]
    assert OUTPUTS <= set(after)
    manifest = json.loads((out / ".covplan-manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == OUTPUTS
    assert [p.name for p in base.iterdir()] == ["work"]  # no temporary folder beside it
    assert not [p for p in out.iterdir() if p.name.startswith(".covplan-") and p.suffix != ".json"]


@pytest.mark.slow
def test_overwrite_respects_the_umask(overwritten):
    _, out, _, _ = overwritten
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((out / "summary.json").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((out / "gaps.xlsx").stat().st_mode) == 0o666 & ~mask


@pytest.mark.slow
def test_rerun_without_overwrite_is_refused_while_other_files_remain(overwritten):
    _, out, _, _ = overwritten
    before = tree_hash(out)
    refused(covplan("demo", "--out", out), "notes.txt", "--overwrite")
    assert tree_hash(out) == before


@pytest.mark.slow
def test_a_fresh_folder_gets_normal_permissions(overwritten, tmp_path):
    """A new --out folder is made with the umask (0755 typically), not mkdtemp's 0700."""
    _, out, _, _ = overwritten
    mask = os.umask(0)
    os.umask(mask)
    fresh = tmp_path / "deep" / "new"
    # the cheapest full write: copy a finished run through the atomic writer in a real process
    code = (
        "import shutil, sys\n"
        "from coverage._atomic import atomic_output_dir\n"
        "with atomic_output_dir(sys.argv[1]) as tmp:\n"
        "    shutil.copy(sys.argv[2], tmp / 'summary.json')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-c", code, str(fresh), str(out / "summary.json")], check=True, env=env)
    for d in (fresh, fresh.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o777 & ~mask


@pytest.mark.slow
def test_quick_exit_after_a_run_keeps_every_line_and_the_status(overwritten):
    """``covplan.cli.entry`` ends a finished run with ``os._exit``: the printed summary and file list
    still reach the caller whole, and the exit status is 0."""
    _base, out, _before, res = overwritten
    lines = res.stdout.splitlines()
    assert any(str(out.resolve()) in line for line in lines), res.stdout
    assert [line.strip() for line in lines[-len(OUTPUTS):]] == sorted(OUTPUTS), res.stdout
    assert "Traceback" not in res.stderr
