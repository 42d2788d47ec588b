"""Lock-free shared-memory channels for Linux IPC, from Python, with numpy records.

A thin binding of the Rust crate ``shmchan`` (its ``shmchan::raw`` API): the ring
protocol is the Rust implementation's, so Python and Rust processes share segments
in either direction. Records are numpy records of a fixed-size dtype (or a
``ctypes.Structure``) in the machine's byte order::

    import numpy as np, shmchan
    Quote = np.dtype([("ts_ns", "<u8"), ("bid", "<f8"), ("ask", "<f8"),
                      ("bid_qty", "<u4"), ("ask_qty", "<u4"), ("symbol", "S8")], align=True)
    rx = shmchan.Route.receiver("quotes", Quote, schema="Quote")
    q = rx.recv()                          # one record: a numpy.void (a copy)
    a = rx.recv_many(4096, timeout=0.01)   # ndarray of 0..4096 records

Every blocking call releases the GIL and runs signal handlers at least every 50 ms,
so Ctrl-C interrupts it. See ``__init__.pyi`` for every signature.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ._shmchan import (
    Batches,
    Disconnected,
    Error,
    Evicted,
    Lagged,
    Mismatch,
    Receiver,
    Sender,
    SenderExists,
    open_receiver as _open_receiver,
    open_sender as _open_sender,
    inspect as _inspect,
    remove as _remove,
)

__all__ = [
    "Route",
    "Channel",
    "Receiver",
    "Sender",
    "Batches",
    "SegmentInfo",
    "inspect",
    "remove",
    "record_dtype",
    "Error",
    "Lagged",
    "Disconnected",
    "Evicted",
    "Mismatch",
    "SenderExists",
]

__version__ = "0.1.0"

_NATIVE = "<" if sys.byteorder == "little" else ">"

# numpy scalar types and the Rust name a typed Rust side records for them, so that
# `Route.receiver(name, np.uint64)` meets a `Route::<u64>` without a schema.
_RUST_SCALARS = {
    "u1": "u8", "u2": "u16", "u4": "u32", "u8": "u64",
    "i1": "i8", "i2": "i16", "i4": "i32", "i8": "i64",
    "f4": "f32", "f8": "f64",
}


@dataclass(frozen=True)
class SegmentInfo:
    """What a segment's header says, read without joining it (``inspect``)."""

    path: str
    family: str
    mode: str
    overflow: str
    schema: str
    record_size: int
    record_align: int
    capacity: int
    max_receivers: int
    max_producers: int
    file_len: int
    created_at: float
    creator_pid: int

    @property
    def dtype(self) -> np.dtype:
        """Records as opaque bytes (``V<record_size>``): enough to copy them around;
        build a structured dtype to read fields."""
        return np.dtype((np.void, self.record_size))


def inspect(name: Optional[str] = None, *, path: Optional[os.PathLike | str] = None) -> SegmentInfo:
    """What the segment ``name`` (or the file ``path``) is: family, mode, overflow,
    capacity and record layout, read from its header without joining it.
    ``FileNotFoundError`` if there is no such segment."""
    d = _inspect(name, None if path is None else os.fspath(path))
    d["path"] = os.fspath(d["path"])
    return SegmentInfo(**d)


def remove(name: str) -> bool:
    """Unlinks the segment ``name``; processes that have it open keep working on their
    mapping. Returns whether there was a segment to remove."""
    return _remove(name)


def _walk(dt: np.dtype, where: str) -> None:
    """Refuses what cannot travel as plain bytes between processes."""
    if dt.fields is not None:
        for field, spec in dt.fields.items():
            _walk(spec[0], f"{where}-> {field!r} " if where else f"field {field!r} ")
        return
    if dt.subdtype is not None:
        _walk(dt.subdtype[0], where)
        return
    label = where or "the dtype "
    if dt.hasobject:
        raise TypeError(
            f"{label}holds Python objects ({dt.str}): shmchan records are plain bytes; "
            "use fixed-size fields (numbers, 'S<n>' bytes, 'U<n>' text)")
    if dt.byteorder not in ("=", "|") and dt.byteorder != _NATIVE:
        native = dt.newbyteorder("=").str
        raise TypeError(
            f"{label}is big-endian ({dt.str}): shmchan records are in the machine's byte "
            f"order, as the Rust side writes them; use {native!r} instead "
            "(dtype.newbyteorder('=') converts a whole dtype)")


def record_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype for ``dtype`` (anything ``numpy.dtype()`` takes, or a
    ``ctypes.Structure`` subclass), checked: fixed size, native byte order, no objects."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{dtype!r} is not a record type: {e}") from None
    _walk(dt, "")
    if dt.itemsize == 0:
        raise TypeError(f"dtype {dt} has no bytes: a record has at least one")
    return dt


def _rust_name(dt: np.dtype) -> Optional[str]:
    """The name a typed Rust side records for this dtype, if it is a scalar or an array
    of scalars (``[u32; 3]``)."""
    if dt.fields is not None:
        return None
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        name = _rust_name(base)
        if name is None:
            return None
        for n in reversed(shape):
            name = f"[{name}; {n}]"
        return name
    return _RUST_SCALARS.get(dt.str[1:])


def _schema_for(dtype: Any, dt: np.dtype, schema: Optional[str]) -> str:
    if schema is not None:
        return schema
    if isinstance(dtype, type) and issubclass(dtype, (ctypes.Structure, ctypes.Union)):
        return dtype.__name__
    name = _rust_name(dt)
    if name is not None:
        return name
    raise TypeError(
        f"a structured dtype needs schema='...': the record type's name as the Rust side "
        f"records it (its struct name, or what it passes to .schema(...)); dtype {dt}")


def _packed_hint(dt: np.dtype, e: Mismatch) -> Mismatch:
    field = getattr(e, "field", "")
    if dt.fields is None or dt.isalignedstruct or field not in ("record size", "record alignment"):
        return e
    aligned = np.dtype({"names": list(dt.names), "formats": [dt.fields[n][0] for n in dt.names]}, align=True)
    hint = (f" (this side's dtype is packed: {dt.itemsize} bytes, alignment {dt.alignment}; "
            f"numpy.dtype([...], align=True) lays fields out like a C or #[repr(C)] Rust "
            f"struct: {aligned.itemsize} bytes, alignment {aligned.alignment})")
    new = Mismatch(str(e) + hint)
    for attr in ("field", "expected", "found", "path"):
        setattr(new, attr, getattr(e, attr, None))
    return new


def _open(kind: str, family: str, name: Optional[str], dtype: Any, schema: Optional[str],
          align: Optional[int], options: dict) -> Any:
    unknown = set(options) - {"capacity", "mode", "overflow", "wait", "max_receivers",
                              "max_producers", "path", "permissions", "open_timeout"}
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    if family == "route" and options.get("max_producers") is not None:
        raise TypeError("max_producers is an option of Channel (a Route has one producer)")
    path = options.get("path")
    if path is not None:
        options["path"] = os.fspath(path)
    if dtype is None:
        # Learn the record layout from the segment itself. Unset options need no look:
        # the open adopts the segment's (see the Rust `Builder`), and judges the
        # segment it joins, so one re-created between this look and the open is
        # refused if its record type differs, never misread.
        info = inspect(name, path=options.get("path"))
        dt = info.dtype
        schema = info.schema if schema is None else schema
        align = info.record_align if align is None else align
    else:
        dt = record_dtype(dtype)
        schema = _schema_for(dtype, dt, schema)
        if align is None:
            align = dt.alignment
    full = {key: options.get(key) for key in ("capacity", "mode", "overflow", "wait",
                                              "max_receivers", "max_producers", "path",
                                              "permissions", "open_timeout")}
    full.update(family=family, name=name, schema=schema, align=align)
    opener = _open_receiver if kind == "receiver" else _open_sender
    try:
        return opener(dt, full)
    except Mismatch as e:
        raise _packed_hint(dt, e) from None


class _Family:
    _family = ""

    @classmethod
    def receiver(cls, name: Optional[str], dtype: Any = None, *, schema: Optional[str] = None,
                 align: Optional[int] = None, **options: Any) -> Receiver:
        """Opens (or creates) the segment ``name`` as one more receiver of records of
        ``dtype``. Options as the Rust builder: capacity, mode ('broadcast' |
        'unicast'), overflow ('overwrite' | 'block'), wait ('spin' | 'adaptive' |
        'block'), max_receivers, max_producers (Channel), path, permissions,
        open_timeout. Opening adopts, creating decides: a segment option left unset
        takes an existing segment's value (the default when this side creates it), one
        set is checked (``Mismatch`` naming it), and the record type is always checked.
        With ``dtype=None`` the segment must exist, and its record layout is used
        (records come as opaque ``V<n>`` bytes)."""
        return _open("receiver", cls._family, name, dtype, schema, align, dict(options))

    @classmethod
    def sender(cls, name: Optional[str], dtype: Any = None, *, schema: Optional[str] = None,
               align: Optional[int] = None, **options: Any) -> Sender:
        """Opens (or creates) the segment ``name`` as a sender of records of ``dtype``;
        options as ``receiver``. On a Route a second live sender raises
        ``SenderExists``."""
        return _open("sender", cls._family, name, dtype, schema, align, dict(options))

    @staticmethod
    def remove(name: str) -> bool:
        """Unlinks the segment ``name`` (see ``shmchan.remove``)."""
        return _remove(name)


class Route(_Family):
    """One producer (enforced across processes), any number of receivers."""

    _family = "route"


class Channel(_Family):
    """Many producers, any number of receivers."""

    _family = "channel"
