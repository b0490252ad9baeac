"""A chosen set of rows as an SQLite filter, for an export of exactly those rows.

A front end that lets people pick features (a QGIS selection, an expression only it can
evaluate) hands the export engine their primary keys; this turns them into the engine's
``where``: values as literals, since the filter is one expression text, and identifiers
quoted.
"""

from __future__ import annotations

from typing import Any

from terrafusion_agent.sql import quote_ident
from terrafusion_agent.stores.base import TableInfo


def sql_literal(value: Any, kind: str) -> str:
    """A key value as an SQLite literal (keys are numbers or text, never NULL)."""
    if kind in ("integer", "boolean"):
        return str(int(value))
    if kind == "real":
        return repr(float(value))
    return "'" + str(value).replace("'", "''") + "'"


def keys_filter(info: TableInfo, keys: list[tuple]) -> str:
    """An SQLite expression matching exactly the rows with the primary keys ``keys``."""
    if not keys:
        return "0"  # an empty choice exports an empty file, not the whole table
    kinds = {c.name: c.kind for c in info.columns}
    if len(info.pk) == 1:
        column = info.pk[0]
        values = ", ".join(sql_literal(k[0], kinds.get(column, "text")) for k in keys)
        return f"{quote_ident(column)} IN ({values})"
    columns = ", ".join(quote_ident(c) for c in info.pk)
    rows = ", ".join("(" + ", ".join(sql_literal(v, kinds.get(c, "text"))
                                     for c, v in zip(info.pk, key)) + ")" for key in keys)
    return f"({columns}) IN (VALUES {rows})"
