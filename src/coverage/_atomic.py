"""Write files and folders atomically: a failed run leaves nothing half-written.

:func:`atomic_target` replaces one file, :func:`atomic_output_dir` a whole output folder; both write
beside the target (same file system) and rename only when everything succeeded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def atomic_output_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``out`` that replaces ``out`` only on success."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
