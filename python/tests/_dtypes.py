"""Every shape of record dtype the package accepts, each with three sample records
(importable by the children that the single-receive tests start)."""

from __future__ import annotations

import numpy as np

POINT = np.dtype([("x", "<u4"), ("y", "<u2")], align=True)


def _array(dt: np.dtype, values) -> np.ndarray:
    # Zeros first, so that the padding of aligned structs is zero too (records are
    # compared byte for byte).
    a = np.zeros(len(values), dt)
    if dt.subdtype is not None:
        # numpy turns a subarray record dtype into trailing dimensions of the array.
        a[...] = np.array(values, dtype=dt.base).reshape(a.shape)
    else:
        a[...] = np.array(values, dtype=dt)
    return a


# name: (dtype, three records)
SAMPLES = {
    "u8": ("<u8", [7, 2**63 + 5, 0]),
    "i2": ("<i2", [-3, 300, 0]),
    "f4": ("<f4", [1.5, -2.25, 1e30]),
    "c16": ("<c16", [1 + 2j, -3.5j, 4]),
    "bool": ("?", [True, False, True]),
    "datetime": ("<M8[ns]", [0, 1_700_000_000_000_000_000, 5]),
    "bytes": ("S8", [b"abc", b"12345678", b""]),
    "text": ("<U3", ["ab", "xyz", ""]),
    "void": ("V5", [b"\x01\x02\x03\x04\x05", b"\xff" * 5, b"\0" * 5]),
    "subarray": (("<u4", (3,)), [[7, 8, 9], [1, 2, 3], [2**32 - 1, 0, 5]]),
    "subarray-2d": (("<i2", (2, 3)), [[[1, 2, 3], [4, 5, 6]], [[-1] * 3, [0] * 3], [[9] * 3] * 2]),
    "subarray-bytes": (("S2", (2,)), [[b"ab", b"c"], [b"", b"zz"], [b"q", b"r"]]),
    "structured": (np.dtype([("seq", "<u8"), ("bid", "<f8"), ("sym", "S4")], align=True),
                   [(1, 0.5, b"AB"), (2, -1.0, b"ABCD"), (3, 2.0, b"")]),
    "packed": (np.dtype([("a", "u1"), ("b", "<u8")]), [(1, 2), (255, 2**64 - 1), (0, 0)]),
    "struct-with-subarray-fields": (
        np.dtype([("id", "<u4"), ("xyz", "<f8", (3,)), ("tag", "S2", (2,))], align=True),
        [(1, [1.0, 2.0, 3.0], [b"a", b"b"]), (2, [-1, -2, -3], [b"", b"zz"]),
         (3, [0, 0, 0.5], [b"x", b""])]),
    "nested-struct": (
        np.dtype([("p", POINT), ("ps", POINT, (2,)), ("w", "<f4", (2, 2))], align=True),
        [((1, 2), [(3, 4), (5, 6)], [[1, 2], [3, 4]]), ((0, 0), [(0, 0), (9, 9)], [[0, 0], [0, 1]]),
         ((7, 7), [(1, 1), (2, 2)], [[-1, -1], [-1, -1]])]),
    "subarray-of-struct": ((POINT, (2,)), [[(1, 2), (3, 4)], [(5, 6), (7, 8)], [(0, 0), (9, 9)]]),
}


def sample(key: str) -> tuple[np.dtype, np.ndarray]:
    dt, values = SAMPLES[key]
    dt = np.dtype(dt)
    return dt, _array(dt, values)
