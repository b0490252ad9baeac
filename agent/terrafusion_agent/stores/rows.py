"""Row values as the sync engine compares and stores them.

A row is a dict {column: value} with values in "wire" form: integers and floats as
Python numbers, text (including dates and timestamps) as str, blobs and geometries as
bytes (geometry as ISO WKB). The same shape comes out of both central stores and the
local copy, so rows from any side compare directly.

Local triggers record the row as it was before its first edit (the *base*) as a JSON
object built with SQL only: reals as 17-digit strings (JSON's 15 digits would not
round-trip a double), blobs and geometries as hex. :func:`decode_base` reads it back.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Optional

from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.sql import quote_literal as ql
from terrafusion_agent.stores.base import TableInfo

Row = dict[str, Any]


def pk_of(info: TableInfo, row: Row) -> tuple:
    return tuple(row[c] for c in info.pk)


def pk_json(pk: tuple) -> str:
    """The key as the local triggers write it (SQLite's json_array of the key values)."""
    return json.dumps(list(pk), separators=(",", ":"), ensure_ascii=False)


def base_json_sql(info: TableInfo, alias: str) -> str:
    """SQL (SQLite + SpatiaLite only) building the base JSON object of row ``alias``."""
    parts = []
    for c in info.columns:
        ref = f"{alias}.{qi(c.name)}"
        if c.kind == "real":
            expr = f"CASE WHEN {ref} IS NULL THEN NULL ELSE printf('%!.17g', {ref}) END"
        elif c.kind == "geometry":
            expr = f"CASE WHEN {ref} IS NULL THEN NULL ELSE hex(AsBinary({ref})) END"
        elif c.kind == "blob":
            expr = f"CASE WHEN {ref} IS NULL THEN NULL ELSE hex({ref}) END"
        else:
            expr = ref
        parts.append(f"{ql(c.name)}, {expr}")
    return f"json_object({', '.join(parts)})"


def pk_json_sql(info: TableInfo, alias: str) -> str:
    return "json_array(" + ", ".join(f"{alias}.{qi(p)}" for p in info.pk) + ")"


def decode_base(info: TableInfo, text: Optional[str]) -> Optional[Row]:
    """The base row from its JSON (None stays None); columns missing from it (added
    since) come back as None, columns no longer in the table are dropped."""
    if text is None:
        return None
    data = json.loads(text)
    row: Row = {}
    for c in info.columns:
        v = data.get(c.name)
        if v is not None:
            if c.kind == "real":
                v = float(v)
            elif c.kind in ("geometry", "blob"):
                v = bytes.fromhex(v)
        row[c.name] = v
    return row


def encode_base(info: TableInfo, row: Optional[Row]) -> Optional[str]:
    """The inverse of :func:`decode_base`, for bases the engine writes itself."""
    if row is None:
        return None
    out = {}
    for c in info.columns:
        v = row.get(c.name)
        if v is not None:
            if c.kind == "real":
                v = repr(float(v))
            elif c.kind in ("geometry", "blob"):
                v = bytes(v).hex().upper()
        out[c.name] = v
    return json.dumps(out, ensure_ascii=False)


def for_display(info: Optional[TableInfo], text: Optional[str]) -> Optional[dict]:
    """A stored row (base JSON form) for people and APIs: numbers as numbers, geometry
    and blobs as hex WKB / hex bytes."""
    if text is None:
        return None
    if info is None:
        return json.loads(text)
    row = decode_base(info, text)
    return {k: (v.hex().upper() if isinstance(v, bytes) else v) for k, v in row.items()}


def canonical(kind: str, value: Any) -> Any:
    """A comparable form: equal values from PostgreSQL and SQLite compare equal."""
    if value is None:
        return None
    if kind in ("integer", "boolean"):
        return int(value)
    if kind == "real":
        # + 0.0 folds -0.0 into 0.0: SQLite does not keep the sign of a zero
        return struct.pack("<d", float(value) + 0.0)
    if kind == "geometry":
        value = bytes(value)
        return None if is_empty_wkb(value) else value
    if kind == "blob":
        return bytes(value)
    return str(value)


def is_empty_wkb(wkb: bytes) -> bool:
    """An empty non-point geometry (no rings, parts or vertices). SpatiaLite stores
    these as NULL, so the engine treats EMPTY and NULL as the same value."""
    if len(wkb) != 9:
        return False
    order = "little" if wkb[0] == 1 else "big"
    return int.from_bytes(wkb[5:9], order) == 0


def same(info: TableInfo, column: str, a: Optional[Row], b: Optional[Row]) -> bool:
    kind = next(c.kind for c in info.columns if c.name == column)
    va = None if a is None else a.get(column)
    vb = None if b is None else b.get(column)
    return canonical(kind, va) == canonical(kind, vb)


def changed_columns(info: TableInfo, base: Optional[Row], row: Optional[Row]) -> set[str]:
    """Columns whose value differs between ``base`` and ``row`` (both present)."""
    if base is None or row is None:
        return set()
    return {c.name for c in info.columns if not same(info, c.name, base, row)}


def rows_equal(info: TableInfo, a: Optional[Row], b: Optional[Row]) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return not changed_columns(info, a, b)
