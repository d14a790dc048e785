"""GDAL's Arrow batch writer called without holding Python's GIL, for the large tables of layers.gpkg.

pyogrio calls GDAL while holding the global interpreter lock, so while it writes the million-row
stored tables of a large county's ``layers.gpkg`` (≈2 s of SQLite inserts) no other Python thread
of the run moves: the map, the report and the what-if panel wait. :mod:`ctypes` releases the GIL
around every foreign call, so here the batches of an :class:`~coverage.report._arrow.ArrowStream`
are handed to GDAL's own C function ``OGR_L_WriteArrowBatch`` through ctypes, in the GDAL library
that pyogrio has loaded. Everything else stays with pyogrio: it creates the layer and its fields
(from the stream's schema, with no rows), then :func:`append_batches` opens the file again and
appends the rows, exactly as ``pyogrio.raw.write_arrow`` would have (same calls, same options).

The library is found through pyogrio's extension module: on Linux and macOS a symbol lookup in a
loaded library also searches the libraries it depends on, GDAL among them. Where that fails (on
Windows a DLL's dependencies are not searched) or GDAL is older than 3.8, :func:`available` is
False and the caller writes with pyogrio as before: the same table, only with the GIL held.
"""

from __future__ import annotations

import ctypes as C
import os
from functools import cache
from typing import Any

from coverage.report._arrow import ArrowArray, ArrowSchema, ArrowStream

__all__ = ["append_batches", "available"]

#: ``GDALOpenEx`` flags (gdal.h).
_OF_UPDATE, _OF_VECTOR, _OF_VERBOSE_ERROR = 0x01, 0x04, 0x40


@cache
def _library() -> Any:
    """GDAL's C API as pyogrio loaded it, with the prototypes used here; None when it cannot be reached."""
    try:
        from pyogrio import _io  # the extension module that links GDAL

        lib = C.CDLL(_io.__file__)
        lib.GDALVersionInfo.restype = C.c_char_p
        lib.GDALVersionInfo.argtypes = [C.c_char_p]
        if int(lib.GDALVersionInfo(b"VERSION_NUM")) < 3080000:  # OGR_L_WriteArrowBatch: GDAL 3.8
            return None
        lib.GDALOpenEx.restype = C.c_void_p
        lib.GDALOpenEx.argtypes = [C.c_char_p, C.c_uint, C.c_void_p, C.c_void_p, C.c_void_p]
        lib.GDALDatasetGetLayerByName.restype = C.c_void_p
        lib.GDALDatasetGetLayerByName.argtypes = [C.c_void_p, C.c_char_p]
        lib.OGR_L_WriteArrowBatch.restype = C.c_bool
        lib.OGR_L_WriteArrowBatch.argtypes = [C.c_void_p, C.POINTER(ArrowSchema), C.POINTER(ArrowArray), C.c_void_p]
        lib.GDALClose.restype = C.c_int
        lib.GDALClose.argtypes = [C.c_void_p]
        lib.CPLGetLastErrorMsg.restype = C.c_char_p
        lib.CPLGetLastErrorMsg.argtypes = []
        lib.CPLErrorReset.restype = None
        lib.CPLErrorReset.argtypes = []
    except (ImportError, OSError, AttributeError, ValueError):
        return None
    return lib


def available() -> bool:
    """Whether :func:`append_batches` can reach GDAL (else write with pyogrio).

    Returns
    -------
    bool
    """
    return _library() is not None


def _message(lib: Any, what: str) -> str:
    text = (lib.CPLGetLastErrorMsg() or b"").decode("utf-8", "replace")
    return f"{what}: {text}" if text else what


def append_batches(path: str | os.PathLike[str], layer: str, stream: ArrowStream, geometry_name: str | None = None) -> None:
    """Append every batch of ``stream`` to an existing layer of a GeoPackage, with the GIL released while GDAL writes.

    The layer must have been created with the stream's fields (e.g. by ``pyogrio.raw.write_arrow``
    of the same columns with no rows). The dataset is opened in update mode, each batch is passed
    to ``OGR_L_WriteArrowBatch`` (with ``GEOMETRY_NAME`` when the stream has a geometry column, as
    pyogrio passes it) and released, and the dataset is closed, which flushes it.

    Parameters
    ----------
    path : str or os.PathLike
        The GeoPackage.
    layer : str
        Name of the layer to append to.
    stream : ArrowStream
        The rows, made one batch at a time (an error while a batch is made is raised here).
    geometry_name : str, optional
        Name of the stream's geometry column, if it has one.

    Raises
    ------
    RuntimeError
        When GDAL is not reachable, the file or layer cannot be opened, or GDAL refuses a batch
        (with GDAL's message).
    """
    lib = _library()
    if lib is None:
        raise RuntimeError("GDAL's C API is not reachable here; write with pyogrio instead")
    drivers = (C.c_char_p * 2)(b"GPKG", None)
    lib.CPLErrorReset()
    ds = lib.GDALOpenEx(os.fsencode(path), _OF_VECTOR | _OF_UPDATE | _OF_VERBOSE_ERROR, drivers, None, None)
    if not ds:
        raise RuntimeError(_message(lib, f"GDAL could not open {os.fspath(path)!r} for update"))
    try:
        lyr = lib.GDALDatasetGetLayerByName(ds, layer.encode("utf-8"))
        if not lyr:
            raise RuntimeError(_message(lib, f"no layer {layer!r} in {os.fspath(path)!r}"))
        options = (C.c_char_p * 2)(f"GEOMETRY_NAME={geometry_name}".encode(), None) if geometry_name else None
        schema = C.byref(stream.schema)
        for array in stream.batches():
            lib.CPLErrorReset()
            if not lib.OGR_L_WriteArrowBatch(lyr, schema, C.byref(array), options):  # GIL released here
                raise RuntimeError(_message(lib, f"GDAL refused a batch of layer {layer!r}"))
    except BaseException:
        lib.GDALClose(ds)
        raise
    lib.CPLErrorReset()
    if lib.GDALClose(ds) >= 3:  # CE_Failure: the last rows may not be flushed
        raise RuntimeError(_message(lib, f"GDAL could not finish writing {os.fspath(path)!r}"))
