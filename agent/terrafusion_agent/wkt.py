"""Geometries as WKT for people, read from WKB in Python.

Every coordinate is written in the shortest form that reads back as the same double, so
a vertex moved by a millionth of a foot shows as moved: SpatiaLite's ``AsText`` keeps six
decimals, and GDAL would cost its libraries to load for a few rows. ISO WKB (what the
local copy's ``AsBinary`` and central's ``ST_AsBinary`` give) and PostGIS's extended WKB
are both read, in either byte order.
"""

from __future__ import annotations

import math
import struct

_TYPES = {1: "POINT", 2: "LINESTRING", 3: "POLYGON", 4: "MULTIPOINT",
          5: "MULTILINESTRING", 6: "MULTIPOLYGON", 7: "GEOMETRYCOLLECTION"}
#: extended WKB's flags in the type code
_EWKB_Z, _EWKB_M, _EWKB_SRID = 0x80000000, 0x40000000, 0x20000000


def to_wkt(wkb: bytes) -> str:
    """The WKT of ``wkb``; ValueError when it is not a geometry this module reads."""
    reader = _Reader(bytes(wkb))
    text = reader.geometry()
    if reader.pos != len(reader.data):
        raise ValueError("bytes left after the geometry")
    return text


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 1072000, not 1072000.0
    return repr(value)


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("the geometry is cut short")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def geometry(self, tagged: bool = True) -> str:
        (order,) = self._take("B")
        if order not in (0, 1):
            raise ValueError(f"byte order {order} is neither 0 nor 1")
        endian = "<" if order == 1 else ">"
        (code,) = self._take(endian + "I")
        z, m = bool(code & _EWKB_Z), bool(code & _EWKB_M)
        if code & _EWKB_SRID:
            self._take(endian + "I")
        code &= 0x0FFFFFFF
        iso, kind = divmod(code, 1000)
        if kind not in _TYPES or iso > 3:
            raise ValueError(f"geometry type {code} is not one WKT is written for here")
        z, m = z or iso in (1, 3), m or iso in (2, 3)
        dims = 2 + z + m
        name = _TYPES[kind]
        tag = f"{name}{' ' if z or m else ''}{'Z' if z else ''}{'M' if m else ''}"
        body = self._body(kind, endian, dims)
        if not tagged:  # a part of a MULTI geometry goes without its name
            return body
        return f"{tag} {body}"

    def _body(self, kind: int, endian: str, dims: int) -> str:
        if kind == 1:
            point = self._take(endian + "d" * dims)
            if all(math.isnan(v) for v in point):
                return "EMPTY"
            return f"({' '.join(_number(v) for v in point)})"
        if kind == 2:
            return self._points(endian, dims)
        if kind == 3:
            (rings,) = self._take(endian + "I")
            parts = [self._points(endian, dims) for _ in range(rings)]
            return f"({', '.join(parts)})" if parts else "EMPTY"
        (count,) = self._take(endian + "I")
        parts = [self.geometry(tagged=kind == 7) for _ in range(count)]
        return f"({', '.join(parts)})" if parts else "EMPTY"

    def _points(self, endian: str, dims: int) -> str:
        (count,) = self._take(endian + "I")
        if count > (len(self.data) - self.pos) // (8 * dims):
            raise ValueError("the geometry is cut short")
        points = [" ".join(_number(v) for v in self._take(endian + "d" * dims))
                  for _ in range(count)]
        return f"({', '.join(points)})" if points else "EMPTY"
