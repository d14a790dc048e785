"""Write files and folders atomically, and never destroy what covplan did not write.

:func:`atomic_target` replaces one file. :func:`atomic_output_dir` fills an output folder: the
files are written into a temporary folder inside it and moved into place only when every one of
them is written, so a failed or interrupted run (an error, Ctrl-C, SIGTERM, a closed terminal's
SIGHUP) leaves the folder as it was.

The rules for an output folder (``--out``), checked by :func:`check_out_dir` before a run starts
and again when the files are moved in:

* never the current folder or one above it, the home folder or one above it, a file-system root,
  or the folder of an input scenario or one above it; never an existing file;
* an absent or empty folder is written;
* a folder holding only the files of an earlier covplan run, unchanged since (the run's manifest,
  ``.covplan-manifest.json``, lists them with their size and SHA-256), is refreshed;
* any other file in the folder (the planner's own, or one of covplan's files edited since, e.g. a
  gaps.xlsx with notes) stops the run, unless ``overwrite``: then covplan replaces only the files it
  writes now and the unchanged files of its earlier run; every other file is kept.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeAlias

from coverage import __version__
from coverage.errors import InputError

#: The list of files an output folder's last run wrote (name → size and SHA-256).
MANIFEST: str = ".covplan-manifest.json"
_TMP = ".covplan-tmp-"  # the run's files while they are written
_OLD = ".covplan-old-"  # replaced files, until the new ones are all in place
_PROBE = ".covplan-probe-"  # the pre-flight write test
_OURS = (_TMP, _OLD, _PROBE)
_SHOWN = 5  # names quoted in a refusal


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or path-like
        The final file. Its directory is created when missing.
    suffix : str
        Suffix of the temporary file (some writers pick the format from it, e.g. ``".gpkg"``).

    Yields
    ------
    pathlib.Path
        Where to write. On success it replaces ``path`` atomically (:func:`os.replace`); on an
        exception it is deleted and ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers that refuse to overwrite (GDAL) get a fresh name
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # the usual permissions, not mkstemp's 0600
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------
# the rules


@dataclass(frozen=True)
class OutputPolicy:
    """How one output folder may be written.

    Parameters
    ----------
    overwrite : bool
        Write into a folder that holds other files, replacing only covplan's own (``--overwrite``).
    protect : tuple of Path
        Input files (scenario YAMLs) whose folder, and every folder above it, must not be the output.
    """

    overwrite: bool = False
    protect: tuple[Path, ...] = ()


_POLICIES: contextvars.ContextVar[dict[Path, OutputPolicy] | None] = contextvars.ContextVar(
    "covplan_output_policies", default=None
)


@contextlib.contextmanager
def output_policy(
    out: str | os.PathLike[str], *, overwrite: bool = False, protect: Iterable[str | os.PathLike[str]] = ()
) -> Iterator[Path]:
    """Check ``out`` now (:func:`check_out_dir`) and apply the same rules when a writer inside the block fills it with :func:`atomic_output_dir`.

    The command line wraps each command in this, so a bad ``--out`` stops it before any input is
    read, and ``--overwrite`` reaches the writer without passing through every function in between.

    Parameters
    ----------
    out : str or path-like
        The output folder.
    overwrite : bool
        See :class:`OutputPolicy`.
    protect : iterable of path-like
        See :class:`OutputPolicy`.

    Yields
    ------
    pathlib.Path
        ``out``, resolved.

    Raises
    ------
    InputError
        ``out`` may not be written (see :func:`check_out_dir`).
    """
    policy = OutputPolicy(overwrite=overwrite, protect=tuple(Path(p) for p in protect))
    res = check_out_dir(out, overwrite=policy.overwrite, protect=policy.protect)
    token = _POLICIES.set({**(_POLICIES.get() or {}), res: policy})
    try:
        yield res
    finally:
        _POLICIES.reset(token)


def check_out_dir(
    out: str | os.PathLike[str], *, overwrite: bool = False, protect: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Pre-flight check of an output folder: cheap, touches nothing, run it before the computation.

    Parameters
    ----------
    out : str or path-like
        The output folder.
    overwrite : bool
        Allow a folder that holds files covplan did not write (only covplan's files are replaced).
    protect : iterable of path-like
        Input files whose folder (and every folder above it) may not be the output.

    Returns
    -------
    pathlib.Path
        ``out``, resolved.

    Raises
    ------
    InputError
        ``out`` is a file, the current, home or root folder (or above the current or home folder),
        a scenario's folder (or above it), cannot be created or written, or holds other files and
        ``overwrite`` is false. The message says which and what to do.
    """
    res = _resolve(out)
    _check_place(out, res, [Path(p) for p in protect])
    _check_writable(out, res)
    if not overwrite:
        foreign = foreign_entries(res)
        if foreign:
            raise _foreign_error(out, foreign)
    return res


def _resolve(out: str | os.PathLike[str]) -> Path:
    return Path(os.path.expanduser(os.fspath(out))).resolve()


def _check_place(out: str | os.PathLike[str], res: Path, protect: list[Path]) -> None:
    """Refuse places no output may go, whatever ``overwrite`` says."""
    def refuse(zh: str, en: str) -> InputError:
        return InputError(zh, en, file=out, field="--out")

    if _exists(res) and not res.is_dir():
        raise refuse(
            f"--out 指向一个已有的文件 {out}，不是目录；covplan 不会覆盖它。请给一个目录，如 --out out/结果。",
            f"--out {out} is an existing file, not a folder; covplan will not replace it. Give a folder, "
            "e.g. --out out/result.",
        )
    if res == Path(res.anchor):
        raise refuse("--out 不能是根目录。请给一个新的子目录，如 --out out/结果。",
                     "--out cannot be a root folder. Give a new subfolder, e.g. --out out/result.")
    cwd = Path.cwd().resolve()
    if res == cwd or res in cwd.parents:
        raise refuse(
            "--out 不能是当前目录或它的上级目录（里面的文件不是 covplan 写的）。请给一个子目录，如 --out out/结果。",
            "--out cannot be the current folder or a folder above it (its files are not covplan's). "
            "Give a subfolder, e.g. --out out/result.",
        )
    with contextlib.suppress(RuntimeError, KeyError):  # no home folder known
        home = Path.home().resolve()
        if res == home or res in home.parents:
            raise refuse("--out 不能是主目录或它的上级目录。请给一个子目录，如 --out ~/covplan/结果。",
                         "--out cannot be the home folder or a folder above it. Give a subfolder, e.g. "
                         "--out ~/covplan/result.")
    for p in protect:
        folder = _resolve(p).parent
        if res == folder or res in folder.parents:
            raise refuse(
                f"--out 不能是情景文件 {p} 所在的目录或它的上级目录（会混入或替换输入文件）。请给另一个目录，如 --out out/结果。",
                f"--out cannot be the folder of the scenario {p} or a folder above it (inputs live there). "
                "Give another folder, e.g. --out out/result.",
            )


def _exists(p: Path) -> bool:
    try:
        p.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:  # PermissionError …: something is there
        return True
    return True


def _check_writable(out: str | os.PathLike[str], res: Path) -> None:
    """Create and remove an empty folder in ``res`` or its nearest existing parent."""
    target = res
    while not _exists(target):
        target = target.parent
    if not target.is_dir():
        raise InputError(
            f"无法创建输出目录 {out}：路径中的 {target} 不是目录或无法访问。请换一个目录。",
            f"cannot create the output folder {out}: {target} on its path is not a folder or cannot be "
            "accessed. Choose another folder.",
            file=out, field="--out",
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=_PROBE, dir=target))
    except OSError as err:
        raise InputError(
            f"无法在 {target} 中写入输出目录 {out}（{err.strerror}）。请换一个有写权限的目录。",
            f"cannot write the output folder {out} in {target} ({err.strerror}). Choose a folder you can "
            "write to.",
            file=out, field="--out",
        ) from None


def foreign_entries(out: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """The entries of an output folder that are not unchanged files of covplan's last run there.

    Parameters
    ----------
    out : str or path-like
        An output folder (absent or empty: nothing).

    Returns
    -------
    list of (str, str)
        ``(name, why)``; ``why`` is ``"other"`` (not written by covplan) or ``"changed"`` (written
        by covplan's last run, changed since).
    """
    folder = Path(out)
    if not folder.is_dir():
        return []
    manifest = read_manifest(folder)
    found = []
    for p in sorted(folder.iterdir()):
        if p.name == MANIFEST or p.name.startswith(_OURS):
            continue
        if p.name not in manifest:
            found.append((p.name, "other"))
        elif _signature(p) != manifest[p.name]:
            found.append((p.name, "changed"))
    return found


def _foreign_error(out: str | os.PathLike[str], foreign: list[tuple[str, str]]) -> InputError:
    def names(why: str) -> str:
        got = [n for n, w in foreign if w == why]
        return ", ".join(got[:_SHOWN]) + (f" … (+{len(got) - _SHOWN})" if len(got) > _SHOWN else "")

    other, changed = names("other"), names("changed")
    zh = "；".join(x for x in (other and f"不是 covplan 写的文件：{other}",
                                changed and f"上次运行后被修改过的文件：{changed}") if x)
    en = "; ".join(x for x in (other and f"files covplan did not write: {other}",
                               changed and f"covplan's files changed since its last run: {changed}") if x)
    return InputError(
        f"输出目录 {out} 里有 covplan 不能替换的文件（{zh}），为免误删，未写入任何文件。请换一个新的或空的目录；"
        "或加 --overwrite：只替换 covplan 自己的输出文件，其他文件保留不动。",
        f"the output folder {out} holds files covplan may not replace ({en}); nothing was written, so nothing was "
        "lost. Choose a new or empty folder, or add --overwrite: only covplan's own output files are "
        "replaced, every other file is kept.",
        file=out, field="--out",
    )


def read_manifest(out: str | os.PathLike[str]) -> dict[str, dict]:
    """Names and signatures of the files covplan's last run wrote into ``out`` (empty if none).

    Parameters
    ----------
    out : str or path-like
        An output folder.

    Returns
    -------
    dict
        Name → ``{"size", "sha256"}`` for a file, ``{"dir": {...}}`` for a folder. An unreadable
        manifest counts as none (every file is then someone else's).
    """
    try:
        data = json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return files if isinstance(files, dict) else {}


def _signature(path: Path) -> dict:
    """Size and SHA-256 of a file; the same for everything in a folder; the target of a link."""
    if path.is_symlink():
        return {"link": os.readlink(path)}
    if path.is_dir():
        return {"dir": {p.name: _signature(p) for p in sorted(path.iterdir())}}
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": h.hexdigest()}


# ---------------------------------------------------------------------------------------------
# the writer


@contextlib.contextmanager
def atomic_output_dir(
    out: str | os.PathLike[str], *, overwrite: bool | None = None,
    protect: Iterable[str | os.PathLike[str]] | None = None,
) -> Iterator[Path]:
    """Yield an empty temporary folder; on success move its contents into ``out``.

    ``out`` and its missing parents are created with the usual permissions (the umask). The files
    are written into a temporary folder inside ``out`` and moved in when the block succeeds; files
    they replace are kept aside until every new file is in place (put back if a move fails). On an
    exception, Ctrl-C, SIGTERM or SIGHUP the temporary folder and the folders this call created are
    removed, and ``out`` is as before. The rules of :func:`check_out_dir` apply before and after the
    block (another program may have written into ``out`` meanwhile). The new files are listed in
    ``out/.covplan-manifest.json``.

    Parameters
    ----------
    out : str or path-like
        The output folder.
    overwrite : bool, optional
        See :func:`check_out_dir`. Default: as set by an enclosing :func:`output_policy` for
        ``out``, else false.
    protect : iterable of path-like, optional
        See :func:`check_out_dir`. Default: as set by an enclosing :func:`output_policy`.

    Yields
    ------
    pathlib.Path
        The temporary folder to write into.

    Raises
    ------
    InputError
        ``out`` may not be written (nothing is then created).
    Terminated
        SIGTERM or SIGHUP arrived while the block ran (after the clean-up).
    """
    res = _resolve(out)
    policy = (_POLICIES.get() or {}).get(res, OutputPolicy())
    overwrite = policy.overwrite if overwrite is None else overwrite
    protect = policy.protect if protect is None else tuple(Path(p) for p in protect)
    check_out_dir(out, overwrite=overwrite, protect=protect)
    with _signals_as_exceptions():
        created: list[Path] = []
        tmp = None
        try:
            with _deferred_signals():
                created = _makedirs(res)
                _remove_dead_leftovers(res)
                tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP}{os.getpid()}-", dir=res))
            yield tmp
            with _deferred_signals():
                _write_manifest(tmp)
                _move_in(tmp, res, out, overwrite)
        except BaseException:
            with _deferred_signals():
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                for d in reversed(created):
                    try:
                        d.rmdir()
                    except OSError:
                        break
            raise


def _makedirs(res: Path) -> list[Path]:
    """Create ``res`` and its missing parents; return the folders created, outermost first."""
    missing = []
    p = res
    while not _exists(p):
        missing.append(p)
        p = p.parent
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        created.append(d)
    return created


def _remove_dead_leftovers(res: Path) -> None:
    """Remove temporary folders of covplan runs that were killed outright (SIGKILL, power cut)."""
    if os.name != "posix":  # os.kill(pid, 0) would send Ctrl-C on Windows
        return
    for p in res.iterdir():
        if not p.name.startswith((_TMP, _OLD)) or not p.is_dir():
            continue
        try:
            pid = int(p.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except OSError:  # alive, someone else's
            pass


def _write_manifest(tmp: Path) -> None:
    files = {p.name: _signature(p) for p in sorted(tmp.iterdir()) if p.name != MANIFEST}
    (tmp / MANIFEST).write_text(
        json.dumps({"tool": f"covplan {__version__}", "files": files}, ensure_ascii=False, indent=1),
        encoding="utf-8",
    )


def _move_in(tmp: Path, res: Path, out: str | os.PathLike[str], overwrite: bool) -> None:
    """Move the new files from ``tmp`` into ``res``, all or nothing; then remove ``tmp``."""
    foreign = foreign_entries(res)
    if foreign and not overwrite:
        raise _foreign_error(out, foreign)
    new = sorted(p.name for p in tmp.iterdir() if p.name != MANIFEST) + [MANIFEST]
    blocked = [n for n, _ in foreign if n in new and (res / n).is_dir() and not (res / n).is_symlink()]
    if blocked:  # a folder of ours by name, with the planner's files in it: never replaced
        raise InputError(
            f"输出目录 {out} 中的子目录 {', '.join(blocked)} 里有不是 covplan 写的文件，即使加 --overwrite 也不会替换。"
            "请把它们移走，或换一个输出目录。",
            f"the folders {', '.join(blocked)} in {out} hold files covplan did not write; they are not "
            "replaced even with --overwrite. Move them away or choose another output folder.",
            file=out, field="--out",
        )
    others = {n for n, _ in foreign}
    stale = [n for n in read_manifest(res) if n not in new and n not in others and _exists(res / n)]
    backup = Path(tempfile.mkdtemp(prefix=f"{_OLD}{os.getpid()}-", dir=res))
    moved: list[str] = []
    placed: list[str] = []
    try:
        for name in new:
            if _exists(res / name):
                os.replace(res / name, backup / name)
                moved.append(name)
            os.replace(tmp / name, res / name)
            placed.append(name)
        for name in stale:
            os.replace(res / name, backup / name)
            moved.append(name)
    except BaseException:
        for name in reversed(placed):
            os.replace(res / name, tmp / name)
        for name in reversed(moved):
            os.replace(backup / name, res / name)
        backup.rmdir()  # empty again; if not, a file could not be put back and stays there
        raise
    shutil.rmtree(backup, ignore_errors=True)
    tmp.rmdir()


# ---------------------------------------------------------------------------------------------
# signals: SIGTERM and SIGHUP become exceptions while an output folder is written


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived while an output folder was written; its temporary files are gone.

    A :class:`SystemExit` with code 128 + the signal number (143 for SIGTERM, 129 for SIGHUP), as
    a shell reports a process killed by that signal.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


# What ``signal.getsignal`` returns and ``signal.signal`` accepts (typeshed's private ``_HANDLER``).
_Handler: TypeAlias = "Callable[[int, FrameType | None], Any] | int | signal.Handlers | None"


class _SignalState:
    """Handlers saved while ours are installed, nesting depths, and a signal held back."""

    def __init__(self) -> None:
        self.depth = 0
        self.defer = 0
        self.pending: int | None = None
        self.saved: dict[int, _Handler] = {}


_STATE = _SignalState()


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _STATE.defer:
        _STATE.pending = _STATE.pending or signum
        return
    _raise_for(signum)


def _catchable() -> list[int]:
    return [s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None]


@contextlib.contextmanager
def _signals_as_exceptions() -> Iterator[None]:
    """While the block runs (main thread only), SIGTERM and SIGHUP raise :class:`Terminated` and SIGINT :class:`KeyboardInterrupt`.

    Signals someone else handles or ignores (``nohup``) are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _STATE.depth == 0:
        _STATE.saved = {}
        for s in _catchable():
            current = signal.getsignal(s)
            if current in (signal.SIG_DFL, signal.default_int_handler):
                _STATE.saved[s] = current
                signal.signal(s, _on_signal)
    _STATE.depth += 1
    try:
        yield
    finally:
        _STATE.depth -= 1
        if _STATE.depth == 0:
            for s, handler in _STATE.saved.items():
                signal.signal(s, handler)
            _STATE.saved = {}


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    """Hold the signals :func:`_signals_as_exceptions` catches until the block (a clean-up or a move that must not stop half-way) is done; then raise for the first one."""
    _STATE.defer += 1
    try:
        yield
    finally:
        _STATE.defer -= 1
        if _STATE.defer == 0 and _STATE.pending is not None:
            signum, _STATE.pending = _STATE.pending, None
            _raise_for(signum)
