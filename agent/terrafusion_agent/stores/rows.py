"""Row values as the sync engine compares and stores them.

A row is a dict {column: value} with values in "wire" form: integers and floats as
Python numbers, text (including dates and timestamps) as str, blobs and geometries as
bytes (geometry as ISO WKB). The same shape comes out of both central stores and the
local copy, so rows from any side compare directly.

Exact decimals (kind "decimal") come from central as :class:`~decimal.Decimal`. The
local copy keeps them in a DOUBLE column: QGIS reads only REAL, DOUBLE and FLOAT
columns as numbers (GDAL adds NUMERIC and DECIMAL), and SQLite turns a number written
into any of them into a double, so no column type both keeps 18 digits and reads as a
number. A value the double does not hold exactly is kept beside it, as text, in
:data:`EXACT_TABLE`, for as long as the column still holds that double: edited in
QGIS, the column's new double is the value. A double stands for the decimal it prints
as (its shortest repr), which is also what is pushed, so ``1.5``, ``1.50`` and
``Decimal("1.500000")`` are one value.

Local triggers record the row as it was before its first edit (the *base*) as a JSON
object built with SQL only: reals as 17-digit strings (JSON's 15 digits would not
round-trip a double), decimals as 17-digit JSON numbers when the column's double is
the value and as strings of their exact digits when it is not, blobs and geometries as
hex. :func:`decode_base` reads it back.
"""

from __future__ import annotations

import json
import math
import struct
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Optional, overload

from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.sql import quote_literal as ql
from terrafusion_agent.stores.base import Row, TableInfo

#: the local table holding the exact digits of decimals their double column cannot hold:
#: (table_name, pk_json, column_name, value, approx), ``approx`` being the double the
#: column held when the value was stored there
EXACT_TABLE = "tf_decimals"


def pk_json(pk: tuple) -> str:
    """The key as the local triggers write it (SQLite's json_array of the key values)."""
    return json.dumps(list(pk), separators=(",", ":"), ensure_ascii=False)


def key_of(text: str) -> tuple:
    """The key from its :func:`pk_json` text. A single integer key, by far the most
    common, is read without the JSON parser (a mass push reads a hundred thousand)."""
    inner = text[1:-1]
    digits = inner[1:] if inner.startswith("-") else inner
    if text.startswith("[") and text.endswith("]") and digits.isascii() and digits.isdigit():
        return (int(inner),)
    return tuple(json.loads(text))


def base_json_sql(info: TableInfo, alias: str) -> str:
    """SQL (SQLite + SpatiaLite only) building the base JSON object of row ``alias``."""
    parts = []
    for c in info.columns:
        ref = f"{alias}.{qi(c.name)}"
        if c.kind == "real":
            expr = f"CASE WHEN {ref} IS NULL THEN NULL ELSE printf('%!.17g', {ref}) END"
        elif c.kind == "decimal":
            # JSON text, which json() makes a JSON value right where json_object takes
            # it (a JSON subtype need not survive CASE in every SQLite): the exact
            # digits as a string, else the double as a number (infinity, which SQLite
            # prints as Inf, as a string)
            double = (f"CASE typeof({ref}) WHEN 'null' THEN 'null' WHEN 'real' THEN "
                      f"CASE WHEN abs({ref}) <= 1.7976931348623157e308 THEN "
                      f"printf('%!.17g', {ref}) WHEN {ref} > 0 THEN '\"Infinity\"' "
                      f"ELSE '\"-Infinity\"' END ELSE json_quote(CAST({ref} AS TEXT)) END")
            exact = exact_sql(info, c.name, alias, (ql(info.name), ql(c.name)),
                              "json_quote(value)")
            expr = f"json(coalesce({exact}, {double}))"
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


def exact_sql(info: TableInfo, column: str, alias: str, names: tuple[str, str],
              value: str = "value") -> str:
    """SQL (SQLite) for the exact digits of decimal ``column`` of local row ``alias``
    (as the expression ``value`` of them), NULL when its double is the value.
    ``names``: SQL for the table's and the column's name (``?`` placeholders, or
    literals where nothing can be bound: in a trigger)."""
    return (f"(SELECT {value} FROM {EXACT_TABLE} WHERE table_name = {names[0]} "
            f"AND pk_json = {pk_json_sql(info, alias)} AND column_name = {names[1]} "
            f"AND approx = {alias}.{qi(column)})")


def to_decimal(value: Any) -> Any:
    """The number a decimal column's value stands for, exactly: a Decimal as it is, a
    double as the decimal it prints as (and is pushed as), an integer exactly. Text
    that is no number (SQLite lets a column hold anything) stays text."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int):
        return Decimal(value)
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return value


def local_decimal(value: Any) -> tuple[Any, Optional[str]]:
    """How a decimal value is stored locally: (the column's value, the exact digits to
    keep beside it, or None when the column's double is the value). NaN, which SQLite
    stores as NULL, has no digits to keep."""
    number = to_decimal(value)
    if not isinstance(number, Decimal):
        return number, None
    if number.is_nan():
        return None, None
    double = float(number)  # the nearest double: +-inf beyond, 0.0 below its range
    return double, (None if Decimal(repr(double)) == number else str(number))


def _decimal_key(value: Any) -> Any:
    """A decimal's comparable form: digits without trailing zeros and the exponent, so
    ``1.5``, ``1.50`` and ``15E-1`` agree (Decimal.normalize would round to 28 digits)."""
    number = to_decimal(value)
    if not isinstance(number, Decimal):
        return number
    if not number.is_finite():
        return str(number)
    if not number:
        return "0"  # 0, 0.000000 and -0
    sign, digits, exponent = number.as_tuple()
    text = "".join(map(str, digits)).rstrip("0")
    exponent = int(exponent) + len(digits) - len(text)  # finite: an int
    return f"{'-' if sign else ''}{text}e{exponent}"


@overload
def decode_base(info: TableInfo, text: str) -> Row: ...


@overload
def decode_base(info: TableInfo, text: Optional[str]) -> Optional[Row]: ...


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
            elif c.kind == "decimal" and isinstance(v, str):
                v = to_decimal(v)  # exact digits; a JSON number is the column's double
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
            elif c.kind == "decimal":
                v = _decimal_json(v)
            elif c.kind in ("geometry", "blob"):
                v = bytes(v).hex().upper()
        out[c.name] = v
    return json.dumps(out, ensure_ascii=False)


def _decimal_json(value: Any) -> Any:
    """A decimal as the base JSON holds it: exact digits as a string, a double as a
    number (infinities as strings, which JSON has no number for)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(to_decimal(value))
    return value


def for_display(info: Optional[TableInfo], text: Optional[str]) -> Optional[dict]:
    """A stored row (base JSON form) for people and APIs: numbers as numbers, geometry
    and blobs as hex WKB / hex bytes."""
    if text is None:
        return None
    if info is None:
        return json.loads(text)
    row = decode_base(info, text)
    return {k: displayed(v) for k, v in row.items()}


def displayed(value: Any) -> Any:
    """One value of a row in wire form, as :func:`for_display` shows it."""
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, Decimal):
        # a number when a double holds it; the exact digits as a string when not
        # (decode_base reads both back as the same value)
        if value.is_finite():
            double, digits = local_decimal(value)
            if digits is None:
                return double
        return str(value)
    return value


def canonical(kind: str, value: Any) -> Any:
    """A comparable form: equal values from PostgreSQL and SQLite compare equal."""
    if value is None:
        return None
    if kind in ("integer", "boolean"):
        return int(value)
    if kind == "real":
        # + 0.0 folds -0.0 into 0.0: SQLite does not keep the sign of a zero
        return struct.pack("<d", float(value) + 0.0)
    if kind == "decimal":
        return _decimal_key(value)
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
    order: Literal["little", "big"] = "little" if wkb[0] == 1 else "big"
    return int.from_bytes(wkb[5:9], order) == 0


def same(info: TableInfo, column: str, a: Optional[Row], b: Optional[Row]) -> bool:
    va = None if a is None else a.get(column)
    vb = None if b is None else b.get(column)
    if va is vb or (type(va) is type(vb) and va == vb):
        return True  # equal values of one type have one canonical form
    kind = next(c.kind for c in info.columns if c.name == column)
    return canonical(kind, va) == canonical(kind, vb)


def changed_columns(info: TableInfo, base: Optional[Row], row: Optional[Row]) -> set[str]:
    """Columns whose value differs between ``base`` and ``row`` (both present)."""
    if base is None or row is None:
        return set()
    out = set()
    # a mass push compares millions of values, nearly all equal and of one type: they
    # are settled without their canonical forms
    for c in info.columns:
        va, vb = base.get(c.name), row.get(c.name)
        if va is vb or (type(va) is type(vb) and va == vb):
            continue
        if canonical(c.kind, va) != canonical(c.kind, vb):
            out.add(c.name)
    return out


def rows_equal(info: TableInfo, a: Optional[Row], b: Optional[Row]) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return not changed_columns(info, a, b)
