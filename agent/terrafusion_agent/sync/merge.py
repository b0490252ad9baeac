"""A per-column merge of a conflict, as a person chooses it.

For each column the merge names, the analyst picks ``"local"`` (the local row as it is
now), ``"central"`` (central's row as the conflict recorded it) or a value typed in: a
JSON number, string, boolean or null, WKT for the geometry column, and
``{"value": ...}`` for a value that would otherwise read as a side (the text "local").
Every column changed on both sides must be named; another column may be named too, and
its choice becomes part of the analyst's edit.

:func:`chosen_values` checks the whole merge against the table before anything is
written and answers the values the local row takes. Each problem is one
:class:`~terrafusion_agent.errors.InvalidMerge` sentence naming the column.
"""

from __future__ import annotations

import datetime
import math
import re
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Callable, Optional

from terrafusion_agent.errors import InvalidMerge
from terrafusion_agent.stores.base import Column, Row, TableInfo

LOCAL, CENTRAL = "local", "central"

#: reads WKT as the local copy stores geometries: (WKB, OGC type, dimensions) or None
WktReader = Callable[[str, int], Optional[tuple[bytes, str, str]]]

#: the whole numbers each PostgreSQL integer type holds; anything else (and a column of
#: an embedded central) is bounded by SQLite's own 64-bit integers
_INT_BITS = {"smallint": 16, "integer": 32, "bigint": 64}
_NUMERIC = re.compile(r"^numeric\((\d+)(?:,\s*(\d+))?\)$")
_CHARS = re.compile(r"^(?:character varying|character|varchar|char)\((\d+)\)$")
#: what a column of each kind written as text takes, in a sentence
_TEXT_KINDS = {"date": "a date (YYYY-MM-DD)", "datetime": "a date and time (ISO 8601)",
               "geometry": "a geometry written as WKT", "blob": "bytes written as hexadecimal"}


def chosen_values(info: TableInfo, conflict_id: int, merge: Any, conflicting: list[str],
                  now: Row, central: Row, read_wkt: WktReader) -> dict[str, Any]:
    """{column: the value the analyst chose} for ``merge`` (see the module docstring);
    ``now`` is the local row, ``central`` the row recorded at detection."""
    if not isinstance(merge, dict) or not merge:
        raise InvalidMerge(
            f"The merge for conflict {conflict_id} must name columns, each with \"local\", "
            "\"central\" or a value.")
    columns = {c.name: c for c in info.columns}
    for name in merge:
        if name not in columns:
            raise InvalidMerge(f"Table {info.name} has no column {name!r}, which the merge "
                               f"for conflict {conflict_id} names.")
        if name in info.pk:
            raise InvalidMerge(f"{name} is the key of table {info.name}; a merge cannot "
                               "change it.")
    missing = [c for c in conflicting if c not in merge]
    if missing:
        raise InvalidMerge(
            f"The merge for conflict {conflict_id} leaves out {', '.join(missing)}, changed "
            f"on both sides; choose \"local\", \"central\" or a value for "
            f"{'it' if len(missing) == 1 else 'each'}.")
    out: dict[str, Any] = {}
    for name, choice in merge.items():
        if choice == LOCAL:
            out[name] = now.get(name)
        elif choice == CENTRAL:
            out[name] = central.get(name)
        else:
            if isinstance(choice, dict):
                if set(choice) != {"value"}:
                    raise InvalidMerge(
                        f"The merge of {name} must be \"local\", \"central\", a value or "
                        "{\"value\": ...}.")
                choice = choice["value"]
            out[name] = typed_value(info, columns[name], choice, read_wkt)
    return out


def typed_value(info: TableInfo, column: Column, value: Any, read_wkt: WktReader) -> Any:
    """``value`` as column ``column`` of the local copy holds it; InvalidMerge when the
    column cannot hold it."""
    name = column.name
    if value is None:
        if not column.nullable:
            raise InvalidMerge(f"{name} of table {info.name} cannot be NULL.")
        return None
    if isinstance(value, (list, dict)):
        raise InvalidMerge(f"The merge of {name} must be \"local\", \"central\" or a single "
                           "value, not a JSON list or object.")
    kind = column.kind
    if kind == "integer":
        return _integer(info, column, value)
    if kind in ("real", "decimal"):
        return _number(info, column, value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _wrong(info, column, value, "true or false")
        return value
    if not isinstance(value, str):
        raise _wrong(info, column, value, _TEXT_KINDS.get(kind, "text"))
    if kind == "date":
        return _date(info, column, value)
    if kind == "datetime":
        return _datetime(info, column, value)
    if kind == "geometry":
        return _geometry(info, column, value, read_wkt)
    if kind == "blob":
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise _wrong(info, column, value, "bytes written as hexadecimal") from None
    limit = _CHARS.match(column.db_type or "")
    if limit and len(value) > int(limit.group(1)):
        raise InvalidMerge(f"{name} of table {info.name} ({column.db_type}) holds at most "
                           f"{limit.group(1)} characters, not {len(value)}.")
    return value


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the text {_snippet(value)}"
    return f"the number {value}"


def _snippet(text: str) -> str:
    """A typed text quoted in a sentence, cut short when long (WKT can be)."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _wrong(info: TableInfo, column: Column, value: Any, wanted: str) -> InvalidMerge:
    return InvalidMerge(f"{column.name} of table {info.name} takes {wanted}, not "
                        f"{_shown(value)}.")


def _integer(info: TableInfo, column: Column, value: Any) -> int:
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise _wrong(info, column, value, "a whole number")
    number = int(value)
    bits = _INT_BITS.get(column.db_type or "", 64)
    if not -(1 << (bits - 1)) <= number < 1 << (bits - 1):
        raise InvalidMerge(f"{column.name} of table {info.name} "
                           f"({column.db_type or 'integer'}) cannot hold {number}.")
    return number


def _number(info: TableInfo, column: Column, value: Any) -> Any:
    """A real column's double, or a decimal column's exact number (which may also come
    as a string of its digits, as ``conflicts list`` shows the ones a double cannot
    hold)."""
    if isinstance(value, bool):
        raise _wrong(info, column, value, "a number")
    if isinstance(value, str) and column.kind == "decimal":
        try:
            exact = Decimal(value.strip())
        except InvalidOperation:
            raise _wrong(info, column, value, "a number") from None
        if not exact.is_finite():
            raise _wrong(info, column, value, "a finite number")
    elif isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _wrong(info, column, value, "a finite number")
        exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    else:
        raise _wrong(info, column, value, "a number")
    bounds = _NUMERIC.match(column.db_type or "")
    if bounds:
        precision, scale = int(bounds.group(1)), int(bounds.group(2) or 0)
        # rounded to the column's scale, as PostgreSQL stores it, within its digits
        too_big = bool(exact) and exact.adjusted() >= precision - scale
        if too_big or abs(exact.quantize(Decimal(1).scaleb(-scale), context=Context(
                prec=precision + 2))) >= Decimal(10) ** (precision - scale):
            raise InvalidMerge(f"{column.name} of table {info.name} ({column.db_type}) cannot "
                               f"hold {value}.")
    if column.kind == "decimal":
        return exact
    return float(value)


def _date(info: TableInfo, column: Column, value: str) -> str:
    try:
        return datetime.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise _wrong(info, column, value, _TEXT_KINDS["date"]) from None


def _datetime(info: TableInfo, column: Column, value: str) -> str:
    """The moment as PostgreSQL writes it as text (``2026-05-01 14:30:00+00``), so the
    value pushed and the one read back later compare equal."""
    text = value.strip()
    try:
        moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z")
                                                 else text)
    except ValueError:
        raise _wrong(info, column, value, _TEXT_KINDS["datetime"]) from None
    out = moment.replace(tzinfo=None).isoformat(sep=" ")
    offset = moment.utcoffset()
    if offset is not None:
        minutes = int(offset.total_seconds()) // 60
        sign, minutes = ("-", -minutes) if minutes < 0 else ("+", minutes)
        out += f"{sign}{minutes // 60:02d}" + (f":{minutes % 60:02d}" if minutes % 60 else "")
    return out


def _geometry(info: TableInfo, column: Column, value: str, read_wkt: WktReader) -> bytes:
    shape = read_wkt(value, info.srid)
    if shape is None:
        raise InvalidMerge(f"{column.name} of table {info.name} takes a geometry written as "
                           f"WKT (null for none), and {_snippet(value)} is not WKT that "
                           "SpatiaLite can read.")
    wkb, kind, dims = shape
    assert info.geometry is not None  # a geometry column has its description
    wanted = info.geometry.geometry_type
    if wanted != "GEOMETRY" and kind != wanted:
        raise InvalidMerge(f"{column.name} of table {info.name} takes a {wanted}, not a "
                           f"{kind}.")
    if dims != info.geometry.dims:
        raise InvalidMerge(f"{column.name} of table {info.name} takes {info.geometry.dims} "
                           f"coordinates, not {dims}.")
    return wkb
