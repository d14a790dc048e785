"""The output-folder writer: all or nothing, and nothing it did not write is ever deleted or changed.

Real folders in ``tmp_path``; the signal tests kill a real Python process while it writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from coverage._atomic import (
    MANIFEST,
    atomic_output_dir,
    check_out_dir,
    foreign_entries,
    output_policy,
    read_manifest,
)
from coverage.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def tree(folder: Path) -> dict[str, str]:
    """Relative path → sha256 (or ``"dir"``) of everything under ``folder``."""
    return {str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


def write(out: Path, files: dict[str, str], **kw) -> None:
    """Write ``files`` (name → text) through the atomic writer."""
    with atomic_output_dir(out, **kw) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text, encoding="utf-8")


def no_temp(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".covplan-tmp-" in p.name or ".covplan-old-" in p.name
                or ".tmp-" in p.name or ".old-" in p.name]


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------
# where the files go


def test_absent_folder_and_parents_are_created_with_the_umask(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    write(out, {"summary.json": "{}", "map.html": "<html/>"})
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "summary.json", "map.html"])
    for d in (out, out.parent, out.parent.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o777 & ~umask()
    assert set(read_manifest(out)) == {"summary.json", "map.html"}
    assert no_temp(tmp_path)


def test_empty_folder_is_written_and_keeps_its_own_mode(tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o750)
    out.chmod(0o750)
    write(out, {"summary.json": "{}"})
    assert (out / "summary.json").read_text(encoding="utf-8") == "{}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750


def test_folder_with_other_files_is_refused_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.docx").write_bytes(b"planner")
    before = tree(tmp_path)
    with pytest.raises(InputError, match="--overwrite") as e:
        write(out, {"summary.json": "{}"})
    assert "mine.docx" in str(e.value) and "输出目录" in str(e.value)
    assert tree(tmp_path) == before
    assert foreign_entries(out) == [("mine.docx", "other")]


def test_overwrite_replaces_only_our_names(tmp_path):
    out = tmp_path / "out"
    (out / "keep").mkdir(parents=True)
    (out / "keep" / "x.csv").write_text("1", encoding="utf-8")
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "report.html").write_text("old, not ours", encoding="utf-8")
    write(out, {"report.html": "new", "summary.json": "{}"}, overwrite=True)
    assert (out / "report.html").read_text(encoding="utf-8") == "new"
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (out / "keep" / "x.csv").read_text(encoding="utf-8") == "1"
    assert set(read_manifest(out)) == {"report.html", "summary.json"}
    assert no_temp(tmp_path)


def test_rerun_refreshes_an_unchanged_earlier_run_and_drops_its_stale_files(tmp_path):
    out = tmp_path / "out"
    write(out, {"summary.json": "1", "comparison.csv": "a,b", "network/roads.gpkg": "r"})
    assert foreign_entries(out) == []
    write(out, {"summary.json": "2"})  # no overwrite needed: everything there is ours, unchanged
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "summary.json"]
    assert (out / "summary.json").read_text(encoding="utf-8") == "2"


def test_a_changed_file_of_ours_needs_overwrite_and_a_stale_one_is_then_kept(tmp_path):
    out = tmp_path / "out"
    write(out, {"gaps.xlsx": "generated", "comparison.csv": "generated"})
    (out / "gaps.xlsx").write_text("generated + the planner's notes", encoding="utf-8")
    (out / "comparison.csv").write_text("edited", encoding="utf-8")
    before = tree(tmp_path)
    with pytest.raises(InputError, match="gaps.xlsx") as e:
        write(out, {"gaps.xlsx": "again"})
    assert "修改" in str(e.value) and "changed" in str(e.value)
    assert tree(tmp_path) == before
    write(out, {"gaps.xlsx": "again"}, overwrite=True)
    assert (out / "gaps.xlsx").read_text(encoding="utf-8") == "again"  # our name: replaced
    assert (out / "comparison.csv").read_text(encoding="utf-8") == "edited"  # not written now: kept
    assert set(read_manifest(out)) == {"gaps.xlsx"}


def test_a_subfolder_of_ours_holding_other_files_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    write(out, {"facilities/a.csv": "ours"})
    (out / "facilities" / "planner.csv").write_text("mine", encoding="utf-8")
    before = tree(tmp_path)
    with pytest.raises(InputError, match="facilities"):
        write(out, {"facilities/a.csv": "new"}, overwrite=True)
    assert tree(tmp_path) == before


def test_a_failed_block_leaves_everything_as_it_was(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as tmp:
            (tmp / "summary.json").write_text("{}", encoding="utf-8")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # the folders it made are gone too
    old = tmp_path / "old"
    write(old, {"summary.json": "1"})
    before = tree(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with atomic_output_dir(old) as tmp:
            (tmp / "summary.json").write_text("2", encoding="utf-8")
            raise KeyboardInterrupt
    assert tree(tmp_path) == before


def test_a_file_appearing_during_the_run_stops_the_move(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="late.txt"):
        with atomic_output_dir(out) as tmp:
            (tmp / "summary.json").write_text("{}", encoding="utf-8")
            (out / "late.txt").write_text("someone else's", encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["late.txt"]


def test_a_failed_move_puts_the_old_files_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write(out, {"a.txt": "old a", "b.txt": "old b"})
    before = tree(tmp_path)
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # a.txt moved aside and replaced; b.txt aside: then the disk "fails"
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="No space"):
        write(out, {"a.txt": "new a", "b.txt": "new b"})
    monkeypatch.undo()
    assert tree(tmp_path) == before


def test_leftovers_of_a_killed_run_are_removed_only_when_their_process_is_gone(tmp_path):
    out = tmp_path / "out"
    write(out, {"summary.json": "1"})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    (out / f".covplan-tmp-{int(dead.stdout)}-abc").mkdir()
    (out / f".covplan-tmp-{os.getppid()}-abc").mkdir()  # a live process: maybe writing now
    write(out, {"summary.json": "2"})
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f".covplan-tmp-{os.getppid()}-abc", MANIFEST, "summary.json"])


def test_manifest_lists_size_and_hash(tmp_path):
    out = tmp_path / "out"
    write(out, {"summary.json": "{}"})
    data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert data["tool"].startswith("covplan")
    assert data["files"]["summary.json"] == {"size": 2, "sha256": hashlib.sha256(b"{}").hexdigest()}
    (out / MANIFEST).write_text("not json", encoding="utf-8")  # broken: every file is then foreign
    assert foreign_entries(out) == [("summary.json", "other")]


# ---------------------------------------------------------------------------------------------
# places never written


def test_an_existing_file_is_refused(tmp_path):
    f = tmp_path / "x.xlsx"
    f.write_bytes(b"workbook")
    for ow in (False, True):
        with pytest.raises(InputError, match="x.xlsx"):
            check_out_dir(f, overwrite=ow)
    with pytest.raises(InputError, match="x.xlsx"):
        check_out_dir(f / "sub")
    assert f.read_bytes() == b"workbook"


def test_current_home_and_root_folders_are_refused(tmp_path, monkeypatch):
    work, home = tmp_path / "work", tmp_path / "users" / "me"
    work.mkdir()
    home.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    for place, word in ((".", "当前目录"), (tmp_path, "当前目录"), (home, "主目录"), ("~", "主目录"),
                        (home.parent, "主目录"), ("/", "根目录")):
        with pytest.raises(InputError, match=word):
            check_out_dir(place, overwrite=True)
    assert check_out_dir("out") == work / "out"
    assert list(work.iterdir()) == []  # the check created nothing


def test_the_scenario_folder_and_above_are_refused(tmp_path):
    yml = tmp_path / "c" / "scn" / "s.yaml"
    yml.parent.mkdir(parents=True)
    yml.write_text("name: x\n", encoding="utf-8")
    for place in (yml.parent, yml.parent.parent):
        with pytest.raises(InputError, match="情景"):
            check_out_dir(place, overwrite=True, protect=[yml])
    check_out_dir(yml.parent / "out", protect=[yml])  # inside it is fine
    check_out_dir(tmp_path / "c" / "other", protect=[yml])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_unwritable_place_is_refused_at_once():
    with pytest.raises(InputError, match="/proc/covplan"):
        check_out_dir("/proc/covplan")


def test_output_policy_reaches_the_writer_of_that_folder_only(tmp_path):
    out, other = tmp_path / "out", tmp_path / "other"
    for d in (out, other):
        d.mkdir()
        (d / "mine.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="mine.txt"):
        with output_policy(out):
            pass
    with output_policy(out, overwrite=True):
        write(out, {"summary.json": "{}"})
        with pytest.raises(InputError, match="mine.txt"):
            write(other, {"summary.json": "{}"})
    with pytest.raises(InputError, match="mine.txt"):  # the policy ended with the block
        write(out / ".." / "out", {"summary.json": "[]"})
    assert (out / "mine.txt").exists() and (other / "mine.txt").exists()


# ---------------------------------------------------------------------------------------------
# signals: a killed job leaves no temporary folder

WRITER = """
import sys, time
from coverage._atomic import atomic_output_dir
with atomic_output_dir(sys.argv[1]) as tmp:
    (tmp / "big.bin").write_bytes(b"x" * 1_000_000)
    print("writing", flush=True)
    time.sleep(120)
"""


def _default_signals() -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def kill_while_writing(out: Path, signum: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    # the writer starts with the signals' default actions: a shell running the tests in the
    # background has SIGINT ignored, and the writer (rightly) keeps an ignored signal ignored
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_default_signals)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert [p for p in out.iterdir() if p.name.startswith(".covplan-tmp-")]  # it is mid-write
        proc.send_signal(signum)
        return proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", None)])
def test_a_signal_while_writing_leaves_no_temporary_folder(tmp_path, name, code):
    out = tmp_path / "new" / "out"
    rc = kill_while_writing(out, getattr(signal, name))
    assert rc != 0
    if code is not None:
        assert rc == code
    assert list(tmp_path.iterdir()) == []  # not even the folders it created
    old = tmp_path / "old"
    write(old, {"summary.json": "1"})
    before = tree(tmp_path)
    kill_while_writing(old, getattr(signal, name))
    assert tree(tmp_path) == before
