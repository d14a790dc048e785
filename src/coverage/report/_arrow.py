"""A minimal Arrow C stream over NumPy columns, for GDAL's Arrow write path without pyarrow.

pyogrio's ``write_dataframe`` converts every value of every row to a Python object before GDAL sees
it (about 0.2 µs a value: 6–7 s for the million-cell layer of a large county). GDAL ≥ 3.8 also takes
whole column batches through the `Arrow C data interface
<https://arrow.apache.org/docs/format/CDataInterface.html>`_ (``OGR_L_WriteArrowBatch``), which
pyogrio exposes as :func:`pyogrio.raw.write_arrow` for any object with an ``__arrow_c_stream__``
method (the Arrow PyCapsule protocol). :class:`ArrowStream` is such an object, built with
:mod:`ctypes` from plain NumPy arrays, so the project needs no pyarrow (≈170 MB).

Only what the compact GeoPackage layers use is supported: integer columns (``int8``, ``int16``,
``int32``, ``int64``), ``float64`` columns, each with an optional validity mask (``False`` =
``NULL``), and one WKB binary column (the geometry). Columns are produced batch by batch by a
callable, so a batch of rows is converted at a time and memory stays bounded.

Memory ownership follows the C data interface: the structs handed to the consumer point into
buffers kept alive by the :class:`ArrowStream` object until the consumer calls the ``release``
callbacks (or the stream object is dropped). The object must therefore outlive the call that
consumes it (e.g. ``write_arrow(stream, ...)``), which a local variable does.
"""

from __future__ import annotations

import ctypes as C
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["FORMATS", "ArrowStream", "Batch", "Column"]

#: Arrow format strings of the supported NumPy dtypes (and ``"z"`` for binary, used for WKB).
FORMATS: dict[str, bytes] = {"int8": b"c", "int16": b"s", "int32": b"i", "int64": b"l", "float64": b"g"}

#: One column of one batch: ``(values, valid)`` for a fixed-width column (``valid`` None when every
#: value is present), ``(offsets, data, valid)`` for a binary column (int32 offsets, uint8 data).
Batch = tuple[np.ndarray, np.ndarray | None] | tuple[np.ndarray, np.ndarray, np.ndarray | None]
#: ``(name, format, make)``: ``make(start, stop)`` returns the column's :data:`Batch` for those rows.
Column = tuple[str, bytes, Callable[[int, int], Any]]


class ArrowSchema(C.Structure):
    """``struct ArrowSchema`` of the C data interface."""


class ArrowArray(C.Structure):
    """``struct ArrowArray`` of the C data interface."""


class ArrowArrayStream(C.Structure):
    """``struct ArrowArrayStream`` of the C stream interface."""


_SCHEMA_RELEASE = C.CFUNCTYPE(None, C.POINTER(ArrowSchema))
_ARRAY_RELEASE = C.CFUNCTYPE(None, C.POINTER(ArrowArray))
_GET_SCHEMA = C.CFUNCTYPE(C.c_int, C.POINTER(ArrowArrayStream), C.POINTER(ArrowSchema))
_GET_NEXT = C.CFUNCTYPE(C.c_int, C.POINTER(ArrowArrayStream), C.POINTER(ArrowArray))
_GET_LAST_ERROR = C.CFUNCTYPE(C.c_void_p, C.POINTER(ArrowArrayStream))
_STREAM_RELEASE = C.CFUNCTYPE(None, C.POINTER(ArrowArrayStream))

ArrowSchema._fields_ = [
    ("format", C.c_char_p), ("name", C.c_char_p), ("metadata", C.c_void_p), ("flags", C.c_int64),
    ("n_children", C.c_int64), ("children", C.POINTER(C.POINTER(ArrowSchema))),
    ("dictionary", C.POINTER(ArrowSchema)), ("release", _SCHEMA_RELEASE), ("private_data", C.c_void_p),
]
ArrowArray._fields_ = [
    ("length", C.c_int64), ("null_count", C.c_int64), ("offset", C.c_int64), ("n_buffers", C.c_int64),
    ("n_children", C.c_int64), ("buffers", C.POINTER(C.c_void_p)), ("children", C.POINTER(C.POINTER(ArrowArray))),
    ("dictionary", C.POINTER(ArrowArray)), ("release", _ARRAY_RELEASE), ("private_data", C.c_void_p),
]
ArrowArrayStream._fields_ = [
    ("get_schema", _GET_SCHEMA), ("get_next", _GET_NEXT), ("get_last_error", _GET_LAST_ERROR),
    ("release", _STREAM_RELEASE), ("private_data", C.c_void_p),
]

_ARROW_FLAG_NULLABLE = 2
_EIO = 5
_CAPSULE_NAME = b"arrow_array_stream"  # module constant: the capsule keeps a pointer to it
_PyCapsule_New = C.pythonapi.PyCapsule_New
_PyCapsule_New.restype = C.py_object
_PyCapsule_New.argtypes = [C.c_void_p, C.c_char_p, C.c_void_p]


@_SCHEMA_RELEASE
def _release_schema(schema: Any) -> None:
    # buffers belong to the ArrowStream object; releasing only marks the struct released
    schema[0].release = _SCHEMA_RELEASE()


@_ARRAY_RELEASE
def _release_child(array: Any) -> None:
    array[0].release = _ARRAY_RELEASE()


class ArrowStream:
    """An Arrow C stream (PyCapsule protocol) of a table of NumPy columns, produced batch by batch.

    Parameters
    ----------
    n_rows : int
        Number of rows.
    columns : sequence of (str, bytes, callable)
        ``(name, format, make)`` per column, in order: ``format`` is a value of :data:`FORMATS` or
        ``b"z"`` (binary); ``make(start, stop)`` returns that column's rows ``start:stop`` as
        ``(values, valid)`` (``values`` of the format's dtype, ``valid`` a bool array or None) or,
        for binary, ``(offsets, data, valid)`` (``offsets`` int32 of length ``stop - start + 1``
        starting at 0, ``data`` uint8).
    batch_rows : int
        Rows per batch.

    Notes
    -----
    Pass the object itself to a consumer (``pyogrio.raw.write_arrow(stream, ...)``) and keep a
    reference to it until the consumer returns.
    """

    def __init__(self, n_rows: int, columns: Sequence[Column], batch_rows: int = 65_536) -> None:
        self.n_rows = int(n_rows)
        self.columns = list(columns)
        self.batch_rows = max(1, int(batch_rows))
        self._keep: list[Any] = []  # schema structs and strings
        self._batches: dict[int, list[Any]] = {}  # batch id → everything its arrays point to
        self._next_row = 0
        self._next_id = 1
        self._error = C.create_string_buffer(b"")
        #: The exception raised while a batch was made, if any (consumers only see a failed batch).
        self.error: Exception | None = None
        self._schema = self._make_schema()
        # callbacks are bound methods wrapped once and kept: ctypes frees a callback with its object
        self._cb_get_schema = _GET_SCHEMA(self._get_schema)
        self._cb_get_next = _GET_NEXT(self._get_next)
        self._cb_last_error = _GET_LAST_ERROR(self._get_last_error)
        self._cb_stream_release = _STREAM_RELEASE(self._release_stream)
        self._cb_array_release = _ARRAY_RELEASE(self._release_array)
        self._streams: list[ArrowArrayStream] = []

    # -- the PyCapsule protocol ------------------------------------------------------------

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:  # noqa: PLW3201 - Arrow PyCapsule protocol name
        """Return a PyCapsule ``arrow_array_stream`` over the table (``requested_schema`` is ignored).

        Parameters
        ----------
        requested_schema : object, optional
            Ignored: the stream always has its own schema.

        Returns
        -------
        PyCapsule
        """
        stream = ArrowArrayStream()
        stream.get_schema = self._cb_get_schema
        stream.get_next = self._cb_get_next
        stream.get_last_error = self._cb_last_error
        stream.release = self._cb_stream_release
        self._streams.append(stream)
        self._next_row = 0
        return _PyCapsule_New(C.addressof(stream), _CAPSULE_NAME, None)

    # -- one batch at a time, for a consumer that takes ``struct ArrowArray`` ---------------

    @property
    def schema(self) -> ArrowSchema:
        """The ``struct ArrowSchema`` of the table (owned by this object: do not release it)."""
        return self._schema

    def batches(self) -> Iterator[ArrowArray]:
        """The batches in row order, as ``struct ArrowArray`` (for a consumer such as ``OGR_L_WriteArrowBatch``).

        Each batch is released (unless the consumer did) when the next one is asked for or the
        loop ends; an error while a batch is made is raised to the loop.

        Yields
        ------
        ArrowArray
        """
        for start in range(0, self.n_rows, self.batch_rows):
            array = self._make_batch(start, min(self.n_rows, start + self.batch_rows))
            try:
                yield array
            finally:
                if array.release:
                    array.release(C.pointer(array))

    # -- schema ----------------------------------------------------------------------------

    def _make_schema(self) -> ArrowSchema:
        children = (C.POINTER(ArrowSchema) * len(self.columns))()
        for i, (name, fmt, _make) in enumerate(self.columns):
            child = ArrowSchema()
            fmt_b, name_b = C.create_string_buffer(fmt), C.create_string_buffer(name.encode("utf-8"))
            child.format = C.cast(fmt_b, C.c_char_p)
            child.name = C.cast(name_b, C.c_char_p)
            child.flags = _ARROW_FLAG_NULLABLE
            child.release = _release_schema
            children[i] = C.pointer(child)
            self._keep += [child, fmt_b, name_b]
        top = ArrowSchema()
        fmt_b, name_b = C.create_string_buffer(b"+s"), C.create_string_buffer(b"")
        top.format = C.cast(fmt_b, C.c_char_p)
        top.name = C.cast(name_b, C.c_char_p)
        top.n_children = len(self.columns)
        top.children = children
        top.release = _release_schema
        self._keep += [children, fmt_b, name_b]
        return top

    def _get_schema(self, _stream: Any, out: Any) -> int:
        try:
            C.memmove(out, C.addressof(self._schema), C.sizeof(ArrowSchema))
            return 0
        except Exception as exc:  # noqa: BLE001 - reported to the consumer through get_last_error
            return self._fail(exc)

    # -- batches ---------------------------------------------------------------------------

    def _get_next(self, _stream: Any, out: Any) -> int:
        try:
            start = self._next_row
            if start >= self.n_rows:
                C.memset(out, 0, C.sizeof(ArrowArray))  # release = NULL: end of stream
                return 0
            stop = min(self.n_rows, start + self.batch_rows)
            top = self._make_batch(start, stop)
            C.memmove(out, C.addressof(top), C.sizeof(ArrowArray))
            self._next_row = stop
            return 0
        except Exception as exc:  # noqa: BLE001 - reported to the consumer through get_last_error
            return self._fail(exc)

    def _make_batch(self, start: int, stop: int) -> ArrowArray:
        m = stop - start
        keep: list[Any] = []
        children = (C.POINTER(ArrowArray) * len(self.columns))()
        for i, (_name, fmt, make) in enumerate(self.columns):
            part = make(start, stop)
            child = ArrowArray()
            arrays: list[np.ndarray]
            if fmt == b"z":
                offsets, data, valid = part
                arrays = [np.ascontiguousarray(offsets, dtype=np.int32), np.ascontiguousarray(data, dtype=np.uint8)]
                if len(arrays[0]) != m + 1:
                    raise ValueError(f"binary column {_name!r}: {len(arrays[0])} offsets for {m} rows")
            else:
                values, valid = part
                dtype = next(k for k, v in FORMATS.items() if v == fmt)
                arrays = [np.ascontiguousarray(values, dtype=dtype)]
                if len(arrays[0]) != m:
                    raise ValueError(f"column {_name!r}: {len(arrays[0])} values for {m} rows")
            null_count = 0
            bitmap: np.ndarray | None = None
            if valid is not None:
                valid = np.asarray(valid, dtype=bool)
                null_count = int(m - np.count_nonzero(valid))
                if null_count:
                    bitmap = np.packbits(valid, bitorder="little")
            buffers = (C.c_void_p * (1 + len(arrays)))(
                None if bitmap is None else bitmap.ctypes.data, *(a.ctypes.data for a in arrays)
            )
            child.length = m
            child.null_count = null_count
            child.n_buffers = len(buffers)
            child.buffers = buffers
            child.release = _release_child
            children[i] = C.pointer(child)
            keep += [child, buffers, bitmap, *arrays]
        top = ArrowArray()
        top_buffers = (C.c_void_p * 1)(None)
        top.length = m
        top.n_buffers = 1
        top.buffers = top_buffers
        top.n_children = len(self.columns)
        top.children = children
        top.release = self._cb_array_release
        top.private_data = self._next_id
        keep += [children, top_buffers, top]
        self._batches[self._next_id] = keep
        self._next_id += 1
        return top

    def _release_array(self, array: Any) -> None:
        self._batches.pop(array[0].private_data or 0, None)
        array[0].release = _ARRAY_RELEASE()

    # -- errors and release ----------------------------------------------------------------

    def _fail(self, exc: Exception) -> int:
        self.error = exc
        self._error = C.create_string_buffer(f"{type(exc).__name__}: {exc}".encode("utf-8", "replace"))
        return _EIO

    def _get_last_error(self, _stream: Any) -> int | None:
        return C.addressof(self._error) if self._error.value else None

    def _release_stream(self, stream: Any) -> None:
        # batches already handed out live on until their own release (C stream interface)
        stream[0].release = _STREAM_RELEASE()
