"""SQL helpers shared by every store: identifiers are always quoted through here."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Quote an SQL identifier for PostgreSQL and SQLite alike (double quotes doubled)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"invalid SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal; only for DDL where bound parameters are not allowed."""
    return "'" + str(value).replace("'", "''") + "'"
